"""convolve_nd has scipy.signal.fftconvolve's semantics (docs/semantics.rst)."""

import numpy as np
import pytest
import scipy.signal
from hypothesis import given, settings
from hypothesis import strategies as st

import convkit
from convkit.plugin import normalize_convolve
from convkit.testing import direct_convolve_nd

MODES = ["full", "same", "valid"]

SHAPE_CASES = [
    ((7,), (3,), None),
    ((8,), (4,), None),  # even kernel: 'same' centring as scipy
    ((3,), (8,), None),  # second input larger: 'valid' swaps
    ((5, 6), (3, 2), None),
    ((5, 6), (6, 7), None),
    ((1, 9), (3, 4), None),  # size-1 axis treated as broadcast
    ((3, 9), (1, 4), (1,)),
    ((4, 1, 9), (1, 3, 4), (2,)),
    ((2, 3, 5, 5), (1, 3, 3, 3), None),  # the seed's batch example
    ((2, 3, 5, 5), (1, 1, 3, 3), (-2, -1)),
    ((4, 5, 6), (2, 3, 2), (0, 2)),
    ((1,), (1,), None),
    ((6, 1), (1, 5), None),
]


def _broadcast_batch_axes(in1, in2, axes):
    """Both inputs broadcast explicitly along the axes that are not convolved."""
    convolved = (
        set(range(in1.ndim)) if axes is None else {a % in1.ndim for a in np.atleast_1d(axes)}
    )
    if in1.ndim != in2.ndim or in1.size == 0 or in2.size == 0:
        return in1, in2
    shapes = [
        [
            max(a, b) if axis not in convolved and 1 in (a, b) else n
            for axis, (a, b, n) in enumerate(zip(in1.shape, in2.shape, array.shape))
        ]
        for array in (in1, in2)
    ]
    return np.broadcast_to(in1, shapes[0]), np.broadcast_to(in2, shapes[1])


def _assert_matches_fftconvolve(in1, in2, mode, axes, backend=None):
    """Same result as scipy's fftconvolve on the inputs broadcast along the batch axes
    first (scipy's own "same" cuts those to in1's length: scipy#21876), or a ValueError
    where scipy raises one."""
    try:
        expected = scipy.signal.fftconvolve(
            *_broadcast_batch_axes(in1, in2, axes), mode=mode, axes=axes
        )
    except ValueError:
        with pytest.raises(ValueError):
            convkit.convolve_nd(in1, in2, mode, axes=axes, backend=backend)
        return
    result = convkit.convolve_nd(in1, in2, mode, axes=axes, backend=backend)
    assert result.shape == expected.shape
    np.testing.assert_allclose(result, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape1, shape2, axes", SHAPE_CASES)
def test_matches_fftconvolve(rng, shape1, shape2, axes, mode):
    in1 = rng.standard_normal(shape1)
    in2 = rng.standard_normal(shape2)
    _assert_matches_fftconvolve(in1, in2, mode, axes)


BROADCAST_BATCH = [
    # scipy#21876: one signal against 7 filters along axis 1.
    ((1, 100), (7, 10), 1),
    # cupy#10292: the same with a short kernel.
    ((1, 100), (7, 3), 1),
    # The short operand on the other side, and a convolved axis of length 1.
    ((1, 11), (10, 1), (1,)),
    ((7, 10), (1, 100), 1),
    ((5, 1, 9), (1, 4, 3), (-1,)),
    ((3, 1, 8), (1, 4, 4), (0, 2)),
]


def _backends():
    return [info.name for info in convkit.list_backends() if info.available]


@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape1, shape2, axes", BROADCAST_BATCH)
def test_batch_axes_keep_their_broadcast_length(rng, backend, shape1, shape2, axes, mode):
    # The axes that are not convolved broadcast first, then every mode applies to the
    # convolved axes only: "same" keeps in1's length there and the broadcast length on
    # the batch axes (scipy releases without the fix of scipy#21876 cut those to in1's).
    in1, in2 = rng.standard_normal(shape1), rng.standard_normal(shape2)
    _assert_matches_fftconvolve(in1, in2, mode, axes, backend)
    if mode == "same":
        assert convkit.convolve_nd(in1, in2, mode, axes=axes, backend=backend).shape == tuple(
            a if axis in {x % in1.ndim for x in np.atleast_1d(axes)} else max(a, b)
            for axis, (a, b) in enumerate(zip(shape1, shape2))
        )


@st.composite
def convolve_cases(draw):
    ndim = draw(st.integers(1, 3))
    shape1, shape2 = [], []
    for _ in range(ndim):
        kind = draw(st.sampled_from(["conv", "conv", "broadcast1", "broadcast2", "equal"]))
        a, b = draw(st.integers(1, 7)), draw(st.integers(1, 7))
        shape1.append(1 if kind == "broadcast1" else a)
        shape2.append(1 if kind == "broadcast2" else (a if kind == "equal" else b))
    axes = draw(
        st.one_of(
            st.none(),
            st.lists(
                st.integers(-ndim, ndim - 1),
                min_size=1,
                max_size=ndim,
                unique_by=lambda a: a % ndim,
            ),
        )
    )
    mode = draw(st.sampled_from(MODES))
    seed = draw(st.integers(0, 2**32 - 1))
    return tuple(shape1), tuple(shape2), axes, mode, seed


@settings(max_examples=200, deadline=None)
@given(convolve_cases())
def test_property_matches_fftconvolve(case):
    shape1, shape2, axes, mode, seed = case
    rng = np.random.default_rng(seed)
    in1, in2 = rng.standard_normal(shape1), rng.standard_normal(shape2)
    _assert_matches_fftconvolve(in1, in2, mode, axes)


def test_zero_dimensional_inputs_multiply():
    result = convkit.convolve_nd(np.float32(3), np.float32(4))
    assert result.shape == () and result.dtype == np.float32 and result == 12
    assert convkit.convolve_nd(2, 5).dtype == np.float64


@pytest.mark.parametrize("shape1, shape2", [((0,), (3,)), ((4, 0), (2, 2)), ((3,), (0,))])
def test_empty_inputs_give_empty_result(shape1, shape2):
    result = convkit.convolve_nd(np.ones(shape1, np.float32), np.ones(shape2, np.float32))
    assert result.shape == (0,) and result.dtype == np.float32


DTYPE_RULE = [
    (np.float32, np.float32, np.float32),
    (np.float64, np.float64, np.float64),
    (np.complex64, np.complex64, np.complex64),
    (np.complex128, np.complex128, np.complex128),
    (np.float16, np.float16, np.float32),
    (np.int8, np.int8, np.float64),
    (np.int64, np.int32, np.float64),
    (np.uint16, np.uint16, np.float64),
    (np.bool_, np.bool_, np.float64),
    (np.float32, np.float64, np.float64),
    (np.float32, np.complex64, np.complex64),
    (np.float64, np.complex64, np.complex128),
    (np.float16, np.int8, np.float32),
    (np.float32, np.int64, np.float64),
]


@pytest.mark.parametrize("dtype1, dtype2, expected", DTYPE_RULE)
def test_dtype_rule(dtype1, dtype2, expected):
    in1 = np.arange(1, 6).astype(dtype1)
    in2 = np.array([1, 0, 1]).astype(dtype2)
    result = convkit.convolve_nd(in1, in2)
    assert result.dtype == expected
    np.testing.assert_allclose(
        result, np.convolve(in1.astype(complex), in2.astype(complex)), rtol=1e-6, atol=1e-6
    )
    conv_result = convkit.conv1d(in1[None, None], in2[None, None])
    assert conv_result.dtype == expected


def test_complex_values(rng):
    in1 = rng.standard_normal((5, 4)) + 1j * rng.standard_normal((5, 4))
    in2 = rng.standard_normal((3, 2)) + 1j * rng.standard_normal((3, 2))
    for mode in MODES:
        np.testing.assert_allclose(
            convkit.convolve_nd(in1, in2, mode),
            scipy.signal.fftconvolve(in1, in2, mode),
            atol=1e-12,
        )


def _assert_same_nonfinite(result, expected):
    for part in ("real", "imag") if np.iscomplexobj(expected) else ("real",):
        got, want = getattr(result, part), getattr(expected, part)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
        np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want))
        finite = np.isfinite(want)
        np.testing.assert_allclose(got[finite], want[finite], rtol=1e-9, atol=1e-9)


NONFINITE_CASES = [
    ([1.0, np.nan, 1.0, 1.0, 1.0, 1.0], [1.0, 2.0], "full"),
    ([1.0, np.inf, 1.0, 1.0, 1.0, 1.0], [1.0, -2.0, 0.0], "full"),  # inf * 0 is NaN
    ([1.0, np.inf, 1.0, -np.inf, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0], "same"),  # inf + -inf
    ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], [1.0, np.inf], "valid"),
    ([1.0, -np.inf, 0.0, 2.0, 1.0], [np.inf, 1.0, -1.0], "full"),
]


@pytest.mark.parametrize("in1, in2, mode", NONFINITE_CASES)
def test_nonfinite_values_stay_local(in1, in2, mode):
    problem = normalize_convolve(in1, in2, mode=mode)
    expected = direct_convolve_nd(problem)
    result = convkit.convolve_nd(in1, in2, mode)
    _assert_same_nonfinite(result, expected)
    assert np.isfinite(result).any() == np.isfinite(expected).any()


def test_nonfinite_local_in_2d_and_complex(rng):
    image = rng.standard_normal((12, 11))
    image[3, 4] = np.nan
    image[9, 1] = np.inf
    kernel = rng.standard_normal((3, 4))
    kernel[0, 0] = 0.0
    for mode in MODES:
        _assert_same_nonfinite(
            convkit.convolve_nd(image, kernel, mode),
            direct_convolve_nd(normalize_convolve(image, kernel, mode=mode)),
        )
    complex_image = image + 1j * rng.standard_normal(image.shape)
    complex_image[6, 6] = complex(np.inf, 1.0)
    complex_kernel = kernel + 1j * rng.standard_normal(kernel.shape)
    for mode in MODES:
        _assert_same_nonfinite(
            convkit.convolve_nd(complex_image, complex_kernel, mode),
            direct_convolve_nd(normalize_convolve(complex_image, complex_kernel, mode=mode)),
        )


@settings(max_examples=100, deadline=None)
@given(
    size=st.integers(1, 12),
    kernel_size=st.integers(1, 5),
    mode=st.sampled_from(MODES),
    specials=st.lists(
        st.tuples(
            st.booleans(), st.integers(0, 100), st.sampled_from([np.nan, np.inf, -np.inf, 0.0])
        ),
        max_size=4,
    ),
    seed=st.integers(0, 1000),
)
def test_property_nonfinite_locality(size, kernel_size, mode, specials, seed):
    rng = np.random.default_rng(seed)
    in1, in2 = rng.standard_normal(size), rng.standard_normal(kernel_size)
    for in_first, index, value in specials:
        target = in1 if in_first else in2
        target[index % target.size] = value
    problem = normalize_convolve(in1, in2, mode=mode)
    _assert_same_nonfinite(convkit.convolve_nd(in1, in2, mode), direct_convolve_nd(problem))


def test_float32_rounding_within_bound(rng):
    in1 = rng.standard_normal((64, 64)).astype(np.float32)
    in2 = rng.standard_normal((9, 9)).astype(np.float32)
    result = convkit.convolve_nd(in1, in2, "same")
    problem = normalize_convolve(in1, in2, mode="same")
    exact, scale = direct_convolve_nd(problem), direct_convolve_nd(problem, absolute=True)
    assert result.dtype == np.float32
    assert np.all(np.abs(result - exact) <= 1e-6 * scale + 1e-30)
