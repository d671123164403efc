"""Winograd F(4x4, 3x3) and F(2x2, 3x3): 3x3, stride-1 2-D layers with 4x or 2.25x fewer multiplies.

Lavin & Gray (2016).  Every m x m block of outputs (a *tile*, m = 4 or 2) is
computed from the (m+2) x (m+2) input patch ``d`` that covers it and the 3x3
filter ``g`` as::

    Y = A^T [ (G g G^T) * (B^T d B) ] A            (* elementwise)

so the sum over input channels becomes (m+2)^2 independent matrix products,
``M[i] = U[i] @ V[i]`` with ``U[i]`` (filters x channels) the transformed
filters and ``V[i]`` (channels x tiles) the transformed patches: 36 GEMMs of
``F x C x tiles`` (F(4x4, 3x3)) instead of one of ``F x 9C x 16 tiles``.

F(2x2, 3x3) uses only 0, +-1 and +-1/2.  F(4x4, 3x3) interpolates at the
points 0, -1, 1, 1/2, -2 and infinity, which measured 2-3x less rounding
than the textbook 0, +-1, +-2 (bench/NOTES.md).  The transforms mix all values
of a patch, so a NaN or inf would spread to its neighbours (the backend uses
this only for finite operands), and so does rounding: an output's error is
bounded by its patch's magnitudes, not by its own 3x3 window's, as an FFT's
is by the whole signal's.  The backend declares the path a transform method
(``NumbaBackend.method``), held to the transform bound of the conformance kit.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from convkit.plugin import ConvProblem, all_finite, get_num_threads
from convkit_numba._kernels import FILL, RULE_CODES, extended_index
from convkit_numba._threads import on_workers, thread_buffer

__all__ = [
    "applies",
    "conv_winograd",
    "filter_transform",
    "filter_transform_4x4",
    "finite",
    "input_transform",
    "input_transform_4x4",
    "output_transform",
    "output_transform_4x4",
    "direct_tiles",
    "even_taps",
    "patches_4x4",
    "risky_tiles",
    "tile_size",
]

# Channels and filters below which the 16 small GEMMs lose to one im2col GEMM.
MIN_CHANNELS = 16
# V and M of one band of tiles, per worker, by tile size (measured, bench/NOTES.md).
BAND_BYTES = {2: 8 * 2**20, 4: 2 * 2**20}
FASTMATH = {"contract"}  # fused multiply-adds only: no reassociation of the exact sums

_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
# F(4x4, 3x3) at the points 0, -1, 1, 1/2, -2, infinity: G (6x3); B^T and A^T are written
# out in _bt6 and _at6 (rows of B^T: 1 -3/2 -2 3/2 1 0 | 0 1 -5/2 1/2 1 0 | 0 -1 1/2 5/2 1 0 |
# 0 -2 -1 2 1 0 | 0 1/2 -1 -1/2 1 0 | 0 1 -3/2 -2 3/2 1; rows of A^T: 1 1 1 1 1 0 |
# 0 -1 1 1/2 -2 0 | 0 1 1 1/4 4 0 | 0 -1 1 1/8 -8 1).
_G6 = np.array(
    [
        [1.0, 0.0, 0.0],
        [-1 / 3, 1 / 3, -1 / 3],
        [1 / 3, 1 / 3, 1 / 3],
        [-16 / 15, -8 / 15, -4 / 15],
        [1 / 15, -2 / 15, 4 / 15],
        [0.0, 0.0, 1.0],
    ]
)
# A 4x4 tile is computed directly where an output's 3x3 window holds less than this share of
# its 6x6 patch's magnitude (``risky_tiles``; measured in bench/NOTES.md).
RISKY_RATIO = 1 / 16
# Kernels whose largest tap exceeds this many times their median take 2x2 tiles (``even_taps``).
MAX_TAP_SPREAD = 32.0
# Outputs below which a 4x4 tile wastes too much of its work on the cut edge.
MIN_OUTPUT_FOR_4X4 = 8


def filter_transform(filters: np.ndarray) -> np.ndarray:
    """``U`` (16, F, C): ``G g G^T`` of every (filter, channel) 3x3 kernel, in its dtype."""
    transformed = np.einsum("ij,fcjk,lk->ilfc", _G, filters, _G)
    return np.ascontiguousarray(transformed.reshape(16, *filters.shape[:2]), dtype=filters.dtype)


def filter_transform_4x4(
    filters: np.ndarray, u: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``U`` (36, C, F): ``G g G^T`` of every (filter, channel) 3x3 kernel, in its dtype, and
    each channel's largest ``|g|`` over its filters and taps (float64, for ``patches_4x4``).

    Computed in float64 and rounded once; laid out for ``V @ U`` (tiles x
    channels times channels x filters); into ``u`` if given.
    """
    if u is None:
        u = np.empty((36, filters.shape[1], filters.shape[0]), dtype=filters.dtype)
    largest = np.empty(filters.shape[1])
    # Channels-first and filters last, so that every step runs along the filters.
    kernels = np.ascontiguousarray(filters.transpose(1, 2, 3, 0), np.float64)
    _filter_transform_4x4(kernels, _G6, u, largest)
    return u, largest


@numba.njit(cache=True, nogil=True)
def _filter_transform_4x4(kernels, g6, u, largest):
    channels, _, _, filters = kernels.shape
    left = np.empty((6, 3, filters))
    for c in range(channels):
        largest[c] = np.abs(kernels[c]).max()
        for i in range(6):  # G g
            for k in range(3):
                for f in range(filters):
                    left[i, k, f] = (
                        g6[i, 0] * kernels[c, 0, k, f]
                        + g6[i, 1] * kernels[c, 1, k, f]
                        + g6[i, 2] * kernels[c, 2, k, f]
                    )
        for i in range(6):  # (G g) G^T
            for j in range(6):
                for f in range(filters):
                    u[6 * i + j, c, f] = (
                        left[i, 0, f] * g6[j, 0]
                        + left[i, 1, f] * g6[j, 1]
                        + left[i, 2, f] * g6[j, 2]
                    )


@numba.njit(cache=True, fastmath=FASTMATH, inline="always")
def _bt6(d0, d1, d2, d3, d4, d5, half, two):
    """``B^T d`` of F(4x4, 3x3) for one column of six samples.

    ``half`` and ``two`` are 0.5 and 2 in the samples' dtype, so that float32
    stays float32 (a Python float would promote every product to float64).
    """
    return (
        d0 - two * d2 + d4 + (d3 - d1) + half * (d3 - d1),  # d0 - 3/2 d1 - 2 d2 + 3/2 d3 + d4
        d1 + d4 - two * d2 + half * (d3 - d2),  # d1 - 5/2 d2 + 1/2 d3 + d4
        d4 - d1 + two * d3 + half * (d2 + d3),  # -d1 + 1/2 d2 + 5/2 d3 + d4
        two * (d3 - d1) - d2 + d4,
        half * (d1 - d3) - d2 + d4,
        d1 + d5 - two * d3 + (d4 - d2) + half * (d4 - d2),  # d1 - 3/2 d2 - 2 d3 + 3/2 d4 + d5
    )


@numba.njit(cache=True, fastmath=FASTMATH, inline="always")
def _at6(m0, m1, m2, m3, m4, m5, half, two):
    """``A^T m`` of F(4x4, 3x3) for one column of six products (``half``, ``two`` as in ``_bt6``)."""
    odd = m2 - m1
    even = m1 + m2
    quarter = half * half
    four = two * two
    return (
        m0 + even + m3 + m4,
        odd + half * m3 - two * m4,
        even + quarter * m3 + four * m4,
        odd + half * quarter * m3 - two * four * m4 + m5,
    )


@numba.njit(cache=True, nogil=True)
def patches_4x4(x, top, left, first_row, tile_rows, tiles_x, rule, weights, patches, magnitude):
    """The samples a band of 4x4 tiles reads, channels-last, and their magnitude.

    x: (C, H, W), one image; sample (r, q) of ``patches`` (4 tile_rows + 2,
    4 tiles_x + 2, C) is the image's (4 first_row + r - top, q - left), zero
    outside it, or under a boundary rule (a code of
    ``convkit_numba._kernels.RULE_CODES``) the sample the rule names there.
    The transform then reads plain 6x6 windows, every step along the
    channels.  ``magnitude[r, q]`` is ``sum_c weights[c] * |patches[r, q, c]|``
    (float64), for ``risky_tiles``.
    """
    channels, height, width = x.shape
    for r in range(4 * tile_rows + 2):
        y = extended_index(4 * first_row + r - top, height, rule)
        for q in range(4 * tiles_x + 2):
            column = extended_index(q - left, width, rule)
            if y < 0 or column < 0:
                patches[r, q, :] = 0
                magnitude[r, q] = 0.0
            else:
                total = 0.0
                for c in range(channels):
                    value = x[c, y, column]
                    patches[r, q, c] = value
                    total += weights[c] * abs(np.float64(value))
                magnitude[r, q] = total


@numba.njit(cache=True, nogil=True)
def risky_tiles(magnitude, tile_rows, tiles_x, height, width, ratio):
    """The tiles (indices in the band) where an output's window is small beside its patch.

    An output's rounding in F(4x4, 3x3) grows with the magnitudes of its
    whole 6x6 patch, a direct sum's only with those of its 3x3 window: where
    some output's window holds less than ``ratio`` of its patch's magnitude
    (``magnitude`` from ``patches_4x4``, summed), as beside a region of
    zeros or of much smaller values, the tile is computed directly instead.
    Only the outputs inside ``height`` x ``width`` (the band's) count.
    """
    found = np.empty(tile_rows * tiles_x, dtype=np.int64)
    count = 0
    for row in range(tile_rows):
        y = 4 * row
        for tx in range(tiles_x):
            x = 4 * tx
            patch = 0.0
            for i in range(6):
                for j in range(6):
                    patch += magnitude[y + i, x + j]
            smallest = np.inf
            for dy in range(min(4, height - y)):
                for dx in range(min(4, width - x)):
                    window = 0.0
                    for i in range(3):
                        for j in range(3):
                            window += magnitude[y + dy + i, x + dx + j]
                    smallest = min(smallest, window)
            if smallest < ratio * patch:
                found[count] = row * tiles_x + tx
                count += 1
    return found[:count]


@numba.njit(cache=True, fastmath=FASTMATH, nogil=True)
def direct_tiles(patches, kernels, tiles, tiles_x, out):
    """The outputs of ``tiles`` (from ``risky_tiles``) as direct sums, into ``out`` (as in
    ``output_transform_4x4``); ``kernels`` (3, 3, C, F) are the filters channels-first."""
    channels, filters = kernels.shape[2:]
    total = np.empty(filters, dtype=out.dtype)
    for tile in tiles:
        y, x = 4 * (tile // tiles_x), 4 * (tile % tiles_x)
        for dy in range(4):
            for dx in range(4):
                total[:] = 0
                for i in range(3):
                    for j in range(3):
                        for c in range(channels):
                            value = patches[y + dy + i, x + dx + j, c]
                            for f in range(filters):
                                total[f] += value * kernels[i, j, c, f]
                out[y + dy, x + dx, :] = total


@numba.njit(cache=True, fastmath=FASTMATH, nogil=True)
def input_transform_4x4(patches, tile_rows, tiles_x, v):
    """``V`` (36, tile_rows * tiles_x, C): ``B^T d B`` of every 4x4 tile of a band.

    ``patches`` from ``patches_4x4``; tile (ty, tx) of the band reads its
    rows 4 ty to 4 ty + 5 and columns 4 tx to 4 tx + 5.
    """
    channels = patches.shape[2]
    step = np.empty((6, 6, channels), dtype=patches.dtype)
    constants = np.array([0.5, 2.0], dtype=patches.dtype)
    half, two = constants[0], constants[1]
    for row in range(tile_rows):
        y = 4 * row
        for tx in range(tiles_x):
            x = 4 * tx
            for k in range(6):  # B^T d: the six rows of the patch combined, column by column
                for c in range(channels):
                    t0, t1, t2, t3, t4, t5 = _bt6(
                        patches[y, x + k, c],
                        patches[y + 1, x + k, c],
                        patches[y + 2, x + k, c],
                        patches[y + 3, x + k, c],
                        patches[y + 4, x + k, c],
                        patches[y + 5, x + k, c],
                        half,
                        two,
                    )
                    step[0, k, c] = t0
                    step[1, k, c] = t1
                    step[2, k, c] = t2
                    step[3, k, c] = t3
                    step[4, k, c] = t4
                    step[5, k, c] = t5
            t = row * tiles_x + tx
            for i in range(6):  # (B^T d) B: the same along each row
                for c in range(channels):
                    t0, t1, t2, t3, t4, t5 = _bt6(
                        step[i, 0, c],
                        step[i, 1, c],
                        step[i, 2, c],
                        step[i, 3, c],
                        step[i, 4, c],
                        step[i, 5, c],
                        half,
                        two,
                    )
                    v[6 * i, t, c] = t0
                    v[6 * i + 1, t, c] = t1
                    v[6 * i + 2, t, c] = t2
                    v[6 * i + 3, t, c] = t3
                    v[6 * i + 4, t, c] = t4
                    v[6 * i + 5, t, c] = t5


@numba.njit(cache=True, fastmath=FASTMATH, nogil=True)
def output_transform_4x4(m, tile_rows, tiles_x, out):
    """``out`` (4 tile_rows, 4 tiles_x, F), a band channels-last, from ``M`` (36, tiles, F).

    ``A^T M A`` per 4x4 tile, every step along the filters.
    """
    filters = out.shape[2]
    step = np.empty((6, 4, filters), dtype=out.dtype)
    constants = np.array([0.5, 2.0], dtype=out.dtype)
    half, two = constants[0], constants[1]
    for row in range(tile_rows):
        y = 4 * row
        for tx in range(tiles_x):
            x = 4 * tx
            t = row * tiles_x + tx
            for i in range(6):  # A^T on each row of the 6x6 products
                for f in range(filters):
                    a, b, c, d = _at6(
                        m[6 * i, t, f],
                        m[6 * i + 1, t, f],
                        m[6 * i + 2, t, f],
                        m[6 * i + 3, t, f],
                        m[6 * i + 4, t, f],
                        m[6 * i + 5, t, f],
                        half,
                        two,
                    )
                    step[i, 0, f] = a
                    step[i, 1, f] = b
                    step[i, 2, f] = c
                    step[i, 3, f] = d
            for col in range(4):  # then on the columns
                for f in range(filters):
                    a, b, c, d = _at6(
                        step[0, col, f],
                        step[1, col, f],
                        step[2, col, f],
                        step[3, col, f],
                        step[4, col, f],
                        step[5, col, f],
                        half,
                        two,
                    )
                    out[y, x + col, f] = a
                    out[y + 1, x + col, f] = b
                    out[y + 2, x + col, f] = c
                    out[y + 3, x + col, f] = d


@numba.njit(cache=True, fastmath=FASTMATH, nogil=True)
def input_transform(x, top, left, first_row, tile_rows, tiles_x, rule, v):
    """``V`` (16, C, tile_rows * tiles_x): ``B^T d B`` of a band of one image's tiles.

    x: (C, H, W); the patch of tile (ty, tx) starts at (2 ty - top, 2 tx - left)
    and is zero outside ``x``, or under a boundary rule (``rule``, a code of
    ``convkit_numba._kernels.RULE_CODES``) the samples the rule names there;
    the band is tile rows ``first_row`` on.
    Per tile row, the four input rows are copied into a padded scratch
    and combined (``B^T d``) as whole rows; the column step (``.. B``) then
    reads them at stride 2 and writes each of the 16 outputs along the tiles:
    no branch inside the loops, which the compiler vectorizes.
    """
    channels, height, width = x.shape
    span = 2 * tiles_x + 2
    low = min(span, max(0, left))  # the scratch columns [low, high) hold input
    high = max(low, min(span, width + left))
    rows = np.zeros((4, span), dtype=x.dtype)
    combined = np.empty((4, span), dtype=x.dtype)
    for c in range(channels):
        plane = x[c]
        for row in range(tile_rows):
            for k in range(4):
                y = extended_index(2 * (first_row + row) - top + k, height, rule)
                if y < 0:
                    rows[k, low:high] = 0
                    continue
                rows[k, low:high] = plane[y, low - left : high - left]
                if rule != FILL:
                    for j in range(low):
                        rows[k, j] = plane[y, extended_index(j - left, width, rule)]
                    for j in range(high, span):
                        rows[k, j] = plane[y, extended_index(j - left, width, rule)]
            for j in range(span):  # B^T d: (d0 - d2, d1 + d2, d2 - d1, d1 - d3)
                combined[0, j] = rows[0, j] - rows[2, j]
                combined[1, j] = rows[1, j] + rows[2, j]
                combined[2, j] = rows[2, j] - rows[1, j]
                combined[3, j] = rows[1, j] - rows[3, j]
            first = row * tiles_x
            for i in range(4):  # (B^T d) B, the same on columns
                row = combined[i]
                for tx in range(tiles_x):
                    v[4 * i, c, first + tx] = row[2 * tx] - row[2 * tx + 2]
                    v[4 * i + 1, c, first + tx] = row[2 * tx + 1] + row[2 * tx + 2]
                    v[4 * i + 2, c, first + tx] = row[2 * tx + 2] - row[2 * tx + 1]
                    v[4 * i + 3, c, first + tx] = row[2 * tx + 1] - row[2 * tx + 3]


@numba.njit(cache=True, fastmath=FASTMATH, nogil=True)
def output_transform(m, first_row, tile_rows, tiles_x, out):
    """A band of ``out`` (F, Ho, Wo), one image, from ``M`` (16, F, tile_rows * tiles_x).

    ``A^T M A`` per tile; the tiles past an odd edge are cut.
    """
    filters, height, width = out.shape
    rows = np.empty((2, 2 * tiles_x), dtype=out.dtype)
    for f in range(filters):
        plane = out[f]
        for row in range(tile_rows):
            first = row * tiles_x
            for tx in range(tiles_x):
                t = first + tx
                # A^T M: rows (m0 + m1 + m2, m1 - m2 - m3); then the same on columns
                a0 = m[0, f, t] + m[4, f, t] + m[8, f, t]
                a1 = m[1, f, t] + m[5, f, t] + m[9, f, t]
                a2 = m[2, f, t] + m[6, f, t] + m[10, f, t]
                a3 = m[3, f, t] + m[7, f, t] + m[11, f, t]
                b0 = m[4, f, t] - m[8, f, t] - m[12, f, t]
                b1 = m[5, f, t] - m[9, f, t] - m[13, f, t]
                b2 = m[6, f, t] - m[10, f, t] - m[14, f, t]
                b3 = m[7, f, t] - m[11, f, t] - m[15, f, t]
                rows[0, 2 * tx] = a0 + a1 + a2
                rows[0, 2 * tx + 1] = a1 - a2 - a3
                rows[1, 2 * tx] = b0 + b1 + b2
                rows[1, 2 * tx + 1] = b1 - b2 - b3
            y = 2 * (first_row + row)
            plane[y, :] = rows[0, :width]
            if y + 1 < height:
                plane[y + 1, :] = rows[1, :width]


def applies(problem: ConvProblem) -> bool:
    """Whether the layer has the shape this path computes (see ``finite`` for its values)."""
    return (
        problem.spatial_dims == 2
        and problem.kernel_shape == (3, 3)
        and problem.stride == (1, 1)
        and problem.dilation == (1, 1)
        and problem.groups == 1
        and problem.dtype.kind == "f"
        and min(problem.filters.shape[:2]) >= MIN_CHANNELS
    )


def finite(problem: ConvProblem) -> bool:
    """Whether both operands are finite: the transforms would spread a NaN or inf to neighbours."""
    return all_finite(problem.filters) and all_finite(problem.input)


@numba.njit(cache=True, nogil=True)
def even_taps(filters, spread):
    """Whether every 3x3 kernel's largest ``|g|`` is at most ``spread`` times its median.

    F(4x4, 3x3)'s filter transform mixes the nine taps with weights up to
    28/15: a tap far larger than the others puts its rounding on the outputs
    where the samples it meets are small (a tap 100x the others measured 1.0x
    the transform bound, 1e4x 1.3-2x; F(2x2, 3x3) stays at 0.13).
    """
    for f in range(filters.shape[0]):
        for c in range(filters.shape[1]):
            kernel = filters[f, c]
            largest = 0.0
            for i in range(3):
                for j in range(3):
                    largest = max(largest, abs(np.float64(kernel[i, j])))
            # The median is below largest / spread when five of the nine taps are.
            small = 0
            for i in range(3):
                for j in range(3):
                    small += spread * abs(np.float64(kernel[i, j])) < largest
            if small >= 5:
                return False
    return True


def tile_size(problem: ConvProblem) -> int:
    """4 (F(4x4, 3x3)) where the output is at least ``MIN_OUTPUT_FOR_4X4`` both ways, else 2."""
    return 4 if min(problem.output_shape[2:]) >= MIN_OUTPUT_FOR_4X4 else 2


def _buffers(
    points: int, channels: int, filters: int, tiles: int, dtype: np.dtype, channels_last: bool
) -> tuple[np.ndarray, np.ndarray]:
    """This thread's V and M, reused between calls: (points, C, tiles) and (points, F, tiles),
    or with ``channels_last`` (points, tiles, C) and (points, tiles, F)."""
    values = thread_buffer("winograd", (points * (channels + filters) * tiles,), dtype)
    split = points * channels * tiles
    if channels_last:
        return (
            values[:split].reshape(points, tiles, channels),
            values[split:].reshape(points, tiles, filters),
        )
    return (
        values[:split].reshape(points, channels, tiles),
        values[split:].reshape(points, filters, tiles),
    )


def conv_winograd(problem: ConvProblem, tile: int | None = None) -> np.ndarray:
    """The layer by F(4x4, 3x3) or F(2x2, 3x3) (``tile``; by default ``tile_size``, and 2x2
    tiles where a kernel has a dominant tap, ``even_taps``).

    The work is cut into bands of tile rows of one image, small enough for
    V and M to stay in cache, and at least as many bands as threads; each
    worker runs transform, GEMMs (single-threaded BLAS) and inverse transform
    for its bands, so no thread pool hands the cores to another between the
    steps, and a single image keeps every core busy.  F(4x4, 3x3) works
    channels-last (each band's samples gathered so by ``patches_4x4``, its
    output transposed back), so that its transforms run along the channels.
    """
    if tile is None:
        tile = tile_size(problem)
        if tile == 4 and not even_taps(problem.filters, MAX_TAP_SPREAD):
            tile = 2  # a dominant tap: the smaller tiles round it as a transform method may
    x, dtype = problem.input, problem.dtype
    batch, channels = x.shape[:2]
    filters = problem.filters.shape[0]
    # Under zero fill, the outputs whose 3x3 window lies wholly in the padding (padding
    # deeper than 2) are exact zeros, left out of the tiles: their patches would give them
    # the rounding of the samples beside them.
    (first_y, last_y), (first_x, last_x) = (
        (max(0, before - 2), size - max(0, after - 2)) if problem.boundary == "fill" else (0, size)
        for (before, after), size in zip(problem.padding, problem.output_shape[2:])
    )
    whole = (first_y, first_x) == (0, 0) and (last_y, last_x) == tuple(problem.output_shape[2:])
    out = (np.empty if whole else np.zeros)(problem.output_shape, dtype=dtype)
    region = out[:, :, first_y:last_y, first_x:last_x]
    height, width = region.shape[2:]
    if height <= 0 or width <= 0:
        return out
    tiles_y, tiles_x = math.ceil(height / tile), math.ceil(width / tile)
    top, left = problem.padding[0][0] - first_y, problem.padding[1][0] - first_x
    rule = RULE_CODES[problem.boundary]
    points = (tile + 2) ** 2
    per_row = points * (channels + filters) * tiles_x * dtype.itemsize
    count = math.ceil(tiles_y / max(1, min(tiles_y, BAND_BYTES[tile] // per_row)))
    threads = max(1, get_num_threads())
    if batch < threads:  # bands of one image for every thread, in equal shares
        count = min(tiles_y, math.ceil(count * batch / threads) * threads // batch)
    cuts = [tiles_y * k // count for k in range(count + 1)]
    bands = [
        (n, first, last - first)
        for n in range(batch)
        for first, last in zip(cuts, cuts[1:])
        if last > first
    ]
    if tile == 4:
        # This thread's buffer, reused between calls (fresh pages cost page faults every call),
        # and only read by the workers until the call returns.
        u, weights = filter_transform_4x4(
            problem.filters, thread_buffer("winograd-u", (36, channels, filters), dtype)
        )

        def work(items: range) -> None:
            for item in items:
                n, first_row, rows = bands[item]
                v, m = _buffers(points, channels, filters, rows * tiles_x, dtype, True)
                shape = (4 * rows + 2, 4 * tiles_x + 2)
                patches = thread_buffer("winograd-patches", (*shape, channels), dtype)
                magnitude = thread_buffer("winograd-magnitude", shape, np.float64)
                patches_4x4(
                    x[n], top, left, first_row, rows, tiles_x, rule, weights, patches, magnitude
                )
                input_transform_4x4(patches, rows, tiles_x, v)
                np.matmul(v, u, out=m)
                band_out = thread_buffer("winograd-out", (4 * rows, 4 * tiles_x, filters), dtype)
                output_transform_4x4(m, rows, tiles_x, band_out)
                begin, end = 4 * first_row, min(height, 4 * (first_row + rows))
                risky = risky_tiles(magnitude, rows, tiles_x, end - begin, width, RISKY_RATIO)
                if risky.size:
                    kernels = np.ascontiguousarray(problem.filters.transpose(2, 3, 1, 0))
                    direct_tiles(patches, kernels, risky, tiles_x, band_out)
                region[n, :, begin:end] = band_out[: end - begin, :width].transpose(2, 0, 1)

    else:
        u = filter_transform(problem.filters)

        def work(items: range) -> None:
            for item in items:
                n, first_row, rows = bands[item]
                v, m = _buffers(points, channels, filters, rows * tiles_x, dtype, False)
                input_transform(x[n], top, left, first_row, rows, tiles_x, rule, v)
                np.matmul(u, v, out=m)
                output_transform(m, first_row, rows, tiles_x, region[n])

    on_workers(work, len(bands))
    return out
