"""What "auto" expects the "cuda" backend to take: a model fitted to H100 timings.

seconds = launch + host<->device copies (NumPy operands only)
          + max(multiply-adds / rate, bytes of the operands and result / device bandwidth)

``rate`` is the device's FMA peak (multiprocessors x FP32 lanes x clock;
FP64 at the chip's ratio) times the hot loop's FMA share for the problem's
register block (read off the compiled kernel by bench/cuda_kernels.py) times
an ``ACHIEVED`` fraction of that share.  ``ACHIEVED`` and
``COPY_BYTES_PER_SECOND`` were fitted to one run of bench/gpu.py on an H100
(bench/baseline/gpu-h100, bench/NOTES.md): the conv layers G2, G3, G5 and
the float64 layer came within 0.8-1.8x of the model; 1x1 layers (3.6x),
depthwise layers (8x) and long rows of convolve_nd (12x) take longer than
it says, and large kernels (64x64) far less.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from convkit.plugin import ConvProblem, Problem
from convkit_cuda._blocks import filters_per_thread

__all__ = ["DevicePeak", "device_peak", "estimate_seconds"]

LAUNCH_SECONDS = 20e-6
COPY_BYTES_PER_SECOND = (
    5e9  # pageable host memory, each way: 4.6-5.1 GB/s measured on an H100 machine
)
ACHIEVED = 0.05  # measured 0.03-0.065 on G2, G3, G5 (the assumption before any GPU timing was 0.4)
# FMA share of the hot loop by filters per thread (pixels 4, float32; bench/cuda_kernels.py).
FMA_SHARE = {1: 0.37, 2: 0.54, 4: 0.65, 8: 0.70}
# FP32 lanes per multiprocessor by compute capability (CUDA programming guide, arithmetic throughput).
_FP32_LANES = {(6, 0): 64, (7, 0): 64, (7, 2): 64, (7, 5): 64, (8, 0): 64}
_FULL_RATE_FP64 = {(6, 0), (7, 0), (8, 0), (9, 0), (10, 0)}  # data-centre chips: FP64 at half FP32


@dataclass(frozen=True)
class DevicePeak:
    """Peak fused multiply-adds per second of one GPU, by dtype, and its memory bandwidth."""

    name: str
    float32: float
    float64: float
    bytes_per_second: float


def device_peak(
    name: str,
    compute_capability: tuple[int, int],
    multiprocessors: int,
    clock_khz: int,
    memory_clock_khz: int,
    memory_bus_bits: int,
) -> DevicePeak:
    """The peaks from the device's attributes (double data rate memory)."""
    lanes = _FP32_LANES.get(tuple(compute_capability), 128)
    float32 = multiprocessors * lanes * clock_khz * 1e3
    float64 = float32 / 2 if tuple(compute_capability) in _FULL_RATE_FP64 else float32 / 64
    return DevicePeak(name, float32, float64, 2 * memory_clock_khz * 1e3 * memory_bus_bits / 8)


def estimate_seconds(problem: Problem, peak: DevicePeak) -> float:
    """Predicted seconds for ``problem`` on a device with ``peak``."""
    if isinstance(problem, ConvProblem):
        filters = filters_per_thread(problem.filters.shape[0] // problem.groups)
    else:
        filters = 1
    double = problem.dtype in (np.float64, np.complex128)
    rate = (peak.float64 if double else peak.float32) * FMA_SHARE[filters] * ACHIEVED
    if problem.dtype.kind == "c":
        rate /= 4  # a complex multiply-add is four real ones
    moved = (
        sum(operand.nbytes for operand in problem.operands)
        + math.prod(problem.output_shape) * problem.dtype.itemsize
    )
    seconds = LAUNCH_SECONDS + max(problem.multiply_adds / rate, moved / peak.bytes_per_second)
    if not problem.on_device:
        seconds += moved / COPY_BYTES_PER_SECOND
    return seconds
