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
    get_num_threads,
    with_local_nonfinite,
)
from convkit_fftw._conv import conv_within, conv_working_bytes, geometry, spectrum_points
from convkit_fftw._convolve import transform_shapes
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


def _workspace_budget(problem: Problem) -> int:
    """convkit's memory budget less what the operands and the result take."""
    output = math.prod(problem.output_shape) * problem.dtype.itemsize
    taken = sum(operand.nbytes for operand in problem.operands) + output
    return max(0, convkit.get_memory_limit() - taken)


class FftwBackend(Backend):
    """FFT convolution with cached FFTW plans, overlap-add and channel sums per frequency."""

    name = "fftw"
    capabilities = Capabilities(dtypes=ALL_DTYPES)
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
        budget = _workspace_budget(problem)
        if isinstance(problem, ConvProblem):
            needed = conv_working_bytes(
                problem.input.shape,
                problem.filters.shape,
                problem.padding,
                problem.dilation,
                problem.dtype,
                budget,
            )
        else:
            needed = self._convolve_bytes(problem, budget)
        output = math.prod(problem.output_shape) * problem.dtype.itemsize
        return needed + output + sum(operand.nbytes for operand in problem.operands)

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
        size = np.dtype(problem.dtype).itemsize
        real_size = size // 2 if problem.dtype.kind == "c" else size
        per_point = POINT_LOG_SECONDS[real_size] * (2 if problem.dtype.kind == "c" else 1)
        if isinstance(problem, ConvolveProblem):
            big, small, out, transform = transform_shapes(
                problem.in1.shape, problem.in2.shape, problem.axes
            )
            points = math.prod(big) + math.prod(small) + math.prod(out)
            return CALL_SECONDS + per_point * points * math.log2(max(2, transform))
        _, lengths, _ = geometry(
            problem.input.shape, problem.filters.shape, problem.padding, problem.dilation
        )
        batch, channels = problem.input.shape[:2]
        filters, group_channels = problem.filters.shape[:2]
        real_points = math.prod(lengths)
        log_length = math.log2(max(2, real_points))
        transforms = (batch * channels + filters * group_channels + batch * filters) * real_points
        sums = (
            batch * filters * group_channels * spectrum_points(lengths, problem.dtype.kind == "c")
        )
        return (
            CALL_SECONDS
            + per_point * transforms * log_length
            + CHANNEL_SUM_SECONDS[real_size] * sums
        )

    def convolve_nd(self, problem: ConvolveProblem) -> np.ndarray:
        return with_local_nonfinite(problem, self._convolve)

    def conv(self, problem: ConvProblem) -> np.ndarray:
        return with_local_nonfinite(problem, self._conv)

    @staticmethod
    def _convolve(problem: ConvolveProblem) -> np.ndarray:
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
