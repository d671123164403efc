"""The rounding-error bound every backend's result must meet (docs/conformance.rst).

Elementwise, against the float64 direct-definition result ``r`` and the scale
``s = |in1| (*) |in2|`` (the same operation on absolute values)::

    direct methods:  |y - r| <= tol(dtype, K) * s + tiny
    FFT methods:     |y - r| <= tol(dtype, K) * s
                                + eps(dtype) * log2(n) * (s + S) + tiny

where ``K`` is the number of terms in each output's sum, ``tol(dtype, K) =
max(base, 4 * eps * sqrt(K))`` with base 1e-5 for float32/complex64 and 1e-13
for float64/complex128, ``eps`` the dtype's machine epsilon and ``n`` the
number of points of the transform (the full result's size over the convolved
axes) and ``S`` the largest scale over every position the transform computes:
the largest scale of the full result for convolve_nd, and for conv the
largest scale of the same layer with stride 1 (a "same" or "valid" region
and a strided layer keep only some of the positions, but the rounding of all
of them spreads).  The FFT term is uniform because an FFT
spreads its rounding over all outputs; on SciPy's float32 FFT the worst measured error is about 0.1 of it.
Non-finite outputs are not bounded: they must match exactly.

``nan_policy="interpolate"`` divides two results of the backend, each held to
the bound above; :func:`quotient_bound` carries them through the division.
"""

from __future__ import annotations

import math

import numpy as np

from convkit.plugin import ConvolveProblem, ConvProblem, Problem, dilated_extent

__all__ = [
    "BASE_TOLERANCE",
    "error_bound",
    "quotient_bound",
    "terms_per_output",
    "transform_points",
]

BASE_TOLERANCE = {"float32": 1e-5, "float64": 1e-13}
_TINY = {"float32": 1e-30, "float64": 1e-300}


def _real_name(dtype: np.dtype) -> str:
    return "float32" if np.dtype(dtype) in (np.float32, np.complex64) else "float64"


def terms_per_output(problem: Problem) -> int:
    """The most products any output sums (``K`` of the bound)."""
    if isinstance(problem, ConvProblem):
        return max(1, math.prod(problem.filters.shape[1:]))
    return max(1, math.prod(min(problem.in1.shape[a], problem.in2.shape[a]) for a in problem.axes))


def transform_points(problem: Problem) -> int:
    """Points of the transform an FFT method needs (``n`` of the bound)."""
    if isinstance(problem, ConvolveProblem):
        return math.prod(problem.full_shape[a] for a in problem.axes)
    return math.prod(
        size + before + after + dilated_extent(k, dilation) - 1
        for size, (before, after), dilation, k in zip(
            problem.input.shape[2:], problem.padding, problem.dilation, problem.kernel_shape
        )
    )


def error_bound(
    problem: Problem, scale: np.ndarray, method: str, spread_scale: float | None = None
) -> np.ndarray:
    """The elementwise bound on ``|y - r|`` for ``problem`` solved by ``method``.

    Parameters
    ----------
    problem : ConvProblem or ConvolveProblem
        The normalized problem.
    scale : numpy.ndarray
        ``|in1| (*) |in2|`` from the direct definition (float64).
    method : {"direct", "fft"}
        What the backend declared through ``Backend.method``.
    spread_scale : float, optional
        ``S`` of the FFT term: the largest scale over the positions the
        transform computes; default ``scale.max()``.

    Examples
    --------
    >>> import numpy as np
    >>> from convkit.plugin import normalize_convolve
    >>> from convkit.testing import error_bound
    >>> problem = normalize_convolve(np.ones(4, np.float32), np.ones(3, np.float32))
    >>> error_bound(problem, np.array([1.0, 2.0]), "direct")
    array([1.e-05, 2.e-05])
    """
    if method not in ("direct", "fft"):
        raise ValueError(f"method must be 'direct' or 'fft', got {method!r}")
    name = _real_name(problem.dtype)
    eps = float(np.finfo(name).eps)
    tolerance = max(BASE_TOLERANCE[name], 4 * eps * math.sqrt(terms_per_output(problem)))
    bound = tolerance * scale + _TINY[name]
    if method == "fft":
        spread = eps * math.log2(max(transform_points(problem), 2))
        if spread_scale is None:
            spread_scale = float(scale.max()) if scale.size else 0.0
        bound = bound + spread * (scale + spread_scale)
    return bound


def quotient_bound(
    quotient: np.ndarray,
    denominator: np.ndarray,
    numerator_bound: np.ndarray,
    denominator_bound: np.ndarray,
    dtype: np.dtype,
) -> np.ndarray:
    """The elementwise bound on ``|y - N / D|`` for ``y`` the division, in ``dtype``,
    of a backend's ``N'`` by its ``D'``.

    Each of ``N'`` and ``D'`` is a convolution the backend computes, within
    its own bound: ``|N' - N| <= bN``, ``|D' - D| <= bD`` (from
    :func:`error_bound`).  With ``q = N / D``,

    ``N' / D' - q = ((N' - N) - q (D' - D)) / D'`` and ``|D'| >= |D| - bD``, so
    ``|N' / D' - q| <= E = (bN + |q| bD) / (|D| - bD)``, and the division in
    ``dtype`` adds at most ``c eps |N' / D'| <= c eps (|q| + E)``, with ``c = 4``
    (a complex division rounds a few times; a real one once).  The bound is
    ``E (1 + c eps) + c eps |q| + tiny``.

    It is claimed only where the denominator is well away from 0, ``|D| >= 2
    bD`` (``D'`` then keeps at least half of ``D``); elsewhere a tiny
    ``D`` amplifies the rounding of both convolutions without limit, and the
    bound is infinite.  The kit's own cases keep ``|D|`` away from 0 wherever
    it is not exactly 0 (non-negative or small-integer kernels).

    Parameters
    ----------
    quotient, denominator : numpy.ndarray
        ``q = N / D`` and ``D`` from the direct definition (float64 or complex128).
    numerator_bound, denominator_bound : numpy.ndarray
        ``bN`` and ``bD``: :func:`error_bound` of the two convolutions.
    dtype : numpy.dtype
        The dtype the backend computes and divides in.

    Examples
    --------
    >>> import numpy as np
    >>> from convkit.testing import quotient_bound
    >>> bound = quotient_bound(
    ...     np.array([2.0, 2.0]), np.array([1.0, 1e-5]), np.array([1e-5, 1e-5]),
    ...     np.array([1e-5, 1e-5]), np.float32)
    >>> bool(3e-5 < bound[0] < 3.2e-5), bool(np.isinf(bound[1]))
    (True, True)
    """
    name = _real_name(dtype)
    division = 4 * float(np.finfo(name).eps)
    size = np.abs(quotient)
    room = np.abs(denominator) - denominator_bound
    with np.errstate(divide="ignore", invalid="ignore"):
        propagated = (numerator_bound + size * denominator_bound) / room
    bound = propagated * (1 + division) + division * size + _TINY[name]
    return np.where(np.abs(denominator) >= 2 * denominator_bound, bound, np.inf)
