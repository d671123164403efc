"""Numba's threading layer and thread count, safe for concurrent callers.

Numba's default ``workqueue`` layer aborts the process when two Python
threads launch parallel kernels at once.  We ask for a thread-safe layer
(TBB, installed with this package, or OpenMP); if none loads, we fall back to
``workqueue`` and serialize parallel launches with a lock.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TypeVar

import numba

from convkit.plugin import get_num_threads

__all__ = ["layer", "run_parallel"]

Result = TypeVar("Result")

_serial_lock = threading.Lock()
_setup_lock = threading.Lock()
_layer: str | None = None


@numba.njit(parallel=True, cache=True)
def _probe(values):
    total = 0.0
    for i in numba.prange(values.size):
        total += values[i]
    return total


def layer() -> str:
    """The threading layer in use, chosen on first use ("tbb", "omp" or "workqueue")."""
    global _layer
    if _layer is not None:
        return _layer
    with _setup_lock:
        if _layer is None:
            import numpy as np

            if "NUMBA_THREADING_LAYER" not in os.environ:
                numba.config.THREADING_LAYER = "threadsafe"
            try:
                _probe(np.ones(4))
            except ValueError:  # no thread-safe layer could be loaded
                numba.config.THREADING_LAYER = "workqueue"
                _probe(np.ones(4))
            _layer = numba.threading_layer()
    return _layer


def run_parallel(function: Callable[..., Result], *arguments) -> Result:
    """Call a parallel kernel with convkit's thread count, serialized if needed."""
    threads = max(1, min(get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    if layer() == "workqueue":
        with _serial_lock:
            numba.set_num_threads(threads)
            return function(*arguments)
    numba.set_num_threads(threads)  # thread-local in Numba
    return function(*arguments)
