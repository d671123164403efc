"""``scipy.ndimage``'s convolution filters with SciPy's signatures, computed by convkit.

Each function takes the arguments of its SciPy namesake, with the same
defaults and the same meaning of ``mode`` (ndimage's names: "reflect",
"mirror", "nearest", "wrap", "constant" and their "grid-" forms), ``cval``,
``origin``, ``axes`` and ``output``, and gives SciPy's result, errors and
warnings.  SciPy's own helpers check the arguments and split complex
operands into real ones; the correlations run through
:func:`convkit.correlate_nd` on the backend convkit chooses, in double
precision as ndimage computes, and are written into ``output`` as ndimage
writes them (a cast that truncates toward zero for integer outputs).  The
separable filters (:func:`uniform_filter`, :func:`gaussian_filter`) are
one 1-D pass per axis, as in SciPy.
"""

from __future__ import annotations

import numbers
import operator
from collections.abc import Iterable

import numpy as np
from numpy.lib.array_utils import normalize_axis_index
from scipy.ndimage import _filters, _nd_image, _ni_support

from convkit import correlate_nd
from convkit.compat._dtypes import exact_where_integral

__all__ = [
    "convolve",
    "convolve1d",
    "correlate",
    "correlate1d",
    "gaussian_filter",
    "gaussian_filter1d",
    "uniform_filter",
    "uniform_filter1d",
]

# ndimage's extension codes (as _ni_support names them for filters) and convkit's
# boundaries: ndimage's "reflect" repeats the edge sample (convkit's "symm"), its
# "mirror" does not; the "grid-" forms mean the same for filters.
_BOUNDARY_OF_CODE = {
    0: "nearest",
    1: "wrap",
    2: "symm",
    3: "mirror",
    4: "fill",
    5: "wrap",
    6: "fill",
}

# The dtypes ndimage's C filters read and write; SciPy itself gets the others (and
# refuses them as it does).
_NDIMAGE_DTYPES = frozenset(np.dtype(code) for code in "?bBhHiIlLqQfd")

# ndimage's N-d correlation sums only the weights larger than this in magnitude.
_FOOTPRINT = np.finfo(np.float64).eps

# Single-axis passes over arrays of at least _STRIPPED samples run in strips of _STRIP
# columns (see _strips).
_STRIP = 256
_STRIPPED = 2**20

# Sums that land this close (relative to the largest output) to an integer are that
# integer before an integer output truncates them: ndimage's exact double sum and an FFT
# method's rounded one then truncate alike.
_SNAP = 1e-12


def _store(output: np.ndarray, result: np.ndarray) -> None:
    """Write float64 ``result`` into ``output`` as ndimage's C cast does."""
    if output.dtype.kind in "biu":
        nearest = np.rint(result)
        finite = np.isfinite(result)
        scale = float(np.abs(result[finite]).max(initial=1.0))
        snap = finite & (np.abs(result - nearest) <= _SNAP * scale)
        result = np.where(snap, nearest, result)
    if output.dtype == np.bool_:
        # ndimage stores a bool as a C cast to its byte (truncation toward zero, so 0.5 is
        # False and 2.0 the byte 2), not as NumPy's "nonzero is True".
        output = output.view(np.uint8)
    with np.errstate(invalid="ignore", over="ignore"):
        np.copyto(output, result, casting="unsafe")


def _correlation(input, weights, boundary, fill, origins, axes):
    """The correlation of ``input`` with ``weights`` over ``axes``, ndimage's window."""
    shifted = any(origins[axis] for axis in axes)
    result = correlate_nd(
        input, weights, "full" if shifted else "same", axes=axes, boundary=boundary, fillvalue=fill
    )
    if shifted:
        # "full" holds every lag; the origin picks which input.shape of them.
        window = [slice(None)] * input.ndim
        for axis in axes:
            start = weights.shape[axis] - 1 - (weights.shape[axis] // 2 + origins[axis])
            window[axis] = slice(start, start + input.shape[axis])
        result = result[tuple(window)]
    terms = int(np.prod([weights.shape[axis] for axis in axes]))
    return exact_where_integral(result, input, weights, terms, fill)


def _strips(input: np.ndarray, axes: tuple[int, ...]) -> list[slice]:
    """Slices of the last axis to filter one at a time: a pass along another single axis
    of a large array runs in strips of _STRIP columns, whose rows stay in cache (on two
    cores this made a column pass of a 4096^2 float32 image about 1.7x faster), else the whole array."""
    columns = input.shape[-1] if input.ndim else 0
    if (
        len(axes) != 1
        or axes[0] == input.ndim - 1
        or input.size < _STRIPPED
        or columns < 2 * _STRIP
    ):
        return [slice(None)]
    return [slice(start, start + _STRIP) for start in range(0, columns, _STRIP)]


def _ndimage_takes(dtype: np.dtype) -> bool:
    """Whether ndimage's C filters take ``dtype``, in either byte order."""
    return dtype.newbyteorder("=") in _NDIMAGE_DTYPES


def _correlate_into(input, weights, output, mode, cval, origins, native, divisor=1):
    """ndimage's correlation of a real ``input``: ``output[i] = sum_j weights[j] *
    input[i + j - (weights.shape // 2 + origins)]``, ``input`` extended by ``mode``, over
    the axes where ``weights`` is longer than 1, divided by ``divisor``.

    ndimage sums in double precision; so does this, except that float32 input into a
    float32 output sums in float32 (convkit's rule for float32 operands).  ``native(code)``
    is SciPy's own C call for this pass: it runs (and refuses as SciPy refuses) dtypes
    ndimage's C filters do not take, and complex ``cval`` with a real input."""
    code = _ni_support._extend_mode_to_code(mode)
    unsupported = not (_ndimage_takes(input.dtype) and _ndimage_takes(output.dtype))
    if unsupported or np.iscomplexobj(cval):
        native(code)
        return
    if input.size == 0:
        return
    if input.dtype == output.dtype == np.float32:
        weights = weights.astype(np.float32)
    boundary = _BOUNDARY_OF_CODE[code]
    fill = cval if boundary == "fill" else 0
    axes = tuple(axis for axis in range(input.ndim) if weights.shape[axis] > 1)
    for strip in _strips(input, axes):
        part = input[..., strip] if input.ndim else input
        if not axes:
            result = part * weights.reshape(())
        else:
            result = _correlation(part, weights, boundary, fill, origins, axes)
        if divisor != 1:
            result = np.divide(result, weights.dtype.type(divisor), out=result)
        _store(output[..., strip] if output.ndim else output, result)


def _along(axis: int, ndim: int, weights: np.ndarray) -> np.ndarray:
    """1-D ``weights`` as an ``ndim``-d array that extends along ``axis`` only."""
    shape = [1] * ndim
    shape[axis] = weights.shape[0]
    return weights.reshape(shape)


def correlate1d(input, weights, axis=-1, output=None, mode="reflect", cval=0.0, origin=0):
    """Correlate along one axis, as :func:`scipy.ndimage.correlate1d`.

    Parameters
    ----------
    input : array_like
        The input array.
    weights : array_like
        1-D weights.
    axis : int
        The axis to correlate along.
    output : numpy.ndarray or dtype, optional
        Where to write the result, or its dtype (default: ``input``'s).
    mode : str
        ndimage's extension mode ("reflect", "constant", "nearest",
        "mirror", "wrap", "grid-mirror", "grid-constant", "grid-wrap").
    cval : scalar
        The value outside the input with ``mode="constant"``.
    origin : int
        Shift of the weights' centre.

    Returns
    -------
    numpy.ndarray
        ``output``.

    Examples
    --------
    >>> from convkit.compat import ndimage
    >>> ndimage.correlate1d([2, 8, 0, 4, 1, 9, 9, 0], weights=[1, 3])
    array([ 8, 26,  8, 12,  7, 28, 36,  9])
    """
    input = np.asarray(input)
    weights = np.asarray(weights)
    if input.dtype.kind == "c" or weights.dtype.kind == "c":
        if weights.dtype.kind == "c":
            weights = weights.conj().astype(np.complex128, copy=False)
        output = _ni_support._get_output(output, input, complex_output=True)
        return _filters._complex_via_real_components(
            correlate1d, input, weights, output, cval, axis=axis, mode=mode, origin=origin
        )
    output = _ni_support._get_output(output, input)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 1 or weights.shape[0] < 1:
        raise RuntimeError("no filter weights given")
    axis = normalize_axis_index(axis, input.ndim)
    if _filters._invalid_origin(origin, len(weights)):
        raise ValueError(
            "Invalid origin; origin must satisfy -(len(weights) // 2) <= origin <= "
            "(len(weights)-1) // 2"
        )
    origins = [0] * input.ndim
    origins[axis] = origin
    _correlate_into(
        input,
        _along(axis, input.ndim, weights),
        output,
        mode,
        cval,
        origins,
        lambda code: _nd_image.correlate1d(input, weights, axis, output, code, cval, origin),
    )
    return output


def convolve1d(input, weights, axis=-1, output=None, mode="reflect", cval=0.0, origin=0):
    """Convolve along one axis, as :func:`scipy.ndimage.convolve1d`.

    Parameters
    ----------
    input : array_like
        The input array.
    weights : array_like
        1-D weights.
    axis : int
        The axis to convolve along.
    output : numpy.ndarray or dtype, optional
        Where to write the result, or its dtype (default: ``input``'s).
    mode : str
        ndimage's extension mode, as for :func:`correlate1d`.
    cval : scalar
        The value outside the input with ``mode="constant"``.
    origin : int
        Shift of the weights' centre.

    Returns
    -------
    numpy.ndarray
        ``output``.

    Examples
    --------
    >>> from convkit.compat import ndimage
    >>> ndimage.convolve1d([2, 8, 0, 4, 1, 9, 9, 0], weights=[1, 3])
    array([14, 24,  4, 13, 12, 36, 27,  0])
    """
    weights = np.asarray(weights)
    weights = weights[::-1]
    origin = -origin
    if not weights.shape[0] & 1:
        origin -= 1
    if weights.dtype.kind == "c":
        # correlate1d conjugates complex weights; convolution does not.
        weights = weights.conj()
    return correlate1d(input, weights, axis, output, mode, cval, origin)


def _correlate_or_convolve(input, weights, output, mode, cval, origin, convolution, axes):
    input = np.asarray(input)
    weights = np.asarray(weights)
    if input.dtype.kind == "c" or weights.dtype.kind == "c":
        if weights.dtype.kind == "c" and not convolution:
            weights = weights.conj()
        output = _ni_support._get_output(output, input, complex_output=True)
        return _filters._complex_via_real_components(
            _correlate_or_convolve,
            input,
            weights,
            output,
            cval,
            mode=mode,
            origin=origin,
            convolution=convolution,
            axes=axes,
        )
    axes = _ni_support._check_axes(axes, input.ndim)
    weights = np.asarray(weights, dtype=np.float64)
    # ndimage's N-d filter leaves out the weights with |w| <= DBL_EPSILON (NaN included).
    weights = np.where(np.abs(weights) > _FOOTPRINT, weights, 0.0)
    weights = _filters._expand_footprint(input.ndim, axes, weights, "weights")
    origins = _filters._expand_origin(input.ndim, axes, origin)
    kept = [length for length in weights.shape if length > 0]
    if len(kept) != input.ndim:
        raise RuntimeError(f"weights.ndim ({len(kept)}) must match len(axes) ({len(axes)})")
    if convolution:
        weights = weights[(slice(None, None, -1),) * weights.ndim]
        for axis in range(len(origins)):
            origins[axis] = -origins[axis]
            if not weights.shape[axis] & 1:
                origins[axis] -= 1
    for axis_origin, length in zip(origins, kept):
        if _filters._invalid_origin(axis_origin, length):
            raise ValueError(
                "Invalid origin; origin must satisfy -(weights.shape[k] // 2) <= origin[k] <= "
                "(weights.shape[k]-1) // 2"
            )
    output = _ni_support._get_output(output, input)
    if not isinstance(mode, str) and isinstance(mode, Iterable):
        raise RuntimeError("A sequence of modes is not supported")
    _correlate_into(
        input,
        weights,
        output,
        mode,
        cval,
        origins,
        lambda code: _nd_image.correlate(input, weights, output, code, cval, origins),
    )
    return output


def correlate(input, weights, output=None, mode="reflect", cval=0.0, origin=0, *, axes=None):
    """Correlate an N-d array with N-d weights, as :func:`scipy.ndimage.correlate`.

    Parameters
    ----------
    input : array_like
        The input array.
    weights : array_like
        Weights with one axis per filtered axis.
    output : numpy.ndarray or dtype, optional
        Where to write the result, or its dtype (default: ``input``'s).
    mode : str
        ndimage's extension mode, as for :func:`correlate1d`.
    cval : scalar
        The value outside the input with ``mode="constant"``.
    origin : int or sequence of int
        Shift of the weights' centre, per filtered axis.
    axes : int, sequence of int or None
        The filtered axes (default: all).

    Returns
    -------
    numpy.ndarray
        ``output``.

    Examples
    --------
    >>> from convkit.compat import ndimage
    >>> ndimage.correlate([[0, 1, 0], [0, 2, 0]], [[1, 1], [1, 1]], mode="constant")
    array([[0, 1, 1],
           [0, 3, 3]])
    """
    return _correlate_or_convolve(input, weights, output, mode, cval, origin, False, axes)


def convolve(input, weights, output=None, mode="reflect", cval=0.0, origin=0, *, axes=None):
    """Convolve an N-d array with N-d weights, as :func:`scipy.ndimage.convolve`.

    Parameters
    ----------
    input : array_like
        The input array.
    weights : array_like
        Weights with one axis per filtered axis.
    output : numpy.ndarray or dtype, optional
        Where to write the result, or its dtype (default: ``input``'s).
    mode : str
        ndimage's extension mode, as for :func:`correlate1d`.
    cval : scalar
        The value outside the input with ``mode="constant"``.
    origin : int or sequence of int
        Shift of the weights' centre, per filtered axis.
    axes : int, sequence of int or None
        The filtered axes (default: all).

    Returns
    -------
    numpy.ndarray
        ``output``.

    Examples
    --------
    >>> from convkit.compat import ndimage
    >>> ndimage.convolve([[0, 1, 0], [0, 2, 0]], [[1, 1], [1, 1]], mode="constant")
    array([[3, 3, 0],
           [2, 2, 0]])
    """
    return _correlate_or_convolve(input, weights, output, mode, cval, origin, True, axes)


def uniform_filter1d(input, size, axis=-1, output=None, mode="reflect", cval=0.0, origin=0):
    """The mean over ``size`` samples along one axis, as :func:`scipy.ndimage.uniform_filter1d`.

    Parameters
    ----------
    input : array_like
        The input array.
    size : int
        The length of the window.
    axis : int
        The axis to filter along.
    output : numpy.ndarray or dtype, optional
        Where to write the result, or its dtype (default: ``input``'s).
    mode : str
        ndimage's extension mode, as for :func:`correlate1d`.
    cval : scalar
        The value outside the input with ``mode="constant"``.
    origin : int
        Shift of the window's centre.

    Returns
    -------
    numpy.ndarray
        ``output``.

    Examples
    --------
    >>> from convkit.compat import ndimage
    >>> ndimage.uniform_filter1d([2, 8, 0, 4, 1, 9, 9, 0], size=3)
    array([4, 3, 4, 1, 4, 6, 6, 3])
    """
    input = np.asarray(input)
    axis = normalize_axis_index(axis, input.ndim)
    if size < 1:
        raise RuntimeError("incorrect filter size")
    complex_output = input.dtype.kind == "c"
    output = _ni_support._get_output(output, input, complex_output=complex_output)
    if (size // 2 + origin < 0) or (size // 2 + origin >= size):
        raise ValueError("invalid origin")
    size = operator.index(size)  # SciPy's C call takes an integer only, and says so
    window = _along(axis, input.ndim, np.ones(size))
    origins = [0] * input.ndim
    origins[axis] = origin
    if not complex_output:
        parts = [(input, output, cval)]
    else:
        parts = [
            (input.real, output.real, np.real(cval)),
            (input.imag, output.imag, np.imag(cval)),
        ]
    for part, written, part_cval in parts:
        _correlate_into(
            part,
            window,
            written,
            mode,
            part_cval,
            origins,
            lambda code, part=part, written=written, part_cval=part_cval: (
                _nd_image.uniform_filter1d(part, size, axis, written, code, part_cval, origin)
            ),
            divisor=size,
        )
    return output


def uniform_filter(input, size=3, output=None, mode="reflect", cval=0.0, origin=0, *, axes=None):
    """The mean over a box, one axis at a time, as :func:`scipy.ndimage.uniform_filter`.

    Parameters
    ----------
    input : array_like
        The input array.
    size : int or sequence of int
        The box's length, per filtered axis.
    output : numpy.ndarray or dtype, optional
        Where to write the result, or its dtype (default: ``input``'s).
    mode : str or sequence of str
        ndimage's extension mode, per filtered axis.
    cval : scalar
        The value outside the input with ``mode="constant"``.
    origin : int or sequence of int
        Shift of the box's centre, per filtered axis.
    axes : int, sequence of int or None
        The filtered axes (default: all).

    Returns
    -------
    numpy.ndarray
        ``output``.

    Examples
    --------
    >>> from convkit.compat import ndimage
    >>> ndimage.uniform_filter([[0.0, 3.0], [6.0, 9.0]], size=2)
    array([[0. , 1.5],
           [3. , 4.5]])
    """
    input = np.asarray(input)
    output = _ni_support._get_output(output, input, complex_output=input.dtype.kind == "c")
    axes = _ni_support._check_axes(axes, input.ndim)
    count = len(axes)
    sizes = _ni_support._normalize_sequence(size, count)
    origins = _ni_support._normalize_sequence(origin, count)
    modes = _ni_support._normalize_sequence(mode, count)
    passes = [(axes[i], sizes[i], origins[i], modes[i]) for i in range(count) if sizes[i] > 1]
    if not passes:
        output[...] = input[...]
        return output
    for axis, axis_size, axis_origin, axis_mode in passes:
        uniform_filter1d(input, int(axis_size), axis, output, axis_mode, cval, axis_origin)
        input = output
    return output


def gaussian_filter1d(
    input,
    sigma,
    axis=-1,
    order=0,
    output=None,
    mode="reflect",
    cval=0.0,
    truncate=4.0,
    *,
    radius=None,
):
    """A 1-D Gaussian filter (or its derivatives), as :func:`scipy.ndimage.gaussian_filter1d`.

    Parameters
    ----------
    input : array_like
        The input array.
    sigma : scalar
        The Gaussian's standard deviation.
    axis : int
        The axis to filter along.
    order : int
        0: the Gaussian; 1, 2, 3...: its derivative of that order.
    output : numpy.ndarray or dtype, optional
        Where to write the result, or its dtype (default: ``input``'s).
    mode : str
        ndimage's extension mode, as for :func:`correlate1d`.
    cval : scalar
        The value outside the input with ``mode="constant"``.
    truncate : float
        The kernel's radius in standard deviations (unless ``radius``).
    radius : int or None
        The kernel's radius in samples.

    Returns
    -------
    numpy.ndarray
        ``output``.

    Examples
    --------
    >>> from convkit.compat import ndimage
    >>> ndimage.gaussian_filter1d([1.0, 2.0, 3.0, 4.0, 5.0], 1).round(6)
    array([1.427041, 2.067822, 3.      , 3.932178, 4.572959])
    """
    lw = int(truncate * float(sigma) + 0.5)
    if radius is not None:
        lw = radius
    if not isinstance(lw, numbers.Integral) or lw < 0:
        raise ValueError("Radius must be a nonnegative integer.")
    # correlate, not convolve: the kernel reversed.
    weights = _filters._gaussian_kernel1d(sigma, order, lw)[::-1]
    return correlate1d(input, weights, axis, output, mode, cval, 0)


def gaussian_filter(
    input,
    sigma,
    order=0,
    output=None,
    mode="reflect",
    cval=0.0,
    truncate=4.0,
    *,
    radius=None,
    axes=None,
):
    """A Gaussian filter, one axis at a time, as :func:`scipy.ndimage.gaussian_filter`.

    Parameters
    ----------
    input : array_like
        The input array.
    sigma : scalar or sequence of scalars
        The Gaussian's standard deviation, per filtered axis.
    order : int or sequence of int
        The derivative's order, per filtered axis.
    output : numpy.ndarray or dtype, optional
        Where to write the result, or its dtype (default: ``input``'s).
    mode : str or sequence of str
        ndimage's extension mode, per filtered axis.
    cval : scalar
        The value outside the input with ``mode="constant"``.
    truncate : float
        The kernel's radius in standard deviations (unless ``radius``).
    radius : int, sequence of int or None
        The kernel's radius in samples, per filtered axis.
    axes : int, sequence of int or None
        The filtered axes (default: all).

    Returns
    -------
    numpy.ndarray
        ``output``.

    Examples
    --------
    >>> from convkit.compat import ndimage
    >>> ndimage.gaussian_filter([[0.0, 0.0], [0.0, 4.0]], 1, mode="constant").round(4)
    array([[0.2342, 0.3861],
           [0.3861, 0.6366]])
    """
    input = np.asarray(input)
    output = _ni_support._get_output(output, input)
    axes = _ni_support._check_axes(axes, input.ndim)
    count = len(axes)
    orders = _ni_support._normalize_sequence(order, count)
    sigmas = _ni_support._normalize_sequence(sigma, count)
    modes = _ni_support._normalize_sequence(mode, count)
    radiuses = _ni_support._normalize_sequence(radius, count)
    passes = [
        (axes[i], sigmas[i], orders[i], modes[i], radiuses[i])
        for i in range(count)
        if sigmas[i] > 1e-15
    ]
    if not passes:
        output[...] = input[...]
        return output
    for axis, axis_sigma, axis_order, axis_mode, axis_radius in passes:
        gaussian_filter1d(
            input,
            axis_sigma,
            axis,
            axis_order,
            output,
            axis_mode,
            cval,
            truncate,
            radius=axis_radius,
        )
        input = output
    return output
