"""convkit.compat against SciPy: signatures, random cases, errors, warnings, NaN locality."""

from __future__ import annotations

import inspect
import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.ndimage
import scipy.signal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import convkit
from convkit.compat import ndimage, signal

SIGNAL = (
    "fftconvolve",
    "oaconvolve",
    "convolve",
    "correlate",
    "convolve2d",
    "correlate2d",
    "choose_conv_method",
)
NDIMAGE = (
    "convolve",
    "correlate",
    "convolve1d",
    "correlate1d",
    "uniform_filter",
    "uniform_filter1d",
    "gaussian_filter",
    "gaussian_filter1d",
)
NDIMAGE_MODES = (
    "reflect",
    "mirror",
    "nearest",
    "wrap",
    "constant",
    "grid-wrap",
    "grid-mirror",
    "grid-constant",
)
CPU_BACKENDS = [
    name
    for name in ("scipy", "numba", "fftw")
    if any(info.name == name and info.available for info in convkit.list_backends())
]
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _signature(function) -> str:
    parameters = inspect.signature(function)
    return str(
        parameters.replace(
            parameters=[
                p.replace(annotation=inspect.Parameter.empty)
                for p in parameters.parameters.values()
            ],
            return_annotation=inspect.Signature.empty,
        )
    )


@pytest.mark.parametrize(
    ("module", "original", "name"),
    [(signal, scipy.signal, name) for name in SIGNAL]
    + [(ndimage, scipy.ndimage, name) for name in NDIMAGE],
)
def test_the_drop_ins_have_scipys_signatures(module, original, name):
    assert name in module.__all__
    assert _signature(getattr(module, name)) == _signature(getattr(original, name))


def test_import_convkit_imports_neither_compat_nor_scipy():
    script = (
        "import sys, convkit\n"
        "print(sorted(m for m in sys.modules if m.startswith(('convkit.compat', 'scipy'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout


def _close(got, expected, dtype=np.float64):
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    tolerance = 2e-5 if np.dtype(dtype).itemsize <= 4 or np.dtype(dtype) == np.complex64 else 1e-10
    scale = max(float(np.abs(expected).max(initial=0)), 1.0)
    assert np.abs(got.astype(np.complex128) - expected).max(initial=0) <= tolerance * scale


def _array(draw, shape, dtype):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if np.dtype(dtype).kind in "iu":
        return rng.integers(-20 if np.dtype(dtype).kind == "i" else 0, 20, shape).astype(dtype)
    values = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        values = values + 1j * rng.standard_normal(shape)
    return values.astype(dtype)


@st.composite
def signal_cases(draw):
    ndim = draw(st.integers(1, 3))
    shape1 = tuple(draw(st.integers(1, 9)) for _ in range(ndim))
    shape2 = tuple(draw(st.integers(1, 6)) for _ in range(ndim))
    dtype = draw(st.sampled_from(["float32", "float64", "complex128", "int16", "uint8"]))
    mode = draw(st.sampled_from(["full", "same", "valid"]))
    if mode == "valid":  # one operand at least as large in every axis
        shape2 = tuple(min(a, b) for a, b in zip(shape1, shape2))
    return _array(draw, shape1, dtype), _array(draw, shape2, dtype), mode


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@FAST
@given(case=signal_cases(), method=st.sampled_from(["auto", "direct", "fft"]))
def test_convolve_and_correlate_match_scipy(backend, case, method):
    in1, in2, mode = case
    with convkit.use_backend(backend):
        for name in ("convolve", "correlate"):
            expected = getattr(scipy.signal, name)(in1, in2, mode, method)
            got = getattr(signal, name)(in1, in2, mode, method)
            if expected.dtype.kind in "iu":
                np.testing.assert_array_equal(got, expected)
                assert got.dtype == expected.dtype
            else:
                _close(got, expected, in1.dtype)
        if in1.dtype.kind != "u":
            for name in ("fftconvolve", "oaconvolve"):
                expected = getattr(scipy.signal, name)(in1, in2, mode)
                _close(getattr(signal, name)(in1, in2, mode), expected, in1.dtype)


@st.composite
def two_d_cases(draw):
    shape1 = (draw(st.integers(1, 8)), draw(st.integers(1, 8)))
    shape2 = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    dtype = draw(st.sampled_from(["float64", "float32", "complex128", "int32"]))
    mode = draw(st.sampled_from(["full", "same", "valid"]))
    if mode == "valid":
        shape2 = tuple(min(a, b) for a, b in zip(shape1, shape2))
    boundary = draw(st.sampled_from(["fill", "wrap", "symm", "circular", "symmetric", "pad"]))
    fillvalue = draw(st.sampled_from([0, 2, -3]))
    return _array(draw, shape1, dtype), _array(draw, shape2, dtype), mode, boundary, fillvalue


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@FAST
@given(case=two_d_cases())
def test_convolve2d_and_correlate2d_match_scipy(backend, case):
    in1, in2, mode, boundary, fillvalue = case
    with convkit.use_backend(backend):
        for name in ("convolve2d", "correlate2d"):
            expected = getattr(scipy.signal, name)(in1, in2, mode, boundary, fillvalue)
            got = getattr(signal, name)(in1, in2, mode, boundary, fillvalue)
            assert got.dtype == expected.dtype
            if in1.dtype.kind in "iu":
                np.testing.assert_array_equal(got, expected)
            else:
                _close(got, expected, in1.dtype)


@st.composite
def ndimage_cases(draw):
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(1, 9)) for _ in range(ndim))
    dtype = draw(st.sampled_from(["float64", "float32", "int32", "uint8", "complex128"]))
    weights_shape = tuple(draw(st.integers(1, 5)) for _ in range(ndim))
    origin = [draw(st.integers(-(n // 2), (n - 1) // 2)) for n in weights_shape]
    mode = draw(st.sampled_from(NDIMAGE_MODES))
    cval = draw(st.sampled_from([0.0, 1.5, -2.0]))
    return _array(draw, shape, dtype), weights_shape, origin, mode, cval


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@FAST
@given(case=ndimage_cases(), seed=st.integers(0, 2**32 - 1))
def test_ndimage_filters_match_scipy(backend, case, seed):
    image, weights_shape, origin, mode, cval = case
    weights = np.random.default_rng(seed).standard_normal(weights_shape)
    if image.dtype.kind in "iu":
        weights = np.rint(weights * 3)  # integer sums: ndimage's truncation is exact
    common = dict(mode=mode, cval=cval)
    with convkit.use_backend(backend):
        for name in ("convolve", "correlate"):
            expected = getattr(scipy.ndimage, name)(image, weights, origin=origin, **common)
            got = getattr(ndimage, name)(image, weights, origin=origin, **common)
            _matches(got, expected)
        for name in ("convolve1d", "correlate1d"):
            args = (image, weights.reshape(-1)[: weights_shape[0]], 0)
            expected = getattr(scipy.ndimage, name)(*args, origin=origin[0], **common)
            _matches(getattr(ndimage, name)(*args, origin=origin[0], **common), expected)
        size = [n + 1 for n in weights_shape]
        _matches(
            ndimage.uniform_filter(image, size, **common),
            scipy.ndimage.uniform_filter(image, size, **common),
        )
        if image.dtype.kind != "c":
            _matches(
                ndimage.gaussian_filter(image, 0.8, order=1, **common),
                scipy.ndimage.gaussian_filter(image, 0.8, order=1, **common),
            )


def _matches(got, expected):
    assert got.dtype == expected.dtype and got.shape == expected.shape
    if expected.dtype.kind in "iu":
        # ndimage truncates toward zero; a sum within rounding of .0 may land on either side
        # only where the weights are not integers (uniform, Gaussian): allow one unit there.
        assert np.abs(got.astype(np.int64) - expected).max(initial=0) <= 1
    else:
        _close(got, expected, expected.dtype)


def test_integer_ndimage_outputs_truncate_like_ndimage():
    image = np.array([1, 2, 3, -1, -2, -3], dtype=np.int32)
    for backend in CPU_BACKENDS:
        with convkit.use_backend(backend):
            got = ndimage.correlate1d(image, [0.5, 0.5])
            expected = scipy.ndimage.correlate1d(image, [0.5, 0.5])
            np.testing.assert_array_equal(got, expected)
            assert got.dtype == np.int32


def test_output_array_is_written_and_returned():
    image = np.arange(20.0).reshape(4, 5)
    out = np.empty((4, 5), np.float32)
    assert ndimage.convolve(image, np.ones((3, 3)), output=out) is out
    np.testing.assert_allclose(out, scipy.ndimage.convolve(image, np.ones((3, 3))), rtol=1e-6)
    assert ndimage.gaussian_filter(image, 1, output=np.float32).dtype == np.float32


def test_axes_and_zero_rank_and_empty_match_scipy():
    a = np.arange(24.0).reshape(2, 3, 4)
    b = np.ones((1, 3, 2))
    for mode in ("full", "same", "valid"):
        expected = scipy.signal.fftconvolve(a, b, mode, axes=(1, 2))
        _close(signal.fftconvolve(a, b, mode, axes=(1, 2)), expected)
    # "same" cuts a broadcast axis to in1's length, as this SciPy does.
    x, y = np.ones((1, 6)), np.arange(12.0).reshape(3, 4)
    _close(signal.fftconvolve(x, y, "same", axes=1), scipy.signal.fftconvolve(x, y, "same", axes=1))
    assert signal.convolve(np.array(3), np.array(4)) == 12
    assert signal.convolve(np.array(3), np.array(4)).dtype == np.array(12).dtype
    assert signal.fftconvolve([], []).shape == (0,)
    assert signal.correlate(np.array(2j), np.array(1j)) == 2


def _raised(call):
    try:
        call()
    except Exception as error:  # noqa: BLE001 - the exception itself is compared
        return type(error), str(error)
    return None


@pytest.mark.parametrize(
    ("name", "args", "kwargs"),
    [
        ("fftconvolve", ([1.0], [[1.0]]), {}),
        ("fftconvolve", ([1.0, 2.0], [1.0]), {"mode": "middle"}),
        ("fftconvolve", (np.ones((2, 3)), np.ones((3, 2))), {"mode": "valid"}),
        ("fftconvolve", (np.ones((2, 3)), np.ones((3, 4))), {"axes": 0}),
        ("fftconvolve", ([[1.0, 2.0]], [[1.0, 2.0]]), {"axes": []}),
        ("oaconvolve", (np.ones((2, 3)), np.ones((3, 2))), {"mode": "valid"}),
        ("convolve", ([1.0], [[1.0]]), {}),
        ("convolve", ([1.0, 2.0], [1.0]), {"method": "fast"}),
        ("convolve", ([1.0, 2.0], [1.0]), {"mode": "middle"}),
        ("correlate", ([1.0, 2.0], [1.0]), {"mode": "middle"}),
        ("correlate", ([1.0, 2.0], [1.0]), {"method": "fast"}),
        ("convolve2d", ([1.0], [1.0]), {}),
        ("convolve2d", ([[1.0]], [[1.0]]), {"boundary": "reflect"}),
        ("correlate2d", ([[1.0]], [[1.0]]), {"mode": "middle"}),
        ("correlate2d", (np.ones((2, 3)), np.ones((3, 2))), {"mode": "valid"}),
    ],
)
def test_signal_errors_are_scipys(name, args, kwargs):
    expected = _raised(lambda: getattr(scipy.signal, name)(*args, **kwargs))
    assert expected is not None
    assert _raised(lambda: getattr(signal, name)(*args, **kwargs)) == expected


@pytest.mark.parametrize(
    ("name", "args", "kwargs"),
    [
        ("convolve", (np.ones(5), np.ones(3)), {"mode": "bounce"}),
        ("correlate", (np.ones(5), np.ones(3)), {"origin": 2}),
        ("correlate", (np.ones((5, 5)), np.ones(3)), {}),
        ("correlate", (np.ones((5, 5)), np.ones((3, 3))), {"mode": ["reflect", "wrap"]}),
        ("correlate1d", (np.ones(5), []), {}),
        ("correlate1d", (np.ones(5), np.ones(3)), {"axis": 2}),
        ("uniform_filter1d", (np.ones(5), 0), {}),
        ("uniform_filter1d", (np.ones(5), 3), {"origin": 2}),
        ("uniform_filter1d", (np.ones(5), 2.0), {}),
        ("uniform_filter", (np.ones((5, 5)),), {"size": (3, 3, 3)}),
        ("gaussian_filter", (np.ones(5, np.float16), 1.0), {}),
        ("gaussian_filter1d", (np.ones(5), 1.0), {"radius": -1}),
        ("gaussian_filter", (np.ones(5), 1.0), {"order": -1}),
        ("correlate", (np.ones(5), np.ones(3)), {"output": np.empty(4)}),
        ("correlate", (np.ones(5), np.ones(3)), {"output": "str"}),
        ("convolve", (np.ones(5), np.ones(3)), {"cval": 1j}),
    ],
)
def test_ndimage_errors_are_scipys(name, args, kwargs):
    expected = _raised(lambda: getattr(scipy.ndimage, name)(*args, **kwargs))
    assert expected is not None
    assert _raised(lambda: getattr(ndimage, name)(*args, **kwargs)) == expected


def test_warnings_are_scipys():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        signal.convolve([np.nan, 1.0], [1.0, 1.0], method="fft")
        ndimage.correlate(np.ones(4), np.ones(2) * 1j, output=np.float64)
    messages = [str(w.message) for w in caught]
    assert any("Use of fft convolution on input with NAN" in m for m in messages)
    assert any("promoting specified output dtype to complex" in m for m in messages)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_nan_and_inf_stay_local_where_scipy_spreads_them(backend):
    x = np.zeros(64)
    x[10] = np.nan
    x[40] = np.inf
    with convkit.use_backend(backend):
        got = signal.fftconvolve(x, np.ones(3), "same")
    assert np.isnan(scipy.signal.fftconvolve(x, np.ones(3), "same")).all()
    assert np.isnan(got[9:12]).all() and np.isinf(got[39:42]).all()
    assert (got[:9] == 0).all() and (got[12:39] == 0).all() and (got[42:] == 0).all()


def test_the_chosen_backend_computes_the_drop_ins(monkeypatch):
    calls = []
    original = convkit.correlate_nd

    def counting(*args, **kwargs):
        calls.append(kwargs.get("backend"))
        return original(*args, **kwargs)

    import convkit.compat.ndimage as compat_ndimage

    monkeypatch.setattr(compat_ndimage, "correlate_nd", counting)
    with convkit.use_backend("scipy"):
        ndimage.gaussian_filter(np.ones((8, 8)), 1)
    assert len(calls) == 2  # one pass per axis, each through convkit
    explained = convkit.explain(convkit.correlate_nd, np.ones((8, 8)), np.ones((3, 1)), "same")
    assert explained is not None


def test_integer_direct_results_fall_back_to_scipy_when_sums_could_overflow():
    big = np.array([2**62, 1], dtype=np.int64)
    np.testing.assert_array_equal(
        signal.convolve(big, big, method="direct"), scipy.signal.convolve(big, big, method="direct")
    )
    small = np.array([[120, 7], [3, 100]], dtype=np.int8)
    np.testing.assert_array_equal(
        signal.convolve2d(small, small), scipy.signal.convolve2d(small, small)
    )


def test_choose_conv_method_is_scipys_and_measures_the_drop_ins():
    a, b = np.ones(1000), np.ones(900)
    assert signal.choose_conv_method(a, b) == scipy.signal.choose_conv_method(a, b)
    method, times = signal.choose_conv_method(a[:50], b[:20], measure=True)
    assert method in ("fft", "direct") and set(times) == {"fft", "direct"}


def test_the_compat_bench_runs_on_tiny_twins(tmp_path):
    """bench/compat.py end to end on its --quick sizes (speed itself is never asserted)."""
    from pathlib import Path

    bench = Path(__file__).resolve().parent.parent / "bench" / "compat.py"
    out = tmp_path / "compat.md"
    done = subprocess.run(
        [sys.executable, str(bench), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = out.read_text()
    assert table.count("| yes |") == 14 and "ndimage.gaussian_filter" in table


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize(
    ("first", "second"),
    [
        (np.int8, np.float32),
        (np.uint16, np.complex64),
        (np.bool_, np.float32),
        (np.float16, np.bool_),
        (np.float16, np.int8),
    ],
)
def test_fft_convolutions_take_scipys_result_dtype_for_mixed_operands(backend, first, second):
    # SciPy transforms each input in its own dtype (integers as float64), so int8 with
    # float32 gives float64, where NumPy's promotion of the pair gives float32.
    rng = np.random.default_rng(3)
    a = (rng.standard_normal((6, 7)) * 4).astype(first)
    b = (rng.standard_normal((3, 2)) * 4).astype(second)
    with convkit.use_backend(backend):
        for name in ("fftconvolve", "oaconvolve"):
            got = getattr(signal, name)(a, b)
            expected = getattr(scipy.signal, name)(a, b)
            assert got.dtype == expected.dtype, (name, got.dtype, expected.dtype)
            # SciPy transforms float32 and complex64 inputs in single precision.
            np.testing.assert_allclose(got, expected, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("name", ["convolve2d", "correlate2d"])
def test_2d_fill_value_is_converted_to_an_integer_result_dtype(backend, name):
    # SciPy converts fillvalue to the result dtype before filling: 2.7 fills int64 with 2.
    image = np.arange(12).reshape(3, 4)
    kernel = np.ones((2, 2), dtype=np.int64)
    with convkit.use_backend(backend):
        got = getattr(signal, name)(image, kernel, fillvalue=2.7)
    expected = getattr(scipy.signal, name)(image, kernel, fillvalue=2.7)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_bool_ndimage_outputs_are_ndimages_truncated_bytes(backend):
    # ndimage writes a bool output as the C cast of its double sum to a byte: a mean of 1/3
    # is False there, not NumPy's "nonzero is True".
    mask = np.array([0, 1, 0, 0, 1, 1, 1, 0], dtype=bool)
    values = np.array([0.3, 1.7, 2.2, -1.5, -0.5, 300.0])
    with convkit.use_backend(backend):
        cases = [
            (ndimage.uniform_filter1d(mask, 3), scipy.ndimage.uniform_filter1d(mask, 3)),
            (ndimage.gaussian_filter(mask, 1.0), scipy.ndimage.gaussian_filter(mask, 1.0)),
            (
                ndimage.correlate1d(values, [1.0], output=bool, mode="constant"),
                scipy.ndimage.correlate1d(values, [1.0], output=bool, mode="constant"),
            ),
        ]
    for got, expected in cases:
        assert got.dtype == expected.dtype == np.bool_
        np.testing.assert_array_equal(got.view(np.uint8), expected.view(np.uint8))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_byte_swapped_ndimage_inputs_are_filtered_like_native_ones(backend):
    rng = np.random.default_rng(5)
    image = rng.standard_normal((6, 7)).astype(">f8")
    weights = rng.standard_normal((3, 2))
    calls = [
        ("convolve", (weights,)),
        ("correlate", (weights,)),
        ("convolve1d", (weights[:, 0],)),
        ("correlate1d", (weights[:, 0],)),
        ("gaussian_filter", (1.0,)),
        ("uniform_filter", (3,)),
    ]
    with convkit.use_backend(backend):
        for name, args in calls:
            got = getattr(ndimage, name)(image, *args)
            expected = getattr(scipy.ndimage, name)(image, *args)
            assert got.dtype == expected.dtype
            _close(got, expected, np.dtype(np.float64))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("name", ["convolve", "correlate"])
def test_nd_filters_leave_out_nan_and_negligible_weights_as_ndimage_does(backend, name):
    # ndimage's N-d filter sums only the weights with |w| > DBL_EPSILON: a NaN weight is
    # left out, not spread over every output.
    image = np.random.default_rng(6).standard_normal((5, 6))
    weights = np.array([[1.0, np.nan], [1e-17, 2.0]])
    with convkit.use_backend(backend):
        got = getattr(ndimage, name)(image, weights)
    expected = getattr(scipy.ndimage, name)(image, weights)
    assert np.isfinite(expected).all()
    _close(got, expected, np.dtype(np.float64))
