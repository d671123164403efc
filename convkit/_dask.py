"""Dask arrays in, lazy Dask arrays out: convolution of data bigger than memory.

A call whose large operand is a Dask array checks its arguments as the
in-memory call does, then builds a graph and computes nothing.  Each output
block is one task that runs convkit's ordinary in-memory call on the samples
it needs, so every backend, mode, boundary and missing-data policy gives there
what it gives in memory.  Two ways to lay out the work:

* ``"halo"``: the task gathers the block plus its halo from every chunk it
  touches, however many (a halo may reach several chunks deep, chunks may be
  uneven), with the boundary rule applied by index: a position past the
  array's ends reads the sample the rule names, at any distance.  Under zero
  fill nothing is invented at the array's ends: the call's own ``"full"``
  mode (or padding, for :func:`convkit.conv`) gives the edge outputs, so
  non-finite kernel values meet no zeros that are not in the problem.
* ``"overlap_add"``: when the kernel is long compared with the chunks, each
  input chunk (and each piece of the boundary's extension) is convolved whole,
  in ``"full"`` mode, and each output block sums the parts of those partial
  results that fall on it.  Sums of partial results keep NaN and inf local:
  an output is non-finite exactly when a term of its sum is.

The backend choice in force when the graph is built (``backend=``,
:func:`convkit.use_backend`, :func:`convkit.set_backend`,
``CONVKIT_BACKEND``, "auto") is frozen into the tasks and replayed where they
run (another thread, another process, another machine), so each block is
dispatched as the caller chose; "auto" decides per block shape.  Each task
runs convkit with the share of the cores its worker leaves it
(:func:`task_threads`).

Dask is imported only when a Dask array arrives.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import product

import numpy as np

from convkit._boundary import extension_index
from convkit._config import _cores, explicit_num_threads, get_memory_limit, threads_in_this_thread
from convkit._device import is_dask_array, stand_in
from convkit._errors import WorkingSetTooLargeError
from convkit._selection import current_choice
from convkit._validation import normalize_conv, normalize_convolve, readable_bytes

__all__ = [
    "STRATEGIES",
    "conv_lazily",
    "convolve_lazily",
    "force_strategy",
    "task_threads",
]

STRATEGIES = ("halo", "overlap_add")

_forced_strategy: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "convkit_dask_strategy", default=None
)


@contextlib.contextmanager
def force_strategy(strategy: str | None) -> Iterator[None]:
    """Build graphs with this strategy (``"halo"`` or ``"overlap_add"``) inside the block.

    For tests and measurements; None goes back to the automatic choice.
    ``"overlap_add"`` is used only where it applies (``nan_policy``
    "propagate" or "fill", no ``preserve_nan``): elsewhere "halo" is.
    """
    if strategy is not None and strategy not in STRATEGIES:
        raise ValueError(f"force_strategy: strategy must be one of {STRATEGIES}, got {strategy!r}")
    token = _forced_strategy.set(strategy)
    try:
        yield
    finally:
        _forced_strategy.reset(token)


def task_threads() -> int:
    """How many threads convkit uses inside one Dask task, here and now.

    The count the user chose wins (:func:`convkit.set_num_threads`,
    ``CONVKIT_NUM_THREADS``, as read in the process that runs the task).
    Otherwise the task takes its share of the cores, so that the tasks
    running at once do not oversubscribe them: in a ``dask.distributed``
    worker, ``OMP_NUM_THREADS`` when set (the nanny sets it, to 1 by
    default, for every worker it starts), else the cores divided by the
    worker's thread count; in a thread of Dask's threaded scheduler, the cores
    divided by its pool size (``dask.config`` ``num_workers``, else the core
    count), and likewise in a process of Dask's multiprocessing scheduler (a
    child process); in the main thread of the main process (the synchronous
    scheduler), every core.  A pool size given to ``compute(num_workers=...)``
    alone is not seen: set it with ``dask.config.set(num_workers=...)``.
    """
    explicit = explicit_num_threads()
    if explicit is not None:
        return explicit
    cores = _cores()
    worker = _distributed_worker()
    if worker is not None:
        budget = os.environ.get("OMP_NUM_THREADS", "").strip()
        if budget.isdigit() and int(budget) >= 1:
            return int(budget)
        return max(1, cores // max(1, int(worker.state.nthreads)))
    in_pool_process = multiprocessing.parent_process() is not None
    if threading.current_thread() is threading.main_thread() and not in_pool_process:
        return cores
    import dask

    pool = dask.config.get("num_workers", None) or cores
    return max(1, cores // int(pool))


def _distributed_worker() -> object | None:
    if "distributed" not in sys.modules:
        return None
    from distributed import get_worker

    try:
        return get_worker()
    except ValueError:  # not inside a worker's task
        return None


# --- Replaying the caller's choices inside a task ----------------------------------------


@dataclass(frozen=True)
class _Call:
    """What every task of one graph runs, frozen when the graph was built."""

    function: str  # "convolve_nd" or "conv"
    choice: tuple
    strict: bool
    keywords: tuple[tuple[str, object], ...]

    @contextlib.contextmanager
    def chosen(self) -> Iterator[object]:
        """The caller's backend choice and this task's thread budget; yields ``backend=``."""
        from convkit._selection import use_backend

        with threads_in_this_thread(task_threads()):
            if self.strict:
                yield self.choice[0]
            else:
                with use_backend(list(self.choice)):
                    yield None

    def run(self, data: np.ndarray, kernel: np.ndarray, **geometry: object) -> np.ndarray:
        from convkit._api import conv, convolve_nd

        operation = convolve_nd if self.function == "convolve_nd" else conv
        with self.chosen() as backend:
            try:
                return operation(data, kernel, **dict(self.keywords), **geometry, backend=backend)
            except WorkingSetTooLargeError as error:
                raise WorkingSetTooLargeError(
                    f"{error} (this was one block of a Dask array of shape {data.shape} with "
                    "its halo: rechunk the Dask array into smaller chunks)"
                ) from None


# --- Gathering a block and its halo from the chunks it touches ---------------------------


@dataclass(frozen=True)
class _Piece:
    argument: int  # which of the task's chunks
    target: tuple[slice, ...]  # where in the gathered array
    source: tuple[slice, ...]  # which part of the chunk


@dataclass(frozen=True)
class _Gather:
    shape: tuple[int, ...]
    dtype: np.dtype
    fill: object  # the value of positions that read no sample; None when every one reads one
    pieces: tuple[_Piece, ...]
    # Direct reads: the regions of the source array (the task's only argument) that the
    # pieces index, one read each; empty when the task's arguments are the chunks themselves.
    reads: tuple[tuple[slice, ...], ...] = ()


def _gather(plan: _Gather, arguments: Sequence[object]) -> np.ndarray:
    chunks = (
        [np.asarray(arguments[0][region]) for region in plan.reads] if plan.reads else arguments
    )
    if plan.fill is None:
        gathered = np.empty(plan.shape, dtype=plan.dtype)
    else:
        gathered = np.full(plan.shape, plan.fill, dtype=plan.dtype)
    for piece in plan.pieces:
        gathered[piece.target] = chunks[piece.argument][piece.source]
    return gathered


def _axis_runs(sources: np.ndarray, bounds: np.ndarray) -> list[tuple[int, slice, slice]]:
    """``(chunk, target, source)`` runs that copy ``sources`` (sample indices along one
    axis, -1 for none) out of chunks starting at ``bounds``: each run reads one chunk with
    step 1, -1 (a reflection) or 0 (a repeated edge sample, broadcast)."""
    count = len(sources)
    present = sources >= 0
    chunk = np.searchsorted(bounds, np.where(present, sources, 0), side="right") - 1
    steps = np.diff(sources)
    starts = np.zeros(count, dtype=bool)
    starts[0] = True
    starts[1:] = (present[1:] != present[:-1]) | (chunk[1:] != chunk[:-1]) | (np.abs(steps) > 1)
    starts[2:] |= steps[1:] != steps[:-1]
    edges = [*np.flatnonzero(starts), count]
    runs = []
    for begin, end in zip(edges[:-1], edges[1:]):
        if not present[begin]:
            continue
        first = int(sources[begin] - bounds[chunk[begin]])
        step = int(steps[begin]) if end - begin > 1 else 1
        if step == 0:
            source = slice(first, first + 1)
        else:
            stop = first + step * (end - begin)
            source = slice(first, stop if stop >= 0 else None, step)
        runs.append((int(chunk[begin]), slice(int(begin), int(end)), source))
    return runs


def _read_plan(
    per_axis_sources: Sequence[np.ndarray], dtype: np.dtype, fill: object, source_key: object
) -> tuple[_Gather, list]:
    """The plan that reads what ``per_axis_sources`` names straight from the source array:
    along each axis the samples it needs form a few contiguous ranges (one, but at a wrapped
    edge or a halo wider than the array), and each combination of ranges is one read."""
    partitions = []
    for sources in per_axis_sources:
        needed = np.unique(sources[sources >= 0])
        if not len(needed):  # every position of this axis reads the fill value
            partitions.append(np.zeros(2, dtype=np.int64))
            continue
        gaps = np.flatnonzero(np.diff(needed) > 1)
        starts = [int(needed[0]), *(int(needed[i + 1]) for i in gaps)]
        ends = [*(int(needed[i]) + 1 for i in gaps), int(needed[-1]) + 1]
        partitions.append(np.array(sorted({*starts, *ends}), dtype=np.int64))
    runs = [_axis_runs(sources, bounds) for sources, bounds in zip(per_axis_sources, partitions)]
    reads: list[tuple[slice, ...]] = []
    arguments: dict[tuple[int, ...], int] = {}
    pieces = []
    for combination in product(*runs):
        index = tuple(chunk for chunk, _, _ in combination)
        if index not in arguments:
            arguments[index] = len(reads)
            reads.append(
                tuple(
                    slice(int(bounds[chunk]), int(bounds[chunk + 1]))
                    for chunk, bounds in zip(index, partitions)
                )
            )
        pieces.append(
            _Piece(
                arguments[index],
                tuple(target for _, target, _ in combination),
                tuple(source for _, _, source in combination),
            )
        )
    missing = any(bool(np.any(sources < 0)) for sources in per_axis_sources)
    shape = tuple(len(sources) for sources in per_axis_sources)
    plan = _Gather(shape, np.dtype(dtype), fill if missing else None, tuple(pieces), tuple(reads))
    return plan, [source_key]


def _direct_source(array: object) -> object | None:
    """The key of the array-like that ``array`` was made from by ``dask.array.from_array``
    or ``from_zarr`` (a zarr array, a memory map...), when its graph is just that: tasks can
    then read exactly the region they need from it, instead of depending on whole chunks."""
    graph = array.__dask_graph__()
    layers = getattr(graph, "layers", None)
    original = "original-" + str(array.name)
    if layers is None or set(layers) != {array.name, original}:
        return None
    if set(graph.dependencies.get(array.name, ())) != {original}:
        return None
    keys = list(layers[original].keys())
    if keys != [original]:
        return None
    source = layers[original][original]
    source = getattr(source, "value", source)  # dask's DataNode wraps literal data
    if _read_with_lock(layers[array.name], array):
        return None  # a source that needs a lock is read through Dask's own tasks
    if not hasattr(source, "__getitem__") or tuple(getattr(source, "shape", ())) != tuple(
        array.shape
    ):
        return None
    return original


def _read_with_lock(layer: object, array: object) -> bool:
    """Whether ``from_array`` was told to read the source under a lock (a source that is
    not thread-safe), or that cannot be told (then it is assumed)."""
    try:
        task = layer[(array.name,) + (0,) * array.ndim]
    except (KeyError, TypeError, ValueError):
        return True
    keywords = getattr(task, "kwargs", None)
    if not isinstance(keywords, dict):
        return True
    return bool(keywords.get("lock", False))


def _gather_plan(
    per_axis_sources: Sequence[np.ndarray],
    per_axis_bounds: Sequence[np.ndarray],
    dtype: np.dtype,
    fill: object,
    chunk_key: Callable[[tuple[int, ...]], tuple],
    graph: dict,
    part_key: Callable[[int], tuple],
    source_key: object = None,
) -> tuple[_Gather, list]:
    """The plan that gathers an array whose index ``i`` along axis ``a`` reads sample
    ``per_axis_sources[a][i]`` of the Dask array (-1: ``fill``), and the keys it reads.

    A piece that needs a whole chunk reads the chunk; a part of a chunk (a halo's sliver)
    is cut out by a task of its own, added to ``graph`` under ``part_key(i)``, so that only
    the sliver travels to the worker that gathers, and only it is held there.  With a
    ``source_key`` (see :func:`_direct_source`) the task reads its samples from the source
    array itself.
    """
    if source_key is not None:
        return _read_plan(per_axis_sources, dtype, fill, source_key)
    runs = [
        _axis_runs(sources, bounds) for sources, bounds in zip(per_axis_sources, per_axis_bounds)
    ]
    keys: list = []
    arguments: dict[object, int] = {}
    pieces = []
    for combination in product(*runs):
        index = tuple(chunk for chunk, _, _ in combination)
        target = tuple(target for _, target, _ in combination)
        source = tuple(source for _, _, source in combination)
        whole = all(
            (part.start, part.stop, part.step) == (0, int(bounds[chunk + 1] - bounds[chunk]), 1)
            for (chunk, _, part), bounds in zip(combination, per_axis_bounds)
        )
        if whole:
            name = chunk_key(index)
        else:
            name = part_key(len(keys))
            graph[name] = (_take, chunk_key(index), source)
        if name not in arguments:
            arguments[name] = len(keys)
            keys.append(name)
        pieces.append(_Piece(arguments[name], target, (slice(None),) * len(target)))
    missing = any(bool(np.any(sources < 0)) for sources in per_axis_sources)
    shape = tuple(len(sources) for sources in per_axis_sources)
    return _Gather(shape, np.dtype(dtype), fill if missing else None, tuple(pieces)), keys


def _bounds(chunks: Sequence[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(chunks)]).astype(np.int64)


def _output_chunks(input_chunks: Sequence[int], length: int) -> tuple[int, ...]:
    """Output chunks along an axis of ``length``: the input's chunks as far as they go
    (cut at ``length``), then pieces as long as the longest of them."""
    sizes: list[int] = []
    total = 0
    for size in input_chunks:
        if total >= length:
            break
        sizes.append(min(size, length - total))
        total += sizes[-1]
    step = max(max(input_chunks, default=1), 1)
    while total < length:
        sizes.append(min(step, length - total))
        total += sizes[-1]
    return tuple(sizes)


def _even_chunks(length: int, target: int) -> tuple[int, ...]:
    count = max(1, math.ceil(length / max(1, target)))
    base, extra = divmod(length, count)
    return tuple(base + (1 if index < extra else 0) for index in range(count))


# --- Operands ------------------------------------------------------------------------------


def _in_memory(value: object, function: str, argument: str) -> np.ndarray:
    """A Dask operand that must fit in memory (the kernel, the filters): computed once."""
    if not is_dask_array(value):
        return value
    _known_chunks(value, function, argument)
    size = math.prod(value.shape) * np.dtype(value.dtype).itemsize
    limit = get_memory_limit()
    if size > limit:
        raise WorkingSetTooLargeError(
            f"{function}: {argument} is a Dask array of {readable_bytes(size)} (shape "
            f"{tuple(value.shape)}), over the memory limit of {readable_bytes(limit)}; convkit "
            f"holds {argument} in memory while it streams the other operand: pass a smaller "
            f"{argument}, or raise the limit with convkit.set_memory_limit / "
            "CONVKIT_MEMORY_LIMIT if the memory is there"
        )
    return np.asarray(value.compute())


def _known_chunks(value: object, function: str, argument: str) -> None:
    if any(math.isnan(size) for sizes in value.chunks for size in sizes):
        raise ValueError(
            f"{function}: {argument} is a Dask array with unknown chunk sizes (shape "
            f"{tuple(value.shape)}); call {argument}.compute_chunk_sizes() first"
        )


def _as_dask(value: object, function: str, argument: str) -> object:
    """The large operand as a Dask array of known chunks, none of them empty."""
    import dask.array as da

    if not is_dask_array(value):
        return da.from_array(np.asarray(value), chunks="auto")
    _known_chunks(value, function, argument)
    if any(size == 0 for sizes in value.chunks for size in sizes) and 0 not in value.shape:
        # Empty chunks (left by boolean indexing) would be empty output blocks: drop them.
        value = value.rechunk(
            tuple(tuple(size for size in sizes if size) for sizes in value.chunks)
        )
    return value


def _check_task_size(function: str, largest: int, description: str) -> None:
    limit = get_memory_limit()
    if largest > limit:
        raise WorkingSetTooLargeError(
            f"{function}: one task would hold about {readable_bytes(largest)} ({description}), "
            f"over the memory limit of {readable_bytes(limit)}; rechunk the Dask array into "
            "smaller chunks (e.g. x.rechunk(...)), or raise the limit with "
            "convkit.set_memory_limit / CONVKIT_MEMORY_LIMIT if the memory is there"
        )


def _tokenize(*parts: object) -> str:
    from dask.base import tokenize

    return tokenize(*parts)


# --- convolve_nd / correlate_nd ------------------------------------------------------------


def convolve_lazily(
    function: str,
    in1: object,
    in2: object,
    mode: str,
    axes: object,
    boundary: object,
    fillvalue: object,
    nan_policy: str,
    preserve_nan: bool,
    backend: object,
) -> object:
    """:func:`convkit.convolve_nd` or :func:`convkit.correlate_nd` (``function``) with a
    Dask operand: a lazy Dask array."""
    import dask.array as da

    kernel = _in_memory(in2, function, "in2")
    signal = _as_dask(in1, function, "in1")
    correlate = function == "correlate_nd"
    geometry = normalize_convolve(
        stand_in(tuple(signal.shape), np.dtype(signal.dtype)),
        kernel,
        mode,
        axes,
        boundary,
        fillvalue,
        correlate=correlate,
        geometry_only=True,
    )
    if isinstance(geometry, np.ndarray):  # 0-d or empty: nothing to stream
        from convkit._api import convolve_nd, correlate_nd

        operation = correlate_nd if correlate else convolve_nd
        result = operation(
            np.asarray(signal.compute()),
            kernel,
            mode,
            axes=axes,
            boundary=boundary,
            fillvalue=fillvalue,
            nan_policy=nan_policy,
            preserve_nan=preserve_nan,
            backend=backend,
        )
        return da.from_array(result, chunks=result.shape or ())
    dtype = geometry.dtype
    named = _named_axes(axes, signal.ndim)
    kernel = _oriented_kernel(np.asarray(kernel), named, dtype, correlate)
    pad_mode_fill = _fill_of(boundary, fillvalue, dtype, mode)
    rule = _rule_of(boundary) if mode != "valid" else None
    choice, strict = current_choice(backend)
    # nan_policy="fill" is applied in the tasks (a fillvalue passed on to the blocks' calls
    # would also pad their edges, which are not in1's).
    keywords = (
        ("axes", named),
        ("nan_policy", "propagate" if nan_policy == "fill" else nan_policy),
    )
    call = _Call("convolve_nd", choice, strict, keywords)
    nonfinite_value = _value_of(fillvalue, dtype) if nan_policy == "fill" else None
    layout = _ConvolveLayout(function, signal, kernel, mode, named, rule, pad_mode_fill, dtype)
    strategy = _strategy(layout, nan_policy, preserve_nan)
    name = f"{function}-" + _tokenize(
        signal.name,
        kernel,
        mode,
        named,
        rule,
        pad_mode_fill,
        nan_policy,
        nonfinite_value,
        preserve_nan,
        choice,
        strict,
        strategy,
    )
    if strategy == "overlap_add":
        graph = layout.overlap_add_graph(name, call, nonfinite_value)
    else:
        graph = layout.halo_graph(name, call, nonfinite_value, preserve_nan)
    from dask.highlevelgraph import HighLevelGraph

    return da.Array(
        HighLevelGraph.from_collections(name, graph, dependencies=[signal]),
        name,
        layout.out_chunks,
        dtype=dtype,
    )


def _named_axes(axes: object, ndim: int) -> tuple[int, ...]:
    if axes is None:
        return tuple(range(ndim))
    items = [axes] if np.ndim(axes) == 0 else list(axes)
    return tuple(sorted({int(axis) % ndim for axis in items}))


def _oriented_kernel(
    kernel: np.ndarray, axes: tuple[int, ...], dtype: np.dtype, correlate: bool
) -> np.ndarray:
    kernel = np.asarray(kernel, dtype=dtype)
    if correlate:
        kernel = kernel[
            tuple(slice(None, None, -1) if a in axes else slice(None) for a in range(kernel.ndim))
        ]
        if dtype.kind == "c":
            kernel = np.conj(kernel)
    return np.ascontiguousarray(kernel)


def _rule_of(boundary: object) -> str | None:
    if boundary == "fill":
        return None
    return "symm" if boundary == "symmetric" else str(boundary)


def _value_of(fillvalue: object, dtype: np.dtype) -> object:
    """``fillvalue`` as a scalar of ``dtype`` (a complex one reaches real data only with a
    zero imaginary part, which the core has checked)."""
    value = np.asarray(fillvalue)
    return (value if dtype.kind == "c" else value.real).astype(dtype)[()]


def _fill_of(boundary: object, fillvalue: object, dtype: np.dtype, mode: str) -> object:
    """The value of positions past in1's ends that are real terms of the sum (a non-zero
    fill), or None when they are no terms (zero fill, and every boundary in "valid")."""
    if boundary != "fill" or mode == "valid":
        return None
    value = _value_of(fillvalue, dtype)
    return None if value == 0 else value


def _strategy(layout: _ConvolveLayout, nan_policy: str, preserve_nan: bool) -> str:
    applies = nan_policy in ("propagate", "fill") and not preserve_nan
    forced = _forced_strategy.get()
    if forced is not None:
        return forced if applies else "halo"
    long_kernel = any(
        layout.kernel.shape[axis] - 1 > int(np.median(layout.signal.chunks[axis]))
        for axis in layout.axes
    )
    # Under a rule or a non-zero fill the extension would add partial results of its own
    # (many, for a kernel longer than the signal): halos read it by index instead.
    extends = layout.rule is not None or layout.fill is not None
    return "overlap_add" if applies and long_kernel and not extends else "halo"


class _ConvolveLayout:
    """Where each output block of a lazy ``convolve_nd`` lies and what it reads."""

    def __init__(self, function, signal, kernel, mode, axes, rule, fill, dtype) -> None:
        self.function, self.signal, self.kernel, self.axes = function, signal, kernel, axes
        self.mode, self.rule, self.fill, self.dtype = mode, rule, fill, np.dtype(dtype)
        # Under zero fill the samples past in1's ends are no terms of the sums.  With a finite
        # kernel, zeros there add exact zero terms (and count as the finite samples that
        # nan_policy="interpolate" takes them for), so every block gathers the same shape and
        # runs in "valid" mode; a non-finite kernel must meet no invented zero (0 * inf is NaN),
        # so its edge blocks gather only in1's samples and take their part of a "full" result.
        self.zero_terms = (
            mode != "valid" and rule is None and fill is None and bool(np.isfinite(kernel).all())
        )
        self.bounds = [_bounds(chunks) for chunks in signal.chunks]
        self.source = _direct_source(signal)
        self.start: dict[int, int] = {}
        out_chunks = []
        for axis, (n, m) in enumerate(zip(signal.shape, kernel.shape)):
            if axis in axes:
                length, self.start[axis] = _region(n, m, mode)
                out_chunks.append(_output_chunks(signal.chunks[axis], length))
            elif n == max(n, m):
                out_chunks.append(tuple(signal.chunks[axis]))
            else:  # in1 of length 1 broadcast against the kernel
                out_chunks.append((m,))
        self.out_chunks = tuple(out_chunks)
        self.out_bounds = [_bounds(chunks) for chunks in self.out_chunks]

    def _key(self, index: tuple[int, ...]) -> tuple:
        return (self.signal.name, *index)

    def _batch(self, axis: int, block: int) -> tuple[np.ndarray, slice]:
        """Samples and kernel slice along a broadcast (not convolved) axis."""
        n, m = self.signal.shape[axis], self.kernel.shape[axis]
        if n != max(n, m):
            return np.zeros(1, dtype=np.int64), slice(None)
        begin, end = int(self.out_bounds[axis][block]), int(self.out_bounds[axis][block + 1])
        kernel = slice(begin, end) if m == n and m > 1 else slice(None)
        return np.arange(begin, end, dtype=np.int64), kernel

    def _reach(self, axis: int, begin: int, end: int) -> tuple[int, int]:
        """The positions of in1 (extended) that outputs ``[begin, end)`` read."""
        start, m = self.start[axis], self.kernel.shape[axis]
        return begin + start - m + 1, end + start

    def halo_graph(
        self, name: str, call: _Call, nonfinite_value: object, preserve_nan: bool
    ) -> dict:
        graph: dict = {}
        kernel_key = (name + "-kernel",)
        graph[kernel_key] = self.kernel
        largest = 0
        for block in product(*(range(len(chunks)) for chunks in self.out_chunks)):
            sources, kernel_slices, region, origin = [], [], [], []
            clipped = False
            for axis, index in enumerate(block):
                if axis not in self.axes:
                    samples, kernel_slice = self._batch(axis, index)
                    sources.append(samples)
                    kernel_slices.append(kernel_slice)
                    region.append(slice(None))
                    origin.append(0)
                    continue
                begin = int(self.out_bounds[axis][block[axis]])
                end = int(self.out_bounds[axis][block[axis] + 1])
                low, high = self._reach(axis, begin, end)
                n, m = self.signal.shape[axis], self.kernel.shape[axis]
                if self.mode == "valid" and n < m:
                    # in1 is the shorter operand ("valid" swaps them): every output reads all
                    # of it, against the part of the kernel that lines up with the block.
                    sources.append(np.arange(n, dtype=np.int64))
                    kernel_slices.append(slice(begin, end + n - 1))
                    region.append(slice(None))
                    origin.append(0)
                    continue
                kernel_slices.append(slice(None))
                samples, (cut_low, cut_high) = _samples(
                    low, high, n, self.rule, self.fill is not None or self.zero_terms
                )
                sources.append(samples)
                clipped |= bool(cut_low or cut_high)
                low_kept = low + cut_low
                origin.append(begin - low_kept)  # "same": output i lines up with sample i
                # Outputs [begin, end) are full-result positions [begin + start, ...), which
                # in the full convolution of the gathered array start at begin + start - low.
                first = begin + self.start[axis] - low_kept
                region.append(slice(first, first + end - begin))
            plan, keys = _gather_plan(
                sources,
                self.bounds,
                self.dtype,
                0 if self.zero_terms else self.fill,
                self._key,
                graph,
                lambda part, block=block: (name + "-halo", *block, part),
                self.source,
            )
            mode = "full" if clipped else "valid"
            if not clipped:
                region = [slice(None)] * len(region)
            task = _HaloTask(
                plan,
                call,
                mode,
                tuple(kernel_slices),
                tuple(region),
                nonfinite_value,
                tuple(origin) if preserve_nan else None,
            )
            graph[(name, *block)] = (_halo_block, task, kernel_key, *keys)
            out_size = math.prod(chunks[i] for chunks, i in zip(self.out_chunks, block))
            largest = max(largest, (math.prod(plan.shape) + 2 * out_size))
        _check_task_size(
            self.function,
            largest * self.dtype.itemsize + self.kernel.nbytes,
            "an output block, the samples it reads with the kernel's halo, and the kernel",
        )
        return graph

    def overlap_add_graph(self, name: str, call: _Call, nonfinite_value: object) -> dict:
        graph: dict = {}
        kernel_key = (name + "-kernel",)
        graph[kernel_key] = self.kernel
        # Along each convolved axis: the pieces of in1 extended as far as the outputs read,
        # as (first position, samples); positions past the ends read the rule's samples.
        pieces_per_axis: list[list[tuple[int, np.ndarray]]] = []
        for axis in range(self.signal.ndim):
            if axis not in self.axes:
                pieces_per_axis.append([])
                continue
            n = self.signal.shape[axis]
            low, high = self._reach(axis, 0, int(self.out_bounds[axis][-1]))
            bounds = self.bounds[axis]
            pieces = [
                (int(bounds[i]), np.arange(bounds[i], bounds[i + 1], dtype=np.int64))
                for i in range(len(bounds) - 1)
            ]
            if self.rule is not None or self.fill is not None:
                step = max(self.signal.chunks[axis])
                for begin, end in ((low, 0), (n, high)):
                    for first in range(begin, end, step):
                        positions = np.arange(first, min(first + step, end), dtype=np.int64)
                        samples = (
                            extension_index(positions, n, self.rule)
                            if self.rule is not None
                            else np.full(len(positions), -1, dtype=np.int64)
                        )
                        pieces.append((first, samples))
                pieces.sort(key=lambda piece: piece[0])
            pieces_per_axis.append(pieces)
        batch_blocks = [
            range(len(self.out_chunks[axis])) if axis not in self.axes else [None]
            for axis in range(self.signal.ndim)
        ]
        partial_name = name + "-partial"
        piece_name = name + "-part"
        largest = 0
        for batch in product(*batch_blocks):
            choices = [
                range(len(pieces_per_axis[axis])) if axis in self.axes else [batch[axis]]
                for axis in range(self.signal.ndim)
            ]
            for combination in product(*choices):
                sources, kernel_slices, extent = [], [], []
                for axis, index in enumerate(combination):
                    if axis in self.axes:
                        samples = pieces_per_axis[axis][index][1]
                        sources.append(samples)
                        kernel_slices.append(slice(None))
                        extent.append(len(samples) + self.kernel.shape[axis] - 1)
                    else:
                        samples, kernel_slice = self._batch(axis, index)
                        sources.append(samples)
                        kernel_slices.append(kernel_slice)
                        extent.append(self.out_chunks[axis][index])
                plan, keys = _gather_plan(
                    sources,
                    self.bounds,
                    self.dtype,
                    self.fill,
                    self._key,
                    graph,
                    lambda part, combination=combination: (name + "-piece", *combination, part),
                    self.source,
                )
                task = _PartialTask(plan, call, tuple(kernel_slices), nonfinite_value)
                key = (partial_name, *combination)
                graph[key] = (_partial_block, task, kernel_key, *keys)
                largest = max(largest, math.prod(plan.shape) + math.prod(extent))
        # Per axis and output block: the partial results that overlap it, with where.
        overlaps: list[list[list[tuple[int, slice, slice]]]] = []
        for axis, chunks in enumerate(self.out_chunks):
            per_block = []
            for index in range(len(chunks)):
                if axis not in self.axes:
                    per_block.append([(index, slice(None), slice(None))])
                    continue
                start = self.start[axis]
                low = int(self.out_bounds[axis][index]) + start
                high = int(self.out_bounds[axis][index + 1]) + start
                found = []
                for piece, (position, samples) in enumerate(pieces_per_axis[axis]):
                    extent = len(samples) + self.kernel.shape[axis] - 1
                    overlap_low, overlap_high = max(low, position), min(high, position + extent)
                    if overlap_low < overlap_high:
                        found.append(
                            (
                                piece,
                                slice(overlap_low - low, overlap_high - low),
                                slice(overlap_low - position, overlap_high - position),
                            )
                        )
                per_block.append(found)
            overlaps.append(per_block)
        for block in product(*(range(len(chunks)) for chunks in self.out_chunks)):
            shape = tuple(chunks[index] for chunks, index in zip(self.out_chunks, block))
            targets, part_keys = [], []
            for combination in product(
                *(overlaps[axis][index] for axis, index in enumerate(block))
            ):
                part_key = (piece_name, *block, len(part_keys))
                source = tuple(source for _, _, source in combination)
                partial_key = (partial_name, *(piece for piece, _, _ in combination))
                graph[part_key] = (_take, partial_key, source)
                targets.append(tuple(target for _, target, _ in combination))
                part_keys.append(part_key)
            graph[(name, *block)] = (_sum_parts, shape, self.dtype, tuple(targets), *part_keys)
        _check_task_size(
            self.function,
            largest * self.dtype.itemsize + self.kernel.nbytes,
            "a chunk, its partial convolution with the whole kernel, and the kernel",
        )
        return graph


def _samples(
    low: int, high: int, n: int, rule: str | None, materialize: bool
) -> tuple[np.ndarray, tuple[int, int]]:
    """The samples of an axis of length ``n`` that positions ``[low, high)`` read, -1 for
    a fill value, and how many positions were cut off each end instead.

    Under a rule every position reads the sample it names; with ``materialize`` positions
    past the ends read the fill value; otherwise they are cut off (the caller's call gives
    the edge itself: no term is invented there).
    """
    positions = np.arange(low, high, dtype=np.int64)
    if rule is not None:
        return extension_index(positions, n, rule), (0, 0)
    if materialize:
        return np.where((positions >= 0) & (positions < n), positions, -1), (0, 0)
    kept_low = max(low, 0)
    kept_high = max(kept_low, min(high, n))
    return np.arange(kept_low, kept_high, dtype=np.int64), (kept_low - low, high - kept_high)


def _region(n: int, m: int, mode: str) -> tuple[int, int]:
    """Length of the output along a convolved axis, and where it starts in the full result."""
    if mode == "full":
        return n + m - 1, 0
    if mode == "same":
        return n, (m - 1) // 2
    return abs(n - m) + 1, min(n, m) - 1


@dataclass(frozen=True)
class _HaloTask:
    gather: _Gather
    call: _Call
    mode: str
    kernel_slices: tuple[slice, ...]
    region: tuple[slice, ...]
    nonfinite_value: object  # what non-finite samples count as (nan_policy="fill"), or None
    preserve_nan_at: tuple[int, ...] | None  # where the outputs' own samples start, if kept


def _halo_block(task: _HaloTask, kernel: np.ndarray, *chunks: np.ndarray) -> np.ndarray:
    data = _gather(task.gather, chunks)
    signal = _finite(data, task.nonfinite_value)
    result = task.call.run(signal, kernel[task.kernel_slices], mode=task.mode)[task.region]
    if task.preserve_nan_at is not None:
        samples = data[
            tuple(
                slice(first, first + size) if data.shape[axis] > 1 else slice(None)
                for axis, (first, size) in enumerate(zip(task.preserve_nan_at, result.shape))
            )
        ]
        result = np.where(np.isfinite(samples), result, np.nan).astype(result.dtype, copy=False)
    return np.ascontiguousarray(result)


@dataclass(frozen=True)
class _PartialTask:
    gather: _Gather
    call: _Call
    kernel_slices: tuple[slice, ...]
    nonfinite_value: object


def _partial_block(task: _PartialTask, kernel: np.ndarray, *chunks: np.ndarray) -> np.ndarray:
    data = _finite(_gather(task.gather, chunks), task.nonfinite_value)
    return task.call.run(data, kernel[task.kernel_slices], mode="full")


def _finite(data: np.ndarray, value: object) -> np.ndarray:
    """``data`` with its non-finite samples replaced by ``value`` (None: unchanged)."""
    if value is None:
        return data
    return np.where(np.isfinite(data), data, value).astype(data.dtype, copy=False)


def _take(array: np.ndarray, part: tuple[slice, ...]) -> np.ndarray:
    return array[part]


def _sum_parts(
    shape: tuple[int, ...], dtype: np.dtype, targets: tuple, *parts: np.ndarray
) -> np.ndarray:
    total = np.zeros(shape, dtype=dtype)
    # Opposite infinities from two chunks give NaN, as in the direct sum: no warning.
    with np.errstate(invalid="ignore", over="ignore"):
        for target, part in zip(targets, parts):
            total[target] += part
    return total


# --- conv ------------------------------------------------------------------------------------


def conv_lazily(
    function: str,
    input: object,
    filters: object,
    border_mode: object,
    subsample: object,
    filter_flip: object,
    filter_dilation: object,
    num_groups: object,
    spatial_dims: int | None,
    boundary: object,
    fillvalue: object,
    backend: object,
) -> object:
    """:func:`convkit.conv` (or conv1d/2d/3d, ``function``) with a Dask ``input``: lazy."""
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph

    kernels = _in_memory(filters, function, "filters")
    data = _as_dask(input, function, "input")
    problem = normalize_conv(
        stand_in(tuple(data.shape), np.dtype(data.dtype)),
        kernels,
        border_mode,
        subsample,
        filter_flip,
        filter_dilation,
        num_groups,
        spatial_dims=spatial_dims,
        function=function,
        boundary=boundary,
        fillvalue=fillvalue,
        geometry_only=True,
    )
    if isinstance(problem, np.ndarray):
        return da.from_array(problem, chunks=problem.shape)
    dtype = problem.dtype
    rule = _rule_of(boundary)
    padded = any(before or after for before, after in problem.padding)
    fill = _fill_of(boundary, fillvalue, dtype, "same") if padded else None
    rule = rule if padded else None
    # Zero padding as zeros (exact zero terms) when the filters are finite: every block then
    # gathers the same shape; non-finite filters meet no invented zero (see _ConvolveLayout).
    zero_terms = (
        padded and rule is None and fill is None and bool(np.isfinite(problem.filters).all())
    )
    choice, strict = current_choice(backend)
    call = _Call(
        "conv",
        choice,
        strict,
        (
            ("subsample", problem.stride),
            ("filter_flip", False),
            ("filter_dilation", problem.dilation),
            ("num_groups", problem.groups),
        ),
    )
    filters_ready = np.ascontiguousarray(problem.filters)
    name = f"{function}-" + _tokenize(
        data.name,
        filters_ready,
        problem.padding,
        problem.stride,
        problem.dilation,
        problem.groups,
        rule,
        fill,
        choice,
        strict,
    )
    kernel_key = (name + "-filters",)
    graph: dict = {kernel_key: filters_ready}
    bounds = [_bounds(chunks) for chunks in data.chunks]
    source = _direct_source(data)
    spatial = len(problem.stride)
    out_chunks = [tuple(data.chunks[0]), (problem.output_shape[1],)]
    for axis in range(spatial):
        target = int(np.median(data.chunks[2 + axis])) // problem.stride[axis]
        out_chunks.append(_even_chunks(problem.output_shape[2 + axis], max(1, target)))
    out_bounds = [_bounds(chunks) for chunks in out_chunks]
    channels = data.shape[1]
    largest = 0
    for block in product(*(range(len(chunks)) for chunks in out_chunks)):
        sources = [
            np.arange(out_bounds[0][block[0]], out_bounds[0][block[0] + 1], dtype=np.int64),
            np.arange(channels, dtype=np.int64),
        ]
        border, empty = [], False
        for axis in range(spatial):
            n = data.shape[2 + axis]
            begin = int(out_bounds[2 + axis][block[2 + axis]])
            end = int(out_bounds[2 + axis][block[2 + axis] + 1])
            step, dilation = problem.stride[axis], problem.dilation[axis]
            extent = dilation * (problem.filters.shape[2 + axis] - 1) + 1
            low = begin * step - problem.padding[axis][0]
            high = (end - 1) * step - problem.padding[axis][0] + extent
            # A window wholly in the zero padding is no terms at all, even with zero terms.
            reads_data = max(low, 0) < min(high, n)
            samples, cut = _samples(
                low, high, n, rule, fill is not None or (zero_terms and reads_data)
            )
            sources.append(samples)
            border.append(cut)
            empty |= not len(samples)
        shape = tuple(chunks[index] for chunks, index in zip(out_chunks, block))
        if empty:  # every window lies in the zero padding: no terms at all
            graph[(name, *block)] = (np.zeros, shape, dtype)
            continue
        plan, keys = _gather_plan(
            sources,
            bounds,
            dtype,
            0 if zero_terms and fill is None else fill,
            lambda index: (data.name, *index),
            graph,
            lambda part, block=block: (name + "-halo", *block, part),
            source,
        )
        task = _ConvTask(plan, call, tuple(border))
        graph[(name, *block)] = (_conv_block, task, kernel_key, *keys)
        largest = max(largest, math.prod(plan.shape) + 2 * math.prod(shape))
    _check_task_size(
        function,
        largest * dtype.itemsize + filters_ready.nbytes,
        "an output block, the input samples (every channel) it reads with the kernel's halo, "
        "and the filters",
    )
    return da.Array(
        HighLevelGraph.from_collections(name, graph, dependencies=[data]),
        name,
        tuple(out_chunks),
        dtype=dtype,
    )


@dataclass(frozen=True)
class _ConvTask:
    gather: _Gather
    call: _Call
    border: tuple[tuple[int, int], ...]


def _conv_block(task: _ConvTask, filters: np.ndarray, *chunks: np.ndarray) -> np.ndarray:
    data = _gather(task.gather, chunks)
    return task.call.run(data, filters, border_mode=task.border)
