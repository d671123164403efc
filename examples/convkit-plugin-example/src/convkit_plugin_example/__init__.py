"""A pure-NumPy convkit backend: im2col for ``conv``, FFT for ``convolve_nd``.

It uses only convkit's public plugin API (``convkit.plugin``), as any third
party would.
"""

from __future__ import annotations

import numpy as np

from convkit.plugin import (
    ALL_DTYPES,
    Backend,
    Capabilities,
    ConvolveProblem,
    ConvProblem,
    with_local_nonfinite,
)

__all__ = ["NumpyBackend"]


def _im2col_conv(problem: ConvProblem) -> np.ndarray:
    spatial = problem.spatial_dims
    batch, channels = problem.input.shape[:2]
    groups = problem.groups
    padded = np.pad(problem.input, ((0, 0), (0, 0), *problem.padding))
    extents = [d * (k - 1) + 1 for k, d in zip(problem.kernel_shape, problem.dilation)]
    axes = tuple(range(2, 2 + spatial))
    windows = np.lib.stride_tricks.sliding_window_view(padded, extents, axis=axes)
    # windows: (N, C, *positions, *extents); keep strided positions and dilated taps.
    out_spatial = problem.output_shape[2:]
    select = (
        (slice(None), slice(None))
        + tuple(slice(0, n * s, s) for n, s in zip(out_spatial, problem.stride))
        + tuple(slice(None, None, d) for d in problem.dilation)
    )
    columns = windows[select]
    columns = columns.reshape(batch, groups, channels // groups, *columns.shape[2:])
    filters = problem.filters.reshape(groups, -1, *problem.filters.shape[1:])
    letters = "hijklm"[:spatial]  # not n, g, c, f: those name batch, group, channel, filter
    taps = "pqrstu"[:spatial]
    result = np.einsum(
        f"ngc{letters}{taps},gfc{taps}->ngf{letters}", columns, filters, optimize=True
    )
    return result.reshape(problem.output_shape)


def _fft_convolve(problem: ConvolveProblem) -> np.ndarray:
    axes = list(problem.axes)
    lengths = [problem.full_shape[a] for a in axes]
    complex_input = problem.dtype.kind == "c"
    forward = np.fft.fftn if complex_input else np.fft.rfftn
    spectrum = forward(problem.in1, lengths, axes=axes) * forward(problem.in2, lengths, axes=axes)
    full = (
        np.fft.ifftn(spectrum, lengths, axes=axes)
        if complex_input
        else np.fft.irfftn(spectrum, lengths, axes=axes)
    )
    return full[problem.output_slices]


class NumpyBackend(Backend):
    """convkit backend "numpy-example": every operation and dtype, NumPy only."""

    name = "numpy-example"
    capabilities = Capabilities(dtypes=ALL_DTYPES)
    priority = -50  # a teaching example: auto prefers real engines

    def threads(self) -> int | None:
        return None  # NumPy's FFT is single-threaded; einsum follows the BLAS

    def method(self, problem) -> str:
        return "fft" if isinstance(problem, ConvolveProblem) else "direct"

    def conv(self, problem: ConvProblem) -> np.ndarray:
        return with_local_nonfinite(problem, _im2col_conv).astype(problem.dtype)

    def convolve_nd(self, problem: ConvolveProblem) -> np.ndarray:
        return with_local_nonfinite(problem, _fft_convolve).astype(problem.dtype)
