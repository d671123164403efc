"""convolve_nd and correlate_nd against libraries that define the same thing, where they
are installed (each test skips cleanly otherwise), on every available CPU backend.

These extend the comparisons in test_boundary.py, test_correlate.py and
test_nan_policy.py: kernels longer than the signal against scipy.ndimage (and which
ndimage mode is numpy.pad's "wrap"), scipy.ndimage.correlate with a fill value,
scipy.signal.correlate2d with its boundaries, nan_policy="fill" against ndimage on the
filled signal, and astropy's NaN interpolation in 1-D and 3-D and for correlation.
"""

import numpy as np
import pytest

import convkit

CPU_BACKENDS = [
    info.name
    for info in convkit.list_backends()
    if info.available and info.name in ("scipy", "numba", "fftw")
]
# (boundary, fillvalue, scipy.ndimage modes that mean the same for a filter)
NDIMAGE_MODES = [
    ("fill", -1.5, ("constant", "grid-constant")),
    ("wrap", 0, ("wrap", "grid-wrap")),
    ("symm", 0, ("reflect", "grid-mirror")),
    ("mirror", 0, ("mirror",)),
    ("nearest", 0, ("nearest",)),
]


def _close(result, expected):
    np.testing.assert_array_equal(np.isnan(result), np.isnan(expected))
    np.testing.assert_allclose(result, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("boundary, fillvalue, modes", NDIMAGE_MODES)
@pytest.mark.parametrize(
    "signal_shape, kernel_shape", [((3,), (9,)), ((2, 5), (7, 3)), ((1, 4, 2), (3, 5, 5))]
)
def test_kernels_longer_than_the_signal_repeat_the_rule_as_ndimage_does(
    rng, backend, boundary, fillvalue, modes, signal_shape, kernel_shape
):
    """ndimage's filters extend the input by the rule as far as the kernel reaches; for
    them "wrap" and "grid-wrap" are one mode, numpy.pad's "wrap"."""
    ndimage = pytest.importorskip("scipy.ndimage")
    signal = rng.standard_normal(signal_shape)
    kernel = rng.standard_normal(kernel_shape)
    keywords = dict(boundary=boundary, fillvalue=fillvalue, backend=backend)
    convolved = convkit.convolve_nd(signal, kernel, "same", **keywords)
    correlated = convkit.correlate_nd(signal, kernel, "same", **keywords)
    for mode in modes:
        _close(convolved, ndimage.convolve(signal, kernel, mode=mode, cval=fillvalue))
        _close(correlated, ndimage.correlate(signal, kernel, mode=mode, cval=fillvalue))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_correlate_with_a_fill_value_equals_ndimage_constant(rng, backend, rank):
    ndimage = pytest.importorskip("scipy.ndimage")
    signal = rng.standard_normal((9, 6, 5)[:rank])
    kernel = rng.standard_normal((3, 5, 1)[:rank])
    result = convkit.correlate_nd(
        signal, kernel, "same", boundary="fill", fillvalue=2.25, backend=backend
    )
    _close(result, ndimage.correlate(signal, kernel, mode="constant", cval=2.25))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("boundary", ["fill", "wrap", "symm"])
@pytest.mark.parametrize(
    "mode, signal_shape, kernel_shape",
    [
        ("full", (7, 9), (3, 3)),
        ("full", (7, 9), (2, 4)),
        ("full", (3, 4), (6, 7)),
        ("same", (7, 9), (3, 5)),
        ("same", (3, 4), (5, 7)),
        ("valid", (7, 9), (3, 4)),
        ("valid", (6, 5), (6, 2)),
    ],
)
@pytest.mark.parametrize("complex_values", [False, True], ids=["real", "complex"])
def test_2d_correlation_equals_scipy_correlate2d(
    rng, backend, boundary, mode, signal_shape, kernel_shape, complex_values
):
    """scipy.signal.correlate2d agrees with scipy.signal.correlate, whose semantics
    correlate_nd has, except in "same" with an even kernel (correlate2d centres it one
    sample later) and in "valid" with in2 the larger (correlate2d reverses the result);
    those are left out."""
    signal_module = pytest.importorskip("scipy.signal")
    signal = rng.standard_normal(signal_shape)
    kernel = rng.standard_normal(kernel_shape)
    fillvalue = 0.75 if boundary == "fill" else 0
    if complex_values:
        signal = signal + 1j * rng.standard_normal(signal_shape)
        kernel = kernel + 1j * rng.standard_normal(kernel_shape)
        fillvalue = 0.75 - 0.5j if boundary == "fill" else 0
    expected = signal_module.correlate2d(
        signal, kernel, mode, boundary=boundary, fillvalue=fillvalue
    )
    result = convkit.correlate_nd(
        signal, kernel, mode, boundary=boundary, fillvalue=fillvalue, backend=backend
    )
    assert result.shape == expected.shape
    _close(result, expected)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("boundary, fillvalue, modes", NDIMAGE_MODES)
@pytest.mark.parametrize("function", ["convolve", "correlate"])
def test_nan_policy_fill_equals_ndimage_on_the_filled_signal(
    rng, backend, boundary, fillvalue, modes, function
):
    ndimage = pytest.importorskip("scipy.ndimage")
    signal = rng.standard_normal((11, 8))
    signal[[0, 3, 3, 10], [0, 4, 5, 7]] = [np.nan, np.inf, -np.inf, np.nan]
    kernel = rng.standard_normal((3, 5))
    filled = np.where(np.isfinite(signal), signal, fillvalue)
    expected = getattr(ndimage, function)(filled, kernel, mode=modes[0], cval=fillvalue)
    result = getattr(convkit, f"{function}_nd")(
        signal,
        kernel,
        "same",
        boundary=boundary,
        fillvalue=fillvalue,
        nan_policy="fill",
        backend=backend,
    )
    _close(result, expected)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize(
    "boundary, astropy_boundary, fillvalue",
    [("fill", "fill", 0.0), ("fill", "fill", 2.5), ("wrap", "wrap", 0), ("nearest", "extend", 0)],
)
@pytest.mark.parametrize(
    "signal_shape, kernel_shape", [((40,), (5,)), ((9, 8, 7), (3, 5, 3))], ids=["1d", "3d"]
)
@pytest.mark.parametrize("preserve_nan", [False, True])
@pytest.mark.parametrize("function", ["convolve", "correlate"])
def test_interpolate_equals_astropy(
    rng,
    backend,
    boundary,
    astropy_boundary,
    fillvalue,
    signal_shape,
    kernel_shape,
    preserve_nan,
    function,
):
    """astropy counts fill samples as finite ones, as convkit does; its kernels are odd.
    Correlation is astropy's convolution with the kernel reversed (it is real here)."""
    astropy_convolution = pytest.importorskip("astropy.convolution")
    signal = rng.standard_normal(signal_shape)
    signal[rng.random(signal_shape) < 0.2] = np.nan
    kernel = rng.random(kernel_shape) + 0.1
    reversed_kernel = kernel[tuple(slice(None, None, -1) for _ in kernel_shape)]
    expected = astropy_convolution.convolve(
        signal,
        kernel if function == "convolve" else reversed_kernel,
        boundary=astropy_boundary,
        fill_value=fillvalue,
        nan_treatment="interpolate",
        normalize_kernel=True,
        preserve_nan=preserve_nan,
    )
    result = getattr(convkit, f"{function}_nd")(
        signal,
        kernel,
        "same",
        boundary=boundary,
        fillvalue=fillvalue,
        nan_policy="interpolate",
        preserve_nan=preserve_nan,
        backend=backend,
    )
    _close(result, expected)
