"""The "numba" backend: dispatch each normalized problem to a kernel."""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass

import numpy as np

from convkit.plugin import (
    ALL_DTYPES,
    Availability,
    Backend,
    Capabilities,
    ConvGradFiltersProblem,
    ConvGradInputProblem,
    ConvolveProblem,
    ConvProblem,
    Problem,
    all_finite,
    get_num_threads,
    kernel_operand,
    with_local_nonfinite,
)
from convkit_numba._threads import blas_limits, on_workers, run_parallel, thread_buffer

__all__ = ["NumbaBackend"]

SPATIAL = 3
# Below this many multiply-adds the direct kernel beats unfolding + GEMM
# (its per-call cost is lower); measured in bench/NOTES.md.
DIRECT_MULTIPLY_ADDS = 2**21
# Images with at least this many output positions get one GEMM each, written in
# place; smaller ones share one wider GEMM (BLAS is inefficient on narrow ones).
PER_IMAGE_GEMM_POSITIONS = 2048
# Output positions per block of a worker's unfold + GEMM pipeline: its columns stay in cache.
BLOCK_POSITIONS = 3136
# Upper bound of one im2col buffer; larger problems are unfolded in batch chunks.
COLUMN_BYTES = 64 * 2**20
# The gradients, computed natively by convkit_numba._gradients.
GRADIENTS = frozenset({"conv_grad_input", "conv_grad_filters"})


def _lift(values: tuple, spatial: int, fill: int) -> np.ndarray:
    """Per-axis parameters padded to three spatial axes."""
    return np.array((fill,) * (SPATIAL - spatial) + tuple(values), dtype=np.int64)


def _lift_array(array: np.ndarray, leading: int) -> np.ndarray:
    """(A, B, *spatial) -> (A, B, 1, ..., *spatial) with three spatial axes."""
    spatial = array.ndim - leading
    return array.reshape(array.shape[:leading] + (1,) * (SPATIAL - spatial) + array.shape[leading:])


class NumbaBackend(Backend):
    """Parallel CPU kernels compiled by Numba (direct, and im2col + BLAS GEMM)."""

    name = "numba"
    # Every rule is extended natively: the kernels read the extension by index, no padded copy.
    capabilities = Capabilities(
        dtypes=ALL_DTYPES,
        max_spatial_dims=SPATIAL,
        boundaries=frozenset({"wrap", "symm", "mirror", "nearest"}),
    )
    priority = 10

    def availability(self) -> Availability:
        # Found, not imported: importing Numba costs a quarter second that `info` need not pay.
        if importlib.util.find_spec("numba") is None:
            return Availability(False, "Numba is not installed; pip install numba")
        return Availability(True, device="CPU")

    def threads(self) -> int | None:
        return max(1, get_num_threads())

    def estimate_seconds(self, problem: Problem) -> float | None:
        """Calibrated on bench/baseline (2-core AVX-512 VM, bench/NOTES.md): GEMM path
        59-256 GFLOP/s (100 typical), Winograd ~250 with 4x4 tiles and ~190 with 2x2
        (direct-method flops), direct conv ~30, direct convolve_nd 50-120."""
        from convkit_numba import _gradients, _winograd

        if problem.operation in GRADIENTS:
            return _gradients.estimate_seconds(self, problem)
        flops = 2.0 * problem.multiply_adds
        if isinstance(problem, ConvProblem):
            if self._winograd_applies(problem):
                rate = 250e9 if _winograd.tile_size(problem) == 4 else 190e9
                return 30e-6 + flops / rate
            if self._uses_gemm(problem):
                return 30e-6 + flops / 100e9
            return 20e-6 + flops / 30e9
        return 20e-6 + flops / 60e9

    def method(self, problem: Problem) -> str:
        """ "fft" where the layer runs by Winograd's transforms (a 3x3 stride-1 layer, or the
        input gradient that runs as one): like an FFT's, their rounding spreads over each
        output's neighbours (``_winograd``); "direct" elsewhere."""
        from convkit_numba import _gradients

        if isinstance(problem, ConvGradInputProblem):
            problem = _gradients.forward_layer(problem)
        if isinstance(problem, ConvProblem) and self._winograd_applies(problem):
            return "fft"
        return "direct"

    def _winograd_applies(self, problem: ConvProblem) -> bool:
        from convkit_numba import _winograd

        return self._uses_gemm(problem) and _winograd.applies(problem)

    def working_set_bytes(self, problem: Problem) -> int:
        if problem.operation in GRADIENTS:
            from convkit_numba import _gradients

            return _gradients.working_set_bytes(self, problem)
        base = super().working_set_bytes(problem)
        if isinstance(problem, ConvProblem) and self._uses_gemm(problem):
            return base + min(
                self._column_bytes_per_image(problem) * problem.input.shape[0],
                max(COLUMN_BYTES, self._column_bytes_per_image(problem)),
            )
        return base

    @staticmethod
    def _column_bytes_per_image(problem: ConvProblem) -> int:
        taps = math.prod(problem.filters.shape[1:])
        return taps * math.prod(problem.output_shape[2:]) * problem.dtype.itemsize

    @staticmethod
    def _uses_gemm(problem: ConvProblem) -> bool:
        depthwise = problem.filters.shape[1] == 1 and problem.groups > 1
        return not depthwise and problem.multiply_adds > DIRECT_MULTIPLY_ADDS

    def conv(self, problem: ConvProblem) -> np.ndarray:
        # Under a boundary rule the padding holds samples, not zeros: no weight meets a
        # padded zero, so the paths that pad need no finite filters then.
        fill = problem.boundary == "fill"
        if not self._uses_gemm(problem) or _complex_nonfinite(problem):
            if all(step == 1 for step in problem.stride) and (
                not fill or np.isfinite(problem.filters).all()
            ):
                return _conv_padded_planes(problem)
            return _conv_direct(problem)
        from convkit_numba import _winograd

        if self._winograd_applies(problem) and _winograd.finite(problem):
            return _winograd.conv_winograd(problem)
        padded = any(before or after for before, after in problem.padding)
        if fill and padded and not np.isfinite(problem.filters).all():
            # Unfolding writes padding as zeros, and 0 * inf is NaN where the
            # direct definition has no term: protect only this case.
            return with_local_nonfinite(problem, _conv_gemm).astype(problem.dtype)
        return _conv_gemm(problem)

    def convolve_nd(self, problem: ConvolveProblem) -> np.ndarray:
        return _convolve(problem)

    def conv_grad_input(self, problem: ConvGradInputProblem) -> np.ndarray:
        from convkit_numba import _gradients

        return _gradients.conv_grad_input(self, problem)

    def conv_grad_filters(self, problem: ConvGradFiltersProblem) -> np.ndarray:
        from convkit_numba import _gradients

        return _gradients.conv_grad_filters(problem)


def _complex_nonfinite(problem: ConvProblem) -> bool:
    """Whether complex operands hold a NaN or an infinity: they take the direct kernels.

    OpenBLAS's complex GEMM does not multiply as the direct definition does
    (``(inf+0j) * (1+2j) + (1+1j) * (1+1j)`` comes out with a NaN real part,
    where the terms' real parts are inf and 0), on every GEMM path
    (per image, chunked, 1x1).  The direct kernels sum the definition's own
    products in about 1-4 times the GEMM's time, whatever the non-finite
    values; ``with_local_nonfinite`` would add a GEMM per kind of non-finite
    term (measured 4-150 times the GEMM's time with NaN, +-inf and zeros).
    """
    return problem.dtype.kind == "c" and not (
        all_finite(problem.input) and all_finite(problem.filters)
    )


def _conv_direct(problem: ConvProblem) -> np.ndarray:
    from convkit_numba._kernels import RULE_CODES, conv_direct, conv_direct_strided

    spatial = problem.spatial_dims
    out = np.empty(
        problem.output_shape[:2] + (1,) * (SPATIAL - spatial) + problem.output_shape[2:],
        dtype=problem.dtype,
    )
    run_parallel(
        conv_direct if problem.stride[-1] == 1 else conv_direct_strided,
        _lift_array(problem.input, 2),
        _lift_array(problem.filters, 2),
        _lift(tuple(before for before, _ in problem.padding), spatial, 0),
        _lift(problem.stride, spatial, 1),
        _lift(problem.dilation, spatial, 1),
        problem.groups,
        RULE_CODES[problem.boundary],
        out,
        tasks=math.prod(out.shape[:3]),
        work=problem.multiply_adds,
    )
    return out.reshape(problem.output_shape)


def _conv_padded_planes(problem: ConvProblem) -> np.ndarray:
    from convkit_numba._kernels import RULE_CODES, conv_padded_planes

    spatial = problem.spatial_dims
    out = np.empty(
        problem.output_shape[:2] + (1,) * (SPATIAL - spatial) + problem.output_shape[2:],
        dtype=problem.dtype,
    )
    padding = np.zeros((SPATIAL, 2), dtype=np.int64)
    padding[SPATIAL - spatial :] = problem.padding
    run_parallel(
        conv_padded_planes,
        _lift_array(problem.input, 2),
        _lift_array(problem.filters, 2),
        padding,
        _lift(problem.dilation, spatial, 1),
        problem.groups,
        RULE_CODES[problem.boundary],
        out,
        tasks=math.prod(out.shape[:2]),
        work=problem.multiply_adds,
    )
    return out.reshape(problem.output_shape)


def _quiet():
    """NaN and inf operands give NaN and inf sums, as in the direct definition: no warning."""
    return np.errstate(invalid="ignore", over="ignore")


def _conv_gemm(problem: ConvProblem) -> np.ndarray:
    from convkit_numba._kernels import RULE_CODES

    rule = RULE_CODES[problem.boundary]
    spatial = problem.spatial_dims
    x = _lift_array(problem.input, 2)
    batch, _channels = x.shape[:2]
    filters, group_channels = problem.filters.shape[:2]
    groups = problem.groups
    group_filters = filters // groups
    kernel = _lift(problem.kernel_shape, spatial, 1)
    padding = _lift(tuple(before for before, _ in problem.padding), spatial, 0)
    stride = _lift(problem.stride, spatial, 1)
    dilation = _lift(problem.dilation, spatial, 1)
    output_spatial = _lift(problem.output_shape[2:], spatial, 1)
    positions = math.prod(problem.output_shape[2:])
    taps = group_channels * math.prod(problem.kernel_shape)
    weights = problem.filters.reshape(groups, group_filters, taps)
    layout = _Unfolding(group_channels, kernel, padding, stride, dilation, output_spatial)
    pointwise = taps == group_channels and not padding.any() and (stride == 1).all()
    per_image = taps * positions * problem.dtype.itemsize
    threads = max(1, get_num_threads())
    wide = positions >= PER_IMAGE_GEMM_POSITIONS
    if groups == 1 and wide and not pointwise and layout.planar:
        return _conv_gemm_blocks(problem, x, weights[0], layout, rule).reshape(problem.output_shape)
    out = np.empty((batch, filters, positions), dtype=problem.dtype)
    if groups == 1 and (wide or batch >= 2 * threads) and not pointwise and batch > 1:
        # Wide 3-D images, or images enough for every thread: each worker unfolds its own
        # images and runs their GEMMs (single-threaded BLAS), so Numba's and the BLAS's thread pools
        # never hand the cores to each other (bench/NOTES.md).
        def work(images: range) -> None:
            with _quiet():  # numpy's error state is per thread
                _unfold_and_multiply(images)

        def _unfold_and_multiply(images: range) -> None:
            for n in images:
                columns = thread_buffer("columns", (taps, positions), problem.dtype)
                _unfold(x[n : n + 1], 0, layout, rule, columns, parallel=False)
                np.matmul(weights[0], columns, out=out[n])

        on_workers(work, batch)
        return out.reshape(problem.output_shape)
    chunk = max(1, min(batch, COLUMN_BYTES // max(per_image, 1)))
    with blas_limits(max(1, get_num_threads())), _quiet():
        for g in range(groups):
            channel_slice = slice(g * group_channels, (g + 1) * group_channels)
            filter_slice = slice(g * group_filters, (g + 1) * group_filters)
            for first in range(0, batch, chunk):
                count = min(chunk, batch - first)
                if pointwise:
                    images = problem.input[first : first + count, channel_slice].reshape(
                        count, group_channels, positions
                    )
                    if groups == 1:
                        np.matmul(weights[g], images, out=out[first : first + count])
                    else:
                        out[first : first + count, filter_slice] = np.matmul(weights[g], images)
                    continue
                columns = thread_buffer("columns", (taps, count * positions), problem.dtype)
                _unfold(x[first : first + count], g * group_channels, layout, rule, columns)
                if groups == 1 and positions >= PER_IMAGE_GEMM_POSITIONS:
                    for image in range(count):  # each GEMM writes its image's output in place
                        np.matmul(
                            weights[g],
                            columns[:, image * positions : (image + 1) * positions],
                            out=out[first + image],
                        )
                else:
                    product = weights[g] @ columns
                    out[first : first + count, filter_slice] = product.reshape(
                        group_filters, count, positions
                    ).transpose(1, 0, 2)
    return out.reshape(problem.output_shape)


def _conv_gemm_blocks(
    problem: ConvProblem, x: np.ndarray, weights: np.ndarray, layout: _Unfolding, rule: int
) -> np.ndarray:
    """A 1-D or 2-D layer (one group) in blocks of output rows, each a worker's pipeline.

    The input is split into its stride phases once (on every thread); then
    each worker unfolds a block of about ``BLOCK_POSITIONS`` output positions
    of one image, which stays in cache for its GEMM (single-threaded BLAS),
    and copies the product into place.  Numba's and the BLAS's thread pools
    never hand the cores to each other, and one image keeps every thread busy.
    """
    from convkit_numba._kernels import split_phases, unfold_block

    batch = x.shape[0]
    filters, taps = weights.shape
    height_out, width_out = (int(size) for size in layout.output_spatial[1:])
    positions = height_out * width_out
    phases = thread_buffer("phases", layout.phases_shape(batch), x.dtype)
    run_parallel(
        split_phases,
        x,
        0,
        layout.padding,
        layout.stride,
        rule,
        phases,
        tasks=batch * layout.channels,
        work=phases.size,
    )
    rows = max(1, min(height_out, BLOCK_POSITIONS // width_out))
    count = math.ceil(height_out / rows)
    threads = max(1, get_num_threads())
    if batch * count < threads:  # blocks of one image for every thread
        count = min(height_out, math.ceil(threads / batch))
    cuts = [height_out * k // count for k in range(count + 1)]
    blocks = [
        (n, first, last)
        for n in range(batch)
        for first, last in zip(cuts, cuts[1:])
        if last > first
    ]
    out = np.empty((batch, filters, positions), dtype=problem.dtype)

    def work(items: range) -> None:
        with _quiet():  # numpy's error state is per thread
            for item in items:
                n, first, last = blocks[item]
                size = (last - first) * width_out
                columns = thread_buffer("columns", (taps, size), x.dtype)
                unfold_block(
                    phases,
                    n,
                    first,
                    layout.kernel,
                    layout.stride,
                    layout.dilation,
                    width_out,
                    columns,
                )
                product = thread_buffer("product", (filters, size), x.dtype)
                np.matmul(weights, columns, out=product)
                out[n, :, first * width_out : last * width_out] = product

    on_workers(work, len(blocks))
    return out


@dataclass(frozen=True)
class _Unfolding:
    """How a layer's input unfolds into GEMM columns (each array over (depth, height, width))."""

    channels: int
    kernel: np.ndarray
    padding: np.ndarray
    stride: np.ndarray
    dilation: np.ndarray
    output_spatial: np.ndarray

    @property
    def planar(self) -> bool:
        """A 1-D or 2-D layer: unfolded through its stride phases (``split_phases``)."""
        return self.kernel[0] == 1 and self.output_spatial[0] == 1

    def phases_shape(self, batch: int) -> tuple[int, ...]:
        """``split_phases``'s array for ``batch`` images: (N, C, sy, sx, rows, columns)."""
        reach = [
            (int(k) - 1) * int(d) // int(s) + int(o)
            for k, d, s, o in zip(
                self.kernel[1:], self.dilation[1:], self.stride[1:], self.output_spatial[1:]
            )
        ]
        return (batch, self.channels, int(self.stride[1]), int(self.stride[2]), *reach)


def _unfold(
    x: np.ndarray,
    first_channel: int,
    layout: _Unfolding,
    rule: int,
    columns: np.ndarray,
    parallel: bool = True,
) -> None:
    """Write the GEMM columns of ``x`` (N, C, D, H, W), channels from ``first_channel``.

    A 1-D or 2-D layer is split into its stride phases first (one pass over
    the input), so that every tap copies contiguous runs; others take
    ``im2col``.  ``parallel``: on convkit's threads, else on this one.
    """
    from convkit_numba._kernels import im2col, im2col_phases, split_phases

    batch = x.shape[0]
    rows = layout.channels * math.prod(layout.kernel) * batch

    def run(kernel, *arguments, tasks: int) -> None:
        if parallel:
            run_parallel(kernel, *arguments, tasks=tasks)
        else:
            kernel(*arguments, 0, tasks)

    if not layout.planar:
        run(
            im2col,
            x,
            first_channel,
            layout.kernel,
            layout.padding,
            layout.stride,
            layout.dilation,
            layout.output_spatial,
            rule,
            columns,
            tasks=rows,
        )
        return
    phases = thread_buffer("phases", layout.phases_shape(batch), x.dtype)
    run(
        split_phases,
        x,
        first_channel,
        layout.padding,
        layout.stride,
        rule,
        phases,
        tasks=batch * layout.channels,
    )
    run(
        im2col_phases,
        phases,
        layout.kernel,
        layout.stride,
        layout.dilation,
        layout.output_spatial,
        columns,
        tasks=rows,
    )


def _convolve(problem: ConvolveProblem) -> np.ndarray:
    """Map the problem onto convolve_rows: a batch of 3-axis convolutions."""
    from convkit_numba._kernels import RULE_CODES, convolve_rows

    axes = problem.axes
    ndim = problem.in1.ndim
    others = [axis for axis in range(ndim) if axis not in axes]
    signal, kernel = problem.in1, problem.in2
    # Convolution commutes: loop over the smaller operand's taps.  Not under a boundary
    # rule, which extends in1 only.
    if problem.boundary == "fill" and kernel_operand(signal.shape, kernel.shape, axes) == 0:
        signal, kernel = kernel, signal
    order = others + list(axes)
    signal, kernel = signal.transpose(order), kernel.transpose(order)
    batch_rank = len(others)
    region = [
        slice(problem.output_start[a], problem.output_start[a] + problem.output_shape[a])
        for a in others
    ]
    full_batch = tuple(
        max(a, b) for a, b in zip(signal.shape[:batch_rank], kernel.shape[:batch_rank])
    )

    def batch_index(array: np.ndarray) -> np.ndarray:
        own = array.shape[:batch_rank]
        flat = np.arange(math.prod(own), dtype=np.int64).reshape(own)
        return np.ascontiguousarray(np.broadcast_to(flat, full_batch)[tuple(region)]).reshape(-1)

    signal_index, kernel_index = batch_index(signal), batch_index(kernel)
    spatial = len(axes)
    signal3 = np.ascontiguousarray(signal).reshape(
        (-1,) + (1,) * (SPATIAL - spatial) + signal.shape[batch_rank:]
    )
    kernel3 = np.ascontiguousarray(kernel).reshape(
        (-1,) + (1,) * (SPATIAL - spatial) + kernel.shape[batch_rank:]
    )
    start = _lift(tuple(problem.output_start[a] for a in axes), spatial, 0)
    region_shape = tuple(problem.output_shape[a] for a in others)
    conv_shape = tuple(problem.output_shape[a] for a in axes)
    out = np.empty(
        (len(signal_index),) + (1,) * (SPATIAL - spatial) + conv_shape, dtype=problem.dtype
    )
    run_parallel(
        convolve_rows,
        signal3,
        kernel3,
        signal_index,
        kernel_index,
        start,
        RULE_CODES[problem.boundary],
        out,
        tasks=math.prod(out.shape[:3]),
        work=problem.multiply_adds,
    )
    result = out.reshape(region_shape + conv_shape)
    return np.ascontiguousarray(result.transpose(np.argsort(order)))
