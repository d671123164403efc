"""The normalized gradient problems, and the checking of the gradients' arguments.

:func:`convkit.conv_grad_input` and :func:`convkit.conv_grad_filters` build
one of these problems, after checking every argument once, as
``normalize_conv`` does for :func:`convkit.conv`.  A backend that implements
``conv_grad_input`` / ``conv_grad_filters`` receives it as it is; for every
other backend the core lowers it to forward ``conv`` problems
(``convkit._adjoint``).
"""

from __future__ import annotations

import dataclasses
import math
import operator
from dataclasses import dataclass

import numpy as np

from convkit._device import is_device_array
from convkit._geometry import (
    MAX_LENGTH,
    at_most_max_length,
    conv_output_length,
    dilated_extent,
    is_scalar,
    padding_from_border_mode,
    per_axis,
)
from convkit._validation import (
    _check_boundary,
    _check_budget,
    _padded_signal,
    _readonly_contiguous,
    compute_dtype,
    to_operand,
)

__all__ = [
    "GRADIENT_OPERATIONS",
    "ConvGradFiltersProblem",
    "ConvGradInputProblem",
    "Folding",
    "GradientProblem",
    "normalize_conv_grad_filters",
    "normalize_conv_grad_input",
    "prepare_conv_grad_filters",
    "prepare_conv_grad_input",
]

#: The operations a backend may implement natively; the core lowers them to ``conv`` otherwise.
GRADIENT_OPERATIONS = frozenset({"conv_grad_input", "conv_grad_filters"})


@dataclass(frozen=True, eq=False)
class ConvGradInputProblem:
    """A normalized :func:`convkit.conv_grad_input` problem: the adjoint of a conv in its input.

    It describes the forward :class:`ConvProblem` with ``filters``,
    ``padding``, ``stride``, ``dilation`` and ``groups`` that maps an input of
    shape ``output_shape`` to an output of ``output_grad``'s shape.  With
    ``G = groups``, ``Cg = C // G`` and ``Fg = F // G``, the backend returns
    ``grad`` of shape ``output_shape == (N, C, *in_spatial)`` where::

        grad[n, g * Cg + c, i] = sum over f < Fg, output positions o and kernel
            offsets k with o * stride - pad_before + k * dilation == i of
            output_grad[n, g * Fg + f, o] * filters[g * Fg + f, c, k]

    (per spatial axis; an input position that no output reads gets 0, and
    padding adds no terms).  The filters are already flipped when the user
    asked for ``filter_flip=True``, as in the forward problem.  There is no
    complex conjugation: the result is the derivative of the (bilinear)
    forward map, not its Hermitian adjoint.

    Attributes
    ----------
    output_grad : numpy.ndarray
        ``(N, F, *out_spatial)``, C-contiguous, read-only, of dtype ``dtype``;
        N, F and C are all >= 1.
    filters : numpy.ndarray
        ``(F, C // groups, *kernel)``, same properties.
    padding : tuple of (int, int)
        The forward's ``(before, after)`` zero padding per spatial axis.
    stride, dilation : tuple of int
        The forward's, per spatial axis, all >= 1.
    groups : int
        Divides both C and F.
    output_shape : tuple of int
        ``(N, C, *in_spatial)``: the forward input's shape.
    dtype : numpy.dtype
        The compute dtype and the dtype of the result.
    filter_flip : bool
        What the user asked for; ``filters`` already reflects it.
    on_device : bool
        Always False: gradients take host arrays.
    """

    output_grad: np.ndarray
    filters: np.ndarray
    padding: tuple[tuple[int, int], ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int
    output_shape: tuple[int, ...]
    dtype: np.dtype
    filter_flip: bool = True
    on_device: bool = False
    # The core extends or folds a boundary rule around the backend: it always sees zero fill.
    boundary = "fill"

    operation = "conv_grad_input"

    @property
    def operands(self) -> tuple[np.ndarray, np.ndarray]:
        """The two arrays that are combined, ``(output_grad, filters)``."""
        return self.output_grad, self.filters

    def with_operands(
        self, first: np.ndarray, second: np.ndarray, dtype=None
    ) -> ConvGradInputProblem:
        """The same geometry with other operands (of dtype ``dtype``)."""
        return dataclasses.replace(
            self, output_grad=first, filters=second, dtype=np.dtype(dtype or first.dtype)
        )

    @property
    def spatial_dims(self) -> int:
        """Number of spatial axes."""
        return self.output_grad.ndim - 2

    @property
    def kernel_shape(self) -> tuple[int, ...]:
        """The spatial shape of one filter."""
        return tuple(self.filters.shape[2:])

    @property
    def multiply_adds(self) -> int:
        """Multiply-adds of the direct method: those of the forward conv."""
        return math.prod(self.output_grad.shape) * math.prod(self.filters.shape[1:])


@dataclass(frozen=True, eq=False)
class ConvGradFiltersProblem:
    """A normalized :func:`convkit.conv_grad_filters` problem: the adjoint of a conv in its filters.

    With ``G = groups``, ``Cg = C // G`` and ``Fg = F // G``, the backend
    returns ``grad`` of shape ``output_shape == (F, Cg, *kernel)`` where::

        grad[f, c, k] = sum over n and output positions o of
            output_grad[n, f, o] * input[n, (f // Fg) * Cg + c, o * stride - pad_before + k * dilation]

    (per spatial axis), taken only over input positions inside the input.
    This is the gradient with respect to the filters as the forward problem
    holds them (already flipped for ``filter_flip=True``); the core flips the
    result back.  No complex conjugation, as for
    :class:`ConvGradInputProblem`.

    Attributes
    ----------
    input : numpy.ndarray
        ``(N, C, *in_spatial)``, C-contiguous, read-only, of dtype ``dtype``;
        already extended by the boundary rule when it is not zero fill (then
        ``padding`` is all zero).  N, C and F are all >= 1.
    output_grad : numpy.ndarray
        ``(N, F, *out_spatial)``, same properties.
    padding : tuple of (int, int)
        The forward's ``(before, after)`` zero padding per spatial axis.
    stride, dilation : tuple of int
        The forward's, per spatial axis, all >= 1.
    groups : int
        Divides both C and F.
    output_shape : tuple of int
        ``(F, C // groups, *kernel)``: the filters' shape.
    dtype : numpy.dtype
        The compute dtype and the dtype of the result.
    filter_flip : bool
        What the user asked for (the core flips the result when True).
    on_device : bool
        Always False: gradients take host arrays.
    """

    input: np.ndarray
    output_grad: np.ndarray
    padding: tuple[tuple[int, int], ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int
    output_shape: tuple[int, ...]
    dtype: np.dtype
    filter_flip: bool = True
    on_device: bool = False
    # The core extends or folds a boundary rule around the backend: it always sees zero fill.
    boundary = "fill"

    operation = "conv_grad_filters"

    @property
    def operands(self) -> tuple[np.ndarray, np.ndarray]:
        """The two arrays that are combined, ``(input, output_grad)``."""
        return self.input, self.output_grad

    def with_operands(
        self, first: np.ndarray, second: np.ndarray, dtype=None
    ) -> ConvGradFiltersProblem:
        """The same geometry with other operands (of dtype ``dtype``)."""
        return dataclasses.replace(
            self, input=first, output_grad=second, dtype=np.dtype(dtype or first.dtype)
        )

    @property
    def spatial_dims(self) -> int:
        """Number of spatial axes."""
        return self.input.ndim - 2

    @property
    def kernel_shape(self) -> tuple[int, ...]:
        """The spatial shape of one filter."""
        return tuple(self.output_shape[2:])

    @property
    def multiply_adds(self) -> int:
        """Multiply-adds of the direct method: those of the forward conv."""
        return math.prod(self.output_grad.shape) * math.prod(self.output_shape[1:])


GradientProblem = ConvGradInputProblem | ConvGradFiltersProblem


@dataclass(frozen=True)
class Folding:
    """How the core finishes a gradient after the backend: fold or flip its result.

    Attributes
    ----------
    widths : list of (int, int) or None
        For the input gradient of a conv whose padding a boundary rule
        filled: the padding per axis (batch and channel included), to fold.
    pad_mode : str or None
        The numpy.pad mode of that rule.
    flip : bool
        For the filter gradient with ``filter_flip``: reverse the spatial axes.
    """

    widths: list[tuple[int, int]] | None = None
    pad_mode: str | None = None
    flip: bool = False


def _shape_argument(value: object, ndim: int, function: str, argument: str) -> tuple[int, ...]:
    """A full shape: a tuple, list or 1-d integer array of ``ndim`` ints, each >= 0."""
    if isinstance(value, np.ndarray):
        if value.ndim != 1 or value.dtype.kind not in "iu":
            raise TypeError(
                f"{function}: {argument} must be a tuple of {ndim} ints, got an array of "
                f"shape {value.shape} and dtype {value.dtype}; pass e.g. tuple(x.shape)"
            )
        value = value.tolist()
    if is_scalar(value) or isinstance(value, (dict, set, frozenset)):
        raise TypeError(
            f"{function}: {argument} must be a tuple of {ndim} ints (a full shape), got {value!r}"
        )
    items = tuple(value)
    for item in items:
        if item is None:
            raise TypeError(
                f"{function}: {argument} must give every length, got {value!r}; convkit needs "
                "the full shape (None entries, which Theano allows, are not accepted)"
            )
        if isinstance(item, (bool, np.bool_)) or not isinstance(item, (int, np.integer)):
            raise TypeError(f"{function}: {argument} must contain ints, got {value!r}")
    if len(items) != ndim:
        raise ValueError(
            f"{function}: {argument} must have {ndim} entries (one per axis of the other "
            f"operands), got {value!r} with {len(items)}"
        )
    shape = tuple(operator.index(item) for item in items)
    for length in shape:
        if length < 0:
            raise ValueError(f"{function}: {argument} must not be negative, got {value!r}")
        at_most_max_length(length, function, argument, value)
    return shape


def _host_operand(value: object, function: str, argument: str) -> np.ndarray:
    if is_device_array(value):
        raise TypeError(
            f"{function}: {argument} is a device (GPU) array; the gradients take NumPy arrays "
            "(copy it to the host first, e.g. cupy.asnumpy)"
        )
    return to_operand(value, function, argument)


def _groups(num_groups: object, function: str) -> int:
    if isinstance(num_groups, (bool, np.bool_)) or not isinstance(num_groups, (int, np.integer)):
        raise TypeError(f"{function}: num_groups must be a positive int, got {num_groups!r}")
    groups = int(num_groups)
    if groups < 1:
        raise ValueError(f"{function}: num_groups must be >= 1, got {groups}")
    return at_most_max_length(groups, function, "num_groups", num_groups)


@dataclass(frozen=True)
class _Names:
    """How one public function names its arguments in error messages."""

    function: str
    output_grad: str
    input: str
    filters: str
    shape: str
    stride: str


def _forward_geometry(
    names: _Names,
    input_shape: tuple[int, ...],
    filter_shape: tuple[int, ...],
    grad_shape: tuple[int, ...],
    border_mode: object,
    subsample: object,
    filter_dilation: object,
    num_groups: object,
    filter_flip: object,
    shapes_named: tuple[str, str, str],
):
    """Check that a forward conv maps ``input_shape`` and ``filter_shape`` to ``grad_shape``.

    Returns ``(padding, stride, dilation, groups)``.  ``shapes_named`` says
    how the three shapes are spoken of in messages (argument names).
    """
    function = names.function
    input_name, filter_name, grad_name = shapes_named
    spatial_dims = len(grad_shape) - 2
    if not isinstance(filter_flip, (bool, np.bool_)):
        raise TypeError(f"{function}: filter_flip must be True or False, got {filter_flip!r}")
    groups = _groups(num_groups, function)
    batch, channels = input_shape[:2]
    filter_count, filter_channels = filter_shape[:2]
    if grad_shape[0] != batch:
        raise ValueError(
            f"{function}: {grad_name} has batch size {grad_shape[0]} (shape {grad_shape}) but "
            f"{input_name} has {batch} (shape {input_shape}); both come from the same batch"
        )
    if grad_shape[1] != filter_count:
        raise ValueError(
            f"{function}: {grad_name} has {grad_shape[1]} channels (shape {grad_shape}) but "
            f"{filter_name} has {filter_count} filters (shape {filter_shape}); a conv's output "
            "has one channel per filter"
        )
    if channels % groups:
        raise ValueError(
            f"{function}: {input_name} has {channels} channels (shape {input_shape}), which "
            f"num_groups={groups} does not divide; choose num_groups that divides the channel "
            "count"
        )
    if filter_count % groups:
        raise ValueError(
            f"{function}: {filter_name} has {filter_count} filters (shape {filter_shape}), "
            f"which num_groups={groups} does not divide; the filter count must be a multiple "
            "of num_groups"
        )
    if filter_channels * groups != channels:
        raise ValueError(
            f"{function}: {input_name} has {channels} channels (shape {input_shape}) but "
            f"{filter_name} expect {filter_channels * groups} ({filter_name} shape "
            f"{filter_shape}, num_groups={groups}); with num_groups=g, the filters' second "
            "length must equal channels / g"
        )
    kernel = tuple(filter_shape[2:])
    if 0 in kernel:
        raise ValueError(
            f"{function}: {filter_name} must have a non-empty kernel, got shape {filter_shape}"
        )
    stride = per_axis(subsample, spatial_dims, function, names.stride)
    dilation = per_axis(filter_dilation, spatial_dims, function, "filter_dilation")
    for axis, (k, dil) in enumerate(zip(kernel, dilation)):
        if dilated_extent(k, dil) > MAX_LENGTH:
            raise ValueError(
                f"{function}: the dilated kernel extent along spatial axis {axis} is over "
                "2**60; use a smaller filter_dilation"
            )
    spatial = tuple(input_shape[2:])
    padding = padding_from_border_mode(border_mode, spatial, kernel, stride, dilation, function)
    expected = tuple(
        conv_output_length(size, k, pad, step, dil)
        for size, k, pad, step, dil in zip(spatial, kernel, padding, stride, dilation)
    )
    if 0 in expected:
        raise ValueError(
            f"{function}: no forward conv has {input_name} of shape {input_shape} and "
            f"{filter_name} of shape {filter_shape}: its output would be empty (padding "
            f"{padding}, dilation {dilation}); check {input_name}, border_mode and "
            "filter_dilation"
        )
    if expected != tuple(grad_shape[2:]):
        raise ValueError(
            f"{function}: {grad_name} has shape {grad_shape}, but a conv of an input of shape "
            f"{input_shape} ({input_name}) with filters of shape {filter_shape} ({filter_name}) "
            f"(border_mode={border_mode!r}, {names.stride}={stride}, "
            f"filter_dilation={dilation}) gives spatial shape {expected}; {input_name} must "
            f"be a shape that the forward conv maps to {grad_name}'s"
        )
    return padding, stride, dilation, groups


def _pad_widths(padding) -> list[tuple[int, int]]:
    return [(0, 0), (0, 0), *padding]


def prepare_conv_grad_input(
    output_grad: object,
    filters: object,
    input_shape: object,
    border_mode: object = "valid",
    subsample: object = 1,
    filter_flip: object = True,
    filter_dilation: object = 1,
    num_groups: object = 1,
    boundary: object = "fill",
    *,
    function: str = "conv_grad_input",
) -> tuple[ConvGradInputProblem | np.ndarray, Folding]:
    """Check the arguments of ``conv_grad_input`` (or ``conv_transpose``) and build the problem.

    Returns
    -------
    (ConvGradInputProblem or numpy.ndarray, Folding)
        The problem (or the finished all-zero or empty result, when the
        batch, channel or filter count is 0), and what the core does to the
        backend's result: with a boundary rule, the problem is the gradient
        with respect to the padded input, which the core folds back onto the
        samples the padding copied.
    """
    if function == "conv_transpose":
        names = _Names(
            function, "input", "output_shape", "filters", "output_shape", "input_dilation"
        )
    else:
        names = _Names(
            function, "output_grad", "input_shape", "filters", "input_shape", "subsample"
        )
    grad = _host_operand(output_grad, function, names.output_grad)
    kernels = _host_operand(filters, function, names.filters)
    dtype = compute_dtype(function, grad, kernels)
    pad_mode = _check_boundary(boundary, 0, dtype, function)
    if grad.ndim < 3:
        raise ValueError(
            f"{function}: {names.output_grad} must be (N, F, *spatial) with at least one "
            f"spatial axis, got shape {grad.shape}"
        )
    if kernels.ndim != grad.ndim:
        raise ValueError(
            f"{function}: {names.filters} must have {grad.ndim} dimensions like "
            f"{names.output_grad} (shape {grad.shape}), got shape {kernels.shape}"
        )
    shape = _shape_argument(input_shape, grad.ndim, function, names.shape)
    padding, stride, dilation, groups = _forward_geometry(
        names,
        shape,
        kernels.shape,
        grad.shape,
        border_mode,
        subsample,
        filter_dilation,
        num_groups,
        filter_flip,
        (names.shape, names.filters, names.output_grad),
    )
    if 0 in shape[:2] or kernels.shape[0] == 0 or 0 in shape[2:]:
        _check_budget(function, (), dtype, shape)
        return np.zeros(shape, dtype=dtype), Folding()
    spatial_dims = grad.ndim - 2
    if filter_flip:
        kernels = kernels[(slice(None), slice(None)) + (slice(None, None, -1),) * spatial_dims]
    folding = Folding()
    output_shape = shape
    if pad_mode is not None and any(before or after for before, after in padding):
        widths = _pad_widths(padding)
        output_shape = tuple(size + a + b for size, (a, b) in zip(shape, widths))
        folding = Folding(widths=widths, pad_mode=pad_mode)
        padding = ((0, 0),) * spatial_dims
    _check_budget(function, (grad, kernels), dtype, output_shape)
    problem = ConvGradInputProblem(
        output_grad=_readonly_contiguous(grad, dtype),
        filters=_readonly_contiguous(kernels, dtype),
        padding=padding,
        stride=stride,
        dilation=dilation,
        groups=groups,
        output_shape=output_shape,
        dtype=dtype,
        filter_flip=bool(filter_flip),
    )
    return problem, folding


def prepare_conv_grad_filters(
    input: object,
    output_grad: object,
    filter_shape: object,
    border_mode: object = "valid",
    subsample: object = 1,
    filter_flip: object = True,
    filter_dilation: object = 1,
    num_groups: object = 1,
    boundary: object = "fill",
) -> tuple[ConvGradFiltersProblem | np.ndarray, Folding]:
    """Check the arguments of ``conv_grad_filters`` and build the problem.

    Returns
    -------
    (ConvGradFiltersProblem or numpy.ndarray, Folding)
        The problem (or the finished all-zero result when the batch, channel
        or filter count is 0), and whether the core flips the result.  A
        boundary rule other than zero fill gives the problem on the input
        extended by the rule, with zero padding.
    """
    function = "conv_grad_filters"
    names = _Names(function, "output_grad", "input", "filter_shape", "filter_shape", "subsample")
    data = _host_operand(input, function, "input")
    grad = _host_operand(output_grad, function, "output_grad")
    dtype = compute_dtype(function, data, grad)
    pad_mode = _check_boundary(boundary, 0, dtype, function)
    if data.ndim < 3:
        raise ValueError(
            f"{function}: input must be (N, C, *spatial) with at least one spatial axis, got "
            f"shape {data.shape}"
        )
    if grad.ndim != data.ndim:
        raise ValueError(
            f"{function}: output_grad must have {data.ndim} dimensions like input (shape "
            f"{data.shape}), got shape {grad.shape}"
        )
    shape = _shape_argument(filter_shape, data.ndim, function, "filter_shape")
    padding, stride, dilation, groups = _forward_geometry(
        names,
        data.shape,
        shape,
        grad.shape,
        border_mode,
        subsample,
        filter_dilation,
        num_groups,
        filter_flip,
        ("input", "filter_shape", "output_grad"),
    )
    folding = Folding(flip=bool(filter_flip))
    if 0 in data.shape or shape[0] == 0:
        _check_budget(function, (), dtype, shape)
        return np.zeros(shape, dtype=dtype), folding
    spatial_dims = data.ndim - 2
    if pad_mode is not None and any(before or after for before, after in padding):
        widths = _pad_widths(padding)
        padded_shape = tuple(size + a + b for size, (a, b) in zip(data.shape, widths))
        _check_budget(function, (data, grad), dtype, shape, padded_shape)
        data = _padded_signal(data, widths, pad_mode, 0, dtype)
        padding = ((0, 0),) * spatial_dims
    _check_budget(function, (data, grad), dtype, shape)
    problem = ConvGradFiltersProblem(
        input=_readonly_contiguous(data, dtype),
        output_grad=_readonly_contiguous(grad, dtype),
        padding=padding,
        stride=stride,
        dilation=dilation,
        groups=groups,
        output_shape=shape,
        dtype=dtype,
        filter_flip=bool(filter_flip),
    )
    return problem, folding


def normalize_conv_grad_input(
    output_grad: object,
    filters: object,
    input_shape: object,
    border_mode: object = "valid",
    subsample: object = 1,
    filter_flip: object = True,
    filter_dilation: object = 1,
    num_groups: object = 1,
    boundary: object = "fill",
) -> ConvGradInputProblem | np.ndarray:
    """Check the arguments of ``conv_grad_input`` and build the problem a backend receives.

    Parameters
    ----------
    output_grad, filters, input_shape, border_mode, subsample, filter_flip, filter_dilation, num_groups, boundary
        As for :func:`convkit.conv_grad_input`.  With a boundary other than
        zero fill, the problem is the gradient with respect to the input
        extended by the rule (``output_shape`` the extended shape, zero
        ``padding``); the core folds it back onto the samples afterwards.

    Returns
    -------
    ConvGradInputProblem or numpy.ndarray
        The problem, or the finished all-zero (or empty) result when the
        batch, channel or filter count or an input length is 0.

    Raises
    ------
    TypeError, ValueError
        The errors :func:`convkit.conv_grad_input` raises for these arguments.

    Examples
    --------
    >>> import numpy as np
    >>> from convkit.plugin import normalize_conv_grad_input
    >>> problem = normalize_conv_grad_input(np.ones((1, 4, 4, 4)), np.ones((4, 2, 3, 3)),
    ...                                     (1, 2, 8, 8), border_mode="half", subsample=2)
    >>> problem.operation, problem.padding, problem.output_shape
    ('conv_grad_input', ((1, 1), (1, 1)), (1, 2, 8, 8))
    """
    return prepare_conv_grad_input(
        output_grad,
        filters,
        input_shape,
        border_mode,
        subsample,
        filter_flip,
        filter_dilation,
        num_groups,
        boundary,
    )[0]


def normalize_conv_grad_filters(
    input: object,
    output_grad: object,
    filter_shape: object,
    border_mode: object = "valid",
    subsample: object = 1,
    filter_flip: object = True,
    filter_dilation: object = 1,
    num_groups: object = 1,
    boundary: object = "fill",
) -> ConvGradFiltersProblem | np.ndarray:
    """Check the arguments of ``conv_grad_filters`` and build the problem a backend receives.

    Parameters
    ----------
    input, output_grad, filter_shape, border_mode, subsample, filter_flip, filter_dilation, num_groups, boundary
        As for :func:`convkit.conv_grad_filters`.  With a boundary other
        than zero fill, ``input`` is extended by the rule and ``padding`` is
        zero.

    Returns
    -------
    ConvGradFiltersProblem or numpy.ndarray
        The problem (its result is the gradient with respect to the filters
        as the forward problem holds them: the core flips it back when
        ``filter_flip``), or the finished all-zero result when the batch,
        channel or filter count or an input length is 0.

    Raises
    ------
    TypeError, ValueError
        The errors :func:`convkit.conv_grad_filters` raises for these arguments.

    Examples
    --------
    >>> import numpy as np
    >>> from convkit.plugin import normalize_conv_grad_filters
    >>> problem = normalize_conv_grad_filters(np.ones((2, 3, 8)), np.ones((2, 4, 6)), (4, 3, 3))
    >>> problem.operation, problem.output_shape
    ('conv_grad_filters', (4, 3, 3))
    """
    return prepare_conv_grad_filters(
        input,
        output_grad,
        filter_shape,
        border_mode,
        subsample,
        filter_flip,
        filter_dilation,
        num_groups,
        boundary,
    )[0]
