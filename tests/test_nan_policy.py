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
    padded_values = _pad(values, widths, pad_mode, fillvalue)
    padded_mask = _pad(mask, widths, pad_mode, 1)
    if padded_mask.shape < w.shape:  # "valid" with in1 the shorter: convolution commutes
        numerator = _direct_valid(w, padded_values)
        denominator = _direct_valid(w, padded_mask)
        scale = _direct_valid(np.abs(w), padded_mask)
    else:
        numerator = _direct_valid(padded_values, w)
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


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_an_fft_rounding_residue_in_an_empty_window_is_still_nan(backend):
    """float32 FFT rounding leaves about 1e-6 where m ⊛ w is 0, not far below the smallest
    weight here (6e-5); empty windows are NaN all the same, and the windows that see one
    finite sample through the smallest weights only are not."""
    rng = np.random.default_rng(1)
    x = np.ones((300, 300), np.float32)
    x[100:200, 100:200] = np.nan
    x[150, 150] = 2.0  # seen only through the smallest weights of its neighbours
    w = (rng.random((9, 9)) * np.logspace(-3, 0, 81).reshape(9, 9)).astype(np.float32)
    mask = np.isfinite(x).astype(np.float32)
    if backend == "fftw":  # the case this test is about: the backend's m ⊛ w is not 0 there
        residue = convkit.convolve_nd(mask, w, "same", backend=backend)[110:140, 110:140]
        assert np.count_nonzero(residue) > residue.size // 2
    result = convkit.convolve_nd(x, w, "same", nan_policy="interpolate", backend=backend)
    expected = _expected_interpolate(
        x.astype(np.float64), w.astype(np.float64), "same", "constant", 0
    )
    np.testing.assert_array_equal(np.isnan(result), np.isnan(expected))
    assert np.isnan(result[110:140, 110:140]).all() and np.isfinite(result[146:155, 146:155]).all()
    # An FFT's numerator carries the rounding of the whole transform, large beside the
    # smallest weights: its quotients there keep a digit or two (3% off, measured).
    np.testing.assert_allclose(result, expected, rtol=0.1 if backend == "fftw" else 1e-5)


def _spy(function):
    """``function``, and the list of the in2 arguments of its calls."""
    calls = []

    def spied(in1, in2, *arguments, **keywords):
        calls.append(np.asarray(in2))
        return function(in1, in2, *arguments, **keywords)

    return spied, calls


@pytest.mark.parametrize("operation", ["convolve_nd", "correlate_nd"])
@pytest.mark.parametrize("missing", [0.0, 0.01])
def test_interpolate_convolves_no_more_than_it_needs(rng, operation, missing):
    """Without missing data the denominator is the kernel's sum: one convolution; with some,
    the mask is the second, and no third one computes s where no weights cancel."""
    from convkit._missing import with_nan_policy

    x = rng.standard_normal((64, 50))
    x[rng.random(x.shape) < missing] = np.nan
    w = rng.random((5, 4)) + 0.1
    spied, calls = _spy(getattr(convkit, operation))
    keywords = dict(axes=None, boundary="symm", fillvalue=0, backend="scipy")
    result = with_nan_policy(spied, operation, x, w, "same", "interpolate", False, **keywords)
    assert len(calls) == (1 if missing == 0 else 2)
    kernel_used = w if operation == "convolve_nd" else _reverse_conj(w)
    _assert_close(result, _expected_interpolate(x, kernel_used, "same", "symmetric", 0))


@pytest.fixture(params=["exact sums", "float64 convolution"])
def strategy(request, monkeypatch):
    """Decide the suspect outputs by summing them again, or by convolving s everywhere."""
    import convkit._missing

    outputs_per_term = 0 if request.param == "exact sums" else 10**12
    monkeypatch.setattr(convkit._missing, "_OUTPUTS_PER_GATHERED_TERM", outputs_per_term)
    return request.param


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("boundary, fillvalue, pad_mode", BOUNDARIES)
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("operation", ["convolve_nd", "correlate_nd"])
def test_both_ways_of_deciding_cancellation_agree(
    rng, strategy, backend, boundary, fillvalue, pad_mode, mode, operation
):
    """Weights that sum to 0 over many windows, and a kernel longer than the signal on one
    axis (the rule extends it more than once; "valid" swaps the operands there)."""
    x = rng.standard_normal((4, 13))
    x[rng.random(x.shape) < 0.3] = np.nan
    w = np.array(
        [
            [1.0, -1.0, 0.0],
            [2.0, 0.0, -2.0],
            [0.5, -0.5, 0.0],
            [0.0, 3.0, -3.0],
            [1.0, 0.0, -1.0],
            [0.0, 0.0, 0.0],
            [0.0, 1.0, -1.0],
        ]
    )
    if mode == "valid":
        w = w[:, :2]  # in1 no longer than in2 on either axis: "valid" swaps them
        x = x[:, :2]
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
    expected = _expected_interpolate(x, kernel_used, mode, pad_mode, fillvalue)
    assert np.isfinite(expected).any() and (np.isnan(expected).any() or mode == "valid")
    _assert_close(result, expected)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("fillvalue", [0, 2.5])
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_three_axes_with_fill_samples_beyond_every_edge(rng, strategy, backend, fillvalue, mode):
    """The weights of the fill samples are added box by box, corners and edges of 3-D."""
    x = rng.standard_normal((5, 4, 6))
    x[rng.random(x.shape) < 0.3] = np.nan
    w = rng.random((3, 2, 4)) + 0.1
    w[1, 0, 1] = -2.0
    result = convkit.convolve_nd(
        x, w, mode, fillvalue=fillvalue, nan_policy="interpolate", backend=backend
    )
    _assert_close(result, _expected_interpolate(x, w, mode, "constant", fillvalue))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("operation", ["convolve_nd", "correlate_nd"])
@pytest.mark.parametrize("boundary, pad_mode", [("fill", "constant"), ("wrap", "wrap")])
def test_batch_axes_complex_weights_and_a_kernel_per_slice(
    rng, strategy, backend, operation, boundary, pad_mode
):
    x = rng.standard_normal((1, 17, 3)) + 1j * rng.standard_normal((1, 17, 3))
    x[rng.random(x.shape) < 0.25] = np.nan
    w = rng.standard_normal((2, 4, 1)) + 1j * rng.standard_normal((2, 4, 1))
    w[1] = [[1.0], [-1.0], [1.0], [-1.0]]  # weights that cancel in every full window
    result = getattr(convkit, operation)(
        x, w, "same", axes=1, boundary=boundary, nan_policy="interpolate", backend=backend
    )
    assert result.shape == (2, 17, 3)
    for kernel_slice in range(2):
        for column in range(3):
            kernel_used = w[kernel_slice, :, 0]
            if operation == "correlate_nd":
                kernel_used = _reverse_conj(kernel_used)
            expected = _expected_interpolate(x[0, :, column], kernel_used, "same", pad_mode, 0)
            _assert_close(result[kernel_slice, :, column], expected)
