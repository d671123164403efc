"""Missing data in the signal: ``nan_policy`` of convolve_nd and correlate_nd.

"fill" and "interpolate" are lowered to ordinary problems on finite arrays,
which any backend computes: "fill" replaces the non-finite samples of ``in1``
by ``fillvalue``; "interpolate" is the normalized convolution
``(x·m ⊛ w) / (m ⊛ w)``, ``m`` the mask of finite samples, its two
convolutions run through the same backend with the same boundary (the mask
is extended by the rule too, and ``boundary="fill"`` samples count as finite).
Whether an output's window holds a finite sample at all is decided by a third,
float64 convolution ``s = m ⊛ |w|``: it is at least the smallest non-zero
``|w|`` where there is one, so the rounding of an FFT method cannot turn an
empty window into a tiny denominator.  ``m ⊛ w`` counts as zero where
``|m ⊛ w| <= sqrt(eps) · s``: the weights cancel and the quotient would keep
fewer than half the digits of the dtype.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from convkit._validation import (
    _check_boundary,
    _check_mode,
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
    _check_boundary(boundary, fillvalue, dtype, function)
    finite = np.isfinite(signal)
    if nan_policy == "fill":
        value = np.asarray(fillvalue)
        value = (value if dtype.kind == "c" else value.real).astype(dtype)
        return operation(np.where(finite, signal.astype(dtype), value), kernel, mode, **keywords)

    real_dtype = np.finfo(dtype).dtype
    values = np.where(finite, signal.astype(dtype), np.zeros((), dtype))
    mask = finite.astype(real_dtype)
    mask_keywords = dict(keywords, fillvalue=1 if boundary == "fill" else 0)
    numerator = operation(values, kernel, mode, **keywords)
    denominator = operation(mask, kernel, mode, **mask_keywords)
    weights = np.abs(kernel).astype(np.float64)
    nonzero = weights[weights > 0]
    smallest = nonzero.min() if nonzero.size else np.inf
    scale = operation(finite.astype(np.float64), weights, mode, **mask_keywords)
    empty = (scale < smallest / 2) | (np.abs(denominator) <= np.sqrt(np.finfo(dtype).eps) * scale)
    with np.errstate(divide="ignore", invalid="ignore"):
        result = np.asarray(numerator / np.where(empty, 1, denominator))
    result[empty] = np.nan
    if preserve_nan and result.size:
        result[np.broadcast_to(~finite, result.shape)] = np.nan
    return result
