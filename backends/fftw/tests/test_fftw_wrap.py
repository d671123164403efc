"""The "wrap" boundary on the fftw backend: a circular convolution of the signal's own length."""

import itertools

import numpy as np
import pytest
import scipy.ndimage

import convkit

pytest.importorskip("convkit_fftw")
pytest.importorskip("pyfftw")

from convkit.plugin import normalize_conv, normalize_convolve, resolve_backend
from convkit_fftw import FftwBackend, set_planner_effort
from convkit_fftw._periodic import length_penalty
from convkit_fftw._transforms import fill_folded


@pytest.fixture(autouse=True)
def _cheap_planning():
    set_planner_effort("estimate")
    yield
    set_planner_effort(None)


@pytest.fixture
def circular(monkeypatch):
    """Every "wrap" problem takes the circular route, and never a padded copy."""

    def refuse(problem):
        raise AssertionError(f"made a padded copy for {problem!r}")

    monkeypatch.setattr(FftwBackend, "circular", lambda self, problem: True)
    monkeypatch.setattr("convkit_fftw._backend.explicit_boundary", refuse)


def _operands(rng, shape1, shape2, dtype):
    def draw(shape):
        values = rng.standard_normal(shape)
        if np.dtype(dtype).kind == "c":
            values = values + 1j * rng.standard_normal(shape)
        return values.astype(dtype)

    return draw(shape1), draw(shape2)


def _assert_close(result, expected, scale, dtype):
    tolerance = 5e-6 if np.dtype(dtype) in (np.float32, np.complex64) else 1e-13
    assert result.shape == expected.shape
    assert result.dtype == np.dtype(dtype)
    error = np.abs(result.astype(expected.dtype) - expected)
    assert error.max() <= tolerance * max(float(scale.max()), 1.0)


def _reference(in1, in2, mode, **kwargs):
    """The scipy backend in double precision, which runs on the core's padded copy."""
    wide = np.complex128 if in1.dtype.kind == "c" else np.float64
    expected = convkit.convolve_nd(
        in1.astype(wide), in2.astype(wide), mode, boundary="wrap", backend="scipy", **kwargs
    )
    scale = convkit.convolve_nd(
        np.abs(in1).astype(np.float64),
        np.abs(in2).astype(np.float64),
        mode,
        boundary="wrap",
        backend="scipy",
        **kwargs,
    )
    return expected, scale


# (signal shape, kernel shape): odd and even kernels, kernels longer than the signal
# (several periods), and signals of length 1 on an axis.
SHAPES = [
    ((37,), (5,)),
    ((36,), (4,)),
    ((7,), (23,)),
    ((1,), (4,)),
    ((12, 10), (3, 5)),
    ((9, 8), (4, 2)),
    ((5, 3), (11, 8)),
    ((1, 6), (3, 3)),
    ((6, 5, 7), (3, 3, 3)),
    ((4, 6, 5), (2, 4, 6)),
    ((3, 1, 4), (7, 2, 9)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64", "complex64", "complex128"])
@pytest.mark.parametrize("mode", ["full", "same"])
@pytest.mark.parametrize(("shape1", "shape2"), SHAPES)
def test_circular_route_matches_the_padded_copy(rng, circular, shape1, shape2, mode, dtype):
    in1, in2 = _operands(rng, shape1, shape2, dtype)
    result = convkit.convolve_nd(in1, in2, mode, boundary="wrap", backend="fftw")
    expected, scale = _reference(in1, in2, mode)
    _assert_close(result, expected, scale, dtype)


@pytest.mark.parametrize("mode", ["full", "same"])
def test_batch_axes_broadcast(rng, circular, mode):
    in1, in2 = _operands(rng, (3, 1, 20), (1, 4, 7), "float64")
    result = convkit.convolve_nd(in1, in2, mode, axes=2, boundary="wrap", backend="fftw")
    expected, scale = _reference(in1, in2, mode, axes=2)
    _assert_close(result, expected, scale, "float64")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    ("shape1", "shape2"), [((50,), (7,)), ((16, 15), (5, 3)), ((6, 7, 8), (3, 5, 3))]
)
def test_same_with_odd_kernels_is_ndimage_grid_wrap(rng, circular, shape1, shape2, dtype):
    in1, in2 = _operands(rng, shape1, shape2, dtype)
    result = convkit.convolve_nd(in1, in2, "same", boundary="wrap", backend="fftw")
    expected = scipy.ndimage.convolve(
        in1.astype(np.float64), in2.astype(np.float64), mode="grid-wrap"
    )
    scale = scipy.ndimage.convolve(np.abs(in1).astype(np.float64), np.abs(in2), mode="grid-wrap")
    _assert_close(result, expected, scale, dtype)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("mode", ["full", "same"])
def test_nonfinite_values_reach_the_outputs_of_their_periodic_copies(rng, circular, value, mode):
    in1, in2 = _operands(rng, (9, 8), (4, 3), "float64")
    in1[0, 7] = value  # next to two edges: its copies reach the opposite ones
    in2[1, 1] = 0.0  # inf * 0 is a NaN term
    result = convkit.convolve_nd(in1, in2, mode, boundary="wrap", backend="fftw")
    padded = np.pad(in1, [(3, 3), (2, 2)], mode="wrap")
    direct = np.zeros((padded.shape[0] - 3, padded.shape[1] - 2))
    with np.errstate(invalid="ignore"):
        for i, j in itertools.product(range(direct.shape[0]), range(direct.shape[1])):
            direct[i, j] = np.sum(padded[i : i + 4, j : j + 3] * in2[::-1, ::-1])
    if mode == "same":
        direct = direct[1:10, 1:9]
    assert np.isfinite(result).sum() < result.size  # some, not all, outputs are hit
    np.testing.assert_array_equal(np.isnan(result), np.isnan(direct))
    np.testing.assert_array_equal(np.isposinf(result), np.isposinf(direct))
    np.testing.assert_array_equal(np.isneginf(result), np.isneginf(direct))
    finite = np.isfinite(direct)
    assert np.abs(result[finite] - direct[finite]).max() < 1e-12 * np.abs(direct[finite]).max()


def test_no_padded_copy_is_made(rng, monkeypatch):
    in1, in2 = _operands(rng, (256, 240), (9, 9), "float32")
    problem = normalize_convolve(in1, in2, "same", boundary="wrap")
    assert resolve_backend("fftw").circular(problem)

    def refuse(*args, **kwargs):
        raise AssertionError("numpy.pad was called")

    monkeypatch.setattr(np, "pad", refuse)
    result = convkit.convolve_nd(in1, in2, "same", boundary="wrap", backend="fftw")
    monkeypatch.undo()
    expected, scale = _reference(in1, in2, "same")
    _assert_close(result, expected, scale, "float32")
    explanation = convkit.explain(
        convkit.convolve_nd, in1, in2, "same", boundary="wrap", backend="fftw"
    )
    assert "extends boundary='wrap' itself" in str(explanation)


def test_slow_transform_lengths_take_the_padded_route(rng, monkeypatch):
    backend = resolve_backend("fftw")
    fast = normalize_convolve(
        np.ones(4096, np.float32), np.ones(31, np.float32), "same", boundary="wrap"
    )
    prime = normalize_convolve(
        np.ones(4099, np.float32), np.ones(31, np.float32), "same", boundary="wrap"
    )
    assert backend.circular(fast)
    assert not backend.circular(prime)
    # The padded route's prediction includes the copy, and the working set counts it.
    assert backend.estimate_seconds(prime) < backend._seconds(prime)
    assert backend.working_set_bytes(prime) > 4099 * 4
    in1, in2 = _operands(rng, (4099,), (31,), "float32")
    result = convkit.convolve_nd(in1, in2, "same", boundary="wrap", backend="fftw")
    expected, scale = _reference(in1, in2, "same")
    _assert_close(result, expected, scale, "float32")


def test_a_circular_route_that_does_not_fit_the_budget_is_not_taken():
    backend = resolve_backend("fftw")
    problem = normalize_convolve(np.ones((512, 512)), np.ones((5, 5)), "same", boundary="wrap")
    assert backend.circular(problem)
    convkit.set_memory_limit(12 * 2**20)
    try:
        assert not backend.circular(problem)
    finally:
        convkit.set_memory_limit(None)


def test_length_penalty():
    assert length_penalty(4096) == length_penalty(4116) == length_penalty(1) == 1.0
    assert length_penalty(4125) == 2.5  # 3 * 5^3 * 11
    assert length_penalty(4107) == pytest.approx(37 / 5)  # 3 * 37^2
    assert length_penalty(4099) == 100.0  # prime


def test_fill_folded_adds_every_period():
    data = np.arange(1.0, 11.0)  # ten samples into a period of four, shifted by three
    buffer = np.full(4, np.nan)
    fill_folded(buffer, data, (0,), (3,))
    expected = np.zeros(4)
    for j, value in enumerate(data):
        expected[(j + 3) % 4] += value
    np.testing.assert_array_equal(buffer, expected)
    many = np.ones((40, 40, 40))  # 40 * 40 * 40 runs of one sample: the vectorized fold
    buffer = np.empty((1, 1, 1))
    fill_folded(buffer, many, (0, 1, 2), (0, 0, 0), scale=0.5)
    assert buffer[0, 0, 0] == 32000.0


CONV_CASES = [
    # (input shape, filter shape, border_mode, stride, dilation, groups)
    ((2, 3, 11), (4, 3, 3), "half", 1, 1, 1),
    ((2, 3, 11), (4, 3, 4), "full", 2, 1, 1),
    ((1, 2, 5), (2, 2, 3), "full", 1, 3, 1),  # dilated filter longer than the input
    ((2, 4, 9, 8), (4, 2, 3, 2), "same", 1, 1, 2),
    ((1, 2, 7, 6), (3, 2, 5, 3), ((4, 1), (0, 3)), (2, 3), (1, 2), 1),
    ((1, 1, 3, 4), (1, 1, 3, 3), ((6, 5), (9, 2)), 1, 1, 1),  # padding many periods long
    ((1, 2, 5, 4, 6), (2, 2, 3, 2, 3), "half", (1, 2, 1), 1, 1),
]


@pytest.mark.parametrize("dtype", ["float32", "float64", "complex128"])
@pytest.mark.parametrize(("shape1", "shape2", "border", "stride", "dilation", "groups"), CONV_CASES)
def test_conv_circular_matches_the_padded_copy(
    rng, circular, shape1, shape2, border, stride, dilation, groups, dtype
):
    image, filters = _operands(rng, shape1, shape2, dtype)
    arguments = dict(
        border_mode=border,
        subsample=stride,
        filter_dilation=dilation,
        num_groups=groups,
        boundary="wrap",
    )
    result = convkit.conv(image, filters, **arguments, backend="fftw")
    wide = np.complex128 if image.dtype.kind == "c" else np.float64
    expected = convkit.conv(image.astype(wide), filters.astype(wide), **arguments, backend="scipy")
    scale = convkit.conv(
        np.abs(image).astype(np.float64),
        np.abs(filters).astype(np.float64),
        **arguments,
        backend="scipy",
    )
    _assert_close(result, expected, scale, dtype)


def test_conv_nonfinite_values_stay_local(rng, circular):
    image, filters = _operands(rng, (1, 2, 9, 8), (2, 2, 3, 3), "float64")
    image[0, 1, 8, 0] = np.nan
    result = convkit.conv(image, filters, border_mode="half", boundary="wrap", backend="fftw")
    expected = convkit.conv(image, filters, border_mode="half", boundary="wrap", backend="scipy")
    np.testing.assert_array_equal(np.isnan(result), np.isnan(expected))
    assert 0 < np.isnan(result).sum() < result.size
    finite = np.isfinite(expected)
    np.testing.assert_allclose(result[finite], expected[finite], rtol=0, atol=1e-12)


def test_conv_padded_route_for_prime_lengths(rng):
    backend = resolve_backend("fftw")
    image, filters = _operands(rng, (1, 2, 1031), (3, 2, 5), "float32")
    problem = normalize_conv(image, filters, border_mode="half", boundary="wrap")
    assert not backend.circular(problem)
    smooth = normalize_conv(image[..., :1024], filters, border_mode="half", boundary="wrap")
    assert backend.circular(smooth)
    result = convkit.conv(image, filters, border_mode="half", boundary="wrap", backend="fftw")
    expected = convkit.conv(image, filters, border_mode="half", boundary="wrap", backend="scipy")
    np.testing.assert_allclose(result, expected, rtol=0, atol=1e-4)
