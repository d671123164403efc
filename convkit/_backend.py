"""The plugin contract: what a backend is and what it declares.

A backend subclasses :class:`Backend`, implements :meth:`Backend.conv`
and/or :meth:`Backend.convolve_nd` (what it overrides is what it offers),
and declares the rest of what it can do with a :class:`Capabilities`.  The
operations receive normalized problems
(:class:`convkit.plugin.ConvProblem`, :class:`convkit.plugin.ConvolveProblem`)
and return an array of ``problem.output_shape`` and ``problem.dtype``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from convkit._config import get_num_threads
from convkit._errors import BackendResultError
from convkit._problems import ConvolveProblem, ConvProblem, Problem

__all__ = [
    "OPERATIONS",
    "Availability",
    "Backend",
    "Capabilities",
    "Delegating",
    "reported_working_set",
]

#: The operations a backend may implement (the names of its methods).  The two
#: gradients are optional: a backend that does ``conv`` runs them lowered to it.
OPERATIONS = frozenset({"conv", "convolve_nd", "conv_grad_input", "conv_grad_filters"})

FLOAT_DTYPES = frozenset(np.dtype(name) for name in ("float32", "float64"))
ALL_DTYPES = FLOAT_DTYPES | frozenset(np.dtype(name) for name in ("complex64", "complex128"))


@dataclass(frozen=True)
class Availability:
    """Whether a backend can run here, and if not, why.

    Attributes
    ----------
    available : bool
        True when the backend can compute in this process.
    reason : str
        Why it is unavailable (empty when available).
    device : str
        What it runs on, for people: ``"CPU, 2 threads"``, ``"NVIDIA H100"``.
    simulated : bool
        True for a simulated device (Numba's CUDA simulator): usable when
        chosen by name, never chosen by "auto".
    """

    available: bool
    reason: str = ""
    device: str = "CPU"
    simulated: bool = False


@dataclass(frozen=True)
class Capabilities:
    """What a backend can compute.

    Attributes
    ----------
    operations : frozenset of str or None
        None (the default): the operations the backend's class implements
        (overrides).  A set among ``"conv"`` and ``"convolve_nd"`` offers
        only those; naming one the class does not implement breaks the
        contract, and the backend is refused when it registers or loads.
    dtypes : frozenset of numpy.dtype
        Compute dtypes it accepts (float32, float64, complex64, complex128).
    max_spatial_dims : int or None
        The most convolved (spatial) axes it handles; None for any number.
        A host ``convolve_nd`` problem with more is still offered: the core
        runs it as a sum of problems of this rank (one per index of the
        kernel along the extra axes).  ``conv`` problems and device
        operands beyond the limit are refused.
    groups : bool
        Whether ``conv`` supports ``groups > 1``.
    device_arrays : bool
        Whether it takes GPU arrays (problems with ``on_device``) and returns
        a device array of the same kind.
    boundaries : frozenset of str
        The boundary rules it extends the signal by itself, among ``"wrap"``,
        ``"symm"``, ``"mirror"`` and ``"nearest"`` (default: none).  A problem
        with any other rule reaches the backend on a padded copy of its
        signal, with zero fill, so every backend computes every rule.
    """

    operations: frozenset[str] | None = None
    dtypes: frozenset[np.dtype] = field(default=FLOAT_DTYPES)
    max_spatial_dims: int | None = None
    groups: bool = True
    device_arrays: bool = False
    boundaries: frozenset[str] = frozenset()

    def why_not(self, problem: Problem) -> str | None:
        """Return why these capabilities cannot serve ``problem``, or None."""
        if self.operations is not None and problem.operation not in self.operations:
            return f"does not implement {problem.operation}"
        if problem.dtype not in self.dtypes:
            supported = ", ".join(sorted(str(dtype) for dtype in self.dtypes))
            return f"does not support dtype {problem.dtype} (supports {supported})"
        if self.max_spatial_dims is not None and problem.spatial_dims > self.max_spatial_dims:
            return (
                f"supports at most {self.max_spatial_dims} convolved axes, "
                f"this problem has {problem.spatial_dims}"
            )
        if isinstance(problem, ConvProblem) and problem.groups > 1 and not self.groups:
            return "does not support num_groups > 1"
        if problem.on_device and not self.device_arrays:
            return (
                "does not take device (GPU) arrays; pass NumPy arrays, or use a backend "
                "that declares device_arrays (see convkit.list_backends())"
            )
        return None


class Backend:
    """Base class of every convkit backend.

    Subclasses set :attr:`name`, override the operations they implement
    (:meth:`conv`, :meth:`convolve_nd`: the core offers a backend exactly the
    operations its class overrides) and declare in :attr:`capabilities`
    what else limits them.  Everything else has a sensible default.

    Examples
    --------
    A complete backend that computes ``convolve_nd`` with NumPy alone:

    >>> import numpy as np
    >>> import convkit
    >>> from convkit.plugin import Backend
    >>> class Tiny(Backend):
    ...     name = "tiny-doc"
    ...     def convolve_nd(self, problem):
    ...         (axis,) = problem.axes
    ...         full = np.apply_along_axis(np.convolve, axis, problem.in1, problem.in2.ravel())
    ...         return full[problem.output_slices].astype(problem.dtype)
    >>> convkit.register_backend(Tiny())
    >>> convkit.convolve_nd([1.0, 2.0, 3.0], [0.0, 1.0, 0.5], backend="tiny-doc")
    array([0. , 1. , 2.5, 4. , 1.5])
    >>> convkit.unregister_backend("tiny-doc")
    """

    #: Name users select the backend by; lower case, no commas.
    name: str = ""
    #: What the backend can compute.
    capabilities: Capabilities = Capabilities()
    #: Tie-breaker for "auto" when cost estimates are equal (higher wins).
    priority: int = 0

    @property
    def version(self) -> str:
        """Version of the backend: by default, that of the distribution that ships its module."""
        from importlib import metadata

        package = type(self).__module__.partition(".")[0]
        for distribution in metadata.packages_distributions().get(package, []):
            try:
                return metadata.version(distribution)
            except metadata.PackageNotFoundError:
                continue
        return ""

    def availability(self) -> Availability:
        """Say whether the backend can run here; called once, then cached."""
        return Availability(True)

    def threads(self) -> int | None:
        """Threads the next call would use, or None if not applicable."""
        return get_num_threads()

    def why_not(self, problem: Problem) -> str | None:
        """Return why this backend cannot do ``problem``, or None if it can.

        The default consults :attr:`capabilities`; override it to refuse
        problems by size or layout as well.
        """
        return self.capabilities.why_not(problem)

    def working_set_bytes(self, problem: Problem) -> int:
        """Estimate the peak memory one call needs, in bytes.

        The core refuses a problem whose estimate exceeds
        :func:`convkit.get_memory_limit`, a budget of host memory.  (Before
        that, from shapes alone, it has checked that its own contiguous copies
        of the operands and the output fit.)  The default
        counts the operands and the output once each, and nothing for device
        (GPU) operands; backends with workspaces should say more.
        """
        if problem.on_device:
            return 0
        first, second = problem.operands
        output = math.prod(problem.output_shape) * problem.dtype.itemsize
        return first.nbytes + second.nbytes + output

    def method(self, problem: Problem) -> str:
        """How this backend rounds on ``problem``: ``"direct"`` or ``"fft"``.

        Sums of products (any blocking or order) are ``"direct"``; anything
        that goes through a fast transform, Fourier's or Winograd's (whose
        rounding spreads over neighbouring outputs too), is ``"fft"``.  The conformance
        kit holds each method to its own error bound (see
        ``convkit.testing.error_bound``).
        """
        return "direct"

    def estimate_seconds(self, problem: Problem) -> float | None:
        """Predicted run time, used by "auto" to rank backends; None: unknown."""
        return None

    def conv(self, problem: ConvProblem) -> np.ndarray:
        """Compute a normalized CNN convolution (see ConvProblem)."""
        raise TypeError(f"backend {self.name!r} does not implement conv")

    def convolve_nd(self, problem: ConvolveProblem) -> np.ndarray:
        """Compute a normalized N-d convolution (see ConvolveProblem)."""
        raise TypeError(f"backend {self.name!r} does not implement convolve_nd")

    def __repr__(self) -> str:
        return f"<convkit backend {self.name!r}>"


def reported_working_set(backend: Backend, problem: Problem) -> int:
    """``backend.working_set_bytes(problem)``, checked to be a finite count of bytes.

    A NaN would compare false with any memory limit and slip past the check, so
    anything but a finite number, 0 or more, is a :class:`BackendResultError`.
    """
    needed = backend.working_set_bytes(problem)
    if (
        isinstance(needed, bool)
        or not isinstance(needed, (int, float, np.integer, np.floating))
        or not 0 <= needed < math.inf
    ):
        raise BackendResultError(
            f"backend {backend.name!r} estimated its working set for {problem.operation} as "
            f"{needed!r}; working_set_bytes must return a finite number of bytes, 0 or more"
        )
    return int(needed)


class Delegating(Backend):
    """A backend that the core wraps around another one to change how problems reach it.

    It answers as the wrapped backend does (name, capabilities, priority,
    version, availability, threads and, unless a subclass says otherwise, what
    it says about a problem); subclasses override what they change.
    """

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.name = backend.name
        self.capabilities = backend.capabilities
        self.priority = backend.priority

    @property
    def version(self) -> str:
        return self.backend.version

    def availability(self) -> Availability:
        return self.backend.availability()

    def threads(self) -> int | None:
        return self.backend.threads()

    def why_not(self, problem: Problem) -> str | None:
        return self.backend.why_not(problem)

    def working_set_bytes(self, problem: Problem) -> int:
        return reported_working_set(self.backend, problem)

    def method(self, problem: Problem) -> str:
        return self.backend.method(problem)

    def estimate_seconds(self, problem: Problem) -> float | None:
        return self.backend.estimate_seconds(problem)
