"""Process-wide settings: thread count and memory budget.

Both are read at call time, so that ``CONVKIT_NUM_THREADS`` and
``CONVKIT_MEMORY_LIMIT`` set after ``import convkit`` still take effect.
"""

from __future__ import annotations

import os
import threading
import time

__all__ = [
    "get_memory_limit",
    "get_num_threads",
    "set_memory_limit",
    "set_num_threads",
]

_lock = threading.Lock()
_num_threads: int | None = None
_memory_limit: int | None = None

_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def _positive_int(value: object, argument: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{argument} must be a positive int, got {value!r}")
    if value < 1:
        raise ValueError(f"{argument} must be >= 1, got {value}")
    return value


def set_num_threads(threads: int | None) -> None:
    """Set how many threads every backend may use.

    Parameters
    ----------
    threads : int or None
        A positive count, or None to go back to ``CONVKIT_NUM_THREADS`` or,
        when that is unset, all the cores this process may run on.

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
        _num_threads = None if threads is None else _positive_int(threads, "threads")


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def get_num_threads() -> int:
    """Return the number of threads backends use for the next call.

    The value set by :func:`set_num_threads`, else ``CONVKIT_NUM_THREADS``,
    else the number of cores this process may run on.

    Examples
    --------
    >>> import convkit
    >>> convkit.get_num_threads() >= 1
    True
    """
    if _num_threads is not None:
        return _num_threads
    text = os.environ.get("CONVKIT_NUM_THREADS", "").strip()
    if text:
        try:
            return _positive_int(int(text), "CONVKIT_NUM_THREADS")
        except ValueError as error:
            raise ValueError(
                f"CONVKIT_NUM_THREADS must be a positive integer, got {text!r}"
            ) from error
    return _cores()


def _parse_bytes(text: str) -> int:
    cleaned = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = cleaned[-1:] if cleaned[-1:] in _UNITS else ""
    number = cleaned[: len(cleaned) - len(unit)]
    try:
        value = float(number)
    except ValueError:
        raise ValueError(
            f"CONVKIT_MEMORY_LIMIT must be a byte count such as 8G or 512M, got {text!r}"
        ) from None
    if value <= 0:
        raise ValueError(f"CONVKIT_MEMORY_LIMIT must be positive, got {text!r}")
    return int(value * _UNITS[unit])


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

    Examples
    --------
    >>> import convkit
    >>> convkit.get_memory_limit() > 0
    True
    """
    if _memory_limit is not None:
        return _memory_limit
    text = os.environ.get("CONVKIT_MEMORY_LIMIT", "").strip()
    if text:
        return _parse_bytes(text)
    return int(_available_memory() * 0.8)
