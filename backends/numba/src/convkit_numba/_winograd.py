"""Winograd F(2x2, 3x3): 3x3, stride-1 2-D layers with 2.25x fewer multiplies.

Lavin & Gray (2016).  Every 2x2 block of outputs (a *tile*) is computed from
the 4x4 input patch ``d`` that covers it and the 3x3 filter ``g`` as::

    Y = A^T [ (G g G^T) * (B^T d B) ] A            (* elementwise, 16 terms)

so the sum over input channels becomes 16 independent matrix products,
``M[i] = U[i] @ V[i]`` with ``U[i]`` (filters x channels) the transformed
filters and ``V[i]`` (channels x tiles) the transformed patches: 16 GEMMs of
``F x C x tiles`` instead of one of ``F x 9C x 4 tiles``.  The transforms use
only 0, +-1 and +-1/2, and the rounding stays at the direct method's level
(bench/NOTES.md measures it).  The transforms mix all 16 values of a patch,
so a NaN or inf would spread to its neighbours: the backend uses this only
for finite operands.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from convkit.plugin import ConvProblem, all_finite
from convkit_numba._kernels import FILL, RULE_CODES, extended_index
from convkit_numba._threads import on_workers, thread_buffer

__all__ = [
    "applies",
    "conv_winograd",
    "filter_transform",
    "finite",
    "input_transform",
    "output_transform",
]

# Channels and filters below which the 16 small GEMMs lose to one im2col GEMM.
MIN_CHANNELS = 16
# V and M of one band of tiles, per worker: small enough to stay in cache.
BAND_BYTES = 8 * 2**20
FASTMATH = {"contract"}  # fused multiply-adds only: no reassociation of the exact sums

_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


def filter_transform(filters: np.ndarray) -> np.ndarray:
    """``U`` (16, F, C): ``G g G^T`` of every (filter, channel) 3x3 kernel, in its dtype."""
    transformed = np.einsum("ij,fcjk,lk->ilfc", _G, filters, _G)
    return np.ascontiguousarray(transformed.reshape(16, *filters.shape[:2]), dtype=filters.dtype)


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


def _buffers(
    channels: int, filters: int, tiles: int, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray]:
    """This thread's V (16, C, tiles) and M (16, F, tiles), reused between calls."""
    values = thread_buffer("winograd", (16 * (channels + filters) * tiles,), dtype)
    split = 16 * channels * tiles
    return values[:split].reshape(16, channels, tiles), values[split:].reshape(16, filters, tiles)


def conv_winograd(problem: ConvProblem) -> np.ndarray:
    """The layer by F(2x2, 3x3): images spread over threads, each in bands of tile rows.

    Each worker runs transform, 16 GEMMs (single-threaded BLAS) and inverse
    transform for its images, so no thread pool hands the cores to another
    between the steps; with one image, the GEMMs get every thread instead.
    """
    x, dtype = problem.input, problem.dtype
    batch, channels = x.shape[:2]
    filters = problem.filters.shape[0]
    height, width = problem.output_shape[2:]
    tiles_y, tiles_x = math.ceil(height / 2), math.ceil(width / 2)
    top, left = problem.padding[0][0], problem.padding[1][0]
    rule = RULE_CODES[problem.boundary]
    u = filter_transform(problem.filters)
    out = np.empty(problem.output_shape, dtype=dtype)
    per_row = 16 * (channels + filters) * tiles_x * dtype.itemsize
    band = max(1, min(tiles_y, BAND_BYTES // per_row))

    def work(images: range) -> None:
        for n in images:
            for first_row in range(0, tiles_y, band):
                rows = min(band, tiles_y - first_row)
                v, m = _buffers(channels, filters, rows * tiles_x, dtype)
                input_transform(x[n], top, left, first_row, rows, tiles_x, rule, v)
                np.matmul(u, v, out=m)
                output_transform(m, first_row, rows, tiles_x, out[n])

    on_workers(work, batch)
    return out
