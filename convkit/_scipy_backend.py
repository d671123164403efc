"""The SciPy reference backend: simple, and obviously right.

``convolve_nd`` is :func:`scipy.signal.fftconvolve` in float64 (complex128)
followed by the non-finite rule; ``conv`` is an explicit loop over kernel
taps, each tap a strided slice of the input (only positions inside it, so
padding adds no terms) contracted with that tap's weights over the channels
of each group.  Both accumulate in double precision and round once.
"""

from __future__ import annotations

import itertools
import math
from importlib import metadata

import numpy as np

from convkit._backend import ALL_DTYPES, Availability, Backend, Capabilities
from convkit._config import get_num_threads
from convkit._nonfinite import with_local_nonfinite
from convkit._problems import ConvolveProblem, ConvProblem, Problem

__all__ = ["ScipyBackend", "tap_slices"]


def _wide(dtype: np.dtype) -> np.dtype:
    return np.dtype(np.complex128 if dtype.kind == "c" else np.float64)


def tap_slices(
    offset: int, input_size: int, output_size: int, stride: int, pad_before: int
) -> tuple[slice, slice] | None:
    """Where one kernel tap meets the input along one axis.

    The tap at ``offset`` (already times dilation) reads input position
    ``o * stride - pad_before + offset`` for output ``o``.  Returns the output
    slice and the input slice of the outputs whose position is inside the
    input, or None when there are none.
    """
    shift = offset - pad_before
    first = max(0, -(shift // stride))  # ceil(-shift / stride), exact for ints
    last = min(output_size - 1, (input_size - 1 - shift) // stride)
    if last < first:
        return None
    start = first * stride + shift
    return slice(first, last + 1), slice(start, start + (last - first) * stride + 1, stride)


class ScipyBackend(Backend):
    """Reference backend: defines correctness; every dtype, every problem."""

    name = "scipy"
    capabilities = Capabilities(dtypes=ALL_DTYPES)
    priority = -100

    @property
    def version(self) -> str:
        return metadata.version("scipy")

    def availability(self) -> Availability:
        try:
            metadata.version("scipy")
        except metadata.PackageNotFoundError:
            return Availability(False, "SciPy is not installed (pip install scipy)")
        return Availability(True, device=f"CPU, {get_num_threads()} threads for FFTs")

    def working_set_bytes(self, problem: Problem) -> int:
        first, second = problem.operands
        wide = _wide(problem.dtype).itemsize
        output = math.prod(problem.output_shape)
        if isinstance(problem, ConvolveProblem):
            # float64 copies of the inputs, three spectra of the padded size, full result.
            padded = math.prod(problem.full_shape)
            return (first.size + second.size) * wide + 4 * padded * 2 * wide + output * wide
        # float64 accumulator, one tap's product and the widened filters.
        return (output * 2 + first.size) * wide + second.size * wide

    def estimate_seconds(self, problem: Problem) -> float | None:
        """Calibrated on bench/baseline (2-core VM, bench/NOTES.md): FFT ~1 ns per point
        x log2(points); the tap loop ~8 GFLOP/s."""
        if isinstance(problem, ConvolveProblem):
            points = math.prod(problem.full_shape)
            transform = math.prod(problem.full_shape[a] for a in problem.axes)
            return 1e-4 + 1.0e-9 * points * math.log2(max(transform, 2))
        return 2e-4 + 2.0 * problem.multiply_adds / 8e9

    def method(self, problem: Problem) -> str:
        return "fft" if isinstance(problem, ConvolveProblem) else "direct"

    def convolve_nd(self, problem: ConvolveProblem) -> np.ndarray:
        return with_local_nonfinite(problem, self._fftconvolve).astype(problem.dtype)

    @staticmethod
    def _fftconvolve(problem: ConvolveProblem) -> np.ndarray:
        import scipy.fft
        import scipy.signal

        wide = _wide(problem.dtype)
        with scipy.fft.set_workers(get_num_threads()):
            full = scipy.signal.fftconvolve(
                problem.in1.astype(wide), problem.in2.astype(wide), mode="full", axes=problem.axes
            )
        return full[problem.output_slices]

    def conv(self, problem: ConvProblem) -> np.ndarray:
        batch, channels = problem.input.shape[:2]
        filter_count = problem.filters.shape[0]
        groups = problem.groups
        group_channels, group_filters = channels // groups, filter_count // groups
        spatial_input = problem.input.shape[2:]
        spatial_output = problem.output_shape[2:]
        wide = _wide(problem.dtype)

        grouped_input = problem.input.reshape(batch, groups, group_channels, *spatial_input)
        grouped_filters = problem.filters.astype(wide).reshape(
            groups, group_filters, group_channels, *problem.kernel_shape
        )
        output = np.zeros((batch, groups, group_filters, *spatial_output), dtype=wide)
        for tap in itertools.product(*(range(k) for k in problem.kernel_shape)):
            output_slices, input_slices = [], []
            for axis, k in enumerate(tap):
                slices = tap_slices(
                    k * problem.dilation[axis],
                    spatial_input[axis],
                    spatial_output[axis],
                    problem.stride[axis],
                    problem.padding[axis][0],
                )
                if slices is None:
                    break
                output_slices.append(slices[0])
                input_slices.append(slices[1])
            else:
                patch = grouped_input[(Ellipsis, *input_slices)].astype(wide)
                weights = grouped_filters[(slice(None), slice(None), slice(None), *tap)]
                with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf terms are meant
                    output[(Ellipsis, *output_slices)] += np.einsum(
                        "ngc...,gfc->ngf...", patch, weights
                    )
        return output.reshape(problem.output_shape).astype(problem.dtype)
