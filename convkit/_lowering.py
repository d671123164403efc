"""Run a convolve_nd problem of any rank on a backend that declares a rank limit.

Along a convolved axis, ``full[i] = sum_j kernel[j] * signal[i - j]``: the
convolution is the sum, over the kernel's indices ``j`` on that axis, of the
signal times one kernel slice, shifted by ``j``.  With the kernel cut to its
slice ``j`` (length 1) the axis is a broadcast, so each term is a problem of
one rank less.  A problem with more convolved axes than a backend's
``Capabilities.max_spatial_dims`` is lowered so, over the axes where the
kernel (the smaller operand) is shortest, into one problem per combination of
kernel indices; each is run on the backend and added into its output slice.

Every output is a sum of the same terms as before, in another order, so NaN
and inf stay local as the backend keeps them local in each part.  Device
operands are not lowered.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from convkit._backend import Backend, Delegating, reported_working_set
from convkit._errors import BackendResultError
from convkit._geometry import kernel_operand
from convkit._problems import ConvolveProblem, ConvProblem, Problem

__all__ = ["Lowered", "lowering_for"]


@dataclass(frozen=True)
class _Plan:
    """How one problem is lowered: which operand is the kernel and along which axes."""

    problem: ConvolveProblem
    kernel: int
    lowered: tuple[int, ...]
    kept: tuple[int, ...]

    @property
    def parts(self) -> int:
        """How many lower-rank problems the lowering runs (at most)."""
        kernel = self.problem.operands[self.kernel]
        return math.prod(kernel.shape[axis] for axis in self.lowered)

    def _part(
        self, index: dict[int, tuple[slice, slice]], output: dict[int, int]
    ) -> ConvolveProblem:
        """The problem on operand slices ``index[axis] = (kernel slice, other slice)``."""
        slices = ([slice(None)] * self.problem.in1.ndim, [slice(None)] * self.problem.in1.ndim)
        for axis, (kernel_slice, other_slice) in index.items():
            slices[self.kernel][axis] = kernel_slice
            slices[1 - self.kernel][axis] = other_slice
        first, second = (
            _contiguous(operand[tuple(where)])
            for operand, where in zip(self.problem.operands, slices)
        )
        start = tuple(
            0 if axis in output else begin for axis, begin in enumerate(self.problem.output_start)
        )
        shape = tuple(output.get(axis, size) for axis, size in enumerate(self.problem.output_shape))
        return dataclasses.replace(
            self.problem,
            in1=first,
            in2=second,
            axes=self.kept,
            output_start=start,
            output_shape=shape,
        )

    def largest_part(self) -> ConvolveProblem:
        """A part at least as large as every part: the whole other operand, one kernel slice."""
        other = self.problem.operands[1 - self.kernel]
        return self._part(
            {axis: (slice(0, 1), slice(None)) for axis in self.lowered},
            {axis: other.shape[axis] for axis in self.lowered},
        )

    def parts_and_targets(self) -> Iterator[tuple[ConvolveProblem, tuple[slice, ...]]]:
        """Each part, and the slice of the output it adds into."""
        problem = self.problem
        kernel, other = problem.operands[self.kernel], problem.operands[1 - self.kernel]
        for taps in itertools.product(*(range(kernel.shape[axis]) for axis in self.lowered)):
            index, output, target = {}, {}, [slice(None)] * kernel.ndim
            for axis, tap in zip(self.lowered, taps):
                start, size = problem.output_start[axis], problem.output_shape[axis]
                # Full output i takes other[i - tap]: the outputs of this region that have one.
                low, high = max(start, tap), min(start + size, tap + other.shape[axis])
                if low >= high:
                    break
                index[axis] = (slice(tap, tap + 1), slice(low - tap, high - tap))
                output[axis] = high - low
                target[axis] = slice(low - start, high - start)
            else:
                yield self._part(index, output), tuple(target)


def _contiguous(array: np.ndarray) -> np.ndarray:
    result = np.ascontiguousarray(array)
    if result is not array:
        result.flags.writeable = False
    return result


def _plan(problem: ConvolveProblem, max_axes: int) -> _Plan:
    first, second = problem.operands
    kernel = kernel_operand(first.shape, second.shape, problem.axes)
    lengths = problem.operands[kernel].shape
    # Loop over the kernel's shortest axes (fewest parts); on ties the leading ones, which
    # leaves the last axis, along which backends vectorize, convolved.
    by_length = sorted(problem.axes, key=lambda axis: (lengths[axis], axis))
    lowered = tuple(sorted(by_length[: len(problem.axes) - max_axes]))
    kept = tuple(axis for axis in problem.axes if axis not in lowered)
    return _Plan(problem, kernel, lowered, kept)


def lowering_for(backend: Backend, problem: Problem) -> int | None:
    """The rank ``problem`` must be lowered to for ``backend``, or None when it runs as it is.

    Only host ``convolve_nd`` problems with more convolved axes than the
    backend declares (``Capabilities.max_spatial_dims``) are lowered.
    """
    limit = backend.capabilities.max_spatial_dims
    if (
        limit is None
        or limit < 1
        or not isinstance(problem, ConvolveProblem)
        or problem.on_device
        or problem.spatial_dims <= limit
    ):
        return None
    return limit


class Lowered(Delegating):
    """A backend with a rank limit, running a higher-rank problem as a sum of lower-rank ones.

    What it says about a problem (why not, memory, method, time) is what the
    backend says about the largest part, with the time multiplied by the
    number of parts and the memory grown by the accumulated output and the
    part's operand copies.
    """

    def __init__(self, backend: Backend, max_axes: int) -> None:
        super().__init__(backend)
        self.max_axes = max_axes

    def why_not(self, problem: Problem) -> str | None:
        return self.backend.why_not(_plan(problem, self.max_axes).largest_part())

    def working_set_bytes(self, problem: Problem) -> int:
        part = _plan(problem, self.max_axes).largest_part()
        output = math.prod(problem.output_shape) * problem.dtype.itemsize
        return (
            reported_working_set(self.backend, part)
            + output
            + sum(operand.nbytes for operand in part.operands)
        )

    def method(self, problem: Problem) -> str:
        return self.backend.method(_plan(problem, self.max_axes).largest_part())

    def estimate_seconds(self, problem: Problem) -> float | None:
        plan = _plan(problem, self.max_axes)
        estimate = self.backend.estimate_seconds(plan.largest_part())
        return None if estimate is None else estimate * plan.parts

    def conv(self, problem: ConvProblem) -> np.ndarray:
        return self.backend.conv(problem)

    def convolve_nd(self, problem: ConvolveProblem) -> np.ndarray:
        return run_lowered(problem, self.max_axes, self.backend.convolve_nd, self.name)

    def describe(self, problem: ConvolveProblem) -> str:
        """How ``problem`` runs: as how many lower-rank parts, and why."""
        return (
            f"{self.name} takes at most {self.max_axes} convolved axes: this problem's "
            f"{problem.spatial_dims} run as a sum of {_plan(problem, self.max_axes).parts} "
            f"problems of {self.max_axes}"
        )

    def __repr__(self) -> str:
        return f"<convkit backend {self.name!r}, lowered to {self.max_axes} convolved axes>"


def run_lowered(
    problem: ConvolveProblem,
    max_axes: int,
    compute: Callable[[ConvolveProblem], np.ndarray],
    name: str,
) -> np.ndarray:
    """``problem``'s result as the sum of its lower-rank parts, each computed by ``compute``."""
    result = np.zeros(problem.output_shape, dtype=problem.dtype)
    for part, target in _plan(problem, max_axes).parts_and_targets():
        value = compute(part)
        shape = tuple(getattr(value, "shape", ()))
        if shape != part.output_shape or getattr(value, "dtype", None) != part.dtype:
            raise BackendResultError(
                f"backend {name!r} returned shape {shape} dtype {getattr(value, 'dtype', None)} "
                f"for a lowered convolve_nd part; expected {part.output_shape} {part.dtype}"
            )
        with np.errstate(invalid="ignore"):  # inf + -inf is NaN, as in the direct sum
            result[target] += value
    return result
