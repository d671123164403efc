"""The numba backend extends boundary rules itself: every path, against the padded copy.

Each problem is built unpadded (as the core hands it to a backend that
declares the rule) and computed by one of the backend's paths; the reference
is the float64 direct definition on the explicitly padded signal.
"""

import itertools

import numpy as np
import pytest

import convkit

pytest.importorskip("convkit_numba")

from convkit.plugin import (  # noqa: E402 - after the skip
    explicit_boundary,
    extension_index,
    normalize_conv,
    normalize_convolve,
)
from convkit.testing import direct_conv, direct_convolve_nd, error_bound  # noqa: E402

RULES = ("wrap", "symm", "mirror", "nearest")


def _assert_matches(result, problem):
    """``result`` is ``problem``'s answer within the direct methods' bound, non-finite
    positions exactly."""
    padded = explicit_boundary(problem)
    direct = direct_conv if problem.operation == "conv" else direct_convolve_nd
    expected = direct(padded)
    scale = direct(padded, absolute=True)
    assert result.shape == expected.shape and result.dtype == problem.dtype
    np.testing.assert_array_equal(np.isnan(result), np.isnan(expected))
    np.testing.assert_array_equal(np.isposinf(result), np.isposinf(expected))
    np.testing.assert_array_equal(np.isneginf(result), np.isneginf(expected))
    finite = np.isfinite(expected)
    bound = error_bound(problem, scale, "direct")
    assert (np.abs(result[finite] - expected[finite]) <= bound[finite]).all()


def test_extended_index_is_the_plugin_extension_index():
    from convkit_numba._kernels import RULE_CODES, extended_index

    positions = np.arange(-40, 41)
    for rule, size in itertools.product(RULES, range(1, 8)):
        expected = extension_index(positions, size, rule)
        got = [extended_index(p, size, RULE_CODES[rule]) for p in positions]
        np.testing.assert_array_equal(got, expected, err_msg=f"{rule}, size {size}")
    inside = [extended_index(p, 5, RULE_CODES["fill"]) for p in positions]
    np.testing.assert_array_equal(
        inside, np.where((positions >= 0) & (positions < 5), positions, -1)
    )


# (in1 shape, in2 shape, axes): odd and even kernels, ranks 1-3, a kernel longer than the
# signal (so the extension repeats the rule), in1 of length 1 on a convolved axis, in2 larger
# in every axis (the backend must not swap the operands), a batch axis.
CONVOLVE_SHAPES = [
    ((13,), (3,), None),
    ((12,), (4,), None),
    ((5,), (11,), None),
    ((1,), (4,), None),
    ((9, 10), (3, 4), None),
    ((4, 3), (7, 6), None),
    ((1, 9), (3, 3), None),
    ((7, 1), (2, 5), None),
    ((5, 6, 7), (3, 2, 3), None),
    ((3, 4, 2), (4, 5, 5), None),
    ((4, 1, 6), (2, 3, 3), None),
    ((3, 20), (1, 6), (1,)),
    ((2, 6, 8), (2, 3, 3), (1, 2)),
]


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("mode", ["full", "same"])
@pytest.mark.parametrize(("shape1", "shape2", "axes"), CONVOLVE_SHAPES)
def test_convolve_nd_extends_the_rule(rule, mode, shape1, shape2, axes):
    from convkit_numba._backend import NumbaBackend

    rng = np.random.default_rng(sum(shape1) * 31 + sum(shape2))
    in1, in2 = rng.standard_normal(shape1), rng.standard_normal(shape2)
    problem = normalize_convolve(in1, in2, mode, axes, boundary=rule)
    assert problem.boundary == rule
    _assert_matches(NumbaBackend().convolve_nd(problem), problem)


@pytest.mark.parametrize("rule", RULES)
def test_convolve_nd_float32_wide_rows(rule):
    """Rows longer than one block of the vectorized pass, float32: the outputs near the row
    ends are scalar sums through the index table (the short rows above copy their source
    rows into an extended scratch instead)."""
    from convkit_numba._backend import NumbaBackend

    rng = np.random.default_rng(3)
    in1 = rng.standard_normal((3, 2500)).astype(np.float32)
    in2 = rng.standard_normal((3, 9)).astype(np.float32)
    for mode in ("full", "same"):
        problem = normalize_convolve(in1, in2, mode, boundary=rule)
        _assert_matches(NumbaBackend().convolve_nd(problem), problem)


@pytest.mark.parametrize("rule", RULES)
def test_convolve_nd_nonfinite_at_the_edges_reaches_every_copy(rule):
    """A NaN or inf at an edge of in1 appears several times in the extension: each copy
    reaches exactly the outputs whose sums contain it."""
    from convkit_numba._backend import NumbaBackend

    rng = np.random.default_rng(5)
    short = rng.standard_normal((9, 11))
    wide = rng.standard_normal((4, 1500))  # scalar sums at the row ends, not a scratch
    for in1 in (short, wide):
        in1[0, 0], in1[-1, 4], in1[3, -1], in1[2, 5] = np.nan, np.inf, -np.inf, np.nan
    cases = [(short, rng.standard_normal((3, 4))), (short, rng.standard_normal((12, 2)))]
    cases += [(wide, rng.standard_normal((3, 5))), (wide, rng.standard_normal((2, 4)))]
    for (in1, in2), mode in itertools.product(cases, ("full", "same")):
        problem = normalize_convolve(in1, in2, mode, boundary=rule)
        _assert_matches(NumbaBackend().convolve_nd(problem), problem)


def _conv_paths():
    """Each conv path of the backend, by name: the function that computes a problem on it."""
    from convkit_numba import _backend, _winograd

    return {
        "planes": _backend._conv_padded_planes,
        "direct": _backend._conv_direct,
        "gemm": _backend._conv_gemm,
        "winograd": _winograd.conv_winograd,
    }


# (input shape, filters shape, border_mode, subsample, filter_dilation, num_groups)
CONV_CASES = [
    ((2, 3, 9, 10), (4, 3, 3, 3), "half", 1, 1, 1),
    ((1, 2, 8, 7), (3, 2, 4, 2), "full", 1, 1, 1),
    ((1, 2, 8, 7), (3, 2, 4, 2), "same", 1, 1, 1),
    ((2, 2, 9, 9), (2, 2, 3, 3), ((2, 0), (1, 3)), 1, 1, 1),
    ((1, 2, 11, 12), (4, 2, 3, 3), "half", 2, 1, 1),
    ((1, 2, 11, 12), (4, 2, 3, 3), "full", (1, 3), (2, 1), 1),
    ((1, 2, 10, 9), (2, 2, 3, 3), "same", (2, 1), 1, 1),
    ((1, 2, 12, 12), (2, 2, 3, 2), 2, 1, (2, 3), 1),
    ((2, 4, 9, 8), (4, 1, 5, 5), "half", 1, 1, 4),
    ((1, 4, 9, 8), (8, 2, 3, 3), "full", 2, 1, 2),
    ((1, 3, 3, 2), (2, 3, 5, 6), "full", 1, 1, 1),
    ((2, 2, 13), (3, 2, 4), "same", 1, 1, 1),
    ((1, 2, 5, 6, 7), (2, 2, 3, 3, 2), "half", 1, 1, 1),
    ((1, 2, 5, 6, 7), (2, 1, 3, 3, 3), "full", (2, 1, 2), (1, 2, 1), 2),
]


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("flip", [True, False])
@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv_extends_the_rule_on_every_path(rule, flip, case):
    x_shape, w_shape, border, stride, dilation, groups = case
    rng = np.random.default_rng(sum(x_shape) + 7 * sum(w_shape))
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    problem = normalize_conv(
        x,
        w,
        border_mode=border,
        subsample=stride,
        filter_flip=flip,
        filter_dilation=dilation,
        num_groups=groups,
        boundary=rule,
    )
    assert problem.boundary == rule
    paths = _conv_paths()
    unit_stride = all(step == 1 for step in problem.stride)
    for name in ("planes", "direct", "gemm"):
        if name == "planes" and not unit_stride:
            continue
        _assert_matches(paths[name](problem), problem)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("border", ["half", "full", ((0, 2), (2, 1))])
def test_conv_winograd_extends_the_rule(rule, border):
    from convkit_numba import _winograd

    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 16, 9, 10)).astype(np.float32)
    w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    problem = normalize_conv(x, w, border_mode=border, boundary=rule)
    assert _winograd.applies(problem) and _winograd.finite(problem)
    _assert_matches(_winograd.conv_winograd(problem), problem)


@pytest.mark.parametrize("rule", RULES)
def test_conv_nonfinite_inputs_and_filters_stay_local(rule):
    """Under a rule the padding holds samples: a NaN at the edge reaches each output that
    reads one of its copies, and a non-finite weight meets no padded zero."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((1, 2, 8, 9))
    x[0, 0, 0, 0], x[0, 1, -1, 3], x[0, 0, 4, -1] = np.nan, np.inf, -np.inf
    w = rng.standard_normal((3, 2, 3, 4))
    for filters in (w, np.where(np.arange(w.size).reshape(w.shape) == 5, np.inf, w)):
        for stride in (1, 2):
            problem = normalize_conv(x, filters, "full", stride, boundary=rule)
            paths = _conv_paths()
            for name in ("planes", "direct", "gemm") if stride == 1 else ("direct", "gemm"):
                with np.errstate(invalid="ignore"):  # NaN meets BLAS in the GEMM path
                    _assert_matches(paths[name](problem), problem)
            _assert_matches(
                convkit.conv2d(x, filters, "full", stride, boundary=rule, backend="numba"),
                problem,
            )


@pytest.mark.parametrize("rule", RULES)
def test_numba_makes_no_padded_copy(rule, monkeypatch):
    import convkit.plugin

    def refuse(*arguments, **keywords):
        raise AssertionError("a padded copy was made")

    rng = np.random.default_rng(2)
    image = rng.standard_normal((40, 50))
    kernel = rng.standard_normal((5, 4))
    layers = rng.standard_normal((2, 4, 30, 30))
    depthwise = rng.standard_normal((4, 1, 3, 3))
    expected = (
        convkit.convolve_nd(image, kernel, "same", boundary=rule, backend="scipy"),
        convkit.conv2d(layers, depthwise, "half", num_groups=4, boundary=rule, backend="scipy"),
    )
    explanation = convkit.explain(
        "convolve_nd", image, kernel, "same", boundary=rule, backend="numba"
    )
    assert (
        f"numba extends boundary={rule!r} itself (convkit makes no padded copy"
        in explanation.detail
    )
    # The core's padded copy is made by numpy.pad; a backend would call the plugin's helper.
    monkeypatch.setattr(convkit.plugin, "explicit_boundary", refuse)
    monkeypatch.setattr(np, "pad", refuse)
    got = (
        convkit.convolve_nd(image, kernel, "same", boundary=rule, backend="numba"),
        convkit.conv2d(layers, depthwise, "half", num_groups=4, boundary=rule, backend="numba"),
    )
    for result, reference in zip(got, expected):
        np.testing.assert_allclose(result, reference, rtol=1e-12, atol=1e-12)
