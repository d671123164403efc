"""Drop-in replacements for SciPy's convolution functions, computed by convkit.

Change one import and keep every call::

    from convkit.compat import signal    # was: from scipy import signal
    from convkit.compat import ndimage   # was: from scipy import ndimage

:mod:`convkit.compat.signal` offers ``fftconvolve``, ``oaconvolve``,
``convolve``, ``correlate``, ``convolve2d``, ``correlate2d`` and
``choose_conv_method``; :mod:`convkit.compat.ndimage` offers ``convolve``,
``correlate``, ``convolve1d``, ``correlate1d``, ``uniform_filter``,
``uniform_filter1d``, ``gaussian_filter`` and ``gaussian_filter1d``.  Each
takes SciPy's arguments, with SciPy's defaults, and gives SciPy's result
type, errors and warnings; the convolutions run on the backend convkit
chooses (or the one named with :func:`convkit.use_backend` /
:func:`convkit.set_backend`).  The differences from SciPy, NaN and inf
staying local first, are listed in the documentation page "Switching from
SciPy".  ``import convkit`` does not import this package, nor SciPy.
"""

from convkit.compat import ndimage, signal

__all__ = ["ndimage", "signal"]
