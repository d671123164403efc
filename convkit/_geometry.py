"""Shape geometry: pure functions of lengths, the one place each rule is computed.

Along one axis of a conv, a kernel of ``k`` taps with dilation ``d`` spans
``d * (k - 1) + 1`` input positions (:func:`dilated_extent`); a border mode
becomes ``(before, after)`` padding (:func:`conv_padding`); the output length
follows (:func:`conv_output_length`, :func:`conv_output_shape`).  For
``convolve_nd``, the output is a region of the full convolution
(:func:`convolve_output_region`), an axis on which either operand has length
1 is a broadcast rather than a convolution (:func:`convolved_axes`), and the
smaller operand acts as the kernel (:func:`kernel_operand`, SciPy's rule for
"valid").  The core, the conformance kit and the backends all use these.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence

import numpy as np

__all__ = [
    "MAX_LENGTH",
    "conv_output_length",
    "conv_output_shape",
    "conv_padding",
    "convolve_output_region",
    "convolved_axes",
    "dilated_extent",
    "kernel_operand",
]

#: The largest stride, dilation, padding or group count, and the largest padded
#: input length and dilated kernel extent along an axis: sums of a few such
#: lengths stay far inside the signed 64-bit integers backends index with.
MAX_LENGTH = 2**60

BORDER_MODES = ("valid", "full", "half", "same")
CONVOLVE_MODES = ("full", "valid", "same")


def is_scalar(value: object) -> bool:
    """Whether ``value`` is one item (not a sequence of them)."""
    if type(value) in (int, str, float, bool):  # the common case, without ABC checks
        return True
    if isinstance(value, np.ndarray):
        return value.ndim == 0
    if isinstance(value, (str, bytes)):
        return True
    return not isinstance(value, (Sequence, set, frozenset, dict))


def at_most_max_length(number: int, function: str, argument: str, given: object) -> int:
    """``number``, or a ValueError when it exceeds :data:`MAX_LENGTH`."""
    if number > MAX_LENGTH:
        raise ValueError(
            f"{function}: {argument} must be at most 2**60 (= {MAX_LENGTH}), got {given!r}; "
            "no array is that long, so a larger value cannot be meant"
        )
    return number


def per_axis(value: object, spatial_dims: int, function: str, argument: str) -> tuple[int, ...]:
    """An int or a tuple of ints, one per spatial axis, each from 1 to MAX_LENGTH."""
    if type(value) is int and 1 <= value <= MAX_LENGTH:
        return (value,) * spatial_dims
    if isinstance(value, np.ndarray):
        value = value.tolist()
    items = (value,) * spatial_dims if is_scalar(value) else tuple(value)
    if len(items) != spatial_dims or not all(is_scalar(item) for item in items):
        raise ValueError(
            f"{function}: {argument} must be an int or a tuple of {spatial_dims} ints "
            f"(one per spatial axis), got {value!r}"
        )
    result = []
    for item in items:
        if isinstance(item, (bool, np.bool_)):
            raise TypeError(f"{function}: {argument} must contain ints, got {value!r}")
        try:
            number = operator.index(item)
        except TypeError:
            raise TypeError(f"{function}: {argument} must contain ints, got {value!r}") from None
        if number < 1:
            raise ValueError(f"{function}: {argument} must be >= 1 in every axis, got {value!r}")
        result.append(at_most_max_length(number, function, argument, value))
    return tuple(result)


def dilated_extent(kernel_length: int, dilation: int = 1) -> int:
    """How many input positions a dilated kernel spans along one axis.

    Parameters
    ----------
    kernel_length : int
        Taps of the kernel along the axis, >= 1.
    dilation : int
        Distance between neighbouring taps, >= 1.

    Returns
    -------
    int
        ``dilation * (kernel_length - 1) + 1``.

    Examples
    --------
    >>> from convkit.plugin import dilated_extent
    >>> dilated_extent(3), dilated_extent(3, dilation=2), dilated_extent(1, dilation=5)
    (3, 5, 1)
    """
    return dilation * (kernel_length - 1) + 1


def _padding_amount(item: object, function: str, border_mode: object) -> int:
    if isinstance(item, (bool, np.bool_)):
        raise TypeError(f"{function}: border_mode padding must be ints, got {border_mode!r}")
    try:
        amount = operator.index(item)
    except TypeError:
        raise TypeError(
            f"{function}: border_mode padding must be ints, got {border_mode!r}"
        ) from None
    if amount < 0:
        raise ValueError(f"{function}: border_mode padding must be >= 0, got {border_mode!r}")
    return at_most_max_length(amount, function, "border_mode padding", border_mode)


def padding_from_border_mode(
    border_mode: object,
    input_shape: tuple[int, ...],
    kernel_shape: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    function: str,
) -> tuple[tuple[int, int], ...]:
    """:func:`conv_padding` on checked per-axis strides and dilations; errors name ``function``."""
    spatial_dims = len(input_shape)
    extents = [dilated_extent(k, d) for k, d in zip(kernel_shape, dilation)]
    if isinstance(border_mode, np.ndarray):
        border_mode = border_mode.tolist()
    if isinstance(border_mode, str):
        if border_mode == "valid":
            return ((0, 0),) * spatial_dims
        if border_mode == "full":
            return tuple((e - 1, e - 1) for e in extents)
        if border_mode == "half":
            return tuple((e // 2, e // 2) for e in extents)
        if border_mode == "same":
            padding = []
            for size, extent, step in zip(input_shape, extents, stride):
                wanted = -(-size // step)
                total = max((wanted - 1) * step + extent - size, 0)
                padding.append((total // 2, total - total // 2))
            return tuple(padding)
        raise ValueError(
            f"{function}: border_mode must be 'valid', 'full', 'half', 'same', an int, a "
            f"tuple of ints or a tuple of (before, after) pairs, got {border_mode!r}"
        )
    if is_scalar(border_mode):
        amount = _padding_amount(border_mode, function, border_mode)
        return ((amount, amount),) * spatial_dims
    if not isinstance(border_mode, Sequence) or len(border_mode) != spatial_dims:
        raise ValueError(
            f"{function}: border_mode as a tuple needs one entry per spatial axis "
            f"({spatial_dims}), got {border_mode!r}"
        )
    padding = []
    for item in border_mode:
        if isinstance(item, np.ndarray):
            item = item.tolist()
        if is_scalar(item):
            amount = _padding_amount(item, function, border_mode)
            padding.append((amount, amount))
        elif isinstance(item, Sequence) and len(item) == 2:
            padding.append(
                (
                    _padding_amount(item[0], function, border_mode),
                    _padding_amount(item[1], function, border_mode),
                )
            )
        else:
            raise ValueError(
                f"{function}: each border_mode entry must be an int or a (before, after) "
                f"pair, got {item!r} in {border_mode!r}"
            )
    return tuple(padding)


def conv_padding(
    border_mode: object,
    input_shape: Sequence[int],
    kernel_shape: Sequence[int],
    subsample: int | Sequence[int] = 1,
    filter_dilation: int | Sequence[int] = 1,
) -> tuple[tuple[int, int], ...]:
    """The ``(before, after)`` zero padding a conv border mode asks for, per spatial axis.

    Parameters
    ----------
    border_mode : str, int or tuple
        ``"valid"`` (none), ``"full"`` (the dilated extent minus one on each
        side), ``"half"`` (half the dilated extent, rounded down, on each
        side), ``"same"`` (output length ``ceil(input / stride)``, the odd
        unit after the data, as TensorFlow), an int (every side), a tuple of
        ints (per axis) or a tuple of ``(before, after)`` pairs.
    input_shape, kernel_shape : sequence of int
        The spatial lengths of one input image and of one filter.
    subsample, filter_dilation : int or sequence of int
        Stride and dilation, one for all axes or one per axis; >= 1.

    Returns
    -------
    tuple of (int, int)
        ``(before, after)`` per spatial axis.

    Raises
    ------
    TypeError, ValueError
        A border mode, stride or dilation of the wrong type or value.

    Examples
    --------
    >>> from convkit.plugin import conv_padding
    >>> conv_padding("half", (8, 8), (3, 3))
    ((1, 1), (1, 1))
    >>> conv_padding("full", (8,), (3,), filter_dilation=2)
    ((4, 4),)
    >>> conv_padding("same", (8,), (4,)), conv_padding("same", (8,), (4,), subsample=3)
    (((1, 2),), ((1, 1),))
    >>> conv_padding(((0, 2), 1), (8, 8), (3, 3))
    ((0, 2), (1, 1))
    """
    input_shape, kernel_shape = tuple(input_shape), tuple(kernel_shape)
    function = "conv_padding"
    if len(kernel_shape) != len(input_shape):
        raise ValueError(
            f"{function}: kernel_shape {kernel_shape} and input_shape {input_shape} must have "
            "one length per spatial axis each"
        )
    stride = per_axis(subsample, len(input_shape), function, "subsample")
    dilation = per_axis(filter_dilation, len(input_shape), function, "filter_dilation")
    return padding_from_border_mode(
        border_mode, input_shape, kernel_shape, stride, dilation, function
    )


def conv_output_length(
    input_length: int,
    kernel_length: int,
    padding: tuple[int, int] = (0, 0),
    stride: int = 1,
    dilation: int = 1,
) -> int:
    """The output length of a conv along one spatial axis.

    Parameters
    ----------
    input_length, kernel_length : int
        Lengths of the input and the (undilated) kernel along the axis.
    padding : (int, int)
        Zero padding ``(before, after)``.
    stride, dilation : int
        >= 1.

    Returns
    -------
    int
        ``(input + before + after - dilated_extent) // stride + 1``, or 0 when
        the dilated kernel is longer than the padded input.

    Examples
    --------
    >>> from convkit.plugin import conv_output_length
    >>> conv_output_length(8, 3), conv_output_length(8, 3, (1, 1), stride=2)
    (6, 4)
    >>> conv_output_length(3, 3, dilation=2)
    0
    """
    before, after = padding
    room = input_length + before + after - dilated_extent(kernel_length, dilation)
    return room // stride + 1 if room >= 0 else 0


def conv_output_shape(
    input_shape: Sequence[int],
    kernel_shape: Sequence[int],
    border_mode: object = "valid",
    subsample: int | Sequence[int] = 1,
    filter_dilation: int | Sequence[int] = 1,
) -> tuple[int, ...]:
    """The spatial output shape of a conv: :func:`conv_output_length` on every axis.

    Parameters
    ----------
    input_shape, kernel_shape, border_mode, subsample, filter_dilation
        As for :func:`conv_padding`.

    Returns
    -------
    tuple of int
        One length per spatial axis; 0 where the dilated kernel does not fit
        the padded input (the conv would refuse such a problem).

    Examples
    --------
    >>> from convkit.plugin import conv_output_shape
    >>> conv_output_shape((5, 5), (3, 3)), conv_output_shape((5, 5), (3, 3), "full")
    ((3, 3), (7, 7))
    >>> conv_output_shape((8, 7), (3, 3), "same", subsample=2)
    (4, 4)
    """
    input_shape, kernel_shape = tuple(input_shape), tuple(kernel_shape)
    padding = conv_padding(border_mode, input_shape, kernel_shape, subsample, filter_dilation)
    stride = per_axis(subsample, len(input_shape), "conv_output_shape", "subsample")
    dilation = per_axis(filter_dilation, len(input_shape), "conv_output_shape", "filter_dilation")
    return tuple(
        conv_output_length(size, k, pad, step, dil)
        for size, k, pad, step, dil in zip(input_shape, kernel_shape, padding, stride, dilation)
    )


def _axes_of(axes: int | Sequence[int] | None, ndim: int) -> tuple[int, ...]:
    if axes is None:
        return tuple(range(ndim))
    return tuple(sorted({axis % ndim for axis in ((axes,) if is_scalar(axes) else axes)}))


def kernel_operand(
    in1_shape: Sequence[int],
    in2_shape: Sequence[int],
    axes: int | Sequence[int] | None = None,
    mode: str = "full",
) -> int:
    """Which operand acts as the kernel of a convolution: the smaller one.

    It is ``in1`` (0) when ``in1`` has fewer points than ``in2`` over the
    convolved axes, else ``in2`` (1).  Axes on which either operand has length
    1 broadcast and do not count.  When one operand is at least as long as
    the other on every convolved axis, the other is the kernel: this is the
    swap SciPy makes in ``"valid"`` mode, where such an operand must exist.

    Parameters
    ----------
    in1_shape, in2_shape : sequence of int
        The operands' shapes, of equal length.
    axes : int, sequence of int or None
        The convolved axes (default: all).
    mode : {"full", "same", "valid"}
        With ``"valid"``, shapes where neither operand is at least as long as
        the other on every convolved axis are a ValueError.

    Returns
    -------
    int
        0 or 1.

    Examples
    --------
    >>> from convkit.plugin import kernel_operand
    >>> kernel_operand((10, 10), (3, 3)), kernel_operand((3, 3), (10, 10), mode="valid")
    (1, 0)
    >>> kernel_operand((1, 50), (7, 10), axes=(0, 1))  # axis 0 broadcasts: 10 < 50 points
    1
    """
    in1_shape, in2_shape = tuple(in1_shape), tuple(in2_shape)
    sized = [a for a in _axes_of(axes, len(in1_shape)) if in1_shape[a] != 1 and in2_shape[a] != 1]
    if mode == "valid":
        first_covers = all(in1_shape[a] >= in2_shape[a] for a in sized)
        second_covers = all(in2_shape[a] >= in1_shape[a] for a in sized)
        if not (first_covers or second_covers):
            raise ValueError(
                f"for 'valid' mode, one input must be at least as large as the other in every "
                f"convolved axis, got shapes {in1_shape} and {in2_shape} over axes "
                f"{_axes_of(axes, len(in1_shape))}; use mode='full' or 'same'"
            )
    first_points = math.prod(in1_shape[a] for a in sized)
    second_points = math.prod(in2_shape[a] for a in sized)
    return 0 if first_points < second_points else 1


def convolved_axes(
    in1_shape: Sequence[int],
    in2_shape: Sequence[int],
    mode: str = "full",
    axes: int | Sequence[int] | None = None,
) -> tuple[int, ...]:
    """The axes a ``convolve_nd`` call really convolves.

    An axis on which either operand has length 1 is a broadcast in disguise
    (SciPy's ``fftconvolve`` treats it so): its output has the broadcast
    length, from position 0, in every mode.  The exception is ``"same"``
    with ``in1`` of length 1 and ``in2`` longer, whose output is the single
    centre value of the full result: that axis stays convolved.  When every
    named axis broadcasts, the last one stays (a convolution of length-1
    axes is a product), so the result is never empty.

    Parameters
    ----------
    in1_shape, in2_shape : sequence of int
        The operands' shapes, of equal length.
    mode : {"full", "same", "valid"}
    axes : int, sequence of int or None
        The axes the user named (default: all).

    Returns
    -------
    tuple of int
        Sorted, non-negative, not empty.

    Examples
    --------
    >>> from convkit.plugin import convolved_axes
    >>> convolved_axes((2, 3, 5, 5), (1, 3, 3, 3))
    (1, 2, 3)
    >>> convolved_axes((1, 5), (4, 3), "same"), convolved_axes((4, 5), (1, 1))
    ((0, 1), (1,))
    """
    named = _axes_of(axes, len(in1_shape))
    kept = tuple(
        a
        for a in named
        if (in1_shape[a] != 1 and in2_shape[a] != 1)
        or (mode == "same" and in1_shape[a] == 1 and in2_shape[a] != 1)
    )
    return kept or named[-1:]


def convolve_output_region(
    in1_shape: Sequence[int],
    in2_shape: Sequence[int],
    mode: str = "full",
    axes: int | Sequence[int] | None = None,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Where a ``convolve_nd`` result lies inside the full convolution, and its shape.

    Along a convolved axis with lengths ``M`` (in1) and ``m`` (in2), the full
    result has ``M + m - 1`` values; ``"full"`` keeps them all, ``"same"``
    keeps ``M`` centred as SciPy centres them (from ``(m - 1) // 2``),
    ``"valid"`` keeps the ``|M - m| + 1`` that need no zero padding.  Other
    axes keep their broadcast length ``max(M, m)`` from 0, in every mode.

    Parameters
    ----------
    in1_shape, in2_shape : sequence of int
        The operands' shapes (in either order for ``"valid"``).
    mode : {"full", "same", "valid"}
    axes : int, sequence of int or None
        The convolved axes (default: all).

    Returns
    -------
    (tuple of int, tuple of int)
        The start of the region in the full result, and its shape.

    Examples
    --------
    >>> from convkit.plugin import convolve_output_region
    >>> convolve_output_region((10,), (4,), "same"), convolve_output_region((4,), (10,), "valid")
    (((1,), (10,)), ((3,), (7,)))
    >>> convolve_output_region((1, 100), (7, 10), "same", axes=1)
    ((0, 4), (7, 100))
    """
    convolved = _axes_of(axes, len(in1_shape))
    starts, sizes = [], []
    for axis, (a, b) in enumerate(zip(in1_shape, in2_shape)):
        if axis not in convolved:
            start, size = 0, max(a, b)
        elif mode == "full":
            start, size = 0, a + b - 1
        elif mode == "same":
            start, size = (b - 1) // 2, a
        else:
            start, size = min(a, b) - 1, abs(a - b) + 1
        starts.append(start)
        sizes.append(size)
    return tuple(starts), tuple(sizes)
