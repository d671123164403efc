"""Run the gradients of a conv on any backend that does ``conv``: lower them to forward problems.

Input gradient.  Along one spatial axis the forward reads input position
``i = o * s - p + k * d`` for output ``o`` and tap ``k`` (stride ``s``,
dilation ``d``, padding before ``p``), so ``grad[i]`` sums
``output_grad[o] * filters[k]`` over the pairs with ``o * s == i + p - k * d``.
Split the input positions by ``r = (i + p) mod s``: only the taps with
``k * d = r (mod s)`` reach them, a progression of step ``s / gcd(s, d)``,
and for those ``o = t - (k * d - r) / s`` with ``t = (i + p - r) / s``.  Each
such phase is a stride-1 forward conv of ``output_grad`` (not dilated: no
zeros are inserted, so the work is that of the direct definition and a
non-finite value meets no product with an inserted zero) with its taps,
reversed, as a kernel of dilation ``d / gcd(s, d)``, and the filters' two
channel axes swapped within each group.  Its padding is what the reversed
kernel needs to reach every ``t`` of the phase (cropping ``output_grad`` where
that is negative); the phases interleave into the result.  With stride 1 there
is one phase: the familiar "full" correlation with the flipped kernel.
Positions that no tap reaches (trailing samples a stride skips, or between
dilated taps) stay 0.

Filter gradient.  ``grad[f, c, k]`` sums ``output_grad[n, f, o] * input[n, c,
o * s - p + k * d]`` over ``n`` and ``o``: a forward conv whose batch is the
input's channels, whose channels are the batch (per group), whose filters are
the output gradient, with the forward's dilation as stride and its stride as
dilation.  One problem, with ``groups`` groups of ``N`` channels.

Every output is a sum of exactly the direct definition's terms, so the
lowering keeps NaN and inf as local as the backend keeps them in ``conv``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from convkit._backend import Delegating, reported_working_set
from convkit._device import stand_in
from convkit._errors import BackendResultError
from convkit._gradient_problems import (
    GRADIENT_OPERATIONS,
    ConvGradFiltersProblem,
    ConvGradInputProblem,
    Folding,
    GradientProblem,
)
from convkit._problems import ConvProblem
from convkit._structure import zero_outputs_without_terms

__all__ = [
    "LoweredGradient",
    "finish",
    "gradient_lowering_applies",
    "lowered_problems",
]


@dataclass(frozen=True)
class _AxisPhase:
    """One phase of the input gradient along one axis."""

    start: int  # the first input position of the phase (its positions step by the stride)
    count: int  # how many input positions it has
    taps: tuple[int, ...]  # the kernel taps that reach it, reversed (a correlation kernel)
    dilation: int
    padding: tuple[int, int]
    window: slice  # the part of the output gradient it reads


def _axis_phases(
    length: int, output_length: int, kernel: int, pad_before: int, stride: int, dilation: int
) -> list[_AxisPhase]:
    """The phases of one axis that have terms (the others are 0)."""
    common = math.gcd(stride, dilation)
    phases = []
    # Only the residues some tap lands on have terms: at most ``kernel`` of them,
    # however large the stride (a loop over every residue would not end).
    for residue in sorted({k * dilation % stride for k in range(kernel)}):
        taps = [k for k in range(kernel) if (k * dilation - residue) % stride == 0]
        first = -((residue - pad_before) // stride)
        last = (length - 1 + pad_before - residue) // stride
        count = last - first + 1
        if not taps or count <= 0:
            continue
        step = dilation // common
        reach = (len(taps) - 1) * step
        before = (taps[0] * dilation - residue) // stride + reach - first
        after = count + reach - output_length - before
        window = slice(max(0, -before), output_length - max(0, -after))
        if window.stop <= window.start:
            continue  # no output reads these positions
        phases.append(
            _AxisPhase(
                start=residue - pad_before + stride * first,
                count=count,
                taps=tuple(reversed(taps)),
                dilation=step,
                padding=(max(0, before), max(0, after)),
                window=window,
            )
        )
    return phases


def _swapped_filters(filters: np.ndarray, groups: int) -> np.ndarray:
    """``(F, C/G, *k)`` to ``(C, F/G, *k)``: each group's two channel axes exchanged."""
    count, group_channels = filters.shape[:2]
    kernel = filters.shape[2:]
    grouped = filters.reshape(groups, count // groups, group_channels, *kernel)
    return grouped.transpose(0, 2, 1, *range(3, 3 + len(kernel))).reshape(
        groups * group_channels, count // groups, *kernel
    )


def _readonly(array: np.ndarray) -> np.ndarray:
    result = np.ascontiguousarray(array)
    if result is array:
        result = result.view()
    result.flags.writeable = False
    return result


def _input_parts(
    problem: ConvGradInputProblem, geometry_only: bool
) -> Iterator[tuple[ConvProblem, tuple[slice, ...]]]:
    """The forward problems of the input gradient, and where each one's result goes."""
    grad, filters = problem.output_grad, problem.filters
    spatial = problem.output_shape[2:]
    per_axis = [
        _axis_phases(length, out, k, before, step, dil)
        for length, out, k, (before, _), step, dil in zip(
            spatial,
            grad.shape[2:],
            problem.kernel_shape,
            problem.padding,
            problem.stride,
            problem.dilation,
        )
    ]
    swapped = None if geometry_only else _swapped_filters(filters, problem.groups)
    batch, channels = problem.output_shape[:2]
    for phases in itertools.product(*per_axis):
        windows = tuple(phase.window for phase in phases)
        grad_shape = grad.shape[:2] + tuple(w.stop - w.start for w in windows)
        kernel_shape = (channels, grad.shape[1] // problem.groups) + tuple(
            len(phase.taps) for phase in phases
        )
        if geometry_only:
            grad_part = stand_in(grad_shape, problem.dtype)
            filters_part = stand_in(kernel_shape, problem.dtype)
        else:
            grad_part = _readonly(grad[(slice(None), slice(None), *windows)])
            taps = np.ix_(*(np.array(phase.taps, dtype=np.intp) for phase in phases))
            filters_part = _readonly(swapped[(slice(None), slice(None), *taps)])
        part = ConvProblem(
            input=grad_part,
            filters=filters_part,
            padding=tuple(phase.padding for phase in phases),
            stride=(1,) * len(phases),
            dilation=tuple(phase.dilation for phase in phases),
            groups=problem.groups,
            output_shape=(batch, channels, *(phase.count for phase in phases)),
            dtype=problem.dtype,
            filter_flip=False,
        )
        target = tuple(
            slice(phase.start, phase.start + step * (phase.count - 1) + 1, step)
            for phase, step in zip(phases, problem.stride)
        )
        yield part, (slice(None), slice(None), *target)


def _filters_part(problem: ConvGradFiltersProblem, geometry_only: bool) -> ConvProblem | None:
    """The forward problem of the filter gradient, or None when it has no terms at all."""
    data, grad = problem.input, problem.output_grad
    batch, channels = data.shape[:2]
    groups = problem.groups
    group_channels = channels // groups
    spatial_dims = problem.spatial_dims
    kernel = problem.kernel_shape
    lengths, padding = [], []
    for size, out, k, (before, _), step, dil in zip(
        data.shape[2:], grad.shape[2:], kernel, problem.padding, problem.stride, problem.dilation
    ):
        # The padded length the gradient's windows read: up to the last tap of the last output.
        used = (k - 1) * dil + (out - 1) * step + 1 - before
        if used <= 0:
            return None  # every window lies in the padding before the data
        lengths.append(min(size, used))
        padding.append((before, max(0, used - size)))
    shape = (group_channels, groups * batch, *lengths)
    filters_shape = (grad.shape[1], batch, *grad.shape[2:])
    if geometry_only:
        lowered_input = stand_in(shape, problem.dtype)
        lowered_filters = stand_in(filters_shape, problem.dtype)
    else:
        cropped = data[(slice(None), slice(None), *(slice(0, n) for n in lengths))]
        grouped = cropped.reshape(batch, groups, group_channels, *lengths)
        lowered_input = _readonly(
            grouped.transpose(2, 1, 0, *range(3, 3 + spatial_dims)).reshape(shape)
        )
        lowered_filters = _readonly(grad.transpose(1, 0, *range(2, 2 + spatial_dims)))
    return ConvProblem(
        input=lowered_input,
        filters=lowered_filters,
        padding=tuple(padding),
        stride=problem.dilation,
        dilation=problem.stride,
        groups=groups,
        output_shape=(group_channels, grad.shape[1], *kernel),
        dtype=problem.dtype,
        filter_flip=False,
    )


def lowered_problems(problem: GradientProblem) -> list[ConvProblem]:
    """The forward conv problems a gradient problem runs as on a backend without a native kernel.

    Their operands are zero-memory stand-ins of the right shapes and dtype:
    they describe the work, for ``why_not``, ``working_set_bytes``,
    ``estimate_seconds`` and ``method``, which is what the core asks a
    backend about them when it lowers a gradient.

    Parameters
    ----------
    problem : ConvGradInputProblem or ConvGradFiltersProblem

    Returns
    -------
    list of ConvProblem
        One per phase of the stride for the input gradient (phases that no
        tap reaches are left out), one for the filter gradient (none when
        every window lies in the padding).

    Examples
    --------
    >>> import numpy as np
    >>> from convkit.plugin import lowered_problems, normalize_conv_grad_input
    >>> problem = normalize_conv_grad_input(np.ones((1, 1, 4)), np.ones((1, 1, 3)), (1, 1, 8),
    ...                                     border_mode="half", subsample=2)
    >>> [(part.stride, part.padding, part.output_shape) for part in lowered_problems(problem)]
    [((1,), ((0, 1),), (1, 1, 4)), ((1,), ((0, 0),), (1, 1, 4))]
    """
    if isinstance(problem, ConvGradInputProblem):
        return [part for part, _ in _input_parts(problem, geometry_only=True)]
    part = _filters_part(problem, geometry_only=True)
    return [] if part is None else [part]


def gradient_lowering_applies(offered: frozenset[str], problem: object) -> bool:
    """Whether ``problem`` runs lowered on a backend that offers ``offered``."""
    operation = getattr(problem, "operation", None)
    return operation in GRADIENT_OPERATIONS and operation not in offered and "conv" in offered


def _checked(name: str, value: object, part: ConvProblem) -> np.ndarray:
    shape = tuple(getattr(value, "shape", ()))
    if shape != part.output_shape or getattr(value, "dtype", None) != part.dtype:
        raise BackendResultError(
            f"backend {name!r} returned shape {shape} dtype {getattr(value, 'dtype', None)} "
            f"for a conv that a gradient lowers to; expected {part.output_shape} {part.dtype}"
        )
    result = np.asarray(value)
    if not result.flags.writeable:
        result = result.copy()
    zero_outputs_without_terms(part, result)
    return result


class LoweredGradient(Delegating):
    """A backend without a native gradient, running it as the forward problems it lowers to.

    What it says about a gradient problem is what the backend says about
    those forward problems: the first refusal, the most memory of any (with
    the lowered operands' copies and the accumulated result), the summed time.
    """

    def why_not(self, problem) -> str | None:
        for part in lowered_problems(problem):
            reason = self.backend.why_not(part)
            if reason:
                return f"cannot run the conv that {problem.operation} lowers to: {reason}"
        return None

    def working_set_bytes(self, problem) -> int:
        output = math.prod(problem.output_shape) * problem.dtype.itemsize
        copies = sum(operand.nbytes for operand in problem.operands)
        parts = [
            reported_working_set(self.backend, part)
            + sum(operand.size for operand in part.operands) * problem.dtype.itemsize
            for part in lowered_problems(problem)
        ]
        return output + copies + max(parts, default=0)

    def method(self, problem) -> str:
        methods = {self.backend.method(part) for part in lowered_problems(problem)}
        return "fft" if "fft" in methods else "direct"

    def estimate_seconds(self, problem) -> float | None:
        estimates = [self.backend.estimate_seconds(part) for part in lowered_problems(problem)]
        if any(estimate is None for estimate in estimates):
            return None
        return sum(estimates)

    def conv_grad_input(self, problem: ConvGradInputProblem) -> np.ndarray:
        result = np.zeros(problem.output_shape, dtype=problem.dtype)
        for part, target in _input_parts(problem, geometry_only=False):
            result[target] = _checked(self.name, self.backend.conv(part), part)
        return result

    def conv_grad_filters(self, problem: ConvGradFiltersProblem) -> np.ndarray:
        part = _filters_part(problem, geometry_only=False)
        if part is None:
            return np.zeros(problem.output_shape, dtype=problem.dtype)
        value = _checked(self.name, self.backend.conv(part), part)
        return np.ascontiguousarray(value.swapaxes(0, 1))

    def __repr__(self) -> str:
        return f"<convkit backend {self.name!r}, gradients lowered to conv>"


def _fold(gradient: np.ndarray, widths: list[tuple[int, int]], pad_mode: str) -> np.ndarray:
    """The gradient of the unpadded signal: each padded sample's gradient added to its source.

    ``numpy.pad`` of the indices, with the boundary's mode, gives for each
    padded position the sample it copies.
    """
    for axis, (before, after) in enumerate(widths):
        if not before and not after:
            continue
        length = gradient.shape[axis] - before - after
        sources = np.pad(np.arange(length), (before, after), mode=pad_mode)
        moved = np.moveaxis(gradient, axis, 0)
        folded = moved[before : before + length].copy()
        edges = [*range(before), *range(before + length, before + length + after)]
        with np.errstate(invalid="ignore", over="ignore"):  # inf + -inf is NaN, as summed
            np.add.at(folded, sources[edges], moved[edges])
        gradient = np.moveaxis(folded, 0, axis)
    return np.ascontiguousarray(gradient)


def finish(result: np.ndarray, folding: Folding, spatial_dims: int) -> np.ndarray:
    """The backend's gradient as the user asked for it: folded back, or flipped."""
    if folding.widths is not None:
        result = _fold(result, folding.widths, folding.pad_mode)
    if folding.flip:
        result = np.ascontiguousarray(
            result[(slice(None), slice(None)) + (slice(None, None, -1),) * spatial_dims]
        )
    return result
