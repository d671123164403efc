"""The conformance kit catches wrong backends, says which case and by how much."""

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
    report = check_backend(Tampered("broken", fault), FAST)
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
