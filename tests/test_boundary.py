"""The ``boundary`` and ``fillvalue`` keywords of convolve_nd and conv (docs/semantics.rst).

Every result is checked against the float64 direct definition on the signal
extended with numpy.pad, on every available CPU backend, and against
scipy.ndimage.convolve and scipy.signal.convolve2d where they define the same thing.
"""

import itertools

import numpy as np
import pytest
import scipy.ndimage
import scipy.signal

import convkit
from convkit.plugin import (
    Backend,
    Capabilities,
    explicit_boundary,
    extension_index,
    normalize_conv,
    normalize_convolve,
)

CPU_BACKENDS = [
    info.name
    for info in convkit.list_backends()
    if info.available and info.name in ("scipy", "numba", "fftw")
]
# (boundary, fillvalue, numpy.pad mode, scipy.ndimage mode)
BOUNDARIES = [
    ("fill", 0, "constant", "constant"),
    ("fill", 2.5, "constant", "constant"),
    ("wrap", 0, "wrap", "wrap"),
    ("symm", 0, "symmetric", "reflect"),
    ("symmetric", 0, "symmetric", "reflect"),
    ("mirror", 0, "reflect", "mirror"),
    ("nearest", 0, "edge", "nearest"),
]
BOUNDARY_IDS = [f"{name}-{value}" for name, value, _, _ in BOUNDARIES]


def _pad(array, widths, pad_mode, fillvalue):
    if pad_mode == "constant":
        return np.pad(array, widths, mode="constant", constant_values=fillvalue)
    return np.pad(array, widths, mode=pad_mode)


def _direct_valid(signal, kernel):
    """``sum_k kernel[k] * signal[o + m - 1 - k]`` in float64, over every axis."""
    signal = np.asarray(signal, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    out_shape = tuple(a - b + 1 for a, b in zip(signal.shape, kernel.shape))
    out = np.zeros(out_shape)
    for offset in np.ndindex(kernel.shape):
        window = tuple(
            slice(m - 1 - k, m - 1 - k + o) for k, m, o in zip(offset, kernel.shape, out_shape)
        )
        out += kernel[offset] * signal[window]
    return out


def _expected_convolve(x, w, mode, pad_mode, fillvalue):
    """ "full" is "valid" on x padded by m - 1 each side; "same" its centred slice."""
    if mode == "valid":
        return _direct_valid(x, w)
    widths = [(m - 1, m - 1) for m in w.shape]
    full = _direct_valid(_pad(x, widths, pad_mode, fillvalue), w)
    if mode == "full":
        return full
    starts = [(f - n) // 2 for f, n in zip(full.shape, x.shape)]
    return full[tuple(slice(s, s + n) for s, n in zip(starts, x.shape))]


def _expected_conv(x, w, padding, stride, dilation, groups, pad_mode, fillvalue):
    """Theano's conv (filters flipped) on x padded by the rule, in float64."""
    spatial = x.ndim - 2
    padded = _pad(x, [(0, 0), (0, 0), *padding], pad_mode, fillvalue)
    flipped = w[(slice(None), slice(None)) + (slice(None, None, -1),) * spatial]
    out_spatial = tuple(
        (size - d * (k - 1) - 1) // s + 1
        for size, k, s, d in zip(padded.shape[2:], w.shape[2:], stride, dilation)
    )
    n, channels = x.shape[:2]
    filters = w.shape[0]
    per_group, filters_per_group = channels // groups, filters // groups
    out = np.zeros((n, filters, *out_spatial))
    for offset in np.ndindex(w.shape[2:]):
        window = tuple(
            slice(k * d, k * d + (o - 1) * s + 1, s)
            for k, d, s, o in zip(offset, dilation, stride, out_spatial)
        )
        for g in range(groups):
            part = padded[(slice(None), slice(g * per_group, (g + 1) * per_group), *window)]
            taps = flipped[
                (slice(g * filters_per_group, (g + 1) * filters_per_group), slice(None), *offset)
            ]
            out[:, g * filters_per_group : (g + 1) * filters_per_group] += np.einsum(
                "nc...,fc->nf...", part, taps
            )
    return out


def _close(result, expected):
    np.testing.assert_allclose(result, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("boundary, fillvalue, pad_mode, _", BOUNDARIES, ids=BOUNDARY_IDS)
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("kernel", [3, 4])
def test_convolve_nd_is_direct_definition_on_padded_signal(
    rng, backend, boundary, fillvalue, pad_mode, _, mode, rank, kernel
):
    shape = (9, 7, 6)[:rank]
    kernel_shape = (kernel, kernel - 1, kernel)[:rank]
    x = rng.standard_normal(shape)
    w = rng.standard_normal(kernel_shape)
    result = convkit.convolve_nd(
        x, w, mode, boundary=boundary, fillvalue=fillvalue, backend=backend
    )
    _close(result, _expected_convolve(x, w, mode, pad_mode, fillvalue))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("boundary, fillvalue, pad_mode, _", BOUNDARIES, ids=BOUNDARY_IDS)
@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("kernel", [2, 3])
@pytest.mark.parametrize(
    "border_mode, stride, dilation",
    [("full", 1, 1), ("half", 2, 1), ("same", 1, 2), ("same", 2, 1), (((1, 3), 2, 0), 3, 2)],
    ids=["full", "half-stride2", "same-dil2", "same-stride2", "pairs-stride3-dil2"],
)
def test_conv_is_direct_definition_on_padded_input(
    rng, backend, boundary, fillvalue, pad_mode, _, rank, kernel, border_mode, stride, dilation
):
    x = rng.standard_normal((2, 4, *(7, 6, 5)[:rank]))
    w = rng.standard_normal((6, 2, *(kernel,) * rank))
    if isinstance(border_mode, tuple):
        border_mode = border_mode[:rank]
    result = convkit.conv(
        x,
        w,
        border_mode,
        subsample=stride,
        filter_dilation=dilation,
        num_groups=2,
        boundary=boundary,
        fillvalue=fillvalue,
        backend=backend,
    )
    padding = normalize_conv(
        x, w, border_mode, subsample=stride, filter_dilation=dilation, num_groups=2
    ).padding
    expected = _expected_conv(
        x, w, padding, (stride,) * rank, (dilation,) * rank, 2, pad_mode, fillvalue
    )
    _close(result, expected)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize(
    "boundary, ndimage_mode",
    [
        ("fill", "constant"),
        ("wrap", "wrap"),
        ("symm", "reflect"),
        ("mirror", "mirror"),
        ("nearest", "nearest"),
    ],
)
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_same_with_odd_kernel_equals_ndimage_convolve(rng, backend, boundary, ndimage_mode, rank):
    x = rng.standard_normal((8, 7, 6)[:rank])
    w = rng.standard_normal((3, 5, 3)[:rank])
    fillvalue = -1.5 if boundary == "fill" else 0
    expected = scipy.ndimage.convolve(x, w, mode=ndimage_mode, cval=fillvalue)
    result = convkit.convolve_nd(
        x, w, "same", boundary=boundary, fillvalue=fillvalue, backend=backend
    )
    _close(result, expected)
    layer = convkit.conv(
        x[None, None],
        w[None, None],
        "half",
        boundary=boundary,
        fillvalue=fillvalue,
        backend=backend,
    )
    _close(layer[0, 0], expected)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("boundary", ["fill", "wrap", "symm"])
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("kernel_shape", [(3, 3), (2, 4), (5, 2)])
def test_2d_equals_scipy_convolve2d(rng, backend, boundary, mode, kernel_shape):
    x = rng.standard_normal((7, 9))
    w = rng.standard_normal(kernel_shape)
    fillvalue = 0.75 if boundary == "fill" else 0
    expected = scipy.signal.convolve2d(x, w, mode, boundary=boundary, fillvalue=fillvalue)
    result = convkit.convolve_nd(
        x, w, mode, boundary=boundary, fillvalue=fillvalue, backend=backend
    )
    _close(result, expected)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("boundary, fillvalue, pad_mode, _", BOUNDARIES, ids=BOUNDARY_IDS)
@pytest.mark.parametrize("mode", ["full", "same"])
def test_kernel_longer_than_signal_repeats_the_rule(
    rng, backend, boundary, fillvalue, pad_mode, _, mode
):
    x = rng.standard_normal((3, 2))
    w = rng.standard_normal((11, 8))
    result = convkit.convolve_nd(
        x, w, mode, boundary=boundary, fillvalue=fillvalue, backend=backend
    )
    _close(result, _expected_convolve(x, w, mode, pad_mode, fillvalue))
    layer = convkit.conv(
        x[None, None],
        w[None, None],
        "full",
        boundary=boundary,
        fillvalue=fillvalue,
        backend=backend,
    )
    padding = [(10, 10), (7, 7)]
    _close(
        layer,
        _expected_conv(
            x[None, None], w[None, None], padding, (1, 1), (1, 1), 1, pad_mode, fillvalue
        ),
    )


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("boundary, fillvalue, pad_mode, _", BOUNDARIES, ids=BOUNDARY_IDS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_stays_local(rng, backend, boundary, fillvalue, pad_mode, _, bad):
    x = rng.uniform(0.5, 1.0, (12, 11))
    x[5, 0] = bad
    w = rng.uniform(0.5, 1.0, (3, 3))
    for mode in ("full", "same"):
        result = convkit.convolve_nd(
            x, w, mode, boundary=boundary, fillvalue=fillvalue, backend=backend
        )
        expected = _expected_convolve(x, w, mode, pad_mode, fillvalue)
        np.testing.assert_array_equal(np.isfinite(result), np.isfinite(expected))
        assert 0 < (~np.isfinite(expected)).sum() < expected.size // 3
        _close(
            np.where(np.isfinite(expected), result, 0), np.where(np.isfinite(expected), expected, 0)
        )
    layer = convkit.conv(
        x[None, None],
        w[None, None],
        "half",
        boundary=boundary,
        fillvalue=fillvalue,
        backend=backend,
    )
    expected = _expected_conv(
        x[None, None], w[None, None], [(1, 1), (1, 1)], (1, 1), (1, 1), 1, pad_mode, fillvalue
    )
    np.testing.assert_array_equal(np.isfinite(layer), np.isfinite(expected))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_float32_and_complex(rng, backend):
    x = rng.standard_normal((6, 5)).astype(np.float32)
    w = rng.standard_normal((3, 2)).astype(np.float32)
    result = convkit.convolve_nd(x, w, "same", boundary="mirror", backend=backend)
    assert result.dtype == np.float32
    expected = _expected_convolve(x.astype(np.float64), w.astype(np.float64), "same", "reflect", 0)
    np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-4)
    z = x + 1j * rng.standard_normal(x.shape)
    result = convkit.convolve_nd(z, w, "full", boundary="fill", fillvalue=1 - 2j, backend="scipy")
    expected = scipy.signal.convolve2d(z, w, "full", boundary="fill", fillvalue=1 - 2j)
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-4)


def test_rules_travel_in_the_problem_and_explicit_boundary_pads():
    x = np.ones((1, 1, 5, 5))
    w = np.ones((1, 1, 3, 3))
    for fillvalue in (0, 0.0, 0j):
        problem = normalize_conv(x, w, "half", boundary="fill", fillvalue=fillvalue)
        assert problem.padding == ((1, 1), (1, 1)) and problem.boundary == "fill"
        assert np.shares_memory(problem.input, x)
    problem = normalize_conv(x, w, "half", boundary="wrap")
    assert problem.padding == ((1, 1), (1, 1)) and problem.boundary == "wrap"
    assert np.shares_memory(problem.input, x)
    padded = explicit_boundary(problem)
    assert padded.padding == ((0, 0), (0, 0)) and padded.input.shape == (1, 1, 7, 7)
    assert padded.boundary == "fill" and not padded.input.flags.writeable
    # A non-zero fill value is written into a copy at once.
    problem = normalize_conv(x, w, "half", boundary="fill", fillvalue=2.0)
    assert problem.padding == ((0, 0), (0, 0)) and problem.input.shape == (1, 1, 7, 7)
    problem = normalize_convolve(np.ones(5), np.ones(3), "same", boundary="symmetric")
    assert problem.in1.shape == (5,) and problem.boundary == "symm"
    padded = explicit_boundary(problem)
    assert padded.in1.shape == (7,) and padded.output_shape == (5,)
    assert padded.output_start == (2,) and not padded.in1.flags.writeable
    problem = normalize_convolve(np.ones(5), np.ones(3), "valid", boundary="nearest")
    assert problem.in1.shape == (5,) and problem.boundary == "fill"
    # Under a rule, in1 of length 1 against a longer in2 is convolved, not broadcast.
    problem = normalize_convolve(np.ones((1, 5)), np.ones((3, 3)), "full", boundary="nearest")
    assert problem.axes == (0, 1) and problem.output_shape == (3, 7)
    problem = normalize_convolve(np.ones((1, 5)), np.ones((3, 1)), "full", boundary="wrap", axes=1)
    assert problem.boundary == "fill" and problem.axes == (1,)


@pytest.mark.parametrize("boundary", ["wrap", "symm", "mirror", "nearest"])
def test_extension_index_is_numpy_pad(boundary):
    pad_mode = {"wrap": "wrap", "symm": "symmetric", "mirror": "reflect", "nearest": "edge"}
    for size in range(1, 7):
        for width in (0, 1, size, 3 * size + 2):
            positions = np.arange(-width, size + width)
            expected = np.pad(np.arange(size), width, mode=pad_mode[boundary])
            assert extension_index(positions, size, boundary).tolist() == expected.tolist()


class _NativeWrap(Backend):
    """Declares "wrap": it gets the unpadded problem and pads by the index map itself."""

    name = "native-wrap-test"
    capabilities = Capabilities(boundaries=frozenset({"wrap"}))
    seen: list

    def convolve_nd(self, problem):
        self.seen.append(problem.boundary)
        if problem.boundary == "fill":
            full = scipy.signal.fftconvolve(problem.in1, problem.in2, "full", axes=problem.axes)
            return full[problem.output_slices].astype(problem.dtype)
        # in1 extended by m - 1 on both sides: its "valid" part is the whole "full" result.
        index = []
        for axis, size in enumerate(problem.in1.shape):
            reach = problem.in2.shape[axis] - 1 if axis in problem.axes else 0
            index.append(extension_index(np.arange(-reach, size + reach), size, "wrap"))
        signal = problem.in1[np.ix_(*index)]
        full = scipy.signal.fftconvolve(signal, problem.in2, "valid", axes=problem.axes)
        return full[problem.output_slices].astype(problem.dtype)


def test_a_backend_that_declares_a_rule_gets_the_unpadded_problem(rng):
    backend = _NativeWrap()
    backend.seen = []
    x, w = rng.standard_normal((6, 7)), rng.standard_normal((3, 4))
    convkit.register_backend(backend)
    try:
        for boundary in ("wrap", "nearest", "fill"):
            result = convkit.convolve_nd(x, w, "same", boundary=boundary, backend=backend.name)
            expected = convkit.convolve_nd(x, w, "same", boundary=boundary, backend="scipy")
            np.testing.assert_allclose(result, expected, rtol=1e-10, atol=1e-10)
        explained = convkit.explain(
            convkit.convolve_nd, x, w, "same", boundary="nearest", backend=backend.name
        )
    finally:
        convkit.unregister_backend(backend.name)
    # "wrap" arrives as it is; "nearest" on a padded copy, with zero fill.
    assert backend.seen == ["wrap", "fill", "fill"]
    assert "padded copy" in str(explained)


def test_a_backend_that_declares_an_unknown_rule_breaks_the_contract():
    class Strange(Backend):
        name = "strange-rule-test"
        capabilities = Capabilities(boundaries=frozenset({"reflect"}))

        def convolve_nd(self, problem):
            raise AssertionError("never called")

    with pytest.raises(convkit.BackendError, match="boundaries"):
        convkit.convolve_nd(np.ones(3), np.ones(2), backend=Strange())


def test_padded_outputs_keep_their_terms_with_dilation():
    # With zero fill these outputs have no terms and are exactly 0; with a boundary the
    # padded copy gives them terms, so the exact-zeros step must not clear them.
    x = np.arange(1.0, 4.0).reshape(1, 1, 1, 3)
    w = np.ones((1, 1, 2, 1))
    zero = convkit.conv(x, w, "full", filter_dilation=2, backend="scipy")
    assert zero[0, 0, 1].tolist() == [0.0, 0.0, 0.0]
    for boundary, fillvalue, pad_mode, _ in BOUNDARIES[1:]:
        result = convkit.conv(
            x, w, "full", filter_dilation=2, boundary=boundary, fillvalue=fillvalue
        )
        expected = _expected_conv(x, w, [(2, 2), (0, 0)], (1, 1), (2, 2), 1, pad_mode, fillvalue)
        _close(result, expected)
        assert np.all(result[0, 0, 1] != 0)


def test_axes_and_broadcast(rng):
    x = rng.standard_normal((3, 8, 6))
    w = rng.standard_normal((1, 3, 2))
    result = convkit.convolve_nd(x, w, "full", axes=(1, 2), boundary="wrap", backend="scipy")
    padded = np.pad(x, [(0, 0), (2, 2), (1, 1)], mode="wrap")
    expected = np.stack([_direct_valid(padded[i], w[0]) for i in range(3)])
    _close(result, expected)


def test_range_scaling_with_boundary():
    x = np.full((6,), 3e38, dtype=np.float32)
    w = np.full((3,), 2.0, dtype=np.float32)
    result = convkit.convolve_nd(x, w, "same", boundary="nearest", backend="scipy")
    np.testing.assert_array_equal(np.isinf(result), True)
    tiny = np.full((6,), 1e-30, dtype=np.float32)
    result = convkit.convolve_nd(tiny, np.full(3, 1e-10, np.float32), "same", boundary="wrap")
    np.testing.assert_allclose(result, 3e-40, rtol=1e-5)


def test_memory_limit_counts_the_padded_copy():
    # The core's own check, before any backend: the output alone fits, with the padded
    # copy of the signal it does not.
    convkit.set_memory_limit(200_000)
    x, w = np.ones(10_000), np.ones(10_000)
    normalize_convolve(x, w, "same")
    with pytest.raises(convkit.WorkingSetTooLargeError, match="padded signal"):
        normalize_convolve(x, w, "same", boundary="wrap")
    normalize_conv(x[None, None], w[None, None], "full", filter_flip=False)
    with pytest.raises(convkit.WorkingSetTooLargeError, match="padded signal"):
        convkit.conv(x[None, None], w[None, None], "full", filter_flip=False, boundary="symm")


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_inputs_are_never_modified(rng, backend):
    x = rng.standard_normal((2, 2, 6, 5))
    w = rng.standard_normal((2, 1, 3, 2))
    x_before, w_before = x.copy(), w.copy()
    for boundary, fillvalue, _, _ in BOUNDARIES:
        convkit.convolve_nd(x, w, "same", boundary=boundary, fillvalue=fillvalue, backend=backend)
        convkit.conv(
            x, w, "half", num_groups=2, boundary=boundary, fillvalue=fillvalue, backend=backend
        )
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(w, w_before)


@pytest.mark.parametrize(
    "function",
    [convkit.convolve_nd, convkit.conv, convkit.conv1d],
    ids=["convolve_nd", "conv", "conv1d"],
)
@pytest.mark.parametrize(
    "keywords, error, pattern",
    [
        ({"boundary": "reflect"}, ValueError, r"boundary='reflect' is ambiguous.*'symm'.*'mirror'"),
        (
            {"boundary": "circular"},
            ValueError,
            r"boundary must be one of 'fill', 'wrap', 'symm', 'symmetric', 'mirror', 'nearest', got 'circular'",
        ),
        ({"boundary": None}, TypeError, r"boundary must be one of .*got None"),
        ({"boundary": np.array(["fill"])}, TypeError, r"boundary must be one of .*got array"),
        (
            {"boundary": "wrap", "fillvalue": 1.0},
            ValueError,
            r"fillvalue=1.0 applies only to boundary='fill'",
        ),
        (
            {"fillvalue": "zero"},
            TypeError,
            r"fillvalue must be a real or complex number, got 'zero'",
        ),
        ({"fillvalue": [1.0, 2.0]}, TypeError, r"fillvalue must be a real or complex number"),
        (
            {"fillvalue": 1j},
            ValueError,
            r"fillvalue=1j is complex but the inputs compute in float64",
        ),
    ],
)
def test_bad_arguments(function, keywords, error, pattern):
    name = function.__name__
    with pytest.raises(error, match=f"^{name}: {pattern}"):
        function(np.ones((1, 1, 5)), np.ones((1, 1, 3)), **keywords)


def test_explain_takes_the_keywords():
    decision = convkit.explain(
        "conv2d",
        np.ones((1, 1, 5, 5)),
        np.ones((1, 1, 3, 3)),
        "half",
        boundary="wrap",
        backend="scipy",
    )
    assert decision.backend == "scipy"
    with pytest.raises(ValueError, match="ambiguous"):
        convkit.explain("convolve_nd", np.ones(5), np.ones(3), boundary="reflect")


def test_every_combination_of_small_sizes(rng):
    for size, kernel, (boundary, fillvalue, pad_mode, _) in itertools.product(
        range(1, 5), range(1, 7), BOUNDARIES
    ):
        x = rng.standard_normal(size)
        w = rng.standard_normal(kernel)
        for mode in ("full", "same"):
            result = convkit.convolve_nd(
                x, w, mode, boundary=boundary, fillvalue=fillvalue, backend="scipy"
            )
            _close(result, _expected_convolve(x, w, mode, pad_mode, fillvalue))


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


def test_device_arrays_are_refused_with_a_boundary_that_needs_a_copy():
    data, filters = _DeviceStandIn((1, 1, 5)), _DeviceStandIn((1, 1, 3))
    with pytest.raises(ValueError, match=r"^conv: boundary='wrap' extends input .* NumPy array"):
        normalize_conv(data, filters, "half", boundary="wrap")
    assert normalize_conv(data, filters, "valid", boundary="wrap").on_device
    assert normalize_conv(data, filters, "half").on_device
    with pytest.raises(ValueError, match=r"^convolve_nd: boundary='symm' extends in1"):
        normalize_convolve(_DeviceStandIn((5,)), _DeviceStandIn((3,)), "same", boundary="symm")
    assert normalize_convolve(
        _DeviceStandIn((5,)), _DeviceStandIn((3,)), "valid", boundary="symm"
    ).on_device


def test_fillvalue_of_any_numeric_type():
    x, w = np.array([1.0, 2.0]), np.array([1.0, 1.0])
    expected = [4.0, 3.0, 5.0]
    for fillvalue in (3, 3.0, np.float32(3), 3 + 0j, np.int8(3)):
        np.testing.assert_array_equal(
            convkit.convolve_nd(x, w, boundary="fill", fillvalue=fillvalue, backend="scipy"),
            expected,
        )
    result = convkit.convolve_nd(
        np.ones(4, np.float32), [1.0, 1.0], boundary="fill", fillvalue=np.nan
    )
    assert np.isnan(result[0]) and np.isnan(result[-1]) and np.all(result[1:-1] == 2)
