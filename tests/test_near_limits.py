"""Operands near the top of the dtype's range: a finite true result comes back finite
on every backend; inf only where the true result overflows; NaN and inf stay local."""

import math

import numpy as np
import pytest
import scipy.signal

import convkit
from convkit._range import growth_bits, into_range, range_shifts, scaled_copy_bytes
from convkit.plugin import normalize_conv, normalize_convolve
from convkit.testing import check_case, generate_cases
from convkit.testing._direct import direct_conv, direct_convolve_nd

BACKENDS = [
    name
    for name in ("scipy", "numba", "fftw")
    if any(b.name == name and b.available for b in convkit.list_backends())
]
NEAR_LIMIT = [case for case in generate_cases("fast") if "near-limit" in case.tags]


def _close(result, expected, scale, tolerance):
    assert np.isfinite(result).all()
    np.testing.assert_array_less(np.abs(result - expected), tolerance * scale + 1e-300)


@pytest.mark.parametrize("backend", [*BACKENDS, None])
def test_float32_near_1e38_with_small_filters(backend, rng):
    # Positive values: the transforms of FFT and Winograd methods sum them without cancelling.
    x = rng.uniform(0, 1e38, (2, 16, 24, 24)).astype(np.float32)
    w = rng.uniform(0, 1e-3, (16, 16, 3, 3)).astype(np.float32)
    result = convkit.conv2d(x, w, border_mode="half", backend=backend)
    problem = normalize_conv(x, w, border_mode="half")
    expected = direct_conv(problem)
    assert 1e36 < expected.max() < 1e37
    _close(result, expected, expected.max(), 1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float64_near_1e307(backend, rng):
    x = rng.uniform(0, 1e307, (1, 2, 16, 16))
    w = rng.uniform(0, 0.5, (2, 2, 3, 3))
    result = convkit.conv2d(x, w, border_mode="full", backend=backend)
    expected = direct_conv(normalize_conv(x, w, border_mode="full"))
    _close(result, expected, expected.max(), 1e-13)


@pytest.mark.parametrize("backend", BACKENDS)
def test_long_convolve_nd_near_1e304(backend, rng):
    # The transform of 2e5 positive values near 1e304 exceeds 1.8e308; the result does not.
    x, w = rng.uniform(0, 1e304, 200_000), rng.uniform(0, 1, 500)
    result = convkit.convolve_nd(x, w, mode="same", backend=backend)
    shift = 64  # the same sum, computed by hand at a scale where it fits
    expected = np.ldexp(scipy.signal.fftconvolve(np.ldexp(x, -shift), w, mode="same"), shift)
    assert np.isfinite(expected).all() and expected.max() > 1e305
    _close(result, expected, expected.max(), 1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", BACKENDS)
def test_inf_only_where_the_true_result_overflows(backend, dtype, rng):
    top = float(np.finfo(dtype).max)
    x = rng.uniform(0.5, 1, (1, 1, 12, 12)).astype(dtype)
    x[..., :4, :4] = top / 2.5  # three of these overflow, two fit
    x[..., 8:, 8:] = -top / 2.5
    w = np.ones((1, 1, 3, 3), dtype)
    result = convkit.conv2d(x, w, border_mode="half", backend=backend)
    reference = normalize_conv(x.astype(np.float64) / 8, w.astype(np.float64), border_mode="half")
    with np.errstate(over="ignore"):  # in float64 the true sums that overflow become inf here
        sums = direct_conv(reference) * 8
    overflows = np.abs(sums) > top
    assert overflows.any() and not overflows.all() and not np.isnan(result).any()
    np.testing.assert_array_equal(np.isposinf(result), overflows & (sums > 0))
    np.testing.assert_array_equal(np.isneginf(result), overflows & (sums < 0))
    fits = ~overflows
    tolerance = 1e-5 if dtype == np.float32 else 1e-13
    _close(result[fits], sums[fits], np.abs(sums[fits]).max(), tolerance)


@pytest.mark.parametrize("backend", BACKENDS)
def test_inf_times_a_tiny_value_stays_inf_when_scaled(backend):
    # in2 is scaled down, which would turn 1e-45 into 0 and inf * 0 into NaN.
    in1 = np.array([np.inf, 1.0, 1.0, 1.0], np.float32)
    in2 = np.array([3e38, 1e-45], np.float32)
    assert into_range(normalize_convolve(in1, in2))[1] > 0
    result = convkit.convolve_nd(in1, in2, backend=backend)
    np.testing.assert_array_equal(result[:2], [np.inf, np.inf])
    np.testing.assert_allclose(result[2:4], [3e38, 3e38], rtol=1e-6)
    assert abs(result[4]) <= 1e-6 * 3e38  # 1e-45, within an FFT's rounding of the 3e38 beside it


@pytest.mark.parametrize("backend", BACKENDS)
def test_kit_near_limit_cases_pass(backend):
    failures = [
        (case.id, result.message)
        for case in NEAR_LIMIT
        if (result := check_case(backend, case)).status == "fail"
    ]
    assert not failures, failures[:3]


def test_usual_magnitudes_are_handed_on_unscaled(rng):
    x = rng.standard_normal((4, 32, 64, 64)).astype(np.float32) * 1e6
    w = rng.standard_normal((32, 32, 5, 5)).astype(np.float32) * 1e6
    problem = normalize_conv(x, w, border_mode="half")
    assert into_range(problem) == (problem, 0)
    with_nan = normalize_convolve(np.array([np.nan, 1e300]), np.array([np.inf, 1.0]))
    assert into_range(with_nan) == (with_nan, 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
def test_shifts_are_exact_and_leave_the_bound_in_range(dtype, rng):
    top = np.finfo(dtype).maxexp
    pairs = [(top - 2, -10), (top - 30, top - 40), (-5, top - 1), (top - 1, top - 1)]
    for first_exponent, second_exponent in pairs:
        in1 = np.ldexp(rng.uniform(0.5, 1, (300,)), first_exponent).astype(dtype)
        in2 = np.ldexp(rng.uniform(0.5, 1, (7,)), second_exponent).astype(dtype)
        problem = normalize_convolve(in1, in2)
        scaled, shift = into_range(problem)
        assert shift > 0 and not scaled.in1.flags.writeable
        ratio1, ratio2 = problem.in1.real / scaled.in1.real, problem.in2.real / scaled.in2.real
        assert len(np.unique(ratio1)) == 1 and len(np.unique(ratio2)) == 1  # one power of two each
        assert math.log2(ratio1[0]) + math.log2(ratio2[0]) == shift
        largest = [math.frexp(float(np.abs(operand).max()))[1] for operand in scaled.operands]
        assert (
            max(largest) + growth_bits(problem) <= top
            and sum(largest) + growth_bits(problem) <= top
        )


def test_kit_near_limit_cases_have_results_that_fit():
    kinds = {(case.dtype, case.operation) for case in NEAR_LIMIT}
    assert kinds == {
        (dtype, operation)
        for dtype in ("float32", "float64", "complex64", "complex128")
        for operation in ("conv", "convolve_nd")
    }
    assert any(case.positive for case in NEAR_LIMIT) and any(case.nonfinite for case in NEAR_LIMIT)
    for case in NEAR_LIMIT:
        first, second = case.arrays()
        largest = max(
            np.abs(first[np.isfinite(first)]).max(), np.abs(second[np.isfinite(second)]).max()
        )
        top = np.finfo(case.dtype).max
        assert top / 16 < largest < top
        if case.operation == "conv":
            kwargs = case.kwargs
            problem = normalize_conv(first, second, **kwargs)
            scale = direct_conv(problem, absolute=True)
        else:
            scale = direct_convolve_nd(
                normalize_convolve(first, second, mode=case.kwargs["mode"]), absolute=True
            )
        assert scale[np.isfinite(scale)].max() < top / 2
    small = [case for case in generate_cases("small") if "near-limit" in case.tags]
    assert {case.operation for case in small} == {"conv", "convolve_nd"}


def test_the_scaled_copies_count_toward_the_memory_limit():
    """Operands near the top of the range are copied scaled; a limit that leaves no room for
    those copies refuses the call before they are made."""
    big = np.full(4096, 1e38, np.float32)
    kernel = np.full(9, 1e-3, np.float32)
    problem = normalize_convolve(big, kernel, "same")
    shifts = range_shifts(problem)
    assert shifts[0] > 0 and scaled_copy_bytes(problem, shifts) >= big.nbytes
    scipy_backend = convkit.plugin.resolve_backend("scipy")
    needed = scipy_backend.working_set_bytes(problem)
    convkit.set_memory_limit(needed + big.nbytes // 2)
    with pytest.raises(convkit.WorkingSetTooLargeError):
        convkit.convolve_nd(big, kernel, "same", backend="scipy")
    convkit.set_memory_limit(needed + scaled_copy_bytes(problem, shifts))
    assert np.isfinite(convkit.convolve_nd(big, kernel, "same", backend="scipy")).all()
