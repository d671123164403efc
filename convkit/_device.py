"""Arrays that live on a GPU: recognize them and check them without touching their data.

A device array is an object exposing ``__cuda_array_interface__`` (CuPy,
PyTorch CUDA tensors, Numba device arrays) or a Numba device array (which
the CUDA simulator provides without that interface).  The core validates
device operands through zero-memory host stand-ins of the same shape and
dtype, and hands them on unchanged to a backend that declares it accepts
device arrays (``Capabilities.device_arrays``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["describe", "is_dask_array", "is_device_array", "stand_in"]


def is_device_array(value: object) -> bool:
    """True for GPU arrays: ``__cuda_array_interface__`` or Numba's device-array API."""
    if isinstance(value, np.ndarray):
        return False
    if hasattr(value, "__cuda_array_interface__"):
        return True
    return all(
        hasattr(value, name) for name in ("copy_to_host", "shape", "dtype", "is_c_contiguous")
    )


def is_dask_array(value: object) -> bool:
    """True for a Dask array (any object with Dask's collection and array protocols).

    Recognized by duck typing, so that ``import convkit`` imports no Dask; its
    data lives in a graph, and is never read by the core either.
    """
    return (
        not isinstance(value, np.ndarray)
        and hasattr(value, "__dask_graph__")
        and hasattr(value, "chunks")
        and hasattr(value, "shape")
        and hasattr(value, "dtype")
    )


def describe(value: object) -> tuple[tuple[int, ...], np.dtype, bool]:
    """``(shape, dtype, C-contiguous)`` of a device array, read from its metadata only."""
    interface = getattr(value, "__cuda_array_interface__", None)
    if interface is not None:
        shape = tuple(int(n) for n in interface["shape"])
        dtype = np.dtype(interface["typestr"])
        strides = interface.get("strides")
        expected = [dtype.itemsize]
        for size in reversed(shape[1:]):
            expected.insert(0, expected[0] * size)
        contiguous = strides is None or tuple(strides) == tuple(expected) or 0 in shape
        return shape, dtype, contiguous
    return tuple(int(n) for n in value.shape), np.dtype(value.dtype), bool(value.is_c_contiguous())


def stand_in(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A read-only host array of ``shape`` and ``dtype`` that takes no memory (zero strides)."""
    return np.broadcast_to(np.zeros((), dtype=dtype), shape)
