"""The gradients of :func:`convkit.conv`, and the transposed convolution, on every backend."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from convkit._adjoint import finish
from convkit._api import BackendChoice, BorderMode, Boundary, IntOrTuple, _run
from convkit._gradient_problems import prepare_conv_grad_filters, prepare_conv_grad_input

__all__ = ["conv_grad_filters", "conv_grad_input", "conv_transpose"]

Shape = Sequence[int] | np.ndarray


def conv_grad_input(
    output_grad: ArrayLike,
    filters: ArrayLike,
    input_shape: Shape,
    border_mode: BorderMode = "valid",
    subsample: IntOrTuple = 1,
    filter_flip: bool = True,
    filter_dilation: IntOrTuple = 1,
    num_groups: int = 1,
    *,
    boundary: Boundary = "fill",
    backend: BackendChoice = None,
) -> np.ndarray:
    """The gradient of :func:`conv` with respect to its input, as Theano's ``conv2d_grad_wrt_inputs``.

    For ``y = conv(x, filters, border_mode, subsample, filter_flip,
    filter_dilation, num_groups, boundary=boundary)`` with ``x`` of shape
    ``input_shape``, this is ``dL/dx`` given ``output_grad = dL/dy``: the
    adjoint of the forward map ``x -> y``, so that
    ``sum(conv(x, filters) * g) == sum(x * conv_grad_input(g, filters, x.shape))``.

    Parameters
    ----------
    output_grad : array_like
        ``(N, F, *out)``: the gradient with respect to the forward's output.
    filters : array_like
        ``(F, C // num_groups, *kernel)``: the forward's filters.
    input_shape : tuple of int
        ``(N, C, *spatial)``: the forward input's full shape (a tuple, list
        or 1-d integer array; every entry given).  It is needed: with a
        stride, several input lengths give the same output length, and the
        input samples that no output reads get a zero gradient.
    border_mode, subsample, filter_flip, filter_dilation, num_groups
        The forward's, as for :func:`conv`.
    boundary : {"fill", "wrap", "symm", "symmetric", "mirror", "nearest"}
        The forward's boundary rule.  With a rule other than ``"fill"``, the
        gradient of each padded sample is added to the sample it copied.
        There is no ``fillvalue``: the input gradient does not depend on it.
    backend : str, Backend or None
        As for :func:`convolve_nd`.  A backend that implements
        ``conv_grad_input`` runs the problem natively; any other runs it as
        forward convs (see Notes).

    Returns
    -------
    numpy.ndarray
        Of shape ``input_shape``; dtype by the rule of :func:`convolve_nd`
        applied to ``output_grad`` and ``filters``.

    Raises
    ------
    TypeError
        Non-numeric arrays, device (GPU) arrays, arguments of the wrong type
        (``input_shape`` with None entries included).
    ValueError
        Wrong numbers of dimensions, channel, filter or batch counts that do
        not match, or an ``input_shape`` that no forward conv maps to
        ``output_grad``'s shape.
    convkit.BackendError
        The named backend is unknown, unavailable or cannot do this problem.

    Notes
    -----
    A backend without a native kernel runs the gradient as forward convs of
    ``output_grad``: one per phase of the stride (``prod(subsample)`` of
    them, each with the kernel taps that reach it, flipped, and the filters'
    channel axes swapped), never on a zero-dilated copy, so an output sums
    exactly the terms of the direct definition and NaN and inf stay as local
    as in :func:`conv`.  For complex inputs the result is the derivative of
    the bilinear forward map, without conjugation (as PyTorch defines the
    gradient for real inputs); conjugate ``output_grad`` and the result for
    the Hermitian adjoint.

    Examples
    --------
    >>> import numpy as np, convkit
    >>> w = np.array([[[1.0, 2.0]]])
    >>> convkit.conv_grad_input(np.ones((1, 1, 3)), w, (1, 1, 4))
    array([[[2., 3., 3., 1.]]])

    With a stride, the input shape says how many samples the forward had:

    >>> convkit.conv_grad_input(np.ones((1, 1, 2)), w, (1, 1, 5), subsample=2)
    array([[[2., 1., 2., 1., 0.]]])
    """
    problem, folding = prepare_conv_grad_input(
        output_grad,
        filters,
        input_shape,
        border_mode,
        subsample,
        filter_flip,
        filter_dilation,
        num_groups,
        boundary,
    )
    if isinstance(problem, np.ndarray):
        return problem
    return finish(_run(problem, backend), folding, problem.spatial_dims)


def conv_grad_filters(
    input: ArrayLike,
    output_grad: ArrayLike,
    filter_shape: Shape,
    border_mode: BorderMode = "valid",
    subsample: IntOrTuple = 1,
    filter_flip: bool = True,
    filter_dilation: IntOrTuple = 1,
    num_groups: int = 1,
    *,
    boundary: Boundary = "fill",
    backend: BackendChoice = None,
) -> np.ndarray:
    """The gradient of :func:`conv` with respect to its filters, as Theano's ``conv2d_grad_wrt_weights``.

    For ``y = conv(input, w, border_mode, subsample, filter_flip,
    filter_dilation, num_groups, boundary=boundary)`` with ``w`` of shape
    ``filter_shape``, this is ``dL/dw`` given ``output_grad = dL/dy``, so that
    ``sum(conv(x, w) * g) == sum(w * conv_grad_filters(x, g, w.shape))``.

    Parameters
    ----------
    input : array_like
        ``(N, C, *spatial)``: the forward's input.
    output_grad : array_like
        ``(N, F, *out)``: the gradient with respect to the forward's output.
    filter_shape : tuple of int
        ``(F, C // num_groups, *kernel)``: the filters' full shape (a tuple,
        list or 1-d integer array; every entry given).
    border_mode, subsample, filter_flip, filter_dilation, num_groups
        The forward's, as for :func:`conv`.
    boundary : {"fill", "wrap", "symm", "symmetric", "mirror", "nearest"}
        The forward's boundary rule: the gradient is taken on the input
        extended by it.  ``"fill"`` is zero padding; there is no
        ``fillvalue`` argument (for a conv padded with another constant,
        pad the input yourself, e.g. with ``numpy.pad``, and pass
        ``border_mode="valid"``).
    backend : str, Backend or None
        As for :func:`convolve_nd`.  A backend that implements
        ``conv_grad_filters`` runs the problem natively; any other runs it
        as one forward conv (see Notes).

    Returns
    -------
    numpy.ndarray
        Of shape ``filter_shape``; dtype by the rule of :func:`convolve_nd`
        applied to ``input`` and ``output_grad``.

    Raises
    ------
    TypeError
        Non-numeric arrays, device (GPU) arrays, arguments of the wrong type.
    ValueError
        Wrong numbers of dimensions, counts that do not match, or a
        ``filter_shape`` with which no forward conv maps ``input`` to
        ``output_grad``'s shape.
    convkit.BackendError
        The named backend is unknown, unavailable or cannot do this problem.

    Notes
    -----
    A backend without a native kernel runs it as one forward conv: the
    input's channels as its batch, the batch as its channels (per group),
    ``output_grad`` as its filters, with the forward's dilation as stride and
    its stride as dilation.  Complex inputs: no conjugation, as for
    :func:`conv_grad_input`.

    Examples
    --------
    >>> import numpy as np, convkit
    >>> x = np.array([[[1.0, 2.0, 3.0, 4.0]]])
    >>> convkit.conv_grad_filters(x, np.ones((1, 1, 3)), (1, 1, 2), filter_flip=False)
    array([[[6., 9.]]])
    >>> convkit.conv_grad_filters(x, np.ones((1, 1, 3)), (1, 1, 2))
    array([[[9., 6.]]])
    """
    problem, folding = prepare_conv_grad_filters(
        input,
        output_grad,
        filter_shape,
        border_mode,
        subsample,
        filter_flip,
        filter_dilation,
        num_groups,
        boundary,
    )
    if isinstance(problem, np.ndarray):
        return problem
    return finish(_run(problem, backend), folding, problem.spatial_dims)


def conv_transpose(
    input: ArrayLike,
    filters: ArrayLike,
    output_shape: Shape,
    border_mode: BorderMode = "valid",
    input_dilation: IntOrTuple = 1,
    filter_flip: bool = True,
    filter_dilation: IntOrTuple = 1,
    num_groups: int = 1,
    *,
    boundary: Boundary = "fill",
    backend: BackendChoice = None,
) -> np.ndarray:
    """Transposed convolution ("deconvolution"), as Theano's ``conv2d_transpose``.

    ``conv_transpose(input, filters, output_shape, border_mode,
    input_dilation, ...)`` is ``conv_grad_input(input, filters, output_shape,
    border_mode, subsample=input_dilation, ...)``: the layer that maps a
    conv's output shape back to its input shape, upsampling by
    ``input_dilation``.

    Parameters
    ----------
    input : array_like
        ``(N, C_in, *spatial)``.
    filters : array_like
        ``(C_in, C_out // num_groups, *kernel)``, as in Theano (PyTorch's
        ``conv_transpose`` weights have this layout too).
    output_shape : tuple of int
        ``(N, C_out, *out)``: the full shape of the result (a tuple, list or
        1-d integer array).  With ``input_dilation > 1`` several shapes are
        possible, so it must be given.
    border_mode : str, int or tuple
        The border mode of the conv this transposes (see :func:`conv`):
        padding of the conv removes outputs here.
    input_dilation : int or tuple of int
        The upsampling factor: the stride of the conv this transposes.
    filter_flip, filter_dilation, num_groups
        As for :func:`conv`.  ``filter_flip=False`` matches PyTorch's
        ``conv_transpose*d``.
    boundary : {"fill", "wrap", "symm", "symmetric", "mirror", "nearest"}
        As for :func:`conv_grad_input`.
    backend : str, Backend or None
        As for :func:`convolve_nd`.

    Returns
    -------
    numpy.ndarray
        Of shape ``output_shape``; dtype by the rule of :func:`convolve_nd`.

    Raises
    ------
    TypeError, ValueError, convkit.BackendError
        As :func:`conv_grad_input`, naming this function's arguments.

    Examples
    --------
    >>> import numpy as np, convkit
    >>> convkit.conv_transpose(np.array([[[1.0, 2.0]]]), np.ones((1, 1, 2)), (1, 1, 4),
    ...                        input_dilation=2)
    array([[[1., 1., 2., 2.]]])
    """
    problem, folding = prepare_conv_grad_input(
        input,
        filters,
        output_shape,
        border_mode,
        input_dilation,
        filter_flip,
        filter_dilation,
        num_groups,
        boundary,
        function="conv_transpose",
    )
    if isinstance(problem, np.ndarray):
        return problem
    return finish(_run(problem, backend), folding, problem.spatial_dims)
