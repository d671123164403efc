"""Exception types raised by convkit.

Argument errors are plain ``TypeError`` and ``ValueError`` (what callers of
NumPy and SciPy already catch).  The classes here cover what is specific to
convkit: choosing a backend, a backend misbehaving, and problems too large
for the memory budget.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "BackendResultError",
    "BackendUnavailableError",
    "UnknownBackendError",
    "WorkingSetTooLargeError",
]


class BackendError(RuntimeError):
    """Base class for errors about choosing or running a backend."""


class UnknownBackendError(BackendError, ValueError):
    """A backend name that no installed or registered backend has."""


class BackendUnavailableError(BackendError):
    """The chosen backend cannot run here, or cannot do this problem."""


class BackendResultError(BackendError):
    """A backend returned a result of the wrong shape, dtype or type."""


class WorkingSetTooLargeError(MemoryError):
    """The problem needs more working memory than convkit's memory budget."""


for _error in (
    BackendError,
    UnknownBackendError,
    BackendUnavailableError,
    BackendResultError,
    WorkingSetTooLargeError,
):
    _error.__module__ = "convkit"  # shown in tracebacks as part of the public API
