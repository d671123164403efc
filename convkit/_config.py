"""Process-wide settings: thread count and memory budget.

Both are read at call time, so that ``CONVKIT_NUM_THREADS`` and
``CONVKIT_MEMORY_LIMIT`` set after ``import convkit`` still take effect.
"""

from __future__ import annotations

import contextlib
import operator
import os
import threading
import time
from collections.abc import Iterator

import numpy as np

from convkit._environment import MAX_THREADS, read_memory_limit, read_num_threads

__all__ = [
    "get_memory_limit",
    "get_num_threads",
    "set_memory_limit",
    "set_num_threads",
]

_lock = threading.Lock()
_num_threads: int | None = None
_memory_limit: int | None = None


def _positive_int(value: object, argument: str, maximum: int | None = None) -> int:
    """``value`` as an int from 1 to ``maximum``; NumPy integers count, bools do not."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{argument} must be a positive int, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{argument} must be a positive int, got {value!r}") from None
    if number < 1:
        raise ValueError(f"{argument} must be >= 1, got {number}")
    if maximum is not None and number > maximum:
        raise ValueError(f"{argument} must be at most {maximum}, got {number}")
    return number


def set_num_threads(threads: int | None) -> None:
    """Set how many threads every backend may use.

    Parameters
    ----------
    threads : int or None
        A count from 1 to 32768, or None to go back to
        ``CONVKIT_NUM_THREADS`` or, when that is unset, all the cores this
        process may run on.

    Examples
    --------
    >>> import convkit
    >>> convkit.set_num_threads(1)
    >>> convkit.get_num_threads()
    1
    >>> convkit.set_num_threads(None)
    """
    global _num_threads
    with _lock:
        _num_threads = None if threads is None else _positive_int(threads, "threads", MAX_THREADS)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def get_num_threads() -> int:
    """Return the number of threads backends use for the next call.

    The value set by :func:`set_num_threads`, else ``CONVKIT_NUM_THREADS``,
    else the number of cores this process may run on; inside a task of a
    Dask array computation, else that task's share of the cores.

    Raises
    ------
    ValueError
        ``CONVKIT_NUM_THREADS`` is set to something other than a whole
        number from 1 to 32768 (the message names the variable and value).

    Examples
    --------
    >>> import convkit
    >>> convkit.get_num_threads() >= 1
    True
    """
    explicit = explicit_num_threads()
    if explicit is not None:
        return explicit
    in_task = getattr(_task_budget, "threads", None)
    return _cores() if in_task is None else in_task


def explicit_num_threads() -> int | None:
    """The thread count the user chose (:func:`set_num_threads`, else
    ``CONVKIT_NUM_THREADS``), or None when they chose none."""
    if _num_threads is not None:
        return _num_threads
    return read_num_threads()


# Per thread, not per process: a task of a Dask worker's thread pool runs convkit with the
# share of the cores that its pool leaves it (see convkit._dask.task_threads).
_task_budget = threading.local()


@contextlib.contextmanager
def threads_in_this_thread(threads: int) -> Iterator[None]:
    """Calls made from this thread use ``threads`` threads, unless the user chose a
    count (an explicit choice wins)."""
    previous = getattr(_task_budget, "threads", None)
    _task_budget.threads = threads
    try:
        yield
    finally:
        _task_budget.threads = previous


_MEMINFO_SECONDS = 0.5
_memory_reading: tuple[float, int] = (-1e9, 0)


def _available_memory() -> int:
    """Memory available now, read at most every half second (calls are frequent)."""
    global _memory_reading
    taken, value = _memory_reading
    now = time.monotonic()
    if now - taken > _MEMINFO_SECONDS:
        value = _read_available_memory()
        _memory_reading = (now, value)
    return value


def _read_available_memory() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 2**63 - 1


def set_memory_limit(limit: int | None) -> None:
    """Set the working-memory budget of one call, in bytes.

    A call whose backend estimates a larger working set is refused with
    :class:`convkit.WorkingSetTooLargeError` (or split, by backends that can)
    before anything is allocated.

    Parameters
    ----------
    limit : int or None
        Bytes, or None to go back to ``CONVKIT_MEMORY_LIMIT`` (``8G``,
        ``512M``, ...) or, when that is unset, 80% of the memory available now.

    Examples
    --------
    >>> import convkit
    >>> convkit.set_memory_limit(2**30)
    >>> convkit.get_memory_limit()
    1073741824
    >>> convkit.set_memory_limit(None)
    """
    global _memory_limit
    with _lock:
        _memory_limit = None if limit is None else _positive_int(limit, "limit")


def get_memory_limit() -> int:
    """Return the working-memory budget of one call, in bytes.

    The value set by :func:`set_memory_limit`, else ``CONVKIT_MEMORY_LIMIT``,
    else 80% of the memory available now.

    Raises
    ------
    ValueError
        ``CONVKIT_MEMORY_LIMIT`` is set to something other than a positive,
        finite byte count (the message names the variable and value).

    Examples
    --------
    >>> import convkit
    >>> convkit.get_memory_limit() > 0
    True
    """
    if _memory_limit is not None:
        return _memory_limit
    from_environment = read_memory_limit()
    return int(_available_memory() * 0.8) if from_environment is None else from_environment
