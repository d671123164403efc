"""``convkit.explain``: the backend decision for a call, without running it."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from convkit import _api, _gradients
from convkit._adjoint import LoweredGradient, lowered_problems
from convkit._auto import Candidate, get_autotune, rank
from convkit._backend import Backend
from convkit._boundary import Extended
from convkit._discovery import resolve
from convkit._errors import BackendError
from convkit._gradient_problems import (
    GradientProblem,
    prepare_conv_grad_filters,
    prepare_conv_grad_input,
)
from convkit._lowering import Lowered
from convkit._problems import Problem
from convkit._selection import decide
from convkit._validation import normalize_conv, normalize_convolve

__all__ = ["Explanation", "explain"]

# The functions explain understands, with the spatial rank each checks (None: any).
_FUNCTIONS: dict[str, int | None] = {
    "convolve_nd": None,
    "correlate_nd": None,
    "conv": None,
    "conv1d": 1,
    "conv2d": 2,
    "conv3d": 3,
    "conv_grad_input": None,
    "conv_grad_filters": None,
    "conv_transpose": None,
}
_GRADIENTS = ("conv_grad_input", "conv_grad_filters", "conv_transpose")


def _public(name: str) -> Callable:
    """The public function of that name."""
    return getattr(_gradients if name in _GRADIENTS else _api, name)


@dataclass(frozen=True)
class Explanation:
    """How convkit would run one call.  ``str()`` gives a readable table.

    Attributes
    ----------
    function : str
        The function explained (``"conv2d"``, ``"convolve_nd"``, ...).
    backend : str or None
        The backend that would run it; None when the call would fail, or when
        the core computes the result itself (empty or 0-d inputs).
    rule : str
        The rule that chose it: ``"backend= argument"``,
        ``"convkit.use_backend(...)"``, ``"convkit.set_backend(...)"``,
        ``"CONVKIT_BACKEND=..."``, ``"auto"``, or ``"core"``.
    detail : str
        More about the decision: backends a priority list skipped; for auto,
        whether the choice comes from the estimates, is cached, or would be
        timed (with autotuning on); or the error the call would raise.
    candidates : tuple of Candidate
        Every installed backend, with its estimate in seconds (``None``: it
        gives none) or the reason it cannot run this problem.
    autotune : bool
        Whether autotuning is on.
    """

    function: str
    backend: str | None
    rule: str
    detail: str
    candidates: tuple[Candidate, ...]
    autotune: bool

    def __str__(self) -> str:
        chosen = self.backend or "(none)"
        lines = [f"{self.function}: backend {chosen}, chosen by {self.rule}"]
        if self.detail:
            lines.append(f"  {self.detail}")
        lines.append(f"  autotune: {'on' if self.autotune else 'off'}")
        if self.candidates:
            width = max(len(candidate.name) for candidate in self.candidates)
            lines.append(f"  {'backend':<{width}}  estimate    can run it?")
            for candidate in self.candidates:
                mark = "*" if candidate.name == self.backend else " "
                estimate = (
                    "-"
                    if candidate.estimate_seconds is None
                    else f"{candidate.estimate_seconds:.3g} s"
                )
                verdict = "no: " + candidate.reason if candidate.reason else "yes"
                lines.append(f"{mark} {candidate.name:<{width}}  {estimate:<10}  {verdict}")
        return "\n".join(lines)


def _problem(name: str, arguments: dict) -> Problem | np.ndarray:
    if name in _GRADIENTS:
        return _gradient_problem(name, arguments)
    if name in ("convolve_nd", "correlate_nd"):
        return normalize_convolve(
            arguments["in1"],
            arguments["in2"],
            arguments["mode"],
            arguments["axes"],
            arguments["boundary"],
            arguments["fillvalue"],
            correlate=name == "correlate_nd",
        )
    return normalize_conv(
        arguments["input"],
        arguments["filters"],
        arguments["border_mode"],
        arguments["subsample"],
        arguments["filter_flip"],
        arguments["filter_dilation"],
        arguments["num_groups"],
        spatial_dims=_FUNCTIONS[name],
        function=name,
        boundary=arguments["boundary"],
        fillvalue=arguments["fillvalue"],
    )


def _gradient_problem(name: str, arguments: dict) -> GradientProblem | np.ndarray:
    """The problem a gradient call hands its backend (``conv_transpose`` is an input gradient)."""
    shared = (
        arguments["border_mode"],
        arguments["input_dilation" if name == "conv_transpose" else "subsample"],
        arguments["filter_flip"],
        arguments["filter_dilation"],
        arguments["num_groups"],
        arguments["boundary"],
    )
    if name == "conv_grad_filters":
        operands = (arguments["input"], arguments["output_grad"], arguments["filter_shape"])
        return prepare_conv_grad_filters(*operands, *shared)[0]
    if name == "conv_transpose":
        operands = (arguments["input"], arguments["filters"], arguments["output_shape"])
    else:
        operands = (arguments["output_grad"], arguments["filters"], arguments["input_shape"])
    return prepare_conv_grad_input(*operands, *shared, function=name)[0]


def _missing_data(arguments: dict) -> str:
    policy = arguments.get("nan_policy", "propagate")
    if policy == "interpolate":
        return (
            "nan_policy='interpolate': the backend runs the signal's convolution, and the mask's "
            "where in1 has non-finite samples"
        )
    if policy == "fill":
        return "nan_policy='fill': the backend runs on a copy with the non-finite samples filled"
    return ""


def explain(function: str | Callable, /, *args, **kwargs) -> Explanation:
    """Say which backend a call would run on, and why, without running it.

    Parameters
    ----------
    function : str or callable
        The operation: ``"convolve_nd"``, ``"correlate_nd"``, ``"conv"``,
        ``"conv1d"``, ``"conv2d"``, ``"conv3d"``, ``"conv_grad_input"``,
        ``"conv_grad_filters"``, ``"conv_transpose"``, or the function itself
        (``convkit.conv2d``).
    *args, **kwargs
        The call's arguments, ``backend=`` included, exactly as for the
        function.  They are checked as the call checks them.

    Returns
    -------
    Explanation
        The backend, the rule that chose it, and every installed backend
        with its estimate or why it cannot run the problem; print it for a
        table.  A call that would fail to find a backend is explained, not
        raised: ``backend`` is None and ``detail`` holds the error.  With
        autotuning on, ``detail`` says whether auto's choice is cached or the
        call would time the candidates; nothing is timed here.

    Raises
    ------
    TypeError, ValueError
        ``function`` is not one of the operations, or the arguments are
        invalid (the same errors the call raises).

    Examples
    --------
    >>> import numpy as np, convkit
    >>> x, w = np.ones((1, 1, 8, 8)), np.ones((1, 1, 3, 3))
    >>> decision = convkit.explain("conv2d", x, w, border_mode="half", backend="scipy")
    >>> decision.backend, decision.rule
    ('scipy', 'backend= argument')
    >>> print(decision)  # doctest: +ELLIPSIS
    conv2d: backend scipy, chosen by backend= argument
      autotune: off
      backend ...
    ...
    """
    name = function if isinstance(function, str) else getattr(function, "__name__", None)
    if name not in _FUNCTIONS or (not isinstance(function, str) and function is not _public(name)):
        given = (
            repr(function)
            if isinstance(function, str) or callable(function)
            else f"a {type(function).__name__} (the function comes first: explain(function, ...))"
        )
        raise TypeError(
            f"explain: function must be one of {sorted(_FUNCTIONS)} or the convkit function of "
            f"that name, got {given}"
        )
    try:
        bound = inspect.signature(_public(name)).bind(*args, **kwargs)
    except TypeError as error:
        raise TypeError(f"explain({name!r}, ...): {error}") from None
    bound.apply_defaults()
    arguments = bound.arguments
    problem = _problem(name, arguments)
    autotune = get_autotune()
    if isinstance(problem, np.ndarray):
        return Explanation(
            name,
            None,
            "core",
            "the core computes this result itself (empty or 0-d inputs)",
            (),
            autotune,
        )
    candidates = rank(problem)
    explicit = arguments["backend"]
    if isinstance(explicit, Backend) and explicit.name not in {c.name for c in candidates}:
        runnable, reason = resolve(explicit, problem)
        estimate = runnable.estimate_seconds(problem) if runnable is not None else None
        candidates.append(Candidate(explicit.name, estimate, reason or ""))
    try:
        decision = decide(problem, explicit, dry_run=True)
    except BackendError as error:
        return Explanation(
            name,
            None,
            "no rule (the call fails)",
            f"the call would raise {type(error).__name__}: {error}",
            tuple(candidates),
            autotune,
        )
    detail = "; ".join(
        filter(
            None,
            [
                "skipped " + "; ".join(decision.skipped) if decision.skipped else "",
                decision.auto.how if decision.auto is not None else "",
                _how_it_runs(decision.backend, problem),
                _missing_data(arguments),
            ],
        )
    )
    return Explanation(
        name, decision.backend.name, decision.rule, detail, tuple(candidates), autotune
    )


def _how_it_runs(backend, problem) -> str:
    """What the core does around the backend for ``problem``: a padded copy, a lowering."""
    said = []
    if isinstance(backend, LoweredGradient):
        parts = len(lowered_problems(problem))
        return (
            f"{backend.name} does not implement {problem.operation}: it runs as {parts} forward "
            f"conv problem{'s' if parts > 1 else ''}"
        )
    if problem.operation in ("conv_grad_input", "conv_grad_filters"):
        return f"{backend.name} implements {problem.operation} itself"
    if isinstance(backend, Extended):
        said.append(backend.describe(problem))
        backend = backend.backend
    elif problem.boundary != "fill":
        said.append(
            f"{backend.name} extends boundary={problem.boundary!r} itself (convkit makes no "
            "padded copy; the backend may still choose to pad)"
        )
    if isinstance(backend, Lowered):
        said.append(backend.describe(problem))
    return "; ".join(said)
