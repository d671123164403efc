"""FFTW plans: built once per shape, pooled, safe for concurrent callers.

FFTW's planner is not thread-safe and one plan's buffers cannot serve two
calls at once.  Plans are therefore built under one lock and lent out from a
pool: a caller borrows a plan (with its own aligned input and output
buffers), fills the input, executes, reads the output and gives it back.  Two
threads that need the same shape at the same time get two plans.  The pool
keeps the most recently used plans up to a byte budget for their buffers.

FFTW's threads are OpenMP threads, which do not survive ``fork``: a forked
child that runs a multi-threaded plan waits forever for workers it does not
have.  A child of a process that has built such a plan therefore starts with
an empty pool and fresh locks, and runs every transform on one thread.
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from convkit_fftw._runtime import load_pyfftw

__all__ = [
    "EFFORTS",
    "Plan",
    "borrow",
    "export_wisdom",
    "get_planner_effort",
    "import_wisdom",
    "set_planner_effort",
]

EFFORTS = ("FFTW_ESTIMATE", "FFTW_MEASURE", "FFTW_PATIENT", "FFTW_EXHAUSTIVE")
DEFAULT_EFFORT = "FFTW_MEASURE"
# Buffers of idle plans kept for reuse; beyond this the least recently used go.
POOL_BYTES = 512 * 2**20
# Points of one transform per FFTW thread.  Each thread must get enough work to
# outweigh waking it for every parallel region of the plan: on the project's
# shared 2-core VM a second thread lost below 2^18 points (260^2: 0.25 ms on
# one thread, 0.5-0.8 ms on two), gained at most 1.3x above, and made batches
# of small transforms 30-180x slower when other processes kept the cores busy
# (bench/NOTES.md).
POINTS_PER_THREAD = 2**18

# FFTW's planner may time candidate algorithms for at most this long per new
# plan, then keeps the best so far.  Unbounded "measure" took 8.5 s for one
# batched length-135168 transform here (bench/NOTES.md); a 2112^2 plan needs
# ~0.5 s to find its best algorithm.
DEFAULT_TIME_LIMIT = 1.0
# A shape's first transforms use estimated plans (instant); from this use of the
# same shape on, the configured effort: a one-off call never waits for the
# planner, a repeated shape gets the measured (15-45% faster) plan.
MEASURE_FROM_USE = 3
_USE_COUNTS_SIZE = 8192

_effort: str | None = None
_time_limit: float | None = DEFAULT_TIME_LIMIT
_planner_lock = threading.Lock()
# Whether this process, or the parent it was forked from, has built a multi-threaded plan
# (the OpenMP runtime starts its threads then), and whether it is such a forked child.
_threads_started = False
_single_threaded = False


def _normalize_effort(effort: object, where: str) -> str:
    text = str(effort).strip().upper()
    if not text.startswith("FFTW_"):
        text = "FFTW_" + text
    if text not in EFFORTS:
        choices = ", ".join(name.removeprefix("FFTW_").lower() for name in EFFORTS)
        raise ValueError(f"{where}: planner effort must be one of {choices}, got {effort!r}")
    return text


def set_planner_effort(effort: str | None, time_limit: float | None = DEFAULT_TIME_LIMIT) -> None:
    """Set how hard FFTW plans a new transform shape, for this process.

    Parameters
    ----------
    effort : {"estimate", "measure", "patient", "exhaustive"} or None
        FFTW's planner flag (``"FFTW_MEASURE"`` is accepted too).  ``"estimate"``
        plans instantly and runs slower; ``"measure"`` (the default) times a few
        algorithms.  Efforts above ``"estimate"`` apply from the third transform
        of the same shape on (the first two use estimated plans), so that a
        one-off call never waits for the planner.  None restores the default:
        the environment variable ``CONVKIT_FFTW_EFFORT``, else ``"measure"``.
    time_limit : float or None
        Seconds (wall time) the planner may spend on one new plan before it
        keeps the best found so far (default 1); None for no limit.

    Examples
    --------
    >>> import convkit_fftw
    >>> convkit_fftw.set_planner_effort("estimate")
    >>> convkit_fftw.get_planner_effort()
    'FFTW_ESTIMATE'
    >>> convkit_fftw.set_planner_effort(None)
    """
    global _effort, _time_limit
    if time_limit is not None and not (isinstance(time_limit, (int, float)) and time_limit > 0):
        raise ValueError(
            f"set_planner_effort: time_limit must be a positive number of seconds "
            f"or None, got {time_limit!r}"
        )
    _effort = None if effort is None else _normalize_effort(effort, "set_planner_effort")
    _time_limit = None if time_limit is None else float(time_limit)


def get_planner_effort() -> str:
    """Return the planner flag new plans are built with (see :func:`set_planner_effort`)."""
    if _effort is not None:
        return _effort
    from_environment = os.environ.get("CONVKIT_FFTW_EFFORT")
    if from_environment:
        return _normalize_effort(from_environment, "CONVKIT_FFTW_EFFORT")
    return DEFAULT_EFFORT


def export_wisdom(path: str | os.PathLike[str]) -> None:
    """Save what FFTW's planner has learned in this process to ``path``.

    Load it in a later process with :func:`import_wisdom`, so that planning
    with ``"measure"`` or harder costs nothing for shapes seen before.
    """
    pyfftw = load_pyfftw()
    with _planner_lock:
        double, single, long_double = pyfftw.export_wisdom()
    with open(path, "wb") as file:
        for part in (double, single, long_double):
            file.write(len(part).to_bytes(8, "little"))
            file.write(part)


def import_wisdom(path: str | os.PathLike[str]) -> tuple[bool, bool, bool]:
    """Load wisdom saved by :func:`export_wisdom`.

    Returns
    -------
    tuple of bool
        Whether FFTW accepted the double, single and long-double parts.
    """
    pyfftw = load_pyfftw()
    parts = []
    with open(path, "rb") as file:
        for _ in range(3):
            header = file.read(8)
            if len(header) != 8:
                raise ValueError(
                    f"import_wisdom: {os.fspath(path)!r} is not a convkit-fftw wisdom file"
                )
            parts.append(file.read(int.from_bytes(header, "little")))
    with _planner_lock:
        return tuple(bool(ok) for ok in pyfftw.import_wisdom(tuple(parts)))


@dataclass
class Plan:
    """One FFTW plan and the aligned buffers it transforms."""

    fftw: object
    input: np.ndarray
    output: np.ndarray
    threads: int

    @property
    def nbytes(self) -> int:
        return self.input.nbytes + self.output.nbytes

    def execute(self) -> np.ndarray:
        """Transform ``input`` into ``output`` (unnormalized) and return ``output``."""
        self.fftw.execute()
        return self.output

    def execute_into(self, target: np.ndarray) -> np.ndarray:
        """Transform ``input`` into ``target``, an aligned array like ``output``, and return it.

        Lets the result of the last transform be handed to the caller without
        a copy; the plan goes back to its own buffers afterwards.
        """
        self.fftw.update_arrays(self.input, target)
        try:
            self.fftw.execute()
        finally:
            self.fftw.update_arrays(self.input, self.output)
        return target


# (kind, real-side shape, axes, real dtype, threads, effort)
PlanKey = tuple[str, tuple[int, ...], tuple[int, ...], str, int, str]


def _half(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    last = axes[-1]
    return tuple(size // 2 + 1 if axis == last else size for axis, size in enumerate(shape))


def _build(key: PlanKey) -> Plan:
    global _threads_started
    pyfftw = load_pyfftw()
    kind, shape, axes, real_name, threads, effort = key
    real = np.dtype(real_name)
    complex_dtype = np.result_type(real, np.complex64)
    if kind == "r2c":
        source = pyfftw.empty_aligned(shape, dtype=real)
        target = pyfftw.empty_aligned(_half(shape, axes), dtype=complex_dtype)
        direction = "FFTW_FORWARD"
    elif kind == "c2r":
        source = pyfftw.empty_aligned(_half(shape, axes), dtype=complex_dtype)
        target = pyfftw.empty_aligned(shape, dtype=real)
        direction = "FFTW_BACKWARD"
    else:
        source = pyfftw.empty_aligned(shape, dtype=complex_dtype)
        target = pyfftw.empty_aligned(shape, dtype=complex_dtype)
        direction = "FFTW_FORWARD" if kind == "c2c-forward" else "FFTW_BACKWARD"
    with _planner_lock:
        _threads_started = _threads_started or threads > 1
        fftw = pyfftw.FFTW(
            source,
            target,
            axes=axes,
            direction=direction,
            flags=(effort, "FFTW_DESTROY_INPUT"),
            threads=threads,
            planning_timelimit=_time_limit,
        )
    return Plan(fftw, source, target, threads)


class _Pool:
    def __init__(self, capacity_bytes: int) -> None:
        self._capacity = capacity_bytes
        self._idle: OrderedDict[PlanKey, list[Plan]] = OrderedDict()
        self._idle_bytes = 0
        self._lock = threading.Lock()

    def take(self, key: PlanKey) -> Plan:
        with self._lock:
            plans = self._idle.get(key)
            if plans:
                plan = plans.pop()
                self._idle_bytes -= plan.nbytes
                if not plans:  # no empty lists: eviction pops from the oldest key's list
                    del self._idle[key]
                return plan
        return _build(key)

    def give_back(self, key: PlanKey, plan: Plan) -> None:
        evicted = []
        with self._lock:
            self._idle.setdefault(key, []).append(plan)
            self._idle.move_to_end(key)
            self._idle_bytes += plan.nbytes
            while self._idle_bytes > self._capacity and self._idle:
                oldest_key, plans = next(iter(self._idle.items()))
                old = plans.pop()
                self._idle_bytes -= old.nbytes
                evicted.append(old)
                if not plans:
                    del self._idle[oldest_key]
        if evicted:
            with _planner_lock:  # FFTW frees plans with its (non-thread-safe) planner
                evicted.clear()

    def discard(self, key: PlanKey) -> None:
        """Drop the idle plans of ``key`` (superseded by better ones)."""
        with self._lock:
            dropped = self._idle.pop(key, [])
            self._idle_bytes -= sum(plan.nbytes for plan in dropped)
        with _planner_lock:
            dropped.clear()

    def clear(self) -> None:
        with self._lock:
            dropped = list(self._idle.values())
            self._idle.clear()
            self._idle_bytes = 0
        with _planner_lock:
            dropped.clear()


_pool = _Pool(POOL_BYTES)
_uses: dict[tuple, int] = {}
_uses_lock = threading.Lock()


def plan_threads(shape: tuple[int, ...], axes: tuple[int, ...], threads: int) -> int:
    """FFTW threads for transforms of ``shape`` over ``axes``: at most one per
    ``POINTS_PER_THREAD`` points of one transform (a batch of small transforms
    runs on one thread), and one in a child forked after threads were used."""
    if _single_threaded:
        return 1
    points = math.prod(shape[axis] for axis in axes)
    return max(1, min(threads, points // POINTS_PER_THREAD))


@contextmanager
def borrow(
    kind: str, shape: tuple[int, ...], axes: tuple[int, ...], real_dtype: np.dtype, threads: int
) -> Iterator[Plan]:
    """Lend a plan for one transform; it returns to the pool afterwards.

    Parameters
    ----------
    kind : {"r2c", "c2r", "c2c-forward", "c2c-backward"}
        The transform.
    shape : tuple of int
        The real-side (or complex) array's shape; for ``r2c`` and ``c2r`` the
        complex side is halved along ``axes[-1]``.
    axes : tuple of int
        Transformed axes (non-negative); the others are a batch.
    real_dtype : numpy.dtype
        float32 or float64: the precision.
    threads : int
        The most FFTW threads to use (see :func:`plan_threads`).
    """
    shape_key = (
        kind,
        tuple(shape),
        tuple(axes),
        np.dtype(real_dtype).name,
        plan_threads(shape, axes, threads),
    )
    with _uses_lock:
        if len(_uses) >= _USE_COUNTS_SIZE:
            _uses.clear()
        uses = _uses[shape_key] = _uses.get(shape_key, 0) + 1
    effort = get_planner_effort() if uses >= MEASURE_FROM_USE else "FFTW_ESTIMATE"
    if uses == MEASURE_FROM_USE and effort != "FFTW_ESTIMATE":
        _pool.discard((*shape_key, "FFTW_ESTIMATE"))
    key = (*shape_key, effort)
    plan = _pool.take(key)
    try:
        yield plan
    finally:
        _pool.give_back(key, plan)


def clear_plans() -> None:
    """Drop every pooled plan (and its buffers) and forget how often each shape was used."""
    _pool.clear()
    with _uses_lock:
        _uses.clear()


def _after_fork_in_child() -> None:
    # The parent's locks may have been held by threads that the child does not have, and
    # its multi-threaded plans would wait forever for OpenMP workers that are gone.
    global _planner_lock, _uses_lock, _pool, _single_threaded
    _planner_lock = threading.Lock()
    _uses_lock = threading.Lock()
    _pool = _Pool(POOL_BYTES)
    _uses.clear()
    _single_threaded = _threads_started


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)
