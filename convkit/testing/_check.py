"""Run the equivalence matrix against a backend and report, readably."""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

import convkit
from convkit.plugin import (
    Backend,
    ConvProblem,
    Problem,
    conv_output_length,
    normalize_conv,
    normalize_convolve,
    resolve_backend,
    why_cannot_run,
)
from convkit.testing._bound import error_bound, quotient_bound
from convkit.testing._cases import Case
from convkit.testing._direct import (
    PAD_MODES,
    conv_term_counts,
    direct_conv,
    direct_convolve_nd,
    extended_convolve_nd,
    normalized_convolve_nd,
    reverse_conjugate,
)

__all__ = ["CaseResult", "Report", "check_backend", "check_case", "to_numpy"]


@dataclass(frozen=True)
class CaseResult:
    """How one backend did on one case.

    Attributes
    ----------
    case : Case
    status : {"pass", "fail", "skip"}
        ``"skip"``: the backend declared it cannot do this problem.
    method : str
        The rounding method the backend declared ("direct" or "fft"); for
        ``nan_policy="interpolate"``, ``"numerator/denominator"`` where the
        two convolutions round differently.
    worst_ratio : float
        Largest ``|y - r| / bound`` over the finite outputs (<= 1 passes).
    max_error : float
        Largest ``|y - r|`` over the finite outputs.
    message : str
        Why it failed or was skipped, with where and by how much.
    """

    case: Case
    status: str
    method: str = ""
    worst_ratio: float = 0.0
    max_error: float = 0.0
    message: str = ""


def to_numpy(result: object) -> np.ndarray:
    """A host ndarray from a backend's result (device arrays are copied)."""
    if hasattr(result, "copy_to_host"):
        return result.copy_to_host()
    if hasattr(result, "get") and hasattr(result, "__cuda_array_interface__"):
        return result.get()
    return np.asarray(result)


_OPERATIONS = {
    "conv": convkit.conv,
    "convolve_nd": convkit.convolve_nd,
    "correlate_nd": convkit.correlate_nd,
}


def _signal_keywords(case: Case) -> tuple[dict[str, object], str, bool]:
    """convolve_nd's or correlate_nd's keywords without the missing-data policy, then it."""
    params = case.kwargs
    policy = str(params.pop("nan_policy", "propagate"))
    return params, policy, bool(params.pop("preserve_nan", False))


def _problem(case: Case, first: np.ndarray, second: np.ndarray) -> Problem | np.ndarray:
    """The problem the backend receives: for "fill" and "interpolate", the one on the
    signal with its non-finite samples replaced ("interpolate" also runs
    :func:`_mask_problem`)."""
    if case.operation == "conv":
        return normalize_conv(first, second, **case.kwargs)
    params, policy, _ = _signal_keywords(case)
    if policy != "propagate":
        replacement = params.get("fillvalue", 0) if policy == "fill" else 0
        first = np.where(np.isfinite(first), first, replacement)
    return normalize_convolve(first, second, **params, correlate=case.operation == "correlate_nd")


def _mask_problem(case: Case, first: np.ndarray, second: np.ndarray) -> Problem | np.ndarray:
    """The denominator of "interpolate": the mask of finite samples with the kernel
    (the mask continues with 1 where the signal continues with fillvalue)."""
    params, _, _ = _signal_keywords(case)
    params["fillvalue"] = 1 if params.get("boundary", "fill") == "fill" else 0
    mask = np.isfinite(first).astype(np.finfo(first.dtype).dtype)
    return normalize_convolve(mask, second, **params, correlate=case.operation == "correlate_nd")


def _conv_reference(
    case: Case, first: np.ndarray, second: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """conv's direct definition and its scale on absolute values; with a boundary other
    than zero fill, on the input padded here with numpy.pad by border_mode's amounts."""
    params = case.kwargs
    boundary, fillvalue = params.pop("boundary", "fill"), params.pop("fillvalue", 0)
    problem = normalize_conv(first, second, **params)
    if boundary == "fill" and fillvalue == 0:
        return direct_conv(problem), direct_conv(problem, absolute=True)
    rule = PAD_MODES[boundary]
    options = {"constant_values": fillvalue} if rule == "constant" else {}
    padded = np.pad(first, [(0, 0), (0, 0), *problem.padding], mode=rule, **options)
    reference = normalize_conv(padded, second, **{**params, "border_mode": "valid"})
    return direct_conv(reference), direct_conv(reference, absolute=True)


def _method_bound(
    problem: Problem, expected: np.ndarray, scale: np.ndarray, method: str
) -> np.ndarray:
    """:func:`error_bound` where ``expected`` is finite (1 elsewhere: not used)."""
    finite = np.isfinite(expected)
    scale = np.where(finite & np.isfinite(scale), scale, 0.0)
    bound = error_bound(problem, scale, method, _spread_scale(problem, method))
    return np.where(finite, bound, 1.0)


def _expectation(
    engine: Backend, case: Case, problem: Problem, first: np.ndarray, second: np.ndarray
) -> tuple[np.ndarray, np.ndarray, str]:
    """The direct definition of ``case``, the elementwise bound on the error of the
    backend's result (where the definition is finite) and the method(s) it rounds by.

    The signal is extended here (numpy.pad), correlation is convolution with
    :func:`reverse_conjugate` of in2, nan_policy "fill" replaces the signal's
    non-finite samples, and "interpolate" is :func:`normalized_convolve_nd`,
    held to :func:`quotient_bound` of the bounds of its two convolutions.
    """
    method = engine.method(problem)
    if case.operation == "conv":
        expected, scale = _conv_reference(case, first, second)
        return expected, _method_bound(problem, expected, scale, method), method
    params, policy, preserve_nan = _signal_keywords(case)
    mode, axes = params["mode"], params["axes"]
    boundary, fillvalue = params.get("boundary", "fill"), params.get("fillvalue", 0)
    kernel = reverse_conjugate(second, axes) if case.operation == "correlate_nd" else second
    if policy == "interpolate":
        parts = normalized_convolve_nd(first, kernel, mode, axes, boundary, fillvalue, preserve_nan)
        mask_problem = _mask_problem(case, first, second)
        mask_method = engine.method(mask_problem)
        bound = quotient_bound(
            parts.result,
            parts.denominator,
            _method_bound(problem, parts.numerator, parts.numerator_scale, method),
            _method_bound(mask_problem, parts.denominator, parts.denominator_scale, mask_method),
            problem.dtype,
        )
        bound = np.where(np.isfinite(parts.result), bound, 1.0)
        return parts.result, bound, method if mask_method == method else f"{method}/{mask_method}"
    signal = first
    if policy == "fill":
        signal = np.where(np.isfinite(first), first, fillvalue)
    expected = extended_convolve_nd(signal, kernel, mode, axes, boundary, fillvalue)
    scale = extended_convolve_nd(signal, kernel, mode, axes, boundary, fillvalue, absolute=True)
    return expected, _method_bound(problem, expected, scale, method), method


def _spread_scale(problem: Problem, method: str) -> float | None:
    """``S`` of the FFT bound where it differs from the largest output scale.

    An FFT transforms the operands with non-finite values set to zero and
    computes, for a strided conv, every stride-1 position, and for a
    convolve_nd in "same" or "valid" mode the full result: the rounding of all
    of them spreads over the outputs, so S is the largest scale over that
    computation.
    """
    first, second = problem.operands
    finite = np.isfinite(first).all() and np.isfinite(second).all()
    if isinstance(problem, ConvProblem):
        partial = any(s != 1 for s in problem.stride)
    else:
        partial = tuple(problem.output_shape) != problem.full_shape
    if method != "fft" or (finite and not partial):
        return None
    spread = problem.with_operands(
        np.where(np.isfinite(first), first, 0), np.where(np.isfinite(second), second, 0)
    )
    if isinstance(problem, ConvProblem):
        spread = dataclasses.replace(
            spread,
            stride=(1,) * problem.spatial_dims,
            output_shape=problem.output_shape[:2]
            + tuple(
                conv_output_length(size, k, (before, after), 1, dilation)
                for size, (before, after), dilation, k in zip(
                    problem.input.shape[2:], problem.padding, problem.dilation, problem.kernel_shape
                )
            ),
        )
        scale = direct_conv(spread, absolute=True)
    else:
        spread = dataclasses.replace(
            spread, output_start=(0,) * first.ndim, output_shape=problem.full_shape
        )
        scale = direct_convolve_nd(spread, absolute=True)
    return float(scale.max()) if scale.size else 0.0


def _nonfinite_mismatch(result: np.ndarray, expected: np.ndarray) -> str | None:
    parts = ("real", "imag") if np.iscomplexobj(expected) else ("real",)
    for part in parts:
        got, want = getattr(result, part), getattr(expected, part)
        for label, test in (("NaN", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf)):
            wrong = test(got) != test(want)
            if wrong.any():
                index = tuple(int(i) for i in np.argwhere(wrong)[0])
                return (
                    f"{part} part: {int(wrong.sum())} outputs differ in being {label} "
                    f"(first at {index}: got {got[index]}, expected {want[index]})"
                )
    return None


def _nonzero_without_terms(problem: Problem, result: np.ndarray) -> str | None:
    """Outputs whose sums have no terms must be exactly 0 (convolve_nd has none of them)."""
    if not isinstance(problem, ConvProblem) or problem.boundary != "fill":
        return None  # a boundary rule gives every padded position a sample
    without_terms = np.broadcast_to(conv_term_counts(problem) == 0, result.shape)
    wrong = without_terms & (result != 0)
    if not wrong.any():
        return None
    index = tuple(int(i) for i in np.argwhere(wrong)[0])
    return (
        f"{int(wrong.sum())} of {int(without_terms.sum())} outputs whose sums have no terms "
        f"(the window lies wholly in padding or between dilated taps) are not exactly 0 "
        f"(first at {index}: got {result[index]!r})"
    )


def check_case(backend: str | Backend, case: Case) -> CaseResult:
    """Run one case on ``backend`` through the public API and judge it.

    The result must have the right shape and dtype, non-finite outputs
    exactly where the direct definition has them, exact zeros where its sum
    has no terms, and every finite output within
    :func:`convkit.testing.error_bound` (for ``nan_policy="interpolate"``,
    :func:`convkit.testing.quotient_bound` of the bounds of its two
    convolutions); the inputs must be unchanged.  A case is skipped when the
    backend declares it cannot do a problem the call needs: the case's own,
    or another one the core runs for it (a missing-data policy runs more
    than one, and the core refuses the call with
    :class:`convkit.BackendUnavailableError`).
    """
    if case.operation in ("conv_grad_input", "conv_grad_filters", "conv_transpose"):
        from convkit.testing._gradient_cases import check_gradient_case

        return check_gradient_case(backend, case)
    engine = resolve_backend(backend)
    first, second = case.arrays()
    before = (first.copy(), second.copy())
    problem = _problem(case, first, second)
    if isinstance(problem, np.ndarray):
        return CaseResult(case, "pass", message="trivial: solved by the core")
    reason = why_cannot_run(engine, problem)
    if not reason and dict(case.params).get("nan_policy") == "interpolate":
        reason = why_cannot_run(engine, _mask_problem(case, first, second))
    if reason:
        return CaseResult(case, "skip", message=reason)
    try:
        result = to_numpy(_OPERATIONS[case.operation](first, second, **case.kwargs, backend=engine))
    except convkit.BackendUnavailableError as error:
        return CaseResult(case, "skip", message=f"the call needs a problem it cannot do: {error}")
    except Exception as error:  # noqa: BLE001 - any exception is a finding to report
        return CaseResult(
            case,
            "fail",
            engine.method(problem),
            float("inf"),
            float("inf"),
            f"raised {type(error).__name__}: {error}",
        )
    if not (
        np.array_equal(first, before[0], equal_nan=True)
        and np.array_equal(second, before[1], equal_nan=True)
    ):
        return CaseResult(
            case, "fail", engine.method(problem), float("inf"), float("inf"), "modified its inputs"
        )
    expected, bound, method = _expectation(engine, case, problem, first, second)
    if result.shape != problem.output_shape or result.dtype != problem.dtype:
        return CaseResult(
            case,
            "fail",
            method,
            float("inf"),
            float("inf"),
            f"returned shape {result.shape} dtype {result.dtype}, expected "
            f"{problem.output_shape} {problem.dtype}",
        )
    mismatch = _nonfinite_mismatch(result, expected)
    if mismatch:
        return CaseResult(
            case, "fail", method, float("inf"), float("inf"), f"non-finite outputs: {mismatch}"
        )
    not_zero = _nonzero_without_terms(problem, result)
    if not_zero:
        return CaseResult(case, "fail", method, float("inf"), float("inf"), not_zero)
    finite = np.isfinite(expected)
    if not finite.any():
        return CaseResult(case, "pass", method)
    with np.errstate(invalid="ignore"):
        error = np.where(finite, np.abs(result.astype(expected.dtype) - expected), 0.0)
    ratio = error / bound
    worst = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    worst_ratio, max_error = float(ratio[worst]), float(error.max())
    if worst_ratio <= 1.0:
        return CaseResult(case, "pass", method, worst_ratio, max_error)
    index = tuple(int(i) for i in worst)
    return CaseResult(
        case,
        "fail",
        method,
        worst_ratio,
        max_error,
        f"{int((ratio > 1).sum())} of {ratio.size} outputs outside the {method} error bound; worst at "
        f"{index}: got {result[index]!r}, expected {expected[index]!r}, error {error[index]:.3g} = "
        f"{worst_ratio:.3g} x the bound {bound[index]:.3g}",
    )


@dataclass
class Report:
    """The results of one backend on a list of cases."""

    backend: str
    results: list[CaseResult]
    seconds: float

    @property
    def failures(self) -> list[CaseResult]:
        return [r for r in self.results if r.status == "fail"]

    @property
    def ok(self) -> bool:
        """True when no case failed."""
        return not self.failures

    def counts(self) -> dict[str, int]:
        totals = {"pass": 0, "fail": 0, "skip": 0}
        for result in self.results:
            totals[result.status] += 1
        return totals

    def format(self, worst: int = 5) -> str:
        """A table by operation, dtype and method, then the worst and failing cases."""
        groups: dict[tuple[str, str, str], list[CaseResult]] = defaultdict(list)
        for result in self.results:
            groups[(result.case.operation, result.case.dtype, result.method or "-")].append(result)
        rows = [
            ["operation", "dtype", "method", "cases", "pass", "fail", "skip", "worst error/bound"]
        ]
        for (operation, dtype, method), members in sorted(groups.items()):
            counted = {s: sum(r.status == s for r in members) for s in ("pass", "fail", "skip")}
            ratios = [r.worst_ratio for r in members if r.status != "skip"]
            rows.append(
                [
                    operation,
                    dtype,
                    method,
                    str(len(members)),
                    str(counted["pass"]),
                    str(counted["fail"]),
                    str(counted["skip"]),
                    f"{max(ratios):.3g}" if ratios else "-",
                ]
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = [
            (
                f"convkit conformance: backend {self.backend!r}, {len(self.results)} cases, "
                f"{self.seconds:.1f} s"
            ),
            "",
        ]
        for number, row in enumerate(rows):
            lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
            if number == 0:
                lines.append("  ".join("-" * width for width in widths))
        ranked = sorted(
            (r for r in self.results if r.status == "pass"), key=lambda r: -r.worst_ratio
        )
        if ranked and worst:
            lines += ["", "closest to the bound (of the passing cases):"]
            lines += [
                f"  {r.worst_ratio:8.3g} x bound  max error {r.max_error:.3g}  {r.case.id}"
                for r in ranked[:worst]
            ]
        if self.failures:
            lines += ["", f"FAILED ({len(self.failures)}):"]
            lines += [f"  {r.case.id}\n      {r.message}" for r in self.failures]
        skipped = [r for r in self.results if r.status == "skip"]
        if skipped:
            reasons = sorted({r.message for r in skipped})
            lines += ["", "skipped (the backend declares it cannot do them): " + "; ".join(reasons)]
        totals = self.counts()
        lines += ["", f"{totals['pass']} passed, {totals['fail']} failed, {totals['skip']} skipped"]
        return "\n".join(lines)


def check_backend(
    backend: str | Backend,
    cases: Iterable[Case],
    progress: Callable[[CaseResult], None] | None = None,
) -> Report:
    """Run every case on ``backend`` and collect a :class:`Report`.

    Examples
    --------
    >>> from convkit.testing import check_backend, generate_cases
    >>> report = check_backend("scipy", generate_cases("fast")[:20])
    >>> report.ok, report.counts()["pass"]
    (True, 20)
    """
    engine = resolve_backend(backend)
    start = time.perf_counter()
    results = []
    for case in cases:
        result = check_case(engine, case)
        results.append(result)
        if progress is not None:
            progress(result)
    name = backend if isinstance(backend, str) else engine.name
    return Report(name, results, time.perf_counter() - start)
