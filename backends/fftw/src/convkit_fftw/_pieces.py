"""Split a convolve_nd problem into pieces that fit the memory budget, and run them.

First along an axis that is not convolved (slabs of the batch: each slab is an
independent problem); when no such axis is left, along the convolved axis with
the longest output (overlap-save: output positions ``[i0, i1)`` of the full
convolution only need ``in1[i0 - m + 1 : i1]`` of the longer operand, so each
segment is a smaller convolution).  A piece that cannot be made smaller (the
shorter operand alone is too large) is left whole, and the core's check of
the working set refuses it before anything is allocated.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

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

    def bytes(self, axes: tuple[int, ...], dtype: np.dtype) -> int:
        return working_bytes(self.first_shape, self.second_shape, axes, math.prod(self.output_shape), dtype)


def _with(values: tuple[int, ...], axis: int, value: int) -> tuple[int, ...]:
    return values[:axis] + (value,) + values[axis + 1:]


def _split(piece: Piece, axes: tuple[int, ...], dtype: np.dtype, budget: int) -> Iterator[Piece]:
    needed = piece.bytes(axes, dtype)
    if needed <= budget:
        yield piece
        return
    shape = piece.output_shape
    count = -(-needed // max(budget, 1))
    batch = [axis for axis in range(len(shape)) if axis not in axes and shape[axis] > 1]
    if batch:
        axis = max(batch, key=lambda a: shape[a])
        step = -(-shape[axis] // min(shape[axis], count))
        for begin in range(0, shape[axis], step):
            end = min(begin + step, shape[axis])
            sub = replace(piece, output_shape=_with(shape, axis, end - begin),
                          target_offset=_with(piece.target_offset, axis, piece.target_offset[axis] + begin))
            # An operand of length 1 on a batch axis broadcasts: it is not cut.
            if piece.first_shape[axis] > 1:
                sub = replace(sub, first_offset=_with(piece.first_offset, axis, piece.first_offset[axis] + begin),
                              first_shape=_with(piece.first_shape, axis, end - begin))
            if piece.second_shape[axis] > 1:
                sub = replace(sub, second_offset=_with(piece.second_offset, axis, piece.second_offset[axis] + begin),
                              second_shape=_with(piece.second_shape, axis, end - begin))
            yield from _split(sub, axes, dtype, budget)
        return
    axis = max(axes, key=lambda a: shape[a])
    first_long = piece.first_shape[axis] >= piece.second_shape[axis]
    long, short = ((piece.first_shape[axis], piece.second_shape[axis]) if first_long
                   else (piece.second_shape[axis], piece.first_shape[axis]))
    step = -(-shape[axis] // min(shape[axis], count))
    if shape[axis] <= 1 or step + short - 1 >= long:
        yield piece  # cannot be made smaller this way: the core will refuse it if it is too large
        return
    for begin in range(0, shape[axis], step):
        end = min(begin + step, shape[axis])
        # Full-convolution outputs [first, last) read the long operand at [first - short + 1, last)
        # only; inside the full result that range is never empty.
        first_index = piece.output_start[axis] + begin
        last_index = piece.output_start[axis] + end
        low, high = max(0, first_index - short + 1), min(long, last_index)
        sub = replace(piece, output_shape=_with(shape, axis, end - begin),
                      output_start=_with(piece.output_start, axis, first_index - low),
                      target_offset=_with(piece.target_offset, axis, piece.target_offset[axis] + begin))
        if first_long:
            sub = replace(sub, first_offset=_with(piece.first_offset, axis, piece.first_offset[axis] + low),
                          first_shape=_with(piece.first_shape, axis, high - low))
        else:
            sub = replace(sub, second_offset=_with(piece.second_offset, axis, piece.second_offset[axis] + low),
                          second_shape=_with(piece.second_shape, axis, high - low))
        yield from _split(sub, axes, dtype, budget)


def pieces(shape1: tuple[int, ...], shape2: tuple[int, ...], axes: tuple[int, ...],
           output_start: tuple[int, ...], output_shape: tuple[int, ...], dtype: np.dtype,
           budget: int) -> list[Piece]:
    """The sub-problems that compute ``full[output region]`` within ``budget`` bytes each (if possible)."""
    zeros = (0,) * len(shape1)
    whole = Piece(zeros, tuple(shape1), zeros, tuple(shape2), tuple(output_start), tuple(output_shape), zeros)
    return list(_split(whole, tuple(axes), np.dtype(dtype), budget))


def peak_bytes(shape1, shape2, axes, output_start, output_shape, dtype, budget) -> int:
    """The working set of the largest piece :func:`convolve_within` would run."""
    return max(piece.bytes(tuple(axes), np.dtype(dtype))
               for piece in pieces(shape1, shape2, axes, output_start, output_shape, dtype, budget))


def _box(array: np.ndarray, offset: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    return array[tuple(slice(start, start + size) for start, size in zip(offset, shape))]


def convolve_within(in1: np.ndarray, in2: np.ndarray, axes: tuple[int, ...],
                    output_start: tuple[int, ...], output_shape: tuple[int, ...],
                    dtype: np.dtype, threads: int, budget: int) -> np.ndarray:
    """``full[output region]`` of in1 ⊛ in2, piece by piece when the whole would not fit in ``budget``."""
    plan = pieces(in1.shape, in2.shape, axes, output_start, output_shape, dtype, budget)
    if len(plan) == 1:
        return convolve_region(in1, in2, axes, output_start, output_shape, dtype, threads)
    result = np.empty(output_shape, dtype=dtype)
    for piece in plan:
        _box(result, piece.target_offset, piece.output_shape)[...] = convolve_region(
            _box(in1, piece.first_offset, piece.first_shape), _box(in2, piece.second_offset, piece.second_shape),
            axes, piece.output_start, piece.output_shape, dtype, threads)
    return result
