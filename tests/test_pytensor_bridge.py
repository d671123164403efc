"""convkit.pytensor: the Ops' values, shapes and gradients (finite differences)."""

import warnings

import numpy as np
import pytest

pytensor = pytest.importorskip("pytensor")

import pytensor.tensor as pt  # noqa: E402
from pytensor.compile.mode import Mode  # noqa: E402
from pytensor.gradient import verify_grad  # noqa: E402

import convkit  # noqa: E402
import convkit.pytensor as ckp  # noqa: E402

# (input shape, filters shape, parameters): every rank, stride, dilation, groups, border
# mode and both kernel orientations, each small enough for finite differences.
CASES = [
    ((2, 2, 6), (3, 2, 3), {}),
    ((1, 2, 7), (2, 1, 2), dict(border_mode="full", subsample=2, num_groups=2)),
    ((1, 1, 6), (1, 1, 3), dict(border_mode="same", subsample=2, filter_flip=False)),
    ((1, 2, 5, 6), (2, 2, 3, 2), dict(border_mode="half", filter_dilation=(1, 2))),
    ((2, 4, 5, 5), (4, 2, 2, 3), dict(border_mode=((0, 2), 1), subsample=(2, 1), num_groups=2)),
    ((1, 1, 5, 4), (2, 1, 3, 3), dict(border_mode=1, filter_flip=False, boundary="wrap")),
    ((1, 2, 6, 5), (1, 2, 2, 2), dict(border_mode="same", subsample=3, boundary="symm")),
    ((1, 1, 4, 3, 4), (2, 1, 2, 2, 2), dict(border_mode="valid", subsample=(1, 2, 1))),
    ((1, 2, 3, 4, 3), (2, 1, 2, 1, 2), dict(border_mode="half", num_groups=2, filter_flip=False)),
]
IDS = [
    f"{len(shape) - 2}d-{'-'.join(f'{k}={v}' for k, v in p.items()) or 'plain'}"
    for shape, _, p in CASES
]
FAST = "FAST_COMPILE"  # compiles in a fraction of the default mode's time
# PyTensor 3's default (Numba) mode says so of every Op that computes in Python.
OBJECT_MODE = "Numba will use object mode"
pytestmark = pytest.mark.filterwarnings(f"ignore:{OBJECT_MODE}:UserWarning")


def _operands(rng, input_shape, filters_shape):
    return rng.standard_normal(input_shape), rng.standard_normal(filters_shape)


@pytest.mark.parametrize(("input_shape", "filters_shape", "parameters"), CASES, ids=IDS)
def test_gradients_agree_with_finite_differences(rng, input_shape, filters_shape, parameters):
    x, w = _operands(rng, input_shape, filters_shape)
    verify_grad(
        lambda input, filters: ckp.conv(input, filters, backend="scipy", **parameters),
        [x, w],
        rng=rng,
        mode=FAST,
    )


@pytest.mark.parametrize(("input_shape", "filters_shape", "parameters"), CASES, ids=IDS)
def test_values_and_inferred_shape_are_convkits(rng, input_shape, filters_shape, parameters):
    x, w = _operands(rng, input_shape, filters_shape)
    input, filters = pt.tensor(shape=(None,) * x.ndim), pt.tensor(shape=(None,) * w.ndim)
    output = ckp.conv(input, filters, **parameters)
    run = pytensor.function([input, filters], [output, output.shape], mode=FAST)
    value, shape = run(x, w)
    np.testing.assert_allclose(value, convkit.conv(x, w, **parameters), rtol=1e-13, atol=1e-13)
    assert tuple(shape) == value.shape
    # The shape is computed from the operands' shapes alone, without running the Op.
    shape_only = pytensor.function([input, filters], output.shape)
    assert not any(isinstance(node.op, ckp.Conv) for node in shape_only.maker.fgraph.apply_nodes)


def test_gradient_ops_are_differentiable_too(rng):
    parameters = dict(spatial_dims=2, border_mode="half", subsample=2, num_groups=2)
    x, w = _operands(rng, (1, 4, 5, 4), (2, 2, 3, 3))
    g = rng.standard_normal((1, 2, 3, 2))
    verify_grad(
        lambda filters, output_grad: ckp.ConvGradInput(**parameters)(filters, output_grad, x.shape),
        [w, g],
        rng=rng,
        mode=FAST,
    )
    verify_grad(
        lambda input, output_grad: ckp.ConvGradFilters(**parameters)(input, output_grad, w.shape),
        [x, g],
        rng=rng,
        mode=FAST,
    )


def test_gradient_ops_compute_convkits_gradients(rng):
    x, w = _operands(rng, (2, 2, 7), (3, 2, 3))
    g = rng.standard_normal((2, 3, 4))
    keywords = dict(border_mode="half", subsample=2, filter_flip=False)
    np.testing.assert_allclose(
        ckp.conv_grad_input(g, w, x.shape, **keywords).eval(mode=FAST),
        convkit.conv_grad_input(g, w, x.shape, **keywords),
    )
    np.testing.assert_allclose(
        ckp.conv_grad_filters(x, g, w.shape, **keywords).eval(mode=FAST),
        convkit.conv_grad_filters(x, g, w.shape, **keywords),
    )


def test_a_gradient_for_one_operand_builds_only_its_op(rng):
    input, filters = pt.tensor4("input"), pt.tensor4("filters")
    cost = ckp.conv2d(input, filters, border_mode="full").sum()
    graph = pytensor.function([input, filters], pytensor.grad(cost, filters), mode=FAST)
    ops = {type(node.op) for node in graph.maker.fgraph.apply_nodes}
    assert ckp.ConvGradFilters in ops and ckp.ConvGradInput not in ops


@pytest.mark.parametrize(
    "mode",
    [None, Mode(linker="py", optimizer="fast_run")],
    ids=["default-mode", "python-linker"],
)
def test_runs_in_the_default_mode_and_without_a_compiler(rng, mode):
    x, w = _operands(rng, (2, 3, 6, 6), (4, 3, 3, 3))
    input, filters = pt.tensor4("input"), pt.tensor4("filters")
    output = ckp.conv2d(input, filters, border_mode="half", subsample=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message=OBJECT_MODE, category=UserWarning)
        run = pytensor.function(
            [input, filters],
            [output, *pytensor.grad(output.sum(), [input, filters])],
            mode=mode,
        )
        value, input_grad, filters_grad = run(x, w)
    keywords = dict(border_mode="half", subsample=2)
    np.testing.assert_allclose(value, convkit.conv2d(x, w, **keywords), rtol=1e-12)
    ones = np.ones_like(value)
    np.testing.assert_allclose(
        input_grad, convkit.conv_grad_input(ones, w, x.shape, **keywords), rtol=1e-12
    )
    np.testing.assert_allclose(
        filters_grad, convkit.conv_grad_filters(x, ones, w.shape, **keywords), rtol=1e-12
    )


def test_dtypes_follow_convkit_and_gradients_match_their_operands(rng):
    input = pt.tensor4("input", dtype="float32")
    filters = pt.tensor4("filters", dtype="float16")
    output = ckp.conv2d(input, filters)
    assert output.dtype == "float32"
    input_grad, filters_grad = pytensor.grad(output.sum(), [input, filters])
    assert (input_grad.dtype, filters_grad.dtype) == ("float32", "float16")
    assert ckp.conv2d(pt.tensor4(dtype="float64"), pt.tensor4(dtype="float32")).dtype == "float64"


def test_theano_shape_hints_become_static_shapes():
    input, filters = pt.tensor4("input"), pt.tensor4("filters")
    output = ckp.conv2d(
        input,
        filters,
        input_shape=(8, 3, 32, 32),
        filter_shape=(16, 3, 3, 3),
        border_mode="half",
        subsample=2,
    )
    assert output.type.shape == (8, 16, 16, 16)
    partly = ckp.conv2d(input, filters, input_shape=(None, 3, 9, None), filter_shape=(4, 3, 3, 3))
    assert partly.type.shape == (None, 4, None, None)
    # A static input shape gives gradients of that static shape.
    static = pt.tensor("static", shape=(2, 3, 9, 9))
    grad = pytensor.grad(ckp.conv2d(static, filters).sum(), static)
    assert grad.type.shape == (2, 3, 9, 9)


def test_equal_parameters_make_equal_ops():
    assert ckp.Conv(2, "half", 2) == ckp.Conv(2, "half", (2, 2))
    assert hash(ckp.Conv(1, 1)) == hash(ckp.Conv(1, ((1, 1),)))
    assert ckp.Conv(2, subsample=2) != ckp.Conv(2, subsample=(2, 1))


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: ckp.conv2d(pt.matrix(), pt.tensor4()), ValueError, r"x\[None, None\]"),
        (lambda: ckp.conv(pt.matrix(), pt.matrix()), ValueError, "1 to 3 spatial axes"),
        (lambda: ckp.conv2d(pt.tensor4(dtype="int64"), pt.tensor4()), TypeError, "int64"),
        (lambda: ckp.conv2d(pt.tensor4(), pt.tensor3()), ValueError, "filters must have 4"),
        (lambda: ckp.conv2d(pt.tensor4(), pt.tensor4(), "bogus"), ValueError, "border_mode"),
        (lambda: ckp.conv2d(pt.tensor4(), pt.tensor4(), subsample=0), ValueError, "subsample"),
        (lambda: ckp.conv2d(pt.tensor4(), pt.tensor4(), num_groups=0), ValueError, "num_groups"),
        (
            lambda: ckp.conv2d(pt.tensor4(), pt.tensor4(), boundary="reflect"),
            ValueError,
            "ambiguous",
        ),
        (lambda: ckp.conv2d(pt.tensor4(), pt.tensor4(), backend=object()), TypeError, "name"),
        (
            lambda: ckp.conv2d(pt.tensor4(), pt.tensor4(), input_shape=(1, 2)),
            ValueError,
            "input_shape",
        ),
    ],
)
def test_bad_arguments_are_refused_when_the_graph_is_built(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_shape_errors_known_only_at_run_time_are_convkits(rng):
    input, filters = pt.tensor4("input"), pt.tensor4("filters")
    run = pytensor.function([input, filters], ckp.conv2d(input, filters), mode=FAST)
    with pytest.raises(ValueError, match="channels"):
        run(np.ones((1, 3, 5, 5)), np.ones((1, 2, 3, 3)))


def test_the_documented_example_recovers_the_blur_kernel(monkeypatch):
    from pathlib import Path

    monkeypatch.syspath_prepend(
        str(Path(__file__).resolve().parent.parent / "examples" / "autograd")
    )
    import recover_blur_kernel

    with pytensor.config.change_flags(mode=FAST):
        fitted, true_kernel, losses = recover_blur_kernel.recover()
    assert losses[-1] < losses[0] / 100
    np.testing.assert_allclose(fitted, true_kernel, atol=2e-3)
