"""Keep every method's intermediate values inside the dtype's range.

A result can be finite while the values a method computes on the way to it
are not: an FFT of ``n`` values of size up to ``M`` reaches ``n * M``,
Winograd's transforms add up patches before they multiply, and a direct sum
runs through ``|in1| (*) |in2|``.  Near the top of the range (float32 inputs
near 1e38, float64 near 1e307) these overflow to inf, and the result turns
into inf and NaN although the true one is finite.

Multiplying by a power of two changes only the exponent, so it is exact.  The
core measures the largest magnitude of each operand (a ``max`` and a ``min``
pass over a large operand, no temporary; cheaper than the finiteness check),
and only when the bound below could come near the largest finite value does
it hand the backend ``in1 * 2**-a`` and ``in2 * 2**-b`` and multiply the
result by ``2**(a + b)``.  That last step is exact too, and gives inf exactly
where the result itself does not fit the dtype.  NaN and inf pass through the
scaling unchanged, so the backend keeps them local as before.

The bound, ``2**growth * max|in1| * max|in2|``, holds for direct, Winograd and
FFT methods alike: a transform of an operand sums at most its ``points``
values; the products of two spectra, summed over the channels of a group,
reach ``channels * points1 * points2`` times the two largest magnitudes; an
inverse transform sums at most its length, the full result's extent with each
axis at most doubled for a fast length.  Direct sums stay below ``channels *
points2``, Winograd F(2x2, 3x3) below 9 times that and F(4x4, 3x3) below
2**12 times that (its input transform's rows sum to at most 7 in magnitude,
its filter transform's to 28/15, its output transform's to 89/8).  Four more bits cover
complex products and rounding.  Each operand alone is also kept
``2**growth`` below the top, for the transforms of one operand.  With the
usual magnitudes all of this is far from the limit and nothing is scaled.

Scaling down moves the subnormal range up with it.  A scaled value is off by
at most the smallest subnormal ``s`` (a nonzero value that would vanish
becomes ``s`` with its sign, so that ``inf * value`` stays inf, not NaN), so
each term ``x * w`` is off by at most ``2**a * s * |w| + 2**b * s * |x| +
2**(a + b) * s`` in the caller's units.  The shifts are the least the bound
needs, taken first from the larger operand; with operands near the top of the
range they are a few dozen bits, and only values far below the largest ones
(float32 below about 1e-30) notice.
"""

from __future__ import annotations

import math

import numpy as np

from convkit._geometry import dilated_extent
from convkit._problems import ConvolveProblem, Problem

__all__ = ["growth_bits", "into_range", "range_shifts", "restore_range", "scaled_copy_bytes"]

# Complex products (a sum of two real ones) and rounding.
_SPARE_BITS = 4
# Operands up to this many values are measured with one temporary (|values|), larger
# ones with a max and a min pass over each real part and none.
_SMALL = 4096


def growth_bits(problem: Problem) -> int:
    """``g`` with every intermediate below ``2**g * max|in1| * max|in2|``, for any method."""
    if problem.operation in ("conv_grad_input", "conv_grad_filters"):
        from convkit._adjoint import lowered_problems

        # A gradient computes what the forward problems it lowers to compute.
        return max((growth_bits(part) for part in lowered_problems(problem)), default=0)
    if isinstance(problem, ConvolveProblem):
        first = math.prod([problem.in1.shape[axis] for axis in problem.axes])
        second = math.prod([problem.in2.shape[axis] for axis in problem.axes])
        length = math.prod([problem.full_shape[axis] for axis in problem.axes])
        summed = 1
    else:
        first = math.prod(problem.input.shape[2:])
        second = math.prod(problem.filters.shape[2:])
        length = math.prod(
            [
                size + before + after + dilated_extent(k, dilation) - 1
                for size, (before, after), dilation, k in zip(
                    problem.input.shape[2:],
                    problem.padding,
                    problem.dilation,
                    problem.filters.shape[2:],
                )
            ]
        )
        summed = problem.filters.shape[1]
    # (n - 1).bit_length() is ceil(log2(n)), exactly, for every n >= 1.
    return (summed * first * second * length - 1).bit_length() + problem.spatial_dims + _SPARE_BITS


def _parts(array: np.ndarray) -> list[np.ndarray]:
    """The real numbers of ``array`` as views: itself, or a complex array's two parts."""
    return [array.real, array.imag] if array.dtype.kind == "c" else [array]


def _exponent(array: np.ndarray) -> int | None:
    """The least ``e`` with every finite ``|value| < 2**e``; None when none is finite and nonzero.

    Each real part is measured on its own: a complex value's modulus can overflow to inf
    although both of its parts are finite.  The modulus is under twice the larger part: one
    more bit.
    """
    largest = 0.0
    for part in _parts(array):
        if part.size <= _SMALL:
            # Two calls of NumPy instead of four: on small arrays the calls cost more than the pass.
            extreme = float(np.abs(part).max())
        else:
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
            smallest = np.finfo(target.dtype).smallest_subnormal
            target[vanished] = np.copysign(smallest, values[vanished])
    result.flags.writeable = False
    return result


def range_shifts(problem: Problem) -> tuple[int, int]:
    """The powers of two ``(a, b)`` that ``in1`` and ``in2`` are divided by: (0, 0) unless needed."""
    if problem.on_device:
        return 0, 0
    return _shifts(problem)


def scaled_copy_bytes(problem: Problem, shifts: tuple[int, int]) -> int:
    """Bytes of the scaled copies that ``shifts`` make (counted toward the memory limit)."""
    return sum(operand.nbytes for operand, shift in zip(problem.operands, shifts) if shift)


def into_range(problem: Problem, shifts: tuple[int, int] | None = None) -> tuple[Problem, int]:
    """The problem to hand the backend, and the power of two its result needs.

    Parameters
    ----------
    problem : ConvProblem or ConvolveProblem
        A normalized problem.
    shifts : (int, int), optional
        What :func:`range_shifts` gave for it (measured again when omitted).

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
    >>> big = np.full(8, 1e38, np.float32)
    >>> problem = normalize_convolve(big, np.ones(3, np.float32))
    >>> scaled, shift = into_range(problem)
    >>> shift, bool(scaled.in1[0] == np.float32(1e38) / 2**shift)
    (13, True)
    >>> into_range(normalize_convolve(np.ones(8), np.ones(3)))[1]
    0
    """
    first_shift, second_shift = range_shifts(problem) if shifts is None else shifts
    if first_shift == second_shift == 0:
        return problem, 0
    first, second = problem.operands
    return (
        problem.with_operands(_scaled(first, first_shift), _scaled(second, second_shift)),
        first_shift + second_shift,
    )


def restore_range(result: np.ndarray, shift: int) -> np.ndarray:
    """``result * 2**shift`` in place (exact; inf where the value does not fit)."""
    if shift:
        for values in _parts(result):
            with np.errstate(over="ignore"):
                np.ldexp(values, shift, out=values)
    return result
