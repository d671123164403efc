"""``scipy.signal``'s convolutions with SciPy's signatures, computed by convkit.

Each function takes the arguments of its SciPy namesake, with the same
defaults, and gives the same shapes, dtypes, errors and warnings.  Arguments
are checked by SciPy's own helpers, so a call SciPy refuses is refused with
SciPy's message.  The convolution itself runs through
:func:`convkit.convolve_nd` / :func:`convkit.correlate_nd` on the backend
convkit chooses (:func:`convkit.use_backend` and :func:`convkit.set_backend`
apply).  SciPy computes the calls convkit cannot express: operands of
other dtypes (longdouble, object, float16 or bool alone with
``method="direct"``), empty operands of ``convolve``/``correlate`` and the
2-D functions, and integer results whose sums could exceed 2**40 or the
result type.  Unlike SciPy's FFT method, NaN and inf stay local.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.signal as _scipy_signal
from scipy.signal import _signaltools

from convkit import WorkingSetTooLargeError, convolve_nd, correlate_nd
from convkit.compat._dtypes import (
    computed_by_convkit,
    exact_as_integers,
    exact_where_integral,
    largest_magnitude,
)

__all__ = [
    "choose_conv_method",
    "convolve",
    "convolve2d",
    "correlate",
    "correlate2d",
    "fftconvolve",
    "oaconvolve",
]

# SciPy's own functions, held here so that replacing the names in scipy.signal (as the
# scipy test-suite run does) never makes a fallback call back into this module.
_scipy_convolve = _scipy_signal.convolve
_scipy_correlate = _scipy_signal.correlate
_scipy_fftconvolve = _scipy_signal.fftconvolve
_scipy_oaconvolve = _scipy_signal.oaconvolve
_scipy_convolve2d = _scipy_signal.convolve2d
_scipy_correlate2d = _scipy_signal.correlate2d
_scipy_choose_conv_method = _scipy_signal.choose_conv_method

_MODES = ("full", "valid", "same")
# scipy.signal.convolve2d's boundary names and convkit's for each.
_BOUNDARIES = {
    "fill": "fill",
    "pad": "fill",
    "wrap": "wrap",
    "circular": "wrap",
    "symm": "symm",
    "symmetric": "symm",
}


def _frequency_method(in1, in2, mode, axes, sorted_axes, original):
    """fftconvolve and oaconvolve: the same result, SciPy's checks and shapes."""
    in1 = np.asarray(in1)
    in2 = np.asarray(in2)
    if in1.ndim == in2.ndim == 0:
        return in1 * in2
    if in1.ndim != in2.ndim:
        raise ValueError("in1 and in2 should have the same dimensionality")
    if in1.size == 0 or in2.size == 0:
        return np.asarray([])
    if not computed_by_convkit(in1, in2):
        return original(in1, in2, mode, axes)
    first_shape = in1.shape
    in1, in2, axes = _signaltools._init_freq_conv_axes(in1, in2, mode, axes, sorted_axes)
    if mode not in _MODES:
        raise ValueError("acceptable mode flags are 'valid', 'same', or 'full'")
    if not axes:
        # Every axis broadcasts: SciPy multiplies, with NumPy's dtype.
        product = in1 * in2
        if mode == "same":
            return _signaltools._centered(product, first_shape).copy()
        return product
    result = convolve_nd(_transformed(in1), _transformed(in2), mode, axes=axes)
    if mode == "same" and result.shape != first_shape:
        # SciPy cuts the broadcast axes to in1's length too, around their centre.
        result = _signaltools._centered(result, first_shape).copy()
    return result


def _transformed(operand: np.ndarray) -> np.ndarray:
    """``operand`` in the dtype SciPy's FFT computes it in: booleans and integers as float64,
    float16 as float32.  SciPy transforms each input on its own, so float32 with int8 gives
    float64 there, where NumPy's promotion of the pair would give float32."""
    if operand.dtype.kind in "biu":
        return operand.astype(np.float64)
    if operand.dtype == np.float16:
        return operand.astype(np.float32)
    return operand


def fftconvolve(in1, in2, mode="full", axes=None):
    """Convolve two N-dimensional arrays, as :func:`scipy.signal.fftconvolve`.

    Parameters
    ----------
    in1, in2 : array_like
        The inputs, with the same number of dimensions.
    mode : {"full", "valid", "same"}
        The output size, as in SciPy.
    axes : int, sequence of int or None
        Axes to convolve over (default: all); the others broadcast.

    Returns
    -------
    numpy.ndarray
        SciPy's shape and dtype; 0-d inputs multiply, empty inputs give an
        empty float64 array.  NaN and inf stay local (SciPy spreads them
        over the whole output).

    Examples
    --------
    >>> from convkit.compat import signal
    >>> signal.fftconvolve([1.0, 2.0, 3.0], [0.0, 1.0, 0.5]).round(12) + 0.0
    array([0. , 1. , 2.5, 4. , 1.5])
    """
    return _frequency_method(in1, in2, mode, axes, False, _scipy_fftconvolve)


def oaconvolve(in1, in2, mode="full", axes=None):
    """Convolve two N-dimensional arrays, as :func:`scipy.signal.oaconvolve`.

    SciPy's overlap-add and FFT convolutions differ only in speed and
    rounding; this one runs on convkit's chosen backend, like
    :func:`fftconvolve`.

    Parameters
    ----------
    in1, in2 : array_like
        The inputs, with the same number of dimensions.
    mode : {"full", "valid", "same"}
        The output size, as in SciPy.
    axes : int, sequence of int or None
        Axes to convolve over (default: all); the others broadcast.

    Returns
    -------
    numpy.ndarray
        As :func:`fftconvolve`.

    Examples
    --------
    >>> from convkit.compat import signal
    >>> signal.oaconvolve([1.0, 2.0, 3.0], [0.0, 1.0, 0.5], "same").round(12) + 0.0
    array([1. , 2.5, 4. ])
    """
    return _frequency_method(in1, in2, mode, axes, True, _scipy_oaconvolve)


def _direct(volume, kernel, mode, operation, original):
    """SciPy's direct method: the dtype of NumPy's promotion, exact sums of integers.

    A problem whose working set convkit refuses on the chosen backend runs in SciPy,
    whose direct method needs little more than the output."""
    dtype = np.result_type(volume, kernel)
    terms = min(volume.size, kernel.size)
    try:
        if volume.size and kernel.size and computed_by_convkit(volume, kernel):
            if dtype.kind in "fc" and dtype.itemsize >= 4:
                output = operation(volume, kernel, mode).astype(dtype, copy=False)
                return exact_where_integral(output, volume, kernel, terms)
            if dtype.kind in "iu":
                bound = largest_magnitude(volume) * largest_magnitude(kernel) * terms
                if exact_as_integers(bound, dtype):
                    return np.rint(operation(volume, kernel, mode)).astype(dtype)
    except WorkingSetTooLargeError:
        pass
    return original(volume, kernel, mode, method="direct")


def convolve(in1, in2, mode="full", method="auto"):
    """Convolve two N-dimensional arrays, as :func:`scipy.signal.convolve`.

    Parameters
    ----------
    in1, in2 : array_like
        The inputs, with the same number of dimensions.
    mode : {"full", "valid", "same"}
        The output size, as in SciPy.
    method : {"auto", "direct", "fft"}
        SciPy's choice of result type: ``"fft"`` rounds integer results
        and warns when the first output is not finite; ``"direct"`` keeps
        NumPy's promotion of the inputs (integers stay integers, exact);
        ``"auto"`` picks as :func:`choose_conv_method` does.  Either way
        the values come from convkit's chosen backend.

    Returns
    -------
    numpy.ndarray
        SciPy's shape and dtype; 0-d inputs multiply.

    Examples
    --------
    >>> from convkit.compat import signal
    >>> signal.convolve([3, 4, 5, 6, 5, 4], [1, 2, 3])
    array([ 3, 10, 22, 28, 32, 32, 23, 12])
    """
    volume = np.asarray(in1)
    kernel = np.asarray(in2)
    if volume.ndim == kernel.ndim == 0:
        return volume * kernel
    if volume.ndim != kernel.ndim:
        raise ValueError("volume and kernel should have the same dimensionality")
    if _signaltools._inputs_swap_needed(mode, volume.shape, kernel.shape):
        volume, kernel = kernel, volume
    if method == "auto":
        method = _scipy_choose_conv_method(volume, kernel, mode=mode)
    if method == "fft":
        if not computed_by_convkit(volume, kernel):
            return _scipy_convolve(volume, kernel, mode, method="fft")
        output = fftconvolve(volume, kernel, mode=mode)
        dtype = np.result_type(volume, kernel)
        if dtype.kind in "iu":
            output = np.rint(output)
        first = output.reshape(-1)[0]
        if np.isnan(first) or np.isinf(first):
            warnings.warn(
                "Use of fft convolution on input with NAN or inf results in NAN or inf output. "
                "Consider using method='direct' instead.",
                category=RuntimeWarning,
                stacklevel=2,
            )
        return output.astype(dtype)
    if method == "direct":
        return _direct(volume, kernel, mode, convolve_nd, _scipy_convolve)
    raise ValueError("Acceptable method flags are 'auto', 'direct', or 'fft'.")


def correlate(in1, in2, mode="full", method="auto"):
    """Cross-correlate two N-dimensional arrays, as :func:`scipy.signal.correlate`.

    Parameters
    ----------
    in1, in2 : array_like
        The inputs, with the same number of dimensions.
    mode : {"full", "valid", "same"}
        The output size, as in SciPy.
    method : {"auto", "direct", "fft"}
        As for :func:`convolve`.

    Returns
    -------
    numpy.ndarray
        SciPy's shape and dtype; 0-d inputs give ``in1 * conj(in2)``.

    Examples
    --------
    >>> from convkit.compat import signal
    >>> signal.correlate([1, 2, 3], [0, 1, 2])
    array([2, 5, 8, 3, 0])
    """
    in1 = np.asarray(in1)
    in2 = np.asarray(in2)
    if in1.ndim == in2.ndim == 0:
        return in1 * (np.conj(in2) if in2.dtype.kind == "c" else in2)
    if in1.ndim != in2.ndim:
        raise ValueError("in1 and in2 should have the same dimensionality")
    if mode not in _MODES:
        raise ValueError("Acceptable mode flags are 'valid', 'same', or 'full'.")
    if method in ("fft", "auto"):
        return convolve(in1, _signaltools._reverse_and_conj(in2, np), mode, method)
    if method == "direct":
        return _direct(in1, in2, mode, correlate_nd, _scipy_correlate)
    raise ValueError("Acceptable method flags are 'auto', 'direct', or 'fft'.")


def _two_dimensional(in1, in2, mode, boundary, fillvalue, operation, original, name):
    """convolve2d and correlate2d: SciPy's checks, result dtype and exact integer sums."""
    in1 = np.asarray(in1)
    in2 = np.asarray(in2)
    if not in1.ndim == in2.ndim == 2:
        raise ValueError(f"{name} inputs must both be 2-D arrays")
    swapped = _signaltools._inputs_swap_needed(mode, in1.shape, in2.shape)
    if swapped:
        in1, in2 = in2, in1
    _signaltools._valfrommode(mode)
    _signaltools._bvalfromboundary(boundary)
    given = (in2, in1) if swapped else (in1, in2)
    if not (in1.size and in2.size and computed_by_convkit(in1, in2)):
        return original(*given, mode, boundary, fillvalue)
    # SciPy's own call on 1x1 operands of the same dtypes: its result dtype, and its error
    # or warning for a fill value that does not suit them.
    dtype = original(in1[:1, :1], in2[:1, :1], "full", boundary, fillvalue).dtype
    extension = _BOUNDARIES[boundary]
    fill = fillvalue if extension == "fill" else 0
    if dtype.kind != "c":
        fill = np.real(fill)  # SciPy's probe above warned, or refused, as it does
    if dtype.kind in "iu":
        # SciPy converts the fill value to the result dtype first: 2.7 fills with 2.
        with np.errstate(invalid="ignore", over="ignore"):
            fill = np.asarray(fill).astype(dtype).item()
    if operation is correlate_nd and mode == "same" and any(n % 2 == 0 for n in in2.shape):
        operation = _correlate2d_same
    try:
        if dtype.kind in "fc" and dtype.itemsize >= 4:
            output = operation(in1, in2, mode, boundary=extension, fillvalue=fill)
            output = output.astype(dtype, copy=False)
            output = exact_where_integral(output, in1, in2, in2.size, np.asarray(fill).item())
        elif dtype.kind in "iu":
            reach = max(largest_magnitude(in1), abs(int(np.real(fill))))
            if not exact_as_integers(reach * largest_magnitude(in2) * in2.size, dtype):
                return original(*given, mode, boundary, fillvalue)
            output = np.rint(operation(in1, in2, mode, boundary=extension, fillvalue=fill))
            output = output.astype(dtype)
        else:
            return original(*given, mode, boundary, fillvalue)
    except WorkingSetTooLargeError:
        # SciPy's direct method needs little more than the output.
        return original(*given, mode, boundary, fillvalue)
    if swapped and operation is not convolve_nd:
        output = output[::-1, ::-1]
    return output


def _correlate2d_same(in1, in2, mode, boundary, fillvalue):
    """correlate2d's "same" mode: for an even kernel length m it keeps the outputs from
    m // 2 of "full" on, one later than correlate's "same" (which starts at (m - 1) // 2)."""
    full = correlate_nd(in1, in2, "full", boundary=boundary, fillvalue=fillvalue)
    rows, columns = in2.shape[0] // 2, in2.shape[1] // 2
    return full[rows : rows + in1.shape[0], columns : columns + in1.shape[1]]


def convolve2d(in1, in2, mode="full", boundary="fill", fillvalue=0):
    """Convolve two 2-D arrays, as :func:`scipy.signal.convolve2d`.

    Parameters
    ----------
    in1, in2 : array_like
        Two 2-D arrays.
    mode : {"full", "valid", "same"}
        The output size, as in SciPy.
    boundary : {"fill", "wrap", "symm"}
        How ``in1`` continues past its edges (SciPy's aliases "pad",
        "circular" and "symmetric" too).
    fillvalue : scalar
        The value outside ``in1`` with ``boundary="fill"``.

    Returns
    -------
    numpy.ndarray
        SciPy's shape and dtype (NumPy's promotion of the inputs: integers
        stay integers).

    Examples
    --------
    >>> from convkit.compat import signal
    >>> signal.convolve2d([[1, 2], [3, 4]], [[1, 1]], boundary="wrap", mode="same")
    array([[3, 3],
           [7, 7]])
    """
    return _two_dimensional(
        in1, in2, mode, boundary, fillvalue, convolve_nd, _scipy_convolve2d, "convolve2d"
    )


def correlate2d(in1, in2, mode="full", boundary="fill", fillvalue=0):
    """Cross-correlate two 2-D arrays, as :func:`scipy.signal.correlate2d`.

    Parameters
    ----------
    in1, in2 : array_like
        Two 2-D arrays.
    mode : {"full", "valid", "same"}
        The output size, as in SciPy.
    boundary : {"fill", "wrap", "symm"}
        As for :func:`convolve2d`.
    fillvalue : scalar
        The value outside ``in1`` with ``boundary="fill"``.

    Returns
    -------
    numpy.ndarray
        SciPy's shape and dtype.

    Examples
    --------
    >>> from convkit.compat import signal
    >>> signal.correlate2d([[1, 2], [3, 4]], [[1, 2]])
    array([[ 2,  5,  2],
           [ 6, 11,  4]])
    """
    return _two_dimensional(
        in1, in2, mode, boundary, fillvalue, correlate_nd, _scipy_correlate2d, "correlate2d"
    )


def choose_conv_method(in1, in2, mode="full", measure=False):
    """SciPy's choice between the direct and FFT methods, as :func:`scipy.signal.choose_conv_method`.

    Parameters
    ----------
    in1, in2 : array_like
        The inputs of the convolution.
    mode : {"full", "valid", "same"}
        The output size.
    measure : bool
        Time :func:`convolve` (this module's) with both methods and return
        the faster with the times, as SciPy does with its own.

    Returns
    -------
    str or (str, dict)
        ``"direct"`` or ``"fft"``, SciPy's heuristic, which
        :func:`convolve` with ``method="auto"`` follows for the result
        type; with ``measure``, also the times.

    Examples
    --------
    >>> from convkit.compat import signal
    >>> signal.choose_conv_method([1, 2, 3], [1, 1])
    'direct'
    """
    if not measure:
        return _scipy_choose_conv_method(in1, in2, mode=mode)
    volume = np.asarray(in1)
    kernel = np.asarray(in2)
    times = {
        method: _signaltools._timeit_fast(
            lambda method=method: convolve(volume, kernel, mode=mode, method=method)
        )
        for method in ("fft", "direct")
    }
    return ("fft" if times["fft"] < times["direct"] else "direct"), times
