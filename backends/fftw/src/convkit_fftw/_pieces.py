"""Split a convolve_nd problem into pieces that fit the memory budget, and run them.

The pieces tile the output region with tiles of one shape (smaller at the
ends).  Along an axis that is not convolved a tile is a slab of the batch (an
independent problem); along a convolved axis it is a segment (overlap-save:
output positions ``[i0, i1)`` of the full convolution only need
``in1[i0 - m + 1 : i1]`` of the longer operand, so each segment is a smaller
convolution).  The tile shape is found by a bounded search, without listing
the pieces: the batch axes are cut first, longest first, then the convolved
axes by the length of their output, each to the longest tile that fits (by
bisection, the working set grows with every length).  When even tiles of
length 1 on every axis do not fit (the shorter operand alone is too large),
the problem is left whole, and the core's check of the working set refuses it
before anything is allocated.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import product

import numpy as np

from convkit_fftw._convolve import convolve_region, working_bytes

__all__ = ["Piece", "convolve_within", "peak_bytes", "pieces"]


@dataclass(frozen=True)
class Piece:
    """One sub-problem: operand boxes (offsets and shapes), its output region, where it goes."""

    first_offset: tuple[int, ...]
    first_shape: tuple[int, ...]
    second_offset: tuple[int, ...]
    second_shape: tuple[int, ...]
    output_start: tuple[int, ...]
    output_shape: tuple[int, ...]
    target_offset: tuple[int, ...]


@dataclass(frozen=True)
class _Segment:
    """One piece's extent along one axis."""

    first_offset: int
    first_length: int
    second_offset: int
    second_length: int
    output_start: int
    output_length: int
    target_offset: int


@dataclass(frozen=True)
class _Problem:
    """The operands' shapes and the output region to compute (in full-convolution coordinates)."""

    shape1: tuple[int, ...]
    shape2: tuple[int, ...]
    axes: tuple[int, ...]
    output_start: tuple[int, ...]
    output_shape: tuple[int, ...]
    dtype: np.dtype

    @classmethod
    def of(cls, shape1, shape2, axes, output_start, output_shape, dtype) -> _Problem:
        return cls(
            tuple(shape1),
            tuple(shape2),
            tuple(axes),
            tuple(output_start),
            tuple(output_shape),
            np.dtype(dtype),
        )

    def largest_boxes(self, tile: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The largest operand boxes that a piece of output shape ``tile`` reads (per axis)."""
        first, second = list(self.shape1), list(self.shape2)
        for axis, (length, size) in enumerate(zip(tile, self.output_shape)):
            if length >= size:
                continue  # not cut: the operands stay whole
            if axis in self.axes:
                # Only the longer operand is cut: a segment reads length + shorter - 1 of it.
                short = min(first[axis], second[axis])
                longer = first if first[axis] >= second[axis] else second
                longer[axis] = min(longer[axis], length + short - 1)
            else:
                # An operand of length 1 on a batch axis broadcasts: it is not cut.
                first[axis] = min(first[axis], length)
                second[axis] = min(second[axis], length)
        return tuple(first), tuple(second)

    def tile_bytes(self, tile: tuple[int, ...]) -> int:
        """Working set of the largest piece of output shape ``tile``."""
        first, second = self.largest_boxes(tile)
        return working_bytes(first, second, self.axes, math.prod(tile), self.dtype)

    def segments(self, axis: int, length: int) -> Iterator[_Segment]:
        """The pieces' extents along ``axis`` for tiles of ``length`` outputs."""
        size = self.output_shape[axis]
        first, second, start = self.shape1[axis], self.shape2[axis], self.output_start[axis]
        if length >= size:
            yield _Segment(0, first, 0, second, start, size, 0)
            return
        for begin in range(0, size, length):
            end = min(begin + length, size)
            if axis not in self.axes:
                yield _Segment(
                    begin if first > 1 else 0,
                    end - begin if first > 1 else 1,
                    begin if second > 1 else 0,
                    end - begin if second > 1 else 1,
                    start,
                    end - begin,
                    begin,
                )
                continue
            # Full-convolution outputs [i0, i1) read the longer operand at [i0 - short + 1, i1)
            # only; inside the full result that range is never empty.
            short, long = min(first, second), max(first, second)
            low, high = max(0, start + begin - short + 1), min(long, start + end)
            if first >= second:
                yield _Segment(low, high - low, 0, second, start + begin - low, end - begin, begin)
            else:
                yield _Segment(0, first, low, high - low, start + begin - low, end - begin, begin)


def _longest_fitting(problem: _Problem, tile: list[int], axis: int, budget: int) -> int | None:
    """The longest tile length along ``axis`` (the others as in ``tile``) whose pieces fit, if any."""

    def fits(length: int) -> bool:
        return problem.tile_bytes(tuple(tile[:axis] + [length] + tile[axis + 1 :])) <= budget

    if not fits(1):
        return None
    low, high = 1, problem.output_shape[axis]  # fits(low); high does not (the caller checked)
    while high - low > 1:
        middle = (low + high) // 2
        if fits(middle):
            low = middle
        else:
            high = middle
    # As many tiles as the longest fitting length needs, of equal length.
    count = -(-problem.output_shape[axis] // low)
    balanced = -(-problem.output_shape[axis] // count)
    return balanced if fits(balanced) else low


def _tile(problem: _Problem, budget: int) -> tuple[int, ...]:
    tile = list(problem.output_shape)
    if budget <= 0 or problem.tile_bytes(tuple(tile)) <= budget:
        return tuple(tile)
    sizes = problem.output_shape
    batch = sorted(
        (axis for axis in range(len(sizes)) if axis not in problem.axes and sizes[axis] > 1),
        key=lambda axis: -sizes[axis],
    )
    convolved = sorted(
        (axis for axis in problem.axes if sizes[axis] > 1), key=lambda axis: -sizes[axis]
    )
    for axis in batch + convolved:
        length = _longest_fitting(problem, tile, axis, budget)
        if length is not None:
            tile[axis] = length
            return tuple(tile)
        tile[axis] = 1
    return tuple(problem.output_shape)  # no tiling fits: left whole, to be refused


def _tiled(problem: _Problem, tile: tuple[int, ...]) -> Iterator[Piece]:
    per_axis = [list(problem.segments(axis, length)) for axis, length in enumerate(tile)]
    for parts in product(*per_axis):
        yield Piece(
            tuple(part.first_offset for part in parts),
            tuple(part.first_length for part in parts),
            tuple(part.second_offset for part in parts),
            tuple(part.second_length for part in parts),
            tuple(part.output_start for part in parts),
            tuple(part.output_length for part in parts),
            tuple(part.target_offset for part in parts),
        )


def pieces(
    shape1: tuple[int, ...],
    shape2: tuple[int, ...],
    axes: tuple[int, ...],
    output_start: tuple[int, ...],
    output_shape: tuple[int, ...],
    dtype: np.dtype,
    budget: int,
) -> Iterator[Piece]:
    """The sub-problems that compute ``full[output region]`` within ``budget`` bytes each (if possible)."""
    problem = _Problem.of(shape1, shape2, axes, output_start, output_shape, dtype)
    return _tiled(problem, _tile(problem, budget))


def peak_bytes(shape1, shape2, axes, output_start, output_shape, dtype, budget) -> int:
    """The working set of the largest piece :func:`convolve_within` would run."""
    problem = _Problem.of(shape1, shape2, axes, output_start, output_shape, dtype)
    return problem.tile_bytes(_tile(problem, budget))


def _box(array: np.ndarray, offset: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    return array[tuple(slice(start, start + size) for start, size in zip(offset, shape))]


def convolve_within(
    in1: np.ndarray,
    in2: np.ndarray,
    axes: tuple[int, ...],
    output_start: tuple[int, ...],
    output_shape: tuple[int, ...],
    dtype: np.dtype,
    threads: int,
    budget: int,
) -> np.ndarray:
    """``full[output region]`` of in1 ⊛ in2, piece by piece when the whole would not fit in ``budget``."""
    problem = _Problem.of(in1.shape, in2.shape, axes, output_start, output_shape, dtype)
    tile = _tile(problem, budget)
    if tile == problem.output_shape:
        return convolve_region(in1, in2, axes, output_start, output_shape, dtype, threads)
    result = np.empty(output_shape, dtype=dtype)
    for piece in _tiled(problem, tile):
        _box(result, piece.target_offset, piece.output_shape)[...] = convolve_region(
            _box(in1, piece.first_offset, piece.first_shape),
            _box(in2, piece.second_offset, piece.second_shape),
            axes,
            piece.output_start,
            piece.output_shape,
            dtype,
            threads,
        )
    return result
