"""The "fftw" backend: FFT methods for both operations, through pyFFTW."""

from __future__ import annotations

import math

import numpy as np

import convkit
from convkit.plugin import (
    ALL_DTYPES,
    Availability,
    Backend,
    Capabilities,
    ConvolveProblem,
    ConvProblem,
    Problem,
    explicit_boundary,
    get_num_threads,
    with_local_nonfinite,
)
from convkit_fftw._conv import conv_within, conv_working_bytes, geometry, spectrum_points
from convkit_fftw._convolve import transform_shapes
from convkit_fftw._periodic import (
    circular_convolve,
    circular_shapes,
    circular_working_bytes,
    length_penalty,
)
from convkit_fftw._pieces import convolve_within, peak_bytes
from convkit_fftw._plans import get_planner_effort
from convkit_fftw._runtime import load_pyfftw

__all__ = ["FftwBackend"]

# Cost model (seconds), fitted to bench/ runs on the project's 2-core machine
# (bench/NOTES.md, "fftw"): a fixed cost per call, a cost per transformed
# point and log2 of the transform length, and for conv the channel sums.
CALL_SECONDS = 60e-6
POINT_LOG_SECONDS = {4: 0.13e-9, 8: 0.25e-9}
CHANNEL_SUM_SECONDS = {4: 0.4e-9, 8: 0.8e-9}
# A copy into a fresh array (the gathered region of a circular result), per byte
# written: 64 MiB took 11-14 ms (bench/NOTES.md, "Boundaries").
COPY_SECONDS_PER_BYTE = 0.2e-9
# Zero fill on the core's padded copy took 1.3-2.2x zero fill on the unpadded
# problem, and 1.2-2.2x what the per-point model predicts relative to the circular
# route, over eight shapes 1-D to 3-D (bench/NOTES.md, "fftw: wrap as a circular
# convolution"): the copy, and overlap-add's reshuffling passes, which the model
# leaves out.
PADDED_ROUTE_FACTOR = 1.5


def _workspace_budget(problem: Problem) -> int:
    """convkit's memory budget less what the operands and the result take."""
    output = math.prod(problem.output_shape) * problem.dtype.itemsize
    taken = sum(operand.nbytes for operand in problem.operands) + output
    return max(0, convkit.get_memory_limit() - taken)


class FftwBackend(Backend):
    """FFT convolution with cached FFTW plans, overlap-add and channel sums per frequency."""

    name = "fftw"
    # "wrap" is a circular convolution of the signal's own length (no padded copy) where
    # that transform length is fast enough; other rules reach it on the core's padded copy.
    capabilities = Capabilities(dtypes=ALL_DTYPES, boundaries=frozenset({"wrap"}))
    priority = 5

    def availability(self) -> Availability:
        try:
            pyfftw = load_pyfftw()
        except ImportError as error:
            return Availability(False, f"pyFFTW cannot be imported ({error}); pip install pyfftw")
        version = ".".join(str(part) for part in pyfftw.fftw_version_tuple)
        return Availability(True, device=f"CPU, FFTW {version}, planner {get_planner_effort()}")

    def method(self, problem: Problem) -> str:
        return "fft"

    def working_set_bytes(self, problem: Problem) -> int:
        if problem.boundary == "wrap" and not self.circular(problem):
            padded = explicit_boundary(problem, shape_only=True)
            signal = padded.input if isinstance(padded, ConvProblem) else padded.in1
            return self._working_set(padded) + math.prod(signal.shape) * padded.dtype.itemsize
        return self._working_set(problem)

    def _working_set(self, problem: Problem) -> int:
        """Bytes of the problem as it runs: zero fill, or "wrap" as a circular convolution."""
        output = math.prod(problem.output_shape) * problem.dtype.itemsize
        return (
            self._workspace_bytes(problem)
            + output
            + sum(operand.nbytes for operand in problem.operands)
        )

    def _workspace_bytes(self, problem: Problem) -> int:
        budget = _workspace_budget(problem)
        if isinstance(problem, ConvProblem):
            return conv_working_bytes(
                problem.input.shape,
                problem.filters.shape,
                problem.padding,
                problem.dilation,
                problem.dtype,
                budget,
                periodic=problem.boundary == "wrap",
            )
        if problem.boundary == "wrap":
            return circular_working_bytes(
                problem.in1.shape,
                problem.in2.shape,
                problem.axes,
                math.prod(problem.output_shape),
                problem.dtype,
            )
        return self._convolve_bytes(problem, budget)

    def circular(self, problem: Problem) -> bool:
        """Whether a "wrap" ``problem`` runs as a circular convolution of the signal's own
        length: when that fits the memory budget whole and is predicted faster than zero
        fill on a padded copy (which transforms a fast length, and is split when large)."""
        if self._workspace_bytes(problem) > _workspace_budget(problem):
            return False
        return self._seconds(problem) <= self._padded_seconds(problem)

    def _padded_seconds(self, problem: Problem) -> float:
        """Predicted seconds of zero fill on the padded copy of a "wrap" ``problem``."""
        return PADDED_ROUTE_FACTOR * self._seconds(explicit_boundary(problem, shape_only=True))

    @staticmethod
    def _convolve_bytes(problem: ConvolveProblem, budget: int) -> int:
        """Bytes of the largest piece when the problem is split to fit ``budget``."""
        return peak_bytes(
            problem.in1.shape,
            problem.in2.shape,
            problem.axes,
            problem.output_start,
            problem.output_shape,
            problem.dtype,
            budget,
        )

    def estimate_seconds(self, problem: Problem) -> float | None:
        if problem.boundary == "wrap" and not self.circular(problem):
            return self._padded_seconds(problem)
        return self._seconds(problem)

    @staticmethod
    def _seconds(problem: Problem) -> float:
        """Predicted seconds of the problem as it runs (zero fill, or "wrap" circular)."""
        size = np.dtype(problem.dtype).itemsize
        real_size = size // 2 if problem.dtype.kind == "c" else size
        per_point = POINT_LOG_SECONDS[real_size] * (2 if problem.dtype.kind == "c" else 1)
        periodic = problem.boundary == "wrap"
        if isinstance(problem, ConvolveProblem) and periodic:
            shapes = circular_shapes(problem.in1.shape, problem.in2.shape, problem.axes)
            points = sum(math.prod(shape) for shape in shapes)
            # A "same" region is the whole circular result; other regions are gathered.
            gather = 0.0
            if tuple(problem.output_shape) != shapes[2]:
                gather = COPY_SECONDS_PER_BYTE * math.prod(problem.output_shape) * size
            return CALL_SECONDS + per_point * points * _log_work(shapes[0], problem.axes) + gather
        if isinstance(problem, ConvolveProblem):
            big, small, out, transform = transform_shapes(
                problem.in1.shape, problem.in2.shape, problem.axes
            )
            points = math.prod(big) + math.prod(small) + math.prod(out)
            return CALL_SECONDS + per_point * points * math.log2(max(2, transform))
        _, lengths, axes = geometry(
            problem.input.shape, problem.filters.shape, problem.padding, problem.dilation, periodic
        )
        batch, channels = problem.input.shape[:2]
        filters, group_channels = problem.filters.shape[:2]
        real_points = math.prod(lengths)
        log_length = (
            _log_work(problem.input.shape, axes) if periodic else math.log2(max(2, real_points))
        )
        transforms = (batch * channels + filters * group_channels + batch * filters) * real_points
        sums = (
            batch * filters * group_channels * spectrum_points(lengths, problem.dtype.kind == "c")
        )
        return (
            CALL_SECONDS
            + per_point * transforms * log_length
            + CHANNEL_SUM_SECONDS[real_size] * sums
        )

    # Non-finite values stay local on the circular route too: with_local_nonfinite runs
    # the same (bilinear) route on 0/1 indicators, and the circular sum of the wrapped
    # signal has exactly the terms of the direct definition on its periodic extension.
    def convolve_nd(self, problem: ConvolveProblem) -> np.ndarray:
        if problem.boundary == "wrap" and not self.circular(problem):
            problem = explicit_boundary(problem)
        return with_local_nonfinite(problem, self._convolve)

    def conv(self, problem: ConvProblem) -> np.ndarray:
        if problem.boundary == "wrap" and not self.circular(problem):
            problem = explicit_boundary(problem)
        return with_local_nonfinite(problem, self._conv)

    @staticmethod
    def _convolve(problem: ConvolveProblem) -> np.ndarray:
        if problem.boundary == "wrap":
            return circular_convolve(
                problem.in1,
                problem.in2,
                problem.axes,
                problem.output_start,
                problem.output_shape,
                problem.dtype,
                get_num_threads(),
            )
        return convolve_within(
            problem.in1,
            problem.in2,
            problem.axes,
            problem.output_start,
            problem.output_shape,
            problem.dtype,
            get_num_threads(),
            _workspace_budget(problem),
        )

    @staticmethod
    def _conv(problem: ConvProblem) -> np.ndarray:
        return conv_within(problem, get_num_threads(), _workspace_budget(problem))


def _log_work(shape: tuple[int, ...], axes: tuple[int, ...]) -> float:
    """log2 of the transform's points, each axis weighted by how slowly FFTW transforms
    its length (1 for lengths with prime factors up to 7, the ones the padded route uses)."""
    return sum(math.log2(max(2, shape[axis])) * length_penalty(shape[axis]) for axis in axes)
