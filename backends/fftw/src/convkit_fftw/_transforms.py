"""Zero-padded forward transforms and inverse transforms on pooled plans."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from convkit_fftw._plans import Plan, borrow

__all__ = ["fill_padded", "forward", "inverse", "real_dtype_of"]


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
