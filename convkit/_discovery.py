"""Backend discovery and registration: which backends exist, under which names.

Backends come from the entry-point group ``convkit.backends`` (found and
imported lazily, on the first call that needs them) or from
:func:`register_backend`.  Which one runs a call is decided in
``convkit._selection`` (and, for "auto", in ``convkit._auto``).

What a backend can do comes from what it implements: it offers an operation
only if its class overrides :meth:`Backend.conv` or
:meth:`Backend.convolve_nd`.  A backend whose capabilities declare an
operation it does not implement is refused by :func:`register_backend`, and
an entry point that loads one is listed unavailable with the reason.

A name is never silently taken over.  An entry point whose name belongs to
one of convkit's own distributions is ignored (listed unavailable, with a
logged warning); a name that several other distributions claim is unavailable
until all but one are uninstalled, and none of them is loaded.  Backends
that are not convkit's own receive private copies of the operands.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import warnings
from dataclasses import dataclass

from convkit._adjoint import LoweredGradient, gradient_lowering_applies
from convkit._backend import OPERATIONS, Availability, Backend, Delegating, reported_working_set
from convkit._boundary import RULES, Extended, needs_padding
from convkit._environment import EnvironmentVariableError
from convkit._errors import BackendUnavailableError, UnknownBackendError
from convkit._lowering import Lowered, lowering_for
from convkit._problems import ConvolveProblem, ConvProblem, Problem

__all__ = [
    "AUTO",
    "ENTRY_POINT_GROUP",
    "BackendInfo",
    "contract_violation",
    "list_backends",
    "register_backend",
    "resolve",
    "resolve_backend",
    "supported_operations",
    "unregister_backend",
    "why_cannot_run",
]

ENTRY_POINT_GROUP = "convkit.backends"
AUTO = "auto"
#: The distributions that ship convkit's own backends: their entry points keep
#: their names against any other distribution's, and their backends are trusted
#: with the core's read-only operands (no private copy).
OWN_DISTRIBUTIONS = frozenset({"convkit-core", "convkit-numba", "convkit-fftw", "convkit-cuda"})

_logger = logging.getLogger("convkit")


@dataclass
class _Slot:
    """One backend name: where it comes from, and what loading it gave."""

    name: str
    origin: str
    entry_point: object | None = None
    backend: Backend | None = None
    load_error: str | None = None
    availability: Availability | None = None
    own: bool = False
    registered: bool = False


@dataclass(frozen=True)
class BackendInfo:
    """What :func:`convkit.list_backends` reports about one backend.

    Attributes
    ----------
    name : str
        The name to select it by.
    available : bool
        Whether it can run here.
    reason : str
        Why not, when it is unavailable (a load error, a missing driver).
    version : str
        The backend's version.
    device : str
        What it runs on.
    simulated : bool
        Runs on a simulated device; never chosen by "auto".
    operations : tuple of str
        The operations it offers: those it implements (and declares, when
        its capabilities name them).
    dtypes : tuple of str
        The compute dtypes it accepts.
    threads : int or None
        Threads it would use for the next call.
    origin : str
        The entry point it came from, or ``"register_backend"``.

    Notes
    -----
    An entry point ignored because its name belongs to one of convkit's own
    backends is listed as ``"<name> (<distribution>)"``, unavailable, with
    the reason; that row cannot be selected.
    """

    name: str
    available: bool
    reason: str
    version: str
    device: str
    simulated: bool
    operations: tuple[str, ...]
    dtypes: tuple[str, ...]
    threads: int | None
    origin: str


class _Registry:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._slots: dict[str, _Slot] = {}
        # Entry points ignored because their name is taken: listed, never selectable.
        self._ignored: list[_Slot] = []
        self._discovered = False
        # Bumped whenever the set of backends changes; "auto" caches its choices per value.
        self.generation = 0

    def _discover(self) -> None:
        if self._discovered:
            return
        with self._lock:
            if self._discovered:
                return
            from importlib.metadata import entry_points

            claims: dict[str, list] = {}
            for entry_point in entry_points(group=ENTRY_POINT_GROUP):
                claims.setdefault(entry_point.name.strip().lower(), []).append(entry_point)
            for name, claimants in claims.items():
                if name not in self._slots:
                    self._claim(name, claimants)
            self._discovered = True

    def _claim(self, name: str, claimants: list) -> None:
        """Give ``name`` to one entry point, or to none when the claim is ambiguous."""
        own = [
            entry_point
            for entry_point in claimants
            if _distribution(entry_point) in OWN_DISTRIBUTIONS
        ]
        if len(claimants) == 1 or len(own) == 1:
            winner = own[0] if own else claimants[0]
            self._slots[name] = _Slot(
                name=name, origin=_origin(winner), entry_point=winner, own=bool(own)
            )
            for loser in claimants:
                if loser is winner:
                    continue
                reason = (
                    f"ignored: the name {name!r} belongs to convkit's own backend from "
                    f"{_origin(winner)}; the entry point {loser.name} = {loser.value} of "
                    f"{_distribution(loser)} cannot take it over (rename it)"
                )
                self._ignored.append(
                    _Slot(
                        name=f"{name} ({_distribution(loser)})",
                        origin=_origin(loser),
                        availability=Availability(False, reason),
                    )
                )
                _logger.warning(
                    "convkit: entry point %r of %s (%s) is %s",
                    name,
                    _distribution(loser),
                    loser.value,
                    reason,
                )
            return
        origins = "; ".join(_origin(entry_point) for entry_point in claimants)
        reason = (
            f"the name {name!r} is claimed by several distributions ({origins}); none of "
            "them is loaded: uninstall all but one, or rename their entry points"
        )
        self._slots[name] = _Slot(
            name=name, origin=origins, availability=Availability(False, reason)
        )
        _logger.warning("convkit: backend %r is unavailable: %s", name, reason)

    def is_own(self, backend: Backend) -> bool:
        """Whether ``backend`` is the loaded backend of one of convkit's own entry points."""
        return any(slot.own and slot.backend is backend for slot in list(self._slots.values()))

    def ignored(self) -> list[_Slot]:
        """The entry points left out because their name is taken."""
        self._discover()
        with self._lock:
            return list(self._ignored)

    def names(self) -> list[str]:
        self._discover()
        with self._lock:
            return sorted(self._slots)

    def slot(self, name: str) -> _Slot:
        self._discover()
        key = name.strip().lower()
        with self._lock:
            slot = self._slots.get(key)
        if slot is None:
            installed = ", ".join(self.names()) or "none"
            raise UnknownBackendError(
                f"unknown convkit backend {name!r}; installed backends: {installed} "
                "(or 'auto'). Install a plugin distribution that provides it, or register one "
                "with convkit.register_backend"
            )
        return slot

    def load(self, name: str) -> _Slot:
        """The slot of ``name`` with its backend loaded and availability known.

        A bad ``CONVKIT_*`` variable met by the availability check is raised
        as it is, and nothing is cached: the backend is not at fault.
        """
        slot = self.slot(name)
        if slot.availability is not None:
            return slot
        with self._lock:
            if slot.availability is not None:
                return slot
            if slot.backend is None and slot.load_error is None:
                slot.backend, slot.load_error = _load_entry_point(slot)
            if slot.backend is None:
                slot.availability = Availability(False, f"failed to load: {slot.load_error}")
            else:
                try:
                    slot.availability = slot.backend.availability()
                except EnvironmentVariableError:
                    raise
                except Exception as error:  # noqa: BLE001 - a plugin's failure must never break convkit
                    slot.availability = Availability(
                        False, f"availability check failed: {type(error).__name__}: {error}"
                    )
            return slot

    def register(self, backend: Backend, replace: bool) -> None:
        if not isinstance(backend, Backend):
            raise TypeError(
                f"register_backend needs an instance of convkit.plugin.Backend, got "
                f"{type(backend).__name__}; subclass convkit.plugin.Backend"
            )
        name = _check_name(backend.name)
        violation = contract_violation(backend)
        if violation:
            raise TypeError(f"register_backend: backend {name!r} {violation}")
        self._discover()
        with self._lock:
            if name in self._slots and not replace:
                raise ValueError(
                    f"a backend named {name!r} is already installed ({self._slots[name].origin}); "
                    "pass replace=True to replace it"
                )
            self._slots[name] = _Slot(
                name=name, origin="register_backend", backend=backend, registered=True
            )
            self.generation += 1

    def unregister(self, name: str) -> None:
        key = self.slot(name).name
        with self._lock:
            del self._slots[key]
            self.generation += 1

    def forget_discovery(self) -> None:
        """Drop entry-point slots so that the next use discovers them again."""
        with self._lock:
            self._slots = {k: v for k, v in self._slots.items() if v.registered}
            self._ignored = []
            self._discovered = False
            self.generation += 1


def _distribution(entry_point) -> str:
    """The (normalized) name of the distribution that declares ``entry_point``."""
    distribution = getattr(entry_point, "dist", None)
    if distribution is None:
        return "an unknown distribution"
    return re.sub(r"[-_.]+", "-", distribution.name).lower()


def _origin(entry_point) -> str:
    distribution = getattr(entry_point, "dist", None)
    where = f" ({distribution.name} {distribution.version})" if distribution else ""
    return f"{entry_point.value}{where}"


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a backend needs a non-empty str name, got {name!r}")
    key = name.strip().lower()
    if "," in key or key == AUTO:
        raise ValueError(f"a backend cannot be named {name!r} (no commas, not 'auto')")
    return key


def _load_entry_point(slot: _Slot) -> tuple[Backend | None, str | None]:
    try:
        loaded = slot.entry_point.load()  # type: ignore[union-attr]
        backend = loaded() if callable(loaded) and not isinstance(loaded, Backend) else loaded
        if not isinstance(backend, Backend):
            raise TypeError(
                f"entry point gave {type(backend).__name__}, not a convkit.plugin.Backend "
                "(nor a class or function returning one)"
            )
        if _check_name(backend.name) != slot.name:
            raise ValueError(
                f"entry point is named {slot.name!r} but the backend calls itself {backend.name!r}"
            )
        violation = contract_violation(backend)
        if violation:
            raise TypeError(f"the backend {violation}")
    except Exception as error:  # noqa: BLE001 - a plugin's failure must never break convkit
        message = f"{type(error).__name__}: {error}"
        text = (
            f"convkit: backend plugin {slot.name!r} ({slot.origin}) failed to load and is "
            f"unavailable: {message}"
        )
        _logger.warning("%s", text)
        warnings.warn(text, RuntimeWarning, stacklevel=4)
        return None, message
    return backend, None


_registry = _Registry()


def register_backend(backend: Backend, *, replace: bool = False) -> None:
    """Add a backend object at run time, without packaging it.

    Parameters
    ----------
    backend : convkit.plugin.Backend
        The backend; it is selected by ``backend.name``.
    replace : bool
        Replace an installed backend of the same name instead of failing.

    Examples
    --------
    >>> import convkit
    >>> from convkit.plugin import Backend
    >>> class Nothing(Backend):
    ...     name = "nothing-doc"
    >>> convkit.register_backend(Nothing())
    >>> "nothing-doc" in [info.name for info in convkit.list_backends()]
    True
    >>> convkit.unregister_backend("nothing-doc")
    """
    _registry.register(backend, replace)


def unregister_backend(name: str) -> None:
    """Remove a backend by name (it comes back with the next process).

    Examples
    --------
    >>> import convkit
    >>> convkit.unregister_backend("no-such-backend")
    Traceback (most recent call last):
    ...
    convkit.UnknownBackendError: unknown convkit backend 'no-such-backend'; ...
    """
    _registry.unregister(name)


def list_backends() -> list[BackendInfo]:
    """Describe every installed and registered backend (loading each).

    Examples
    --------
    >>> import convkit
    >>> [info for info in convkit.list_backends() if info.name == "scipy"][0].available
    True
    """
    infos = []
    for name in _registry.names():
        try:
            slot = _registry.load(name)
        except EnvironmentVariableError as error:
            slot = dataclasses.replace(
                _registry.slot(name), availability=Availability(False, str(error))
            )
        availability = slot.availability or Availability(False, "not loaded")
        backend = slot.backend
        capabilities = backend.capabilities if backend else None
        try:
            threads = backend.threads() if backend and availability.available else None
        except Exception:  # noqa: BLE001 - a plugin's failure (or a bad CONVKIT_NUM_THREADS) must never break convkit
            threads = None
        try:
            version = backend.version if backend else ""
        except Exception:  # noqa: BLE001 - a plugin's failure must never break convkit
            version = ""
        infos.append(
            BackendInfo(
                name=name,
                available=availability.available,
                reason=availability.reason,
                version=version,
                device=availability.device if availability.available else "",
                simulated=availability.simulated,
                operations=tuple(sorted(supported_operations(backend))) if backend else (),
                dtypes=tuple(sorted(str(d) for d in capabilities.dtypes)) if capabilities else (),
                threads=threads,
                origin=slot.origin,
            )
        )
    for slot in _registry.ignored():
        assert slot.availability is not None
        infos.append(
            BackendInfo(
                name=slot.name,
                available=False,
                reason=slot.availability.reason,
                version="",
                device="",
                simulated=False,
                operations=(),
                dtypes=(),
                threads=None,
                origin=slot.origin,
            )
        )
    return sorted(infos, key=lambda info: info.name)


def resolve_backend(backend: str | Backend) -> Backend:
    """The backend object for a name, loaded, as the registry holds it.

    Parameters
    ----------
    backend : str or convkit.plugin.Backend
        A backend's name (as :func:`convkit.list_backends` lists it), or a
        backend object, which is returned as it is.

    Returns
    -------
    convkit.plugin.Backend
        The backend itself (operands are not copied for it, and problems are
        not checked against it: use :func:`why_cannot_run` first).

    Raises
    ------
    convkit.UnknownBackendError
        No backend of that name is installed or registered.
    convkit.BackendUnavailableError
        It is installed but cannot run here; the message says why.

    Examples
    --------
    >>> from convkit.plugin import resolve_backend
    >>> resolve_backend("scipy").name
    'scipy'
    """
    if isinstance(backend, Backend):
        return backend
    slot = _registry.load(backend)
    if slot.backend is None or slot.availability is None or not slot.availability.available:
        reason = slot.availability.reason if slot.availability else "not loaded"
        raise BackendUnavailableError(
            f"backend {backend!r} is unavailable: {reason}; convkit.list_backends() lists "
            "every installed backend with the reason any of them cannot run"
        )
    return slot.backend


class _PrivateOperands(Delegating):
    """A backend that is not convkit's own, run on private copies of the operands.

    The core hands backends read-only operands that may be views of the
    caller's arrays; a backend can set the writeable flag back, or write
    through the data pointer.  Copies keep any such write away from the
    caller's arrays (and from the next backend that autotuning times).
    Device operands are handed on unchanged.
    """

    def working_set_bytes(self, problem: Problem) -> int:
        copies = 0 if problem.on_device else sum(operand.nbytes for operand in problem.operands)
        return reported_working_set(self.backend, problem) + copies

    def conv(self, problem: ConvProblem):
        return self.backend.conv(_with_private_operands(problem))

    def convolve_nd(self, problem: ConvolveProblem):
        return self.backend.convolve_nd(_with_private_operands(problem))

    def conv_grad_input(self, problem):
        return self.backend.conv_grad_input(_with_private_operands(problem))

    def conv_grad_filters(self, problem):
        return self.backend.conv_grad_filters(_with_private_operands(problem))

    def __repr__(self) -> str:
        return repr(self.backend)


def _read_only_copy(array):
    copy = array.copy()
    copy.flags.writeable = False
    return copy


def _with_private_operands(problem: Problem) -> Problem:
    if problem.on_device:
        return problem
    first, second = problem.operands
    return problem.with_operands(_read_only_copy(first), _read_only_copy(second), problem.dtype)


def _implements(backend: Backend, operation: str) -> bool:
    method = getattr(backend, operation, None)
    if method is None:
        return False  # an optional operation (a gradient), which Backend does not define
    return getattr(method, "__func__", method) is not getattr(Backend, operation, None)


def supported_operations(backend: Backend) -> frozenset[str]:
    """The operations ``backend`` offers: those it implements, and declares if it declares any."""
    implemented = frozenset(
        operation for operation in OPERATIONS if _implements(backend, operation)
    )
    declared = backend.capabilities.operations
    return implemented if declared is None else implemented & declared


def contract_violation(backend: Backend) -> str | None:
    """Why ``backend`` breaks the plugin contract, or None when it keeps it.

    Its capabilities may name only operations that it implements (overrides),
    and only the boundary rules convkit knows.
    """
    rules = getattr(backend.capabilities, "boundaries", frozenset())
    strange = sorted(map(repr, set(rules) - RULES)) if isinstance(rules, (set, frozenset)) else None
    if strange is None or strange:
        return (
            f"declares capabilities.boundaries={rules!r}; it must be a frozenset of "
            f"{', '.join(map(repr, sorted(RULES)))} (the rules other than zero fill)"
        )
    declared = backend.capabilities.operations
    if declared is None:
        return None
    unknown = sorted(set(declared) - OPERATIONS)
    if unknown:
        return (
            f"declares unknown operations {unknown} in capabilities.operations; the "
            f"operations are {sorted(OPERATIONS)}"
        )
    missing = sorted(operation for operation in declared if not _implements(backend, operation))
    if missing:
        return (
            f"declares {', '.join(missing)} in capabilities.operations but does not "
            f"implement it (override Backend.{missing[0]}, or leave capabilities.operations "
            "at None to offer exactly the operations the class implements)"
        )
    return None


def why_cannot_run(backend: Backend, problem: Problem) -> str | None:
    """Why ``backend`` cannot run ``problem``, or None when it can.

    A backend cannot run an operation it does not offer (see
    :attr:`convkit.BackendInfo.operations`), nor a problem its
    :meth:`~convkit.plugin.Backend.why_not` refuses.  A rank limit is no
    reason: a convolve_nd problem with more convolved axes than the backend
    declares is lowered into lower-rank parts, and the backend is asked about
    those instead.

    Parameters
    ----------
    backend : convkit.plugin.Backend
    problem : convkit.plugin.ConvProblem or convkit.plugin.ConvolveProblem

    Returns
    -------
    str or None
        The reason, readable as it is, or None.

    Examples
    --------
    >>> import numpy as np
    >>> from convkit.plugin import normalize_convolve, resolve_backend, why_cannot_run
    >>> problem = normalize_convolve(np.ones(5), np.ones(3), "full", None)
    >>> why_cannot_run(resolve_backend("scipy"), problem) is None
    True
    """
    offered = supported_operations(backend)
    if gradient_lowering_applies(offered, problem):
        return LoweredGradient(backend).why_not(problem)
    if problem.operation not in offered:
        what = ", ".join(sorted(offered)) or "no operation"
        return f"does not implement {problem.operation} (it implements {what})"
    return _runner(backend, problem).why_not(problem)


def _runner(backend: Backend, problem: Problem) -> Backend:
    """``backend`` as it runs ``problem``: lowered to its rank limit, on a padded copy of the
    signal when it does not extend the boundary itself (or when it is lowered: the parts
    are slices of the signal, whose extension must be made first)."""
    rank = lowering_for(backend, problem)
    runner = backend if rank is None else Lowered(backend, rank)
    if needs_padding(backend, problem) or (rank is not None and problem.boundary != "fill"):
        runner = Extended(runner)
    return runner


def resolve(item: str | Backend, problem: Problem) -> tuple[Backend | None, str | None]:
    """The backend for ``item`` if it can run ``problem``, else why not.

    Backends that are not convkit's own come wrapped so that they compute on
    private copies of the operands.
    """
    if isinstance(item, Backend):
        backend = item
        own = _registry.is_own(backend)
        violation = contract_violation(backend)
        if violation:
            return None, f"unavailable: the backend {violation}"
        try:
            availability = backend.availability()
        except Exception as error:  # noqa: BLE001 - a plugin's failure must never break convkit
            return None, f"availability check failed: {error}"
    else:
        slot = _registry.load(item)
        backend, availability, own = slot.backend, slot.availability, slot.own
        assert availability is not None
    if not availability.available or backend is None:
        return None, f"unavailable: {availability.reason}"
    try:
        reason = why_cannot_run(backend, problem)
    except Exception as error:  # noqa: BLE001 - a plugin's failure must never break convkit
        return None, f"its why_not failed: {type(error).__name__}: {error}"
    if reason:
        return None, reason
    runner = backend if own else _PrivateOperands(backend)
    if gradient_lowering_applies(supported_operations(backend), problem):
        return LoweredGradient(runner), None
    return _runner(runner, problem), None
