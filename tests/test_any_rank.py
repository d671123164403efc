"""Shape geometry as public functions, broadcast axes, and convolve_nd of any rank on every backend."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.signal

import convkit
from convkit._lowering import lowering_for
from convkit.plugin import (
    Backend,
    Capabilities,
    conv_output_length,
    conv_output_shape,
    conv_padding,
    convolve_output_region,
    convolved_axes,
    dilated_extent,
    kernel_operand,
    normalize_conv,
    normalize_convolve,
    with_local_nonfinite,
)
from convkit.testing import check_case, generate_cases
from convkit.testing._direct import direct_convolve_nd

MODES = ("full", "same", "valid")


def _installed(name: str) -> bool:
    return any(info.name == name and info.available for info in convkit.list_backends())


CPU_BACKENDS = [
    pytest.param(name, marks=pytest.mark.skipif(not _installed(name), reason=f"{name} unavailable"))
    for name in ("scipy", "numba", "fftw")
]


# --- geometry ------------------------------------------------------------------------------


def test_dilated_extent_and_output_length():
    assert [dilated_extent(k, d) for k, d in ((1, 1), (3, 1), (3, 2), (4, 3))] == [1, 3, 5, 10]
    assert conv_output_length(7, 3, (1, 1), stride=2, dilation=2) == (7 + 2 - 5) // 2 + 1
    assert conv_output_length(2, 3) == 0


@pytest.mark.parametrize("border_mode", ["valid", "full", "half", "same", 2, (1, (0, 3))])
@pytest.mark.parametrize("stride, dilation", [(1, 1), (2, 1), (3, 2), ((1, 2), (2, 1))])
def test_conv_geometry_is_what_the_core_computes(border_mode, stride, dilation):
    x, w = np.ones((1, 1, 9, 8)), np.ones((1, 1, 3, 2))
    problem = normalize_conv(
        x, w, border_mode=border_mode, subsample=stride, filter_dilation=dilation
    )
    assert conv_padding(border_mode, (9, 8), (3, 2), stride, dilation) == problem.padding
    assert (
        conv_output_shape((9, 8), (3, 2), border_mode, stride, dilation) == problem.output_shape[2:]
    )


def test_conv_padding_errors_name_the_argument():
    with pytest.raises(ValueError, match="conv_padding: border_mode must be"):
        conv_padding("wide", (8,), (3,))
    with pytest.raises(ValueError, match="conv_padding: subsample must be >= 1"):
        conv_padding("same", (8,), (3,), subsample=0)


def test_kernel_operand_is_the_smaller_one_and_scipys_valid_swap():
    assert kernel_operand((10, 10), (3, 3)) == 1
    assert kernel_operand((3, 3), (10, 10)) == 0
    assert kernel_operand((5, 5), (5, 5), mode="valid") == 1  # ties keep the order
    assert kernel_operand((3, 10), (10, 3)) == 1  # equal points: in2
    assert kernel_operand((7, 2), (1, 9), axes=(0, 1)) == 0  # axis 0 broadcasts: 2 < 9
    with pytest.raises(ValueError, match="one input must be at least as large"):
        kernel_operand((3, 10), (10, 3), mode="valid")


@pytest.mark.parametrize("mode", MODES)
def test_convolve_output_region_matches_scipy(mode):
    rng = np.random.default_rng(1)
    for shape1, shape2 in (((9, 4), (3, 6)), ((5,), (8,)), ((6, 7), (6, 2))):
        if mode == "valid" and not (
            all(a >= b for a, b in zip(shape1, shape2))
            or all(b >= a for a, b in zip(shape1, shape2))
        ):
            continue
        in1, in2 = rng.standard_normal(shape1), rng.standard_normal(shape2)
        start, shape = convolve_output_region(shape1, shape2, mode)
        full = scipy.signal.fftconvolve(in1, in2, "full")
        region = tuple(slice(b, b + n) for b, n in zip(start, shape))
        np.testing.assert_allclose(
            full[region], scipy.signal.fftconvolve(in1, in2, mode), atol=1e-12
        )


# --- broadcast axes ------------------------------------------------------------------------


def test_a_named_axis_of_length_1_is_a_broadcast_axis():
    assert convolved_axes((2, 3, 5, 5), (1, 3, 3, 3), "same") == (1, 2, 3)
    assert convolved_axes((1, 6), (4, 3), "same") == (0, 1)
    assert convolved_axes((1, 6), (4, 3), "full") == (1,)
    problem = normalize_convolve(np.ones((2, 3, 5, 5)), np.ones((1, 3, 3, 3)))
    assert problem.axes == (1, 2, 3)
    assert problem.output_start[0] == 0 and problem.output_shape[0] == 2
    for mode in MODES:
        problem = normalize_convolve(np.ones((6, 5)), np.ones((1, 3)), mode=mode)
        assert problem.axes == (1,), mode
        assert (problem.output_start[0], problem.output_shape[0]) == (0, 6)


def test_same_with_in1_of_length_1_keeps_the_axis_and_scipys_centre():
    rng = np.random.default_rng(2)
    in1, in2 = rng.standard_normal((1, 6)), rng.standard_normal((4, 3))
    problem = normalize_convolve(in1, in2, mode="same")
    assert problem.axes == (0, 1)
    assert problem.output_start[0] == 1 and problem.output_shape[0] == 1
    for backend in ("scipy", "numba"):
        if _installed(backend):
            np.testing.assert_allclose(
                convkit.convolve_nd(in1, in2, "same", backend=backend),
                scipy.signal.fftconvolve(in1, in2, "same"),
                atol=1e-12,
            )


def test_every_named_axis_broadcasting_keeps_one_axis():
    problem = normalize_convolve(np.ones((3, 1)), np.ones((1, 4)))
    assert problem.axes == (1,)
    assert problem.output_shape == (3, 4)
    np.testing.assert_array_equal(
        convkit.convolve_nd(np.ones((3, 1)), np.full((1, 4), 2.0)), np.full((3, 4), 2.0)
    )


# --- any rank on every backend -------------------------------------------------------------


def _cases(rng):
    yield "article", rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((1, 3, 3, 3))
    yield "4d", rng.standard_normal((4, 5, 6, 7)), rng.standard_normal((2, 3, 2, 3))
    yield "5d", rng.standard_normal((3, 4, 3, 5, 4)), rng.standard_normal((2, 3, 2, 2, 3))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("mode", MODES)
def test_four_and_five_axes_match_scipy(backend, mode):
    rng = np.random.default_rng(3)
    for name, first, second in _cases(rng):
        for in1, in2 in ((first, second), (second, first)):
            # Every axis is convolved, so scipy's "same" (which cuts batch axes to in1's
            # length) is the reference as it is; (1, ...) as in1 keeps its centre row.
            expected = scipy.signal.fftconvolve(in1, in2, mode)
            result = convkit.convolve_nd(in1, in2, mode, backend=backend)
            assert result.shape == expected.shape, (name, in1.shape, in2.shape)
            np.testing.assert_allclose(result, expected, atol=1e-10, err_msg=f"{name} {in1.shape}")


class _OneAxis(Backend):
    """A third-party backend that convolves one axis only, by np.convolve."""

    name = "one-axis"
    capabilities = Capabilities(max_spatial_dims=1)

    def __init__(self):
        self.ranks = []

    def convolve_nd(self, problem):
        self.ranks.append(len(problem.axes))
        (axis,) = problem.axes
        first, second = problem.operands
        length = first.shape[axis]
        shape = list(
            np.broadcast_shapes(np.take(first, [0], axis).shape, np.take(second, [0], axis).shape)
        )
        shape[axis] = length + second.shape[axis] - 1
        full = np.zeros(shape, dtype=problem.dtype)
        for tap in range(second.shape[axis]):  # only the terms that exist: NaN stays local
            target = [slice(None)] * first.ndim
            target[axis] = slice(tap, tap + length)
            full[tuple(target)] += first * np.take(second, [tap], axis)
        return np.ascontiguousarray(full[problem.output_slices])


@pytest.fixture
def one_axis():
    backend = _OneAxis()
    convkit.register_backend(backend)
    yield backend
    convkit.unregister_backend(backend.name)


@pytest.mark.parametrize("mode", MODES)
def test_a_third_party_rank_limit_is_lowered(one_axis, mode):
    rng = np.random.default_rng(4)
    in1, in2 = rng.standard_normal((5, 4, 6)), rng.standard_normal((2, 3, 2))
    result = convkit.convolve_nd(in1, in2, mode, backend="one-axis")
    np.testing.assert_allclose(result, scipy.signal.fftconvolve(in1, in2, mode), atol=1e-12)
    assert set(one_axis.ranks) == {1}
    with convkit.use_backend("one-axis,scipy"):
        assert convkit.explain("convolve_nd", in1, in2, mode).backend == "one-axis"


def test_explain_lists_a_rank_limited_backend_as_able():
    if not _installed("numba"):
        pytest.skip("numba unavailable")
    explanation = convkit.explain(
        "convolve_nd", np.ones((4, 5, 6, 7)), np.ones((2, 3, 2, 3)), backend="numba"
    )
    assert explanation.backend == "numba"
    numba = next(c for c in explanation.candidates if c.name == "numba")
    assert numba.estimate_seconds is not None and not numba.reason


def test_a_lowered_problem_keeps_nan_and_inf_local(one_axis):
    rng = np.random.default_rng(5)
    in1, in2 = rng.standard_normal((6, 5, 7)), rng.standard_normal((2, 3, 2))
    in1[2, 1, 3], in1[4, 4, 0], in2[1, 2, 1] = np.nan, np.inf, -np.inf
    for mode in MODES:
        expected = direct_convolve_nd(normalize_convolve(in1, in2, mode=mode))
        for backend in ("one-axis", "numba", "fftw"):
            if backend != "one-axis" and not _installed(backend):
                continue
            result = convkit.convolve_nd(in1, in2, mode, backend=backend)
            np.testing.assert_array_equal(np.isnan(result), np.isnan(expected), err_msg=backend)
            np.testing.assert_array_equal(
                np.isposinf(result), np.isposinf(expected), err_msg=backend
            )
            finite = np.isfinite(expected)
            np.testing.assert_allclose(result[finite], expected[finite], atol=1e-10)


class _FftOneAxis(_OneAxis):
    """Like _OneAxis, but by FFT: NaN would spread without the core's help."""

    name = "fft-one-axis"

    def convolve_nd(self, problem):
        def fft(p):
            return scipy.signal.fftconvolve(p.in1, p.in2, axes=p.axes)[p.output_slices].astype(
                p.dtype
            )

        return with_local_nonfinite(problem, fft)


def test_an_fft_backend_keeps_nan_local_when_lowered():
    backend = _FftOneAxis()
    convkit.register_backend(backend)
    try:
        in1, in2 = np.ones((5, 6, 4)), np.ones((2, 2, 3))
        in1[1, 2, 2] = np.nan
        expected = direct_convolve_nd(normalize_convolve(in1, in2))
        result = convkit.convolve_nd(in1, in2, backend=backend.name)
        np.testing.assert_array_equal(np.isnan(result), np.isnan(expected))
        assert np.isnan(result).sum() == 2 * 2 * 3
    finally:
        convkit.unregister_backend(backend.name)


class _Hungry(_OneAxis):
    name = "hungry-one-axis"

    def working_set_bytes(self, problem):
        return 2**40


def test_a_lowered_problem_has_its_working_set_checked():
    backend = _Hungry()
    convkit.register_backend(backend)
    try:
        with pytest.raises(convkit.WorkingSetTooLargeError, match="hungry-one-axis"):
            convkit.convolve_nd(np.ones((3, 4, 5)), np.ones((2, 2, 2)), backend=backend.name)
        assert backend.ranks == []
    finally:
        convkit.unregister_backend(backend.name)


def test_device_operands_beyond_the_limit_are_not_lowered(one_axis):
    problem = normalize_convolve(np.ones((3, 4)), np.ones((2, 2)))
    assert lowering_for(one_axis, problem) == 1
    assert lowering_for(one_axis, dataclasses.replace(problem, on_device=True)) is None
    assert "at most 1 convolved axes" in one_axis.why_not(problem)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_the_kit_holds_backends_to_high_rank_cases(backend):
    cases = [
        case for case in generate_cases("fast", ("float64", "float32")) if "high-rank" in case.tags
    ]
    assert {len(case.shapes[0]) for case in cases} == {4, 5}
    failures = [
        (case.id, result.message)
        for case in cases
        if (result := check_case(backend, case)).status != "pass"
    ]
    assert not failures


def test_cuda_simulator_runs_a_lowered_problem():
    script = textwrap.dedent("""
        import numpy as np, scipy.signal, convkit
        rng = np.random.default_rng(0)
        for in1, in2 in ((rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((1, 3, 3, 3))),
                         (rng.standard_normal((3, 3, 4, 3)), rng.standard_normal((2, 2, 2, 2)))):
            for mode in ("full", "same", "valid"):
                result = convkit.convolve_nd(in1, in2, mode, backend="cuda")
                np.testing.assert_allclose(result, scipy.signal.fftconvolve(in1, in2, mode), atol=1e-10)
        print("ok")
    """)
    environment = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    try:
        import convkit_cuda  # noqa: F401
    except ImportError:
        pytest.skip("convkit-cuda is not installed")
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-3000:]


def test_explain_says_when_a_problem_runs_lowered():
    pytest.importorskip("convkit_numba")
    decision = convkit.explain(
        "convolve_nd", np.ones((4, 5, 6, 7)), np.ones((2, 3, 2, 3)), backend="numba"
    )
    assert decision.backend == "numba"
    assert (
        "at most 3 convolved axes: this problem's 4 run as a sum of 2 problems of 3"
        in decision.detail
    )
    assert (
        "sum of"
        not in convkit.explain(
            "convolve_nd", np.ones((5, 6)), np.ones((2, 3)), backend="numba"
        ).detail
    )
