"""The compiled kernels.  Each works on arrays padded to three spatial axes.

Every kernel accumulates only the terms that exist (input positions inside
the input), so NaN and inf stay local without extra work.  ``fastmath``
allows contraction into FMA and reassociation, never ``nnan``/``ninf``,
which would break the non-finite rules.
"""

from __future__ import annotations

import numba
from numba import prange

__all__ = ["convolve_rows", "conv_direct", "im2col"]

FASTMATH = {"contract", "reassoc"}
# Outputs processed per block along the last axis: a block of the output
# row and the input rows it reads stay in L1 while every tap passes over it.
ROW_BLOCK = 2048


@numba.njit(parallel=True, cache=True, fastmath=FASTMATH, nogil=True)
def convolve_rows(signal, kernel, signal_index, kernel_index, start, out):
    """``out[b] = full(signal[signal_index[b]] (*) kernel[kernel_index[b]])[start:]``.

    signal: (B1, D, H, W); kernel: (B2, d, h, w); out: (B, Do, Ho, Wo);
    start: (3,) offsets of the output region in the full convolution.
    """
    batch, depth_out, height_out, width_out = out.shape
    depth, height, width = signal.shape[1], signal.shape[2], signal.shape[3]
    kernel_depth, kernel_height, kernel_width = kernel.shape[1], kernel.shape[2], kernel.shape[3]
    start_z, start_y, start_x = start[0], start[1], start[2]
    rows = batch * depth_out * height_out
    for row_number in prange(rows):
        b = row_number // (depth_out * height_out)
        rest = row_number % (depth_out * height_out)
        oz = rest // height_out
        oy = rest % height_out
        s = signal_index[b]
        k = kernel_index[b]
        row = out[b, oz, oy]
        row[:] = 0
        iz = oz + start_z
        iy = oy + start_y
        for block in range(0, width_out, ROW_BLOCK):
            block_end = min(width_out, block + ROW_BLOCK)
            for jz in range(max(0, iz - depth + 1), min(kernel_depth - 1, iz) + 1):
                for jy in range(max(0, iy - height + 1), min(kernel_height - 1, iy) + 1):
                    source = signal[s, iz - jz, iy - jy]
                    for jx in range(kernel_width):
                        weight = kernel[k, jz, jy, jx]
                        offset = start_x - jx
                        low = max(block, -offset)
                        high = min(block_end, width - offset)
                        for ox in range(low, high):
                            row[ox] += weight * source[ox + offset]


@numba.njit(parallel=True, cache=True, fastmath=FASTMATH, nogil=True)
def conv_direct(x, w, padding, stride, dilation, groups, out):
    """Direct CNN convolution (cross-correlation with the given filters).

    x: (N, C, D, H, W); w: (F, C // groups, KD, KH, KW); out: (N, F, Do, Ho, Wo);
    padding, stride, dilation: (3,) each (padding = before).
    """
    batch, channels = x.shape[0], x.shape[1]
    depth, height, width = x.shape[2], x.shape[3], x.shape[4]
    filters, group_channels = w.shape[0], w.shape[1]
    kernel_depth, kernel_height, kernel_width = w.shape[2], w.shape[3], w.shape[4]
    depth_out, height_out, width_out = out.shape[2], out.shape[3], out.shape[4]
    group_filters = filters // groups
    pad_z, pad_y, pad_x = padding[0], padding[1], padding[2]
    stride_z, stride_y, stride_x = stride[0], stride[1], stride[2]
    dil_z, dil_y, dil_x = dilation[0], dilation[1], dilation[2]
    tasks = batch * filters * depth_out
    for task in prange(tasks):
        n = task // (filters * depth_out)
        rest = task % (filters * depth_out)
        f = rest // depth_out
        oz = rest % depth_out
        first_channel = (f // group_filters) * group_channels
        plane = out[n, f, oz]
        plane[:, :] = 0
        for c in range(group_channels):
            for kz in range(kernel_depth):
                iz = oz * stride_z - pad_z + kz * dil_z
                if iz < 0 or iz >= depth:
                    continue
                for oy in range(height_out):
                    row = plane[oy]
                    for ky in range(kernel_height):
                        iy = oy * stride_y - pad_y + ky * dil_y
                        if iy < 0 or iy >= height:
                            continue
                        source = x[n, first_channel + c, iz, iy]
                        for kx in range(kernel_width):
                            weight = w[f, c, kz, ky, kx]
                            shift = kx * dil_x - pad_x
                            low = max(0, -(shift // stride_x))
                            high = min(width_out, (width - 1 - shift) // stride_x + 1)
                            if stride_x == 1:
                                for ox in range(low, high):
                                    row[ox] += weight * source[ox + shift]
                            else:
                                for ox in range(low, high):
                                    row[ox] += weight * source[ox * stride_x + shift]


@numba.njit(parallel=True, cache=True, nogil=True)
def im2col(x, first_channel, kernel_shape, padding, stride, dilation, output_spatial, columns):
    """Unfold ``x[:, first_channel : first_channel + Cg]`` into GEMM columns.

    x: (N, C, D, H, W); columns: (Cg * KD * KH * KW, N * Do * Ho * Wo), zero
    where a tap falls into the padding.
    """
    batch = x.shape[0]
    depth, height, width = x.shape[2], x.shape[3], x.shape[4]
    kernel_depth, kernel_height, kernel_width = kernel_shape[0], kernel_shape[1], kernel_shape[2]
    depth_out, height_out, width_out = output_spatial[0], output_spatial[1], output_spatial[2]
    positions = depth_out * height_out * width_out
    taps = kernel_depth * kernel_height * kernel_width
    rows = columns.shape[0]
    for r in prange(rows * batch):
        row_index = r // batch
        n = r % batch
        c = row_index // taps
        tap = row_index % taps
        kz = tap // (kernel_height * kernel_width)
        ky = (tap // kernel_width) % kernel_height
        kx = tap % kernel_width
        target = columns[row_index, n * positions:(n + 1) * positions]
        shift_x = kx * dilation[2] - padding[2]
        low = max(0, -(shift_x // stride[2]))
        high = min(width_out, (width - 1 - shift_x) // stride[2] + 1)
        for oz in range(depth_out):
            iz = oz * stride[0] - padding[0] + kz * dilation[0]
            for oy in range(height_out):
                iy = oy * stride[1] - padding[1] + ky * dilation[1]
                base = (oz * height_out + oy) * width_out
                if iz < 0 or iz >= depth or iy < 0 or iy >= height or low >= high:
                    target[base:base + width_out] = 0
                    continue
                target[base:base + low] = 0
                source = x[n, first_channel + c, iz, iy]
                for ox in range(low, high):
                    target[base + ox] = source[ox * stride[2] + shift_x]
                target[base + max(high, low):base + width_out] = 0
