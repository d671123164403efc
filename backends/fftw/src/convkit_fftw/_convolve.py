"""convolve_nd by FFT: one transform per operand, or overlap-add blocks.

Along an axis where one operand is much longer than the other, the long one
is cut into blocks of length ``L`` that are transformed together (a batch of
short transforms of length ``N >= L + m - 1``) and their results are added
back with an overlap of ``m - 1``: the work per output point drops from
``log2(n + m)`` to about ``N / L * log2(N)`` and every transform fits in cache.
Axes that are not convolved are a batch.  Splitting a problem that would not
fit in the memory budget is ``_pieces``' job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from convkit.plugin import kernel_operand
from convkit_fftw._runtime import load_pyfftw
from convkit_fftw._transforms import forward, inverse

__all__ = ["Layout", "convolve_region", "layout", "transform_shapes", "working_bytes"]

# Overlap-add only pays when the long operand is this many block lengths long
# and this many times longer than the short one.  Its reshuffling passes cost
# more than they save on 2-D and 3-D problems (bench/NOTES.md: 2048^2 * 64^2
# f32 takes 87 ms blocked on both axes, 34 ms as one transform), so only the
# one axis with the largest length ratio is ever blocked.
MIN_BLOCKS = 3
MIN_RATIO = 64


def fast_length(size: int) -> int:
    """The smallest size >= ``size`` that FFTW transforms fast (factors 2, 3, 5, 7)."""
    import scipy.fft

    return scipy.fft.next_fast_len(size, real=False)


def block_fft_length(kernel: int) -> int:
    """The overlap-add transform length that minimizes work per output point.

    With overlap ``m - 1`` the cost per output of a block transform of length
    ``N`` is ``N log N / (N - m + 1)``; its minimum is at
    ``N = -(m - 1) * W_{-1}(-1 / (2 e (m - 1)))`` (as in scipy.signal.oaconvolve).
    """
    import scipy.special

    overlap = kernel - 1
    if overlap < 1:
        return fast_length(64)
    best = -overlap * scipy.special.lambertw(-1 / (2 * math.e * overlap), k=-1).real
    return fast_length(max(2 * overlap + 1, math.ceil(best)))


@dataclass(frozen=True)
class Layout:
    """How one problem is transformed.

    ``blocks[axis]`` is ``(block_length, transform_length)`` for overlap-add
    axes; ``lengths[axis]`` is the transform length of the other convolved axes.
    """

    axes: tuple[int, ...]
    lengths: dict[int, int]
    blocks: dict[int, tuple[int, int]]
    swapped: bool


def layout(
    shape1: tuple[int, ...],
    shape2: tuple[int, ...],
    axes: tuple[int, ...],
    overlap_add: bool = True,
) -> Layout:
    """Choose transform lengths and overlap-add axes for ``shape1 ⊛ shape2``."""
    swapped = kernel_operand(shape1, shape2, axes) == 0
    if swapped:
        shape1, shape2 = shape2, shape1
    lengths, blocks = {}, {}
    blocked = max(axes, key=lambda axis: shape1[axis] / shape2[axis])
    for axis in axes:
        long, short = shape1[axis], shape2[axis]
        if overlap_add and axis == blocked and long >= MIN_RATIO * short:
            size = block_fft_length(short)
            block = size - short + 1
            if long >= MIN_BLOCKS * block:
                blocks[axis] = (block, size)
                continue
        lengths[axis] = fast_length(long + short - 1)
    return Layout(tuple(axes), lengths, blocks, swapped)


def _expanded_shape(shape: tuple[int, ...], plan: Layout, first: bool) -> tuple[int, ...]:
    """Transform-buffer shape: overlap-add axes become (blocks, N) for the long operand, (1, N) else."""
    expanded = []
    for axis, size in enumerate(shape):
        if axis in plan.blocks:
            block, length = plan.blocks[axis]
            expanded += [-(-size // block) if first else 1, length]
        elif axis in plan.lengths:
            expanded.append(plan.lengths[axis])
        else:
            expanded.append(size)
    return tuple(expanded)


def _transform_axes(shape: tuple[int, ...], plan: Layout) -> tuple[int, ...]:
    axes, position = [], 0
    for axis in range(len(shape)):
        if axis in plan.blocks:
            axes.append(position + 1)
            position += 2
        else:
            if axis in plan.lengths:
                axes.append(position)
            position += 1
    return tuple(axes)


def _blocked(array: np.ndarray, plan: Layout) -> np.ndarray:
    """The long operand with each overlap-add axis cut into (blocks, L), zero-padded at the end."""
    padded_shape = tuple(
        -(-size // plan.blocks[axis][0]) * plan.blocks[axis][0] if axis in plan.blocks else size
        for axis, size in enumerate(array.shape)
    )
    if padded_shape != array.shape:
        padded = np.zeros(padded_shape, dtype=array.dtype)
        padded[tuple(slice(0, size) for size in array.shape)] = array
        array = padded
    shape = []
    for axis, size in enumerate(array.shape):
        if axis in plan.blocks:
            block = plan.blocks[axis][0]
            shape += [size // block, block]
        else:
            shape.append(size)
    return array.reshape(shape)


def _with_unit_block_axes(array: np.ndarray, plan: Layout) -> np.ndarray:
    shape = []
    for axis, size in enumerate(array.shape):
        shape += [1, size] if axis in plan.blocks else [size]
    return array.reshape(shape)


def _overlap_add(result: np.ndarray, position: int, block: int, kernel: int) -> np.ndarray:
    """Collapse axes (position, position + 1) = (blocks, N) into one of length blocks * L + m - 1."""
    moved = np.moveaxis(result, (position, position + 1), (-2, -1))
    count = moved.shape[-2]
    tail = kernel - 1
    out = np.zeros(moved.shape[:-2] + (count * block + tail,), dtype=result.dtype)
    out[..., : count * block] = moved[..., :block].reshape(moved.shape[:-2] + (count * block,))
    if tail:
        # Each block's tail (its last m - 1 outputs) lands on the head of the next block.
        heads = out[..., block : count * block].reshape(moved.shape[:-2] + (count - 1, block))
        heads[..., :tail] += moved[..., :-1, block : block + tail]
        out[..., count * block :] += moved[..., -1, block : block + tail]
    return np.moveaxis(out, -1, position)


def transform_shapes(
    shape1: tuple[int, ...], shape2: tuple[int, ...], axes: tuple[int, ...]
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], int]:
    """Real-side shapes of the long operand's, the short operand's and the product's transforms,
    and the points of one transform (over the transformed axes)."""
    plan = layout(shape1, shape2, axes)
    if plan.swapped:
        shape1, shape2 = shape2, shape1
    big = _expanded_shape(shape1, plan, True)
    small = _expanded_shape(shape2, plan, False)
    out = tuple(max(a, b) for a, b in zip(big, small))
    return big, small, out, math.prod(big[axis] for axis in _transform_axes(shape1, plan))


def working_bytes(
    shape1: tuple[int, ...],
    shape2: tuple[int, ...],
    axes: tuple[int, ...],
    output_points: int,
    dtype: np.dtype,
) -> int:
    """Peak bytes of :func:`convolve_region` on these shapes (both transforms, product, result)."""
    big, small, out, _ = transform_shapes(shape1, shape2, axes)
    complex_size = np.result_type(dtype, np.complex64).itemsize
    real_size = complex_size // 2 if dtype.kind != "c" else complex_size
    points = math.prod(big) + math.prod(small) + math.prod(out)
    # Each plan holds a real (or complex) buffer and a half-size complex spectrum,
    # plus the blocked copy of the long operand and the overlap-added result.
    return (
        points * (real_size + complex_size)
        + math.prod(big) * real_size * 2
        + output_points * (real_size + complex_size)
    )


def convolve_region(
    in1: np.ndarray,
    in2: np.ndarray,
    axes: tuple[int, ...],
    output_start: tuple[int, ...],
    output_shape: tuple[int, ...],
    dtype: np.dtype,
    threads: int,
) -> np.ndarray:
    """``full[output region]`` of the linear convolution of in1 and in2 over ``axes``."""
    plan = layout(in1.shape, in2.shape, axes)
    if plan.swapped:
        in1, in2 = in2, in1
    long_operand = _blocked(in1, plan)
    short_operand = _with_unit_block_axes(in2, plan)
    big = _expanded_shape(in1.shape, plan, True)
    small = _expanded_shape(in2.shape, plan, False)
    transform_axes = _transform_axes(in1.shape, plan)
    out_shape = tuple(max(a, b) for a, b in zip(big, small))
    points = math.prod(big[axis] for axis in transform_axes)
    region = tuple(slice(start, start + size) for start, size in zip(output_start, output_shape))
    # The 1/points normalization is applied to the shorter operand, before its transform.
    with (
        forward(long_operand, big, transform_axes, threads) as first_spectrum,
        forward(
            short_operand, small, transform_axes, threads, scale=1.0 / points
        ) as second_spectrum,
        inverse(out_shape, transform_axes, dtype, threads) as back,
    ):
        np.multiply(first_spectrum, second_spectrum, out=back.input)
        if plan.blocks:
            result = back.execute()
            # Collapsing a (blocks, N) pair leaves one axis, so axis k is at position k again.
            for axis in sorted(plan.blocks):
                result = _overlap_add(result, axis, plan.blocks[axis][0], in2.shape[axis])
            return np.array(result[region], dtype=dtype, copy=True)
        if 2 * math.prod(output_shape) < math.prod(out_shape):
            return np.array(back.execute()[region], dtype=dtype, copy=True)
        # The output is most of the inverse: hand out a view of a fresh buffer instead of a copy.
        return back.execute_into(load_pyfftw().empty_aligned(out_shape, dtype=back.output.dtype))[
            region
        ]
