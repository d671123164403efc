"""One tiled CUDA kernel for both operations: a strided, dilated correlation.

Every output plane is a *task*: an (image, filter) pair of ``conv``, or one
point of the broadcast axes of ``convolve_nd``.  A task sums, over its
channels ``c`` and kernel taps ``k``::

    out[task, o] = sum_c sum_k x[x_offset[task, c] + pos(o, k)] * w[w_offset[task, c] + tap(k)]

with ``pos(o, k) = o * stride - pad_before + k * dilation`` per axis (three
spatial axes; missing ones have size 1), taken only where the position is
inside the input, so padding adds no terms and NaN and inf stay local.  With
``flip`` the taps run backwards (``convolve_nd`` is a convolution).

A block computes a ``tile x tile`` patch of one output row-plane.  For each
channel and kernel depth it loads, in chunks of kernel rows and columns, the
input patch the tile reads and the chunk's weights into shared memory, then
every thread accumulates its output from shared memory only.
"""

from __future__ import annotations

import math
from functools import cache

import numba
import numpy as np
from numba import cuda  # a module global: the CUDA simulator swaps it inside kernels

__all__ = ["PATCH_CAPACITY", "TAP_CAPACITY", "correlate_kernel", "plan_tiles"]

# Shared-memory capacity, in elements, of the input patch and of the weight chunk
# (float64: 32 KiB + 8 KiB, under the 48 KiB a block may use statically).
PATCH_CAPACITY = 4096
TAP_CAPACITY = 1024


def _patch_extent(tile: int, stride: int, dilation: int, chunk: int) -> int:
    return (tile - 1) * stride + dilation * (chunk - 1) + 1


def plan_tiles(kernel_hw: tuple[int, int], stride_hw: tuple[int, int], dilation_hw: tuple[int, int],
               largest_tile: int) -> tuple[int, int, int]:
    """(tile, kernel-row chunk, kernel-column chunk) whose patch and taps fit in shared memory."""
    tile = largest_tile
    while tile > 1 and _patch_extent(tile, stride_hw[0], 1, 1) * _patch_extent(tile, stride_hw[1], 1, 1) \
            > PATCH_CAPACITY:
        tile //= 2
    rows, columns = kernel_hw
    while True:
        patch = (_patch_extent(tile, stride_hw[0], dilation_hw[0], rows)
                 * _patch_extent(tile, stride_hw[1], dilation_hw[1], columns))
        if patch <= PATCH_CAPACITY and rows * columns <= TAP_CAPACITY:
            return tile, rows, columns
        if rows >= columns and rows > 1:
            rows = -(-rows // 2)
        elif columns > 1:
            columns = -(-columns // 2)
        else:
            tile //= 2


@cache
def correlate_kernel(dtype_name: str):
    """The compiled kernel for float32 or float64 (compiled on first use)."""
    value_type = numba.float32 if dtype_name == "float32" else numba.float64
    zero = np.float32(0) if dtype_name == "float32" else np.float64(0)

    @cuda.jit
    def correlate(x, w, x_offsets, w_offsets, x_strides, w_strides, in_shape, kernel_shape, flip,
                  padding, stride, dilation, chunks, out, out_offsets, out_strides, out_shape):
        patch = cuda.shared.array(PATCH_CAPACITY, value_type)
        taps = cuda.shared.array(TAP_CAPACITY, value_type)
        tile = cuda.blockDim.x
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        thread = ty * tile + tx
        threads = tile * cuda.blockDim.y
        tiles_x = (out_shape[2] + tile - 1) // tile
        oy0 = (cuda.blockIdx.x // tiles_x) * tile
        ox0 = (cuda.blockIdx.x % tiles_x) * tile
        oy, ox = oy0 + ty, ox0 + tx
        od = cuda.blockIdx.y
        chunk_rows, chunk_columns = chunks[0], chunks[1]
        channels = x_offsets.shape[1]
        for task in range(cuda.blockIdx.z, out_offsets.shape[0], cuda.gridDim.z):
            total = zero
            for c in range(channels):
                x_base = x_offsets[task, c]
                w_base = w_offsets[task, c]
                for kz in range(kernel_shape[0]):
                    iz = od * stride[0] - padding[0] + kz * dilation[0]
                    if iz < 0 or iz >= in_shape[0]:
                        continue  # the same for the whole block: no thread skips a barrier alone
                    tz = kernel_shape[0] - 1 - kz if flip else kz
                    for ky0 in range(0, kernel_shape[1], chunk_rows):
                        rows = min(chunk_rows, kernel_shape[1] - ky0)
                        for kx0 in range(0, kernel_shape[2], chunk_columns):
                            columns = min(chunk_columns, kernel_shape[2] - kx0)
                            iy0 = oy0 * stride[1] - padding[1] + ky0 * dilation[1]
                            ix0 = ox0 * stride[2] - padding[2] + kx0 * dilation[2]
                            patch_rows = (tile - 1) * stride[1] + dilation[1] * (rows - 1) + 1
                            patch_columns = (tile - 1) * stride[2] + dilation[2] * (columns - 1) + 1
                            for index in range(thread, patch_rows * patch_columns, threads):
                                iy = iy0 + index // patch_columns
                                ix = ix0 + index % patch_columns
                                if 0 <= iy < in_shape[1] and 0 <= ix < in_shape[2]:
                                    patch[index] = x[x_base + iz * x_strides[0] + iy * x_strides[1]
                                                     + ix * x_strides[2]]
                                else:
                                    patch[index] = zero
                            for index in range(thread, rows * columns, threads):
                                ky = ky0 + index // columns
                                kx = kx0 + index % columns
                                if flip:
                                    ky = kernel_shape[1] - 1 - ky
                                    kx = kernel_shape[2] - 1 - kx
                                taps[index] = w[w_base + tz * w_strides[0] + ky * w_strides[1]
                                                + kx * w_strides[2]]
                            cuda.syncthreads()
                            if oy < out_shape[1] and ox < out_shape[2]:
                                for r in range(rows):
                                    iy = oy * stride[1] - padding[1] + (ky0 + r) * dilation[1]
                                    if iy < 0 or iy >= in_shape[1]:
                                        continue
                                    row = (ty * stride[1] + r * dilation[1]) * patch_columns
                                    for q in range(columns):
                                        ix = ox * stride[2] - padding[2] + (kx0 + q) * dilation[2]
                                        if 0 <= ix < in_shape[2]:
                                            total += patch[row + tx * stride[2] + q * dilation[2]] \
                                                * taps[r * columns + q]
                            cuda.syncthreads()
            if oy < out_shape[1] and ox < out_shape[2]:
                out[out_offsets[task] + od * out_strides[0] + oy * out_strides[1] + ox * out_strides[2]] = total

    return correlate


def grid_for(out_shape3: tuple[int, int, int], tile: int, tasks: int, max_grid_z: int = 65535) -> tuple:
    """Blocks: (tiles of a plane, output depth, tasks)."""
    tiles = math.ceil(out_shape3[1] / tile) * math.ceil(out_shape3[2] / tile)
    return (tiles, out_shape3[0], min(tasks, max_grid_z))
