"""How a problem is cut for the kernel: register blocks, thread blocks, chunks that fit.

Pure arithmetic (no Numba): the cost model and the tests use it without a GPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from convkit.plugin import dilated_extent

__all__ = [
    "FILTER_BLOCKS",
    "PIXEL_BLOCKS",
    "LaunchPlan",
    "capacity",
    "filters_per_thread",
    "grid_for",
    "plan_launch",
]

# Shared memory per block, in bytes, for the input patch and the weight chunk:
# 40 KiB of the 48 KiB a block may use statically.
PATCH_BYTES = 32 * 1024
TAP_BYTES = 8 * 1024
# The register blocks a kernel variant may be compiled for.
PIXEL_BLOCKS = (1, 2, 4)
FILTER_BLOCKS = (1, 2, 4, 8)


def capacity(dtype_name: str) -> tuple[int, int]:
    """(patch, taps): shared-memory capacity in elements for this dtype."""
    size = np.dtype(dtype_name).itemsize
    return PATCH_BYTES // size, TAP_BYTES // size


def filters_per_thread(group_filters: int) -> int:
    """Filters a thread computes at once: the group's filter count rounded up, at most 8."""
    return next(block for block in FILTER_BLOCKS if block >= min(group_filters, FILTER_BLOCKS[-1]))


@dataclass(frozen=True)
class LaunchPlan:
    """How a problem is cut for the kernel: block shape, register block and chunks."""

    threads_x: int
    threads_y: int
    pixels: int
    filters: int
    rows: int
    columns: int
    channels: int

    @property
    def tile(self) -> tuple[int, int]:
        """(rows, columns) of output one block computes."""
        return self.threads_y, self.threads_x * self.pixels


def _extent(outputs: int, stride: int, dilation: int, taps: int) -> int:
    return (outputs - 1) * stride + dilated_extent(taps, dilation)


def plan_launch(
    kernel_hw: tuple[int, int],
    stride_hw: tuple[int, int],
    dilation_hw: tuple[int, int],
    out_width: int,
    channels: int,
    filters: int,
    dtype_name: str,
    threads: int,
) -> LaunchPlan:
    """The launch plan whose patch and weights fit in shared memory.

    Parameters
    ----------
    kernel_hw, stride_hw, dilation_hw : tuple of int
        Kernel extent, stride and dilation along the last two spatial axes.
    out_width : int
        Output extent along the last axis (decides the pixels per thread).
    channels : int
        Channels summed per task.
    filters : int
        Filters per thread (``filters_per_thread``).
    dtype_name : str
        "float32", "float64", "complex64" or "complex128".
    threads : int
        Threads per block along each axis (16 on a GPU, fewer on the simulator).
    """
    patch_capacity, tap_capacity = capacity(dtype_name)
    pixels = next((p for p in PIXEL_BLOCKS[::-1] if threads * p <= out_width), 1)
    threads_x, threads_y = threads, threads
    while True:
        smallest = _extent(threads_y, stride_hw[0], 1, 1) * _extent(
            threads_x * pixels, stride_hw[1], 1, 1
        )
        if smallest <= patch_capacity and filters <= tap_capacity:
            break
        if pixels > 1:
            pixels //= 2
        elif threads_y >= threads_x and threads_y > 1:
            threads_y //= 2
        else:
            threads_x //= 2
    rows, columns = kernel_hw
    while True:
        patch = _extent(threads_y, stride_hw[0], dilation_hw[0], rows) * _extent(
            threads_x * pixels, stride_hw[1], dilation_hw[1], columns
        )
        if patch <= patch_capacity and rows * columns * filters <= tap_capacity:
            break
        if rows >= columns and rows > 1:
            rows = -(-rows // 2)
        else:
            columns = -(-columns // 2)
    chunk = max(
        1, min(channels, patch_capacity // patch, tap_capacity // (rows * columns * filters))
    )
    return LaunchPlan(threads_x, threads_y, pixels, filters, rows, columns, chunk)


def grid_for(
    out_shape3: tuple[int, int, int], plan: LaunchPlan, tasks: int, max_grid_z: int = 65535
) -> tuple:
    """Blocks: (tiles of a plane, output depth, tasks)."""
    rows, columns = plan.tile
    tiles = math.ceil(out_shape3[1] / rows) * math.ceil(out_shape3[2] / columns)
    return (tiles, out_shape3[0], min(tasks, max_grid_z))
