"""The normalized problems the core hands to a backend.

The core has already checked every argument, cast both operands to the
compute dtype, made them C-contiguous and read-only, flipped the filters when
``filter_flip`` was set, and worked out the output shape.  A backend only
computes.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

__all__ = ["ConvProblem", "ConvolveProblem", "Problem"]


@dataclass(frozen=True, eq=False)
class ConvolveProblem:
    """A normalized :func:`convkit.convolve_nd` problem.

    The backend returns the region ``full[output_slices]`` of the full linear
    convolution ``full``, where along each axis in ``axes``
    ``full[i] = sum_j in1[j] * in2[i - j]`` (length ``in1 + in2 - 1``) and the
    other axes broadcast (equal lengths, or one of them 1).  Terms exist only
    where both indices are inside the arrays: a non-finite value touches only
    the outputs whose sum contains it.

    Attributes
    ----------
    in1, in2 : numpy.ndarray
        C-contiguous, read-only, of dtype ``dtype`` and equal ``ndim >= 1``,
        neither empty.  In ``"valid"`` mode they are already swapped as SciPy
        swaps them.
    axes : tuple of int
        The convolved axes, non-negative, sorted, unique, not empty.  A
        named axis on which either operand has length 1 is not among them
        (it broadcasts, and its region is the broadcast one), except in
        ``"same"`` mode with ``in1`` of length 1 and ``in2`` longer; when every
        named axis broadcasts, the last one stays (see
        :func:`convkit.plugin.convolved_axes`).
    output_start : tuple of int
        Per axis, where the output begins inside the full result.  Always 0
        on the axes that are not convolved.
    output_shape : tuple of int
        The shape of the result the backend returns.  On the axes that are
        not convolved it is the broadcast length ``max(len1, len2)``, in
        every mode.
    dtype : numpy.dtype
        The compute dtype and the dtype of the result.
    on_device : bool
        True when the operands are GPU arrays (``__cuda_array_interface__`` or
        Numba device arrays), C-contiguous, of dtype ``dtype``, handed on
        unchanged; only backends whose capabilities declare
        ``device_arrays`` receive such problems, and they return a device
        array of the same kind.
    boundary : str
        How ``in1`` continues past its ends along ``axes``: ``"fill"``, with
        zeros (the terms above), or a rule, ``"wrap"``, ``"symm"``,
        ``"mirror"`` or ``"nearest"`` (see
        :func:`convkit.plugin.extension_index`), under which every index
        ``i - j`` of the sum exists and reads ``in1`` at
        ``extension_index(i - j, len(in1), boundary)``.  A backend sees a
        rule only if its capabilities name it in ``boundaries``; the others
        get the same problem on a padded copy.  With a rule, an axis on which
        ``in1`` has length 1 and ``in2`` is longer stays convolved.
    """

    in1: np.ndarray
    in2: np.ndarray
    axes: tuple[int, ...]
    output_start: tuple[int, ...]
    output_shape: tuple[int, ...]
    dtype: np.dtype
    on_device: bool = False
    boundary: str = "fill"

    operation = "convolve_nd"

    @property
    def full_shape(self) -> tuple[int, ...]:
        """Shape of the full convolution (broadcast on the other axes)."""
        return tuple(
            a + b - 1 if axis in self.axes else max(a, b)
            for axis, (a, b) in enumerate(zip(self.in1.shape, self.in2.shape))
        )

    @property
    def output_slices(self) -> tuple[slice, ...]:
        """The output region as slices into the full result."""
        return tuple(
            slice(start, start + size) for start, size in zip(self.output_start, self.output_shape)
        )

    @property
    def operands(self) -> tuple[np.ndarray, np.ndarray]:
        """The two arrays that are convolved, ``(in1, in2)``."""
        return self.in1, self.in2

    def with_operands(self, first: np.ndarray, second: np.ndarray, dtype=None) -> ConvolveProblem:
        """The same geometry with other operands (of dtype ``dtype``)."""
        return dataclasses.replace(
            self, in1=first, in2=second, dtype=np.dtype(dtype or first.dtype)
        )

    @property
    def spatial_dims(self) -> int:
        """Number of convolved axes."""
        return len(self.axes)

    @property
    def multiply_adds(self) -> int:
        """Multiply-adds of the direct method for this output region."""
        taps = math.prod(min(self.in1.shape[axis], self.in2.shape[axis]) for axis in self.axes)
        return math.prod(self.output_shape) * taps


@dataclass(frozen=True, eq=False)
class ConvProblem:
    """A normalized :func:`convkit.conv` problem (a CNN layer).

    With ``G = groups``, ``Cg = C // G`` and ``Fg = F // G``, the backend
    returns ``out`` of shape ``output_shape == (N, F, *out_spatial)`` where::

        out[n, f, o] = sum over c < Cg and kernel offsets k of
            input[n, (f // Fg) * Cg + c, o * stride - pad_before + k * dilation]
            * filters[f, c, k]

    taken only over input positions inside the input (padding adds no terms,
    so a non-finite filter value never meets a padded zero).  The filters are
    already flipped when the user asked for ``filter_flip=True``: every
    backend computes this cross-correlation.

    Attributes
    ----------
    input : numpy.ndarray
        ``(N, C, *spatial)``, C-contiguous, read-only, of dtype ``dtype``;
        N, C and F are all >= 1.
    filters : numpy.ndarray
        ``(F, C // groups, *kernel)``, same properties.
    padding : tuple of (int, int)
        ``(before, after)`` zero padding per spatial axis.
    stride, dilation : tuple of int
        Per spatial axis, all >= 1.
    groups : int
        Divides both C and F.
    output_shape : tuple of int
        ``(N, F, *out_spatial)``, every entry >= 1.
    dtype : numpy.dtype
        The compute dtype and the dtype of the result.
    filter_flip : bool
        What the user asked for; ``filters`` already reflects it, except on
        the device.
    on_device : bool
        True when ``input`` and ``filters`` are GPU arrays handed on unchanged
        (see :class:`ConvolveProblem`); then ``filters`` are *not* flipped and
        the backend honours ``filter_flip`` itself.
    boundary : str
        What fills ``padding``: ``"fill"``, zeros (no terms, as above), or a
        rule, ``"wrap"``, ``"symm"``, ``"mirror"`` or ``"nearest"``, under
        which every position of the padded range exists and reads the input
        channel at ``extension_index(position, size, boundary)`` per spatial
        axis (see :func:`convkit.plugin.extension_index`).  A backend sees a
        rule only if its capabilities name it in ``boundaries``; the others
        get the same problem on a padded copy, with ``padding`` all zero.
    """

    input: np.ndarray
    filters: np.ndarray
    padding: tuple[tuple[int, int], ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int
    output_shape: tuple[int, ...]
    dtype: np.dtype
    filter_flip: bool = True
    on_device: bool = False
    boundary: str = "fill"

    operation = "conv"

    @property
    def operands(self) -> tuple[np.ndarray, np.ndarray]:
        """The two arrays that are combined, ``(input, filters)``."""
        return self.input, self.filters

    def with_operands(self, first: np.ndarray, second: np.ndarray, dtype=None) -> ConvProblem:
        """The same geometry with other operands (of dtype ``dtype``)."""
        return dataclasses.replace(
            self, input=first, filters=second, dtype=np.dtype(dtype or first.dtype)
        )

    @property
    def spatial_dims(self) -> int:
        """Number of spatial axes."""
        return self.input.ndim - 2

    @property
    def kernel_shape(self) -> tuple[int, ...]:
        """The spatial shape of one filter."""
        return tuple(self.filters.shape[2:])

    @property
    def multiply_adds(self) -> int:
        """Multiply-adds of the direct method (padding taps included)."""
        return math.prod(self.output_shape) * math.prod(self.filters.shape[1:])


Problem = ConvProblem | ConvolveProblem
