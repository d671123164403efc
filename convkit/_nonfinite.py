"""Keep NaN and inf local for methods that mix all values (FFT).

The direct definition of a convolution output is a sum of products
``a[k] * b[j]`` over the terms that exist (both indices inside the arrays).
A non-finite value therefore affects exactly the outputs whose sum contains
it, and the IEEE rules decide what it becomes there: NaN from a NaN term,
from ``inf * 0`` or from ``inf + -inf``, else +inf or -inf by sign.

An FFT spreads a NaN over the whole output.  :func:`with_local_nonfinite`
runs the method on the inputs with non-finite values replaced by 0, then
counts, per output, the terms that would be NaN, +inf or -inf by running the
same (bilinear) method on 0/1 indicator arrays in float64, and writes the
non-finite outputs the direct definition would give.  With a few non-finite
values this costs one or two extra runs, and nothing when there are none.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from convkit._problems import Problem

__all__ = ["all_finite", "with_local_nonfinite"]

Compute = Callable[[Problem], np.ndarray]


class _Indicators:
    """0/1 float64 masks of one real operand, built on demand."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values

    def get(self, kind: str) -> np.ndarray | None:
        values = self.values
        mask = {
            "any": lambda: np.ones(values.shape, dtype=bool),
            "nan": lambda: np.isnan(values),
            "inf": lambda: np.isinf(values),
            "+inf": lambda: values == np.inf,
            "-inf": lambda: values == -np.inf,
            "zero": lambda: values == 0,
            "pos": lambda: values > 0,
            "neg": lambda: values < 0,
        }[kind]()
        return mask.astype(np.float64) if mask.any() else None


# For a product term a * b (a from the first operand, b from the second):
# which combinations of the factors' kinds make it NaN, +inf or -inf.
_NAN_TERMS = (("nan", "any"), ("any", "nan"), ("inf", "zero"), ("zero", "inf"))
_POSITIVE_TERMS = (("+inf", "pos"), ("-inf", "neg"), ("pos", "+inf"), ("neg", "-inf"))
_NEGATIVE_TERMS = (("+inf", "neg"), ("-inf", "pos"), ("pos", "-inf"), ("neg", "+inf"))


def _count(
    problem: Problem,
    compute: Compute,
    first: _Indicators,
    second: _Indicators,
    pairs: tuple[tuple[str, str], ...],
) -> np.ndarray | float:
    total: np.ndarray | float = 0.0
    for first_kind, second_kind in pairs:
        first_mask, second_mask = first.get(first_kind), second.get(second_kind)
        if first_mask is not None and second_mask is not None:
            total = total + compute(problem.with_operands(first_mask, second_mask, np.float64))
    return total


def _overlay(
    target: np.ndarray,
    problem: Problem,
    compute: Compute,
    signed_pairs: list[tuple[np.ndarray, np.ndarray, int]],
) -> None:
    """Write the non-finite outputs of one real component into ``target``."""
    nan_count: np.ndarray | float = 0.0
    positive: np.ndarray | float = 0.0
    negative: np.ndarray | float = 0.0
    for first_values, second_values, sign in signed_pairs:
        if all_finite(first_values) and all_finite(second_values):
            continue
        first, second = _Indicators(first_values), _Indicators(second_values)
        nan_count = nan_count + _count(problem, compute, first, second, _NAN_TERMS)
        plus = _count(problem, compute, first, second, _POSITIVE_TERMS)
        minus = _count(problem, compute, first, second, _NEGATIVE_TERMS)
        if sign < 0:
            plus, minus = minus, plus
        positive, negative = positive + plus, negative + minus
    has_nan = np.asarray(nan_count) > 0.5
    has_positive = np.asarray(positive) > 0.5
    has_negative = np.asarray(negative) > 0.5
    target[...] = np.where(has_positive, np.inf, target)
    target[...] = np.where(has_negative, -np.inf, target)
    target[...] = np.where(has_nan | (has_positive & has_negative), np.nan, target)


def all_finite(array: np.ndarray) -> bool:
    """Whether every value of ``array`` is finite, in one pass without a temporary.

    A NaN or an infinity makes the sum non-finite, so a finite sum proves the
    array finite; a non-finite sum (a NaN, an infinity, or an overflow of
    finite values) is settled by the exact elementwise test.

    Parameters
    ----------
    array : numpy.ndarray
        Real or complex values.

    Returns
    -------
    bool
        True when no value is NaN or infinite.

    Examples
    --------
    >>> import numpy as np
    >>> from convkit.plugin import all_finite
    >>> all_finite(np.array([1.0, 2.0])), all_finite(np.array([1.0, np.nan]))
    (True, False)
    >>> all_finite(np.array([3e38, 3e38], dtype=np.float32))  # the sum overflows, the values do not
    True
    """
    with np.errstate(over="ignore", invalid="ignore"):
        total = array.sum()
    return bool(np.isfinite(total)) or bool(np.isfinite(array).all())


def with_local_nonfinite(problem: Problem, compute: Compute) -> np.ndarray:
    """Run ``compute(problem)`` so that NaN and inf stay local.

    Parameters
    ----------
    problem : ConvolveProblem or ConvProblem
        A normalized problem.
    compute : callable
        ``compute(problem) -> ndarray``: the method to protect.  It must be
        bilinear in the two operands and accept float64 operands too (the
        indicator runs are float64).

    Returns
    -------
    numpy.ndarray
        What the direct definition gives: ``compute``'s result at outputs whose
        sums hold only finite terms, the IEEE non-finite value elsewhere.

    Examples
    --------
    >>> import numpy as np, scipy.signal
    >>> from convkit.plugin import with_local_nonfinite, normalize_convolve
    >>> problem = normalize_convolve([1.0, np.nan, 1.0, 1.0, 1.0], [1.0, 1.0])
    >>> def fft(p):
    ...     return scipy.signal.fftconvolve(p.in1, p.in2)[p.output_slices]
    >>> with_local_nonfinite(problem, fft)
    array([ 1., nan, nan,  2.,  2.,  1.])
    """
    first, second = problem.operands
    if all_finite(first) and all_finite(second):
        return compute(problem)
    finite_first = np.where(np.isfinite(first), first, 0).astype(problem.dtype)
    finite_second = np.where(np.isfinite(second), second, 0).astype(problem.dtype)
    result = np.array(compute(problem.with_operands(finite_first, finite_second)), copy=True)
    if np.iscomplexobj(result):
        _overlay(
            result.real,
            problem,
            compute,
            [(first.real, second.real, 1), (first.imag, second.imag, -1)],
        )
        _overlay(
            result.imag,
            problem,
            compute,
            [(first.real, second.imag, 1), (first.imag, second.real, 1)],
        )
    else:
        _overlay(result, problem, compute, [(first, second, 1)])
    return result
