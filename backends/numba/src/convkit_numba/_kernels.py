"""The compiled kernels.  Each works on arrays lifted to three spatial axes.

Every kernel accumulates only the terms that exist (input positions inside
the input, or, under a boundary rule, the extension's samples those
positions read), so NaN and inf stay local without extra work.  ``fastmath``
allows contraction into FMA and reassociation, never ``nnan``/``ninf``,
which would break the non-finite rules.

Inner loops run over slice views from 0 to their size: with a signed index
into a whole array, Numba's wraparound handling stops LLVM from vectorizing
(measured: 1 against 9 GFMA/s, bench/NOTES.md).  The taps that feed one output
row are listed first (source row, offset, weight) and applied eight at a
time, so each pass over the output row does eight multiply-adds per load and
store of it.

The kernels are serial and release the GIL: each computes the tasks
``begin`` to ``end`` of its problem (output rows, planes or column rows), and
the backend spreads those ranges over its worker threads.  Numba's
``parallel=True`` would spread them itself, but compiling a kernel's parallel
form takes about twice as long (bench/NOTES.md, "First call"), and the first
call of every operation and dtype pays it.

A boundary rule (wrap, symm, mirror, nearest) arrives as an int code at run
time, so one compiled kernel serves every rule (each specialization would
cost seconds on a first call).  The signal is never copied whole: rows
outside it are the rows the rule names, and along the last axis the outputs
whose taps all fall inside a row keep the vectorized pass while the few near
its ends read the extension through a table of indices built once per call.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = [
    "RULE_CODES",
    "conv_direct",
    "conv_direct_strided",
    "conv_padded_planes",
    "convolve_rows",
    "extended_index",
    "im2col",
    "im2col_phases",
    "split_phases",
    "unfold_block",
]

FASTMATH = {"contract", "reassoc"}
# Outputs per block along the last axis: a block of the output row and the
# source rows it reads stay in L1 while the taps pass over it.
ROW_BLOCK = 1024
# How a signal continues past its ends, as the kernels take it.
FILL, WRAP, SYMM, MIRROR, NEAREST = 0, 1, 2, 3, 4
RULE_CODES = {"fill": FILL, "wrap": WRAP, "symm": SYMM, "mirror": MIRROR, "nearest": NEAREST}


@numba.njit(cache=True, inline="always")
def extended_index(position, size, rule):
    """The sample of an axis of length ``size`` that ``position`` reads under ``rule``.

    ``convkit.plugin.extension_index`` for one position (any distance from
    the axis); -1 for a position outside the axis under zero fill, where the
    direct definition has no term.
    """
    if 0 <= position < size:
        return position
    if rule == WRAP:
        return position % size
    if rule == SYMM:
        folded = position % (2 * size)
        return folded if folded < size else 2 * size - 1 - folded
    if rule == MIRROR:
        if size == 1:
            return 0
        folded = position % (2 * size - 2)
        return folded if folded < size else 2 * size - 2 - folded
    if rule == NEAREST:
        return 0 if position < 0 else size - 1
    return -1


@numba.njit(cache=True, inline="always")
def _extension_table(first, count, size, rule):
    """``extended_index`` of the positions ``first`` to ``first + count - 1``: no division
    per sample in the loops that read the extension."""
    table = np.empty(count, dtype=np.int64)
    for k in range(count):
        table[k] = extended_index(first + k, size, rule)
    return table


@numba.njit(cache=True, fastmath=FASTMATH, inline="always")
def _axpy(destination, source, weight):
    for i in range(destination.size):
        destination[i] += weight * source[i]


@numba.njit(cache=True, fastmath=FASTMATH, inline="always")
def _axpy8(destination, s0, s1, s2, s3, s4, s5, s6, s7, w):
    w0, w1, w2, w3, w4, w5, w6, w7 = w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]
    for i in range(destination.size):
        destination[i] += (
            w0 * s0[i]
            + w1 * s1[i]
            + w2 * s2[i]
            + w3 * s3[i]
            + w4 * s4[i]
            + w5 * s5[i]
            + w6 * s6[i]
            + w7 * s7[i]
        )


@numba.njit(cache=True, fastmath=FASTMATH)
def _apply_taps(row, rows, tap_row, tap_offset, tap_weight, count, block, block_end):
    """row[o] += sum_t tap_weight[t] * rows[tap_row[t], o + tap_offset[t]] for o in [block, block_end).

    Only positions inside a source row contribute.
    """
    width = rows.shape[1]
    t = 0
    while t + 8 <= count:
        low, high = block, block_end
        for u in range(t, t + 8):
            low = max(low, -tap_offset[u])
            high = min(high, width - tap_offset[u])
        if low < high:
            o = tap_offset
            r = tap_row
            _axpy8(
                row[low:high],
                rows[r[t]][low + o[t] : high + o[t]],
                rows[r[t + 1]][low + o[t + 1] : high + o[t + 1]],
                rows[r[t + 2]][low + o[t + 2] : high + o[t + 2]],
                rows[r[t + 3]][low + o[t + 3] : high + o[t + 3]],
                rows[r[t + 4]][low + o[t + 4] : high + o[t + 4]],
                rows[r[t + 5]][low + o[t + 5] : high + o[t + 5]],
                rows[r[t + 6]][low + o[t + 6] : high + o[t + 6]],
                rows[r[t + 7]][low + o[t + 7] : high + o[t + 7]],
                tap_weight[t : t + 8],
            )
        for u in range(t, t + 8):
            tap_low = max(block, -tap_offset[u])
            tap_high = min(block_end, width - tap_offset[u])
            source = rows[tap_row[u]]
            if low < high:
                if tap_low < low:
                    _axpy(
                        row[tap_low:low],
                        source[tap_low + tap_offset[u] : low + tap_offset[u]],
                        tap_weight[u],
                    )
                if high < tap_high:
                    _axpy(
                        row[high:tap_high],
                        source[high + tap_offset[u] : tap_high + tap_offset[u]],
                        tap_weight[u],
                    )
            elif tap_low < tap_high:
                _axpy(
                    row[tap_low:tap_high],
                    source[tap_low + tap_offset[u] : tap_high + tap_offset[u]],
                    tap_weight[u],
                )
        t += 8
    while t < count:
        low = max(block, -tap_offset[t])
        high = min(block_end, width - tap_offset[t])
        if low < high:
            _axpy(
                row[low:high],
                rows[tap_row[t]][low + tap_offset[t] : high + tap_offset[t]],
                tap_weight[t],
            )
        t += 1


@numba.njit(cache=True, fastmath=FASTMATH, inline="always")
def _apply_inside(row, rows, tap_row, tap_offset, tap_weight, count, block, block_end):
    """``_apply_taps`` where every tap reads inside its row for every output of the block."""
    o = tap_offset
    r = tap_row
    t = 0
    while t + 8 <= count:
        _axpy8(
            row[block:block_end],
            rows[r[t]][block + o[t] : block_end + o[t]],
            rows[r[t + 1]][block + o[t + 1] : block_end + o[t + 1]],
            rows[r[t + 2]][block + o[t + 2] : block_end + o[t + 2]],
            rows[r[t + 3]][block + o[t + 3] : block_end + o[t + 3]],
            rows[r[t + 4]][block + o[t + 4] : block_end + o[t + 4]],
            rows[r[t + 5]][block + o[t + 5] : block_end + o[t + 5]],
            rows[r[t + 6]][block + o[t + 6] : block_end + o[t + 6]],
            rows[r[t + 7]][block + o[t + 7] : block_end + o[t + 7]],
            tap_weight[t : t + 8],
        )
        t += 8
    while t < count:
        _axpy(row[block:block_end], rows[r[t]][block + o[t] : block_end + o[t]], tap_weight[t])
        t += 1


@numba.njit(cache=True, fastmath=FASTMATH, inline="always")
def _extended_ends(row, rows, tap_row, tap_offset, tap_weight, count, table, first, low, high):
    """row[o] += sum_t tap_weight[t] * rows[tap_row[t], table[o + tap_offset[t] - first]]
    for the o outside [low, high): the outputs some of whose taps read the extension."""
    for o in range(low):
        _extended_output(row, o, rows, tap_row, tap_offset, tap_weight, count, table, first)
    for o in range(high, row.size):
        _extended_output(row, o, rows, tap_row, tap_offset, tap_weight, count, table, first)


@numba.njit(cache=True, fastmath=FASTMATH, inline="always")
def _extended_output(row, o, rows, tap_row, tap_offset, tap_weight, count, table, first):
    """Output ``o`` of ``_extended_ends``."""
    total = row[o]
    for t in range(count):
        total += tap_weight[t] * rows[tap_row[t], table[o + tap_offset[t] - first]]
    row[o] = total


@numba.njit(cache=True, fastmath=FASTMATH, nogil=True)
def convolve_rows(signal, kernel, signal_index, kernel_index, start, rule, out, begin, end):
    """``out[b] = full(signal[signal_index[b]] (*) kernel[kernel_index[b]])[start:]``, rows ``begin:end``.

    signal: (B1, D, H, W); kernel: (B2, d, h, w); out: (B, Do, Ho, Wo);
    start: (3,) offsets of the output region in the full convolution; the
    rows are numbered over (B, Do, Ho).  ``rule``: a code of ``RULE_CODES``,
    how the signal continues past its ends.

    Under a rule, when the outputs near the row ends would cost more as scalar
    sums than copying the source rows, each output row first copies its
    source rows, extended along x, into a scratch of ``Wo + w - 1`` columns:
    then every tap is inside for every output (the padded copy's speed, for
    the rows of one output row at a time).
    """
    depth_out, height_out, width_out = out.shape[1], out.shape[2], out.shape[3]
    depth, height, width = signal.shape[1], signal.shape[2], signal.shape[3]
    kernel_depth, kernel_height, kernel_width = kernel.shape[1], kernel.shape[2], kernel.shape[3]
    start_z, start_y, start_x = start[0], start[1], start[2]
    most_taps = kernel_depth * kernel_height * kernel_width
    # Output o reads the positions o + start_x - jx: all inside the row for o in [low, high).
    low, high = np.int64(0), width_out
    first = start_x - kernel_width + 1
    table = np.empty(0, dtype=np.int64)
    if rule != FILL:
        low = min(width_out, max(0, kernel_width - 1 - start_x))
        high = max(low, min(width_out, width - start_x))
        table = _extension_table(first, width_out + kernel_width - 1, width, rule)
    # A scalar term at the ends costs about as much as copying eight samples.
    span = width_out + kernel_width - 1
    ends = (width_out - (high - low)) * most_taps
    extended_rows = rule != FILL and kernel_depth * kernel_height * span < 8 * ends
    scratch = np.empty((kernel_depth * kernel_height if extended_rows else 0, span), out.dtype)
    inside_low = min(span, max(0, -first))  # the scratch columns that are inside the row
    inside_high = max(inside_low, min(span, width - first))
    for row_number in range(begin, end):
        b = row_number // (depth_out * height_out)
        rest = row_number % (depth_out * height_out)
        oz = rest // height_out
        oy = rest % height_out
        sources = signal[signal_index[b]].reshape(depth * height, width)
        taps = kernel[kernel_index[b]]
        tap_row = np.empty(most_taps, dtype=np.int64)
        tap_offset = np.empty(most_taps, dtype=np.int64)
        tap_weight = np.empty(most_taps, dtype=out.dtype)
        count = np.int64(0)  # not the literal 0: _apply_taps would be compiled for it too
        iz = oz + start_z
        iy = oy + start_y
        for jz in range(kernel_depth):
            source_z = extended_index(iz - jz, depth, rule)
            if source_z < 0:
                continue
            for jy in range(kernel_height):
                source_y = extended_index(iy - jy, height, rule)
                if source_y < 0:
                    continue
                source_row = source_z * height + source_y
                if extended_rows:
                    source = sources[source_row]
                    target = scratch[jz * kernel_height + jy]
                    _copy(
                        target[inside_low:inside_high],
                        source[inside_low + first : inside_high + first],
                    )
                    for k in range(inside_low):
                        target[k] = source[table[k]]
                    for k in range(inside_high, span):
                        target[k] = source[table[k]]
                for jx in range(kernel_width):
                    tap_row[count] = source_row
                    tap_offset[count] = start_x - jx
                    tap_weight[count] = taps[jz, jy, jx]
                    count += 1
        row = out[b, oz, oy]
        row[:] = 0
        if extended_rows:
            # Scratch row jz * h + jy holds the positions first, first + 1, ...
            for t in range(count):
                tap_row[t] = t // kernel_width
                tap_offset[t] += -first
            for block in range(0, width_out, ROW_BLOCK):
                _apply_inside(
                    row,
                    scratch,
                    tap_row,
                    tap_offset,
                    tap_weight,
                    count,
                    block,
                    min(width_out, block + ROW_BLOCK),
                )
            continue
        for block in range(low, high, ROW_BLOCK):
            _apply_taps(
                row,
                sources,
                tap_row,
                tap_offset,
                tap_weight,
                count,
                block,
                min(high, block + ROW_BLOCK),
            )
        if rule != FILL:
            _extended_ends(
                row, sources, tap_row, tap_offset, tap_weight, count, table, first, low, high
            )


@numba.njit(cache=True, fastmath=FASTMATH, nogil=True)
def conv_direct(x, w, padding, stride, dilation, groups, rule, out, begin, end):
    """Direct CNN convolution (cross-correlation with the given filters), stride 1 along W.

    x: (N, C, D, H, W); w: (F, C // groups, KD, KH, KW); out: (N, F, Do, Ho, Wo);
    padding, stride, dilation: (3,) each (padding = before); ``rule``: a code
    of ``RULE_CODES``, what the padding reads; tasks ``begin:end`` numbered
    over (N, F, Do).
    """
    channels = x.shape[1]
    depth, height, width = x.shape[2], x.shape[3], x.shape[4]
    filters, group_channels = w.shape[0], w.shape[1]
    kernel_depth, kernel_height, kernel_width = w.shape[2], w.shape[3], w.shape[4]
    depth_out, height_out, width_out = out.shape[2], out.shape[3], out.shape[4]
    group_filters = filters // groups
    pad_z, pad_y, pad_x = padding[0], padding[1], padding[2]
    stride_z, stride_y = stride[0], stride[1]
    dil_z, dil_y, dil_x = dilation[0], dilation[1], dilation[2]
    most_taps = group_channels * kernel_depth * kernel_height * kernel_width
    # Output o reads the positions o - pad_x + kx * dil_x: all inside the row for o in [low, high).
    reach = (kernel_width - 1) * dil_x
    low, high = np.int64(0), width_out
    table = np.empty(0, dtype=np.int64)
    if rule != FILL:
        low = min(width_out, pad_x)
        high = max(low, min(width_out, width + pad_x - reach))
        table = _extension_table(-pad_x, width_out + reach, width, rule)
    for task in range(begin, end):
        n = task // (filters * depth_out)
        rest = task % (filters * depth_out)
        f = rest // depth_out
        oz = rest % depth_out
        first_channel = (f // group_filters) * group_channels
        sources = x[n].reshape(channels * depth * height, width)
        tap_row = np.empty(most_taps, dtype=np.int64)
        tap_offset = np.empty(most_taps, dtype=np.int64)
        tap_weight = np.empty(most_taps, dtype=out.dtype)
        plane = out[n, f, oz]
        for oy in range(height_out):
            row = plane[oy]
            row[:] = 0
            count = np.int64(0)  # not the literal 0: _apply_taps would be compiled for it too
            for c in range(group_channels):
                for kz in range(kernel_depth):
                    iz = extended_index(oz * stride_z - pad_z + kz * dil_z, depth, rule)
                    if iz < 0:
                        continue
                    for ky in range(kernel_height):
                        iy = extended_index(oy * stride_y - pad_y + ky * dil_y, height, rule)
                        if iy < 0:
                            continue
                        source_row = ((first_channel + c) * depth + iz) * height + iy
                        for kx in range(kernel_width):
                            tap_row[count] = source_row
                            tap_offset[count] = kx * dil_x - pad_x
                            tap_weight[count] = w[f, c, kz, ky, kx]
                            count += 1
            if count:
                for block in range(low, high, ROW_BLOCK):
                    _apply_taps(
                        row,
                        sources,
                        tap_row,
                        tap_offset,
                        tap_weight,
                        count,
                        block,
                        min(high, block + ROW_BLOCK),
                    )
            if rule != FILL:
                _extended_ends(
                    row, sources, tap_row, tap_offset, tap_weight, count, table, -pad_x, low, high
                )


@numba.njit(cache=True, fastmath=FASTMATH, nogil=True)
def conv_direct_strided(x, w, padding, stride, dilation, groups, rule, out, begin, end):
    """``conv_direct`` for a stride above 1 along W: each tap adds a strided slice of its row.

    A kernel of its own, so that a strided layer compiles only this loop.
    """
    depth, height, width = x.shape[2], x.shape[3], x.shape[4]
    filters, group_channels = w.shape[0], w.shape[1]
    kernel_depth, kernel_height, kernel_width = w.shape[2], w.shape[3], w.shape[4]
    depth_out, height_out, width_out = out.shape[2], out.shape[3], out.shape[4]
    group_filters = filters // groups
    pad_z, pad_y, pad_x = padding[0], padding[1], padding[2]
    stride_z, stride_y, stride_x = stride[0], stride[1], stride[2]
    dil_z, dil_y, dil_x = dilation[0], dilation[1], dilation[2]
    table = np.empty(0, dtype=np.int64)
    if rule != FILL:  # the positions o * stride_x - pad_x + kx * dil_x
        table = _extension_table(
            -pad_x, (width_out - 1) * stride_x + (kernel_width - 1) * dil_x + 1, width, rule
        )
    for task in range(begin, end):
        n = task // (filters * depth_out)
        rest = task % (filters * depth_out)
        f = rest // depth_out
        oz = rest % depth_out
        first_channel = (f // group_filters) * group_channels
        plane = out[n, f, oz]
        for oy in range(height_out):
            row = plane[oy]
            row[:] = 0
            for c in range(group_channels):
                for kz in range(kernel_depth):
                    iz = extended_index(oz * stride_z - pad_z + kz * dil_z, depth, rule)
                    if iz < 0:
                        continue
                    for ky in range(kernel_height):
                        iy = extended_index(oy * stride_y - pad_y + ky * dil_y, height, rule)
                        if iy < 0:
                            continue
                        source = x[n, first_channel + c, iz, iy]
                        for kx in range(kernel_width):
                            weight = w[f, c, kz, ky, kx]
                            shift = kx * dil_x - pad_x
                            # The outputs [low, high) read inside the row.
                            low = min(width_out, max(0, -(shift // stride_x)))
                            high = max(low, min(width_out, (width - 1 - shift) // stride_x + 1))
                            if low < high:
                                first = low * stride_x + shift
                                _axpy(
                                    row[low:high],
                                    source[
                                        first : first + (high - low - 1) * stride_x + 1 : stride_x
                                    ],
                                    weight,
                                )
                            if rule != FILL:
                                for o in range(low):
                                    row[o] += weight * source[table[o * stride_x + shift + pad_x]]
                                for o in range(high, width_out):
                                    row[o] += weight * source[table[o * stride_x + shift + pad_x]]


@numba.njit(cache=True, fastmath=FASTMATH, nogil=True)
def conv_padded_planes(x, w, padding, dilation, groups, rule, out, begin, end):
    """Stride-1 direct convolution, one (image, filter) plane at a time.

    Each input plane the filter reads is copied into a padded scratch of row
    pitch ``width + pad_before + pad_after``, its border zero or, under a
    boundary rule (``rule``, a code of ``RULE_CODES``), the samples the rule
    names; on that grid every tap is a constant shift, so the whole output
    plane is one long pass per eight taps instead of per-row work.  Padded
    zeros meet the weights, which is why under zero fill the filters must be
    finite (the caller checks).

    x: (N, C, D, H, W); w: (F, C // groups, KD, KH, KW); out: (N, F, Do, Ho, Wo);
    padding: (3, 2) before/after; dilation: (3,); tasks ``begin:end`` numbered
    over (N, F).
    """
    depth, height, width = x.shape[2], x.shape[3], x.shape[4]
    filters, group_channels = w.shape[0], w.shape[1]
    kernel_depth, kernel_height, kernel_width = w.shape[2], w.shape[3], w.shape[4]
    depth_out, height_out, width_out = out.shape[2], out.shape[3], out.shape[4]
    group_filters = filters // groups
    pad_z, pad_y, pad_x = padding[0, 0], padding[1, 0], padding[2, 0]
    padded_depth = depth + pad_z + padding[0, 1]
    padded_height = height + pad_y + padding[1, 1]
    padded_width = width + pad_x + padding[2, 1]
    plane = padded_depth * padded_height * padded_width
    # The output grid keeps the padded pitch; its last valid point bounds the pass.
    grid = ((depth_out - 1) * padded_height + height_out - 1) * padded_width + width_out
    taps = group_channels * kernel_depth * kernel_height * kernel_width
    table = np.empty(0, dtype=np.int64)
    if rule != FILL:
        table = _extension_table(-pad_x, padded_width, width, rule)
    for task in range(begin, end):
        n = task // filters
        f = task % filters
        first_channel = (f // group_filters) * group_channels
        if rule == FILL:
            padded = np.zeros((group_channels, plane), dtype=out.dtype)
            for c in range(group_channels):
                for z in range(depth):
                    for y in range(height):
                        start = ((z + pad_z) * padded_height + y + pad_y) * padded_width + pad_x
                        _copy(padded[c, start : start + width], x[n, first_channel + c, z, y])
        else:
            padded = np.empty((group_channels, plane), dtype=out.dtype)
            for c in range(group_channels):
                for z in range(padded_depth):
                    source_z = extended_index(z - pad_z, depth, rule)
                    for y in range(padded_height):
                        source_y = extended_index(y - pad_y, height, rule)
                        source = x[n, first_channel + c, source_z, source_y]
                        start = (z * padded_height + y) * padded_width
                        target = padded[c, start : start + padded_width]
                        _copy(target[pad_x : pad_x + width], source)
                        for k in range(pad_x):
                            target[k] = source[table[k]]
                        for k in range(pad_x + width, padded_width):
                            target[k] = source[table[k]]
        tap_row = np.empty(taps, dtype=np.int64)
        tap_offset = np.empty(taps, dtype=np.int64)
        tap_weight = np.empty(taps, dtype=out.dtype)
        count = np.int64(0)  # not the literal 0: _apply_taps would be compiled for it too
        for c in range(group_channels):
            for kz in range(kernel_depth):
                for ky in range(kernel_height):
                    for kx in range(kernel_width):
                        tap_row[count] = c
                        tap_offset[count] = (
                            (kz * dilation[0]) * padded_height + ky * dilation[1]
                        ) * padded_width + kx * dilation[2]
                        tap_weight[count] = w[f, c, kz, ky, kx]
                        count += 1
        result = np.zeros(grid, dtype=out.dtype)
        for block in range(0, grid, ROW_BLOCK):
            _apply_taps(
                result,
                padded,
                tap_row,
                tap_offset,
                tap_weight,
                count,
                block,
                min(grid, block + ROW_BLOCK),
            )
        for oz in range(depth_out):
            for oy in range(height_out):
                start = (oz * padded_height + oy) * padded_width
                _copy(out[n, f, oz, oy], result[start : start + width_out])


@numba.njit(cache=True, inline="always")
def _copy(destination, source):
    for i in range(destination.size):
        destination[i] = source[i]


@numba.njit(cache=True, inline="always")
def _unfold_row(
    x,
    first_channel,
    kernel_shape,
    padding,
    stride,
    dilation,
    output_spatial,
    rule,
    table,
    columns,
    r,
):
    """Row ``r // batch`` of the columns, for image ``r % batch`` (see ``im2col``)."""
    batch = x.shape[0]
    depth, height, width = x.shape[2], x.shape[3], x.shape[4]
    kernel_height, kernel_width = kernel_shape[1], kernel_shape[2]
    depth_out, height_out, width_out = output_spatial[0], output_spatial[1], output_spatial[2]
    positions = depth_out * height_out * width_out
    taps = kernel_shape[0] * kernel_height * kernel_width
    row_index = r // batch
    n = r % batch
    c = row_index // taps
    tap = row_index % taps
    kz = tap // (kernel_height * kernel_width)
    ky = (tap // kernel_width) % kernel_height
    kx = tap % kernel_width
    # Indexed directly, no views: a view costs more than copying one of these short rows.
    row_start = n * positions
    channel = first_channel + c
    step_x = stride[2]
    shift_x = kx * dilation[2] - padding[2]
    # The outputs [low, high) of a row read inside the input row.
    low = min(width_out, max(0, -(shift_x // step_x)))
    high = max(low, min(width_out, (width - 1 - shift_x) // step_x + 1))
    for oz in range(depth_out):
        iz = extended_index(oz * stride[0] - padding[0] + kz * dilation[0], depth, rule)
        for oy in range(height_out):
            iy = extended_index(oy * stride[1] - padding[1] + ky * dilation[1], height, rule)
            base = row_start + (oz * height_out + oy) * width_out
            if iz < 0 or iy < 0:
                for o in range(width_out):
                    columns[row_index, base + o] = 0
                continue
            if rule == FILL:
                for o in range(low):
                    columns[row_index, base + o] = 0
                for o in range(high, width_out):
                    columns[row_index, base + o] = 0
            else:  # table[k] reads position k - padding[2]
                for o in range(low):
                    columns[row_index, base + o] = x[
                        n, channel, iz, iy, table[o * step_x + kx * dilation[2]]
                    ]
                for o in range(high, width_out):
                    columns[row_index, base + o] = x[
                        n, channel, iz, iy, table[o * step_x + kx * dilation[2]]
                    ]
            for o in range(low, high):
                columns[row_index, base + o] = x[n, channel, iz, iy, o * step_x + shift_x]


@numba.njit(cache=True, nogil=True)
def im2col(
    x,
    first_channel,
    kernel_shape,
    padding,
    stride,
    dilation,
    output_spatial,
    rule,
    columns,
    begin,
    end,
):
    """Unfold ``x[:, first_channel : first_channel + Cg]`` into GEMM columns (rows ``begin:end``).

    x: (N, C, D, H, W); columns: (Cg * KD * KH * KW, N * Do * Ho * Wo); where a
    tap falls into the padding, zero under zero fill, else the sample that
    ``rule`` (a code of ``RULE_CODES``) names.  The rows are numbered over
    (column row, image).
    """
    table = np.empty(0, dtype=np.int64)
    if rule != FILL:
        table = _extension_table(
            -padding[2],
            (output_spatial[2] - 1) * stride[2] + (kernel_shape[2] - 1) * dilation[2] + 1,
            x.shape[4],
            rule,
        )
    for r in range(begin, end):
        _unfold_row(
            x,
            first_channel,
            kernel_shape,
            padding,
            stride,
            dilation,
            output_spatial,
            rule,
            table,
            columns,
            r,
        )


@numba.njit(cache=True, nogil=True)
def split_phases(x, first_channel, padding, stride, rule, phases, begin, end):
    """The extended 2-D images of ``x``, split by stride phase (images x channels ``begin:end``).

    x: (N, C, 1, H, W); phases: (N, Cg, sy, sx, Hq, Wq) with
    ``phases[n, c, py, px, i, j]`` the sample at row ``i * sy + py - padding[1]``
    and column ``j * sx + px - padding[2]`` of channel ``first_channel + c``:
    zero outside the image under zero fill, else the sample that ``rule``
    names.  Every tap of a strided layer then reads a contiguous run of one
    phase (``im2col_phases``).
    """
    height, width = x.shape[3], x.shape[4]
    channels = phases.shape[1]
    steps_y, steps_x = phases.shape[2], phases.shape[3]
    rows, cols = phases.shape[4], phases.shape[5]
    # The input column each phase column reads (-1: zero), once for every row.
    sources = np.empty((steps_x, cols), dtype=np.int64)
    for px in range(steps_x):
        for j in range(cols):
            sources[px, j] = extended_index(j * stride[2] + px - padding[2], width, rule)
    for task in range(begin, end):
        n = task // channels
        c = task % channels
        for py in range(steps_y):
            for i in range(rows):
                y = extended_index(i * stride[1] + py - padding[1], height, rule)
                for px in range(steps_x):
                    target = phases[n, c, py, px, i]
                    if y < 0:
                        target[:] = 0
                        continue
                    line = x[n, first_channel + c, 0, y]
                    for j in range(cols):
                        column = sources[px, j]
                        target[j] = line[column] if column >= 0 else 0


@numba.njit(cache=True, nogil=True)
def im2col_phases(phases, kernel_shape, stride, dilation, output_spatial, columns, begin, end):
    """``im2col`` of a 2-D layer from ``split_phases`` (rows ``begin:end`` over (row, image)).

    Each (channel, tap, image) row copies ``Ho`` contiguous runs of ``Wo``
    samples of one phase, indexed directly: a view per run would cost more
    than copying these short runs.
    """
    batch = phases.shape[0]
    kernel_height, kernel_width = kernel_shape[1], kernel_shape[2]
    height_out, width_out = output_spatial[1], output_spatial[2]
    positions = height_out * width_out
    taps = kernel_height * kernel_width
    for r in range(begin, end):
        row_index = r // batch
        n = r % batch
        c = row_index // taps
        ky = (row_index % taps) // kernel_width
        kx = row_index % kernel_width
        reach_y, reach_x = ky * dilation[1], kx * dilation[2]
        py, px = reach_y % stride[1], reach_x % stride[2]
        top, left = reach_y // stride[1], reach_x // stride[2]
        # Unsigned indices: no negative-index wraparound, which keeps the compiler from
        # vectorizing the copy (bench/NOTES.md).
        row, image, channel = np.uint64(row_index), np.uint64(n), np.uint64(c)
        phase_y, phase_x, first = np.uint64(py), np.uint64(px), np.uint64(left)
        for oy in range(height_out):
            base = np.uint64(n * positions + oy * width_out)
            source_row = np.uint64(top + oy)
            for o in range(width_out):
                u = np.uint64(o)
                columns[row, base + u] = phases[
                    image, channel, phase_y, phase_x, source_row, first + u
                ]


@numba.njit(cache=True, nogil=True)
def unfold_block(phases, image, first_row, kernel_shape, stride, dilation, width_out, columns):
    """GEMM columns of output rows ``first_row`` on of one image, from ``split_phases``.

    columns: (C * KH * KW, rows * Wo), the block's positions; each tap copies
    contiguous runs of one phase, with unsigned indices (see ``im2col_phases``).
    """
    channels = phases.shape[1]
    kernel_height, kernel_width = kernel_shape[1], kernel_shape[2]
    taps = kernel_height * kernel_width
    rows = columns.shape[1] // width_out
    n = np.uint64(image)
    for row_index in range(channels * taps):
        c = row_index // taps
        ky = (row_index % taps) // kernel_width
        kx = row_index % kernel_width
        reach_y, reach_x = ky * dilation[1], kx * dilation[2]
        row, channel = np.uint64(row_index), np.uint64(c)
        phase_y = np.uint64(reach_y % stride[1])
        phase_x = np.uint64(reach_x % stride[2])
        top = reach_y // stride[1] + first_row
        first = np.uint64(reach_x // stride[2])
        for oy in range(rows):
            base = np.uint64(oy * width_out)
            source_row = np.uint64(top + oy)
            for o in range(width_out):
                u = np.uint64(o)
                columns[row, base + u] = phases[n, channel, phase_y, phase_x, source_row, first + u]
