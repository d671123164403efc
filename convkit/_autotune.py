"""Autotuning for "auto": time the candidates once per problem shape, remember the winner.

The cost model ranks backends without running them; it is calibrated on one
machine and can be wrong on another.  With autotuning on, the first problem of
each shape runs every candidate whose estimate is within a factor
``SPREAD`` of the best one twice (the first run pays for compilation and FFT
planning, the second is timed) and the fastest is used from then on.
"""

from __future__ import annotations

import math
import threading
import time

from convkit._backend import Backend
from convkit._config import get_memory_limit, get_num_threads
from convkit._environment import read_flag
from convkit._problems import ConvolveProblem, Problem

__all__ = ["fastest", "get_autotune", "problem_signature", "set_autotune"]

# Candidates whose estimate is more than this many times the best one are not timed.
SPREAD = 10.0

_enabled: bool | None = None
_choices: dict[tuple, str] = {}
_lock = threading.Lock()


def set_autotune(enabled: bool | None) -> None:
    """Turn autotuning of "auto" on or off for this process (and forget past choices).

    Parameters
    ----------
    enabled : bool or None
        True: the first call of each problem shape that "auto" serves times the
        plausible backends and keeps the fastest.  False: rank by cost model
        only.  None: follow the environment variable ``CONVKIT_AUTOTUNE``
        (``1``, ``true``, ``yes``, ``on`` or ``0``, ``false``, ``no``,
        ``off``; any other value is a ValueError), off when unset.

    Examples
    --------
    >>> import convkit
    >>> convkit.set_autotune(True)
    >>> convkit.get_autotune()
    True
    >>> convkit.set_autotune(None)
    """
    global _enabled
    if enabled is not None and not isinstance(enabled, bool):
        raise TypeError(f"set_autotune: enabled must be True, False or None, got {enabled!r}")
    with _lock:
        _enabled = enabled
        _choices.clear()


def get_autotune() -> bool:
    """Whether "auto" times its candidates (see :func:`set_autotune`)."""
    if _enabled is not None:
        return _enabled
    return bool(read_flag("CONVKIT_AUTOTUNE"))


def problem_signature(problem: Problem) -> tuple:
    """What makes two problems the same for choosing a backend: shapes, dtype, geometry, threads."""
    common = (problem.operation, problem.dtype.str, problem.on_device, get_num_threads(),
              tuple(tuple(operand.shape) for operand in problem.operands))
    if isinstance(problem, ConvolveProblem):
        return common + (problem.axes, problem.output_start, problem.output_shape)
    return common + (problem.padding, problem.stride, problem.dilation, problem.groups)


def _seconds(backend: Backend, problem: Problem) -> float:
    run = getattr(backend, problem.operation)
    run(problem)  # compiles, plans, fills caches
    start = time.perf_counter()
    run(problem)
    return time.perf_counter() - start


def fastest(problem: Problem, ranked: list[tuple[float, Backend]]) -> Backend:
    """The fastest of ``ranked`` (estimate, backend) pairs on ``problem``, timed once per shape."""
    names = tuple(backend.name for _, backend in ranked)
    key = (problem_signature(problem), names)
    with _lock:
        chosen = _choices.get(key)
    by_name = {backend.name: backend for _, backend in ranked}
    if chosen in by_name:
        return by_name[chosen]
    best_estimate = min(estimate for estimate, _ in ranked)
    limit = get_memory_limit()
    timings = []
    for estimate, backend in ranked:
        if math.isfinite(best_estimate) and estimate > SPREAD * best_estimate:
            continue
        try:
            if backend.working_set_bytes(problem) > limit:
                continue
            timings.append((_seconds(backend, problem), backend.name))
        except Exception:  # noqa: BLE001, S112 - a candidate that fails is simply not chosen
            continue
    chosen = min(timings)[1] if timings else ranked[0][1].name
    with _lock:
        _choices[key] = chosen
    return by_name[chosen]
