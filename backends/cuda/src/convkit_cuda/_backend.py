"""The "cuda" backend: lay each problem out as tasks for the tiled kernel, run it on the GPU."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np

from convkit.plugin import (
    ALL_DTYPES,
    Availability,
    Backend,
    Capabilities,
    ConvolveProblem,
    ConvProblem,
    Problem,
    kernel_operand,
)
from convkit_cuda._blocks import filters_per_thread, grid_for, plan_launch
from convkit_cuda._compat import prepare_compiler
from convkit_cuda._cost import DevicePeak, device_peak, estimate_seconds
from convkit_cuda._simulator import simulated
from convkit_cuda._streams import stream_for

__all__ = ["CudaBackend"]

SPATIAL = 3
# Threads per block along each axis on a GPU (16 x 16 = 256); the simulator
# runs every thread as a Python thread, so it gets small blocks.
GPU_THREADS = 16
SIMULATOR_THREADS = 4
# Appended to every "no GPU" reason, so that `convkit info` says how to run the backend anyway.
SIMULATOR_HINT = (
    "; set NUMBA_ENABLE_CUDASIM=1 to run it on Numba's CUDA simulator "
    "(no GPU needed, slow; auto never picks it)"
)


def _lift(values, fill: int) -> tuple[int, int, int]:
    values = tuple(int(v) for v in values)
    return (fill,) * (SPATIAL - len(values)) + values


@dataclass(frozen=True)
class _Layout:
    """What the kernel needs for one problem: the operands flattened, tasks and their offsets.

    A task reads ``channels`` input planes from ``x_base[task]`` on, ``x_step``
    apart, and computes ``filters`` output planes; filter ``f`` of a task reads
    its weights from ``w_base[task * filters + f]`` (``w_step`` apart per
    channel) and writes at ``out_base[task * filters + f]``; -1 marks a lane
    past the end of a group.
    """

    x: object
    w: object
    x_base: np.ndarray
    w_base: np.ndarray
    out_base: np.ndarray
    filters: int
    channels: int
    x_step: int
    w_step: int
    x_strides: tuple[int, int, int]
    w_strides: tuple[int, int, int]
    out_strides: tuple[int, int, int]
    in_shape: tuple[int, int, int]
    kernel_shape: tuple[int, int, int]
    padding: tuple[int, int, int]
    stride: tuple[int, int, int]
    dilation: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    flip: bool
    output_shape: tuple[int, ...]


def _conv_layout(problem: ConvProblem) -> _Layout:
    image, weights = _device_view(problem.input), _device_view(problem.filters)
    batch, channels = image.shape[:2]
    filters, group_channels = weights.shape[:2]
    groups = problem.groups
    group_filters = filters // groups
    block = filters_per_thread(group_filters)
    blocks = -(-group_filters // block)
    spatial_in, kernel, spatial_out = image.shape[2:], weights.shape[2:], problem.output_shape[2:]
    plane_in, taps, plane_out = math.prod(spatial_in), math.prod(kernel), math.prod(spatial_out)
    n = np.arange(batch, dtype=np.int64)[:, None, None, None]
    g = np.arange(groups, dtype=np.int64)[None, :, None, None]
    within = (
        np.arange(blocks, dtype=np.int64)[:, None] * block + np.arange(block, dtype=np.int64)
    )[None, None]
    lanes = (batch, groups, blocks, block)
    valid = np.broadcast_to(within < group_filters, lanes)
    filter_index = g * group_filters + within
    x_base = np.broadcast_to(
        (n * channels + g * group_channels) * plane_in, (batch, groups, blocks, 1)
    )
    w_base = np.where(valid, filter_index * group_channels * taps, -1)
    out_base = np.where(valid, (n * filters + filter_index) * plane_out, -1)
    in3, kernel3, out3 = _lift(spatial_in, 1), _lift(kernel, 1), _lift(spatial_out, 1)
    return _Layout(
        image.ravel(),
        weights.ravel(),
        np.ascontiguousarray(x_base.reshape(-1)),
        np.ascontiguousarray(w_base.reshape(-1)),
        np.ascontiguousarray(out_base.reshape(-1)),
        block,
        group_channels,
        plane_in,
        taps,
        _contiguous_strides(in3),
        _contiguous_strides(kernel3),
        _contiguous_strides(out3),
        in3,
        kernel3,
        _lift((before for before, _ in problem.padding), 0),
        _lift(problem.stride, 1),
        _lift(problem.dilation, 1),
        out3,
        # Host filters come flipped by the core; device filters come as given.
        problem.on_device and problem.filter_flip,
        problem.output_shape,
    )


def _contiguous_strides(shape3: tuple[int, int, int]) -> tuple[int, int, int]:
    return (shape3[1] * shape3[2], shape3[2], 1)


def _element_strides(array) -> np.ndarray:
    return np.array(array.strides, dtype=np.int64) // np.dtype(array.dtype).itemsize


def _device_view(array):
    """NumPy arrays as they are; a device array as a Numba device array (no copy)."""
    if isinstance(array, np.ndarray) or hasattr(array, "copy_to_host"):
        return array
    from numba import cuda

    return cuda.as_cuda_array(array)


def _convolve_layout(problem: ConvolveProblem) -> _Layout:
    first, second = _device_view(problem.in1), _device_view(problem.in2)
    axes = problem.axes
    # The kernel loops over w: let it be the operand with fewer points on the convolved axes
    # (full convolution is symmetric; "valid" already has the larger one first).
    if kernel_operand(first.shape, second.shape, axes) == 0:
        first, second = second, first
    ndim = first.ndim
    batch_axes = [a for a in range(ndim) if a not in axes]
    batch_shape = tuple(problem.output_shape[a] for a in batch_axes)
    out_strides_all = np.array(
        [math.prod(problem.output_shape[a + 1 :]) for a in range(ndim)], dtype=np.int64
    )
    index = (
        np.indices(batch_shape, dtype=np.int64).reshape(len(batch_axes), -1)
        if batch_axes
        else np.zeros((0, 1), dtype=np.int64)
    )
    offsets = []
    for operand in (first, second):
        strides = _element_strides(operand)
        offset = np.zeros(index.shape[1], dtype=np.int64)
        for row, axis in enumerate(batch_axes):
            if operand.shape[axis] > 1:
                offset += index[row] * strides[axis]
        offsets.append(offset)
    out_offsets = np.zeros(index.shape[1], dtype=np.int64)
    for row, axis in enumerate(batch_axes):
        out_offsets += index[row] * out_strides_all[axis]

    def lift_axes(values, fill: int) -> tuple[int, int, int]:
        return _lift([values[a] for a in axes], fill)

    # full[i] = sum_j in1[j] in2[i - j]: output o (full index start + o) reads x at o - pad + k
    # against the flipped kernel, pad = m - 1 - start.
    padding = lift_axes(
        [second.shape[a] - 1 - problem.output_start[a] if a in axes else 0 for a in range(ndim)], 0
    )
    return _Layout(
        first.ravel(),
        second.ravel(),
        offsets[0],
        offsets[1],
        out_offsets,
        1,
        1,
        0,
        0,
        lift_axes(_element_strides(first), 0),
        lift_axes(_element_strides(second), 0),
        lift_axes(out_strides_all, 0),
        lift_axes(first.shape, 1),
        lift_axes(second.shape, 1),
        padding,
        (1,) * SPATIAL,
        (1,) * SPATIAL,
        lift_axes(problem.output_shape, 1),
        True,
        problem.output_shape,
    )


@cache
def _device_peak() -> DevicePeak | None:
    """The current GPU's FMA peak (None on the simulator or without a GPU)."""
    if simulated():
        return None
    from numba import cuda

    try:
        device = cuda.get_current_device()
        name = device.name.decode() if isinstance(device.name, bytes) else str(device.name)
        return device_peak(
            name,
            device.compute_capability,
            device.MULTIPROCESSOR_COUNT,
            device.CLOCK_RATE,
            device.MEMORY_CLOCK_RATE,
            device.GLOBAL_MEMORY_BUS_WIDTH,
        )
    except Exception:  # noqa: BLE001 - no usable device: no estimate
        return None


class CudaBackend(Backend):
    """Shared-memory tiled CUDA kernels for conv and convolve_nd (float32/64, complex64/128)."""

    name = "cuda"
    capabilities = Capabilities(dtypes=ALL_DTYPES, max_spatial_dims=SPATIAL, device_arrays=True)
    priority = 20

    def availability(self) -> Availability:
        try:
            from numba import cuda
        except ImportError as error:
            return Availability(
                False, f"numba-cuda cannot be imported ({error}); pip install numba-cuda"
            )
        if simulated():
            return Availability(
                True, device="Numba CUDA simulator (NUMBA_ENABLE_CUDASIM=1)", simulated=True
            )
        try:
            if not cuda.is_available():
                return Availability(
                    False,
                    "no CUDA driver or GPU found (numba.cuda.is_available() is False)"
                    + SIMULATOR_HINT,
                )
            device = cuda.get_current_device()
            prepare_compiler()
        except Exception as error:  # noqa: BLE001 - any driver failure means: not available
            return Availability(
                False, f"CUDA driver error: {type(error).__name__}: {error}{SIMULATOR_HINT}"
            )
        name = device.name.decode() if isinstance(device.name, bytes) else str(device.name)
        return Availability(True, device=f"{name} (compute capability {device.compute_capability})")

    def threads(self) -> int | None:
        return None

    def estimate_seconds(self, problem: Problem) -> float | None:
        # A model from the device's peak, not yet fitted to GPU timings (_cost.py, bench/NOTES.md).
        peak = _device_peak()
        return None if peak is None else estimate_seconds(problem, peak)

    def conv(self, problem: ConvProblem) -> np.ndarray:
        return _run(_conv_layout(problem), problem)

    def convolve_nd(self, problem: ConvolveProblem) -> np.ndarray:
        return _run(_convolve_layout(problem), problem)


def _run(layout: _Layout, problem: Problem):
    from numba import cuda

    from convkit_cuda._kernels import correlate_kernel

    if not simulated():
        prepare_compiler()
    dtype_name = np.dtype(problem.dtype).name
    plan = plan_launch(
        layout.kernel_shape[1:],
        layout.stride[1:],
        layout.dilation[1:],
        layout.out_shape[2],
        layout.channels,
        layout.filters,
        dtype_name,
        SIMULATOR_THREADS if simulated() else GPU_THREADS,
    )
    kernel = correlate_kernel(
        dtype_name, plan.pixels, plan.filters, plan.threads_x, layout.stride[2] == 1
    )
    stream, wait = stream_for(problem)

    def on_device(array):
        if isinstance(array, np.ndarray):
            return cuda.to_device(np.ascontiguousarray(array), stream=stream)
        return array

    out = cuda.device_array(math.prod(layout.output_shape), dtype=problem.dtype, stream=stream)
    # The simulator pays per Python thread: one block column loops over every task there.
    grid = grid_for(
        layout.out_shape, plan, layout.x_base.shape[0], max_grid_z=1 if simulated() else 65535
    )
    kernel[grid, (plan.threads_x, plan.threads_y), stream](
        on_device(layout.x),
        on_device(layout.w),
        on_device(layout.x_base),
        on_device(layout.w_base),
        on_device(layout.out_base),
        layout.channels,
        layout.x_step,
        layout.w_step,
        layout.x_strides,
        layout.w_strides,
        layout.out_strides,
        layout.in_shape,
        layout.kernel_shape,
        layout.padding,
        layout.stride,
        layout.dilation,
        layout.out_shape,
        (plan.rows, plan.columns, plan.channels),
        layout.flip,
        out,
    )
    if problem.on_device:
        return _like(out.reshape(layout.output_shape), problem.operands[0])
    result = out.copy_to_host(stream=stream)
    if wait:
        stream.synchronize()
    return result.reshape(layout.output_shape)


def _like(result, template):
    """The device result as the same kind of array as the caller's input."""
    package = type(template).__module__.partition(".")[0]
    if package == "cupy":
        import cupy

        return cupy.asarray(result)
    if package == "torch":
        import torch

        return torch.as_tensor(result, device=template.device)
    return result
