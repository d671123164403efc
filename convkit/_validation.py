"""Argument checking and normalization: the only place arguments are judged.

Every public entry point passes its arguments through here once.  What comes
out is either a normalized problem (see ``_problems``) or a trivial result
(0-d inputs, empty arrays) that needs no backend.
"""

from __future__ import annotations

import math
import operator

import numpy as np

from convkit._config import get_memory_limit
from convkit._device import describe, is_device_array, stand_in
from convkit._errors import WorkingSetTooLargeError
from convkit._geometry import (
    MAX_LENGTH,
    at_most_max_length,
    conv_output_length,
    convolve_output_region,
    convolved_axes,
    dilated_extent,
    is_scalar,
    kernel_operand,
    padding_from_border_mode,
    per_axis,
)
from convkit._problems import ConvolveProblem, ConvProblem

__all__ = [
    "BOUNDARIES",
    "MAX_LENGTH",
    "compute_dtype",
    "normalize_conv",
    "normalize_convolve",
    "to_operand",
    "to_operands",
]

MODES = ("full", "valid", "same")
# Each boundary name and the numpy.pad mode that extends a signal by its rule.
BOUNDARIES = {
    "fill": "constant",
    "wrap": "wrap",
    "symm": "symmetric",
    "symmetric": "symmetric",
    "mirror": "reflect",
    "nearest": "edge",
}
# The rule a problem carries for each numpy.pad mode other than "constant".
_RULE_OF_PAD_MODE = {"wrap": "wrap", "symmetric": "symm", "reflect": "mirror", "edge": "nearest"}
_REJECTED_KINDS = {
    "O": "object",
    "U": "str",
    "S": "bytes",
    "V": "structured/void",
    "M": "datetime64",
    "m": "timedelta64",
}


def to_operand(value: object, function: str, argument: str) -> np.ndarray:
    """Turn an array-like into an ndarray, with errors that name ``argument``."""
    if value is None:
        raise TypeError(f"{function}: {argument} must be an array, got None")
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as error:
        raise TypeError(
            f"{function}: {argument} could not be turned into an array ({error}); "
            "pass a numeric array or a rectangular nested list of numbers"
        ) from None
    if array.dtype.kind in _REJECTED_KINDS:
        raise TypeError(
            f"{function}: {argument} has dtype {array.dtype} "
            f"({_REJECTED_KINDS[array.dtype.kind]}); convkit computes with numbers only, "
            f"convert it first, e.g. np.asarray({argument}, dtype=float)"
        )
    return array


def to_operands(
    first: object, second: object, function: str, names: tuple[str, str]
) -> tuple[np.ndarray, np.ndarray, tuple[object, object] | None]:
    """Both operands as arrays to check, and the device arrays themselves when on a GPU.

    Device operands are checked through zero-memory stand-ins of their shape and
    dtype; their data is never read by the core.
    """
    on_device = [is_device_array(first), is_device_array(second)]
    if not any(on_device):
        return to_operand(first, function, names[0]), to_operand(second, function, names[1]), None
    if not all(on_device):
        host = names[on_device.index(False)]
        device = names[on_device.index(True)]
        raise TypeError(
            f"{function}: {device} is a device (GPU) array but {host} is not; pass both on the "
            f"device (e.g. cupy.asarray({host})) or both as NumPy arrays"
        )
    stand_ins = []
    for value, name in zip((first, second), names):
        shape, dtype, _ = describe(value)
        if dtype.kind in _REJECTED_KINDS:
            raise TypeError(
                f"{function}: {name} has dtype {dtype}; convkit computes with numbers only"
            )
        stand_ins.append(stand_in(shape, dtype))
    return stand_ins[0], stand_ins[1], (first, second)


def _device_operand(value: object, dtype: np.dtype, function: str, argument: str) -> object:
    """A device operand as handed to the backend: of the compute dtype and C-contiguous."""
    shape, own_dtype, contiguous = describe(value)
    if own_dtype != dtype:
        raise TypeError(
            f"{function}: {argument} is a device array of dtype {own_dtype}, but this problem "
            f"computes in {dtype}; convkit does not cast device arrays: cast on the device "
            f"(e.g. {argument}.astype('{dtype}'))"
        )
    if not contiguous:
        raise TypeError(
            f"{function}: {argument} is a non-contiguous device array (shape {shape}); make it "
            f"contiguous on the device first (e.g. cupy.ascontiguousarray({argument}))"
        )
    if 0 in shape or not shape:
        raise ValueError(
            f"{function}: {argument} is an empty or 0-d device array (shape {shape}); "
            "device arrays need at least one element and one axis"
        )
    return value


_COMPUTE_DTYPES = {
    ("f", 2): np.dtype(np.float32),
    ("f", 4): np.dtype(np.float32),
    ("f", 8): np.dtype(np.float64),
    ("c", 8): np.dtype(np.complex64),
    ("c", 16): np.dtype(np.complex128),
}


def compute_dtype(function: str, *arrays: np.ndarray) -> np.dtype:
    """The dtype rule (docs/semantics.rst, "Dtypes"), applied to the promoted input dtype."""
    promoted = np.result_type(*arrays)
    if promoted.kind in "biu":
        return np.dtype(np.float64)
    found = _COMPUTE_DTYPES.get((promoted.kind, promoted.itemsize))
    if found is not None:
        return found
    raise TypeError(
        f"{function}: inputs promote to {promoted}, which convkit does not compute in; "
        "supported are float32, float64, complex64, complex128 (float16, ints and bool are "
        "converted): cast with .astype(np.float64) or .astype(np.complex128)"
    )


def readable_bytes(count: int) -> str:
    """``count`` bytes for people: ``"512 B"``, ``"3.05 GiB"``."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= size:
            return f"{count / size:.2f} {unit}"
    return f"{count} B"


def _check_budget(
    function: str,
    operands: tuple[np.ndarray, ...],
    dtype: np.dtype,
    output_shape: tuple[int, ...],
    padded_shape: tuple[int, ...] | None = None,
) -> None:
    """Refuse, from shapes alone, a problem whose copies and output exceed the memory budget.

    The core's contiguous copies of the operands (a broadcast or strided
    operand is copied in full), the padded copy of the signal that a
    boundary other than zero fill needs (of shape ``padded_shape``) and the
    output are allocated whichever backend runs, so their sum is checked
    before anything is copied; the chosen backend's own estimate is checked
    after.
    """
    copies = 0
    for operand in operands:
        if operand.dtype != dtype or not operand.flags.c_contiguous:
            copies += operand.size * dtype.itemsize
    if padded_shape is not None:
        copies += math.prod(padded_shape) * dtype.itemsize
    output = math.prod(output_shape) * dtype.itemsize
    limit = get_memory_limit()
    if copies + output > limit:
        copied = (
            (
                f" and the contiguous {dtype} copies of the inputs {readable_bytes(copies)} (broadcast "
                "and strided inputs are copied in full, and a boundary other than zero fill "
                "copies the padded signal)"
            )
            if copies
            else ""
        )
        raise WorkingSetTooLargeError(
            f"{function}: output shape {output_shape} needs {readable_bytes(output)}{copied}, about "
            f"{readable_bytes(copies + output)} of memory before any backend runs, over the limit of "
            f"{readable_bytes(limit)}; split the problem (e.g. along the batch axis), pass smaller inputs, "
            "or raise the limit with convkit.set_memory_limit / CONVKIT_MEMORY_LIMIT if the "
            "memory is there"
        )


def _readonly_contiguous(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """A C-contiguous, native-order, read-only array of ``dtype``.

    It may share memory with the caller's array (no copy when none is
    needed); making it read-only guarantees no backend can write into it.
    """
    result = np.ascontiguousarray(array, dtype=dtype).view()
    result.flags.writeable = False
    return result


def _check_mode(mode: object, function: str) -> str:
    if not isinstance(mode, str):
        raise TypeError(f"{function}: mode must be one of {MODES}, got {mode!r}")
    if mode not in MODES:
        raise ValueError(f"{function}: mode must be one of 'full', 'valid', 'same', got {mode!r}")
    return mode


def _check_boundary(
    boundary: object, fillvalue: object, dtype: np.dtype, function: str
) -> str | None:
    """The numpy.pad mode that extends the signal, or None for zero fill (no copy)."""
    if (
        type(boundary) is str
        and boundary == "fill"
        and type(fillvalue) in (int, float)
        and fillvalue == 0
    ):
        return None  # the default, decided without building arrays
    if not isinstance(boundary, str):
        raise TypeError(
            f"{function}: boundary must be one of {tuple(BOUNDARIES)}, got {boundary!r}"
        )
    if boundary == "reflect":
        raise ValueError(
            f"{function}: boundary='reflect' is ambiguous (scipy.ndimage's 'reflect' repeats the "
            "edge sample, numpy.pad's does not); say boundary='symm' for d c b a | a b c d "
            "(half-sample symmetric) or boundary='mirror' for d c b | a b c d (whole-sample "
            "symmetric)"
        )
    if boundary not in BOUNDARIES:
        raise ValueError(
            f"{function}: boundary must be one of {', '.join(map(repr, BOUNDARIES))}, "
            f"got {boundary!r}"
        )
    value = np.asarray(fillvalue) if is_scalar(fillvalue) else None
    if value is None or value.dtype.kind not in "biufc":
        raise TypeError(
            f"{function}: fillvalue must be a real or complex number, got {fillvalue!r}"
        )
    if value.dtype.kind == "c" and value.imag != 0 and dtype.kind != "c":
        raise ValueError(
            f"{function}: fillvalue={fillvalue!r} is complex but the inputs compute in {dtype}; "
            "pass complex inputs or a real fillvalue"
        )
    if boundary != "fill":
        if value != 0:
            raise ValueError(
                f"{function}: fillvalue={fillvalue!r} applies only to boundary='fill', got "
                f"boundary={boundary!r}; drop fillvalue or use boundary='fill'"
            )
        return BOUNDARIES[boundary]
    return None if value == 0 else "constant"


def _padded_signal(
    array: np.ndarray,
    widths: list[tuple[int, int]],
    pad_mode: str,
    fillvalue: object,
    dtype: np.dtype,
) -> np.ndarray:
    """A new array of ``dtype``: ``array`` extended by ``widths`` with numpy.pad's rule."""
    source = np.asarray(array, dtype=dtype)
    if pad_mode == "constant":
        # A complex fillvalue reaches real inputs only with a zero imaginary part (checked).
        value = np.asarray(fillvalue)
        value = (value if dtype.kind == "c" else value.real).astype(dtype)
        return np.pad(source, widths, mode="constant", constant_values=value)
    return np.pad(source, widths, mode=pad_mode)


def _host_only(boundary: object, function: str, argument: str) -> ValueError:
    return ValueError(
        f"{function}: boundary={boundary!r} extends {argument} in a padded copy, which convkit "
        f"makes on the host; pass {argument} as a NumPy array, or use boundary='fill' with "
        "fillvalue=0 for GPU arrays"
    )


def _normalize_axes(axes: object, ndim: int, function: str) -> tuple[int, ...]:
    if axes is None:
        return tuple(range(ndim))
    items = [axes] if is_scalar(axes) else list(axes)
    if not items:
        raise ValueError(
            f"{function}: when provided, axes cannot be empty; use axes=None for all axes"
        )
    normalized = []
    for item in items:
        if isinstance(item, (bool, np.bool_)):
            raise TypeError(f"{function}: axes must be ints, got {axes!r}")
        try:
            axis = operator.index(item)
        except TypeError:
            raise TypeError(f"{function}: axes must be ints, got {axes!r}") from None
        if not -ndim <= axis < ndim:
            raise ValueError(
                f"{function}: axis {axis} is out of range for inputs with {ndim} dimensions "
                f"(valid: {-ndim} to {ndim - 1})"
            )
        normalized.append(axis % ndim)
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"{function}: all axes must be unique, got {axes!r}")
    return tuple(sorted(normalized))


def normalize_convolve(
    in1: object,
    in2: object,
    mode: object = "full",
    axes: object = None,
    boundary: object = "fill",
    fillvalue: object = 0,
    *,
    correlate: bool = False,
    geometry_only: bool = False,
) -> ConvolveProblem | np.ndarray:
    """Check the arguments of ``convolve_nd`` and build its normalized problem.

    This is the problem a backend's ``convolve_nd`` receives from
    :func:`convkit.convolve_nd`; backend authors and tests build problems
    with it.

    Parameters
    ----------
    in1, in2 : array_like
        The operands, as for :func:`convkit.convolve_nd`.
    mode : {"full", "valid", "same"}
    axes : int, sequence of int or None
        The axes to convolve (default: all).
    boundary, fillvalue
        As for :func:`convkit.convolve_nd`.  A rule (wrap, symm, mirror,
        nearest) is carried in ``problem.boundary``; a non-zero fill value
        gives the ``"valid"`` problem on a padded copy of ``in1``.
    correlate : bool
        Check the arguments of :func:`convkit.correlate_nd` instead: the
        problem convolves ``in1`` with a copy of ``in2`` reversed along the
        convolved axes and conjugated, which is how ``scipy.signal.correlate``
        defines correlation in every mode.

    Returns
    -------
    ConvolveProblem or numpy.ndarray
        The problem, or the finished result for 0-d and empty inputs, which
        need no backend.

    Raises
    ------
    TypeError, ValueError
        The errors :func:`convkit.convolve_nd` raises for these arguments.

    Examples
    --------
    >>> import numpy as np
    >>> from convkit.plugin import normalize_convolve
    >>> problem = normalize_convolve(np.ones((2, 3, 5, 5)), np.ones((1, 3, 3, 3)), mode="same")
    >>> problem.axes, problem.output_start, problem.output_shape
    ((1, 2, 3), (0, 1, 1, 1), (2, 3, 5, 5))
    """
    function = "correlate_nd" if correlate else "convolve_nd"
    first, second, devices = to_operands(in1, in2, function, ("in1", "in2"))
    mode = _check_mode(mode, function)
    dtype = compute_dtype(function, first, second)
    pad_mode = _check_boundary(boundary, fillvalue, dtype, function)
    if devices is not None and correlate:
        raise ValueError(
            f"{function}: in2 is reversed and conjugated in a copy, which convkit makes on the "
            "host; pass in1 and in2 as NumPy arrays, or call convolve_nd with in2 already "
            "reversed (and conjugated) on the device"
        )
    if devices is not None:
        if pad_mode is not None and mode != "valid":
            raise _host_only(boundary, function, "in1")
        devices = (
            _device_operand(devices[0], dtype, function, "in1"),
            _device_operand(devices[1], dtype, function, "in2"),
        )

    if first.ndim == second.ndim == 0:
        second = np.conj(second.astype(dtype)) if correlate else second.astype(dtype)
        return np.asarray(first.astype(dtype) * second, dtype=dtype)
    if first.ndim != second.ndim:
        raise ValueError(
            f"{function}: in1 and in2 should have the same dimensionality, got shapes "
            f"{first.shape} and {second.shape}; add axes of length 1 with np.expand_dims "
            "so that the arrays line up"
        )
    axes_tuple = _normalize_axes(axes, first.ndim, function)
    for axis in range(first.ndim):
        a, b = first.shape[axis], second.shape[axis]
        if axis not in axes_tuple and a != b and 1 not in (a, b):
            raise ValueError(
                f"{function}: incompatible shapes for in1 and in2: {first.shape} and "
                f"{second.shape}; axis {axis} is not convolved, so its lengths must be "
                "equal or one of them 1 (broadcast)"
            )
    if first.size == 0 or second.size == 0:
        return np.empty((0,), dtype=dtype)
    if correlate:
        # Correlation is convolution with the kernel reversed and conjugated, in every mode
        # (SciPy's own "valid" swap gives the same numbers, since convolution commutes).
        reversed_slices = tuple(
            slice(None, None, -1) if axis in axes_tuple else slice(None)
            for axis in range(second.ndim)
        )
        second = np.asarray(second, dtype=dtype)[reversed_slices]
        if dtype.kind == "c":
            second = np.conj(second)

    rule = "fill"
    if pad_mode is not None and mode != "valid":
        # "full" is "valid" on in1 extended by m - 1 on both sides of each convolved axis;
        # "same" needs only the part of that extension its centred slice reaches.
        widths = [(0, 0)] * first.ndim
        for axis in axes_tuple:
            reach = second.shape[axis] - 1
            widths[axis] = (reach, reach) if mode == "full" else (reach - reach // 2, reach // 2)
        padded_shape = tuple(
            size + before + after for size, (before, after) in zip(first.shape, widths)
        )
        output_shape = convolve_output_region(padded_shape, second.shape, "valid", axes_tuple)[1]
        # Whichever backend runs, the padded copy may be made (by the core, for a backend
        # that does not extend the rule itself): it counts toward the budget.
        if not geometry_only:
            _check_budget(function, (first, second), dtype, output_shape, padded_shape)
        if pad_mode != "constant":
            rule = _RULE_OF_PAD_MODE[pad_mode]
        elif not geometry_only:
            first = _padded_signal(first, widths, pad_mode, fillvalue, dtype)
            mode = "valid"

    if mode == "valid":
        try:
            kernel = kernel_operand(first.shape, second.shape, axes_tuple, mode)
        except ValueError as error:
            raise ValueError(f"{function}: {error}") from None
        if kernel == 0:
            first, second = second, first
            if devices is not None:
                devices = (devices[1], devices[0])

    # Axes that are not convolved broadcast and keep their broadcast length in every mode
    # ("same" included: scipy releases before the fix of scipy#21876 cut them to in1's
    # length, keeping whichever row the centring happened to land on).  A named axis on
    # which an operand has length 1 gives the broadcast region too, so it is handed to
    # backends as a broadcast axis: they see only the axes they really convolve.
    output_start, output_shape = convolve_output_region(first.shape, second.shape, mode, axes_tuple)
    named_axes = axes_tuple
    axes_tuple = convolved_axes(first.shape, second.shape, mode, axes_tuple)
    if rule != "fill":
        if any(second.shape[axis] > 1 for axis in named_axes):
            # in1 of length 1 against a longer in2 is no broadcast under a rule: the
            # kernel reaches into the extension, which repeats the sample.
            axes_tuple = tuple(
                axis for axis in named_axes if axis in axes_tuple or second.shape[axis] > 1
            )
        else:
            rule = "fill"  # a kernel of length 1 everywhere reaches no extension

    if devices is None and not geometry_only:
        _check_budget(function, (first, second), dtype, output_shape)
    if geometry_only:
        operands = (first, _readonly_contiguous(second, dtype))
    elif devices is None:
        operands = (_readonly_contiguous(first, dtype), _readonly_contiguous(second, dtype))
    else:
        operands = devices
    return ConvolveProblem(
        in1=operands[0],
        in2=operands[1],
        axes=axes_tuple,
        output_start=tuple(output_start),
        output_shape=tuple(output_shape),
        dtype=dtype,
        on_device=devices is not None,
        boundary=rule,
    )


def _shape_hint(array: np.ndarray, spatial_dims: int, argument: str) -> str:
    missing = spatial_dims + 2 - array.ndim
    if not 0 < missing <= 2:
        return ""
    leading = ("batch", "channel") if argument == "input" else ("filter", "channel")
    named = f"{leading[0]} and {leading[1]} axes" if missing == 2 else f"{leading[0]} axis"
    return f"; add the missing {named} with {argument}[{', '.join(['None'] * missing)}]"


def normalize_conv(
    input: object,
    filters: object,
    border_mode: object = "valid",
    subsample: object = 1,
    filter_flip: object = True,
    filter_dilation: object = 1,
    num_groups: object = 1,
    spatial_dims: int | None = None,
    function: str = "conv",
    boundary: object = "fill",
    fillvalue: object = 0,
    geometry_only: bool = False,
) -> ConvProblem | np.ndarray:
    """Check the arguments of ``conv``/``conv1d``/``conv2d``/``conv3d`` and build the problem.

    This is the problem a backend's ``conv`` receives from :func:`convkit.conv`;
    backend authors and tests build problems with it, best with keywords.

    Parameters
    ----------
    input, filters, border_mode, subsample, filter_flip, filter_dilation, num_groups
        As for :func:`convkit.conv`.
    spatial_dims : int or None
        The number of spatial axes the input must have (``conv2d``: 2); None
        takes it from the input, as :func:`convkit.conv` does.
    function : str
        The name error messages give the call.
    boundary, fillvalue
        As for :func:`convkit.conv`.  A rule (wrap, symm, mirror, nearest)
        is carried in ``problem.boundary``; a non-zero fill value gives the
        problem on an input already padded with it, ``padding`` all zero.
    geometry_only : bool
        Check every argument and work out the geometry, but neither copy the
        input nor check the memory budget: ``input`` may be a zero-memory
        stand-in for data that lives elsewhere (a Dask array), which stays
        the problem's ``input`` (unpadded: ``padding`` is kept, and a
        non-zero ``fillvalue`` is not written anywhere).

    Returns
    -------
    ConvProblem or numpy.ndarray
        The problem, or the finished (all-zero or empty) result when the
        batch, channel or filter count is 0.

    Raises
    ------
    TypeError, ValueError
        The errors :func:`convkit.conv` raises for these arguments.

    Examples
    --------
    >>> import numpy as np
    >>> from convkit.plugin import normalize_conv
    >>> problem = normalize_conv(np.ones((1, 2, 8, 8)), np.ones((4, 2, 3, 3)),
    ...                          border_mode="half", subsample=2)
    >>> problem.padding, problem.stride, problem.output_shape
    (((1, 1), (1, 1)), (2, 2), (1, 4, 4, 4))
    """
    data, kernels, devices = to_operands(input, filters, function, ("input", "filters"))
    dtype = compute_dtype(function, data, kernels)
    pad_mode = _check_boundary(boundary, fillvalue, dtype, function)

    if spatial_dims is None:
        if data.ndim < 3:
            raise ValueError(
                f"{function}: input must be (N, C, *spatial) with at least one spatial axis, "
                f"got shape {data.shape}"
            )
        spatial_dims = data.ndim - 2
    if data.ndim != spatial_dims + 2:
        named = "DHW"[3 - spatial_dims :] if spatial_dims <= 3 else ["S"] * spatial_dims
        layout = "(N, C, " + ", ".join(named) + ")"
        raise ValueError(
            f"{function}: input must have {spatial_dims + 2} dimensions {layout}, got shape "
            f"{data.shape}{_shape_hint(data, spatial_dims, 'input')}"
        )
    if kernels.ndim != spatial_dims + 2:
        raise ValueError(
            f"{function}: filters must have {spatial_dims + 2} dimensions "
            f"(F, C // num_groups, {', '.join(['k'] * spatial_dims)}), got shape "
            f"{kernels.shape}{_shape_hint(kernels, spatial_dims, 'filters')}"
        )
    if not isinstance(filter_flip, (bool, np.bool_)):
        raise TypeError(f"{function}: filter_flip must be True or False, got {filter_flip!r}")
    if isinstance(num_groups, (bool, np.bool_)) or not isinstance(num_groups, (int, np.integer)):
        raise TypeError(f"{function}: num_groups must be a positive int, got {num_groups!r}")
    groups = int(num_groups)
    if groups < 1:
        raise ValueError(f"{function}: num_groups must be >= 1, got {groups}")
    at_most_max_length(groups, function, "num_groups", num_groups)

    batch, channels = data.shape[:2]
    filter_count, filter_channels = kernels.shape[:2]
    if channels % groups:
        raise ValueError(
            f"{function}: input has {channels} channels, which num_groups={groups} does not "
            "divide; choose num_groups that divides the channel count"
        )
    if filter_count % groups:
        raise ValueError(
            f"{function}: filters has {filter_count} filters (shape {kernels.shape}), which "
            f"num_groups={groups} does not divide; the filter count must be a multiple of "
            "num_groups"
        )
    if filter_channels != channels // groups:
        raise ValueError(
            f"{function}: input has {channels} channels but filters expect "
            f"{filter_channels * groups} (filters shape {kernels.shape}, "
            f"num_groups={groups}); with num_groups=g, filters.shape[1] must equal "
            "channels / g"
        )
    kernel_spatial = tuple(kernels.shape[2:])
    if 0 in kernel_spatial:
        raise ValueError(
            f"{function}: filters must have a non-empty kernel, got shape {kernels.shape}"
        )

    stride = per_axis(subsample, spatial_dims, function, "subsample")
    dilation = per_axis(filter_dilation, spatial_dims, function, "filter_dilation")
    input_spatial = tuple(data.shape[2:])
    for axis, (k, dil) in enumerate(zip(kernel_spatial, dilation)):
        if dilated_extent(k, dil) > MAX_LENGTH:
            raise ValueError(
                f"{function}: the dilated kernel extent along spatial axis {axis}, "
                f"{dilated_extent(k, dil)} (kernel {k}, dilation {dil}), is over 2**60; no input is "
                "that long: use a smaller filter_dilation"
            )
    padding = padding_from_border_mode(
        border_mode, input_spatial, kernel_spatial, stride, dilation, function
    )
    for axis, (size, (before, after)) in enumerate(zip(input_spatial, padding)):
        if size + before + after > MAX_LENGTH:
            raise ValueError(
                f"{function}: the padded input along spatial axis {axis}, {size + before + after} "
                f"(size {size}, padding ({before}, {after})), is over 2**60; use less padding "
                f"(border_mode={border_mode!r})"
            )

    output_spatial = []
    for axis, (size, k, (before, after), step, dil) in enumerate(
        zip(input_spatial, kernel_spatial, padding, stride, dilation)
    ):
        count = conv_output_length(size, k, (before, after), step, dil)
        if count == 0:
            raise ValueError(
                f"{function}: output would be empty along spatial axis {axis}: input size "
                f"{size} with padding ({before}, {after}) is smaller than the dilated kernel "
                f"extent {dilated_extent(k, dil)} (kernel {k}, dilation {dil}); use a larger "
                "input, more padding (e.g. border_mode='half' or 'full') or a smaller kernel"
            )
        output_spatial.append(count)
    output_shape = (batch, filter_count, *output_spatial)
    pad_mode = pad_mode if any(before or after for before, after in padding) else None

    if devices is not None:
        if pad_mode is not None:
            raise _host_only(boundary, function, "input")
        # Device operands reach the backend as given: it honours filter_flip itself.
        return ConvProblem(
            input=_device_operand(devices[0], dtype, function, "input"),
            filters=_device_operand(devices[1], dtype, function, "filters"),
            padding=padding,
            stride=stride,
            dilation=dilation,
            groups=groups,
            output_shape=output_shape,
            dtype=dtype,
            filter_flip=bool(filter_flip),
            on_device=True,
        )
    if batch == 0 or filter_count == 0 or channels == 0:
        if not geometry_only:
            _check_budget(function, (), dtype, output_shape)
        return np.zeros(output_shape, dtype=dtype)

    if filter_flip:
        kernels = kernels[(slice(None), slice(None)) + (slice(None, None, -1),) * spatial_dims]
    rule = "fill"
    if pad_mode is not None:
        # The border is filled by the rule from each channel's own samples: by the backend
        # if it extends the rule itself, else on a padded copy (which counts toward the
        # budget either way).  A fill value other than 0 is always written into a copy.
        widths = [(0, 0), (0, 0), *padding]
        padded_shape = tuple(
            size + before + after for size, (before, after) in zip(data.shape, widths)
        )
        if not geometry_only:
            _check_budget(function, (data, kernels), dtype, output_shape, padded_shape)
        if pad_mode != "constant":
            rule = _RULE_OF_PAD_MODE[pad_mode]
        elif not geometry_only:
            data = _padded_signal(data, widths, pad_mode, fillvalue, dtype)
            padding = ((0, 0),) * spatial_dims
    if not geometry_only:
        _check_budget(function, (data, kernels), dtype, output_shape)
    return ConvProblem(
        input=data if geometry_only else _readonly_contiguous(data, dtype),
        filters=_readonly_contiguous(kernels, dtype),
        padding=padding,
        stride=stride,
        dilation=dilation,
        groups=groups,
        output_shape=output_shape,
        dtype=dtype,
        filter_flip=bool(filter_flip),
        boundary=rule,
    )
