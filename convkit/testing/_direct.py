"""Direct-definition results in double precision: the oracle of SPEC section 7.

These are written for clarity, not speed, and independently of every backend:
``convolve_nd`` by shift-and-add over the elements of the second input,
``conv`` by summing, for each kernel tap, the products at the input positions
that exist.  Both accumulate in float64 / complex128, so their own rounding
is far below any backend's tolerance.
"""

from __future__ import annotations

import itertools

import numpy as np

from convkit._problems import ConvolveProblem, ConvProblem

__all__ = ["direct_conv", "direct_convolve_nd"]


def _wide(dtype: np.dtype) -> np.dtype:
    return np.dtype(np.complex128 if np.dtype(dtype).kind == "c" else np.float64)


def direct_convolve_nd(problem: ConvolveProblem, absolute: bool = False) -> np.ndarray:
    """The output region of ``problem`` by the direct definition.

    With ``absolute=True`` both inputs are replaced by their absolute values
    first (``|in1| (*) |in2|``, the scale of the rounding error bound).
    """
    wide = _wide(problem.dtype)
    first = problem.in1.astype(wide)
    second = problem.in2.astype(wide)
    if absolute:
        first, second = np.abs(first), np.abs(second)
    full = np.zeros(problem.full_shape, dtype=wide if not absolute else np.float64)
    convolved = problem.axes
    ranges = [range(second.shape[axis]) if axis in convolved else [None] for axis in range(second.ndim)]
    for offset in itertools.product(*ranges):
        target, source = [], []
        for axis, j in enumerate(offset):
            if j is None:
                target.append(slice(None))
                source.append(slice(None))
            else:
                target.append(slice(j, j + first.shape[axis]))
                source.append(slice(j, j + 1))
        with np.errstate(invalid="ignore", over="ignore"):
            full[tuple(target)] += first * second[tuple(source)]
    return full[problem.output_slices]


def direct_conv(problem: ConvProblem, absolute: bool = False) -> np.ndarray:
    """The result of a normalized conv problem by the direct definition.

    With ``absolute=True`` the inputs are replaced by their absolute values.
    """
    wide = _wide(problem.dtype)
    data = problem.input.astype(wide)
    filters = problem.filters.astype(wide)
    if absolute:
        data, filters = np.abs(data), np.abs(filters)
    channels = data.shape[1]
    filter_count = filters.shape[0]
    group_channels = channels // problem.groups
    group_filters = filter_count // problem.groups
    output = np.zeros(problem.output_shape, dtype=np.float64 if absolute else wide)
    spatial_in = data.shape[2:]
    for position in itertools.product(*(range(n) for n in problem.output_shape[2:])):
        for tap in itertools.product(*(range(k) for k in filters.shape[2:])):
            source = []
            for axis, (o, k) in enumerate(zip(position, tap)):
                index = o * problem.stride[axis] - problem.padding[axis][0] + k * problem.dilation[axis]
                if not 0 <= index < spatial_in[axis]:
                    break
                source.append(index)
            else:
                for f in range(filter_count):
                    group = f // group_filters
                    channel_slice = slice(group * group_channels, (group + 1) * group_channels)
                    # (N, Cg) . (Cg,) -> (N,): one tap's products summed over the group's channels.
                    with np.errstate(invalid="ignore", over="ignore"):
                        output[(slice(None), f, *position)] += (
                            data[(slice(None), channel_slice, *source)]
                            * filters[(f, slice(None), *tap)]
                        ).sum(axis=1)
    return output
