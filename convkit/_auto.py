""" "auto": rank the backends that can run a problem, optionally time them, remember the choice.

The cost model ranks backends without running them; it is calibrated on one
machine and can be wrong on another.  With autotuning on, the first problem of
each signature runs every candidate whose estimate is within a factor
``SPREAD`` of the best one twice (the first run pays for compilation and FFT
planning, the second is timed) and the fastest is used from then on.

Every choice auto makes lives in one cache, keyed by the problem's signature.
A choice made from the estimates holds while the set of backends does not
change; a timed choice holds while the backends that could run the problem,
and their versions, are the same.  Timed choices can be written to a file and
read back in another process (:func:`save_autotune`, :func:`load_autotune`,
``CONVKIT_AUTOTUNE_CACHE``), like FFTW's wisdom: the file names the machine,
and a file from another machine, another format version, or one that does
not parse is ignored with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import platform
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from convkit._backend import Backend
from convkit._config import get_memory_limit, get_num_threads
from convkit._discovery import _registry, resolve
from convkit._environment import read_autotune_cache, read_flag
from convkit._problems import ConvolveProblem, Problem

__all__ = [
    "AutoChoice",
    "Candidate",
    "choose",
    "get_autotune",
    "load_autotune",
    "problem_signature",
    "save_autotune",
    "set_autotune",
]

# Candidates whose estimate is more than this many times the best one are not timed.
SPREAD = 10.0
FILE_FORMAT = "convkit-autotune"
FILE_VERSION = 1

_logger = logging.getLogger("convkit")


@dataclass(frozen=True)
class Candidate:
    """One installed backend as auto sees it for one problem.

    Attributes
    ----------
    name : str
        The backend's name.
    estimate_seconds : float or None
        Its predicted run time (None: it gives no estimate, or cannot run).
    reason : str
        Why it cannot run the problem; empty when it can.
    """

    name: str
    estimate_seconds: float | None
    reason: str
    backend: Backend | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class AutoChoice:
    """What auto chose for one problem, how, and among which candidates."""

    backend: Backend | None
    how: str
    candidates: tuple[Candidate, ...]

    def reasons(self) -> list[str]:
        """Why each backend that cannot run the problem cannot."""
        return [
            f"{candidate.name}: {candidate.reason}"
            for candidate in self.candidates
            if candidate.reason
        ]

    def describe(self) -> str:
        """One line for the log: the rule, then each candidate's estimate or reason."""
        parts = []
        for candidate in self.candidates:
            if candidate.reason:
                parts.append(f"{candidate.name}: {candidate.reason}")
            elif candidate.estimate_seconds is None:
                parts.append(f"{candidate.name}: no estimate")
            else:
                parts.append(f"{candidate.name}: {candidate.estimate_seconds:.3g} s")
        return f"auto ({self.how}; " + "; ".join(parts) + ")"


@dataclass
class _Choice:
    name: str
    timed: bool
    # (name, version) of every backend that could run the problem when it was chosen.
    runnable: tuple[tuple[str, str], ...]
    # The registry generation it was made under; None for a choice read from a file.
    generation: int | None
    decision: AutoChoice | None


_enabled: bool | None = None
_lock = threading.Lock()
_cache: dict[tuple, _Choice] = {}
_CACHE_SIZE = 4096
_loaded_directory: str | None = None
_versions: dict[tuple[int, str], str] = {}


def set_autotune(enabled: bool | None) -> None:
    """Turn autotuning of "auto" on or off for this process (and forget past choices).

    Parameters
    ----------
    enabled : bool or None
        True: the first call of each problem signature that "auto" serves
        times the plausible backends and keeps the fastest.  False: rank by
        cost model only (a timed choice already known, from this process or
        a loaded file, is still used).  None: follow the environment variable
        ``CONVKIT_AUTOTUNE`` (``1``, ``true``, ``yes``, ``on`` or ``0``,
        ``false``, ``no``, ``off``; any other value is a ValueError), off when
        unset.  Every call forgets the choices held in memory, including
        those read by :func:`load_autotune`; a ``CONVKIT_AUTOTUNE_CACHE``
        directory is read again on the next use.

    Examples
    --------
    >>> import convkit
    >>> convkit.set_autotune(True)
    >>> convkit.get_autotune()
    True
    >>> convkit.set_autotune(None)
    """
    global _enabled, _loaded_directory
    if enabled is not None and not isinstance(enabled, bool):
        raise TypeError(f"set_autotune: enabled must be True, False or None, got {enabled!r}")
    with _lock:
        _enabled = enabled
        _cache.clear()
        _loaded_directory = None


def get_autotune() -> bool:
    """Whether "auto" times its candidates (see :func:`set_autotune`).

    Examples
    --------
    >>> import convkit
    >>> convkit.get_autotune() in (True, False)
    True
    """
    if _enabled is not None:
        return _enabled
    return bool(read_flag("CONVKIT_AUTOTUNE"))


def problem_signature(problem: Problem) -> tuple:
    """What makes two problems the same for choosing a backend: shapes, dtype, geometry,
    boundary rule, threads."""
    common = (
        problem.operation,
        problem.dtype.str,
        problem.on_device,
        problem.boundary,
        get_num_threads(),
        tuple(tuple(operand.shape) for operand in problem.operands),
    )
    if isinstance(problem, ConvolveProblem):
        return common + (problem.axes, problem.output_start, problem.output_shape)
    return common + (problem.padding, problem.stride, problem.dilation, problem.groups)


def rank(problem: Problem) -> list[Candidate]:
    """Every installed backend for ``problem``: those that can run it first, best estimate first."""
    runnable, refused = [], []
    for name in _registry.names():
        backend, reason = resolve(name, problem)
        slot = _registry.slot(name)
        if backend is not None and slot.availability is not None and slot.availability.simulated:
            backend, reason = None, "runs on a simulated device (auto never picks it)"
        if backend is None:
            refused.append(Candidate(name, None, reason or "cannot run it"))
            continue
        try:
            estimate = backend.estimate_seconds(problem)
        except Exception:  # noqa: BLE001 - a plugin's failure must never break convkit
            estimate = None  # ranked last, as a backend that gives no estimate
        runnable.append(
            (
                math.inf if estimate is None else estimate,
                -backend.priority,
                name,
                Candidate(name, estimate, "", backend),
            )
        )
    runnable.sort(key=lambda entry: entry[:3])
    return [entry[3] for entry in runnable] + refused


def _version(candidate: Candidate) -> str:
    key = (_registry.generation, candidate.name)
    version = _versions.get(key)
    if version is None:
        try:
            version = str(candidate.backend.version)  # type: ignore[union-attr]
        except Exception:  # noqa: BLE001 - a plugin's failure must never break convkit
            version = ""
        _versions[key] = version
    return version


def _plausible(runnable: list[Candidate]) -> list[Candidate]:
    """The candidates worth timing: estimate within ``SPREAD`` of the best (or no estimates)."""
    estimates = [math.inf if c.estimate_seconds is None else c.estimate_seconds for c in runnable]
    best = min(estimates)
    if not math.isfinite(best):
        return runnable
    return [c for c, estimate in zip(runnable, estimates) if estimate <= SPREAD * best]


def _seconds(backend: Backend, problem: Problem) -> float:
    run = getattr(backend, problem.operation)
    run(problem)  # compiles, plans, fills caches
    start = time.perf_counter()
    run(problem)
    return time.perf_counter() - start


def _fastest(problem: Problem, runnable: list[Candidate]) -> Candidate:
    limit = get_memory_limit()
    timings = []
    for candidate in _plausible(runnable):
        backend = candidate.backend
        assert backend is not None
        try:
            if backend.working_set_bytes(problem) > limit:
                continue
            seconds = _seconds(backend, problem)
        except Exception:  # noqa: BLE001, S112 - a candidate that fails is simply not chosen
            continue
        timings.append((seconds, candidate.name, candidate))
    if not timings:
        return runnable[0]
    _logger.debug(
        "convkit: autotune timed %s for %s: %s",
        problem.operation,
        problem_signature(problem),
        ", ".join(f"{name} {seconds:.3g} s" for seconds, name, _ in sorted(timings)),
    )
    return min(timings, key=lambda timing: timing[:2])[2]


def choose(problem: Problem, *, dry_run: bool = False) -> AutoChoice:
    """Auto's choice for ``problem``, from the cache, the estimates or timing.

    With ``dry_run``, nothing is timed or remembered: a choice that would be
    timed is reported as such, with the estimates' favourite as the backend.
    """
    autotune = get_autotune()
    signature = problem_signature(problem)
    entry = _cache.get(signature)
    if (
        entry is not None
        and entry.decision is not None
        and entry.generation == _registry.generation
        and (entry.timed or not autotune)
    ):
        return entry.decision
    _read_directory()
    entry = _cache.get(signature)
    candidates = rank(problem)
    runnable = [candidate for candidate in candidates if candidate.backend is not None]
    if not runnable:
        return AutoChoice(None, "no backend can run it", tuple(candidates))
    if (
        entry is not None
        and entry.timed
        and entry.name in {c.name for c in runnable}
        and entry.runnable == tuple((c.name, _version(c)) for c in runnable)
    ):
        chosen = next(c for c in runnable if c.name == entry.name)
        decision = AutoChoice(chosen.backend, "cached: timed earlier", tuple(candidates))
        if not dry_run:
            _remember(
                signature, _Choice(entry.name, True, entry.runnable, _registry.generation, decision)
            )
        return decision
    if autotune and len(runnable) > 1:
        if dry_run:
            names = ", ".join(c.name for c in _plausible(runnable))
            return AutoChoice(
                runnable[0].backend, f"not cached: the call would time {names}", tuple(candidates)
            )
        chosen = _fastest(problem, runnable)
        timed = True
    else:
        chosen, timed = runnable[0], False
    if dry_run:
        return AutoChoice(chosen.backend, "best estimate", tuple(candidates))
    how = "timed now" if timed else "best estimate"
    cached = "cached: timed earlier" if timed else "cached: best estimate"
    key = tuple((c.name, _version(c)) for c in runnable) if timed else ()
    _remember(
        signature,
        _Choice(
            chosen.name,
            timed,
            key,
            _registry.generation,
            AutoChoice(chosen.backend, cached, tuple(candidates)),
        ),
    )
    if timed:
        _write_directory()
    return AutoChoice(chosen.backend, how, tuple(candidates))


def _remember(signature: tuple, choice: _Choice) -> None:
    with _lock:
        if len(_cache) >= _CACHE_SIZE:
            _cache.clear()
        _cache[signature] = choice


# Persistence.


def _processor() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor()


def _machine() -> dict[str, object]:
    """What a timing depends on besides the backends: architecture, system, processor, cores."""
    return {
        "machine": platform.machine(),
        "system": platform.system(),
        "processor": _processor(),
        "cpus": os.cpu_count() or 0,
    }


def _to_json(value: object) -> object:
    if isinstance(value, tuple):
        return [_to_json(item) for item in value]
    return value


def _frozen(value: object) -> object:
    """A JSON value back as the hashable tuple it was written from."""
    if isinstance(value, list):
        return tuple(_frozen(item) for item in value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"unexpected {type(value).__name__} in a signature")


def _timed_choices() -> list[dict[str, object]]:
    with _lock:
        items = list(_cache.items())
    return [
        {
            "signature": _to_json(signature),
            "runnable": [list(pair) for pair in choice.runnable],
            "chosen": choice.name,
        }
        for signature, choice in items
        if choice.timed
    ]


def _write(path: Path, choices: list[dict[str, object]]) -> None:
    document = {
        "format": FILE_FORMAT,
        "version": FILE_VERSION,
        "machine": _machine(),
        "choices": choices,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # A reader never sees a half-written file: write aside, then rename over.
    handle, temporary = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(document, file)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _parse(path: Path) -> list[tuple[tuple, _Choice]]:
    """The choices in ``path`` as (signature, choice) pairs; ValueError says why a file is unusable."""
    if not path.is_file():
        # A FIFO or device would block the read for ever.
        raise ValueError("it is not a regular file")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise ValueError(f"it is not a convkit autotune file ({error})") from None
    if not isinstance(document, dict) or document.get("format") != FILE_FORMAT:
        raise ValueError("it is not a convkit autotune file")
    if document.get("version") != FILE_VERSION:
        raise ValueError(
            f"it has format version {document.get('version')!r}; this convkit "
            f"reads version {FILE_VERSION}"
        )
    if document.get("machine") != _machine():
        raise ValueError(
            f"it was tuned on another machine ({document.get('machine')!r}; this "
            f"one is {_machine()!r})"
        )
    choices = document.get("choices")
    if not isinstance(choices, list):
        raise ValueError("its 'choices' is not a list")
    parsed = []
    for item in choices:
        try:
            signature = _frozen(item["signature"])
            runnable = tuple((str(name), str(version)) for name, version in item["runnable"])
            chosen = item["chosen"]
        except (KeyError, TypeError, ValueError, RecursionError) as error:
            raise ValueError(
                f"a choice in it is malformed ({type(error).__name__}: {error})"
            ) from None
        if (
            not isinstance(signature, tuple)
            or not isinstance(chosen, str)
            or chosen not in {name for name, _ in runnable}
        ):
            raise ValueError(f"a choice in it is malformed: {item!r}")
        parsed.append((signature, _Choice(chosen, True, runnable, None, None)))
    return parsed


def _read(path: Path) -> int:
    try:
        parsed = _parse(path)
    except (OSError, ValueError) as error:
        warnings.warn(
            f"convkit: ignoring the autotune file {str(path)!r}: {error}",
            RuntimeWarning,
            stacklevel=3,
        )
        return 0
    with _lock:
        for signature, choice in parsed:
            current = _cache.get(signature)
            if current is None or not current.timed:
                _cache[signature] = choice
    return len(parsed)


def _directory_file(directory: str) -> Path:
    fingerprint = hashlib.sha256(json.dumps(_machine(), sort_keys=True).encode()).hexdigest()[:16]
    return Path(directory) / f"autotune-v{FILE_VERSION}-{fingerprint}.json"


def _read_directory() -> None:
    global _loaded_directory
    directory = read_autotune_cache()
    if directory is None or directory == _loaded_directory:
        return
    _loaded_directory = directory
    path = _directory_file(directory)
    if path.exists():
        _read(path)


def _write_directory() -> None:
    directory = read_autotune_cache()
    if directory is None:
        return
    try:
        _write(_directory_file(directory), _timed_choices())
    except OSError as error:
        warnings.warn(
            f"convkit: could not write the autotune cache in {directory!r}: {error}",
            RuntimeWarning,
            stacklevel=4,
        )


def save_autotune(path: str | os.PathLike[str]) -> int:
    """Write the choices autotuning has timed to a file, for :func:`load_autotune`.

    Parameters
    ----------
    path : str or path-like
        The file to write (replaced whole; its folder is created).

    Returns
    -------
    int
        How many choices were written.

    Notes
    -----
    The file records this machine (architecture, system, processor, core
    count) and, per choice, the problem signature and the backends that could
    run it with their versions.  A choice is used again only where all of
    these match.  Setting ``CONVKIT_AUTOTUNE_CACHE`` to a directory does the
    same automatically, after each timing.

    Examples
    --------
    >>> import os, tempfile, convkit
    >>> path = os.path.join(tempfile.mkdtemp(), "tuned.json")
    >>> convkit.save_autotune(path) >= 0
    True
    >>> convkit.load_autotune(path) >= 0
    True
    """
    choices = _timed_choices()
    _write(Path(path), choices)
    return len(choices)


def load_autotune(path: str | os.PathLike[str]) -> int:
    """Read choices written by :func:`save_autotune`, so that they are not timed again.

    A file that does not parse, was written on another machine or by another
    format version is ignored with a ``RuntimeWarning``: nothing is loaded from
    it, and auto decides as if it were absent.

    Parameters
    ----------
    path : str or path-like
        The file to read.

    Returns
    -------
    int
        How many choices were loaded (0 for an ignored file).

    Raises
    ------
    FileNotFoundError
        There is no file at ``path``.

    Notes
    -----
    :func:`set_autotune` forgets every choice held in memory: load after it.

    Examples
    --------
    See :func:`save_autotune`.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"load_autotune: no file at {str(path)!r}; write one with convkit.save_autotune(path)"
        )
    return _read(path)
