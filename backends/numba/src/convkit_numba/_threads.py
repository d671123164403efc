"""Worker threads and thread counts for the numba backend, safe for concurrent callers.

The kernels are serial and release the GIL (``nogil``); the backend spreads
their tasks over a pool of Python threads, each running the kernel on its
contiguous range.  Numba's own ``parallel=True`` is not used: compiling a
kernel's parallel form takes about twice as long, on every first call
(bench/NOTES.md, "First call"); its default ``workqueue`` threading layer
aborts the process when two Python threads launch at once; and an OpenMP
layer's spinning workers take the cores from the BLAS GEMM that follows.
A pool of plain threads has none of these: concurrent callers share it, and
its idle workers sleep.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from convkit.plugin import get_num_threads

__all__ = ["blas_limits", "on_workers", "run_parallel", "thread_buffer"]

_setup_lock = threading.Lock()
_blas_controller = None
_pools: dict[int, ThreadPoolExecutor] = {}
_buffers = threading.local()

# Below this many multiply-adds a call runs on the calling thread alone: waking
# the pool's workers costs more (seed workload: 25 us on one thread, 35-53 us on
# two; bench/NOTES.md).
SERIAL_WORK = 2**15
# Pieces of a parallel call per thread: more balance the load when a core is shared with
# another process, fewer cost less dispatching (about 10 us each).
PIECES_PER_WORKER = 4


def _pool(workers: int) -> ThreadPoolExecutor:
    with _setup_lock:
        if workers not in _pools:
            _pools[workers] = ThreadPoolExecutor(workers, thread_name_prefix="convkit-numba")
        return _pools[workers]


def run_parallel(
    kernel: Callable[..., None], *arguments, tasks: int, work: int | None = None
) -> None:
    """Run ``kernel(*arguments, begin, end)`` over ``range(tasks)`` on convkit's threads.

    The tasks are cut into ``PIECES_PER_WORKER`` contiguous pieces per
    thread, which the threads (the calling one included) take in turn, so a
    thread slowed by another process on its core takes fewer.  Problems of
    fewer than ``SERIAL_WORK`` multiply-adds (``work``) run on the calling
    thread alone.  The kernel must release the GIL (``nogil=True``).
    """
    workers = max(1, min(get_num_threads(), tasks))
    if work is not None and work < SERIAL_WORK:
        workers = 1
    if workers == 1:
        kernel(*arguments, 0, tasks)
        return
    pieces = min(tasks, workers * PIECES_PER_WORKER)
    bounds = [tasks * k // pieces for k in range(pieces + 1)]
    taken = itertools.count()  # next() on it is atomic under the GIL

    def drain() -> None:
        while (piece := next(taken)) < pieces:
            kernel(*arguments, bounds[piece], bounds[piece + 1])

    pool = _pool(workers)
    others = [pool.submit(drain) for _ in range(workers - 1)]
    try:
        drain()
    finally:
        wait(others)  # they write into the caller's arrays: never return before they finish
    for done in others:
        done.result()


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
    pool = _pool(workers - 1)
    with blas_limits(1):
        # The calling thread takes the first share instead of waiting: one thread fewer to
        # wake, and the caches of its core already hold what the caller just touched.
        others = [pool.submit(work, range(k, items, workers)) for k in range(1, workers)]
        try:
            work(range(0, items, workers))
        finally:
            wait(others)  # they write into the caller's arrays: never return before they finish
        for done in others:
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
