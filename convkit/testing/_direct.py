"""Direct-definition results in double precision: the oracle of the conformance kit.

These are written for clarity and independently of every backend:
``convolve_nd`` by shift-and-add (one shifted copy of the larger input per
element of the smaller), ``conv`` by gathering, for each kernel tap, the input
positions every output reads, with a mask for the positions outside the input
(so padding adds no terms).  Both accumulate in float64 / complex128, far
below any backend's tolerance.
"""

from __future__ import annotations

import itertools

import numpy as np

from convkit.plugin import ConvolveProblem, ConvProblem

__all__ = ["conv_term_counts", "direct_conv", "direct_convolve_nd"]


def _wide(dtype: np.dtype, absolute: bool) -> np.dtype:
    if absolute:
        return np.dtype(np.float64)
    return np.dtype(np.complex128 if np.dtype(dtype).kind == "c" else np.float64)


def _prepare(first: np.ndarray, second: np.ndarray, dtype: np.dtype, absolute: bool):
    if absolute:
        return np.abs(first).astype(np.float64), np.abs(second).astype(np.float64)
    wide = _wide(dtype, absolute)
    return first.astype(wide), second.astype(wide)


def direct_convolve_nd(problem: ConvolveProblem, absolute: bool = False) -> np.ndarray:
    """The output region of ``problem`` by the direct definition.

    With ``absolute=True`` both inputs are replaced by their absolute values
    (``|in1| (*) |in2|``, the scale of the rounding-error bound).
    """
    first, second = _prepare(problem.in1, problem.in2, problem.dtype, absolute)
    axes = problem.axes
    if np.prod([second.shape[a] for a in axes]) > np.prod([first.shape[a] for a in axes]):
        first, second = second, first  # convolution commutes: shift the larger one
    full = np.zeros(problem.full_shape, dtype=first.dtype)
    ranges = [range(second.shape[axis]) if axis in axes else [None] for axis in range(second.ndim)]
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
    data, filters = _prepare(problem.input, problem.filters, problem.dtype, absolute)
    batch, channels = data.shape[:2]
    filter_count = filters.shape[0]
    groups = problem.groups
    group_channels, group_filters = channels // groups, filter_count // groups
    spatial_out = problem.output_shape[2:]
    grouped = data.reshape(batch, groups, group_channels, *data.shape[2:])
    weights = filters.reshape(groups, group_filters, group_channels, *filters.shape[2:])
    output = np.zeros((batch, groups, group_filters, *spatial_out), dtype=data.dtype)
    for tap in itertools.product(*(range(k) for k in filters.shape[2:])):
        indices, inside = [], np.ones(spatial_out, dtype=bool)
        for axis, k in enumerate(tap):
            position = (
                np.arange(spatial_out[axis]) * problem.stride[axis]
                - problem.padding[axis][0]
                + k * problem.dilation[axis]
            )
            valid = (position >= 0) & (position < data.shape[2 + axis])
            shape = [1] * len(spatial_out)
            shape[axis] = -1
            inside = inside & valid.reshape(shape)
            indices.append(np.clip(position, 0, data.shape[2 + axis] - 1))
        gathered = grouped[(Ellipsis, *np.ix_(*indices))]  # (N, G, Cg, *out)
        with np.errstate(invalid="ignore", over="ignore"):
            products = np.einsum("ngc...,gfc->ngf...", gathered, weights[(Ellipsis, *tap)])
            output += np.where(inside, products, 0)
    return output.reshape(problem.output_shape)


def conv_term_counts(problem: ConvProblem) -> np.ndarray:
    """How many products each output of a conv problem sums, by output position.

    The count is the same for every image and filter: the channels of a group
    times the kernel taps whose input position is inside the input.  Where it
    is 0 (the window lies wholly in padding, or the input falls between
    dilated taps) the direct definition gives exactly 0.
    """
    spatial_out = problem.output_shape[2:]
    counts = np.zeros(spatial_out, dtype=np.int64)
    for tap in itertools.product(*(range(k) for k in problem.filters.shape[2:])):
        inside = np.ones(spatial_out, dtype=bool)
        for axis, k in enumerate(tap):
            position = (
                np.arange(spatial_out[axis]) * problem.stride[axis]
                - problem.padding[axis][0]
                + k * problem.dilation[axis]
            )
            shape = [1] * len(spatial_out)
            shape[axis] = -1
            valid = (position >= 0) & (position < problem.input.shape[2 + axis])
            inside = inside & valid.reshape(shape)
        counts += inside
    return counts * problem.filters.shape[1]
