"""One tiled CUDA kernel for both operations: a strided, dilated correlation.

Every output plane belongs to a *task*: an image and a block of up to
``filters`` filters of ``conv`` (filters of one group, which read the same
input channels), or one point of the broadcast axes of ``convolve_nd``.  A
task sums, over its channels ``c`` and kernel taps ``k``::

    out[f, o] = sum_c sum_k x[x_base + c * x_step + pos(o, k)] * w[w_base[f] + c * w_step + tap(k)]

with ``pos(o, k) = o * stride - pad_before + k * dilation`` per axis (three
spatial axes; missing ones have size 1), taken only where the position is
inside the input, so padding adds no terms and NaN and inf stay local.  With
``flip`` the taps run backwards (``convolve_nd`` is a convolution).

A block of ``threads_y x threads_x`` threads computes a tile of
``threads_y`` output rows by ``threads_x * pixels`` columns for all the
task's filters.  For a chunk of channels and kernel rows and columns that
fits, it loads the input patch the tile reads and the chunk's weights into
shared memory; then every thread accumulates ``pixels x filters`` outputs in
registers, each patch value it loads serving ``filters`` multiply-adds and
each weight (a broadcast to the warp) ``pixels`` of them.
"""

from __future__ import annotations

from functools import cache

import numba
import numpy as np
from numba import cuda  # a module global: the CUDA simulator swaps it inside kernels

from convkit_cuda._blocks import capacity
from convkit_cuda._simulator import simulated

__all__ = ["LAUNCH_BOUNDS", "correlate_function", "correlate_kernel"]


def correlate_function(
    dtype_name: str, pixels: int, filters: int, threads_x: int, unit_stride: bool
):
    """The kernel for one variant, as a Python function (``cuda.jit`` it, or compile it to PTX).

    ``dtype_name`` is float32, float64, complex64 or complex128; sums run in that dtype.

    ``pixels``, ``filters``, ``threads_x`` (the block's width) and
    ``unit_stride`` (stride 1 along the last axis) are compile-time constants:
    the register block unrolls, and with unit stride a thread's pixels sit at
    constant offsets in shared memory.
    """
    value_type = getattr(numba, dtype_name)
    zero = np.dtype(dtype_name).type(0)
    patch_capacity, tap_capacity = capacity(dtype_name)
    block = pixels * filters

    def correlate(
        x,
        w,
        x_base,
        w_base,
        out_base,
        channels,
        x_step,
        w_step,
        x_strides,
        w_strides,
        out_strides,
        in_shape,
        kernel_shape,
        padding,
        stride,
        dilation,
        out_shape,
        chunks,
        flip,
        out,
    ):
        patch = cuda.shared.array(patch_capacity, value_type)
        taps = cuda.shared.array(tap_capacity, value_type)
        accumulated = cuda.local.array(block, value_type)
        weight = cuda.local.array(filters, value_type)
        threads_y = cuda.blockDim.y
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        tile_x = threads_x * pixels
        tiles_x = (out_shape[2] + tile_x - 1) // tile_x
        oy0 = (cuda.blockIdx.x // tiles_x) * threads_y
        ox0 = (cuda.blockIdx.x % tiles_x) * tile_x
        oy = oy0 + ty
        od = cuda.blockIdx.y
        chunk_rows, chunk_columns, chunk_channels = chunks
        column_step = 1 if unit_stride else stride[2]
        pixel_step = threads_x * column_step
        for task in range(cuda.blockIdx.z, x_base.shape[0], cuda.gridDim.z):
            for k in range(block):
                accumulated[k] = zero
            for c0 in range(0, channels, chunk_channels):
                some = min(chunk_channels, channels - c0)
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
                            patch_rows = (threads_y - 1) * stride[1] + dilation[1] * (rows - 1) + 1
                            patch_columns = (
                                (tile_x - 1) * stride[2] + dilation[2] * (columns - 1) + 1
                            )
                            plane = patch_rows * patch_columns
                            x_plane = x_base[task] + c0 * x_step + iz * x_strides[0]
                            # Rows to the thread rows, columns to the thread columns: coalesced
                            # loads and no integer division (slow on a GPU) per element.
                            for c in range(some):
                                py = ty
                                while py < patch_rows:
                                    iy = iy0 + py
                                    row_inside = 0 <= iy < in_shape[1]
                                    source = x_plane + c * x_step + iy * x_strides[1]
                                    target = c * plane + py * patch_columns
                                    px = tx
                                    while px < patch_columns:
                                        ix = ix0 + px
                                        value = zero
                                        if row_inside and 0 <= ix < in_shape[2]:
                                            value = x[source + ix * x_strides[2]]
                                        patch[numba.uint64(target + px)] = value
                                        px += threads_x
                                    py += threads_y
                            chunk_taps = rows * columns
                            for c in range(some):
                                r = ty
                                while r < rows:
                                    ky = ky0 + r
                                    if flip:
                                        ky = kernel_shape[1] - 1 - ky
                                    target = (c * chunk_taps + r * columns) * filters
                                    k = tx
                                    while k < columns * filters:
                                        q = k // filters  # a power of two known at compile time
                                        f = k - q * filters
                                        kx = kx0 + q
                                        if flip:
                                            kx = kernel_shape[2] - 1 - kx
                                        first = w_base[task * filters + f]
                                        value = zero
                                        if first >= 0:
                                            value = w[
                                                first
                                                + (c0 + c) * w_step
                                                + tz * w_strides[0]
                                                + ky * w_strides[1]
                                                + kx * w_strides[2]
                                            ]
                                        taps[numba.uint64(target + k)] = value
                                        k += threads_x
                                    r += threads_y
                            cuda.syncthreads()
                            if oy < out_shape[1]:
                                # Whole patch rows inside the input (most blocks): no per-tap test.
                                inside = ix0 >= 0 and ix0 + patch_columns <= in_shape[2]
                                for c in range(some):
                                    for r in range(rows):
                                        iy = oy * stride[1] - padding[1] + (ky0 + r) * dilation[1]
                                        if iy < 0 or iy >= in_shape[1]:
                                            continue
                                        patch_row = (
                                            c * plane
                                            + (ty * stride[1] + r * dilation[1]) * patch_columns
                                        )
                                        tap_row = (c * chunk_taps + r * columns) * filters
                                        # A while loop: Numba's range() lowers to more integer work per tap.
                                        q = 0
                                        while q < columns:
                                            for f in range(filters):
                                                weight[f] = taps[
                                                    numba.uint64(tap_row + q * filters + f)
                                                ]
                                            shift = q * dilation[2] + tx * column_step
                                            # Unsigned: no negative-index wraparound code per load.
                                            at = numba.uint64(patch_row + shift)
                                            if inside:
                                                for p in range(pixels):
                                                    value = patch[at + numba.uint64(p * pixel_step)]
                                                    for f in range(filters):
                                                        accumulated[p * filters + f] += (
                                                            value * weight[f]
                                                        )
                                            else:
                                                for p in range(pixels):
                                                    if (
                                                        0
                                                        <= ix0 + shift + p * pixel_step
                                                        < in_shape[2]
                                                    ):
                                                        value = patch[
                                                            at + numba.uint64(p * pixel_step)
                                                        ]
                                                        for f in range(filters):
                                                            accumulated[p * filters + f] += (
                                                                value * weight[f]
                                                            )
                                            q += 1
                            cuda.syncthreads()
            if oy < out_shape[1]:
                for p in range(pixels):
                    ox = ox0 + tx + p * threads_x
                    if ox < out_shape[2]:
                        for f in range(filters):
                            first = out_base[task * filters + f]
                            if first >= 0:
                                out[
                                    first
                                    + od * out_strides[0]
                                    + oy * out_strides[1]
                                    + ox * out_strides[2]
                                ] = accumulated[p * filters + f]

    return correlate


# At most 256 threads per block, and two blocks per multiprocessor: ptxas keeps a
# thread to 128 registers (measured with bench/cuda_kernels.py: the inner loop does
# not spill at that bound; unbounded, the largest variants take 166-255 registers and
# one block per multiprocessor).
LAUNCH_BOUNDS = (256, 2)


@cache
def correlate_kernel(dtype_name: str, pixels: int, filters: int, threads_x: int, unit_stride: bool):
    """The compiled kernel variant (compiled on first launch)."""
    function = correlate_function(dtype_name, pixels, filters, threads_x, unit_stride)
    if simulated():  # the simulator's jit takes no launch bounds
        return cuda.jit(function)
    return cuda.jit(launch_bounds=LAUNCH_BOUNDS)(function)
