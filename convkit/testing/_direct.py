"""Direct-definition results in double precision: the oracle of the conformance kit.

These are written for clarity and independently of every backend:
``convolve_nd`` by shift-and-add (one shifted copy of the larger input per
element of the smaller), ``conv`` by gathering, for each kernel tap, the input
positions every output reads, with a mask for the positions outside the input
(so padding adds no terms).  Both accumulate in float64 / complex128, far
below any backend's tolerance.

On top of them, from the definitions in the documentation of the public
functions: :func:`extended_convolve_nd`, convolve_nd with a ``boundary``
(the signal padded with ``numpy.pad`` by the kit's own table of modes);
:func:`reverse_conjugate`, which makes correlate_nd a convolution, as
``scipy.signal.correlate`` defines it; and :func:`normalized_convolve_nd`,
the missing-data policy "interpolate" (normalized convolution over the finite
samples).
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np

from convkit.plugin import ConvolveProblem, ConvProblem, normalize_convolve

__all__ = [
    "PAD_MODES",
    "NormalizedConvolution",
    "conv_term_counts",
    "direct_conv",
    "direct_convolve_nd",
    "extended_convolve_nd",
    "normalized_convolve_nd",
    "reverse_conjugate",
]

# The numpy.pad mode of each boundary: the kit's own table, independent of the core's.
PAD_MODES = {
    "fill": "constant",
    "wrap": "wrap",
    "symm": "symmetric",
    "symmetric": "symmetric",
    "mirror": "reflect",
    "nearest": "edge",
}


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


def _convolved_axes(ndim: int, axes: object) -> tuple[int, ...]:
    if axes is None:
        return tuple(range(ndim))
    return tuple(sorted({int(axis) % ndim for axis in np.atleast_1d(axes)}))


def reverse_conjugate(in2: np.ndarray, axes: object = None) -> np.ndarray:
    """``in2`` reversed along ``axes`` (default: all) and complex-conjugated.

    Correlation is convolution with this kernel, in every mode and for either
    operand order: ``correlate(in1, in2)[k] = sum_j in1[j] * conj(in2[j - k +
    m - 1])``, ``scipy.signal.correlate``'s definition.

    Parameters
    ----------
    in2 : numpy.ndarray
        The second operand of a correlation.
    axes : int, sequence of int or None
        The correlated axes, as correlate_nd takes them (default: all).

    Returns
    -------
    numpy.ndarray
        The kernel to convolve ``in1`` with.

    Examples
    --------
    >>> import numpy as np
    >>> from convkit.testing import reverse_conjugate
    >>> reverse_conjugate(np.array([[1j, 2.0], [3.0, 4.0]]), axes=1)
    array([[2.-0.j, 0.-1.j],
           [4.-0.j, 3.-0.j]])
    """
    convolved = _convolved_axes(in2.ndim, axes)
    flip = tuple(
        slice(None, None, -1) if axis in convolved else slice(None) for axis in range(in2.ndim)
    )
    return np.conj(in2[flip])


def extended_convolve_nd(
    in1: np.ndarray,
    in2: np.ndarray,
    mode: str = "full",
    axes: object = None,
    boundary: str = "fill",
    fillvalue: complex = 0,
    absolute: bool = False,
) -> np.ndarray:
    """convolve_nd of ``in1`` extended by ``boundary``, by the direct definition.

    ``"full"`` is ``"valid"`` on ``in1`` padded with ``numpy.pad`` (mode
    :data:`PAD_MODES` ``[boundary]``) by ``m - 1`` on both sides of each
    convolved axis, ``m`` the length of ``in2`` there; ``"same"`` is the
    part of that ``"same"`` keeps with zero padding (``in1``'s length,
    starting ``(m - 1) // 2`` in); ``"valid"`` needs no extension.

    Parameters
    ----------
    in1, in2 : numpy.ndarray
        The signal and the kernel (in either order in ``"valid"``).
    mode : {"full", "same", "valid"}
    axes : int, sequence of int or None
        The convolved axes (default: all).
    boundary : str
        A key of :data:`PAD_MODES`.
    fillvalue : number
        The value outside ``in1`` with ``boundary="fill"``.
    absolute : bool
        Give the scale ``|extended in1| (*) |in2|`` instead.

    Returns
    -------
    numpy.ndarray
        float64, or complex128 for complex operands (float64 with ``absolute``).

    Examples
    --------
    >>> import numpy as np
    >>> from convkit.testing import extended_convolve_nd
    >>> extended_convolve_nd(np.array([1.0, 2.0, 3.0]), np.ones(3), "same", boundary="wrap")
    array([6., 6., 6.])
    """
    if mode == "valid" or (boundary == "fill" and fillvalue == 0):
        problem = normalize_convolve(in1, in2, mode, axes)
        if isinstance(problem, np.ndarray):  # 0-d operands multiply; empty ones give (0,)
            return np.abs(problem) if absolute else problem
        return direct_convolve_nd(problem, absolute)
    convolved = _convolved_axes(in1.ndim, axes)
    reaches = [in2.shape[axis] - 1 if axis in convolved else 0 for axis in range(in1.ndim)]
    rule = PAD_MODES[boundary]
    options = {"constant_values": fillvalue} if rule == "constant" else {}
    wide = np.complex128 if np.iscomplexobj(in1) or np.iscomplexobj(fillvalue) else np.float64
    padded = np.pad(in1.astype(wide), [(reach, reach) for reach in reaches], rule, **options)
    full = direct_convolve_nd(normalize_convolve(padded, in2, "valid", axes), absolute)
    if mode == "same":
        full = full[
            tuple(
                slice(reach // 2, reach // 2 + size) if reach else slice(None)
                for reach, size in zip(reaches, in1.shape)
            )
        ]
    return full


class NormalizedConvolution(NamedTuple):
    """The parts of :func:`normalized_convolve_nd`, each float64 or complex128.

    Attributes
    ----------
    result : numpy.ndarray
        ``numerator / denominator``, NaN where that is undefined (and, with
        ``preserve_nan``, where ``in1`` is not finite).
    numerator : numpy.ndarray
        ``x·m (*) w``: the finite samples of the extended signal with the kernel.
    denominator : numpy.ndarray
        ``m (*) w``: the extended mask of finite samples with the kernel.
    numerator_scale : numpy.ndarray
        ``|x·m| (*) |w|``.
    denominator_scale : numpy.ndarray
        ``m (*) |w|``: exactly 0 where no finite sample meets a non-zero weight.
    """

    result: np.ndarray
    numerator: np.ndarray
    denominator: np.ndarray
    numerator_scale: np.ndarray
    denominator_scale: np.ndarray


def normalized_convolve_nd(
    in1: np.ndarray,
    in2: np.ndarray,
    mode: str = "full",
    axes: object = None,
    boundary: str = "fill",
    fillvalue: complex = 0,
    preserve_nan: bool = False,
) -> NormalizedConvolution:
    """convolve_nd with ``nan_policy="interpolate"``, by the direct definition.

    ``m`` is the mask of finite samples of ``in1`` (1 where finite, else 0)
    and ``x·m`` the signal with its non-finite samples set to 0; both are
    extended by ``boundary`` as :func:`extended_convolve_nd` extends a
    signal, the mask with 1 for ``"fill"`` (fill samples count as finite
    ones, of value ``fillvalue``).  The result is ``(x·m (*) w) / (m (*) w)``,
    NaN where the window holds no finite sample under a non-zero weight or
    where ``m (*) w`` is 0.  Both tests are exact here (in float64 a sum of
    non-negative terms is 0 only when every term is), so the kit's cases use
    kernels for which ``m (*) w`` is either exactly 0 or well away from it,
    never a matter of rounding: non-negative kernels (then ``m (*) w`` is
    ``m (*) |w|``, or for complex ones at least ``m (*) |w| / sqrt(2)``) or
    kernels of small integers (then it is an exact integer).

    Parameters
    ----------
    in1, in2 : numpy.ndarray
        The signal (its NaN and inf are the missing samples) and the kernel.
    mode, axes, boundary, fillvalue
        As for :func:`extended_convolve_nd`.
    preserve_nan : bool
        Mode ``"same"``: NaN again where ``in1`` was not finite.

    Returns
    -------
    NormalizedConvolution

    Examples
    --------
    >>> import numpy as np
    >>> from convkit.testing import normalized_convolve_nd
    >>> signal = np.array([1.0, np.nan, 3.0, np.nan, np.nan, np.nan])
    >>> normalized_convolve_nd(signal, np.ones(3), "same", boundary="nearest").result
    array([ 1.,  2.,  3.,  3., nan, nan])
    """
    finite = np.isfinite(in1)
    values = np.where(finite, in1, 0)
    mask = finite.astype(np.float64)
    mask_fill = 1 if boundary == "fill" else 0
    extended = dict(mode=mode, axes=axes, boundary=boundary)
    numerator = extended_convolve_nd(values, in2, fillvalue=fillvalue, **extended)
    numerator_scale = extended_convolve_nd(
        values, in2, fillvalue=fillvalue, absolute=True, **extended
    )
    denominator = extended_convolve_nd(mask, in2, fillvalue=mask_fill, **extended)
    denominator_scale = extended_convolve_nd(
        mask, in2, fillvalue=mask_fill, absolute=True, **extended
    )
    undefined = (denominator_scale == 0) | (denominator == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        result = np.where(undefined, np.nan, numerator / np.where(undefined, 1, denominator))
    if preserve_nan:
        result = np.where(np.broadcast_to(finite, result.shape), result, np.nan)
    return NormalizedConvolution(result, numerator, denominator, numerator_scale, denominator_scale)
