"""PyTensor Ops for convkit's CNN-layer convolution and its two gradients.

``import convkit.pytensor`` (it needs PyTensor: ``pip install "convkit-core[pytensor]"``)
gives Theano's ``conv2d`` family back to PyTensor 3, which dropped it: :func:`conv2d`
builds a symbolic convolution with the semantics of :func:`convkit.conv2d`, and
``pytensor.grad`` differentiates it with respect to the input and the filters through
two further Ops, :class:`ConvGradInput` and :class:`ConvGradFilters`, which are
differentiable themselves (second derivatives work).  Every Op computes in Python
(``perform``) on the convkit backend chosen as for any other convkit call, so it runs
with every PyTensor linker, the C compiler installed or not.

``import convkit`` does not import this module or PyTensor.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

import convkit
from convkit._geometry import padding_from_border_mode, per_axis
from convkit._validation import _check_boundary
from convkit.plugin import conv_output_shape

__all__ = [
    "Conv",
    "ConvGradFilters",
    "ConvGradInput",
    "conv",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_grad_filters",
    "conv_grad_input",
]

_FLOAT_DTYPES = ("float16", "float32", "float64")


def _result_dtype(function: str, *variables: pt.TensorVariable) -> str:
    """convkit's dtype rule on real floating operands: float16 computes in float32."""
    for variable, argument in zip(variables, ("first operand", "second operand")):
        if variable.dtype not in _FLOAT_DTYPES:
            raise TypeError(
                f"{function}: the {argument} has dtype {variable.dtype}, expected float16, "
                f"float32 or float64 (gradients need real floating values); cast it with "
                f"pytensor.tensor.cast(x, 'float64')"
            )
    dtype = np.result_type(*(variable.dtype for variable in variables))
    return "float32" if dtype == np.float16 else str(dtype)


def _hashable_border_mode(border_mode: object, spatial_dims: int, function: str) -> object:
    """A name, or explicit (before, after) pairs: the border mode as an Op property."""
    ones = (1,) * spatial_dims
    # Checked on any shape; numeric padding does not depend on the shapes, so it is resolved.
    padding = padding_from_border_mode(border_mode, ones, ones, ones, ones, function)
    return border_mode if isinstance(border_mode, str) else padding


class _ConvParameters(Op):
    """What the three Ops share: the convolution's parameters, checked once."""

    __props__ = (
        "spatial_dims",
        "border_mode",
        "subsample",
        "filter_flip",
        "filter_dilation",
        "num_groups",
        "boundary",
        "backend",
    )

    def __init__(
        self,
        spatial_dims: int,
        border_mode: object = "valid",
        subsample: int | Sequence[int] = 1,
        filter_flip: bool = True,
        filter_dilation: int | Sequence[int] = 1,
        num_groups: int = 1,
        boundary: str = "fill",
        backend: object = None,
    ):
        function = f"convkit.pytensor.{type(self).__name__}"
        if type(spatial_dims) is not int or not 1 <= spatial_dims <= 3:
            raise ValueError(f"{function}: spatial_dims must be 1, 2 or 3, got {spatial_dims!r}")
        if not isinstance(filter_flip, (bool, np.bool_)):
            raise TypeError(f"{function}: filter_flip must be True or False, got {filter_flip!r}")
        if isinstance(num_groups, (bool, np.bool_)) or not isinstance(
            num_groups, (int, np.integer)
        ):
            raise TypeError(f"{function}: num_groups must be a positive int, got {num_groups!r}")
        if num_groups < 1:
            raise ValueError(f"{function}: num_groups must be >= 1, got {num_groups}")
        _check_boundary(boundary, 0, np.dtype(np.float64), function)
        if backend is not None and not isinstance(backend, str):
            raise TypeError(
                f"{function}: backend must be a backend's name or None (the Op is hashed with "
                f"its parameters), got {backend!r}; register a backend object with "
                "convkit.register_backend and pass its name"
            )
        self.spatial_dims = spatial_dims
        self.border_mode = _hashable_border_mode(border_mode, spatial_dims, function)
        self.subsample = per_axis(subsample, spatial_dims, function, "subsample")
        self.filter_flip = bool(filter_flip)
        self.filter_dilation = per_axis(filter_dilation, spatial_dims, function, "filter_dilation")
        self.num_groups = int(num_groups)
        self.boundary = boundary
        self.backend = backend

    @staticmethod
    def parameters(
        border_mode, subsample, filter_flip, filter_dilation, num_groups, boundary, backend
    ) -> dict:
        """The keyword arguments of the constructor, but ``spatial_dims``, from positions."""
        return dict(
            border_mode=border_mode,
            subsample=subsample,
            filter_flip=filter_flip,
            filter_dilation=filter_dilation,
            num_groups=num_groups,
            boundary=boundary,
            backend=backend,
        )

    def _keywords(self) -> dict:
        return dict(
            border_mode=self.border_mode,
            subsample=self.subsample,
            filter_flip=self.filter_flip,
            filter_dilation=self.filter_dilation,
            num_groups=self.num_groups,
            boundary=self.boundary,
            backend=self.backend,
        )

    def _parameters(self) -> dict:
        return dict(spatial_dims=self.spatial_dims, **self._keywords())

    def _tensor(self, value: object, rank: int, argument: str) -> pt.TensorVariable:
        variable = pt.as_tensor_variable(value)
        if variable.ndim != rank:
            raise ValueError(
                f"convkit.pytensor.{type(self).__name__}: {argument} must have {rank} "
                f"dimensions for {self.spatial_dims} spatial axes, got {variable.ndim}"
            )
        return variable

    def _shape_vector(self, shape: object, argument: str) -> pt.TensorVariable:
        vector = pt.as_tensor_variable(shape)
        if vector.ndim != 1 or np.dtype(vector.dtype).kind not in "iu":
            raise TypeError(
                f"convkit.pytensor.{type(self).__name__}: {argument} must be a vector of "
                f"{self.spatial_dims + 2} ints, got {shape!r}"
            )
        return vector

    def _static_shape(self, shape_vector: pt.TensorVariable) -> tuple[int | None, ...]:
        rank = self.spatial_dims + 2
        if isinstance(shape_vector, pt.TensorConstant):
            return tuple(int(length) for length in shape_vector.data)
        return (None,) * rank

    def _output_length(self, size, kernel, axis: int):
        """The output length along spatial ``axis``, for ints or symbolic scalars alike."""
        stride, dilation = self.subsample[axis], self.filter_dilation[axis]
        extent = dilation * (kernel - 1) + 1
        if self.border_mode == "same":
            return (size + stride - 1) // stride
        if self.border_mode == "valid":
            padding = 0
        elif self.border_mode == "full":
            padding = 2 * (extent - 1)
        elif self.border_mode == "half":
            padding = 2 * (extent // 2)
        else:
            padding = sum(self.border_mode[axis])
        return (size + padding - extent) // stride + 1


class Conv(_ConvParameters):
    """The convolution ``conv(input, filters)`` of :func:`convkit.conv` as a PyTensor Op.

    Parameters
    ----------
    spatial_dims : {1, 2, 3}
        The number of spatial axes.
    border_mode, subsample, filter_flip, filter_dilation, num_groups, boundary
        As for :func:`convkit.conv`.
    backend : str or None
        A backend's name, or None for convkit's usual choice at run time.

    Examples
    --------
    >>> import numpy as np, pytensor, pytensor.tensor as pt
    >>> from convkit.pytensor import Conv
    >>> x, w = pt.tensor4("x"), pt.tensor4("w")
    >>> f = pytensor.function([x, w], Conv(2, border_mode="half")(x, w), mode="FAST_COMPILE")
    >>> f(np.ones((1, 1, 3, 3)), np.ones((1, 1, 3, 3)))[0, 0]
    array([[4., 6., 4.],
           [6., 9., 6.],
           [4., 6., 4.]])
    """

    def make_node(self, input, filters) -> Apply:
        rank = self.spatial_dims + 2
        input = self._tensor(input, rank, "input")
        filters = self._tensor(filters, rank, "filters")
        dtype = _result_dtype(f"convkit.pytensor.{type(self).__name__}", input, filters)
        in_shape, kernel_shape = input.type.shape, filters.type.shape
        if None not in in_shape[2:] and None not in kernel_shape[2:]:
            spatial = conv_output_shape(
                in_shape[2:],
                kernel_shape[2:],
                self.border_mode,
                self.subsample,
                self.filter_dilation,
            )
        else:
            spatial = (None,) * self.spatial_dims
        output = pt.tensor(dtype=dtype, shape=(in_shape[0], kernel_shape[0], *spatial))
        return Apply(self, [input, filters], [output])

    def perform(self, node, inputs, output_storage):
        input, filters = inputs
        result = convkit.conv(input, filters, **self._keywords())
        output_storage[0][0] = np.asarray(result, dtype=node.outputs[0].dtype)

    def infer_shape(self, fgraph, node, input_shapes):
        in_shape, kernel_shape = input_shapes
        spatial = [
            self._output_length(in_shape[2 + axis], kernel_shape[2 + axis], axis)
            for axis in range(self.spatial_dims)
        ]
        return [(in_shape[0], kernel_shape[0], *spatial)]

    def pullback(self, inputs, outputs, cotangents):
        input, filters = inputs
        (output_grad,) = cotangents
        parameters = self._parameters()
        input_grad = ConvGradInput(**parameters)(filters, output_grad, input.shape)
        filters_grad = ConvGradFilters(**parameters)(input, output_grad, filters.shape)
        return [_like(input_grad, input), _like(filters_grad, filters)]

    def L_op(self, inputs, outputs, output_grads):
        # PyTensor 2 asks L_op for the gradient; PyTensor 3 asks pullback.
        return self.pullback(inputs, outputs, output_grads)


class _Gradient(_ConvParameters):
    """What the two gradient Ops share: applied to ``(operand, output_grad, shape)``, where
    ``shape`` is the full shape of the result; subclasses name the operand and compute."""

    #: The name of the first input, in messages.
    operand = ""
    #: The name of the shape input, in messages.
    shape_name = ""

    def compute(self, operand, output_grad, shape: tuple[int, ...]) -> np.ndarray:
        raise NotImplementedError

    def make_node(self, operand, output_grad, shape) -> Apply:
        rank = self.spatial_dims + 2
        operand = self._tensor(operand, rank, self.operand)
        output_grad = self._tensor(output_grad, rank, "output_grad")
        shape = self._shape_vector(shape, self.shape_name)
        dtype = _result_dtype(f"convkit.pytensor.{type(self).__name__}", operand, output_grad)
        output = pt.tensor(dtype=dtype, shape=self._static_shape(shape))
        return Apply(self, [operand, output_grad, shape], [output])

    def perform(self, node, inputs, output_storage):
        operand, output_grad, shape = inputs
        result = self.compute(operand, output_grad, tuple(int(length) for length in shape))
        output_storage[0][0] = np.asarray(result, dtype=node.outputs[0].dtype)

    def infer_shape(self, fgraph, node, input_shapes):
        shape = node.inputs[2]
        return [tuple(shape[axis] for axis in range(self.spatial_dims + 2))]

    def connection_pattern(self, node):
        return [[True], [True], [False]]

    def L_op(self, inputs, outputs, output_grads):
        return self.pullback(inputs, outputs, output_grads)


class ConvGradInput(_Gradient):
    """The gradient of :class:`Conv` with respect to its input, as a PyTensor Op.

    Applied to ``(filters, output_grad, input_shape)`` (Theano's order), it
    computes :func:`convkit.conv_grad_input`; ``input_shape`` is the full shape
    of the forward input, ``(N, C, *spatial)``, which the output gradient alone
    does not fix when the stride is above 1.  Parameters as for :class:`Conv`.

    Examples
    --------
    >>> import numpy as np, pytensor, pytensor.tensor as pt
    >>> from convkit.pytensor import ConvGradInput
    >>> w, g = pt.tensor3("w"), pt.tensor3("g")
    >>> grad = ConvGradInput(1)(w, g, (1, 1, 4))
    >>> grad.eval({w: np.array([[[1.0, 2.0]]]), g: np.ones((1, 1, 3))}, mode="FAST_COMPILE")
    array([[[2., 3., 3., 1.]]])
    """

    operand, shape_name = "filters", "input_shape"

    def compute(self, filters, output_grad, input_shape):
        return convkit.conv_grad_input(output_grad, filters, input_shape, **self._keywords())

    def pullback(self, inputs, outputs, cotangents):
        # The operation is bilinear in (filters, output_grad):
        # <c, grad_input(g, w)> = <conv(c, w), g> = <w, grad_filters(c, g)>.
        filters, output_grad, input_shape = inputs
        (cotangent,) = cotangents
        parameters = self._parameters()
        filters_grad = ConvGradFilters(**parameters)(cotangent, output_grad, filters.shape)
        output_grad_grad = Conv(**parameters)(cotangent, filters)
        return [
            _like(filters_grad, filters),
            _like(output_grad_grad, output_grad),
            DisconnectedType()(),
        ]


class ConvGradFilters(_Gradient):
    """The gradient of :class:`Conv` with respect to its filters, as a PyTensor Op.

    Applied to ``(input, output_grad, filter_shape)`` (Theano's order), it
    computes :func:`convkit.conv_grad_filters`; ``filter_shape`` is the full
    shape of the filters, ``(F, C // num_groups, *kernel)``.  Parameters as
    for :class:`Conv`.

    Examples
    --------
    >>> import numpy as np, pytensor, pytensor.tensor as pt
    >>> from convkit.pytensor import ConvGradFilters
    >>> x, g = pt.tensor3("x"), pt.tensor3("g")
    >>> grad = ConvGradFilters(1, filter_flip=False)(x, g, (1, 1, 2))
    >>> grad.eval({x: np.array([[[1.0, 2.0, 3.0]]]), g: np.ones((1, 1, 2))}, mode="FAST_COMPILE")
    array([[[3., 5.]]])
    """

    operand, shape_name = "input", "filter_shape"

    def compute(self, input, output_grad, filter_shape):
        return convkit.conv_grad_filters(input, output_grad, filter_shape, **self._keywords())

    def pullback(self, inputs, outputs, cotangents):
        # Bilinear in (input, output_grad):
        # <c, grad_filters(x, g)> = <conv(x, c), g> = <x, grad_input(g, c)>.
        input, output_grad, filter_shape = inputs
        (cotangent,) = cotangents
        parameters = self._parameters()
        input_grad = ConvGradInput(**parameters)(cotangent, output_grad, input.shape)
        output_grad_grad = Conv(**parameters)(input, cotangent)
        return [
            _like(input_grad, input),
            _like(output_grad_grad, output_grad),
            DisconnectedType()(),
        ]


def _like(gradient: pt.TensorVariable, variable: pt.TensorVariable) -> pt.TensorVariable:
    """``gradient`` with the dtype and the static shape of the variable it is the gradient of."""
    if gradient.dtype != variable.dtype:
        gradient = pt.cast(gradient, variable.dtype)
    if any(length is not None for length in variable.type.shape):
        gradient = pt.specify_shape(gradient, variable.type.shape)
    return gradient


def _with_shape(variable: pt.TensorVariable, shape: object, argument: str, function: str):
    if shape is None:
        return variable
    shape = tuple(shape)
    if len(shape) != variable.ndim:
        raise ValueError(
            f"{function}: {argument} must have one entry per dimension of the operand "
            f"({variable.ndim}), got {shape!r}; use None for a length not known in advance"
        )
    return pt.specify_shape(variable, shape)


def conv(
    input,
    filters,
    border_mode: object = "valid",
    subsample: int | Sequence[int] = 1,
    filter_flip: bool = True,
    filter_dilation: int | Sequence[int] = 1,
    num_groups: int = 1,
    *,
    boundary: str = "fill",
    input_shape: Sequence[int | None] | None = None,
    filter_shape: Sequence[int | None] | None = None,
    backend: str | None = None,
) -> pt.TensorVariable:
    """Symbolic CNN-layer convolution, any spatial rank from 1 to 3: :func:`convkit.conv`.

    Parameters
    ----------
    input : TensorVariable or array_like
        ``(N, C, *spatial)``, a real floating dtype.
    filters : TensorVariable or array_like
        ``(F, C // num_groups, *kernel)``, a real floating dtype.
    border_mode, subsample, filter_flip, filter_dilation, num_groups, boundary
        As for :func:`convkit.conv` (zero fill has ``fillvalue`` 0).
    input_shape, filter_shape : tuple of (int or None), optional
        What is known in advance of the operands' shapes, as Theano's
        ``conv2d`` takes them: each becomes the operand's static shape
        (``pytensor.tensor.specify_shape``), checked when the graph runs.
    backend : str or None
        A backend's name; None chooses as any convkit call does, at run time.

    Returns
    -------
    TensorVariable
        ``(N, F, *out)``; float64 for float64 operands, float32 for float32 or
        float16 ones.  ``pytensor.grad`` differentiates it with respect to
        both operands.

    Raises
    ------
    TypeError, ValueError
        Bad parameters or operands, when the graph is built; the errors of
        :func:`convkit.conv` for shapes known only at run time.

    Examples
    --------
    >>> import numpy as np, pytensor, pytensor.tensor as pt
    >>> import convkit.pytensor
    >>> x, w = pt.tensor3("x"), pt.tensor3("w")
    >>> y = convkit.pytensor.conv(x, w, border_mode="full")
    >>> f = pytensor.function([x, w], [y, pytensor.grad(y.sum(), w)], mode="FAST_COMPILE")
    >>> output, filters_grad = f(np.array([[[1.0, 2.0, 3.0]]]), np.array([[[1.0, -1.0]]]))
    >>> output, filters_grad
    (array([[[ 1.,  1.,  1., -3.]]]), array([[[6., 6.]]]))
    """
    return _conv(
        None,
        "conv",
        input,
        filters,
        input_shape,
        filter_shape,
        Conv.parameters(
            border_mode, subsample, filter_flip, filter_dilation, num_groups, boundary, backend
        ),
    )


def _conv(spatial_dims, function, input, filters, input_shape, filter_shape, parameters):
    """Check the operands of ``function`` and apply :class:`Conv` with ``parameters``."""
    function = f"convkit.pytensor.{function}"
    input, filters = pt.as_tensor_variable(input), pt.as_tensor_variable(filters)
    if spatial_dims is None:
        spatial_dims = input.ndim - 2
        if not 1 <= spatial_dims <= 3:
            raise ValueError(
                f"{function}: input must be (N, C, *spatial) with 1 to 3 spatial axes, got "
                f"{input.ndim} dimensions"
            )
    if input.ndim != spatial_dims + 2:
        hint = (
            " (for one image of one channel, x[None, None])" if input.ndim == spatial_dims else ""
        )
        raise ValueError(
            f"{function}: input must have {spatial_dims + 2} dimensions (N, C, "
            f"{', '.join('DHW'[3 - spatial_dims :])}), got {input.ndim}{hint}"
        )
    input = _with_shape(input, input_shape, "input_shape", function)
    filters = _with_shape(filters, filter_shape, "filter_shape", function)
    return Conv(spatial_dims, **parameters)(input, filters)


def _fixed_rank(spatial_dims: int, function: str):
    def convolution(
        input,
        filters,
        border_mode: object = "valid",
        subsample: int | Sequence[int] = 1,
        filter_flip: bool = True,
        filter_dilation: int | Sequence[int] = 1,
        num_groups: int = 1,
        *,
        boundary: str = "fill",
        input_shape: Sequence[int | None] | None = None,
        filter_shape: Sequence[int | None] | None = None,
        backend: str | None = None,
    ) -> pt.TensorVariable:
        parameters = Conv.parameters(
            border_mode, subsample, filter_flip, filter_dilation, num_groups, boundary, backend
        )
        return _conv(spatial_dims, function, input, filters, input_shape, filter_shape, parameters)

    convolution.__name__ = convolution.__qualname__ = function
    return convolution


conv1d = _fixed_rank(1, "conv1d")
conv1d.__doc__ = """:func:`conv` with one spatial axis: input ``(N, C, W)``, filters ``(F, C // g, k)``.

Examples
--------
>>> import pytensor.tensor as pt, convkit.pytensor
>>> convkit.pytensor.conv1d(pt.tensor3(), pt.tensor3(), border_mode="half").type
TensorType(float64, shape=(None, None, None))
"""

conv2d = _fixed_rank(2, "conv2d")
conv2d.__doc__ = """:func:`conv` with two spatial axes, as Theano's ``conv2d``: input ``(N, C, H, W)``.

Theano's keywords ``input_shape`` and ``filter_shape`` are taken (as static
shapes); ``border_mode``, ``subsample``, ``filter_flip``, ``filter_dilation``
and ``num_groups`` mean what they meant there.

Examples
--------
>>> import pytensor.tensor as pt, convkit.pytensor
>>> x = pt.tensor4("x")
>>> w = pt.tensor4("w")
>>> y = convkit.pytensor.conv2d(x, w, input_shape=(8, 3, 32, 32), filter_shape=(16, 3, 3, 3),
...                             border_mode="half", subsample=2)
>>> y.type.shape
(8, 16, 16, 16)
"""

conv3d = _fixed_rank(3, "conv3d")
conv3d.__doc__ = """:func:`conv` with three spatial axes: input ``(N, C, D, H, W)``.

Examples
--------
>>> import pytensor.tensor as pt, convkit.pytensor
>>> convkit.pytensor.conv3d(pt.tensor5(), pt.tensor5(), filter_dilation=2).ndim
5
"""


def conv_grad_input(
    output_grad,
    filters,
    input_shape,
    border_mode: object = "valid",
    subsample: int | Sequence[int] = 1,
    filter_flip: bool = True,
    filter_dilation: int | Sequence[int] = 1,
    num_groups: int = 1,
    *,
    boundary: str = "fill",
    backend: str | None = None,
) -> pt.TensorVariable:
    """Symbolic :func:`convkit.conv_grad_input`, as Theano's ``conv2d_grad_wrt_inputs``.

    Parameters
    ----------
    output_grad : TensorVariable or array_like
        The gradient with respect to the convolution's output, ``(N, F, *out)``.
    filters : TensorVariable or array_like
        ``(F, C // num_groups, *kernel)``.
    input_shape : sequence of int or TensorVariable
        The full shape of the convolution's input, ``(N, C, *spatial)``.
    border_mode, subsample, filter_flip, filter_dilation, num_groups, boundary, backend
        As for :func:`conv`.

    Returns
    -------
    TensorVariable
        The gradient with respect to the input, of shape ``input_shape``.

    Examples
    --------
    >>> import numpy as np, convkit.pytensor
    >>> grad = convkit.pytensor.conv_grad_input(np.ones((1, 1, 2)), np.array([[[1.0, 2.0]]]),
    ...                                         (1, 1, 4), subsample=2)
    >>> grad.eval(mode="FAST_COMPILE")
    array([[[2., 1., 2., 1.]]])
    """
    output_grad = pt.as_tensor_variable(output_grad)
    parameters = Conv.parameters(
        border_mode, subsample, filter_flip, filter_dilation, num_groups, boundary, backend
    )
    return ConvGradInput(output_grad.ndim - 2, **parameters)(filters, output_grad, input_shape)


def conv_grad_filters(
    input,
    output_grad,
    filter_shape,
    border_mode: object = "valid",
    subsample: int | Sequence[int] = 1,
    filter_flip: bool = True,
    filter_dilation: int | Sequence[int] = 1,
    num_groups: int = 1,
    *,
    boundary: str = "fill",
    backend: str | None = None,
) -> pt.TensorVariable:
    """Symbolic :func:`convkit.conv_grad_filters`, as Theano's ``conv2d_grad_wrt_weights``.

    Parameters
    ----------
    input : TensorVariable or array_like
        The convolution's input, ``(N, C, *spatial)``.
    output_grad : TensorVariable or array_like
        The gradient with respect to the convolution's output, ``(N, F, *out)``.
    filter_shape : sequence of int or TensorVariable
        The full shape of the filters, ``(F, C // num_groups, *kernel)``.
    border_mode, subsample, filter_flip, filter_dilation, num_groups, boundary, backend
        As for :func:`conv`.

    Returns
    -------
    TensorVariable
        The gradient with respect to the filters, of shape ``filter_shape``.

    Examples
    --------
    >>> import numpy as np, convkit.pytensor
    >>> grad = convkit.pytensor.conv_grad_filters(np.array([[[1.0, 2.0, 3.0]]]), np.ones((1, 1, 2)),
    ...                                           (1, 1, 2))
    >>> grad.eval(mode="FAST_COMPILE")
    array([[[5., 3.]]])
    """
    input = pt.as_tensor_variable(input)
    parameters = Conv.parameters(
        border_mode, subsample, filter_flip, filter_dilation, num_groups, boundary, backend
    )
    return ConvGradFilters(input.ndim - 2, **parameters)(input, output_grad, filter_shape)
