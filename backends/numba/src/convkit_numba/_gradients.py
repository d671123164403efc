"""The two gradients of a conv as GEMMs, without the zero-dilated output gradient.

Filter gradient.  With the input unfolded into columns (``im2col``: one row
per channel and tap of the group, one column per output position), the
forward is ``y[n, g] = W[g] @ cols_n``, so the gradient of the filters is
``dW[g] = sum over n of G[n, g] @ cols_n^T``: a GEMM per image (or per chunk
of images side by side), summed.  Each worker thread sums its own images'
products; the partial sums are added at the end.

Input gradient.  ``cols = W[g]^T @ G[n, g]`` holds, for each channel, tap
and output position, the gradient of the input sample the forward read
there; ``col2im`` adds each column entry onto that sample (padding
positions are dropped), so every input sample sums exactly the direct
definition's terms.  With stride 1 the input gradient is itself a forward
conv of the output gradient (the filters' channel axes swapped, taps
reversed, padding ``dilation * (k - 1) - pad``), which the backend's conv
runs (Winograd for 3x3 layers); 1x1 layers are one GEMM per image.

Non-finite values.  The input gradient's GEMM and scatter only combine
terms of the direct definition (a column entry for a padding position,
``inf * 0`` included, is never added), and so does the forward conv.  The
filter gradient's columns hold zeros at padding positions, which meet the
output gradient in the GEMM: with padding and a non-finite output gradient
it runs under ``with_local_nonfinite``.  So do both gradients for complex
operands with a non-finite value: OpenBLAS's complex GEMM does not multiply
as the direct definition does (``(inf+0j) * (1+2j) + (1+1j) * (1+1j)``
comes out with a NaN real part, where the terms' real parts are inf and 0).
"""

from __future__ import annotations

import itertools
import math

import numba
import numpy as np

from convkit.plugin import (
    ConvGradFiltersProblem,
    ConvGradInputProblem,
    ConvProblem,
    all_finite,
    get_num_threads,
    with_local_nonfinite,
)
from convkit_numba._kernels import RULE_CODES, im2col
from convkit_numba._threads import SERIAL_WORK, blas_limits, on_workers, thread_buffer

__all__ = [
    "col2im",
    "conv_grad_filters",
    "conv_grad_input",
    "forward_layer",
    "estimate_seconds",
    "working_set_bytes",
]

SPATIAL = 3
# Images with fewer output positions share one GEMM, side by side, up to this many columns.
GEMM_COLUMNS = 512
# Upper bound of one worker's column buffer, before a chunk is cut to fewer images.
COLUMN_BYTES = 64 * 2**20
FASTMATH = {"contract", "reassoc"}


def _lift(values: tuple, fill: int) -> np.ndarray:
    """Per-axis parameters padded to three spatial axes."""
    return np.array((fill,) * (SPATIAL - len(values)) + tuple(values), dtype=np.int64)


def _lift_array(array: np.ndarray) -> np.ndarray:
    """(A, B, *spatial) -> (A, B, 1, ..., *spatial) with three spatial axes."""
    spatial = array.ndim - 2
    return array.reshape(array.shape[:2] + (1,) * (SPATIAL - spatial) + array.shape[2:])


@numba.njit(cache=True, fastmath=FASTMATH, inline="always")
def _add(destination, source):
    for i in range(destination.size):
        destination[i] += source[i]


@numba.njit(cache=True, fastmath=FASTMATH, nogil=True)
def col2im(
    columns,
    out,
    n,
    first_channel,
    kernel_shape,
    padding,
    stride,
    dilation,
    output_spatial,
    begin,
    end,
):
    """Add one image's columns onto its input gradient, for channels ``begin:end`` of the group.

    columns: (Cg * KD * KH * KW, Do * Ho * Wo), rows numbered as ``im2col``
    numbers them; out: (N, C, D, H, W).  Channel ``first_channel + c`` of
    image ``n`` becomes the sum of the entries whose input position lies
    inside the input (entries for padding positions are dropped); positions
    that no entry reaches are 0.  Tasks are channels: threads never write
    the same plane.
    """
    depth, height, width = out.shape[2], out.shape[3], out.shape[4]
    kernel_height, kernel_width = kernel_shape[1], kernel_shape[2]
    taps = kernel_shape[0] * kernel_height * kernel_width
    depth_out, height_out, width_out = output_spatial[0], output_spatial[1], output_spatial[2]
    for c in range(begin, end):
        plane = out[n, first_channel + c]
        for z in range(depth):
            for y in range(height):
                plane[z, y, :] = 0
        for tap in range(taps):
            kz = tap // (kernel_height * kernel_width)
            ky = (tap // kernel_width) % kernel_height
            kx = tap % kernel_width
            source = columns[c * taps + tap]
            shift_x = kx * dilation[2] - padding[2]
            low = max(0, -(shift_x // stride[2]))
            high = max(low, min(width_out, (width - 1 - shift_x) // stride[2] + 1))
            if low >= high:
                continue
            first = low * stride[2] + shift_x
            last = first + (high - low - 1) * stride[2] + 1
            for oz in range(depth_out):
                iz = oz * stride[0] - padding[0] + kz * dilation[0]
                if iz < 0 or iz >= depth:
                    continue
                for oy in range(height_out):
                    iy = oy * stride[1] - padding[1] + ky * dilation[1]
                    if iy < 0 or iy >= height:
                        continue
                    base = (oz * height_out + oy) * width_out
                    if stride[2] == 1:
                        _add(plane[iz, iy, first:last], source[base + low : base + high])
                    else:
                        _add(
                            plane[iz, iy, first : last : stride[2]],
                            source[base + low : base + high],
                        )


def _quiet():
    """NaN and inf operands give NaN and inf sums, as in the direct definition: no warning.

    (numpy's error state is per thread: each worker enters it itself.)
    """
    return np.errstate(invalid="ignore", over="ignore")


def _run(work, items: int, problem) -> None:
    """``work`` over ``range(items)`` on convkit's threads, or on the calling thread alone for a
    problem too small to pay for waking them (as the forward's kernels do)."""
    if problem.multiply_adds < SERIAL_WORK:
        work(range(items))
    else:
        on_workers(work, items)


def _group_views(problem, data: np.ndarray):
    """``(N, G, per-group channels, positions)`` view of an (N, C, *spatial) operand."""
    batch, channels = data.shape[:2]
    return data.reshape(batch, problem.groups, channels // problem.groups, -1)


def _geometry(problem, spatial_shape):
    """Lifted kernel, padding before, stride, dilation and output positions."""
    return (
        _lift(problem.kernel_shape, 1),
        _lift(tuple(before for before, _ in problem.padding), 0),
        _lift(problem.stride, 1),
        _lift(problem.dilation, 1),
        _lift(tuple(spatial_shape), 1),
    )


def _pointwise(problem) -> bool:
    """A 1x1 layer without stride or padding: its columns are the input itself."""
    return (
        all(k == 1 for k in problem.kernel_shape)
        and all(step == 1 for step in problem.stride)
        and not any(before or after for before, after in problem.padding)
    )


def _stride_one_padding(problem: ConvGradInputProblem) -> tuple[tuple[int, int], ...] | None:
    """The padding of the forward conv the input gradient is when the stride is 1.

    None when a stride is not 1 or the forward's padding exceeds the dilated
    kernel's reach (that conv would need a cropped output gradient).
    """
    if any(step != 1 for step in problem.stride):
        return None
    padding = tuple(
        ((k - 1) * d - before, (k - 1) * d - after)
        for k, d, (before, after) in zip(problem.kernel_shape, problem.dilation, problem.padding)
    )
    if any(before < 0 or after < 0 for before, after in padding):
        return None
    return padding


def _stride_one_conv(problem: ConvGradInputProblem, geometry_only: bool = False) -> ConvProblem:
    """The input gradient as a forward conv of the output gradient (``_stride_one_padding``).

    Its filters are ``problem.filters`` with each group's two channel axes
    exchanged and the taps reversed; with ``geometry_only``, an array of
    their shape (for estimates, which read shapes only).
    """
    groups = problem.groups
    count, group_channels = problem.filters.shape[:2]
    kernel = problem.kernel_shape
    shape = (groups * group_channels, count // groups, *kernel)
    if geometry_only:
        filters = problem.filters.reshape(shape)
    else:
        grouped = problem.filters.reshape(groups, count // groups, group_channels, *kernel)
        spatial = problem.spatial_dims
        swapped = grouped.transpose(0, 2, 1, *range(3, 3 + spatial))
        filters = np.ascontiguousarray(
            swapped[(Ellipsis,) + (slice(None, None, -1),) * spatial].reshape(shape)
        )
        filters.flags.writeable = False
    return ConvProblem(
        input=problem.output_grad,
        filters=filters,
        padding=_stride_one_padding(problem),
        stride=problem.stride,
        dilation=problem.dilation,
        groups=groups,
        output_shape=problem.output_shape,
        dtype=problem.dtype,
        filter_flip=False,
    )


def forward_layer(problem: ConvGradInputProblem) -> ConvProblem | None:
    """The forward layer (shapes only) the input gradient runs as, or None if it does not."""
    return _stride_one_conv(problem, geometry_only=True) if _runs_as_conv(problem) else None


def _runs_as_conv(problem) -> bool:
    """Whether the native input gradient is the backend's forward conv."""
    return (
        isinstance(problem, ConvGradInputProblem)
        and not _pointwise(problem)
        and _stride_one_padding(problem) is not None
    )


def conv_grad_input(backend, problem: ConvGradInputProblem) -> np.ndarray:
    """The input gradient: the forward conv (stride 1), one GEMM (1x1), or GEMM + ``col2im``.

    Parameters
    ----------
    backend : NumbaBackend
        Runs the stride-1 case as a conv.
    problem : convkit.plugin.ConvGradInputProblem

    Returns
    -------
    numpy.ndarray
        Of shape ``problem.output_shape`` and dtype ``problem.dtype``.
    """
    if problem.dtype.kind == "c" and not _finite(problem):
        return with_local_nonfinite(problem, lambda part: _grad_input(backend, part)).astype(
            problem.dtype
        )
    return _grad_input(backend, problem)


def _finite(problem) -> bool:
    return all(all_finite(operand) for operand in problem.operands)


def _grad_input(backend, problem: ConvGradInputProblem) -> np.ndarray:
    if _pointwise(problem):
        return _grad_input_pointwise(problem)
    if _runs_as_conv(problem):
        return backend.conv(_stride_one_conv(problem))
    return _grad_input_columns(problem)


def _grad_input_pointwise(problem: ConvGradInputProblem) -> np.ndarray:
    grad = _group_views(problem, problem.output_grad)
    batch, groups, group_filters, positions = grad.shape
    weights = problem.filters.reshape(groups, group_filters, -1)
    out = np.empty(problem.output_shape, dtype=problem.dtype)
    grouped_out = _group_views(problem, out)
    with blas_limits(max(1, get_num_threads())), _quiet():
        for g in range(groups):
            np.matmul(weights[g].T, grad[:, g], out=grouped_out[:, g])
    return out


def _grad_input_columns(problem: ConvGradInputProblem) -> np.ndarray:
    spatial = problem.spatial_dims
    grad = _group_views(problem, problem.output_grad)
    batch, groups, group_filters, positions = grad.shape
    group_channels = problem.filters.shape[1]
    taps = group_channels * math.prod(problem.kernel_shape)
    weights = problem.filters.reshape(groups, group_filters, taps)
    out = np.empty(
        problem.output_shape[:2] + (1,) * (SPATIAL - spatial) + problem.output_shape[2:],
        dtype=problem.dtype,
    )
    kernel, padding, stride, dilation, output_spatial = _geometry(
        problem, problem.output_grad.shape[2:]
    )
    first_channels = [g * group_channels for g in range(groups)]

    def work(images: range) -> None:
        for n, g in itertools.product(images, range(groups)):
            columns = thread_buffer("columns", (taps, positions), problem.dtype)
            with _quiet():
                np.matmul(weights[g].T, grad[n, g], out=columns)
            col2im(
                columns,
                out,
                n,
                first_channels[g],
                kernel,
                padding,
                stride,
                dilation,
                output_spatial,
                0,
                group_channels,
            )

    _run(work, batch, problem)
    return out.reshape(problem.output_shape)


def conv_grad_filters(problem: ConvGradFiltersProblem) -> np.ndarray:
    """The filter gradient: per image (or chunk of images), unfold and multiply; sum over images.

    Parameters
    ----------
    problem : convkit.plugin.ConvGradFiltersProblem

    Returns
    -------
    numpy.ndarray
        Of shape ``problem.output_shape`` and dtype ``problem.dtype``.
    """
    if (
        problem.dtype.kind == "c" and not _finite(problem)
    ) or (  # the columns hold 0 at padding positions: 0 * inf would be NaN where no term exists
        _reads_padding(problem) and not all_finite(problem.output_grad)
    ):
        return with_local_nonfinite(problem, _grad_filters_columns).astype(problem.dtype)
    return _grad_filters_columns(problem)


def _reads_padding(problem: ConvGradFiltersProblem) -> bool:
    """Whether some window of the forward reaches outside the input."""
    for size, out, k, (before, _), step, dil in zip(
        problem.input.shape[2:],
        problem.output_grad.shape[2:],
        problem.kernel_shape,
        problem.padding,
        problem.stride,
        problem.dilation,
    ):
        if before > 0 or (out - 1) * step + (k - 1) * dil - before >= size:
            return True
    return False


def _chunks(problem, taps: int, positions: int) -> list[tuple[int, int]]:
    """``(first image, count)`` of each GEMM: images side by side up to ``GEMM_COLUMNS``
    columns and ``COLUMN_BYTES`` of columns, in a multiple of the threads' count of chunks."""
    batch = problem.input.shape[0]
    threads = max(1, get_num_threads())
    per_chunk = min(
        max(1, -(-GEMM_COLUMNS // positions)),
        max(1, COLUMN_BYTES // max(1, taps * positions * problem.dtype.itemsize)),
    )
    count = min(batch, threads * -(-batch // (threads * per_chunk)))
    bounds = [batch * k // count for k in range(count + 1)]
    return [(bounds[k], bounds[k + 1] - bounds[k]) for k in range(count)]


def _grad_filters_columns(problem: ConvGradFiltersProblem) -> np.ndarray:
    data = _lift_array(problem.input)
    grad = _group_views(problem, problem.output_grad)
    batch, groups, group_filters, positions = grad.shape
    group_channels = problem.output_shape[1]
    taps = group_channels * math.prod(problem.kernel_shape)
    kernel, padding, stride, dilation, output_spatial = _geometry(
        problem, problem.output_grad.shape[2:]
    )
    pointwise = _pointwise(problem)
    inputs = _group_views(problem, problem.input)
    chunks = [(n, 1) for n in range(batch)] if pointwise else _chunks(problem, taps, positions)
    partials = []

    def columns_of(first: int, count: int, g: int) -> np.ndarray:
        if pointwise:
            return inputs[first, g]
        columns = thread_buffer("columns", (taps, count * positions), problem.dtype)
        arguments = (
            data[first : first + count],
            g * group_channels,
            kernel,
            padding,
            stride,
            dilation,
            output_spatial,
            RULE_CODES["fill"],  # gradient problems always come with zero fill
            columns,
        )
        im2col(*arguments, 0, taps * count)
        return columns

    def rows_of(first: int, count: int, g: int) -> np.ndarray:
        if count == 1:
            return grad[first, g]
        rows = thread_buffer("gradient rows", (group_filters, count, positions), problem.dtype)
        np.copyto(rows, grad[first : first + count, g].transpose(1, 0, 2))
        return rows.reshape(group_filters, count * positions)

    def work(indices: range) -> None:
        total = np.zeros((groups, group_filters, taps), dtype=problem.dtype)
        product = np.empty((group_filters, taps), dtype=problem.dtype)
        for index, g in itertools.product(indices, range(groups)):
            first, count = chunks[index]
            columns = columns_of(first, count, g)
            with _quiet():
                np.matmul(rows_of(first, count, g), columns.T, out=product)
                total[g] += product
        partials.append(total)

    _run(work, len(chunks), problem)
    return sum(partials[1:], partials[0]).reshape(problem.output_shape)


def _column_bytes(problem) -> int:
    """The scratch one worker fills: columns, and for chunks of images the gradient's rows."""
    if _pointwise(problem) or _runs_as_conv(problem):
        return 0
    positions = math.prod(problem.output_grad.shape[2:])
    if isinstance(problem, ConvGradInputProblem):
        taps = problem.filters.shape[1] * math.prod(problem.kernel_shape)
        return taps * positions * problem.dtype.itemsize
    taps = problem.output_shape[1] * math.prod(problem.kernel_shape)
    count = max(count for _, count in _chunks(problem, taps, positions))
    rows = problem.output_grad.shape[1] // problem.groups if count > 1 else 0
    return (taps + rows) * count * positions * problem.dtype.itemsize


def working_set_bytes(backend, problem) -> int:
    """Operands, result, partial sums and each worker's scratch (or the forward conv's needs)."""
    if _runs_as_conv(problem):
        return backend.working_set_bytes(_stride_one_conv(problem, geometry_only=True))
    first, second = problem.operands
    result = math.prod(problem.output_shape) * problem.dtype.itemsize
    workers = max(1, min(get_num_threads(), first.shape[0]))
    partial_sums = result * workers if isinstance(problem, ConvGradFiltersProblem) else 0
    return first.nbytes + second.nbytes + result + partial_sums + workers * _column_bytes(problem)


def estimate_seconds(backend, problem) -> float | None:
    """The forward conv's estimate where the input gradient is one, else the GEMM path's rate
    as the forward's is calibrated."""
    if _runs_as_conv(problem):
        return backend.estimate_seconds(_stride_one_conv(problem, geometry_only=True))
    return 30e-6 + 2.0 * problem.multiply_adds / 100e9
