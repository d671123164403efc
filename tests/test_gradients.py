"""conv_grad_input, conv_grad_filters and conv_transpose: adjoints of conv on every backend."""

import itertools

import numpy as np
import pytest

import convkit
from convkit.plugin import (
    Backend,
    Capabilities,
    ConvGradFiltersProblem,
    ConvGradInputProblem,
    lowered_problems,
    normalize_conv_grad_filters,
    normalize_conv_grad_input,
)
from convkit.testing import direct_conv_grad_filters, direct_conv_grad_input

CPU_BACKENDS = [
    name
    for name in ("scipy", "numba", "fftw")
    if any(info.name == name and info.available for info in convkit.list_backends())
]
BORDER_MODES = ("valid", "full", "half", "same", 1, "pairs")
BOUNDARIES = ("fill", "wrap", "symm", "mirror", "nearest")


def _layers(rank, count, seed):
    """``count`` layers of rank ``rank`` that cycle through every factor value."""
    rng = np.random.default_rng(seed)
    layers = []
    for index in range(count):
        stride = (1, 2, 3)[index % 3]
        dilation = (1, 2)[(index // 3) % 2]
        border = BORDER_MODES[(index // 2) % len(BORDER_MODES)]
        groups = (1, 2)[(index // 5) % 2]
        flip = bool(index % 2)
        boundary = BOUNDARIES[(index // 4) % len(BOUNDARIES)]
        kernel = tuple(int(rng.integers(1, 4)) for _ in range(rank))
        if border == "pairs":
            border = tuple((int(rng.integers(0, 3)), int(rng.integers(0, 3))) for _ in range(rank))
        sizes = tuple((k - 1) * dilation + 1 + int(rng.integers(0, 5)) for k in kernel)
        channels, filters = 2 * groups, 3 * groups
        layers.append(
            dict(
                input_shape=(2, channels, *sizes),
                filter_shape=(filters, channels // groups, *kernel),
                border_mode=border,
                subsample=stride,
                filter_flip=flip,
                filter_dilation=dilation,
                num_groups=groups,
                boundary=boundary,
            )
        )
    return layers


LAYERS = [layer for rank in (1, 2, 3) for layer in _layers(rank, 30, rank)]


def _forward(layer):
    return {
        key: layer[key]
        for key in ("border_mode", "subsample", "filter_flip", "filter_dilation", "num_groups")
    }


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_adjoint_identities_over_the_grid(backend):
    rng = np.random.default_rng(13)
    for layer in LAYERS:
        x = rng.standard_normal(layer["input_shape"])
        w = rng.standard_normal(layer["filter_shape"])
        forward, boundary = _forward(layer), layer["boundary"]
        y = convkit.conv(x, w, **forward, boundary=boundary, backend="scipy")
        g = rng.standard_normal(y.shape)
        gx = convkit.conv_grad_input(g, w, x.shape, **forward, boundary=boundary, backend=backend)
        gw = convkit.conv_grad_filters(x, g, w.shape, **forward, boundary=boundary, backend=backend)
        assert gx.shape == x.shape and gw.shape == w.shape
        value = np.vdot(y, g)
        scale = np.vdot(np.abs(y), np.abs(g)) + 1e-300
        assert abs(value - np.vdot(x, gx)) <= 1e-12 * scale, layer
        assert abs(value - np.vdot(w, gw)) <= 1e-12 * scale, layer


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_gradients_match_the_direct_definition(backend):
    rng = np.random.default_rng(7)
    for layer in LAYERS[::3]:
        x = rng.standard_normal(layer["input_shape"])
        w = rng.standard_normal(layer["filter_shape"])
        forward, boundary = _forward(layer), layer["boundary"]
        g = rng.standard_normal(convkit.conv(x, w, **forward, boundary=boundary).shape)
        got = convkit.conv_grad_input(g, w, x.shape, **forward, boundary=boundary, backend=backend)
        want = direct_conv_grad_input(g, w, x.shape, **forward, boundary=boundary)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
        got = convkit.conv_grad_filters(
            x, g, w.shape, **forward, boundary=boundary, backend=backend
        )
        want = direct_conv_grad_filters(x, g, w.shape, **forward, boundary=boundary)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", ["float32", "float64", "complex64", "complex128"])
def test_dtypes_and_the_bilinear_adjoint_of_complex_inputs(dtype):
    rng = np.random.default_rng(3)

    def draw(shape):
        values = rng.standard_normal(shape)
        if np.dtype(dtype).kind == "c":
            values = values + 1j * rng.standard_normal(shape)
        return values.astype(dtype)

    x, w = draw((2, 4, 9, 8)), draw((6, 2, 3, 2))
    layer = dict(border_mode="half", subsample=2, filter_dilation=(1, 2), num_groups=2)
    y = convkit.conv(x, w, **layer)
    g = draw(y.shape)
    gx = convkit.conv_grad_input(g, w, x.shape, **layer)
    gw = convkit.conv_grad_filters(x, g, w.shape, **layer)
    assert gx.dtype == gw.dtype == np.dtype(dtype)
    # No conjugation: sum(conv(x, w) * g) == sum(x * gx) == sum(w * gw).
    value = np.sum(y.astype(complex) * g)
    tolerance = (1e-4 if dtype in ("float32", "complex64") else 1e-12) * np.sum(
        np.abs(y) * np.abs(g)
    )
    assert abs(value - np.sum(x.astype(complex) * gx)) <= tolerance
    assert abs(value - np.sum(w.astype(complex) * gw)) <= tolerance


def test_stride_leaves_unread_trailing_samples_with_zero_gradient():
    w = np.ones((1, 1, 2))
    g = np.ones((1, 1, 2))
    assert convkit.conv_grad_input(g, w, (1, 1, 4), subsample=2).tolist() == [[[1, 1, 1, 1]]]
    assert convkit.conv_grad_input(g, w, (1, 1, 5), subsample=2).tolist() == [[[1, 1, 1, 1, 0]]]


def test_boundary_folds_the_padding_gradient_onto_the_copied_samples():
    g = np.ones((1, 1, 4))
    w = np.ones((1, 1, 3))
    # "half" pads one sample each side: wrap copies x[3] before and x[0] after.
    gx = convkit.conv_grad_input(g, w, (1, 1, 4), "half", boundary="wrap")
    assert gx.tolist() == [[[3, 3, 3, 3]]]
    gx = convkit.conv_grad_input(g, w, (1, 1, 4), "half", boundary="nearest")
    assert gx.tolist() == [[[3, 3, 3, 3]]]
    gx = convkit.conv_grad_input(g, w, (1, 1, 4), "half")
    assert gx.tolist() == [[[2, 3, 3, 2]]]


def test_nonfinite_values_stay_as_local_as_the_direct_definition_says():
    w = np.ones((1, 1, 3))
    w[0, 0, 1] = np.inf
    g = np.ones((1, 1, 4))
    for backend in CPU_BACKENDS:
        gx = convkit.conv_grad_input(
            g, w, (1, 1, 9), subsample=2, filter_flip=False, backend=backend
        )
        want = direct_conv_grad_input(g, w, (1, 1, 9), subsample=2, filter_flip=False)
        # Only odd samples meet the middle tap; a zero-dilated gradient would spread inf * 0.
        assert np.array_equal(np.isinf(gx), np.isinf(want)) and not np.isnan(gx).any()
        assert np.isfinite(gx[..., ::2]).all() and np.isinf(gx[..., 1::2]).all()


def test_conv_transpose_is_the_input_gradient_with_input_dilation():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 5, 6))
    w = rng.standard_normal((4, 3, 3, 3))
    got = convkit.conv_transpose(x, w, (2, 3, 11, 13), "valid", input_dilation=2)
    want = convkit.conv_grad_input(x, w, (2, 3, 11, 13), "valid", subsample=2)
    np.testing.assert_array_equal(got, want)


def test_finite_differences_on_the_reference_backend():
    rng = np.random.default_rng(5)
    for layer in (LAYERS[1], LAYERS[32], LAYERS[65]):
        x = rng.standard_normal(layer["input_shape"])
        w = rng.standard_normal(layer["filter_shape"])
        forward, boundary = _forward(layer), layer["boundary"]
        y = convkit.conv(x, w, **forward, boundary=boundary, backend="scipy")
        g = rng.standard_normal(y.shape)

        def loss(x_, w_):
            return np.vdot(convkit.conv(x_, w_, **forward, boundary=boundary, backend="scipy"), g)

        gx = convkit.conv_grad_input(g, w, x.shape, **forward, boundary=boundary, backend="scipy")
        gw = convkit.conv_grad_filters(x, g, w.shape, **forward, boundary=boundary, backend="scipy")
        step = 1e-6
        for array, gradient, which in ((x, gx, 0), (w, gw, 1)):
            for flat in rng.choice(array.size, size=min(5, array.size), replace=False):
                index = np.unravel_index(flat, array.shape)
                up, down = array.copy(), array.copy()
                up[index] += step
                down[index] -= step
                pair = ((up, w), (down, w)) if which == 0 else ((x, up), (x, down))
                numeric = (loss(*pair[0]) - loss(*pair[1])) / (2 * step)
                assert abs(numeric - gradient[index]) <= 1e-6 * (1 + abs(numeric)), (layer, index)


def test_empty_counts_give_zero_gradients():
    assert convkit.conv_grad_input(np.ones((0, 2, 3)), np.ones((2, 1, 2)), (0, 1, 4)).shape == (
        0,
        1,
        4,
    )
    gw = convkit.conv_grad_filters(np.ones((0, 1, 4)), np.ones((0, 2, 3)), (2, 1, 2))
    assert gw.shape == (2, 1, 2) and not gw.any()


# The plugin contract: a backend may implement the gradients natively.


class _NativeGradients(Backend):
    """Computes the gradients by their direct definition, and counts its calls."""

    name = "t-native-grad"

    def __init__(self):
        self.calls = []

    def conv(self, problem):
        raise AssertionError("the gradients must run natively here, not lowered to conv")

    def conv_grad_input(self, problem):
        self.calls.append(problem)
        assert isinstance(problem, ConvGradInputProblem)
        # The problem's filters are already flipped: the direct definition without flip.
        result = direct_conv_grad_input(
            problem.output_grad,
            problem.filters,
            problem.output_shape,
            problem.padding,
            problem.stride,
            False,
            problem.dilation,
            problem.groups,
        )
        return result.astype(problem.dtype)

    def conv_grad_filters(self, problem):
        self.calls.append(problem)
        assert isinstance(problem, ConvGradFiltersProblem)
        result = direct_conv_grad_filters(
            problem.input,
            problem.output_grad,
            problem.output_shape,
            problem.padding,
            problem.stride,
            False,
            problem.dilation,
            problem.groups,
        )
        return result.astype(problem.dtype)


def test_a_backend_that_implements_the_gradients_runs_them_natively():
    backend = _NativeGradients()
    convkit.register_backend(backend)
    try:
        info = next(info for info in convkit.list_backends() if info.name == backend.name)
        assert set(info.operations) == {"conv", "conv_grad_input", "conv_grad_filters"}
        rng = np.random.default_rng(1)
        x, w = rng.standard_normal((2, 4, 9)), rng.standard_normal((6, 2, 3))
        g = rng.standard_normal(convkit.conv(x, w, [(1, 2)], 2, True, 2, 2).shape)
        for boundary in ("fill", "mirror"):
            got = convkit.conv_grad_input(
                g, w, x.shape, [(1, 2)], 2, True, 2, 2, boundary=boundary, backend=backend.name
            )
            want = convkit.conv_grad_input(
                g, w, x.shape, [(1, 2)], 2, True, 2, 2, boundary=boundary, backend="scipy"
            )
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
            got = convkit.conv_grad_filters(
                x, g, w.shape, [(1, 2)], 2, True, 2, 2, boundary=boundary, backend=backend.name
            )
            want = convkit.conv_grad_filters(
                x, g, w.shape, [(1, 2)], 2, True, 2, 2, boundary=boundary, backend="scipy"
            )
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
        assert [problem.operation for problem in backend.calls] == [
            "conv_grad_input",
            "conv_grad_filters",
        ] * 2
    finally:
        convkit.unregister_backend(backend.name)


def test_a_backend_with_only_conv_runs_the_gradients_lowered():
    class ConvOnly(Backend):
        name = "t-conv-only-grad"
        capabilities = Capabilities(dtypes=frozenset({np.dtype("float64")}))

        def __init__(self):
            self.problems = []

        def conv(self, problem):
            self.problems.append(problem)
            return convkit.conv(
                problem.input,
                problem.filters,
                problem.padding,
                problem.stride,
                False,
                problem.dilation,
                problem.groups,
                backend="scipy",
            )

    backend = ConvOnly()
    convkit.register_backend(backend)
    try:
        w = np.ones((1, 1, 3))
        got = convkit.conv_grad_input(
            np.ones((1, 1, 4)), w, (1, 1, 9), subsample=2, backend=backend.name
        )
        assert len(backend.problems) == 2  # one forward conv per phase of the stride
        assert all(problem.stride == (1,) for problem in backend.problems)
        assert got.tolist() == [[[1, 1, 2, 1, 2, 1, 2, 1, 1]]]
        with pytest.raises(convkit.BackendError, match="does not support dtype float32"):
            convkit.conv_grad_filters(
                np.ones((1, 1, 4), np.float32),
                np.ones((1, 1, 2), np.float32),
                (1, 1, 3),
                backend=backend.name,
            )
    finally:
        convkit.unregister_backend(backend.name)


def test_lowered_problems_describe_the_phases():
    problem = normalize_conv_grad_input(
        np.ones((1, 1, 3, 3)), np.ones((1, 1, 3, 3)), (1, 1, 7, 7), subsample=2
    )
    assert len(lowered_problems(problem)) == 4
    problem = normalize_conv_grad_filters(
        np.ones((1, 1, 7)), np.ones((1, 1, 3)), (1, 1, 3), subsample=2
    )
    (part,) = lowered_problems(problem)
    assert part.stride == (1,) and part.dilation == (2,) and part.output_shape == (1, 1, 3)


# Errors: every bad argument gets a message that names it.


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: convkit.conv_grad_input(np.ones((1, 1, 3)), np.ones((1, 1, 2)), (1, 1, 6)),
            ValueError,
            r"output_grad has shape \(1, 1, 3\), but a conv of an input of shape \(1, 1, 6\) \(input_shape\)",
        ),
        (
            lambda: convkit.conv_grad_input(np.ones((1, 1, 3)), np.ones((1, 1, 2)), (1, 1, None)),
            TypeError,
            "input_shape must give every length",
        ),
        (
            lambda: convkit.conv_grad_input(np.ones((1, 1, 3)), np.ones((1, 1, 2)), (1, 1)),
            ValueError,
            "input_shape must have 3 entries",
        ),
        (
            lambda: convkit.conv_grad_input(np.ones((1, 1, 3)), np.ones((1, 1, 2)), 4),
            TypeError,
            "input_shape must be a tuple of 3 ints",
        ),
        (
            lambda: convkit.conv_grad_input(np.ones((1, 1, 3)), np.ones((1, 1, 2)), (1, 1, 4.0)),
            TypeError,
            "input_shape must contain ints",
        ),
        (
            lambda: convkit.conv_grad_input(np.ones((1, 1, 3)), np.ones((1, 1, 2)), (1, 1, -4)),
            ValueError,
            "input_shape must not be negative",
        ),
        (
            lambda: convkit.conv_grad_input(np.ones((2, 1, 3)), np.ones((1, 1, 2)), (1, 1, 4)),
            ValueError,
            r"output_grad has batch size 2 .* but input_shape has 1",
        ),
        (
            lambda: convkit.conv_grad_input(np.ones((1, 2, 3)), np.ones((1, 1, 2)), (1, 1, 4)),
            ValueError,
            "output_grad has 2 channels .* but filters has 1 filters",
        ),
        (
            lambda: convkit.conv_grad_input(np.ones((1, 1, 3)), np.ones((1, 1, 2)), (1, 3, 4)),
            ValueError,
            "input_shape has 3 channels .* but filters expect 1",
        ),
        (
            lambda: convkit.conv_grad_input(
                np.ones((1, 2, 3)), np.ones((2, 1, 2)), (1, 3, 4), num_groups=2
            ),
            ValueError,
            "input_shape has 3 channels .* which num_groups=2 does not divide",
        ),
        (
            lambda: convkit.conv_grad_input(np.ones((1, 1, 3)), np.ones((1, 1, 2)), (1, 1, 1)),
            ValueError,
            "no forward conv has input_shape of shape",
        ),
        (
            lambda: convkit.conv_grad_input(np.ones((1, 3)), np.ones((1, 1, 2)), (1, 1, 4)),
            ValueError,
            r"output_grad must be \(N, F, \*spatial\)",
        ),
        (
            lambda: convkit.conv_grad_input(np.ones((1, 1, 3)), np.ones((1, 2)), (1, 1, 4)),
            ValueError,
            "filters must have 3 dimensions",
        ),
        (
            lambda: convkit.conv_grad_input(
                np.ones((1, 1, 3)), np.ones((1, 1, 2)), (1, 1, 4), subsample=0
            ),
            ValueError,
            "subsample must be >= 1",
        ),
        (
            lambda: convkit.conv_grad_input(
                np.ones((1, 1, 3)), np.ones((1, 1, 2)), (1, 1, 4), filter_flip=1
            ),
            TypeError,
            "filter_flip must be True or False",
        ),
        (
            lambda: convkit.conv_grad_input(
                np.ones((1, 1, 3)), np.ones((1, 1, 2)), (1, 1, 4), boundary="reflect"
            ),
            ValueError,
            "boundary='reflect' is ambiguous",
        ),
        (
            lambda: convkit.conv_grad_input(np.array([["a"]]), np.ones((1, 1, 2)), (1, 1, 4)),
            TypeError,
            "output_grad has dtype",
        ),
        (
            lambda: convkit.conv_grad_filters(np.ones((1, 1, 4)), np.ones((1, 1, 3)), (1, 1, 3)),
            ValueError,
            r"output_grad has shape \(1, 1, 3\), but a conv of an input of shape \(1, 1, 4\) \(input\) with filters of shape \(1, 1, 3\) \(filter_shape\)",
        ),
        (
            lambda: convkit.conv_grad_filters(np.ones((1, 1, 4)), np.ones((1, 1, 3)), (2, 1, 2)),
            ValueError,
            "output_grad has 1 channels .* but filter_shape has 2 filters",
        ),
        (
            lambda: convkit.conv_grad_filters(np.ones((1, 2, 4)), np.ones((1, 1, 3)), (1, 1, 2)),
            ValueError,
            "input has 2 channels .* but filter_shape expect 1",
        ),
        (
            lambda: convkit.conv_grad_filters(np.ones((1, 1, 4)), np.ones((1, 1, 3, 1)), (1, 1, 2)),
            ValueError,
            "output_grad must have 3 dimensions like input",
        ),
        (
            lambda: convkit.conv_grad_filters(
                np.ones((1, 1, 4)), np.ones((1, 1, 3)), np.array([1.0, 1, 2])
            ),
            TypeError,
            "filter_shape must be a tuple of 3 ints",
        ),
        (
            lambda: convkit.conv_transpose(
                np.ones((1, 1, 3)), np.ones((1, 1, 2)), (1, 1, 9), input_dilation=2
            ),
            ValueError,
            r"input has shape \(1, 1, 3\), but a conv of an input of shape \(1, 1, 9\) \(output_shape\) .* input_dilation",
        ),
        (
            lambda: convkit.conv_transpose(
                np.ones((1, 1, 3)), np.ones((1, 1, 2)), (1, 1, 4), input_dilation=0
            ),
            ValueError,
            "input_dilation must be >= 1",
        ),
    ],
)
def test_bad_arguments_get_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_device_arrays_are_refused_with_a_hint():
    class FakeDevice:
        __cuda_array_interface__ = {
            "shape": (1, 1, 3),
            "typestr": "<f8",
            "data": (0, False),
            "version": 3,
        }

    with pytest.raises(TypeError, match="output_grad is a device .* gradients take NumPy arrays"):
        convkit.conv_grad_input(FakeDevice(), np.ones((1, 1, 2)), (1, 1, 4))


def test_inputs_are_not_modified():
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((1, 2, 7)), rng.standard_normal((2, 2, 3))
    g = rng.standard_normal((1, 2, 4))
    copies = x.copy(), w.copy(), g.copy()
    convkit.conv_grad_input(g, w, x.shape, subsample=2, boundary="wrap", border_mode="half")
    convkit.conv_grad_filters(x, g, w.shape, subsample=2, boundary="wrap", border_mode="half")
    for array, copy in zip((x, w, g), copies):
        np.testing.assert_array_equal(array, copy)


# Against PyTorch's gradients, where it is installed.


def _torch_cases():
    for rank, stride, padding, dilation, groups in itertools.product(
        (1, 2, 3), (1, 2, 3), (0, 1, 2), (1, 2), (1, 2)
    ):
        kernel = (3, 2, 2)[:rank]
        sizes = (11, 9, 7)[:rank]
        yield rank, stride, padding, dilation, groups, kernel, sizes


def test_against_torch_gradients_and_conv_transpose():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as functional
    from torch.nn import grad as torch_grad

    rng = np.random.default_rng(11)
    for rank, stride, padding, dilation, groups, kernel, sizes in _torch_cases():
        x = rng.standard_normal((2, 2 * groups, *sizes))
        w = rng.standard_normal((3 * groups, 2, *kernel))
        y_shape = convkit.conv(x, w, padding, stride, False, dilation, groups).shape
        g = rng.standard_normal(y_shape)
        tx, tw, tg = (torch.from_numpy(a) for a in (x, w, g))
        grad_input = getattr(torch_grad, f"conv{rank}d_input")
        grad_weight = getattr(torch_grad, f"conv{rank}d_weight")
        for flip in (False, True):
            # PyTorch correlates; with filter_flip the filters are reversed.
            reversed_w = w[(slice(None), slice(None)) + (slice(None, None, -1),) * rank].copy()
            used = torch.from_numpy(reversed_w) if flip else tw
            want = grad_input(x.shape, used, tg, stride, padding, dilation, groups).numpy()
            got = convkit.conv_grad_input(g, w, x.shape, padding, stride, flip, dilation, groups)
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
            want = grad_weight(tx, w.shape, tg, stride, padding, dilation, groups).numpy()
            if flip:
                want = want[(slice(None), slice(None)) + (slice(None, None, -1),) * rank]
            got = convkit.conv_grad_filters(x, g, w.shape, padding, stride, flip, dilation, groups)
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
        # conv_transpose: the layer maps g back to x's shape; output_padding picks the size.
        transpose = getattr(functional, f"conv_transpose{rank}d")
        natural = tuple(
            (o - 1) * stride - 2 * padding + dilation * (k - 1) + 1
            for o, k in zip(y_shape[2:], kernel)
        )
        extra = tuple(size - n for size, n in zip(sizes, natural))
        want = transpose(tg, tw, None, stride, padding, extra, groups, dilation).numpy()
        got = convkit.conv_transpose(g, w, x.shape, padding, stride, False, dilation, groups)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_explain_takes_the_gradients_and_says_how_they_run():
    x, w = np.ones((2, 3, 16, 16)), np.ones((4, 3, 3, 3))
    g = np.ones((2, 4, 8, 8))
    lowered = convkit.explain(convkit.conv_grad_input, g, w, x.shape, "half", 2, backend="scipy")
    assert lowered.backend == "scipy" and lowered.function == "conv_grad_input"
    assert "does not implement conv_grad_input: it runs as 4 forward conv problems" in str(lowered)
    filters = convkit.explain("conv_grad_filters", x, g, w.shape, "half", 2, backend="scipy")
    assert "runs as 1 forward conv problem" in filters.detail
    transpose = convkit.explain(
        "conv_transpose", g, w, x.shape, "half", input_dilation=2, boundary="symm", backend="fftw"
    )
    assert transpose.backend == "fftw" and "conv_grad_input" in transpose.detail
    with pytest.raises(ValueError, match="conv_transpose"):
        convkit.explain("conv_transpose", g, w, (2, 3, 40, 40), "half", input_dilation=2)
