"""convkit's CNN-layer convolution as a PyTorch autograd operation.

``import convkit.torch`` (it needs PyTorch: ``pip install "convkit-core[torch]"``) gives
:func:`conv2d` (and :func:`conv1d`, :func:`conv3d`, :func:`conv`), which take and return
CPU tensors and take part in ``backward()``: the forward pass runs :func:`convkit.conv`,
the backward pass :func:`convkit.conv_grad_input` and :func:`convkit.conv_grad_filters`,
each only for the operands that require a gradient.  :class:`Conv1d`, :class:`Conv2d`
and :class:`Conv3d` are PyTorch's layers with their constructor and initialization,
computing through convkit.

The functions keep convkit's defaults, Theano's: ``filter_flip=True``, a true
convolution, so that ``convkit.torch.conv2d(x, w)`` equals ``convkit.conv2d(x, w)``.
The layers default to ``filter_flip=False``, the cross-correlation of
``torch.nn.Conv2d``, so that a layer loaded with a PyTorch model's weights gives that
model's outputs.

``import convkit`` does not import this module or PyTorch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.autograd.function import once_differentiable

import convkit

__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvFunction", "conv", "conv1d", "conv2d", "conv3d"]

_FLOAT_DTYPES = (torch.float16, torch.float32, torch.float64)

# PyTorch's padding_mode names and the convkit boundary each one is.
_BOUNDARY_OF_PADDING_MODE = {
    "zeros": "fill",
    "reflect": "mirror",
    "replicate": "nearest",
    "circular": "wrap",
}


def _host_array(tensor: torch.Tensor, function: str, argument: str) -> np.ndarray:
    """The NumPy view of a CPU floating tensor; a clear error for anything else."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(
            f"{function}: {argument} must be a torch.Tensor, got {type(tensor).__name__}; "
            "convert it with torch.as_tensor, or call convkit.conv for NumPy arrays"
        )
    if tensor.device.type != "cpu":
        raise ValueError(
            f"{function}: {argument} is on {tensor.device}, but convkit.torch computes on CPU "
            f"tensors; move it with {argument}.cpu()"
        )
    if tensor.dtype not in _FLOAT_DTYPES:
        raise TypeError(
            f"{function}: {argument} has dtype {tensor.dtype}, expected torch.float16, "
            f"torch.float32 or torch.float64; cast it with {argument}.double() or "
            f"{argument}.float()"
        )
    if tensor.is_sparse or tensor.layout != torch.strided:
        raise TypeError(
            f"{function}: {argument} has layout {tensor.layout}, expected a dense tensor; "
            f"use {argument}.to_dense()"
        )
    return tensor.detach().resolve_conj().resolve_neg().numpy()


def _as_tensor(array: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).to(dtype)


class ConvFunction(torch.autograd.Function):
    """``convkit.conv(input, filters, **parameters)`` as a ``torch.autograd.Function``.

    Called as ``ConvFunction.apply(input, filters, parameters)`` with
    ``parameters`` a dict of the keyword arguments of :func:`convkit.conv`
    (``function`` names the caller in error messages); :func:`conv` is the
    usual way in.  The backward pass computes the gradient of each operand
    that requires one, and only that one; it is not itself differentiable.
    """

    @staticmethod
    def forward(ctx, input, filters, parameters):
        function = parameters.get("function", "conv")
        input_array = _host_array(input, function, "input")
        filters_array = _host_array(filters, function, "filters")
        keywords = {key: value for key, value in parameters.items() if key != "function"}
        output = convkit.conv(input_array, filters_array, **keywords)
        ctx.save_for_backward(input, filters)
        ctx.keywords = keywords
        return _as_tensor(output, torch.promote_types(input.dtype, filters.dtype))

    @staticmethod
    @once_differentiable
    def backward(ctx, output_grad):
        input, filters = ctx.saved_tensors
        gradient = output_grad.detach().numpy()
        input_grad = filters_grad = None
        if ctx.needs_input_grad[0]:
            input_grad = _as_tensor(
                convkit.conv_grad_input(
                    gradient, filters.numpy(), tuple(input.shape), **ctx.keywords
                ),
                input.dtype,
            )
        if ctx.needs_input_grad[1]:
            filters_grad = _as_tensor(
                convkit.conv_grad_filters(
                    input.numpy(), gradient, tuple(filters.shape), **ctx.keywords
                ),
                filters.dtype,
            )
        return input_grad, filters_grad, None


def _conv(spatial_dims, function, input, filters, parameters):
    """Check the operands of ``function`` and apply :class:`ConvFunction`."""
    for tensor, argument in ((input, "input"), (filters, "filters")):
        _host_array(tensor, function, argument)
    if spatial_dims is not None and input.ndim != spatial_dims + 2:
        hint = (
            " (for one image of one channel, pass x[None, None])"
            if (input.ndim == spatial_dims)
            else ""
        )
        raise ValueError(
            f"{function}: input must have {spatial_dims + 2} dimensions (N, C, "
            f"{', '.join('DHW'[3 - spatial_dims :])}), got shape {tuple(input.shape)}{hint}"
        )
    return ConvFunction.apply(input, filters, {"function": function, **parameters})


def _parameters(
    border_mode, subsample, filter_flip, filter_dilation, num_groups, boundary, backend
) -> dict:
    return dict(
        border_mode=border_mode,
        subsample=subsample,
        filter_flip=filter_flip,
        filter_dilation=filter_dilation,
        num_groups=num_groups,
        boundary=boundary,
        backend=backend,
    )


def conv(
    input: torch.Tensor,
    filters: torch.Tensor,
    border_mode: object = "valid",
    subsample: int | Sequence[int] = 1,
    filter_flip: bool = True,
    filter_dilation: int | Sequence[int] = 1,
    num_groups: int = 1,
    *,
    boundary: str = "fill",
    backend: object = None,
) -> torch.Tensor:
    """:func:`convkit.conv` on PyTorch tensors, differentiable with respect to both.

    Parameters
    ----------
    input : torch.Tensor
        ``(N, C, *spatial)``, on the CPU, float16, float32 or float64.
    filters : torch.Tensor
        ``(F, C // num_groups, *kernel)``, on the CPU, a floating dtype.
    border_mode, subsample, filter_flip, filter_dilation, num_groups, boundary, backend
        As for :func:`convkit.conv`; ``filter_flip=True`` (the default) is a
        true convolution, ``False`` the cross-correlation of
        ``torch.nn.functional.conv2d``.

    Returns
    -------
    torch.Tensor
        ``(N, F, *out)``, of the operands' promoted dtype (float16 stays
        float16, computed in float32).

    Raises
    ------
    TypeError
        An operand that is not a tensor, or not of a floating dtype.
    ValueError
        An operand on a GPU; the shape and parameter errors of :func:`convkit.conv`.

    Examples
    --------
    >>> import torch, convkit.torch
    >>> x = torch.tensor([[[1.0, 2.0, 3.0]]], requires_grad=True)
    >>> w = torch.tensor([[[1.0, -1.0]]], requires_grad=True)
    >>> y = convkit.torch.conv(x, w, border_mode="full")
    >>> y
    tensor([[[ 1.,  1.,  1., -3.]]], grad_fn=<ConvFunctionBackward>)
    >>> y.sum().backward()
    >>> x.grad, w.grad
    (tensor([[[0., 0., 0.]]]), tensor([[[6., 6.]]]))
    """
    parameters = _parameters(
        border_mode, subsample, filter_flip, filter_dilation, num_groups, boundary, backend
    )
    return _conv(None, "conv", input, filters, parameters)


def _fixed_rank(spatial_dims: int, function: str):
    def convolution(
        input: torch.Tensor,
        filters: torch.Tensor,
        border_mode: object = "valid",
        subsample: int | Sequence[int] = 1,
        filter_flip: bool = True,
        filter_dilation: int | Sequence[int] = 1,
        num_groups: int = 1,
        *,
        boundary: str = "fill",
        backend: object = None,
    ) -> torch.Tensor:
        parameters = _parameters(
            border_mode, subsample, filter_flip, filter_dilation, num_groups, boundary, backend
        )
        return _conv(spatial_dims, function, input, filters, parameters)

    convolution.__name__ = convolution.__qualname__ = function
    return convolution


conv1d = _fixed_rank(1, "conv1d")
conv1d.__doc__ = """:func:`conv` with one spatial axis: input ``(N, C, W)``, filters ``(F, C // g, k)``.

Examples
--------
>>> import torch, convkit.torch
>>> convkit.torch.conv1d(torch.ones(1, 1, 4), torch.ones(1, 1, 2))
tensor([[[2., 2., 2.]]])
"""

conv2d = _fixed_rank(2, "conv2d")
conv2d.__doc__ = """:func:`conv` with two spatial axes: input ``(N, C, H, W)``.

With ``filter_flip=False`` it computes what ``torch.nn.functional.conv2d``
computes with ``stride=subsample``, ``dilation=filter_dilation`` and
``groups=num_groups``.

Examples
--------
>>> import torch, convkit.torch
>>> x, w = torch.randn(2, 3, 8, 8), torch.randn(4, 3, 3, 3)
>>> y = convkit.torch.conv2d(x, w, border_mode=1, subsample=2, filter_flip=False)
>>> torch.allclose(y, torch.nn.functional.conv2d(x, w, padding=1, stride=2), atol=1e-5)
True
"""

conv3d = _fixed_rank(3, "conv3d")
conv3d.__doc__ = """:func:`conv` with three spatial axes: input ``(N, C, D, H, W)``.

Examples
--------
>>> import torch, convkit.torch
>>> convkit.torch.conv3d(torch.ones(1, 2, 3, 3, 3), torch.ones(1, 2, 2, 2, 2)).shape
torch.Size([1, 1, 2, 2, 2])
"""


class _ConvLayer:
    """What the three layers add to PyTorch's: the forward pass through convkit."""

    def _setup_convkit(self, filter_flip: bool, backend: object) -> None:
        if not isinstance(filter_flip, bool):
            raise TypeError(
                f"{type(self).__name__}: filter_flip must be True or False, got {filter_flip!r}"
            )
        self.filter_flip = filter_flip
        self.backend = backend

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        spatial_dims = len(self.kernel_size)
        parameters = _parameters(
            self.padding if isinstance(self.padding, str) else tuple(self.padding),
            tuple(self.stride),
            self.filter_flip,
            tuple(self.dilation),
            self.groups,
            _BOUNDARY_OF_PADDING_MODE[self.padding_mode],
            self.backend,
        )
        output = _conv(
            spatial_dims, f"{type(self).__name__}.forward", input, self.weight, parameters
        )
        if self.bias is not None:
            output = output + self.bias.reshape(1, -1, *([1] * spatial_dims))
        return output

    def extra_repr(self) -> str:
        return super().extra_repr() + f", filter_flip={self.filter_flip}"


def _layer(torch_layer: type, spatial_dims: int) -> type:
    name = torch_layer.__name__

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device=None,
        dtype=None,
        *,
        filter_flip: bool = False,
        backend: object = None,
    ):
        # PyTorch refuses padding="same" with a stride; convkit pads it as TensorFlow does.
        strided_same = (
            isinstance(padding, str)
            and padding == "same"
            and stride not in (1, (1,) * spatial_dims)
        )
        torch_layer.__init__(
            self,
            in_channels,
            out_channels,
            kernel_size,
            stride,
            "valid" if strided_same else padding,
            dilation,
            groups,
            bias,
            padding_mode,
            device,
            dtype,
        )
        if strided_same:
            self.padding = "same"
        self._setup_convkit(filter_flip, backend)

    layer = type(name, (_ConvLayer, torch_layer), {"__init__": __init__, "__module__": __name__})
    layer.__doc__ = f"""``torch.nn.{name}`` computing through convkit.

    The constructor is PyTorch's, with the same initialization and the same
    ``weight`` and ``bias`` parameters (a state dict loads either way), plus
    two keyword-only arguments.

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode, device, dtype
        As for ``torch.nn.{name}``; ``padding`` also takes "same" with a
        stride above 1 (the output is ``ceil(input / stride)`` long, as
        TensorFlow pads), and ``padding_mode`` "reflect", "replicate" and
        "circular" are convkit's boundaries "mirror", "nearest" and "wrap".
    filter_flip : bool
        False (the default): cross-correlation, as ``torch.nn.{name}``.
        True: a true convolution, as Theano's and :func:`convkit.conv`.
    backend : str or None
        The convkit backend to run on; None chooses as any convkit call does.

    Examples
    --------
    >>> import torch, convkit.torch
    >>> layer = convkit.torch.{name}(2, 4, kernel_size=3, padding=1)
    >>> layer(torch.randn(1, 2{", 5" * spatial_dims})).shape
    torch.Size([1, 4{", 5" * spatial_dims}])
    """
    return layer


Conv1d = _layer(torch.nn.Conv1d, 1)
Conv2d = _layer(torch.nn.Conv2d, 2)
Conv3d = _layer(torch.nn.Conv3d, 3)
