"""The conformance kit catches wrong backends, says which case and by how much."""

import itertools

import numpy as np
import pytest

import convkit
from convkit._scipy_backend import ScipyBackend
from convkit.plugin import Capabilities
from convkit.testing import Case, check_backend, check_case, error_bound, generate_cases
from convkit.testing.strategies import cases as case_strategy

FAST = generate_cases("fast")


class Tampered(ScipyBackend):
    """The reference with one deliberate fault."""

    def __init__(self, name, fault):
        self.name, self.fault = name, fault

    def conv(self, problem):
        return self.fault(problem, super().conv(problem))

    def convolve_nd(self, problem):
        return self.fault(problem, super().convolve_nd(problem))


def _off_by_relative(amount):
    def fault(problem, result):
        with np.errstate(invalid="ignore"):
            return (result * (1 + amount)).astype(result.dtype)

    return fault


def _nudge_one_output(problem, result):
    result = result.copy()
    with np.errstate(invalid="ignore"):
        result.flat[result.size // 2] += 1e-3 * (1 + abs(result.flat[result.size // 2]))
    return result


def _fft_spreading_nan(problem, result):
    if any(np.isnan(operand).any() for operand in problem.operands):
        return np.full_like(result, np.nan)
    return result


def _ignore_stride(problem, result):
    if getattr(problem, "stride", None) and max(problem.stride) > 1:
        return np.zeros_like(result)
    return result


def _float64_always(problem, result):
    return result.astype(np.result_type(result.dtype, np.float64))


def _wrong_shape(problem, result):
    return result[..., :-1] if result.shape[-1] > 1 else np.concatenate([result, result], axis=-1)


def _raises(problem, result):
    raise RuntimeError("kernel launch failed")


@pytest.mark.parametrize(
    "fault, expected",
    [
        (_off_by_relative(1e-3), "outside the direct error bound"),
        (_nudge_one_output, "1 of "),
        (_fft_spreading_nan, "non-finite outputs"),
        (_ignore_stride, "outside the"),
        (_float64_always, "returned dtype float64"),
        (_wrong_shape, "returned shape"),
        (_raises, "raised RuntimeError: kernel launch failed"),
    ],
)
def test_broken_backends_are_caught(fault, expected):
    # Every sixth fast case still holds each kind of case many times over (strided, non-finite,
    # every operation), at a sixth of the time.
    report = check_backend(Tampered("broken", fault), FAST[::6])
    assert not report.ok
    messages = " | ".join(r.message for r in report.failures)
    assert expected in messages, messages[:2000]
    text = report.format()
    assert "FAILED" in text and report.failures[0].case.id in text
    assert "failed" in text.splitlines()[-1]


def test_failure_says_where_and_by_how_much():
    case = Case("convolve_nd", ((20,), (3,)), "float64", (("mode", "full"), ("axes", None)))
    result = check_case(Tampered("nudged", _nudge_one_output), case)
    assert result.status == "fail" and result.worst_ratio > 1e6
    assert "worst at (11,)" in result.message and "x the bound" in result.message


def test_a_tiny_relative_error_within_the_bound_passes():
    # One part in 1e-8 is inside the float32 bound (1e-5) and outside float64's (1e-13).
    faulty = Tampered("rounding", _off_by_relative(1e-8))
    float32 = [c for c in FAST if c.dtype == "float32"][:30]
    float64 = [c for c in FAST if c.dtype == "float64" and not c.nonfinite][:30]
    assert check_backend(faulty, float32).ok
    assert not check_backend(faulty, float64).ok


def test_declared_limits_are_skips_not_failures():
    class Float32Only(ScipyBackend):
        name = "float32-only"
        capabilities = Capabilities(dtypes=frozenset({np.dtype(np.float32)}))

    report = check_backend(Float32Only(), FAST)
    counts = report.counts()
    assert report.ok and counts["skip"] > 0 and counts["pass"] > 0
    assert "does not support dtype" in report.format()


def test_cases_cover_every_factor():
    conv = [c for c in FAST if c.operation == "conv"]
    convolve = [c for c in FAST if c.operation == "convolve_nd"]
    assert {c.dtype for c in FAST} == {"float32", "float64", "complex64", "complex128"}
    assert {c.layout for c in FAST} == {
        "contiguous",
        "non-contiguous",
        "negative-stride",
        "fortran",
    }
    assert {len(c.shapes[0]) - 2 for c in conv} == {1, 2, 3}
    assert {len(c.shapes[0]) for c in convolve} >= {1, 2, 3}
    assert {c.kwargs["mode"] for c in convolve} == {"full", "same", "valid"}
    borders = {
        c.kwargs["border_mode"] if not isinstance(c.kwargs["border_mode"], tuple) else "pairs"
        for c in conv
    }
    assert borders >= {"valid", "full", "half", "same", 1, "pairs"}
    assert {c.kwargs["subsample"] for c in conv} >= {1, 2, 3}
    assert {c.kwargs["filter_dilation"] for c in conv} >= {1, 2}
    assert {c.kwargs["filter_flip"] for c in conv} == {True, False}
    assert any(c.kwargs["num_groups"] > 1 and c.shapes[1][1] == 1 for c in conv)  # depthwise
    assert any("even" in c.tags for c in conv) and any("odd" in c.tags for c in conv)
    assert any(c.nonfinite for c in FAST) and any(c.shapes[0] == (1,) for c in FAST)
    full = generate_cases("full")
    assert any("large" in c.tags for c in full) and len(full) > 3 * len(FAST) / 2


def test_case_arrays_are_reproducible_and_laid_out():
    case = next(c for c in FAST if c.layout == "negative-stride")
    first, again = case.arrays(), case.arrays()
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(first, again))
    assert any(s < 0 for s in first[0].strides)
    fortran = next(c for c in FAST if c.layout == "fortran" and min(c.shapes[0]) > 1)
    assert fortran.arrays()[0].flags.f_contiguous and not fortran.arrays()[0].flags.c_contiguous


def test_fft_bound_is_looser_than_direct():
    problem = convkit.plugin.normalize_convolve(
        np.ones(4096, np.float32), np.ones(129, np.float32), "same", None
    )
    scale = np.ones(problem.output_shape)
    assert (error_bound(problem, scale, "fft") > error_bound(problem, scale, "direct")).all()
    with pytest.raises(ValueError, match="'direct' or 'fft'"):
        error_bound(problem, scale, "magic")


def test_check_command_reports_case_count_and_failures(capsys):
    from convkit._cli import main

    assert main(["check", "scipy"]) == 0
    output = capsys.readouterr().out
    assert f"{len(FAST)} cases" in output and f"{len(FAST)} passed, 0 failed, 0 skipped" in output
    assert main(["check", "no-such-backend"]) == 2


def test_strategies_draw_valid_cases():
    from hypothesis import given, settings

    @settings(max_examples=40, deadline=None)
    @given(case_strategy())
    def draw(case):
        first, _second = case.arrays()
        assert first.dtype == np.dtype(case.dtype)
        assert check_case("scipy", case).status == "pass"

    draw()


def test_cases_cover_the_signal_axes():
    """Boundary, correlation and missing data: every value of each factor, both operations."""
    convolve = [c for c in FAST if c.operation == "convolve_nd"]
    correlate = [c for c in FAST if c.operation == "correlate_nd"]
    missing = [c for c in FAST if "nan_policy" in c.kwargs]
    boundaries = {"fill", "wrap", "symm", "mirror", "nearest"}
    for group in (convolve, correlate):
        assert {c.kwargs.get("boundary", "fill") for c in group} == boundaries
        assert {c.kwargs["mode"] for c in group} == {"full", "same", "valid"}
        assert {c.dtype for c in group} == {"float32", "float64", "complex64", "complex128"}
        assert {len(c.shapes[0]) for c in group} >= {1, 2, 3}
        assert any("even" in c.tags for c in group) and any("odd" in c.tags for c in group)
    assert any(c.kwargs.get("fillvalue") not in (None, 0) for c in correlate)
    # "valid" in either operand order, and "same" with a kernel longer than the signal.
    for mode in ("valid", "same"):
        orders = {c.shapes[0][-1] < c.shapes[1][-1] for c in correlate if c.kwargs["mode"] == mode}
        assert orders == {False, True}
    assert any(c.nonfinite and c.nonfinite[0][0] == 1 for c in correlate)

    policies = {(c.kwargs["nan_policy"], c.kwargs.get("preserve_nan", False)) for c in missing}
    assert policies == {("interpolate", False), ("interpolate", True), ("fill", False)}
    assert {c.operation for c in missing} == {"convolve_nd", "correlate_nd"}
    for policy in ("interpolate", "fill"):
        chosen = [c for c in missing if c.kwargs["nan_policy"] == policy]
        assert {c.kwargs["mode"] for c in chosen} == {"full", "same", "valid"}
        assert {c.kwargs["boundary"] for c in chosen} == boundaries
        assert {len(c.shapes[0]) for c in chosen} == {1, 2, 3}
    interpolate = [c for c in missing if c.kwargs["nan_policy"] == "interpolate"]
    assert {c.kernel_values for c in interpolate} == {"non-negative", "integers"}
    assert all(operand == 0 for c in interpolate for operand, _, _ in c.nonfinite)
    assert {v for c in interpolate for _, _, v in c.nonfinite} >= {float("inf"), float("-inf")}
    assert any(c.gap >= max(c.shapes[1]) > 1 for c in interpolate)
    assert any(c.kwargs["axes"] is not None for c in interpolate if c.kwargs.get("preserve_nan"))
    full = generate_cases("full")
    assert any("large" in c.tags and "nan_policy" in c.kwargs for c in full)
    assert any("large" in c.tags and c.operation == "correlate_nd" for c in full)


def test_interpolate_cases_leave_outputs_undefined_only_where_exact():
    """Some windows hold no finite sample, some weights cancel to exactly 0, and every
    other denominator is far from 0: which outputs are NaN never depends on rounding."""
    from convkit.testing import normalized_convolve_nd, reverse_conjugate

    empty = cancelled = 0
    for case in FAST:
        if case.kwargs.get("nan_policy") != "interpolate":
            continue
        first, second = case.arrays()
        keywords = case.kwargs
        kernel = second
        if case.operation == "correlate_nd":
            kernel = reverse_conjugate(second, keywords["axes"])
        parts = normalized_convolve_nd(
            first,
            kernel,
            keywords["mode"],
            keywords["axes"],
            keywords["boundary"],
            keywords["fillvalue"],
        )
        empty += bool((parts.denominator_scale == 0).any())
        cancelled += bool(((parts.denominator == 0) & (parts.denominator_scale > 0)).any())
        defined = parts.denominator != 0
        # far above the threshold under which a backend may count m (*) w as 0
        assert (np.abs(parts.denominator) >= 1e-2 * parts.denominator_scale)[defined].all()
    assert empty >= 5 and cancelled >= 2


def _wrong_operation(name, change):
    """Replace one operation the kit calls by a wrong variant of it."""

    def wrong(first, second, **keywords):
        return change(getattr(convkit, name), first, second, keywords)

    return wrong


def _ignore_preserve_nan(function, first, second, keywords):
    keywords.pop("preserve_nan", None)
    return function(first, second, **keywords)


def _empty_windows_give_zero(function, first, second, keywords):
    result = function(first, second, **keywords)
    if keywords.get("nan_policy") == "interpolate" and not keywords.get("preserve_nan"):
        return np.where(np.isnan(result), 0, result).astype(result.dtype)
    return result


def _mask_not_extended_by_fill(function, first, second, keywords):
    """Interpolation whose mask continues with 0 past the signal, whatever the boundary."""
    if keywords.get("nan_policy") != "interpolate" or keywords.get("preserve_nan"):
        return function(first, second, **keywords)
    keywords = dict(keywords, nan_policy="propagate")
    finite = np.isfinite(first)
    mask = finite.astype(np.finfo(first.dtype).dtype)
    numerator = function(np.where(finite, first, 0), second, **keywords)
    denominator = function(mask, second, **dict(keywords, fillvalue=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return (numerator / denominator).astype(numerator.dtype)


def _fill_with_zero(function, first, second, keywords):
    if keywords.get("nan_policy") == "fill":
        first = np.where(np.isfinite(first), first, 0)
    return function(first, second, **keywords)


def _not_conjugated(function, first, second, keywords):
    return function(first, np.conj(second), **keywords)


def _valid_order_ignored(function, first, second, keywords):
    """``scipy.signal.correlate2d``-like: a swapped "valid" correlation comes out reversed."""
    result = function(first, second, **keywords)
    if keywords["mode"] == "valid" and first.size < second.size:
        return np.ascontiguousarray(result[tuple(slice(None, None, -1) for _ in result.shape)])
    return result


@pytest.mark.parametrize(
    "operation, change, expected",
    [
        ("convolve_nd", _ignore_preserve_nan, "non-finite outputs"),
        ("correlate_nd", _empty_windows_give_zero, "non-finite outputs"),
        ("convolve_nd", _mask_not_extended_by_fill, "outside the"),
        ("correlate_nd", _fill_with_zero, "outside the"),
        ("correlate_nd", _not_conjugated, "outside the"),
        ("correlate_nd", _valid_order_ignored, "outside the"),
    ],
)
def test_wrong_signal_rules_are_caught(monkeypatch, operation, change, expected):
    from convkit.testing import _check

    monkeypatch.setitem(_check._OPERATIONS, operation, _wrong_operation(operation, change))
    chosen = [
        c
        for c in FAST
        if c.operation == operation and ("nan_policy" in c.kwargs or operation == "correlate_nd")
    ]
    messages = []
    for case in chosen:
        result = check_case("scipy", case)
        if result.status == "fail":
            messages.append(result.message)
            if expected in result.message:
                break
    assert messages and expected in messages[-1], messages[:3]


def test_quotient_bound_holds_for_the_worst_errors_within_the_two_bounds():
    from convkit.testing import quotient_bound

    rng = np.random.default_rng(7)
    for dtype in (np.float32, np.float64, np.complex64):
        numerator = rng.standard_normal(2000) * 10.0 ** rng.integers(-3, 4, 2000)
        denominator = rng.uniform(0.01, 5, 2000) * rng.choice([-1, 1], 2000)
        numerator_bound = np.abs(rng.standard_normal(2000)) * 1e-3 * (1 + np.abs(numerator))
        denominator_bound = rng.uniform(0, 0.5, 2000) * np.abs(denominator)
        exact = numerator / denominator
        bound = quotient_bound(exact, denominator, numerator_bound, denominator_bound, dtype)
        for signs in itertools.product((-1, 1), repeat=2):
            got_numerator = (numerator + signs[0] * numerator_bound).astype(dtype)
            got_denominator = (denominator + signs[1] * denominator_bound).astype(dtype)
            # rounding the operands to dtype is part of each convolution's own bound
            slack = np.abs(got_numerator - (numerator + signs[0] * numerator_bound))
            slack += np.abs(exact) * np.abs(
                got_denominator - (denominator + signs[1] * denominator_bound)
            )
            result = got_numerator / got_denominator
            assert (np.abs(result - exact) <= bound + 2 * slack / np.abs(denominator)).all()
    # A denominator within twice its bound of 0 gets no claim.
    assert (
        quotient_bound(
            np.array([1.0]), np.array([1e-6]), np.array([0.0]), np.array([1e-6]), np.float32
        )[0]
        == np.inf
    )


@pytest.mark.parametrize(
    "boundary, fillvalue",
    [("fill", 0), ("fill", 1.5), ("wrap", 0), ("symm", 0), ("mirror", 0), ("nearest", 0)],
)
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_the_references_follow_the_definition_output_by_output(boundary, fillvalue, mode):
    """extended_convolve_nd and normalized_convolve_nd against a literal sum over each
    output's window of the extended signal (numpy.pad has its own tests of the rules)."""
    from convkit.testing import extended_convolve_nd, normalized_convolve_nd

    rng = np.random.default_rng(3)
    signal = rng.standard_normal((7, 3))
    signal[[0, 1, 4, 4], [0, 0, 1, 2]] = [np.nan, np.inf, np.nan, -np.inf]
    kernel = rng.integers(-2, 3, (4, 2)).astype(float)
    pad_mode = {
        "fill": "constant",
        "wrap": "wrap",
        "symm": "symmetric",
        "mirror": "reflect",
        "nearest": "edge",
    }[boundary]
    reach = [m - 1 for m in kernel.shape]
    options = {"constant_values": fillvalue} if pad_mode == "constant" else {}
    finite = np.isfinite(signal)
    widths = [(r, r) for r in reach]
    values = np.pad(np.where(finite, signal, 0), widths, pad_mode, **options)
    mask_options = {"constant_values": 1} if pad_mode == "constant" else {}
    mask = np.pad(finite.astype(float), widths, pad_mode, **mask_options)
    full_shape = tuple(n + m - 1 for n, m in zip(signal.shape, kernel.shape))
    numerator, denominator = np.zeros(full_shape), np.zeros(full_shape)
    for out in np.ndindex(full_shape):
        for tap in np.ndindex(kernel.shape):
            # output o reads the extended signal at o - k, shifted by the reach
            position = tuple(o - k + r for o, k, r in zip(out, tap, reach))
            numerator[out] += kernel[tap] * values[position]
            denominator[out] += kernel[tap] * mask[position]
    start = {"full": (0, 0), "same": tuple(r // 2 for r in reach), "valid": tuple(reach)}[mode]
    size = {
        "full": full_shape,
        "same": signal.shape,
        "valid": tuple(n - m + 1 for n, m in zip(signal.shape, kernel.shape)),
    }[mode]
    region = tuple(slice(s, s + n) for s, n in zip(start, size))
    numerator, denominator = numerator[region], denominator[region]
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = np.where(denominator == 0, np.nan, numerator / denominator)
    parts = normalized_convolve_nd(signal, kernel, mode, None, boundary, fillvalue)
    np.testing.assert_allclose(parts.result, expected, rtol=1e-12, atol=1e-12)
    filled = np.where(finite, signal, 0)
    np.testing.assert_allclose(
        extended_convolve_nd(filled, kernel, mode, None, boundary, fillvalue),
        numerator,
        rtol=1e-12,
        atol=1e-12,
    )
