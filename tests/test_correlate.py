"""correlate_nd: scipy.signal.correlate's semantics on every available CPU backend.

The references are scipy.signal.correlate with its direct method in float64 (it
has no ``axes``: with axes, each slice along the other axes is correlated on its
own), scipy.ndimage.correlate for the boundaries, and numpy.pad plus "valid" for
"full" with a boundary.
"""

import numpy as np
import pytest
import scipy.ndimage
import scipy.signal

import convkit
from convkit.plugin import normalize_convolve

CPU_BACKENDS = [
    info.name
    for info in convkit.list_backends()
    if info.available and info.name in ("scipy", "numba", "fftw")
]
# (boundary, numpy.pad mode, scipy.ndimage mode)
BOUNDARIES = [
    ("wrap", "wrap", "wrap"),
    ("symm", "symmetric", "reflect"),
    ("mirror", "reflect", "mirror"),
    ("nearest", "edge", "nearest"),
]


def _operand(rng, shape, complex_values):
    values = rng.standard_normal(shape)
    if complex_values:
        values = values + 1j * rng.standard_normal(shape)
    return values


def _close(result, expected):
    np.testing.assert_allclose(result, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("kernel", [3, 4])
@pytest.mark.parametrize("complex_values", [False, True], ids=["real", "complex"])
@pytest.mark.parametrize("swapped", [False, True], ids=["in1-larger", "in2-larger"])
def test_equals_scipy_correlate(rng, backend, mode, rank, kernel, complex_values, swapped):
    in1 = _operand(rng, (9, 7, 6)[:rank], complex_values)
    in2 = _operand(rng, (kernel, kernel - 1, kernel)[:rank], complex_values)
    if swapped:
        in1, in2 = in2, in1
    expected = scipy.signal.correlate(in1, in2, mode, method="direct")
    result = convkit.correlate_nd(in1, in2, mode, backend=backend)
    assert result.shape == expected.shape
    assert result.dtype == expected.dtype
    _close(result, expected)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("axes", [(1, 2), (0,), (2,), -1])
@pytest.mark.parametrize("broadcast", [False, True])
def test_axes_correlate_each_slice(rng, backend, mode, axes, broadcast):
    """The axes not named are a batch: each slice along them is SciPy's correlation."""
    named = {axis % 3 for axis in np.atleast_1d(axes)}
    in1 = _operand(rng, (3, 7, 5), True)
    in2 = _operand(rng, [(2, 4, 2)[a] if a in named else in1.shape[a] for a in range(3)], True)
    if broadcast:
        batch_axis = min({0, 1, 2} - named)
        in2 = np.take(in2, [0], axis=batch_axis)
    result = convkit.correlate_nd(in1, in2, mode, axes=axes, backend=backend)
    batch = [axis for axis in range(3) if axis not in named]
    for index in np.ndindex(*(in1.shape[axis] for axis in batch)):
        selector1 = [slice(None)] * 3
        selector2 = [slice(None)] * 3
        for axis, position in zip(batch, index):
            selector1[axis] = position
            selector2[axis] = 0 if in2.shape[axis] == 1 else position
        expected = scipy.signal.correlate(
            in1[tuple(selector1)], in2[tuple(selector2)], mode, method="direct"
        )
        _close(result[tuple(selector1)], expected)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("boundary, pad_mode, ndimage_mode", BOUNDARIES)
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_same_with_odd_kernel_equals_ndimage_correlate(
    rng, backend, boundary, pad_mode, ndimage_mode, rank
):
    in1 = rng.standard_normal((8, 7, 5)[:rank])
    in2 = rng.standard_normal((3, 5, 3)[:rank])
    result = convkit.correlate_nd(in1, in2, "same", boundary=boundary, backend=backend)
    _close(result, scipy.ndimage.correlate(in1, in2, mode=ndimage_mode))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("boundary, pad_mode, _", [*BOUNDARIES, ("fill", "constant", None)])
@pytest.mark.parametrize("kernel_shape", [(3, 4), (4, 2), (9, 2)])
def test_full_is_valid_on_the_extended_signal(rng, backend, boundary, pad_mode, _, kernel_shape):
    in1 = _operand(rng, (6, 5), True)
    in2 = _operand(rng, kernel_shape, True)
    fillvalue = 1.5 - 2j if boundary == "fill" else 0
    widths = [(m - 1, m - 1) for m in in2.shape]
    if pad_mode == "constant":
        padded = np.pad(in1, widths, mode="constant", constant_values=fillvalue)
    else:
        padded = np.pad(in1, widths, mode=pad_mode)
    result = convkit.correlate_nd(
        in1, in2, "full", boundary=boundary, fillvalue=fillvalue, backend=backend
    )
    _close(result, scipy.signal.correlate(padded, in2, "valid", method="direct"))


def _direct_correlate(in1, in2, mode):
    """``full[k] = sum_j in1[j] * conj(in2[j - k + m - 1])`` over the terms that exist only
    (SciPy's direct method also multiplies in2 by the zeros around in1, so a non-finite in2
    reaches every output there)."""
    full_shape = tuple(a + b - 1 for a, b in zip(in1.shape, in2.shape))
    full = np.zeros(full_shape, dtype=np.result_type(in1, in2, np.float64))
    with np.errstate(invalid="ignore"):  # inf - inf is NaN, as it should be
        for offset in np.ndindex(in2.shape):
            start = [m - 1 - t for m, t in zip(in2.shape, offset)]
            window = tuple(slice(s, s + a) for s, a in zip(start, in1.shape))
            full[window] += in1 * np.conj(in2[offset])
    if mode == "full":
        return full
    if mode == "same":
        return full[
            tuple(slice((b - 1) // 2, (b - 1) // 2 + a) for a, b in zip(in1.shape, in2.shape))
        ]
    return full[tuple(slice(b - 1, a) for a, b in zip(in1.shape, in2.shape))]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_stays_local(rng, backend, mode, bad):
    in1 = rng.standard_normal((12, 11))
    in2 = rng.standard_normal((3, 4))
    in1[5, 6] = bad
    in2[1, 2] = bad
    finite_in2 = in2.copy()
    finite_in2[1, 2] = 0.5
    _close(
        _direct_correlate(in1[:4], finite_in2, mode),
        scipy.signal.correlate(in1[:4], finite_in2, mode, method="direct"),
    )
    expected = _direct_correlate(in1, in2, mode)
    result = convkit.correlate_nd(in1, in2, mode, backend=backend)
    np.testing.assert_array_equal(np.isnan(result), np.isnan(expected))
    np.testing.assert_array_equal(np.isposinf(result), np.isposinf(expected))
    np.testing.assert_array_equal(np.isneginf(result), np.isneginf(expected))
    finite = np.isfinite(expected)
    _close(result[finite], expected[finite])


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_dtypes_follow_the_convolve_rule(rng, backend):
    in1 = rng.standard_normal(10).astype(np.float32)
    in2 = (rng.standard_normal(3) + 1j * rng.standard_normal(3)).astype(np.complex64)
    assert convkit.correlate_nd(in1, in1[:3], backend=backend).dtype == np.float32
    result = convkit.correlate_nd(in1, in2, backend=backend)
    assert result.dtype == np.complex64
    np.testing.assert_allclose(
        result,
        scipy.signal.correlate(in1.astype(np.complex128), in2.astype(np.complex128)),
        rtol=1e-5,
        atol=1e-5,
    )
    integers = convkit.correlate_nd([1, 2, 3], [True, False], backend=backend)
    assert integers.dtype == np.float64
    _close(integers, [0, 1, 2, 3])


def test_zero_dimensional_inputs_multiply_by_the_conjugate():
    assert convkit.correlate_nd(np.array(2.0), np.array(1 + 3j)) == 2 - 6j
    assert convkit.correlate_nd(np.array(2.0), np.array(3.0)) == 6.0


def test_empty_inputs_give_an_empty_result():
    assert convkit.correlate_nd(np.ones((0, 3)), np.ones((2, 2))).shape == (0,)


def test_inputs_are_never_modified(rng):
    in1 = _operand(rng, (5, 4), True)
    in2 = _operand(rng, (3, 2), True)
    copies = in1.copy(), in2.copy()
    convkit.correlate_nd(in1, in2, "same", boundary="symm")
    np.testing.assert_array_equal(in1, copies[0])
    np.testing.assert_array_equal(in2, copies[1])


def test_problem_convolves_with_the_reversed_conjugate():
    in2 = np.array([[1 + 1j, 2], [3, 4 - 2j]])
    problem = normalize_convolve(np.ones((2, 3)), in2, "full", axes=1, correlate=True)
    np.testing.assert_array_equal(problem.in2, np.conj(in2[:, ::-1]))


@pytest.mark.parametrize(
    "arguments, keywords, error, pattern",
    [
        (([1.0], [1.0, 2.0]), {"mode": "circular"}, ValueError, r"mode"),
        (([[1.0]], [1.0]), {}, ValueError, r"same dimensionality"),
        (([1.0, 2.0], [1.0]), {"axes": ()}, ValueError, r"axes cannot be empty"),
        (([1.0, 2.0], [1.0]), {"boundary": "reflect"}, ValueError, r"boundary"),
        ((["a"], [1.0]), {}, TypeError, r"in1"),
        (
            ([1.0, 2.0], [1.0]),
            {"backend": "no-such-backend"},
            convkit.BackendError,
            r"no-such-backend",
        ),
    ],
)
def test_bad_arguments_name_correlate_nd(arguments, keywords, error, pattern):
    with pytest.raises(error, match=pattern) as raised:
        convkit.correlate_nd(*arguments, **keywords)
    if error is not convkit.BackendError:
        assert str(raised.value).startswith("correlate_nd: ")


class _DeviceStandIn:
    """Metadata of a GPU array only: the core must refuse before reading any data."""

    def __init__(self, shape):
        self.shape, self.dtype = tuple(shape), np.dtype("float64")
        self.__cuda_array_interface__ = {
            "shape": self.shape,
            "typestr": self.dtype.str,
            "strides": None,
            "data": (0, False),
            "version": 3,
        }

    def __array__(self, *args, **kwargs):
        raise AssertionError("the core must not copy a device array to the host")


def test_device_arrays_are_refused_before_any_copy():
    with pytest.raises(ValueError, match=r"^correlate_nd: in2 is reversed and conjugated"):
        convkit.correlate_nd(_DeviceStandIn((5,)), _DeviceStandIn((3,)))


def test_explain_takes_correlate_nd_and_says_what_nan_policy_runs():
    decision = convkit.explain("correlate_nd", np.ones(40), np.ones(5), backend="scipy")
    assert decision.backend == "scipy" and decision.rule == "backend= argument"
    interpolate = convkit.explain(
        convkit.correlate_nd, np.ones(40), np.ones(5), nan_policy="interpolate", backend="scipy"
    )
    assert "nan_policy='interpolate'" in interpolate.detail
    assert (
        "nan_policy"
        in convkit.explain("convolve_nd", np.ones(40), np.ones(5), nan_policy="fill").detail
    )
