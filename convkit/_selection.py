"""Which backend runs a call: the precedence of the user's choices.

First that applies: ``backend=`` on the call (strict: no fallback); the
innermost :func:`use_backend`, then :func:`set_backend`; the environment
variable ``CONVKIT_BACKEND``, read at call time; "auto" (``convkit._auto``).
Forms 2 and 3 take a priority list: its first backend that can run the
problem runs it, and "auto" may appear in it.

Each decision is logged at DEBUG on ``logging.getLogger("convkit")``: the
backend, the rule that chose it and, for auto, the candidates' estimates.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from convkit._auto import AutoChoice, choose
from convkit._backend import Backend
from convkit._discovery import AUTO, _registry, resolve
from convkit._environment import read_backend_choice
from convkit._errors import BackendUnavailableError, UnknownBackendError
from convkit._problems import Problem

__all__ = [
    "Decision",
    "current_choice",
    "decide",
    "select_backend",
    "set_backend",
    "use_backend",
]

Choice = str | Backend | Sequence[str | Backend]

_logger = logging.getLogger("convkit")

_context_choice: contextvars.ContextVar[tuple[str | Backend, ...] | None] = contextvars.ContextVar(
    "convkit_backend_choice", default=None
)
_process_choice: tuple[str | Backend, ...] | None = None


@dataclass(frozen=True)
class Decision:
    """The backend for one problem and why.

    Attributes
    ----------
    backend : Backend
        The backend that runs the problem.
    rule : str
        The rule that chose it: ``"backend= argument"``,
        ``"convkit.use_backend(...)"``, ``"convkit.set_backend(...)"``,
        ``"CONVKIT_BACKEND=..."`` or ``"auto"``.
    skipped : tuple of str
        Backends earlier in a priority list that cannot run the problem, with why.
    auto : AutoChoice or None
        Auto's choice, when auto chose (directly or from a priority list).
    """

    backend: Backend
    rule: str
    skipped: tuple[str, ...] = ()
    auto: AutoChoice | None = None

    def describe(self) -> str:
        """The rule and its details, on one line."""
        if self.rule == "auto" and self.auto is not None:
            return self.auto.describe()
        text = self.rule
        if self.skipped:
            text += " (skipped " + "; ".join(self.skipped) + ")"
        if self.auto is not None:
            text += ", " + self.auto.describe()
        return text


def _describe(item: str | Backend) -> str:
    return item.name if isinstance(item, Backend) else item


def _parse_choice(choice: Choice, where: str) -> tuple[str | Backend, ...]:
    """A name, a comma-separated list, a backend, or a sequence of those."""
    if isinstance(choice, Backend):
        return (choice,)
    if isinstance(choice, str):
        items: list[str | Backend] = [part.strip().lower() for part in choice.split(",")]
    elif isinstance(choice, Sequence):
        items = []
        for item in choice:
            items.extend(_parse_choice(item, where))
    else:
        raise TypeError(
            f"{where}: a backend choice is a name, a comma-separated list of names, a "
            f"convkit.plugin.Backend or a list of those, got {type(choice).__name__}"
        )
    if not items or any(item == "" for item in items):
        raise ValueError(f"{where}: empty backend name in {choice!r}")
    for item in items:
        if isinstance(item, str) and item != AUTO:
            try:
                _registry.slot(item)
            except UnknownBackendError as error:
                raise UnknownBackendError(f"{where}: {error}") from None
    return tuple(items)


def _spelled(items: tuple[str | Backend, ...]) -> str:
    return repr(",".join(_describe(item) for item in items))


@contextlib.contextmanager
def use_backend(choice: Choice) -> Iterator[None]:
    """Use a backend (or a priority list) inside a ``with`` block.

    The choice is context-local: other threads and asyncio tasks don't see
    it.  It beats :func:`set_backend` and ``CONVKIT_BACKEND``, and loses to
    ``backend=`` on a call.

    Parameters
    ----------
    choice : str, Backend or sequence
        A name (``"scipy"``), a comma-separated priority list
        (``"mine,auto"``: the first that can run the problem; ``"auto"`` may
        appear), a backend object, or a list of those.

    Examples
    --------
    >>> import convkit
    >>> with convkit.use_backend("scipy"):
    ...     convkit.convolve_nd([1.0, 2.0], [1.0, 1.0])
    array([1., 3., 2.])
    """
    token = _context_choice.set(_parse_choice(choice, "use_backend"))
    try:
        yield
    finally:
        _context_choice.reset(token)


def set_backend(choice: Choice | None) -> None:
    """Choose the backend (or priority list) for the whole process.

    Parameters
    ----------
    choice : str, Backend, sequence or None
        As for :func:`use_backend`; None goes back to ``CONVKIT_BACKEND`` and
        "auto".

    Examples
    --------
    >>> import convkit
    >>> convkit.set_backend("scipy")
    >>> convkit.set_backend(None)
    """
    global _process_choice
    _process_choice = None if choice is None else _parse_choice(choice, "set_backend")


def _from_list(
    items: tuple[str | Backend, ...], problem: Problem, rule: str, dry_run: bool
) -> Decision:
    reasons = []
    for item in items:
        if item == AUTO:
            auto = choose(problem, dry_run=dry_run)
            if auto.backend is not None:
                return Decision(auto.backend, rule, tuple(reasons), auto)
            reasons.append("auto: no backend can do it (" + "; ".join(auto.reasons()) + ")")
            continue
        backend, reason = resolve(item, problem)
        if backend is not None:
            return Decision(backend, rule, tuple(reasons))
        reasons.append(f"{_describe(item)}: {reason}")
    raise BackendUnavailableError(
        f"no backend from {rule} can do this {problem.operation} problem: " + "; ".join(reasons)
    )


def _explicit(problem: Problem, explicit: str | Backend, dry_run: bool) -> Decision:
    if isinstance(explicit, str) and explicit.strip().lower() == AUTO:
        return _from_list((AUTO,), problem, "backend='auto'", dry_run)
    if not isinstance(explicit, (str, Backend)):
        raise TypeError(
            f"backend must be a backend name or a convkit.plugin.Backend, got "
            f"{type(explicit).__name__}"
        )
    if isinstance(explicit, str) and "," in explicit:
        raise ValueError(
            f"backend={explicit!r}: backend= takes one name (it is strict); use "
            "convkit.use_backend or CONVKIT_BACKEND for a priority list"
        )
    if isinstance(explicit, str):
        _registry.slot(explicit)
    item = explicit if isinstance(explicit, Backend) else explicit.strip().lower()
    backend, reason = resolve(item, problem)
    if backend is None:
        raise BackendUnavailableError(
            f"backend {_describe(explicit)!r} cannot run this {problem.operation} problem: {reason}"
        )
    return Decision(backend, "backend= argument")


def decide(problem: Problem, explicit: str | Backend | None, *, dry_run: bool = False) -> Decision:
    """The backend that runs ``problem``, and the rule that chose it.

    With ``dry_run``, auto neither times nor remembers anything (for
    :func:`convkit.explain`).
    """
    if explicit is not None:
        return _explicit(problem, explicit, dry_run)
    choice = _context_choice.get()
    if choice is not None:
        return _from_list(choice, problem, f"convkit.use_backend({_spelled(choice)})", dry_run)
    if _process_choice is not None:
        return _from_list(
            _process_choice, problem, f"convkit.set_backend({_spelled(_process_choice)})", dry_run
        )
    environment = read_backend_choice()
    if environment is not None:
        rule = f"CONVKIT_BACKEND={environment!r}"
        return _from_list(
            _parse_choice(environment, f"environment variable {rule}"), problem, rule, dry_run
        )
    return _from_list((AUTO,), problem, "auto", dry_run)


def select_backend(problem: Problem, explicit: str | Backend | None) -> Backend:
    """The backend that runs ``problem``; the decision is logged at DEBUG."""
    decision = decide(problem, explicit)
    if _logger.isEnabledFor(logging.DEBUG):
        _logger.debug(
            "convkit: %s runs on %r, chosen by %s",
            problem.operation,
            decision.backend.name,
            decision.describe(),
        )
    return decision.backend


def current_choice(explicit: str | Backend | None) -> tuple[tuple[str | Backend, ...], bool]:
    """The choice a call made now would follow, frozen: ``(items, strict)``.

    ``strict`` is True for ``backend=`` (one backend, no fallback); otherwise
    ``items`` is the priority list in force (:func:`use_backend`,
    :func:`set_backend`, ``CONVKIT_BACKEND``, else ``("auto",)``), to be
    replayed with :func:`use_backend` where the work runs: in another
    thread or process, which sees neither this context nor this process's
    settings.  Names are checked now, so that an unknown one fails here.
    """
    if explicit is not None:
        if isinstance(explicit, str):
            if "," in explicit:
                raise ValueError(
                    f"backend={explicit!r}: backend= takes one name (it is strict); use "
                    "convkit.use_backend or CONVKIT_BACKEND for a priority list"
                )
            name = explicit.strip().lower()
            if name != AUTO:
                _registry.slot(name)
            return (name,), name != AUTO
        if not isinstance(explicit, Backend):
            raise TypeError(
                f"backend must be a backend name or a convkit.plugin.Backend, got "
                f"{type(explicit).__name__}"
            )
        return (explicit,), True
    choice = _context_choice.get()
    if choice is not None:
        return choice, False
    if _process_choice is not None:
        return _process_choice, False
    environment = read_backend_choice()
    if environment is not None:
        rule = f"CONVKIT_BACKEND={environment!r}"
        return _parse_choice(environment, f"environment variable {rule}"), False
    return (AUTO,), False
