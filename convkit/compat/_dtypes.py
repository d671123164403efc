"""Which operands convkit computes for the drop-ins, and how integer results come back exact."""

from __future__ import annotations

import numpy as np

__all__ = ["computed_by_convkit", "exact_as_integers", "largest_magnitude"]

# Float dtypes convkit computes in (float16 runs as float32); booleans and integers run in
# float64.  longdouble, object and the rest go to SciPy itself.
_FLOATS = frozenset(np.dtype(code) for code in "efdFD")

# Integer results are computed in float64 and rounded: exact while every sum stays far
# inside float64's 53-bit mantissa, with room for an FFT method's rounding (a few ulps of
# the largest sum, far below 0.5 under this bound).
_INTEGER_SAFE = 2**40


def computed_by_convkit(*arrays: np.ndarray) -> bool:
    """Whether convkit takes these operands (booleans, integers, float16/32/64, complex64/128)."""
    return all(a.dtype.kind in "biu" or a.dtype in _FLOATS for a in arrays)


def largest_magnitude(array: np.ndarray) -> int:
    """max |array| of an integer or boolean array, as a Python int (no overflow at the minimum)."""
    if array.size == 0:
        return 0
    return max(abs(int(array.max())), abs(int(array.min())))


def exact_as_integers(bound: int, dtype: np.dtype) -> bool:
    """Whether sums bounded by ``bound`` come back exact through float64 and fit ``dtype``
    (so SciPy's integer arithmetic, which wraps on overflow, gives the same values)."""
    info = np.iinfo(dtype)
    return bound < _INTEGER_SAFE and bound <= min(info.max, -info.min if info.min else info.max)


# Below these bounds every sum of integer-valued products is exact in the dtype, and a
# rounded (FFT) result lies well within 0.5 of it.
_INTEGRAL_SAFE = {np.dtype(np.float64): 2**40, np.dtype(np.float32): 2**18}


def _integral(array: np.ndarray) -> bool:
    """Whether every value of ``array`` is an integer (real and imaginary parts)."""
    if array.dtype.kind in "biu":
        return True
    if array.size == 0:
        return True
    first = array[(0,) * array.ndim]
    if first != np.rint(first):  # the common case, decided at once
        return False
    return bool(np.array_equal(array, np.rint(array)))


def _magnitude(array: np.ndarray) -> float:
    if array.dtype.kind in "biu":
        return float(largest_magnitude(array))
    return float(np.abs(array).max(initial=0))


def exact_where_integral(
    result: np.ndarray, first: np.ndarray, second: np.ndarray, terms: int, fill: complex = 0
) -> np.ndarray:
    """``result`` rounded to integers when the operands (and ``fill``) hold only integers
    small enough that SciPy's direct sums of them are exact.

    SciPy's direct methods then give exact integers; convkit's FFT methods leave rounding
    noise (1e-13 where the answer is 0), which rounding removes.  ``terms`` bounds the
    number of products in one sum.
    """
    limit = _INTEGRAL_SAFE.get(np.dtype(result.real.dtype))
    if limit is None or not (_integral(first) and _integral(second)):
        return result
    if fill != np.round(fill):
        return result
    reach = max(_magnitude(first), abs(fill))
    if reach * _magnitude(second) * terms >= limit:
        return result
    return np.rint(result, out=result if result.flags.writeable else None)
