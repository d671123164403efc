"""The numba backend's native gradients (convkit_numba._gradients).

Each case runs three ways through the public API: natively on "numba", lowered
to conv on the same kernels (a numba backend that offers only the forward
operations), and the float64 direct definition, with the conformance kit's
judgement (bounds, exact non-finite positions, exact zeros where no term
exists).  The layers are large enough to take the GEMM paths (the matrix's
are mostly too small), over border modes, strides, dilations, groups
(depthwise too), ranks 1-3, the four dtypes and non-finite values.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import convkit
from convkit.plugin import (
    ALL_DTYPES,
    Capabilities,
    normalize_conv_grad_filters,
    normalize_conv_grad_input,
)
from convkit.testing import Case, direct_conv_grad_filters
from convkit.testing._gradient_cases import check_gradient_case, gradient_cases

pytest.importorskip("convkit_numba")

from convkit_numba import _gradients
from convkit_numba._backend import NumbaBackend


class ForwardOnly(NumbaBackend):
    """The numba backend without its native gradients: the core lowers them to its conv."""

    name = "numba-forward-only"
    capabilities = Capabilities(
        dtypes=ALL_DTYPES, max_spatial_dims=3, operations=frozenset({"conv", "convolve_nd"})
    )


FORWARD_ONLY = ForwardOnly()

# (input shape, filter shape, layer): each takes one of the native paths on its own.
LAYERS = [
    ((3, 6, 17, 15), (8, 6, 3, 3), (("border_mode", "half"),)),
    ((2, 6, 17, 15), (8, 6, 3, 2), (("border_mode", "full"), ("subsample", (2, 3)))),
    ((2, 4, 19, 18), (6, 2, 3, 3), (("border_mode", "valid"), ("subsample", 2), ("num_groups", 2))),
    ((2, 8, 16, 16), (8, 1, 3, 3), (("border_mode", "half"), ("subsample", 2), ("num_groups", 8))),
    ((3, 4, 40), (5, 4, 5), (("border_mode", ((3, 1),)), ("subsample", 3), ("filter_dilation", 2))),
    ((2, 4, 9, 8, 7), (3, 4, 2, 3, 2), (("border_mode", 1), ("subsample", (2, 1, 2)))),
    ((2, 3, 9, 8, 7), (4, 3, 3, 2, 3), (("border_mode", "same"), ("filter_dilation", (1, 2, 1)))),
    ((2, 6, 12, 11), (8, 6, 1, 1), (("border_mode", "valid"),)),
    ((2, 6, 12, 11), (8, 6, 1, 1), (("border_mode", "valid"), ("subsample", 2))),
    ((2, 4, 12, 11), (6, 2, 1, 1), (("border_mode", 1), ("num_groups", 2))),
    ((1, 3, 30, 30), (4, 3, 7, 7), (("border_mode", 3), ("subsample", 2))),
    ((2, 4, 13, 13), (4, 4, 3, 3), (("border_mode", ((4, 0), (0, 5))),)),
]
DEFAULTS = {"border_mode": "valid", "subsample": 1, "filter_flip": True, "filter_dilation": 1}


def _forward(input_shape, filter_shape, layer, dtype, flip=True, **options):
    params = {**DEFAULTS, "num_groups": 1, **dict(layer), "filter_flip": flip}
    return Case("conv", (input_shape, filter_shape), dtype, tuple(params.items()), **options)


def _cases(dtypes, **options):
    return [
        case
        for input_shape, filter_shape, layer in LAYERS
        for dtype in dtypes
        for flip in (True, False)
        for case in gradient_cases(
            [_forward(input_shape, filter_shape, layer, dtype, flip, **options)]
        )
        if case.operation != "conv_transpose"
    ]


def _assert_passes(backend, case):
    result = check_gradient_case(backend, case)
    assert result.status == "pass", f"{backend}: {case.id}: {result.message}"


@pytest.mark.parametrize(
    "case", _cases(["float32", "float64", "complex64", "complex128"]), ids=lambda case: case.id
)
def test_native_and_lowered_agree_with_the_direct_definition(case):
    _assert_passes("numba", case)
    _assert_passes(FORWARD_ONLY, case)


NONFINITE = [
    ((0, 0.0, np.inf),),
    ((1, 0.0, np.inf),),
    ((1, 0.5, np.nan), (0, 0.99, -np.inf)),
    ((0, 0.3, np.nan), (1, 0.0, -np.inf), (1, 0.999, np.inf)),
]


@pytest.mark.parametrize("nonfinite", NONFINITE, ids=str)
@pytest.mark.parametrize(
    "case",
    _cases(["float32", "complex128"]),
    ids=lambda case: case.id,
)
def test_non_finite_values_stay_where_the_direct_definition_puts_them(case, nonfinite):
    case = Case(
        case.operation, case.shapes, case.dtype, case.params, nonfinite=nonfinite, tags=case.tags
    )
    _assert_passes("numba", case)


def test_the_unprotected_filter_gradient_would_turn_padding_into_nan():
    """Why the filter gradient runs under with_local_nonfinite with padding: its columns hold
    zeros at padding positions, and 0 * inf is NaN where the direct definition has no term."""
    data = np.ones((1, 1, 4))
    grad = np.ones((1, 1, 4))
    grad[0, 0, 0] = np.inf  # the first output: its first tap reads the padding before the data
    problem = normalize_conv_grad_filters(data, grad, (1, 1, 3), border_mode=1, filter_flip=False)
    expected = direct_conv_grad_filters(data, grad, (1, 1, 3), border_mode=1, filter_flip=False)
    assert np.isnan(_gradients._grad_filters_columns(problem)[0, 0, 0])
    assert expected[0, 0, 0] == 3.0  # tap 0 reads the data from the second output on
    np.testing.assert_array_equal(_gradients.conv_grad_filters(problem), expected)


def test_each_path_is_taken():
    def input_problem(shape, kernel, **layer):
        output = convkit.conv(np.zeros(shape), np.zeros(kernel), **layer).shape
        return normalize_conv_grad_input(np.zeros(output), np.zeros(kernel), shape, **layer)

    assert _gradients._pointwise(input_problem((1, 2, 5, 5), (3, 2, 1, 1)))
    assert _gradients._runs_as_conv(input_problem((1, 2, 5, 5), (3, 2, 3, 3), border_mode="half"))
    strided = input_problem((1, 2, 9, 9), (3, 2, 3, 3), subsample=2)
    assert not _gradients._pointwise(strided) and not _gradients._runs_as_conv(strided)
    # padding beyond the kernel's reach: no stride-1 conv without cropping, so the columns
    cropped = input_problem((1, 2, 9, 9), (3, 2, 3, 3), border_mode=3)
    assert not _gradients._runs_as_conv(cropped)


def test_the_backend_runs_the_gradients_natively(monkeypatch):
    calls = []
    for name in ("conv_grad_input", "conv_grad_filters"):
        original = getattr(_gradients, name)
        monkeypatch.setattr(
            _gradients,
            name,
            lambda *args, original=original, name=name: calls.append(name) or original(*args),
        )
    x = np.ones((2, 3, 8, 8), dtype=np.float32)
    w = np.ones((4, 3, 3, 3), dtype=np.float32)
    g = np.ones((2, 4, 3, 3), dtype=np.float32)
    convkit.conv_grad_input(g, w, x.shape, subsample=2, backend="numba")
    convkit.conv_grad_filters(x, g, w.shape, subsample=2, backend="numba")
    assert calls == ["conv_grad_input", "conv_grad_filters"]


def test_working_set_and_estimate_are_finite_and_count_the_columns():
    backend = NumbaBackend()
    x = np.zeros((4, 3, 64, 64), dtype=np.float32)
    w = np.zeros((8, 3, 7, 7), dtype=np.float32)
    g = convkit.conv(x, w, border_mode=3, subsample=2)
    problems = [
        normalize_conv_grad_input(g, w, x.shape, border_mode=3, subsample=2),
        normalize_conv_grad_filters(x, g, w.shape, border_mode=3, subsample=2),
    ]
    columns = 3 * 49 * 32 * 32 * 4  # one image's columns
    for problem in problems:
        operands = sum(operand.nbytes for operand in problem.operands)
        assert backend.working_set_bytes(problem) >= operands + columns
        assert 0 < backend.estimate_seconds(problem) < 1


BOUNDS_CHECKED = textwrap.dedent("""\
    import numpy as np, convkit
    from convkit.testing import direct_conv_grad_input, direct_conv_grad_filters
    rng = np.random.default_rng(0)
    layers = [
        ((2, 3, 11, 10), (4, 3, 3, 2), dict(border_mode="full", subsample=(2, 3))),
        ((2, 4, 13), (4, 1, 3), dict(border_mode=((3, 1),), subsample=3, filter_dilation=2, num_groups=4)),
        ((1, 2, 7, 6, 5), (3, 2, 2, 3, 2), dict(border_mode=1, subsample=2)),
        ((2, 3, 9, 9), (4, 3, 3, 3), dict(border_mode="half")),
        ((2, 3, 6, 5), (4, 3, 1, 1), dict()),
        ((1, 3, 20, 20), (4, 3, 7, 7), dict(border_mode=3, subsample=2)),
    ]
    for x_shape, w_shape, layer in layers:
        for dtype in (np.float32, np.float64, np.complex128):
            x = rng.standard_normal(x_shape).astype(dtype)
            w = rng.standard_normal(w_shape).astype(dtype)
            g = rng.standard_normal(convkit.conv(x, w, **layer).shape).astype(dtype)
            got = convkit.conv_grad_input(g, w, x_shape, backend="numba", **layer)
            assert np.allclose(got, direct_conv_grad_input(g, w, x_shape, **layer), atol=1e-4)
            got = convkit.conv_grad_filters(x, g, w_shape, backend="numba", **layer)
            assert np.allclose(got, direct_conv_grad_filters(x, g, w_shape, **layer), atol=1e-3)
    print("ok")
""")


def test_kernels_stay_in_bounds(tmp_path):
    """Under NUMBA_BOUNDSCHECK, with a fresh cache so that the kernels are compiled checked."""
    done = subprocess.run(
        [sys.executable, "-c", BOUNDS_CHECKED],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "ok"
