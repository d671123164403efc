"""Outputs whose sums have no terms: exactly zero, whatever the method.

Along one spatial axis of a conv, output ``o`` reads the input positions
``o * stride - pad_before + dilation * j`` for the taps ``j < k``.  When none
of them lies inside the input (the window lies wholly in padding, or the
input falls between two dilated taps), the output's sum has no terms in any
other axis either, so it is 0 by definition.  A direct method gives that 0;
a method that mixes all values (FFT) leaves rounding noise there, which no
relative error bound allows since the exact value is 0.  The geometry alone
says where these outputs are: one boolean per output index per axis, and an
output has no terms when any of its axes says so.  :func:`zero_outputs_without_terms`
writes the zeros after the backend has returned.

``convolve_nd`` has no such outputs: along a convolved axis, full output
``i`` sums ``in1[j] * in2[i - j]`` over ``max(0, i - m + 1) <= j <= min(i, M - 1)``,
never empty for ``0 <= i <= M + m - 2``; "same" and "valid" are parts of
"full", and a broadcast axis pairs every index with one of the other operand.
"""

from __future__ import annotations

import numpy as np

from convkit._geometry import dilated_extent
from convkit._problems import ConvProblem, Problem

__all__ = ["outputs_without_terms", "zero_outputs_without_terms"]


def _axis_without_terms(
    size: int, output_size: int, kernel: int, stride: int, dilation: int, pad_before: int
) -> np.ndarray:
    """Per output index along one axis: whether no tap lands inside the input."""
    first_position = np.arange(output_size, dtype=np.int64) * stride - pad_before
    # The first tap at or after position 0: j = ceil(-first_position / dilation), at least 0.
    first_tap = np.maximum(0, -(first_position // dilation))
    return (first_tap >= kernel) | (first_position + dilation * first_tap >= size)


def outputs_without_terms(problem: Problem) -> list[tuple[int, np.ndarray]]:
    """Where the direct definition's sum is empty, per axis of the result.

    Parameters
    ----------
    problem : ConvProblem or ConvolveProblem
        A normalized problem.

    Returns
    -------
    list of (int, numpy.ndarray)
        ``(axis, mask)`` for each axis of the result that has such outputs:
        the output at index ``i`` of ``axis`` has no terms where ``mask[i]``.
        Empty when every output has terms (always for ``convolve_nd``).

    Examples
    --------
    >>> import numpy as np
    >>> from convkit.plugin import normalize_conv
    >>> problem = normalize_conv(np.ones((1, 1, 1, 3)), np.ones((1, 1, 2, 1)), border_mode="full",
    ...                          filter_dilation=2)
    >>> outputs_without_terms(problem)  # the middle row falls between the dilated taps
    [(2, array([False,  True, False]))]
    """
    if not isinstance(problem, ConvProblem) or problem.boundary != "fill":
        return []  # a boundary rule gives every padded position a sample
    found = []
    for axis, (size, kernel, stride, dilation, (pad_before, pad_after)) in enumerate(
        zip(
            problem.input.shape[2:],
            problem.kernel_shape,
            problem.stride,
            problem.dilation,
            problem.padding,
        )
    ):
        reach = dilated_extent(kernel, dilation) - 1
        if pad_before <= reach and pad_after <= reach and size >= dilation:
            # The usual case, decided without arrays: every window's first tap is at most
            # size - 1 and its last at least 0, and taps that straddle the input cannot
            # jump over it when it is at least one dilation long.
            continue
        mask = _axis_without_terms(
            size, problem.output_shape[2 + axis], kernel, stride, dilation, pad_before
        )
        if mask.any():
            found.append((2 + axis, mask))
    return found


def zero_outputs_without_terms(problem: Problem, result: np.ndarray) -> None:
    """Set, in place, the outputs of ``result`` whose sums have no terms to exactly 0."""
    for axis, mask in outputs_without_terms(problem):
        index = [slice(None)] * result.ndim
        index[axis] = mask
        result[tuple(index)] = 0
