"""The "wrap" boundary as a circular convolution: transforms of the signal's own length.

Along an axis where ``in1`` (length ``n``) wraps, output ``i`` of the full
convolution is ``sum_j in1[(i - j) mod n] * in2[j]``: the length-``n``
circular convolution of ``in1`` with ``in2`` folded modulo ``n``, read at
``i mod n``.  That holds for a kernel of any length (longer than the signal
too), so no padded copy is made and every transform has the signal's length.
Folding the kernel with a shift by the region's start puts the first output
at index 0, so a "same" region is the whole inverse transform.

Whether this pays depends on the factors of ``n``: FFTW transforms lengths
with only small prime factors fast, others many times slower
(:func:`length_penalty`), where the padded route transforms a fast length.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from convkit_fftw._runtime import load_pyfftw
from convkit_fftw._transforms import forward, forward_folded, inverse

__all__ = ["circular_convolve", "circular_shapes", "circular_working_bytes", "length_penalty"]


@functools.lru_cache(maxsize=4096)
def length_penalty(size: int) -> float:
    """How many times slower per point and log2 FFTW transforms ``size`` than a 7-smooth length.

    Fitted to single-precision transforms with estimated plans (what a shape's
    first calls get) on the project's machine (bench/NOTES.md, "fftw: wrap as
    a circular convolution"): 2.5x with a largest prime factor of 11 to 19,
    4-6x for 23-29, 12x for 37, about 24x for 61-67, 25-40x for primes near
    4096 and 120x for one near 10^6: about a fifth of the largest prime
    factor ``p`` for ``p > 7``, between 2.5 and 100.
    """
    rest = size
    for factor in (2, 3, 5, 7):
        while rest % factor == 0:
            rest //= factor
    if rest == 1:
        return 1.0
    largest, factor = 1, 11
    while factor * factor <= rest:
        while rest % factor == 0:
            largest, rest = factor, rest // factor
        factor += 2
    largest = max(largest, rest)
    return min(100.0, max(2.5, largest / 5))


def circular_shapes(
    shape1: tuple[int, ...], shape2: tuple[int, ...], axes: tuple[int, ...]
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Shapes of the signal's, the folded kernel's and the product's transforms (real side)."""
    kernel = tuple(shape1[axis] if axis in axes else size for axis, size in enumerate(shape2))
    out = tuple(max(a, b) for a, b in zip(shape1, kernel))
    return tuple(shape1), kernel, out


def circular_working_bytes(
    shape1: tuple[int, ...],
    shape2: tuple[int, ...],
    axes: tuple[int, ...],
    output_points: int,
    dtype: np.dtype,
) -> int:
    """Peak bytes of :func:`circular_convolve`: three transform buffers with their spectra,
    a vectorized fold of the kernel, and the result."""
    signal, kernel, out = circular_shapes(shape1, shape2, axes)
    complex_size = np.result_type(dtype, np.complex64).itemsize
    real_size = complex_size // 2 if dtype.kind != "c" else complex_size
    points = math.prod(signal) + math.prod(kernel) + math.prod(out)
    return (
        points * (real_size + complex_size)
        + max(math.prod(kernel), math.prod(shape2)) * real_size
        + output_points * real_size
    )


def circular_convolve(
    in1: np.ndarray,
    in2: np.ndarray,
    axes: tuple[int, ...],
    output_start: tuple[int, ...],
    output_shape: tuple[int, ...],
    dtype: np.dtype,
    threads: int,
) -> np.ndarray:
    """``full[output region]`` of in1 ⊛ in2 over ``axes`` with in1 extended periodically."""
    signal, kernel, out = circular_shapes(in1.shape, in2.shape, axes)
    periods = tuple(in1.shape[axis] for axis in axes)
    points = math.prod(periods)
    # Kernel sample j lands at (j - start) mod n: output k of the circular result is then
    # full[start + k], and the region is its first outputs, repeated when longer than n.
    shifts = tuple(-output_start[axis] for axis in axes)
    with (
        forward(in1, signal, axes, threads) as first_spectrum,
        forward_folded(in2, kernel, axes, shifts, threads, scale=1.0 / points) as second_spectrum,
        inverse(out, axes, dtype, threads) as back,
    ):
        np.multiply(first_spectrum, second_spectrum, out=back.input)
        if tuple(output_shape) == out:
            # The region is the whole inverse: hand out a fresh buffer instead of a copy.
            return back.execute_into(load_pyfftw().empty_aligned(out, dtype=back.output.dtype))
        result = back.execute()
        first = tuple(slice(0, min(size, length)) for size, length in zip(output_shape, out))
        repeats = [(0, max(0, size - length)) for size, length in zip(output_shape, out)]
        if any(after for _, after in repeats):
            return np.pad(result[first], repeats, mode="wrap").astype(dtype, copy=False)
        return np.array(result[first], dtype=dtype, copy=True)
