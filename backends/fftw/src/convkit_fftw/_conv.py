"""CNN convolution (conv) by FFT: transform once, sum channels per frequency.

Every input plane, zero-padded as the problem says, and every (dilated)
filter plane are transformed once, to the same length ``L >= padded input``
per axis.  Each output plane is then, per frequency, a sum over the channels
of its group: a complex matrix product ``(N x Cg) @ (Cg x Fg)`` at every
frequency, followed by one inverse transform per output plane.  A circular
transform of length ``L`` is exact at the positions a valid correlation
reads, and the stride picks every ``stride``-th of them.

With the "wrap" boundary the transform length is the input's own: the
padded input is periodic, so a circular correlation of length ``n`` with
the filter folded modulo ``n`` gives every output, with no padded copy (see
``_periodic``).
"""

from __future__ import annotations

import math

import numpy as np

from convkit.plugin import dilated_extent
from convkit_fftw._convolve import fast_length
from convkit_fftw._transforms import forward, forward_folded, inverse

__all__ = ["conv_within", "conv_working_bytes", "geometry", "spectrum_points"]

# Channel sums with at least this many (channel, filter) pairs per group go
# through a batched complex GEMM; fewer are cheaper as broadcast multiply-adds.
GEMM_PAIRS = 64


def geometry(input_shape, filter_shape, padding, dilation, periodic=False):
    """Dilated filter extents, transform lengths and transformed axes; ``periodic`` for
    an input that wraps (transforms of its own length)."""
    spatial = len(input_shape) - 2
    dilated = tuple(dilated_extent(k, d) for d, k in zip(dilation, filter_shape[2:]))
    padded = tuple(size + before + after for size, (before, after) in zip(input_shape[2:], padding))
    lengths = tuple(input_shape[2:]) if periodic else tuple(fast_length(size) for size in padded)
    axes = tuple(range(2, 2 + spatial))
    return dilated, lengths, axes


def spectrum_points(lengths: tuple[int, ...], complex_input: bool) -> int:
    if complex_input:
        return math.prod(lengths)
    return math.prod(lengths[:-1]) * (lengths[-1] // 2 + 1)


def conv_working_bytes(
    input_shape, filter_shape, padding, dilation, dtype: np.dtype, budget: int, periodic=False
) -> int:
    """Peak bytes of :func:`conv_within` with the batch chunk it would choose under ``budget``."""
    fixed, per_image = _costs(input_shape, filter_shape, padding, dilation, dtype, periodic)
    chunk = _chunk(input_shape[0], fixed, per_image, budget)
    return fixed + chunk * per_image


def _costs(
    input_shape, filter_shape, padding, dilation, dtype: np.dtype, periodic=False
) -> tuple[int, int]:
    _, lengths, _ = geometry(input_shape, filter_shape, padding, dilation, periodic)
    complex_size = np.result_type(dtype, np.complex64).itemsize
    real_size = dtype.itemsize
    channels, filters, group_channels = input_shape[1], filter_shape[0], filter_shape[1]
    real_points = math.prod(lengths)
    spectrum = spectrum_points(lengths, dtype.kind == "c")
    # Filters: dilated copy, its padded buffer and two copies of its spectrum (plan, GEMM layout).
    fixed = filters * group_channels * (real_points * real_size + 2 * spectrum * complex_size)
    # Per image: the padded input and its spectrum (and GEMM copy), the output spectra
    # (GEMM result and plan buffer), the inverse's output.
    per_image = channels * (real_points * real_size + 2 * spectrum * complex_size) + filters * (
        2 * spectrum * complex_size + real_points * real_size
    )
    return fixed, per_image


def _chunk(batch: int, fixed: int, per_image: int, budget: int) -> int:
    return max(1, min(batch, (budget - fixed) // per_image)) if budget > fixed else 1


def _channel_sums(images: np.ndarray, filters: np.ndarray, groups: int, out: np.ndarray) -> None:
    """out[n, f] = sum over c in f's group of images[n, c] * filters[f, c], per frequency.

    images: (n, C, M); filters: (F, Cg, M); out: (n, F, M), all complex.
    """
    batch, _, points = images.shape
    filter_count, group_channels = filters.shape[:2]
    group_filters = filter_count // groups
    grouped_images = images.reshape(batch, groups, group_channels, points)
    grouped_filters = filters.reshape(groups, group_filters, group_channels, points)
    grouped_out = out.reshape(batch, groups, group_filters, points)
    if group_channels * group_filters < GEMM_PAIRS:
        term = np.empty((batch, group_filters, points), dtype=out.dtype)
        for g in range(groups):
            target = grouped_out[:, g]
            np.multiply(
                grouped_images[:, g, 0, None, :], grouped_filters[None, g, :, 0, :], out=target
            )
            for c in range(1, group_channels):
                np.multiply(
                    grouped_images[:, g, c, None, :], grouped_filters[None, g, :, c, :], out=term
                )
                target += term
        return
    # Frequencies become the batch of a complex GEMM: (M, G, n, Cg) @ (M, G, Cg, Fg).
    left = np.ascontiguousarray(grouped_images.transpose(3, 1, 0, 2))
    right = np.ascontiguousarray(grouped_filters.transpose(3, 0, 2, 1))
    product = np.matmul(left, right)
    grouped_out[...] = product.transpose(2, 1, 3, 0)


def _periodic_picks(lengths, output_sizes, strides) -> tuple:
    """Where outputs ``o * stride`` (mod n) lie in the circular result: strided slices, or
    index arrays on every spatial axis when some axis goes round more than once."""
    if all(
        (size - 1) * step < length for length, size, step in zip(lengths, output_sizes, strides)
    ):
        return tuple(
            slice(0, (size - 1) * step + 1, step) for size, step in zip(output_sizes, strides)
        )
    return np.ix_(
        *(
            np.arange(size) * step % length
            for length, size, step in zip(lengths, output_sizes, strides)
        )
    )


def conv_within(problem, threads: int, budget: int) -> np.ndarray:
    """The problem's output, computing at most as many images at once as fit in ``budget`` bytes."""
    image, weights = problem.input, problem.filters
    batch = image.shape[0]
    filter_count, group_channels = weights.shape[:2]
    dtype = problem.dtype
    periodic = problem.boundary == "wrap"
    dilated, lengths, axes = geometry(
        image.shape, weights.shape, problem.padding, problem.dilation, periodic
    )
    fixed, per_image = _costs(
        image.shape, weights.shape, problem.padding, problem.dilation, dtype, periodic
    )
    chunk = _chunk(batch, fixed, per_image, budget)

    # Correlation with w is convolution with w flipped: place the dilated,
    # flipped filter so that output o reads index o + dilated - 1 of the result.
    spread = np.zeros((filter_count, group_channels, *dilated), dtype=dtype)
    spread[(Ellipsis, *(slice(None, None, d) for d in problem.dilation))] = weights
    flipped = spread[(Ellipsis, *(slice(None, None, -1) for _ in dilated))]
    points = math.prod(lengths)
    filter_shape = (filter_count, group_channels, *lengths)
    if periodic:
        # Output o reads the periodic input from o * stride - pad_before on: with the
        # filter folded so that its sample q lands at q + pad_before - (dilated - 1),
        # that is index o * stride of the circular result (mod n).
        shifts = tuple(before - k + 1 for k, (before, _) in zip(dilated, problem.padding))
        filters_transform = forward_folded(flipped, filter_shape, axes, shifts, threads)
        offset, picks = None, _periodic_picks(lengths, problem.output_shape[2:], problem.stride)
    else:
        filters_transform = forward(flipped, filter_shape, axes, threads)
        offset = (0, 0) + tuple(before for before, _ in problem.padding)
        picks = tuple(
            slice(k - 1, k - 1 + (size - 1) * step + 1, step)
            for k, size, step in zip(dilated, problem.output_shape[2:], problem.stride)
        )
    result = np.empty(problem.output_shape, dtype=dtype)
    with filters_transform as filter_spectrum:
        filter_spectrum *= 1.0 / points
        filter_spectrum = filter_spectrum.reshape(filter_count, group_channels, -1)
        for start in range(0, batch, chunk):
            stop = min(batch, start + chunk)
            images = image[start:stop]
            with (
                forward(
                    images, (stop - start, image.shape[1], *lengths), axes, threads, offset
                ) as image_spectrum,
                inverse((stop - start, filter_count, *lengths), axes, dtype, threads) as back,
            ):
                _channel_sums(
                    image_spectrum.reshape(stop - start, image.shape[1], -1),
                    filter_spectrum,
                    problem.groups,
                    back.input.reshape(stop - start, filter_count, -1),
                )
                planes = back.execute()
                result[start:stop] = planes[(Ellipsis, *picks)]
    return result
