"""The public operations: validate once, choose a backend, run, check."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypeAlias

import numpy as np
from numpy.typing import ArrayLike

from convkit._backend import Backend, reported_working_set
from convkit._config import get_memory_limit
from convkit._dask import conv_lazily, convolve_lazily
from convkit._device import is_dask_array
from convkit._errors import BackendResultError, WorkingSetTooLargeError
from convkit._missing import check_nan_policy, with_nan_policy
from convkit._problems import Problem
from convkit._range import into_range, range_shifts, restore_range, scaled_copy_bytes
from convkit._selection import select_backend
from convkit._structure import zero_outputs_without_terms
from convkit._validation import normalize_conv, normalize_convolve, readable_bytes

__all__ = ["conv", "conv1d", "conv2d", "conv3d", "convolve_nd", "correlate_nd"]

Mode: TypeAlias = Literal["full", "valid", "same"]
BorderMode: TypeAlias = (
    Literal["valid", "full", "half", "same"] | int | Sequence[int | tuple[int, int]]
)
IntOrTuple: TypeAlias = int | Sequence[int]
Boundary: TypeAlias = Literal["fill", "wrap", "symm", "symmetric", "mirror", "nearest"]
NanPolicy: TypeAlias = Literal["propagate", "interpolate", "fill"]
BackendChoice: TypeAlias = str | Backend | None


def _result_dtype(result: object) -> np.dtype:
    """A result's dtype as NumPy's; device arrays (a torch tensor's dtype is torch's own
    object) say it in their ``__cuda_array_interface__``."""
    interface = getattr(result, "__cuda_array_interface__", None)
    if interface is not None:
        return np.dtype(interface["typestr"])
    return np.dtype(result.dtype)


def _run(problem: Problem, backend: BackendChoice) -> np.ndarray:
    chosen = select_backend(problem, backend)
    # Operands near the top of their dtype's range are scaled first: those copies count too.
    shifts = range_shifts(problem)
    needed = reported_working_set(chosen, problem) + scaled_copy_bytes(problem, shifts)
    limit = get_memory_limit()
    if needed > limit:
        raise WorkingSetTooLargeError(
            f"{problem.operation}: backend {chosen.name!r} needs about {readable_bytes(needed)} of working "
            f"memory for output shape {problem.output_shape}, over the limit of {readable_bytes(limit)}; "
            "split the problem (e.g. along the batch axis), or raise the limit with "
            "convkit.set_memory_limit / CONVKIT_MEMORY_LIMIT if the memory is there"
        )
    in_range, shift = into_range(problem, shifts)
    result = getattr(chosen, problem.operation)(in_range)
    shape = tuple(getattr(result, "shape", ()) or ())
    if not hasattr(result, "dtype") or not hasattr(result, "shape"):
        raise BackendResultError(
            f"backend {chosen.name!r} returned {type(result).__name__}, not an array, for "
            f"{problem.operation} with output shape {problem.output_shape}"
        )
    if shape != tuple(problem.output_shape):
        raise BackendResultError(
            f"backend {chosen.name!r} returned shape {shape} for {problem.operation}; "
            f"expected {problem.output_shape}"
        )
    if _result_dtype(result) != problem.dtype:
        raise BackendResultError(
            f"backend {chosen.name!r} returned dtype {result.dtype} for {problem.operation}; "
            f"expected {problem.dtype}"
        )
    if isinstance(result, np.ndarray) or shift:  # a host result (only host operands are scaled)
        result = np.asanyarray(result)
        if not result.flags.writeable:
            result = result.copy()
        restore_range(result, shift)
        zero_outputs_without_terms(problem, result)
    return result


def convolve_nd(
    in1: ArrayLike,
    in2: ArrayLike,
    mode: Mode = "full",
    *,
    axes: int | Sequence[int] | None = None,
    boundary: Boundary = "fill",
    fillvalue: complex = 0,
    nan_policy: NanPolicy = "propagate",
    preserve_nan: bool = False,
    backend: BackendChoice = None,
) -> np.ndarray:
    """Convolve two N-dimensional arrays, as ``scipy.signal.fftconvolve`` does.

    Parameters
    ----------
    in1, in2 : array_like or dask.array.Array
        The inputs, with the same number of dimensions.  Axes not in ``axes``
        broadcast (equal lengths, or one of them 1).  A Dask array gives a
        lazy result (see Returns); ``in2`` must then fit in memory (a Dask
        ``in2`` is computed once).
    mode : {"full", "valid", "same"}
        ``"full"``: the whole linear convolution (length ``M + m - 1``);
        ``"valid"``: only outputs that don't rely on zero padding (length
        ``|M - m| + 1``; one input must be at least as large as the other in
        every convolved axis, in either order); ``"same"``: the length of
        ``in1`` along the convolved axes, centred on the full result as SciPy
        centres it.  In every mode the other axes keep their broadcast
        length (SciPy releases without the fix of scipy#21876 cut them to
        ``in1``'s in ``"same"`` mode).
    axes : int, sequence of int or None
        Axes to convolve over (default: all).  Must not be empty.
    boundary : {"fill", "wrap", "symm", "symmetric", "mirror", "nearest"}
        How ``in1`` continues past its ends along the convolved axes (``in2``
        is never extended): ``"fill"`` with ``fillvalue`` (default 0);
        ``"wrap"``, periodic; ``"symm"`` (or ``"symmetric"``), ``d c b a | a
        b c d | d c b a``; ``"mirror"``, ``d c b | a b c d | c b a``;
        ``"nearest"``, the edge sample repeats.  The rule repeats as far as
        the kernel reaches.  ``"full"`` is then ``"valid"`` on ``in1``
        extended by ``m - 1`` on both sides, ``"same"`` the same centred part
        of it as with zeros, and ``"valid"`` is unchanged.
    fillvalue : number
        The value outside ``in1`` with ``boundary="fill"``; must be 0 with
        any other boundary.
    nan_policy : {"propagate", "interpolate", "fill"}
        What a non-finite sample (NaN, inf) of ``in1`` does.  ``"propagate"``
        (default): it reaches the outputs whose sum contains it, and only
        those.  ``"interpolate"``: normalized convolution over the finite
        samples, ``(x·m ⊛ w) / (m ⊛ w)`` with ``m`` the mask of finite
        samples (extended by ``boundary`` like ``in1``; ``"fill"`` samples
        count as finite), so a gap is filled from its neighbours; an output
        whose window holds no finite sample, or whose ``m ⊛ w`` is 0, is NaN.
        ``"fill"``: non-finite samples count as ``fillvalue``.  Non-finite
        values of ``in2`` always propagate.  :func:`conv` has no
        ``nan_policy``.
    preserve_nan : bool
        With ``nan_policy="interpolate"`` and ``mode="same"`` only: NaN
        again where ``in1`` was not finite.
    backend : str, Backend or None
        Run on this backend, strictly (no fallback).  None: the current
        choice (:func:`use_backend`, :func:`set_backend`,
        ``CONVKIT_BACKEND``, else "auto").

    Returns
    -------
    numpy.ndarray or dask.array.Array
        The result, of dtype float32 for float32 (and float16) inputs,
        float64 for float64, integer and bool inputs, complex64 and
        complex128 for complex ones (mixed inputs promote first).  0-d
        inputs multiply; an empty input gives an empty (0,) array.  With a
        Dask operand, a Dask array of the same values that computes nothing
        until asked: each output block is one task (the block plus the
        samples the kernel reaches, any number of chunks deep, or for a
        kernel longer than the chunks the sum of per-chunk convolutions),
        run through this same dispatch with the backend choice in force
        now, wherever the task runs.  Along the convolved axes the output
        chunks follow ``in1``'s (identical in ``"same"`` mode).

    Raises
    ------
    TypeError
        Non-numeric inputs or arguments of the wrong type.
    ValueError
        Mismatched dimensions, incompatible shapes, bad ``mode`` or ``axes``.
    convkit.BackendError
        The named backend is unknown, unavailable or cannot do this problem.

    Notes
    -----
    Unlike SciPy's FFT convolution, NaN and inf stay local on every backend:
    a non-finite value affects only the outputs whose direct-definition sum
    contains it.

    Examples
    --------
    FFT methods round: values are exact only to about 1e-16 here.

    >>> import convkit
    >>> convkit.convolve_nd([1.0, 2.0, 3.0], [0.0, 1.0, 0.5]).round(12) + 0.0
    array([0. , 1. , 2.5, 4. , 1.5])
    >>> convkit.convolve_nd([1.0, 2.0, 3.0], [0.0, 1.0, 0.5], mode="same").round(12) + 0.0
    array([1. , 2.5, 4. ])
    >>> convkit.convolve_nd([1.0, 2.0, 3.0], [1.0, 1.0, 1.0], "same", boundary="wrap").round(12)
    array([6., 6., 6.])
    """
    return _along_axes(
        convolve_nd, in1, in2, mode, axes, boundary, fillvalue, nan_policy, preserve_nan, backend
    )


def correlate_nd(
    in1: ArrayLike,
    in2: ArrayLike,
    mode: Mode = "full",
    *,
    axes: int | Sequence[int] | None = None,
    boundary: Boundary = "fill",
    fillvalue: complex = 0,
    nan_policy: NanPolicy = "propagate",
    preserve_nan: bool = False,
    backend: BackendChoice = None,
) -> np.ndarray:
    """Cross-correlate two N-dimensional arrays, as ``scipy.signal.correlate`` does.

    ``correlate_nd(in1, in2, mode)`` is :func:`convolve_nd` of ``in1`` with
    ``in2`` reversed along the convolved axes and complex-conjugated, which is
    SciPy's definition in every mode:
    ``full[k] = sum_j in1[j] * conj(in2[j - k + len(in2) - 1])``.

    Parameters
    ----------
    in1, in2 : array_like
        The inputs, with the same number of dimensions.  Axes not in ``axes``
        broadcast (equal lengths, or one of them 1).
    mode : {"full", "valid", "same"}
        ``"full"``: every lag (length ``M + m - 1``); ``"valid"``: the lags
        at which one input lies wholly inside the other (length
        ``|M - m| + 1``; the inputs may be given in either order, and the
        result is the matching part of ``"full"`` either way, as in SciPy);
        ``"same"``: the length of ``in1``, centred on ``"full"`` as SciPy
        centres it.
    axes : int, sequence of int or None
        Axes to correlate over (default: all, the only choice
        ``scipy.signal.correlate`` offers).  ``in2`` is reversed along these
        axes only.
    boundary : {"fill", "wrap", "symm", "symmetric", "mirror", "nearest"}
        How ``in1`` continues past its ends, as for :func:`convolve_nd`;
        ``in2`` is never extended.
    fillvalue : number
        The value outside ``in1`` with ``boundary="fill"``; must be 0 with
        any other boundary.
    nan_policy : {"propagate", "interpolate", "fill"}
        What a non-finite sample (NaN, inf) of ``in1`` does.  ``"propagate"``
        (default): it reaches the outputs whose sum contains it, and only
        those.  ``"interpolate"``: normalized convolution over the finite
        samples, ``(x·m ⊛ w) / (m ⊛ w)`` with ``m`` the mask of finite
        samples (extended by ``boundary`` like ``in1``; ``"fill"`` samples
        count as finite), so a gap is filled from its neighbours; an output
        whose window holds no finite sample, or whose ``m ⊛ w`` is 0, is NaN.
        ``"fill"``: non-finite samples count as ``fillvalue``.  Non-finite
        values of ``in2`` always propagate.  :func:`conv` has no
        ``nan_policy``.
    preserve_nan : bool
        With ``nan_policy="interpolate"`` and ``mode="same"`` only: NaN
        again where ``in1`` was not finite.
    backend : str, Backend or None
        As for :func:`convolve_nd`.

    Returns
    -------
    numpy.ndarray or dask.array.Array
        The result, with the dtype rule of :func:`convolve_nd`; 0-d inputs
        give ``in1 * conj(in2)``.  Dask operands give a lazy result, as for
        :func:`convolve_nd`.

    Raises
    ------
    TypeError
        Non-numeric inputs or arguments of the wrong type.
    ValueError
        Mismatched dimensions, incompatible shapes, bad ``mode``, ``axes`` or
        ``boundary``; GPU arrays (the reversed, conjugated copy of ``in2`` is
        made on the host).
    convkit.BackendError
        The named backend is unknown, unavailable or cannot do this problem.

    Notes
    -----
    NaN and inf stay local, as in :func:`convolve_nd`.

    Examples
    --------
    >>> import convkit
    >>> convkit.correlate_nd([1.0, 2.0, 3.0], [0.0, 1.0, 0.5]).round(12) + 0.0
    array([0.5, 2. , 3.5, 3. , 0. ])
    >>> convkit.correlate_nd([1.0, 2.0, 3.0], [0.0, 1.0, 0.5], mode="same").round(12) + 0.0
    array([2. , 3.5, 3. ])

    ``in2`` is conjugated; in ``"valid"`` mode the order of the inputs
    matters, as in SciPy:

    >>> convkit.correlate_nd([1.0, 2.0, 3.0], [1j, 1.0], mode="valid").round(12) + 0.0
    array([2.-1.j, 3.-2.j])
    >>> convkit.correlate_nd([1j, 1.0], [1.0, 2.0, 3.0], mode="valid").round(12) + 0.0
    array([3.+2.j, 2.+1.j])
    """
    return _along_axes(
        correlate_nd, in1, in2, mode, axes, boundary, fillvalue, nan_policy, preserve_nan, backend
    )


def _along_axes(
    function, in1, in2, mode, axes, boundary, fillvalue, nan_policy, preserve_nan, backend
) -> np.ndarray:
    """``convolve_nd`` or ``correlate_nd`` (``function``, the public one) once its arguments
    are bound: a missing-data policy other than "propagate" runs it on finite arrays."""
    name = function.__name__
    check_nan_policy(nan_policy, preserve_nan, mode, name)
    if is_dask_array(in1) or is_dask_array(in2):
        return convolve_lazily(
            name, in1, in2, mode, axes, boundary, fillvalue, nan_policy, preserve_nan, backend
        )
    if nan_policy != "propagate":
        keywords = dict(axes=axes, boundary=boundary, fillvalue=fillvalue, backend=backend)
        return with_nan_policy(function, name, in1, in2, mode, nan_policy, preserve_nan, **keywords)
    problem = normalize_convolve(
        in1, in2, mode, axes, boundary, fillvalue, correlate=name == "correlate_nd"
    )
    if isinstance(problem, np.ndarray):
        return problem
    return _run(problem, backend)


def conv(
    input: ArrayLike,
    filters: ArrayLike,
    border_mode: BorderMode = "valid",
    subsample: IntOrTuple = 1,
    filter_flip: bool = True,
    filter_dilation: IntOrTuple = 1,
    num_groups: int = 1,
    *,
    boundary: Boundary = "fill",
    fillvalue: complex = 0,
    backend: BackendChoice = None,
) -> np.ndarray:
    """CNN-layer convolution with Theano's / PyTensor's semantics, any spatial rank.

    Parameters
    ----------
    input : array_like or dask.array.Array
        ``(N, C, *spatial)``: batch, channels, one or more spatial axes.  A
        Dask array gives a lazy result, chunked along the batch axis as the
        input is and along each spatial axis in blocks of about the input's
        chunk length divided by the stride; each task reads every channel of
        its block and the samples the kernel reaches.
    filters : array_like
        ``(F, C // num_groups, *kernel)``; in memory (a Dask array is
        computed once).
    border_mode : str, int or tuple
        ``"valid"`` (no padding), ``"full"`` (``dilation * (k - 1)`` each
        side), ``"half"`` (``(dilation * (k - 1) + 1) // 2`` each side),
        ``"same"`` (output ``ceil(in / stride)``, the odd unit of padding after
        the data, as TensorFlow), an int (every side), a tuple of ints (per
        axis) or a tuple of ``(before, after)`` pairs.
    subsample : int or tuple of int
        Stride, per axis; >= 1.
    filter_flip : bool
        True (default): true convolution, the kernel flipped in every spatial
        axis.  False: cross-correlation, as PyTorch's ``conv2d``.
    filter_dilation : int or tuple of int
        Dilation, per axis; >= 1.
    num_groups : int
        Channel groups; divides both C and F.  Each output channel sums over
        the input channels of its group.
    boundary : {"fill", "wrap", "symm", "symmetric", "mirror", "nearest"}
        What fills the padding of ``border_mode``: each input channel's
        spatial axes are extended by this rule, as :func:`convolve_nd`
        extends ``in1``; the filters are never padded.  ``"fill"`` with
        ``fillvalue`` 0 (the default) is Theano's zero padding.
    fillvalue : number
        The padding value with ``boundary="fill"``; must be 0 with any
        other boundary.
    backend : str, Backend or None
        As for :func:`convolve_nd`.

    Returns
    -------
    numpy.ndarray or dask.array.Array
        ``(N, F, *out)`` where ``out = (in + before + after - dilation * (k - 1) - 1)
        // stride + 1`` per axis; dtype by the rule of :func:`convolve_nd`.

    Raises
    ------
    TypeError
        Non-numeric inputs, arguments of the wrong type.
    ValueError
        Wrong numbers of dimensions, channel mismatch, bad border mode,
        stride, dilation or groups, an empty output.
    convkit.BackendError
        The named backend is unknown, unavailable or cannot do this problem.

    Examples
    --------
    >>> import numpy as np, convkit
    >>> x = np.arange(9.0).reshape(1, 1, 3, 3)
    >>> w = np.array([[[[1.0, 0.0], [0.0, -1.0]]]])
    >>> convkit.conv(x, w)
    array([[[[4., 4.],
             [4., 4.]]]])
    >>> convkit.conv(x, w, filter_flip=False)
    array([[[[-4., -4.],
             [-4., -4.]]]])
    >>> convkit.conv([[[1.0, 2.0, 3.0]]], [[[1.0, 1.0, 1.0]]], border_mode="half", boundary="nearest")
    array([[[4., 6., 8.]]])
    """
    return _conv(
        "conv",
        None,
        input,
        filters,
        border_mode,
        subsample,
        filter_flip,
        filter_dilation,
        num_groups,
        boundary,
        fillvalue,
        backend,
    )


def _conv(
    function: str,
    spatial_dims: int | None,
    input: object,
    filters: object,
    border_mode: object,
    subsample: object,
    filter_flip: object,
    filter_dilation: object,
    num_groups: object,
    boundary: object,
    fillvalue: object,
    backend: BackendChoice,
) -> np.ndarray:
    """:func:`conv` or one of its fixed-rank forms (``function``, of ``spatial_dims``
    spatial axes; None: any), with Dask operands lazily."""
    if is_dask_array(input) or is_dask_array(filters):
        return conv_lazily(
            function,
            input,
            filters,
            border_mode,
            subsample,
            filter_flip,
            filter_dilation,
            num_groups,
            spatial_dims,
            boundary,
            fillvalue,
            backend,
        )
    problem = normalize_conv(
        input,
        filters,
        border_mode,
        subsample,
        filter_flip,
        filter_dilation,
        num_groups,
        spatial_dims=spatial_dims,
        function=function,
        boundary=boundary,
        fillvalue=fillvalue,
    )
    if isinstance(problem, np.ndarray):
        return problem
    return _run(problem, backend)


def _fixed_rank(spatial_dims: int, function: str):
    def convolution(
        input: ArrayLike,
        filters: ArrayLike,
        border_mode: BorderMode = "valid",
        subsample: IntOrTuple = 1,
        filter_flip: bool = True,
        filter_dilation: IntOrTuple = 1,
        num_groups: int = 1,
        *,
        boundary: Boundary = "fill",
        fillvalue: complex = 0,
        backend: BackendChoice = None,
    ) -> np.ndarray:
        return _conv(
            function,
            spatial_dims,
            input,
            filters,
            border_mode,
            subsample,
            filter_flip,
            filter_dilation,
            num_groups,
            boundary,
            fillvalue,
            backend,
        )

    convolution.__name__ = convolution.__qualname__ = function
    return convolution


conv1d = _fixed_rank(1, "conv1d")
conv1d.__doc__ = """:func:`conv` with one spatial axis: input ``(N, C, W)``, filters ``(F, C // g, k)``.

Examples
--------
>>> import convkit
>>> convkit.conv1d([[[1.0, 2.0, 3.0]]], [[[1.0, 1.0]]])
array([[[3., 5.]]])
"""

conv2d = _fixed_rank(2, "conv2d")
conv2d.__doc__ = """:func:`conv` with two spatial axes: input ``(N, C, H, W)``, filters ``(F, C // g, kh, kw)``.

This is ``theano.tensor.nnet.conv2d`` / PyTensor's ``conv2d``: each output
channel sums over the input channels (of its group), the kernel is flipped
unless ``filter_flip=False``.  See :func:`conv` for every parameter.

Examples
--------
>>> import numpy as np, convkit
>>> image = np.arange(25.0).reshape(1, 1, 5, 5)
>>> convkit.conv2d(image, np.ones((1, 1, 3, 3)), border_mode="valid")
array([[[[ 54.,  63.,  72.],
         [ 99., 108., 117.],
         [144., 153., 162.]]]])
>>> convkit.conv2d(image, np.ones((1, 1, 3, 3)), border_mode="half", subsample=2).shape
(1, 1, 3, 3)
"""

conv3d = _fixed_rank(3, "conv3d")
conv3d.__doc__ = """:func:`conv` with three spatial axes: input ``(N, C, D, H, W)``, filters ``(F, C // g, kd, kh, kw)``.

Examples
--------
>>> import numpy as np, convkit
>>> convkit.conv3d(np.ones((1, 2, 3, 3, 3)), np.ones((4, 2, 2, 2, 2))).shape
(1, 4, 2, 2, 2)
"""
