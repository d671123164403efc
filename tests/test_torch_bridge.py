"""convkit.torch: values against PyTorch's own convolutions, gradients by gradcheck."""

import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402

import convkit  # noqa: E402
import convkit.torch as ckt  # noqa: E402

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
TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
LAYER = {1: ckt.Conv1d, 2: ckt.Conv2d, 3: ckt.Conv3d}
TORCH_LAYER = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}


def _operands(input_shape, filters_shape, dtype=torch.float64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    input = torch.randn(input_shape, generator=generator, dtype=dtype, requires_grad=True)
    filters = torch.randn(filters_shape, generator=generator, dtype=dtype, requires_grad=True)
    return input, filters


@pytest.mark.parametrize(("input_shape", "filters_shape", "parameters"), CASES, ids=IDS)
def test_gradcheck(input_shape, filters_shape, parameters):
    input, filters = _operands(input_shape, filters_shape)
    assert torch.autograd.gradcheck(
        lambda x, w: ckt.conv(x, w, backend="scipy", **parameters), (input, filters)
    )


@pytest.mark.parametrize(
    ("input_shape", "filters_shape", "stride", "padding", "dilation", "groups"),
    [
        ((2, 4, 9), (6, 2, 3), 2, 1, 1, 2),
        ((2, 3, 8, 7), (4, 3, 3, 2), (2, 1), (1, 0), (1, 2), 1),
        ((1, 4, 5, 6, 5), (4, 1, 2, 3, 2), 1, (1, 0, 1), 1, 4),
    ],
)
def test_cross_correlation_is_torchs_conv(
    input_shape, filters_shape, stride, padding, dilation, groups
):
    input, filters = _operands(input_shape, filters_shape)
    ours = ckt.conv(input, filters, padding, stride, False, dilation, groups)
    theirs = TORCH_CONV[input.ndim - 2](input, filters, None, stride, padding, dilation, groups)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    # filter_flip=True is the same with the kernel flipped in every spatial axis.
    spatial = tuple(range(2, filters.ndim))
    flipped = ckt.conv(input, filters.flip(spatial), padding, stride, True, dilation, groups)
    torch.testing.assert_close(flipped, theirs, rtol=1e-12, atol=1e-12)
    # ... and the gradients are PyTorch's too.
    seed = torch.randn_like(theirs)
    torch.testing.assert_close(
        torch.autograd.grad(ours, (input, filters), seed),
        torch.autograd.grad(theirs, (input, filters), seed),
        rtol=1e-12,
        atol=1e-12,
    )


def test_values_are_convkits():
    input, filters = _operands((2, 2, 7, 6), (3, 2, 3, 3))
    keywords = dict(border_mode="same", subsample=2, boundary="nearest")
    expected = convkit.conv2d(input.detach().numpy(), filters.detach().numpy(), **keywords)
    np.testing.assert_array_equal(ckt.conv2d(input, filters, **keywords).detach().numpy(), expected)


@pytest.mark.parametrize("needs", ["input", "filters"])
def test_only_the_gradients_asked_for_are_computed(monkeypatch, needs):
    input, filters = _operands((1, 2, 6, 6), (2, 2, 3, 3))
    other = {"input": "filters", "filters": "input"}[needs]
    {"input": filters, "filters": input}[needs].requires_grad_(False)

    def refuse(*args, **kwargs):
        raise AssertionError(f"the gradient for {other} was computed but not asked for")

    monkeypatch.setattr(convkit, f"conv_grad_{other}", refuse)
    ckt.conv2d(input, filters, border_mode="half").sum().backward()
    asked, unasked = (input, filters) if needs == "input" else (filters, input)
    assert asked.grad is not None and asked.grad.shape == asked.shape
    assert unasked.grad is None


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_dtype_is_kept(dtype):
    input, filters = _operands((1, 2, 5, 5), (2, 2, 3, 3), dtype=dtype)
    output = ckt.conv2d(input, filters, backend="scipy")
    output.sum().backward()
    assert output.dtype == input.grad.dtype == filters.grad.dtype == dtype


def test_mixed_dtypes_promote_as_torch_does():
    input, _ = _operands((1, 1, 5), (1, 1, 2), dtype=torch.float32)
    _, filters = _operands((1, 1, 5), (1, 1, 2))
    output = ckt.conv1d(input, filters)
    output.sum().backward()
    assert output.dtype == torch.float64
    assert (input.grad.dtype, filters.grad.dtype) == (torch.float32, torch.float64)


@pytest.mark.parametrize(
    ("input", "error", "message"),
    [
        (torch.ones(1, 1, 5, dtype=torch.int64), TypeError, r"int64.*\.double\(\)"),
        (torch.ones(1, 1, 5, dtype=torch.bfloat16), TypeError, "bfloat16"),
        (torch.ones(1, 1, 5, device="meta"), ValueError, r"on meta.*\.cpu\(\)"),
        (np.ones((1, 1, 5)), TypeError, "torch.as_tensor"),
        (torch.ones(1, 5), ValueError, "3 dimensions"),
    ],
    ids=["integer", "bfloat16", "not-cpu", "numpy", "rank"],
)
def test_bad_operands_are_refused(input, error, message):
    with pytest.raises(error, match=message):
        ckt.conv1d(input, torch.ones(1, 1, 2))


def test_convkits_errors_come_through():
    with pytest.raises(ValueError, match="channels"):
        ckt.conv2d(torch.ones(1, 3, 5, 5), torch.ones(1, 2, 3, 3))


def test_second_derivatives_are_refused_clearly():
    input, filters = _operands((1, 1, 5), (1, 1, 2))
    output = ckt.conv1d(input, filters)
    (grad,) = torch.autograd.grad(output.square().sum(), input, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|double backward"):
        grad.sum().backward()


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("spatial_dims", [1, 2, 3])
def test_layers_compute_what_torchs_layers_compute(spatial_dims, padding_mode):
    torch.manual_seed(spatial_dims)
    keywords = dict(
        kernel_size=3,
        stride=2,
        padding=1,
        dilation=1,
        groups=2,
        padding_mode=padding_mode,
        dtype=torch.float64,
    )
    ours, theirs = (
        LAYER[spatial_dims](4, 6, **keywords),
        TORCH_LAYER[spatial_dims](4, 6, **keywords),
    )
    ours.load_state_dict(theirs.state_dict())
    input = torch.randn(2, 4, *[7] * spatial_dims, dtype=torch.float64)
    torch.testing.assert_close(ours(input), theirs(input), rtol=1e-12, atol=1e-12)
    ours(input).square().sum().backward()
    theirs(input).square().sum().backward()
    for mine, reference in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(mine.grad, reference.grad, rtol=1e-10, atol=1e-10)


def test_layer_same_padding_takes_a_stride_and_filter_flip():
    layer = ckt.Conv2d(1, 1, (3, 2), stride=2, padding="same", bias=False, filter_flip=True)
    input = torch.randn(1, 1, 7, 6)
    assert layer(input).shape == (1, 1, 4, 3)
    expected = convkit.conv2d(input.numpy(), layer.weight.detach().numpy(), "same", 2)
    np.testing.assert_allclose(layer(input).detach().numpy(), expected, rtol=1e-6)
    assert "filter_flip=True" in repr(layer)
    with pytest.raises(TypeError, match="filter_flip"):
        ckt.Conv2d(1, 1, 3, filter_flip="yes")


def test_a_layer_learns_with_an_optimizer():
    torch.manual_seed(0)
    target = torch.nn.Conv2d(2, 3, 3, padding=1, dtype=torch.float64)
    layer = ckt.Conv2d(2, 3, 3, padding=1, dtype=torch.float64)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    input = torch.randn(4, 2, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        wanted = target(input)
    losses = []
    for _ in range(2):
        optimizer.zero_grad()
        loss = (layer(input) - wanted).square().mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[1] < losses[0]


def test_the_documented_example_runs():
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parent.parent / "docs" / "autograd.rst").read_text()
    (block,) = re.findall(r"\.\. code-block:: python\n\n((?:   .*\n|\n)+)", page)
    namespace = {}
    exec(compile(textwrap.dedent(block), "docs/autograd.rst", "exec"), namespace)  # noqa: S102 - our own docs
    theirs = F.conv2d(namespace["x"], namespace["w"], padding=1, stride=2)
    torch.testing.assert_close(namespace["y"], theirs)
    assert namespace["x"].grad is not None and namespace["w"].grad is not None
