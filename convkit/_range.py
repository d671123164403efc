"""Keep every method's intermediate values inside the dtype's range.

A result can be finite while the values a method computes on the way to it
are not: an FFT of ``n`` values of size up to ``M`` reaches ``n * M``,
Winograd's transforms add up patches before they multiply, and a direct sum
runs through ``|in1| (*) |in2|``.  Near the top of the range (float32 inputs
near 1e38, float64 near 1e307) these overflow to inf, and the result turns
into inf and NaN although the true one is finite.

Multiplying by a power of two changes only the exponent, so it is exact.  The
core looks at the largest magnitude of each operand (one ``max`` and one
``min`` pass, cheaper than the finiteness check), and only when the bound
below says that some intermediate could come near the largest finite value
does it hand the backend ``in1 * 2**-a`` and ``in2 * 2**-b`` and multiply the
result by ``2**(a + b)``.  That last step is exact too, and gives inf exactly
where the result itself does not fit the dtype.

The bound, in powers of two (``growth``), is one that any method meets: each
transform of an operand sums at most its ``points`` values, the products of
two spectra summed over the channels of a group reach at most
``channels * points1 * points2`` times the two largest magnitudes, and an
inverse transform sums at most its length, the full result's extent with
each axis at most doubled for a fast length.  Direct and Winograd methods stay far
below it (Winograd F(2x2, 3x3) reaches 9 times the direct sum).  Four more
bits cover complex products and rounding.  With the usual magnitudes this is
far from the limit and nothing is scaled.

Scaling down moves the range of subnormal numbers up with it: a value below
``2**a`` times the smallest subnormal loses its low bits (a nonzero value
that would vanish becomes the smallest subnormal of its sign, so that
``inf * value`` stays inf, not NaN).  The shifts are the least that the bound
needs, shared so that the two operands end up of similar size; they reach
normal numbers only for an operand that spans most of the dtype's exponent range
beside values near its top, where the absolute error stays below
``terms * 2**(a + b)`` times the smallest subnormal.
"""

from __future__ import annotations

import math

import numpy as np

from convkit._problems import ConvolveProblem, ConvProblem, Problem

__all__ = ["growth_bits", "into_range", "restore_range"]

# Complex products (a sum of two real ones) and rounding.
_SPARE_BITS = 4


def _log2_ceil(count: int) -> int:
    return max(0, math.ceil(math.log2(count))) if count > 1 else 0


def growth_bits(problem: Problem) -> int:
    """``g`` with every intermediate below ``2**g * max|in1| * max|in2|``, for any method."""
    if isinstance(problem, ConvolveProblem):
        first = math.prod(problem.in1.shape[axis] for axis in problem.axes)
        second = math.prod(problem.in2.shape[axis] for axis in problem.axes)
        length = math.prod(problem.full_shape[axis] for axis in problem.axes)
        summed = 1
    else:
        first = math.prod(problem.input.shape[2:])
        second = math.prod(problem.kernel_shape)
        length = math.prod(
            size + before + after + dilation * (k - 1)
            for size, (before, after), dilation, k in zip(
                problem.input.shape[2:], problem.padding, problem.dilation, problem.kernel_shape)
        )
        summed = problem.filters.shape[1]
    return (_log2_ceil(summed) + _log2_ceil(first) + _log2_ceil(second) + _log2_ceil(length)
            + problem.spatial_dims + _SPARE_BITS)


def _parts(array: np.ndarray) -> list[np.ndarray]:
    """The real numbers of ``array`` as views: itself, or a complex array's two parts."""
    return [array.real, array.imag] if array.dtype.kind == "c" else [array]


def _exponent(array: np.ndarray) -> int | None:
    """The least ``e`` with every finite ``|value| < 2**e``; None when none is finite and nonzero.

    A complex value's modulus is under twice its larger part: one more bit.
    """
    largest = 0.0
    for part in _parts(array):
        if part.size == 0:
            continue
        with np.errstate(invalid="ignore"):
            extreme = max(float(part.max()), -float(part.min()))
        if not math.isfinite(extreme):
            finite = part[np.isfinite(part)]
            extreme = float(np.abs(finite).max()) if finite.size else 0.0
        largest = max(largest, extreme)
    if largest == 0.0:
        return None
    return math.frexp(largest)[1] + (array.dtype.kind == "c")


def _shifts(problem: Problem) -> tuple[int, int]:
    """``(a, b)``: the least down-shifts of the operands that keep the bound in range."""
    top = np.finfo(problem.dtype).maxexp
    growth = growth_bits(problem)
    first, second = (_exponent(operand) for operand in problem.operands)
    if first is None or second is None:
        return 0, 0  # every term is zero or non-finite: nothing finite can overflow
    first_shift = max(0, first + growth - top)
    second_shift = max(0, second + growth - top)
    first, second = first - first_shift, second - second_shift
    excess = first + second + growth - top
    if excess > 0:
        # Bring the larger operand down towards the smaller one, then share the rest.
        larger_alone = min(excess, abs(first - second))
        rest = excess - larger_alone
        larger, smaller = larger_alone + (rest + 1) // 2, rest // 2
        if first >= second:
            first_shift, second_shift = first_shift + larger, second_shift + smaller
        else:
            first_shift, second_shift = first_shift + smaller, second_shift + larger
    return first_shift, second_shift


def _scaled(array: np.ndarray, shift: int) -> np.ndarray:
    """``array * 2**-shift``, read-only, nonzero values kept nonzero."""
    if shift == 0:
        return array
    result = np.empty_like(array)
    for values, target in zip(_parts(array), _parts(result)):
        np.ldexp(values, -shift, out=target)
        vanished = (target == 0) & (values != 0)
        if vanished.any():
            target[vanished] = np.copysign(np.finfo(target.dtype).smallest_subnormal, values[vanished])
    result.flags.writeable = False
    return result


def into_range(problem: Problem) -> tuple[Problem, int]:
    """The problem to hand the backend, and the power of two its result needs.

    Parameters
    ----------
    problem : ConvProblem or ConvolveProblem
        A normalized problem.

    Returns
    -------
    (problem, int)
        ``problem`` itself and 0 when no intermediate can come near the
        largest finite value (or the operands are on a device); otherwise the
        same geometry with operands scaled down by powers of two, and the
        exponent that :func:`restore_range` multiplies the result by.

    Examples
    --------
    >>> import numpy as np
    >>> from convkit.plugin import normalize_convolve
    >>> problem = normalize_convolve(np.full(8, 1e38, np.float32), np.ones(3, np.float32), "full", None)
    >>> scaled, shift = into_range(problem)
    >>> shift, bool(scaled.in1[0] == np.float32(1e38) / 2**shift)
    (14, True)
    >>> into_range(normalize_convolve(np.ones(8), np.ones(3), "full", None))[1]
    0
    """
    if problem.on_device:
        return problem, 0
    first_shift, second_shift = _shifts(problem)
    if first_shift == second_shift == 0:
        return problem, 0
    first, second = problem.operands
    return (problem.with_operands(_scaled(first, first_shift), _scaled(second, second_shift)),
            first_shift + second_shift)


def restore_range(result: np.ndarray, shift: int) -> np.ndarray:
    """``result * 2**shift`` in place (exact; inf where the value does not fit)."""
    if shift:
        for values in _parts(result):
            with np.errstate(over="ignore"):
                np.ldexp(values, shift, out=values)
    return result
