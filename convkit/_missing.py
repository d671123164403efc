"""Missing data in the signal: ``nan_policy`` of convolve_nd and correlate_nd.

"fill" and "interpolate" are lowered to ordinary problems on finite arrays,
which any backend computes: "fill" replaces the non-finite samples of ``in1``
by ``fillvalue``; "interpolate" is the normalized convolution
``(x·m ⊛ w) / (m ⊛ w)``, ``m`` the mask of finite samples, its two
convolutions run through the same backend with the same boundary (the mask
is extended by the rule too, and ``boundary="fill"`` samples count as finite).
An output is NaN where its window holds no finite sample, or where
``|m ⊛ w| <= sqrt(eps) · s`` with ``s = m ⊛ |w|``: the weights cancel and the
quotient would keep fewer than half the digits of the dtype.

Neither test needs ``s`` everywhere.  Where every window holds every tap (no
non-finite sample, and not a "valid" result narrower than the kernel), the
denominator is the kernel's sum and no mask is convolved at all.  Otherwise
the rule can only hold where the backend's ``|m ⊛ w|`` is at most about
``sqrt(eps) · sum |w|``; at those few outputs ``m ⊛ w`` and ``s`` are summed
again term by term in float64, so ``s`` is exactly 0 for an empty window, and
the rounding of an FFT method cannot turn an empty window into a tiny
denominator.  Where those outputs are many (a kernel whose weights sum to
about zero), ``s`` is one more float64 convolution instead, and a window
counts as empty where ``s`` is below half the smallest non-zero ``|w|``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from convkit._geometry import convolve_output_region
from convkit._validation import (
    _check_boundary,
    _check_mode,
    _normalize_axes,
    compute_dtype,
    is_device_array,
    to_operands,
)

__all__ = ["NAN_POLICIES", "check_nan_policy", "with_nan_policy"]

NAN_POLICIES = ("propagate", "interpolate", "fill")


def check_nan_policy(nan_policy: object, preserve_nan: object, mode: object, function: str) -> None:
    """Check ``nan_policy`` and ``preserve_nan`` (``mode`` is checked elsewhere)."""
    if not isinstance(nan_policy, str):
        raise TypeError(f"{function}: nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}")
    if nan_policy not in NAN_POLICIES:
        raise ValueError(
            f"{function}: nan_policy must be one of {', '.join(map(repr, NAN_POLICIES))}, "
            f"got {nan_policy!r}"
        )
    if not isinstance(preserve_nan, (bool, np.bool_)):
        raise TypeError(f"{function}: preserve_nan must be True or False, got {preserve_nan!r}")
    if preserve_nan and nan_policy != "interpolate":
        raise ValueError(
            f"{function}: preserve_nan=True applies only to nan_policy='interpolate', got "
            f"nan_policy={nan_policy!r}; drop preserve_nan or use nan_policy='interpolate'"
        )
    if preserve_nan and mode != "same":
        raise ValueError(
            f"{function}: preserve_nan=True needs mode='same', where each output lines up with "
            f"a sample of in1, got mode={mode!r}"
        )


def with_nan_policy(
    operation: Callable[..., np.ndarray],
    function: str,
    in1: object,
    in2: object,
    mode: str,
    nan_policy: str,
    preserve_nan: bool,
    **keywords: object,
) -> np.ndarray:
    """Run ``operation`` (convolve_nd or correlate_nd with nan_policy="propagate")
    under ``nan_policy`` "fill" or "interpolate"."""
    if is_device_array(in1) or is_device_array(in2):
        raise ValueError(
            f"{function}: nan_policy={nan_policy!r} rewrites in1 in a copy, which convkit makes "
            "on the host; pass in1 and in2 as NumPy arrays, or use nan_policy='propagate'"
        )
    signal, kernel, _ = to_operands(in1, in2, function, ("in1", "in2"))
    _check_mode(mode, function)
    dtype = compute_dtype(function, signal, kernel)
    boundary, fillvalue = keywords["boundary"], keywords["fillvalue"]
    pad_mode = _check_boundary(boundary, fillvalue, dtype, function)
    finite = np.isfinite(signal)
    if nan_policy == "fill":
        value = np.asarray(fillvalue)
        value = (value if dtype.kind == "c" else value.real).astype(dtype)
        return operation(np.where(finite, signal.astype(dtype), value), kernel, mode, **keywords)

    return _interpolate(
        operation, function, signal, kernel, finite, dtype, mode, pad_mode, keywords, preserve_nan
    )


# Codes of _sample_index beyond in1's edges: a fill sample (finite), or no term at all ("valid").
_FILL = -1
_ABSENT = -2


def _interpolate(
    operation: Callable[..., np.ndarray],
    function: str,
    signal: np.ndarray,
    kernel: np.ndarray,
    finite: np.ndarray,
    dtype: np.dtype,
    mode: str,
    pad_mode: str | None,
    keywords: dict,
    preserve_nan: bool,
) -> np.ndarray:
    """``(x·m ⊛ w) / (m ⊛ w)``, NaN where a window is empty or its weights cancel."""
    all_finite = bool(finite.all())
    values = signal.astype(dtype, copy=False)
    if not all_finite:
        values = np.where(finite, values, np.zeros((), dtype))
    # The numerator runs first: it checks every argument that the geometry below relies on.
    result = np.asarray(operation(values, kernel, mode, **keywords))
    if result.size == 0:
        return result
    root = np.sqrt(np.finfo(dtype).eps)
    if result.ndim == 0:  # a single sample, weighted by itself
        return np.asarray(values if all_finite and kernel != 0 else np.nan, dtype)
    axes = _normalize_axes(keywords["axes"], signal.ndim, function)
    weights = _oriented(kernel, axes, function)
    weight_sum = weights.sum(axis=axes, keepdims=True)
    magnitude_sum = np.abs(weights).sum(axis=axes, keepdims=True)
    if all_finite and (
        mode != "valid" or all(signal.shape[axis] >= kernel.shape[axis] for axis in axes)
    ):
        # Every window holds every tap: m ⊛ w is the kernel's sum and s the sum of its sizes.
        empty = (magnitude_sum == 0) | (np.abs(weight_sum) <= root * magnitude_sum)
        with np.errstate(divide="ignore", invalid="ignore"):
            np.divide(result, np.where(empty, 1, weight_sum).astype(dtype), out=result)
        if empty.any():
            result[np.broadcast_to(empty, result.shape)] = np.nan
        return result

    real_dtype = np.finfo(dtype).dtype
    if values is not signal and values.dtype == real_dtype:
        mask = values  # the numerator is done with it
        np.copyto(mask, finite)
    else:
        mask = finite.astype(real_dtype)
    # Zero fill needs no padded copy of the mask; beyond the edges, "fill" samples count as
    # finite: their weights are added to the outputs they reach.
    fill = keywords["boundary"] == "fill" and mode != "valid"
    mask_keywords = dict(keywords, fillvalue=0)
    denominator = np.asarray(operation(mask, kernel, mode, **mask_keywords))
    if fill:
        _add_fill_weights(denominator, weights, signal.shape, axes, mode)
    # The rule can hold only where |m ⊛ w| <= sqrt(eps) · s <= sqrt(eps) · sum |w|; the
    # backend's m ⊛ w is within `slack` · sum |w| of the exact value (direct methods round
    # about eps · sqrt(terms) of s, FFT methods eps · log2(points) of the largest s), so
    # outside these suspects the rule does not hold, and at them it is decided exactly.
    terms = math.prod(kernel.shape[axis] for axis in axes)
    points = math.prod(signal.shape[axis] + kernel.shape[axis] - 1 for axis in axes)
    slack = 16 * np.finfo(dtype).eps * (math.sqrt(terms) + math.log2(max(points, 2)))
    if weights.dtype.kind != "c" and (weights >= 0).all():
        # m ⊛ w >= 0, and the backend's rounding (below the bound) cannot take it under -bound.
        magnitude = denominator
    else:
        magnitude = np.abs(denominator, out=mask if mask.shape == result.shape else None)
    suspects = magnitude <= ((root + slack) * magnitude_sum).astype(real_dtype)
    taps = np.nonzero(np.any(weights != 0, axis=_batch_axes(axes, weights.ndim), keepdims=True))
    count = int(np.count_nonzero(suspects))
    if count * taps[0].size * _OUTPUTS_PER_GATHERED_TERM <= result.size:
        outputs = np.unravel_index(np.flatnonzero(suspects), result.shape)
        exact, scale = _exact_sums(finite, weights, taps, axes, outputs, mode, pad_mode)
        denominator[outputs] = exact if denominator.dtype.kind == "c" else exact.real
        with np.errstate(divide="ignore", invalid="ignore"):
            np.divide(result, denominator, out=result)
        empty = (scale == 0) | (np.abs(exact) <= root * scale)
        result[tuple(index[empty] for index in outputs)] = np.nan
    else:
        # Many suspects (a kernel whose weights sum to about zero, or mostly missing data):
        # s everywhere, in one float64 convolution, is cheaper than the exact sums one by one.
        absolute = np.abs(kernel).astype(np.float64)
        nonzero = absolute[absolute > 0]
        smallest = nonzero.min() if nonzero.size else np.inf
        scale = operation(finite.astype(np.float64), absolute, mode, **mask_keywords)
        if fill:
            _add_fill_weights(scale, np.abs(weights), signal.shape, axes, mode)
        with np.errstate(divide="ignore", invalid="ignore"):
            np.divide(result, denominator, out=result)
        result[(scale < smallest / 2) | (np.abs(denominator) <= root * scale)] = np.nan
    if preserve_nan:
        result[np.broadcast_to(~finite, result.shape)] = np.nan
    return result


# The exact sums cost about 15 ns a term (NumPy gathers, 2-core VM), some 150 times a term
# of the numba backend's convolution: they run where they add up to at most an eighth of a
# term per output of the result (a few ns per output, an elementwise pass), and one more
# float64 convolution computes s where there are more suspects.
_OUTPUTS_PER_GATHERED_TERM = 8


def _batch_axes(axes: tuple[int, ...], ndim: int) -> tuple[int, ...]:
    return tuple(axis for axis in range(ndim) if axis not in axes)


def _oriented(kernel: np.ndarray, axes: tuple[int, ...], function: str) -> np.ndarray:
    """The kernel as the convolution applies it, in float64 or complex128 (correlate_nd's
    reversed along the convolved axes and conjugated)."""
    weights = kernel.astype(np.complex128 if kernel.dtype.kind == "c" else np.float64)
    if function == "correlate_nd":
        reversed_axes = tuple(
            slice(None, None, -1) if axis in axes else slice(None) for axis in range(kernel.ndim)
        )
        weights = np.conj(weights[reversed_axes])
    return weights


def _add_fill_weights(
    denominator: np.ndarray,
    weights: np.ndarray,
    signal_shape: tuple[int, ...],
    axes: tuple[int, ...],
    mode: str,
) -> None:
    """Add to ``denominator`` (``m ⊛ w`` with zero fill, in place) the weights of the taps
    that fall beyond in1's edges.  Only the outputs within the kernel's reach of an edge
    have any: one box of them per edge of each convolved axis (the earlier axes' edges
    left out, so each output is done once), their sums read from a table of the kernel's
    cumulative sums."""
    start = convolve_output_region(signal_shape, weights.shape, mode, axes)[0]
    table = weights
    for axis in axes:  # table[..., i, ...]: the sum of the taps before i on each axis
        widths = [(1, 0) if other == axis else (0, 0) for other in range(weights.ndim)]
        table = np.pad(np.cumsum(table, axis=axis), widths)
    box = [range(size) for size in denominator.shape]
    for axis in axes:
        # Output o reaches before the edge while o + start < m - 1, after it from M on.
        size, reach = denominator.shape[axis], weights.shape[axis] - 1
        low = min(max(reach - start[axis], 0), size)
        high = min(max(signal_shape[axis] - start[axis], low), size)
        for edge in (range(0, low), range(high, size)):
            box[axis] = edge
            if all(len(part) for part in box):
                _add_box(denominator, table, weights.shape, signal_shape, axes, start, box)
        box[axis] = range(low, high)


def _add_box(
    denominator: np.ndarray,
    table: np.ndarray,
    kernel_shape: tuple[int, ...],
    signal_shape: tuple[int, ...],
    axes: tuple[int, ...],
    start: tuple[int, ...],
    box: list[range],
) -> None:
    """``denominator[box] += sum(w) - (the sum of the taps on in1)``, each output's taps
    on in1 being a box of the kernel: 2 ** len(axes) reads of the table."""
    ndim = denominator.ndim
    first, last, batch = {}, {}, []
    for axis, part in enumerate(box):
        shape = [1] * ndim
        shape[axis] = len(part)
        position = np.arange(part.start, part.stop).reshape(shape)
        if axis in axes:
            full = position + start[axis]
            first[axis] = np.clip(full - signal_shape[axis] + 1, 0, kernel_shape[axis])
            last[axis] = np.clip(full + 1, 0, kernel_shape[axis])
        else:
            batch.append((axis, position if kernel_shape[axis] > 1 else 0))
    inside = 0
    for corner in range(2 ** len(axes)):
        index = dict(batch)
        sign = 1
        for bit, axis in enumerate(axes):
            take_last = corner >> bit & 1
            index[axis] = last[axis] if take_last else first[axis]
            sign = sign if take_last else -sign
        inside = inside + sign * table[tuple(index[axis] for axis in range(ndim))]
    everything = table[tuple(-1 if axis in axes else slice(None) for axis in range(ndim))]
    everything = np.expand_dims(everything, axes)
    region = tuple(slice(part.start, part.stop) for part in box)
    denominator[region] += (everything - inside).astype(denominator.dtype)


def _sample_index(position: np.ndarray, size: int, mode: str, pad_mode: str | None) -> np.ndarray:
    """Which sample of in1 lies at ``position`` of its extended axis: an index of in1, or
    _FILL / _ABSENT beyond its edges.  The rules are numpy.pad's, which the padded copy
    of the problem uses, in closed form (the same for any width)."""
    if mode == "valid" or pad_mode in (None, "constant"):
        inside = (position >= 0) & (position < size)
        return np.where(inside, position, _ABSENT if mode == "valid" else _FILL)
    if pad_mode == "wrap":
        return position % size
    if pad_mode == "edge":
        return np.clip(position, 0, size - 1)
    if pad_mode == "reflect" and size == 1:
        return np.zeros_like(position)
    # "symmetric" repeats the edge sample (period 2 size), "reflect" does not (2 size - 2).
    repeats = pad_mode == "symmetric"
    period = 2 * size if repeats else 2 * size - 2
    folded = position % period
    return np.where(folded < size, folded, period - folded - repeats)


def _exact_sums(
    finite: np.ndarray,
    weights: np.ndarray,
    taps: tuple[np.ndarray, ...],
    axes: tuple[int, ...],
    outputs: tuple[np.ndarray, ...],
    mode: str,
    pad_mode: str | None,
) -> tuple[np.ndarray, np.ndarray]:
    """``m ⊛ w`` and ``s = m ⊛ |w|`` at ``outputs`` (index arrays into the result), summed
    term by term in float64 (or complex128) over the kernel's non-zero ``taps``, so that
    ``s`` is exactly 0 for a window without a finite sample."""
    start = convolve_output_region(finite.shape, weights.shape, mode, axes)[0]
    count, tap_count = outputs[0].size, taps[0].size
    sums = np.zeros(count, weights.dtype)
    scales = np.zeros(count)
    step = max(1, 2**18 // max(tap_count, 1))  # bounds the (outputs, taps) temporaries
    for begin in range(0, count, step):
        positions = [index[begin : begin + step, None] for index in outputs]
        absent = np.zeros((positions[0].shape[0], tap_count), bool)
        fill = np.zeros_like(absent)
        sample, weight = [], []
        for axis in range(finite.ndim):
            if axis in axes:
                position = positions[axis] + start[axis] - taps[axis]
                source = _sample_index(position, finite.shape[axis], mode, pad_mode)
                absent |= source == _ABSENT
                fill |= source == _FILL
                sample.append(np.maximum(source, 0))
                weight.append(taps[axis])
            else:
                sample.append(positions[axis] if finite.shape[axis] > 1 else 0)
                weight.append(positions[axis] if weights.shape[axis] > 1 else 0)
        counted = ~absent & (fill | finite[tuple(sample)])
        terms = np.where(counted, weights[tuple(weight)], 0)
        sums[begin : begin + step] = terms.sum(axis=1)
        scales[begin : begin + step] = np.abs(terms).sum(axis=1)
    return sums, scales
