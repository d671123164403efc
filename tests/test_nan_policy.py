"""nan_policy and preserve_nan of convolve_nd and correlate_nd, on every available CPU backend.

The reference is the float64 direct definition on the signal and its finite
mask, both extended with numpy.pad (the mask with 1 for "fill": fill samples are
finite samples), and astropy.convolution.convolve(nan_treatment="interpolate")
where astropy is installed.
"""

import numpy as np
import pytest

import convkit

CPU_BACKENDS = [
    info.name
    for info in convkit.list_backends()
    if info.available and info.name in ("scipy", "numba", "fftw")
]
# (boundary, fillvalue, numpy.pad mode)
BOUNDARIES = [
    ("fill", 0, "constant"),
    ("fill", 2.5, "constant"),
    ("wrap", 0, "wrap"),
    ("symm", 0, "symmetric"),
    ("mirror", 0, "reflect"),
    ("nearest", 0, "edge"),
]


def _pad(array, widths, pad_mode, fillvalue):
    if pad_mode == "constant":
        return np.pad(array, widths, mode="constant", constant_values=fillvalue)
    return np.pad(array, widths, mode=pad_mode)


def _direct_valid(signal, kernel):
    """``sum_k kernel[k] * signal[o + m - 1 - k]`` in float64 (or complex128), every axis."""
    out_shape = tuple(a - b + 1 for a, b in zip(signal.shape, kernel.shape))
    out = np.zeros(out_shape, dtype=np.result_type(signal, kernel, np.float64))
    for offset in np.ndindex(kernel.shape):
        window = tuple(
            slice(m - 1 - k, m - 1 - k + o) for k, m, o in zip(offset, kernel.shape, out_shape)
        )
        out += kernel[offset] * signal[window]
    return out


def _expected_interpolate(x, w, mode, pad_mode, fillvalue):
    finite = np.isfinite(x)
    values = np.where(finite, x, 0)
    mask = finite.astype(np.float64)
    if mode == "valid":
        widths = [(0, 0)] * x.ndim
    elif mode == "full":
        widths = [(m - 1, m - 1) for m in w.shape]
    else:
        widths = [((m - 1) - (m - 1) // 2, (m - 1) // 2) for m in w.shape]
    numerator = _direct_valid(_pad(values, widths, pad_mode, fillvalue), w)
    padded_mask = _pad(mask, widths, pad_mode, 1)
    denominator = _direct_valid(padded_mask, w)
    scale = _direct_valid(padded_mask, np.abs(w))
    empty = (scale == 0) | (np.abs(denominator) <= np.sqrt(np.finfo(np.float64).eps) * scale)
    result = numerator / np.where(empty, 1, denominator)
    result[empty] = np.nan
    return result


def _reverse_conj(w):
    return np.conj(w[tuple(slice(None, None, -1) for _ in range(w.ndim))])


def _assert_close(result, expected):
    np.testing.assert_array_equal(np.isnan(result), np.isnan(expected))
    np.testing.assert_allclose(result, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("boundary, fillvalue, pad_mode", BOUNDARIES)
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("rank", [1, 2])
@pytest.mark.parametrize("kernel", [3, 4])
@pytest.mark.parametrize("operation", ["convolve_nd", "correlate_nd"])
def test_interpolate_is_normalized_convolution(
    rng, backend, boundary, fillvalue, pad_mode, mode, rank, kernel, operation
):
    x = rng.standard_normal((11, 9)[:rank])
    x[rng.random(x.shape) < 0.2] = np.nan
    x.flat[2] = np.inf
    w = rng.random((kernel, kernel - 1)[:rank]) + 0.1
    result = getattr(convkit, operation)(
        x,
        w,
        mode,
        boundary=boundary,
        fillvalue=fillvalue,
        nan_policy="interpolate",
        backend=backend,
    )
    kernel_used = w if operation == "convolve_nd" else _reverse_conj(w)
    _assert_close(result, _expected_interpolate(x, kernel_used, mode, pad_mode, fillvalue))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_windows_without_finite_samples_are_nan(backend):
    """An FFT method leaves rounding noise where m ⊛ w is 0; the result is still NaN."""
    x = np.ones((40, 40))
    x[5:20, 10:30] = np.nan
    w = np.ones((3, 5))
    result = convkit.convolve_nd(
        x, w, "same", boundary="nearest", nan_policy="interpolate", backend=backend
    )
    expected = np.zeros_like(x)
    expected[6:19, 12:28] = np.nan
    np.testing.assert_array_equal(np.isnan(result), np.isnan(expected))
    np.testing.assert_allclose(result[~np.isnan(result)], 1.0, rtol=1e-12)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_a_kernel_that_sums_to_zero_over_the_window_gives_nan(backend):
    result = convkit.convolve_nd(
        [1.0, 2.0, np.nan, 4.0], [1.0, -1.0], "valid", nan_policy="interpolate", backend=backend
    )
    # windows (1, 2): m ⊛ w = 1 - 1 = 0; (2, nan): -2 / -1; (nan, 4): 4 / 1
    _assert_close(result, [np.nan, 2.0, 4.0])


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_preserve_nan_puts_nan_back(rng, backend):
    x = rng.standard_normal((8, 7))
    x[3, 4] = np.nan
    x[0, 0] = -np.inf
    w = rng.random((3, 3)) + 0.1
    plain = convkit.convolve_nd(x, w, "same", nan_policy="interpolate", backend=backend)
    preserved = convkit.convolve_nd(
        x, w, "same", nan_policy="interpolate", preserve_nan=True, backend=backend
    )
    assert np.isfinite(plain).all()
    np.testing.assert_array_equal(np.isnan(preserved), ~np.isfinite(x))
    np.testing.assert_array_equal(preserved[np.isfinite(x)], plain[np.isfinite(x)])


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("operation", ["convolve_nd", "correlate_nd"])
@pytest.mark.parametrize("boundary", ["fill", "wrap", "nearest"])
def test_fill_counts_nonfinite_samples_as_fillvalue(rng, backend, operation, boundary):
    x = rng.standard_normal((9, 6)) + 1j * rng.standard_normal((9, 6))
    x[2, 3] = np.nan
    x[5, 1] = complex(np.inf, 0)
    w = rng.standard_normal((3, 2))
    fillvalue = 1.5 - 1j if boundary == "fill" else 0
    run = getattr(convkit, operation)
    result = run(
        x, w, "full", boundary=boundary, fillvalue=fillvalue, nan_policy="fill", backend=backend
    )
    replaced = np.where(np.isfinite(x), x, fillvalue)
    expected = run(replaced, w, "full", boundary=boundary, fillvalue=fillvalue, backend="scipy")
    assert np.isfinite(result).all()
    np.testing.assert_allclose(result, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_dtypes_and_inputs_unchanged(rng, backend):
    x = rng.standard_normal(20).astype(np.float32)
    x[4] = np.nan
    copy = x.copy()
    result = convkit.convolve_nd(
        x, np.ones(3, np.float32), "same", nan_policy="interpolate", backend=backend
    )
    assert result.dtype == np.float32
    assert np.isfinite(result).all()
    np.testing.assert_array_equal(x, copy)
    assert convkit.convolve_nd([1, 2, 3], [1, 1], nan_policy="fill").dtype == np.float64


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize(
    "boundary, astropy_boundary", [("fill", "fill"), ("wrap", "wrap"), ("nearest", "extend")]
)
@pytest.mark.parametrize("preserve_nan", [False, True])
def test_equals_astropy_interpolate(rng, backend, boundary, astropy_boundary, preserve_nan):
    astropy_convolution = pytest.importorskip("astropy.convolution")
    x = rng.standard_normal((15, 12))
    x[rng.random(x.shape) < 0.15] = np.nan
    w = rng.random((5, 3)) + 0.1
    expected = astropy_convolution.convolve(
        x,
        w,
        boundary=astropy_boundary,
        fill_value=0.0,
        nan_treatment="interpolate",
        normalize_kernel=False,
        preserve_nan=preserve_nan,
    )
    result = convkit.convolve_nd(
        x,
        w,
        "same",
        boundary=boundary,
        nan_policy="interpolate",
        preserve_nan=preserve_nan,
        backend=backend,
    )
    # astropy rescales the normalized result by the kernel's sum when normalize_kernel=False.
    _assert_close(result * w.sum(), expected)


@pytest.mark.parametrize("function", [convkit.convolve_nd, convkit.correlate_nd])
def test_zero_dimensional_and_empty_inputs(function):
    assert function(np.array(3.0), np.array(2.0), nan_policy="interpolate") == 3.0
    assert np.isnan(function(np.array(np.nan), np.array(2.0), nan_policy="interpolate"))
    assert function(np.array(np.nan), np.array(2.0), nan_policy="fill", fillvalue=1.5) == 3.0
    empty = function(np.ones((0, 3)), np.ones((2, 2)), "same", nan_policy="interpolate")
    assert empty.shape == (0,)


@pytest.mark.parametrize("function", [convkit.convolve_nd, convkit.correlate_nd])
@pytest.mark.parametrize(
    "keywords, error, pattern",
    [
        ({"nan_policy": "omit"}, ValueError, r"nan_policy must be one of 'propagate', "),
        ({"nan_policy": None}, TypeError, r"nan_policy must be one of"),
        ({"preserve_nan": 1}, TypeError, r"preserve_nan must be True or False, got 1"),
        ({"preserve_nan": True}, ValueError, r"preserve_nan=True applies only to nan_policy="),
        (
            {"preserve_nan": True, "nan_policy": "interpolate", "mode": "full"},
            ValueError,
            r"preserve_nan=True needs mode='same'",
        ),
        ({"nan_policy": "fill", "mode": "wide"}, ValueError, r"mode must be one of"),
        (
            {"nan_policy": "interpolate", "boundary": "wrap", "fillvalue": 1.0},
            ValueError,
            r"fillvalue=1.0 applies only to boundary='fill'",
        ),
    ],
)
def test_bad_arguments(function, keywords, error, pattern):
    name = function.__name__
    with pytest.raises(error, match=f"^{name}: {pattern}"):
        function(np.ones(5), np.ones(3), **keywords)
