"""conv/conv1d/conv2d/conv3d have Theano's / PyTensor's semantics (docs/semantics.rst)."""

import itertools

import numpy as np
import pytest
import scipy.signal
from hypothesis import given, settings
from hypothesis import strategies as st

import convkit
from convkit.plugin import dilated_extent, normalize_conv
from convkit.testing import direct_conv


def _expected(x, w, border_mode="valid", subsample=1, filter_flip=True, dilation=1, groups=1):
    problem = normalize_conv(
        x,
        w,
        border_mode=border_mode,
        subsample=subsample,
        filter_flip=filter_flip,
        filter_dilation=dilation,
        num_groups=groups,
    )
    return direct_conv(problem)


def test_single_channel_equals_scipy_convolve2d(rng):
    # Theano's documented equivalence: conv2d on (1, 1, H, W) is convolve2d.
    image, kernel = rng.standard_normal((9, 8)), rng.standard_normal((3, 4))
    for mode in ("full", "valid"):
        result = convkit.conv2d(image[None, None], kernel[None, None], border_mode=mode)
        np.testing.assert_allclose(
            result[0, 0], scipy.signal.convolve2d(image, kernel, mode), atol=1e-12
        )
    half = convkit.conv2d(image[None, None], kernel[None, None, :3, :3], border_mode="half")
    np.testing.assert_allclose(
        half[0, 0], scipy.signal.convolve2d(image, kernel[:3, :3], "same"), atol=1e-12
    )


def test_sums_over_channels_per_image_and_filter(rng):
    x, w = rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((4, 3, 3, 2))
    result = convkit.conv2d(x, w, border_mode="full")
    for n, f in itertools.product(range(2), range(4)):
        expected = sum(scipy.signal.convolve2d(x[n, c], w[f, c], "full") for c in range(3))
        np.testing.assert_allclose(result[n, f], expected, atol=1e-12)


def test_filter_flip_false_is_cross_correlation(rng):
    x, w = rng.standard_normal((1, 2, 7, 7)), rng.standard_normal((3, 2, 3, 3))
    result = convkit.conv2d(x, w, filter_flip=False)
    for f in range(3):
        expected = sum(scipy.signal.correlate2d(x[0, c], w[f, c], "valid") for c in range(2))
        np.testing.assert_allclose(result[0, f], expected, atol=1e-12)


def test_stride_subsamples_the_unit_stride_result(rng):
    x, w = rng.standard_normal((2, 2, 11, 10)), rng.standard_normal((3, 2, 3, 2))
    for border_mode in ("valid", "full", "half", 2):
        dense = convkit.conv2d(x, w, border_mode)
        strided = convkit.conv2d(x, w, border_mode, subsample=(2, 3))
        np.testing.assert_allclose(strided, dense[:, :, ::2, ::3], atol=1e-12)


def test_dilation_equals_zero_inserted_kernel(rng):
    x, w = rng.standard_normal((1, 2, 12, 12)), rng.standard_normal((2, 2, 3, 2))
    dilated = np.zeros((2, 2, 5, 4))
    dilated[:, :, ::2, ::3] = w
    np.testing.assert_allclose(
        convkit.conv2d(x, w, "full", filter_dilation=(2, 3)),
        convkit.conv2d(x, dilated, "full"),
        atol=1e-12,
    )


def test_groups_are_independent_convolutions(rng):
    x, w = rng.standard_normal((2, 6, 7, 7)), rng.standard_normal((4, 3, 3, 3))
    result = convkit.conv2d(x, w, "half", num_groups=2)
    np.testing.assert_allclose(result[:, :2], convkit.conv2d(x[:, :3], w[:2], "half"), atol=1e-12)
    np.testing.assert_allclose(result[:, 2:], convkit.conv2d(x[:, 3:], w[2:], "half"), atol=1e-12)


@pytest.mark.parametrize(
    "size, kernel, stride, dilation",
    [
        (7, 3, 1, 1),
        (8, 3, 2, 1),
        (8, 4, 1, 1),
        (9, 2, 3, 2),
        (5, 5, 2, 1),
        (4, 3, 4, 1),
        (1, 3, 1, 1),
    ],
)
def test_same_is_tensorflow_same(rng, size, kernel, stride, dilation):
    x, w = rng.standard_normal((1, 1, size)), rng.standard_normal((1, 1, kernel))
    result = convkit.conv1d(x, w, "same", subsample=stride, filter_dilation=dilation)
    out = -(-size // stride)
    assert result.shape[-1] == out
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    explicit = convkit.conv1d(
        x, w, ((total // 2, total - total // 2),), subsample=stride, filter_dilation=dilation
    )
    np.testing.assert_allclose(result, explicit)


@pytest.mark.parametrize(
    "kernel, dilation, pad", [(3, 1, 1), (4, 1, 2), (5, 1, 2), (3, 2, 2), (2, 3, 2)]
)
def test_half_pads_like_theano(rng, kernel, dilation, pad):
    x, w = rng.standard_normal((1, 1, 9)), rng.standard_normal((1, 1, kernel))
    np.testing.assert_allclose(
        convkit.conv1d(x, w, "half", filter_dilation=dilation),
        convkit.conv1d(x, w, pad, filter_dilation=dilation),
    )


def test_border_mode_forms_agree(rng):
    x, w = rng.standard_normal((1, 2, 6, 7)), rng.standard_normal((1, 2, 3, 3))
    a = convkit.conv2d(x, w, 1)
    b = convkit.conv2d(x, w, (1, 1))
    c = convkit.conv2d(x, w, ((1, 1), (1, 1)))
    d = convkit.conv2d(x, w, "half")
    for other in (b, c, d):
        np.testing.assert_array_equal(a, other)
    asymmetric = convkit.conv2d(x, w, ((0, 2), (1, 0)))
    assert asymmetric.shape == (1, 1, 6, 6)


@pytest.mark.parametrize(
    "spatial, function", [(1, convkit.conv1d), (2, convkit.conv2d), (3, convkit.conv3d)]
)
def test_ranks_against_direct_definition(rng, spatial, function):
    x = rng.standard_normal((2, 4) + (6,) * spatial)
    w = rng.standard_normal((6, 2) + (3,) * (spatial - 1) + (2,))
    for border_mode, stride, dilation, flip in itertools.product(
        ["valid", "full", "half", "same", 1], [1, 2], [1, 2], [True, False]
    ):
        result = function(x, w, border_mode, stride, flip, dilation, 2)
        np.testing.assert_allclose(
            result, _expected(x, w, border_mode, stride, flip, dilation, 2), rtol=1e-12, atol=1e-12
        )
        np.testing.assert_array_equal(
            result, convkit.conv(x, w, border_mode, stride, flip, dilation, 2)
        )


@st.composite
def conv_cases(draw):
    spatial = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 3))
    channels = groups * draw(st.integers(1, 2))
    filters = groups * draw(st.integers(1, 2))
    kernel = [draw(st.integers(1, 3)) for _ in range(spatial)]
    dilation = [draw(st.integers(1, 2)) for _ in range(spatial)]
    stride = [draw(st.integers(1, 3)) for _ in range(spatial)]
    border = draw(
        st.one_of(
            st.sampled_from(["valid", "full", "half", "same"]),
            st.integers(0, 2),
            st.lists(
                st.tuples(st.integers(0, 2), st.integers(0, 2)), min_size=spatial, max_size=spatial
            ).map(tuple),
        )
    )
    sizes = [
        draw(st.integers(dilated_extent(k, d), dilated_extent(k, d) + 4))
        for k, d in zip(kernel, dilation)
    ]
    return {
        "x_shape": (draw(st.integers(1, 2)), channels, *sizes),
        "w_shape": (filters, channels // groups, *kernel),
        "border_mode": border,
        "subsample": tuple(stride),
        "filter_dilation": tuple(dilation),
        "filter_flip": draw(st.booleans()),
        "num_groups": groups,
        "dtype": draw(st.sampled_from([np.float32, np.float64])),
        "seed": draw(st.integers(0, 2**31)),
    }


@settings(max_examples=150, deadline=None)
@given(conv_cases())
def test_property_matches_direct_definition(case):
    rng = np.random.default_rng(case.pop("seed"))
    dtype = case.pop("dtype")
    x = rng.standard_normal(case.pop("x_shape")).astype(dtype)
    w = rng.standard_normal(case.pop("w_shape")).astype(dtype)
    result = convkit.conv(x, w, **case)
    problem = normalize_conv(x, w, **case)
    assert result.dtype == dtype and result.shape == problem.output_shape
    tolerance = 1e-6 if dtype == np.float32 else 1e-13
    scale = direct_conv(problem, absolute=True)
    assert np.all(np.abs(result - direct_conv(problem)) <= tolerance * scale + 1e-30)


def test_output_size_formula(rng):
    x, w = np.ones((1, 1, 10, 9)), np.ones((1, 1, 3, 2))
    result = convkit.conv2d(x, w, ((1, 2), (0, 3)), subsample=(3, 2), filter_dilation=(2, 1))
    assert result.shape == (1, 1, (10 + 3 - 2 * 2 - 1) // 3 + 1, (9 + 3 - 1 - 1) // 2 + 1)


def test_nonfinite_stays_local_and_padding_adds_no_terms():
    x = np.ones((1, 1, 6, 6))
    x[0, 0, 2, 3] = np.nan
    w = np.ones((1, 1, 3, 3))
    result = convkit.conv2d(x, w, "half")
    assert np.isnan(result[0, 0, 1:4, 2:5]).all()
    assert np.isnan(result).sum() == 9
    inf_filter = np.ones((1, 1, 3, 3))
    inf_filter[0, 0, 0, 0] = np.inf
    # An inf tap never meets padded zeros: the 'full' border stays finite only where
    # the inf tap is outside the input.
    result = convkit.conv2d(np.ones((1, 1, 4, 4)), inf_filter, "full", filter_flip=False)
    problem = normalize_conv(
        np.ones((1, 1, 4, 4)), inf_filter, border_mode="full", filter_flip=False
    )
    expected = direct_conv(problem)
    np.testing.assert_array_equal(np.isposinf(result), np.isposinf(expected))
    assert np.isfinite(result).any()


def test_empty_batch_filters_and_channels():
    assert convkit.conv2d(np.ones((0, 2, 5, 5)), np.ones((3, 2, 3, 3))).shape == (0, 3, 3, 3)
    assert convkit.conv2d(np.ones((2, 2, 5, 5)), np.ones((0, 2, 3, 3))).shape == (2, 0, 3, 3)
    zeros = convkit.conv2d(np.ones((2, 0, 5, 5), np.float32), np.ones((3, 0, 3, 3), np.float32))
    assert zeros.shape == (2, 3, 3, 3) and zeros.dtype == np.float32 and not zeros.any()


def test_complex_conv(rng):
    x = rng.standard_normal((1, 2, 5, 5)) + 1j * rng.standard_normal((1, 2, 5, 5))
    w = rng.standard_normal((2, 2, 2, 3)) + 1j * rng.standard_normal((2, 2, 2, 3))
    result = convkit.conv2d(x.astype(np.complex64), w.astype(np.complex64), "full")
    assert result.dtype == np.complex64
    np.testing.assert_allclose(result, _expected(x, w, "full"), rtol=1e-5, atol=1e-5)
