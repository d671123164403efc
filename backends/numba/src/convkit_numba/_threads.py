"""Numba's threading layer and thread count, safe for concurrent callers.

Numba's default ``workqueue`` layer aborts the process when two Python
threads launch parallel kernels at once.  We ask for a thread-safe layer
(TBB, installed with this package, or OpenMP); if none loads, we fall back to
``workqueue`` and serialize parallel launches with a lock.

The ``tbb`` wheel puts ``libtbb.so.12`` in ``<prefix>/lib``, where the
dynamic loader does not look, so Numba's TBB layer fails to import and Numba
silently takes OpenMP.  GNU OpenMP's workers then spin after each kernel and
take the cores from the BLAS GEMM that follows (bench/NOTES.md: C3 11.7 ms
with OpenMP, 5.2 with TBB).  We load the library by its path first.
"""

from __future__ import annotations

import ctypes
import math
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numba
import numpy as np

from convkit.plugin import get_num_threads

__all__ = ["blas_limits", "layer", "on_workers", "run_parallel", "thread_buffer"]

Result = TypeVar("Result")

_serial_lock = threading.Lock()
_setup_lock = threading.Lock()
_layer: str | None = None
_blas_controller = None
_pools: dict[int, ThreadPoolExecutor] = {}
_buffers = threading.local()


@numba.njit(parallel=True, cache=True)
def _probe(values):
    total = 0.0
    for i in numba.prange(values.size):
        total += values[i]
    return total


_TBB_NAMES = {"linux": "libtbb.so.12", "darwin": "libtbb.12.dylib"}


def _preload_tbb() -> None:
    """Load the tbb wheel's library globally, so that Numba's TBB layer can link to it."""
    name = _TBB_NAMES.get(sys.platform)
    if name is None:
        return
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix)):
        path = os.path.join(prefix, "lib", name)
        if os.path.exists(path):
            try:
                ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            except OSError:
                continue
            return


def layer() -> str:
    """The threading layer in use, chosen on first use ("tbb", "omp" or "workqueue")."""
    global _layer
    if _layer is not None:
        return _layer
    with _setup_lock:
        if _layer is None:
            _preload_tbb()
            if "NUMBA_THREADING_LAYER" not in os.environ:
                numba.config.THREADING_LAYER = "threadsafe"
            try:
                _probe(np.ones(4))
            except ValueError:  # no thread-safe layer could be loaded
                numba.config.THREADING_LAYER = "workqueue"
                _probe(np.ones(4))
            _layer = numba.threading_layer()
    return _layer


# Below this many multiply-adds a call runs on the calling thread alone: waking
# the pool's workers costs more (seed workload: 25 us on one thread, 35-53 us on
# two; bench/NOTES.md).
SERIAL_WORK = 2**15


def run_parallel(function: Callable[..., Result], *arguments, work: int | None = None) -> Result:
    """Call a parallel kernel with convkit's thread count (one thread for small ``work``).

    Serialized across Python threads when only the workqueue layer loaded.
    """
    threads = max(1, min(get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    if work is not None and work < SERIAL_WORK:
        threads = 1
    if layer() == "workqueue":
        with _serial_lock:
            numba.set_num_threads(threads)
            return function(*arguments)
    numba.set_num_threads(threads)  # thread-local in Numba
    return function(*arguments)


def blas_limits(threads: int):
    """A context that caps the BLAS library's threads at ``threads`` (threadpoolctl)."""
    global _blas_controller
    if _blas_controller is None:
        with _setup_lock:
            if _blas_controller is None:
                from threadpoolctl import ThreadpoolController

                _blas_controller = ThreadpoolController()
    return _blas_controller.limit(limits=threads, user_api="blas")


def _forget_pools() -> None:
    # A forked child inherits the pools but not their threads: work sent there would wait forever.
    global _setup_lock
    _pools.clear()
    _setup_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_pools)


def on_workers(work: Callable[[range], None], items: int) -> None:
    """Split ``items`` (images) over convkit's threads, each running ``work`` on its share.

    Each worker runs a whole pipeline for its items (serial kernels, then a
    single-threaded BLAS call), so no thread pool waits on another between
    the steps.  With one worker, ``work`` runs on the calling thread and the
    BLAS gets every thread instead.
    """
    threads = max(1, get_num_threads())
    workers = min(threads, items)
    if workers <= 1:
        with blas_limits(threads):
            work(range(items))
        return
    with _setup_lock:
        if workers not in _pools:
            _pools[workers] = ThreadPoolExecutor(workers, thread_name_prefix="convkit-numba")
        pool = _pools[workers]
    with blas_limits(1):
        for done in [pool.submit(work, range(k, items, workers)) for k in range(workers)]:
            done.result()


def thread_buffer(purpose: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A scratch array of ``shape`` for the calling thread, reused by later calls for ``purpose``.

    Fresh pages of a new 58 MB buffer cost 13 ms of page faults on every call
    (bench/NOTES.md); one buffer per thread and purpose, grown when needed, is
    kept instead.  Its contents are whatever the last user left.
    """
    dtype = np.dtype(dtype)
    needed = math.prod(shape) * dtype.itemsize
    buffer = getattr(_buffers, purpose, None)
    if buffer is None or buffer.nbytes < needed:
        buffer = np.empty(needed, dtype=np.uint8)
        setattr(_buffers, purpose, buffer)
    return buffer[:needed].view(dtype).reshape(shape)
