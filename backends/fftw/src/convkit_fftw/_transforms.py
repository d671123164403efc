"""Zero-padded or periodically folded forward transforms, and inverse transforms, on pooled plans."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import product

import numpy as np

from convkit_fftw._plans import Plan, borrow

__all__ = [
    "fill_folded",
    "fill_padded",
    "folded",
    "forward",
    "forward_folded",
    "inverse",
    "real_dtype_of",
]

# Folding adds the operand into the buffer block by block (each block a run of
# its samples that lands without wrapping); beyond this many blocks (a kernel
# many periods long on several axes) one vectorized fold is cheaper.
MAX_FOLD_BLOCKS = 64


def real_dtype_of(dtype: np.dtype) -> np.dtype:
    """float32 for float32/complex64, float64 for float64/complex128."""
    return np.dtype(np.float32 if dtype in (np.float32, np.complex64) else np.float64)


def fill_padded(
    buffer: np.ndarray,
    data: np.ndarray,
    offset: tuple[int, ...] | None = None,
    scale: float | None = None,
) -> None:
    """Write ``data`` (times ``scale``) into ``buffer`` at ``offset`` and zero only the rest."""
    offset = offset or (0,) * data.ndim
    region = tuple(slice(start, start + size) for start, size in zip(offset, data.shape))
    if scale is None:
        buffer[region] = data
    else:
        np.multiply(data, buffer.real.dtype.type(scale), out=buffer[region])
    # Axis by axis, the slabs before and after the data, limited to the data's
    # extent along the axes already done: each padded point is written once.
    for axis, (start, size) in enumerate(zip(offset, data.shape)):
        before = list(region[:axis]) + [slice(0, start)] + [slice(None)] * (buffer.ndim - axis - 1)
        after = (
            list(region[:axis])
            + [slice(start + size, None)]
            + [slice(None)] * (buffer.ndim - axis - 1)
        )
        if start:
            buffer[tuple(before)] = 0
        if start + size < buffer.shape[axis]:
            buffer[tuple(after)] = 0


def _runs(size: int, shift: int, period: int) -> list[tuple[int, int, int]]:
    """``(source start, source stop, target start)`` of the runs of ``range(size)`` that
    land, without wrapping, at ``(j + shift) mod period``."""
    runs, start = [], 0
    while start < size:
        target = (start + shift) % period
        stop = min(size, start + period - target)
        runs.append((start, stop, target))
        start = stop
    return runs


def folded(
    data: np.ndarray, axes: tuple[int, ...], shifts: tuple[int, ...], periods: tuple[int, ...]
) -> np.ndarray:
    """``data`` folded modulo ``periods`` along ``axes``: sample ``j`` is added at
    ``(j + shift) mod period`` (the result has length ``period`` on each of ``axes``)."""
    for axis, shift, period in zip(axes, shifts, periods):
        size = data.shape[axis]
        total = -(-(size + shift) // period) * period
        spread = np.zeros(data.shape[:axis] + (total,) + data.shape[axis + 1 :], dtype=data.dtype)
        spread[(slice(None),) * axis + (slice(shift, shift + size),)] = data
        chunks = data.shape[:axis] + (total // period, period) + data.shape[axis + 1 :]
        data = spread.reshape(chunks).sum(axis=axis)
    return data


def fill_folded(
    buffer: np.ndarray,
    data: np.ndarray,
    axes: tuple[int, ...],
    shifts: tuple[int, ...],
    scale: float | None = None,
) -> None:
    """Write into ``buffer`` the periodic sum of ``data`` (times ``scale``): along each of
    ``axes`` its sample ``j`` lands at ``(j + shift) mod len(buffer)``; the rest is zero."""
    periods = tuple(buffer.shape[axis] for axis in axes)
    shifts = tuple(shift % period for shift, period in zip(shifts, periods))
    per_axis = [[(0, size, 0)] for size in data.shape]
    for axis, shift, period in zip(axes, shifts, periods):
        per_axis[axis] = _runs(data.shape[axis], shift, period)
    if math.prod(len(runs) for runs in per_axis) > MAX_FOLD_BLOCKS:
        data = folded(data, axes, shifts, periods)
        per_axis = [[(0, size, 0)] for size in data.shape]
    if all(len(runs) == 1 for runs in per_axis):
        fill_padded(buffer, data, tuple(runs[0][2] for runs in per_axis), scale)
        return
    buffer[...] = 0
    factor = buffer.real.dtype.type(1.0 if scale is None else scale)
    for blocks in product(*per_axis):
        source = tuple(slice(start, stop) for start, stop, _ in blocks)
        target = tuple(slice(at, at + stop - start) for start, stop, at in blocks)
        buffer[target] += data[source] * factor


@contextmanager
def forward_folded(
    data: np.ndarray,
    shape: tuple[int, ...],
    axes: tuple[int, ...],
    shifts: tuple[int, ...],
    threads: int,
    scale: float | None = None,
) -> Iterator[np.ndarray]:
    """The spectrum over ``axes`` of ``data`` (times ``scale``) folded periodically into
    ``shape`` (see :func:`fill_folded`): a circular convolution's operand, any length."""
    kind = "c2c-forward" if data.dtype.kind == "c" else "r2c"
    with borrow(kind, shape, axes, real_dtype_of(data.dtype), threads) as plan:
        fill_folded(plan.input, data, axes, shifts, scale)
        yield plan.execute()


@contextmanager
def forward(
    data: np.ndarray,
    shape: tuple[int, ...],
    axes: tuple[int, ...],
    threads: int,
    offset: tuple[int, ...] | None = None,
    scale: float | None = None,
) -> Iterator[np.ndarray]:
    """The spectrum over ``axes`` of ``data`` (times ``scale``) zero-padded to ``shape``, at ``offset``.

    Real data gets a real-to-complex transform (halved along ``axes[-1]``).
    The spectrum lives in a pooled plan's buffer: use (or modify) it inside
    the ``with`` block only.
    """
    kind = "c2c-forward" if data.dtype.kind == "c" else "r2c"
    with borrow(kind, shape, axes, real_dtype_of(data.dtype), threads) as plan:
        fill_padded(plan.input, data, offset, scale)
        yield plan.execute()


@contextmanager
def inverse(
    shape: tuple[int, ...], axes: tuple[int, ...], dtype: np.dtype, threads: int
) -> Iterator[Plan]:
    """A plan for the unnormalized inverse transform to ``shape`` (real when ``dtype`` is real).

    Write the spectrum into ``plan.input``, then ``plan.execute()`` returns the
    result (scaled by the number of points).
    """
    kind = "c2c-backward" if dtype.kind == "c" else "c2r"
    with borrow(kind, shape, axes, real_dtype_of(dtype), threads) as plan:
        yield plan
