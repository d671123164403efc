"""Complex conv layers with NaN or inf, large enough for the GEMM paths.

OpenBLAS's complex GEMM does not multiply as the direct definition does: with
an infinity it gives NaN real or imaginary parts where the sum of the complex
products is inf.  The backend runs such problems on its direct kernels; each
case here is judged by the conformance kit (non-finite outputs exactly where,
and as, the float64 direct definition has them; finite ones within the bound).
"""

import math

import numpy as np
import pytest

import convkit
from convkit.plugin import normalize_conv
from convkit.testing import Case, check_case

pytest.importorskip("convkit_numba")

from convkit_numba import _backend
from convkit_numba._backend import NumbaBackend

# (input shape, filter shape, border mode, stride, groups): the GEMM path each takes when finite.
LAYERS = {
    "per-image GEMM on workers": ((2, 8, 48, 48), (8, 8, 3, 3), "valid", 1, 1),
    "per-image GEMM on workers, padded": ((2, 8, 48, 48), (8, 8, 3, 3), "half", 1, 1),
    "one image, GEMM in place": ((1, 16, 48, 48), (16, 16, 3, 3), "valid", 1, 1),
    "images side by side in one GEMM": ((2, 16, 24, 24), (16, 16, 3, 3), "valid", 1, 1),
    "images side by side, padded": ((2, 16, 24, 24), (16, 16, 3, 3), "half", 1, 1),
    "images side by side, groups": ((2, 16, 34, 34), (16, 8, 3, 3), "valid", 1, 2),
    "images side by side, strided": ((2, 16, 48, 48), (16, 16, 3, 3), "half", 2, 1),
    "1x1 layer, one matmul": ((2, 64, 20, 20), (64, 64, 1, 1), "valid", 1, 1),
}
NONFINITE = {
    "filter inf": ((1, 0.4, math.inf),),
    "input -inf": ((0, 0.6, -math.inf),),
    "nan, +-inf and a zero": (
        (0, 0.3, math.nan),
        (0, 0.7, math.inf),
        (1, 0.2, -math.inf),
        (1, 0.5, 0.0),
    ),
}


def _case(layer: str, dtype: str, nonfinite: tuple = ()) -> Case:
    input_shape, filter_shape, border, stride, groups = LAYERS[layer]
    params = (
        ("border_mode", border),
        ("subsample", stride),
        ("filter_flip", True),
        ("filter_dilation", 1),
        ("num_groups", groups),
    )
    return Case("conv", (input_shape, filter_shape), dtype, params, nonfinite=nonfinite)


def _problem(case: Case):
    x, w = case.arrays()
    return normalize_conv(x, w, **case.kwargs)


@pytest.mark.parametrize("layer", LAYERS)
def test_each_layer_takes_a_gemm_path_when_finite(layer):
    assert NumbaBackend._uses_gemm(_problem(_case(layer, "complex64")))


@pytest.mark.parametrize("nonfinite", NONFINITE)
@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
@pytest.mark.parametrize("layer", LAYERS)
def test_complex_nonfinite_values_stay_where_the_direct_definition_puts_them(
    layer, dtype, nonfinite
):
    result = check_case("numba", _case(layer, dtype, NONFINITE[nonfinite]))
    assert result.status == "pass", result.message


@pytest.mark.parametrize(
    ("dtype", "nonfinite", "gemm"),
    [
        ("complex64", (), True),
        ("complex128", (), True),
        ("float32", NONFINITE["nan, +-inf and a zero"], True),
        ("complex64", NONFINITE["filter inf"], False),
        ("complex128", NONFINITE["input -inf"], False),
    ],
    ids=[
        "complex64 finite",
        "complex128 finite",
        "float32 non-finite",
        "complex64 inf",
        "complex128 -inf",
    ],
)
def test_only_complex_nonfinite_problems_leave_the_gemm(monkeypatch, dtype, nonfinite, gemm):
    calls = []
    original = _backend._conv_gemm

    def spy(problem):
        calls.append(problem.dtype)
        return original(problem)

    monkeypatch.setattr(_backend, "_conv_gemm", spy)
    case = _case("images side by side in one GEMM", dtype, nonfinite)
    x, w = case.arrays()
    with np.errstate(invalid="ignore"):
        convkit.conv(x, w, **case.kwargs, backend="numba")
    assert bool(calls) is gemm
