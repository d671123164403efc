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
    ConvolveProblem,
    ConvProblem,
    Problem,
    conv_output_length,
    normalize_conv,
    normalize_convolve,
    resolve_backend,
    why_cannot_run,
)
from convkit.testing._bound import error_bound
from convkit.testing._cases import Case
from convkit.testing._direct import conv_term_counts, direct_conv, direct_convolve_nd

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
        The rounding method the backend declared ("direct" or "fft").
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


def _problem(case: Case, first: np.ndarray, second: np.ndarray) -> Problem | np.ndarray:
    params = case.kwargs
    if case.operation == "convolve_nd":
        return normalize_convolve(first, second, **params)
    return normalize_conv(first, second, **params)


# The numpy.pad mode of each boundary: the kit's own table, independent of the core's.
_NUMPY_PAD_MODES = {
    "fill": "constant",
    "wrap": "wrap",
    "symm": "symmetric",
    "symmetric": "symmetric",
    "mirror": "reflect",
    "nearest": "edge",
}


def _reference(
    case: Case, problem: Problem, first: np.ndarray, second: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The direct definition and its scale on absolute values, for ``case``.

    With a boundary other than zero fill the signal is padded here with
    numpy.pad and the zero-boundary problem computed on it: conv's padding
    amounts filled by the rule, then "valid"; convolve_nd's "full" as "valid"
    on the signal padded by ``m - 1`` on both sides of each convolved axis,
    "same" its centred part.
    """
    direct = direct_convolve_nd if isinstance(problem, ConvolveProblem) else direct_conv
    params = case.kwargs
    boundary, fillvalue = params.pop("boundary", "fill"), params.pop("fillvalue", 0)
    if (boundary == "fill" and fillvalue == 0) or params.get("mode") == "valid":
        return direct(problem), direct(problem, absolute=True)
    rule = _NUMPY_PAD_MODES[boundary]
    options = {"constant_values": fillvalue} if rule == "constant" else {}
    if isinstance(problem, ConvProblem):
        padding = normalize_conv(first, second, **params).padding
        padded = np.pad(first, [(0, 0), (0, 0), *padding], mode=rule, **options)
        reference = normalize_conv(padded, second, **{**params, "border_mode": "valid"})
        return direct(reference), direct(reference, absolute=True)
    axes = params["axes"]
    axes = range(first.ndim) if axes is None else np.atleast_1d(axes) % first.ndim
    reaches = [second.shape[axis] - 1 if axis in axes else 0 for axis in range(first.ndim)]
    padded = np.pad(first, [(reach, reach) for reach in reaches], mode=rule, **options)
    reference = normalize_convolve(padded, second, "valid", params["axes"])
    full, scale = direct(reference), direct(reference, absolute=True)
    if params["mode"] == "same":
        centre = tuple(
            slice(reach // 2, reach // 2 + size) if reach else slice(None)
            for reach, size in zip(reaches, first.shape)
        )
        full, scale = full[centre], scale[centre]
    return full, scale


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
    :func:`convkit.testing.error_bound`; the inputs must be unchanged.
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
    if reason:
        return CaseResult(case, "skip", message=reason)
    method = engine.method(problem)
    call = convkit.convolve_nd if case.operation == "convolve_nd" else convkit.conv
    try:
        result = to_numpy(call(first, second, **case.kwargs, backend=engine))
    except Exception as error:  # noqa: BLE001 - any exception is a finding to report
        return CaseResult(
            case,
            "fail",
            method,
            float("inf"),
            float("inf"),
            f"raised {type(error).__name__}: {error}",
        )
    if not (
        np.array_equal(first, before[0], equal_nan=True)
        and np.array_equal(second, before[1], equal_nan=True)
    ):
        return CaseResult(case, "fail", method, float("inf"), float("inf"), "modified its inputs")
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
    expected, scale = _reference(case, problem, first, second)
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
    scale = np.where(np.isfinite(scale), scale, 0.0)
    bound = error_bound(
        problem, np.where(finite, scale, 0.0), method, _spread_scale(problem, method)
    )
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
