"""Every bad input (docs/semantics.rst, "Errors") gets a clear exception that names the argument."""

import numpy as np
import pytest

import convkit

X = np.ones((2, 3, 5, 5))
W = np.ones((4, 3, 3, 3))
V = np.ones(5)

CONVOLVE_ERRORS = [
    # (in1, in2, kwargs, exception, fragments of the message)
    (
        V,
        np.ones((3, 3)),
        {},
        ValueError,
        ["same dimensionality", "(5,)", "(3, 3)", "np.expand_dims"],
    ),
    (V, V, {"mode": "middle"}, ValueError, ["mode", "'middle'", "'full', 'valid', 'same'"]),
    (V, V, {"mode": 3}, TypeError, ["mode"]),
    (V, V, {"axes": []}, ValueError, ["axes cannot be empty"]),
    (V, V, {"axes": 1}, ValueError, ["axis 1 is out of range", "1 dimensions"]),
    (np.ones((3, 3)), np.ones((3, 3)), {"axes": (0, -2)}, ValueError, ["axes must be unique"]),
    (V, V, {"axes": 0.5}, TypeError, ["axes must be ints"]),
    (V, V, {"axes": "0"}, TypeError, ["axes must be ints"]),
    (
        np.ones((3, 4)),
        np.ones((2, 3)),
        {"axes": 1},
        ValueError,
        ["incompatible shapes", "axis 0 is not convolved"],
    ),
    (
        np.ones((5, 2)),
        np.ones((3, 4)),
        {"mode": "valid"},
        ValueError,
        ["'valid' mode", "at least as large", "mode='full'"],
    ),
    (np.array(["a", "b"]), V, {}, TypeError, ["in1", "dtype <U1", "str", "np.asarray"]),
    (V, np.array([object(), object()]), {}, TypeError, ["in2", "object"]),
    (np.array(["2020-01-01"], dtype="datetime64[D]"), V, {}, TypeError, ["in1", "datetime64"]),
    (np.array([1], dtype="timedelta64[s]"), V, {}, TypeError, ["timedelta64"]),
    (None, V, {}, TypeError, ["in1 must be an array, got None"]),
    (
        [[1.0, 2.0], [3.0]],
        V,
        {},
        TypeError,
        ["in1 could not be turned into an array", "rectangular"],
    ),
    (np.ones(3, dtype=np.longdouble), V, {}, TypeError, ["float128", "supported are float32"]),
]


@pytest.mark.parametrize("in1, in2, kwargs, error, fragments", CONVOLVE_ERRORS)
def test_convolve_nd_errors(in1, in2, kwargs, error, fragments):
    with pytest.raises(error) as caught:
        convkit.convolve_nd(in1, in2, **kwargs)
    message = str(caught.value)
    assert message.startswith("convolve_nd: ")
    for fragment in fragments:
        assert fragment in message, (fragment, message)


CONV_ERRORS = [
    # (function, input, filters, kwargs, exception, fragments)
    (
        convkit.conv2d,
        np.ones((5, 5)),
        W,
        {},
        ValueError,
        ["(N, C, H, W)", "(5, 5)", "input[None, None]"],
    ),
    (convkit.conv2d, np.ones((3, 5, 5)), W, {}, ValueError, ["batch axis", "input[None]"]),
    (
        convkit.conv2d,
        X,
        np.ones((3, 3)),
        {},
        ValueError,
        ["filters must have 4 dimensions", "filters[None, None]"],
    ),
    (
        convkit.conv2d,
        X,
        np.ones((1, 1, 3, 3)),
        {},
        ValueError,
        [
            (
                "conv2d: input has 3 channels but filters expect 1 (filters shape (1, 1, 3, 3), num_groups=1); "
                "with num_groups=g, filters.shape[1] must equal channels / g"
            )
        ],
    ),
    (
        convkit.conv1d,
        np.ones((1, 2, 5, 5)),
        W,
        {},
        ValueError,
        ["conv1d", "3 dimensions (N, C, W)"],
    ),
    (convkit.conv3d, X, W, {}, ValueError, ["conv3d", "5 dimensions (N, C, D, H, W)"]),
    (convkit.conv, np.ones((2, 3)), W, {}, ValueError, ["at least one spatial axis"]),
    (
        convkit.conv2d,
        X,
        W,
        {"num_groups": 2},
        ValueError,
        ["3 channels", "num_groups=2 does not divide"],
    ),
    (
        convkit.conv2d,
        np.ones((1, 4, 5, 5)),
        np.ones((3, 2, 3, 3)),
        {"num_groups": 2},
        ValueError,
        ["3 filters", "multiple of num_groups"],
    ),
    (convkit.conv2d, X, W, {"num_groups": 0}, ValueError, ["num_groups must be >= 1"]),
    (convkit.conv2d, X, W, {"num_groups": 1.0}, TypeError, ["num_groups must be a positive int"]),
    (convkit.conv2d, X, W, {"num_groups": True}, TypeError, ["num_groups"]),
    (
        convkit.conv2d,
        X,
        W,
        {"border_mode": "middle"},
        ValueError,
        ["border_mode must be 'valid', 'full', 'half', 'same'"],
    ),
    (convkit.conv2d, X, W, {"border_mode": -1}, ValueError, ["padding must be >= 0"]),
    (convkit.conv2d, X, W, {"border_mode": 1.5}, TypeError, ["padding must be ints"]),
    (
        convkit.conv2d,
        X,
        W,
        {"border_mode": (1, 2, 3)},
        ValueError,
        ["one entry per spatial axis (2)"],
    ),
    (convkit.conv2d, X, W, {"border_mode": ((1, 2, 3), 1)}, ValueError, ["(before, after) pair"]),
    (convkit.conv2d, X, W, {"border_mode": ((1, -2), 1)}, ValueError, ["padding must be >= 0"]),
    (convkit.conv2d, X, W, {"subsample": 0}, ValueError, ["subsample must be >= 1"]),
    (
        convkit.conv2d,
        X,
        W,
        {"subsample": (1, 2, 3)},
        ValueError,
        ["subsample must be an int or a tuple of 2 ints"],
    ),
    (convkit.conv2d, X, W, {"subsample": "2"}, TypeError, ["subsample must contain ints"]),
    (
        convkit.conv2d,
        X,
        W,
        {"filter_dilation": (1, 0)},
        ValueError,
        ["filter_dilation must be >= 1"],
    ),
    (
        convkit.conv2d,
        X,
        W,
        {"filter_dilation": 1.0},
        TypeError,
        ["filter_dilation must contain ints"],
    ),
    (
        convkit.conv2d,
        X,
        W,
        {"filter_flip": "yes"},
        TypeError,
        ["filter_flip must be True or False"],
    ),
    (
        convkit.conv2d,
        X,
        np.ones((4, 3, 7, 3)),
        {},
        ValueError,
        ["output would be empty along spatial axis 0", "kernel extent 7"],
    ),
    (
        convkit.conv2d,
        X,
        W,
        {"filter_dilation": 3},
        ValueError,
        ["dilated kernel extent 7 (kernel 3, dilation 3)"],
    ),
    (convkit.conv2d, X, np.ones((4, 3, 0, 3)), {}, ValueError, ["non-empty kernel"]),
    (
        convkit.conv2d,
        X,
        W,
        {"subsample": 10**30},
        ValueError,
        ["subsample must be at most 2**60", str(10**30)],
    ),
    (
        convkit.conv2d,
        X,
        W,
        {"subsample": (1, 2**61)},
        ValueError,
        ["subsample must be at most 2**60"],
    ),
    (
        convkit.conv2d,
        X,
        W,
        {"filter_dilation": 10**30},
        ValueError,
        ["filter_dilation must be at most 2**60"],
    ),
    (
        convkit.conv2d,
        X,
        W,
        {"num_groups": 10**30},
        ValueError,
        ["num_groups must be at most 2**60"],
    ),
    (
        convkit.conv2d,
        X,
        W,
        {"border_mode": 10**30},
        ValueError,
        ["border_mode padding must be at most 2**60", str(10**30)],
    ),
    (
        convkit.conv2d,
        X,
        W,
        {"border_mode": ((0, 10**30), 1)},
        ValueError,
        ["padding must be at most 2**60"],
    ),
    (
        convkit.conv2d,
        X,
        W,
        {"border_mode": np.array([1, 2**62])},
        ValueError,
        ["padding must be at most 2**60"],
    ),
    (
        convkit.conv2d,
        X,
        W,
        {"border_mode": (2**60, 0)},
        ValueError,
        ["padded input along spatial axis 0", "over 2**60"],
    ),
    (
        convkit.conv2d,
        X,
        W,
        {"filter_dilation": 2**59 + 1},
        ValueError,
        ["dilated kernel extent along spatial axis 0", "over 2**60"],
    ),
    (
        convkit.conv2d,
        X,
        W,
        {"border_mode": np.array([1, 1, 1])},
        ValueError,
        ["one entry per spatial axis (2)"],
    ),
    (convkit.conv2d, X.astype(object), W, {}, TypeError, ["input", "object"]),
    (convkit.conv2d, X, "filters", {}, TypeError, ["filters", "str"]),
]


@pytest.mark.parametrize("function, data, filters, kwargs, error, fragments", CONV_ERRORS)
def test_conv_errors(function, data, filters, kwargs, error, fragments):
    with pytest.raises(error) as caught:
        function(data, filters, **kwargs)
    message = str(caught.value)
    assert message.startswith(function.__name__ + ": ")
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_backend_errors():
    with pytest.raises(convkit.UnknownBackendError, match="installed backends: .*scipy"):
        convkit.convolve_nd(V, V, backend="no-such-engine")
    with pytest.raises(TypeError, match="backend must be a backend name"):
        convkit.convolve_nd(V, V, backend=3)
    with pytest.raises(ValueError, match="backend= takes one name"):
        convkit.convolve_nd(V, V, backend="scipy,scipy")


def test_memory_budget_refuses_before_allocating():
    convkit.set_memory_limit(1024)
    with pytest.raises(
        convkit.WorkingSetTooLargeError, match="over the limit .*convkit.set_memory_limit"
    ):
        convkit.convolve_nd(np.ones(1000), np.ones(10))
    with pytest.raises(MemoryError):
        convkit.conv2d(X, W)


def test_memory_limit_from_environment(monkeypatch):
    monkeypatch.setenv("CONVKIT_MEMORY_LIMIT", "1K")
    assert convkit.get_memory_limit() == 1024
    with pytest.raises(convkit.WorkingSetTooLargeError):
        convkit.convolve_nd(np.ones(1000), np.ones(10))
    monkeypatch.setenv("CONVKIT_MEMORY_LIMIT", "lots")
    with pytest.raises(
        ValueError, match="CONVKIT_MEMORY_LIMIT='lots' is not valid: expected a positive byte count"
    ):
        convkit.get_memory_limit()


@pytest.mark.parametrize("backend", ["scipy", "numba", "fftw"])
def test_huge_integers_never_reach_a_backend(backend):
    if backend not in {info.name for info in convkit.list_backends() if info.available}:
        pytest.skip(f"backend {backend!r} is not available here")
    x, w = np.ones((1, 1, 4, 4)), np.ones((1, 1, 2, 2))
    for kwargs in ({"subsample": 10**30}, {"border_mode": 10**30}, {"filter_dilation": 10**30}):
        with pytest.raises(ValueError, match="must be at most 2[*][*]60"):
            convkit.conv2d(x, w, backend=backend, **kwargs)
    # Within the bounds, index arithmetic stays inside 64 bits: an answer or a refusal.
    try:
        result = convkit.conv2d(x, w, border_mode=2**58, subsample=2**60, backend=backend)
    except convkit.WorkingSetTooLargeError:
        return
    np.testing.assert_array_equal(result, np.zeros((1, 1, 1, 1)))


def test_huge_output_is_refused_not_allocated():
    # 10^12 outputs: refused by the budget, never handed to the allocator.
    column, row = np.ones((10**6, 1)), np.ones((1, 10**6))
    with pytest.raises(MemoryError, match=r"output shape \(1000000, 1000000\)"):
        convkit.convolve_nd(column, row)


def test_thread_setting_errors(monkeypatch):
    with pytest.raises(ValueError, match="threads must be >= 1"):
        convkit.set_num_threads(0)
    with pytest.raises(TypeError):
        convkit.set_num_threads(2.0)
    monkeypatch.setenv("CONVKIT_NUM_THREADS", "many")
    with pytest.raises(
        ValueError, match="CONVKIT_NUM_THREADS='many' is not valid: expected a whole number"
    ):
        convkit.get_num_threads()
    monkeypatch.setenv("CONVKIT_NUM_THREADS", "3")
    assert convkit.get_num_threads() == 3
