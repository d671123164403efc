"""Dask arrays through convolve_nd, correlate_nd and conv, on the threaded and the synchronous
schedulers.

A dask operand gives a lazy dask result that, once computed, equals the in-memory call on the
same NumPy data: non-finite outputs exactly where it has them, finite ones within the
conformance kit's error bound of the float64 direct definition (the kit's FFT bound, the wider
of the two, since each block picks its own method; with overlap-add, once per partial result
summed into an output).  Both strategies of convolve_nd and correlate_nd (halo gathering
and overlap-add; conv gathers halos) are forced in turn, on any chunking: uneven chunks,
chunks of 1 or 2 samples so that a kernel's halo reaches several chunks deep, chunks along
the axes that are not convolved.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import warnings

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
import dask  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import convkit  # noqa: E402
from convkit._dask import _direct_source, force_strategy, task_threads  # noqa: E402
from convkit.plugin import ALL_DTYPES, Backend, Capabilities, resolve_backend  # noqa: E402
from convkit.testing import Case  # noqa: E402
from convkit.testing._check import _expectation, _nonfinite_mismatch, _problem  # noqa: E402
from convkit.testing.strategies import (  # noqa: E402
    chunkings,
    conv_cases,
    convolve_nd_cases,
    correlate_nd_cases,
)

CPU_BACKENDS = [
    info.name
    for info in convkit.list_backends()
    if info.available and info.name in ("scipy", "numba", "fftw")
]
SCHEDULERS = ("threads", "sync")
STRATEGIES = (None, "halo", "overlap_add")
BOUNDARIES = [
    ("fill", 0),
    ("fill", 2.5),
    ("wrap", 0),
    ("symm", 0),
    ("mirror", 0),
    ("nearest", 0),
]
BOUNDARY_IDS = [f"{name}-{value}" for name, value in BOUNDARIES]
OPERATIONS = {
    "convolve_nd": convkit.convolve_nd,
    "correlate_nd": convkit.correlate_nd,
    "conv": convkit.conv,
}
FIXED_RANK = {1: convkit.conv1d, 2: convkit.conv2d, 3: convkit.conv3d}


def _strategy(name: str | None):
    return contextlib.nullcontext() if name is None else force_strategy(name)


@contextlib.contextmanager
def _nothing_computed():
    """Any dask computation inside the block fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("building the graph computed a dask collection")

    with dask.config.set(scheduler=refuse):
        yield


class _AnyMethod:
    """Stands for the blocks' backends in the kit's bound: the FFT one, the wider."""

    def method(self, problem):
        return "fft"


def _compute_blocks(result, scheduler: str) -> np.ndarray:
    """Compute ``result`` block by block, check every block against the chunks the graph
    announced, and assemble them."""
    delayed = result.to_delayed()
    indices = list(np.ndindex(result.numblocks))
    blocks = dask.compute(*[delayed[index] for index in indices], scheduler=scheduler)
    assembled = np.empty(result.shape, dtype=result.dtype)
    starts = [np.concatenate([[0], np.cumsum(chunks)]) for chunks in result.chunks]
    for index, block in zip(indices, blocks):
        announced = tuple(result.chunks[axis][i] for axis, i in enumerate(index))
        assert isinstance(block, np.ndarray), f"block {index} is a {type(block).__name__}"
        assert block.shape == announced, (
            f"block {index} has shape {block.shape}; the graph announced {announced} "
            f"(chunks {result.chunks})"
        )
        assert block.dtype == result.dtype, f"block {index}: {block.dtype} != {result.dtype}"
        assembled[tuple(slice(s[i], s[i] + n) for s, i, n in zip(starts, index, block.shape))] = (
            block
        )
    return assembled


def _check(got, memory, expected, bound, pieces=1):
    """``got`` (from dask) against the in-memory result ``memory`` and the kit's
    ``expected`` within ``pieces`` times its ``bound``."""
    assert got.shape == memory.shape, f"shape {got.shape}, in memory {memory.shape}"
    assert got.dtype == memory.dtype, f"dtype {got.dtype}, in memory {memory.dtype}"
    mismatch = _nonfinite_mismatch(got, memory)
    assert mismatch is None, f"non-finite outputs differ from the in-memory call: {mismatch}"
    finite = np.isfinite(expected)
    with np.errstate(invalid="ignore"):
        error = np.where(finite, np.abs(got.astype(expected.dtype) - expected), 0.0)
    allowed = pieces * bound
    wrong = ~(error <= allowed)
    if wrong.any():
        index = tuple(int(i) for i in np.argwhere(wrong)[0])
        raise AssertionError(
            f"{int(wrong.sum())} of {got.size} outputs outside {pieces} x the kit's bound; "
            f"first at {index}: dask {got[index]!r}, in memory {memory[index]!r}, "
            f"direct definition {expected[index]!r}, error {error[index]:.3g}, "
            f"allowed {allowed[index]:.3g}"
        )


def _pieces(chunks, reaches) -> int:
    """The most overlap-add partial results summed into one output: per axis, the number
    of chunks one window of ``reach`` samples can meet."""
    count = 1
    for axis_chunks, reach in zip(chunks, reaches):
        if reach is None:
            count *= len(axis_chunks)
        else:
            count *= min(len(axis_chunks), math.ceil(max(reach - 1, 0) / min(axis_chunks)) + 1)
    return count


def _signal_reaches(case: Case) -> list[int | None]:
    axes = case.kwargs["axes"]
    first, second = case.shapes
    convolved = range(len(first)) if axes is None else axes
    return [min(first[a], second[a]) if a in convolved else 1 for a in range(len(first))]


class _ArrayLike:
    """An array-like that is no NumPy array (as a zarr array): from_array keeps it whole in
    the graph, and convkit's tasks read their regions from it directly."""

    def __init__(self, array: np.ndarray) -> None:
        self._array = array
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim

    def __getitem__(self, index):
        return self._array[index]


# "chunks": tasks depend on in1's chunks (and on slivers cut from them); "source": in1 comes
# straight from an array-like, which each task reads the region it needs from.
READS = ("chunks", "source")


def _lazy(array: np.ndarray, chunks, reads: str):
    lazy = da.from_array(array if reads == "chunks" else _ArrayLike(array), chunks=chunks)
    assert (_direct_source(lazy) is not None) == (reads == "source")
    return lazy


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=st.one_of(convolve_nd_cases(max_size=9), correlate_nd_cases(max_size=9)), data=st.data()
)
def test_convolve_nd_and_correlate_nd_on_dask_equal_memory(case, data):
    first, second = case.arrays()
    before = (first.copy(), second.copy())
    params = case.kwargs
    policy = params.get("nan_policy", "propagate")
    strategy = data.draw(
        st.sampled_from(STRATEGIES if policy != "interpolate" else (None, "halo")), "strategy"
    )
    lazy = data.draw(st.sampled_from(["in1", "in1", "both", "in2"]), "dask operands")
    scheduler = data.draw(st.sampled_from(SCHEDULERS), "scheduler")
    chunks1 = data.draw(chunkings(first.shape), "in1 chunks")
    chunks2 = data.draw(chunkings(second.shape, max_blocks=4), "in2 chunks")
    reads = data.draw(st.sampled_from(READS), "how blocks read in1")
    operand1 = _lazy(first, chunks1, reads) if lazy in ("in1", "both") else first
    operand2 = da.from_array(second, chunks=chunks2) if lazy in ("in2", "both") else second
    function = OPERATIONS[case.operation]

    memory = function(first, second, **params)
    building = _nothing_computed() if lazy == "in1" else contextlib.nullcontext()
    with _strategy(strategy):
        with building:
            result = function(operand1, operand2, **params)
        assert isinstance(result, da.Array), type(result)
        assert result.shape == memory.shape and result.dtype == memory.dtype
        if lazy != "in2" and params["mode"] == "same" and first.shape == memory.shape:
            assert result.chunks == chunks1, "mode 'same' must keep in1's chunks"
        got = _compute_blocks(result, scheduler)

    problem = _problem(case, first, second)
    expected, bound, _ = _expectation(_AnyMethod(), case, problem, first, second)
    pieces = 1 if strategy == "halo" or lazy == "in2" else _pieces(chunks1, _signal_reaches(case))
    _check(got, memory, expected, bound, pieces)
    assert np.array_equal(first, before[0], equal_nan=True)
    assert np.array_equal(second, before[1], equal_nan=True)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=conv_cases(max_size=7), data=st.data())
def test_conv_on_dask_equals_memory(case, data):
    first, second = case.arrays()
    before = (first.copy(), second.copy())
    params = case.kwargs
    scheduler = data.draw(st.sampled_from(SCHEDULERS), "scheduler")
    chunks = data.draw(chunkings(first.shape), "input chunks")
    lazy_filters = data.draw(st.booleans(), "dask filters")
    spatial = first.ndim - 2
    function = data.draw(st.sampled_from([convkit.conv, FIXED_RANK[spatial]]), "function")
    filters = da.from_array(second, chunks=1) if lazy_filters else second
    reads = data.draw(st.sampled_from(READS), "how blocks read the input")

    memory = function(first, second, **params)
    building = contextlib.nullcontext() if lazy_filters else _nothing_computed()
    with building:
        result = function(_lazy(first, chunks, reads), filters, **params)
    assert isinstance(result, da.Array), type(result)
    assert result.shape == memory.shape and result.dtype == memory.dtype
    assert result.chunks[0] == chunks[0], "the batch axis keeps the input's chunks"
    got = _compute_blocks(result, scheduler)

    problem = _problem(case, first, second)
    expected, bound, _ = _expectation(_AnyMethod(), case, problem, first, second)
    _check(got, memory, expected, bound)
    assert np.array_equal(first, before[0], equal_nan=True)
    assert np.array_equal(second, before[1], equal_nan=True)


def _expected_for(operation, first, second, **params):
    """The kit's direct definition and bound for one call given by its arguments."""
    case = Case(operation, (first.shape, second.shape), str(first.dtype), tuple(params.items()))
    problem = _problem(case, first, second)
    expected, bound, _ = _expectation(_AnyMethod(), case, problem, first, second)
    return expected, bound


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize(("boundary", "fillvalue"), BOUNDARIES, ids=BOUNDARY_IDS)
@pytest.mark.parametrize("step", [1, 2])
def test_halo_several_chunks_deep(rng, strategy, boundary, fillvalue, step):
    """Chunks of 1 or 2 samples along the first axis and a kernel of 9 there: each output
    needs samples from up to 9 chunks, and the boundary rule repeats past the first chunk."""
    x = rng.standard_normal((17, 10))
    w = rng.standard_normal((9, 7))
    lazy = da.from_array(x, chunks=(step, 4))
    for mode in ("full", "same", "valid"):
        params = dict(mode=mode, axes=None, boundary=boundary, fillvalue=fillvalue)
        memory = convkit.convolve_nd(x, w, **params)
        with _strategy(strategy):
            got = _compute_blocks(convkit.convolve_nd(lazy, w, **params), "threads")
        expected, bound = _expected_for("convolve_nd", x, w, **params)
        pieces = 1 if strategy == "halo" else _pieces(lazy.chunks, [9, 7])
        _check(got, memory, expected, bound, pieces)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("boundary", ["fill", "wrap", "nearest"])
def test_kernel_longer_than_the_signal_and_its_chunks(rng, strategy, boundary):
    """A 1-D kernel longer than the whole signal: "wrap" goes round it more than once."""
    x = rng.standard_normal(7)
    w = rng.standard_normal(17)
    for mode in ("full", "same"):
        memory = convkit.convolve_nd(x, w, mode, boundary=boundary)
        with _strategy(strategy):
            got = _compute_blocks(
                convkit.convolve_nd(da.from_array(x, chunks=2), w, mode, boundary=boundary), "sync"
            )
        expected, bound = _expected_for(
            "convolve_nd", x, w, mode=mode, axes=None, boundary=boundary, fillvalue=0
        )
        _check(got, memory, expected, bound, 1 if strategy == "halo" else 4)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_chunks_along_axes_that_are_not_convolved(rng, strategy):
    x = rng.standard_normal((5, 12, 3, 10)).astype(np.float32)
    w = rng.standard_normal((1, 4, 3, 3)).astype(np.float32)
    chunks = ((2, 2, 1), (5, 7), (1, 1, 1), (3, 3, 4))
    for mode in ("full", "same", "valid"):
        memory = convkit.convolve_nd(x, w, mode, axes=(1, 3))
        with _strategy(strategy):
            result = convkit.convolve_nd(da.from_array(x, chunks=chunks), w, mode, axes=(1, 3))
            assert result.chunks[0] == chunks[0] and result.chunks[2] == chunks[2]
            if mode == "same":
                assert result.chunks == chunks
            got = _compute_blocks(result, "threads")
        expected, bound = _expected_for("convolve_nd", x, w, mode=mode, axes=(1, 3))
        _check(got, memory, expected, bound, 1 if strategy == "halo" else 4)


def test_broadcasting_a_kernel_with_a_longer_batch_axis(rng):
    """in1 of length 1 along an axis that is not convolved, in2 of length 3 there: the
    result has 3 there, computed from in1's single chunk."""
    x = rng.standard_normal((1, 20))
    w = rng.standard_normal((3, 5))
    for mode in ("full", "same", "valid"):
        memory = convkit.convolve_nd(x, w, mode, axes=1)
        result = convkit.convolve_nd(da.from_array(x, chunks=(1, 3)), w, mode, axes=1)
        assert result.shape == memory.shape
        expected, bound = _expected_for("convolve_nd", x, w, mode=mode, axes=(1,))
        _check(_compute_blocks(result, "threads"), memory, expected, bound, 4)


@pytest.mark.parametrize("function", [convkit.conv1d, convkit.conv2d, convkit.conv3d])
def test_conv_chunked_along_batch_and_space_with_stride_and_dilation(rng, function):
    """Every border mode, with strides and dilations that do not divide the chunks: chunk
    starts and halos must line up with the stride."""
    spatial = {convkit.conv1d: 1, convkit.conv2d: 2, convkit.conv3d: 3}[function]
    sizes = {1: (23,), 2: (23, 11), 3: (11, 7, 6)}[spatial]
    x = rng.standard_normal((5, 4, *sizes))
    w = rng.standard_normal((6, 2, *(3, 2, 3)[:spatial]))
    chunks = ((2, 3), (4,)) + tuple(
        (step,) * (size // step) + ((size % step,) if size % step else ())
        for step, size in zip((3, 4, 5), sizes)
    )
    border_modes = ["valid", "full", "half", "same", 2, tuple((1, 3) for _ in range(spatial))]
    for border_mode in border_modes:
        for stride, dilation in ((2, 1), (3, 2), (1, 2)):
            params = dict(
                border_mode=border_mode, subsample=stride, filter_dilation=dilation, num_groups=2
            )
            memory = function(x, w, **params)
            result = function(da.from_array(x, chunks=chunks), w, **params)
            assert result.chunks[0] == (2, 3)
            got = _compute_blocks(result, "threads")
            expected, bound = _expected_for(
                "conv",
                x,
                w,
                border_mode=border_mode,
                subsample=(stride,) * spatial,
                filter_flip=True,
                filter_dilation=(dilation,) * spatial,
                num_groups=2,
            )
            _check(got, memory, expected, bound)


@pytest.mark.parametrize(("boundary", "fillvalue"), BOUNDARIES, ids=BOUNDARY_IDS)
@pytest.mark.parametrize("filter_flip", [True, False])
def test_conv_boundaries_and_filter_flip(rng, boundary, fillvalue, filter_flip):
    x = rng.standard_normal((3, 2, 13, 9)).astype(np.float32)
    w = rng.standard_normal((3, 2, 5, 4)).astype(np.float32)
    params = dict(
        border_mode="full",
        subsample=(2, 1),
        filter_flip=filter_flip,
        filter_dilation=(1, 2),
        num_groups=1,
        boundary=boundary,
        fillvalue=fillvalue,
    )
    memory = convkit.conv2d(x, w, **params)
    result = convkit.conv2d(da.from_array(x, chunks=(1, 1, 2, 3)), w, **params)
    got = _compute_blocks(result, "sync")
    expected, bound = _expected_for("conv", x, w, **params)
    _check(got, memory, expected, bound)


def _counted(array: np.ndarray, chunks):
    """``array`` as a dask array whose every block counts a call when computed."""
    calls = []

    def block(values):
        calls.append(1)
        return values

    meta = np.empty((0,) * array.ndim, dtype=array.dtype)
    return da.from_array(array, chunks=chunks).map_blocks(block, meta=meta), calls


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_building_the_graph_computes_nothing(rng, strategy):
    x = rng.standard_normal((4, 30))
    w = rng.standard_normal((1, 5))
    counted, calls = _counted(x, (2, 7))
    keywords = [
        dict(mode="full"),
        dict(mode="same", boundary="wrap"),
        dict(mode="valid", nan_policy="fill", fillvalue=1.0),
        dict(mode="same", nan_policy="interpolate", preserve_nan=True),
    ]
    with _strategy(strategy):
        with _nothing_computed():
            results = [convkit.convolve_nd(counted, w, **k) for k in keywords]
            results.append(convkit.correlate_nd(counted, w, "same", axes=1))
            results.append(convkit.conv1d(counted[:, None], w[:, None], "half"))
        assert calls == []
        assert all(isinstance(result, da.Array) for result in results)
        dask.compute(*results, scheduler="threads")
    assert calls


def test_a_dask_kernel_is_computed_once_at_call_time(rng):
    x = rng.standard_normal((3, 40))
    w = rng.standard_normal((3, 6))
    kernel, calls = _counted(w, (1, 6))
    result = convkit.convolve_nd(da.from_array(x, chunks=(1, 9)), kernel, "same", axes=1)
    assert len(calls) == 3, f"the kernel's 3 blocks were computed {len(calls)} times"
    got = _compute_blocks(result, "threads")
    assert len(calls) == 3, "computing the result computed the kernel again"
    np.testing.assert_allclose(got, convkit.convolve_nd(x, w, "same", axes=1), rtol=0, atol=1e-12)


def test_calls_that_differ_in_one_argument_do_not_share_graph_keys(rng):
    """Computed together, the results of calls on one dask array that differ in a single
    argument each keep their own values: their graphs must not share keys."""
    x = rng.standard_normal((12, 10))
    x[3, 4] = np.nan
    x[8, 0] = np.inf
    w = np.abs(rng.standard_normal((3, 4)))
    lazy = da.from_array(x, chunks=(5, 4))
    base = dict(mode="valid", boundary="fill", fillvalue=0, nan_policy="fill")
    variants = [
        ("convolve_nd", base),
        ("convolve_nd", {**base, "fillvalue": 2.0}),
        ("convolve_nd", {**base, "fillvalue": -3.0}),
        ("convolve_nd", {**base, "mode": "same"}),
        ("convolve_nd", {**base, "mode": "same", "fillvalue": 2.0}),
        ("convolve_nd", {**base, "nan_policy": "propagate"}),
        ("convolve_nd", {**base, "mode": "same", "nan_policy": "interpolate"}),
        (
            "convolve_nd",
            {**base, "mode": "same", "nan_policy": "interpolate", "preserve_nan": True},
        ),
        ("convolve_nd", {**base, "mode": "full", "boundary": "wrap"}),
        ("convolve_nd", {**base, "mode": "full", "boundary": "symm"}),
        ("correlate_nd", base),
    ]
    results = [OPERATIONS[name](lazy, w, **keywords) for name, keywords in variants]
    memory = [OPERATIONS[name](x, w, **keywords) for name, keywords in variants]
    layer = dict(border_mode="half", boundary="fill")
    layers = [dict(layer, fillvalue=value) for value in (0, 1.5, -2.0)]
    results += [convkit.conv2d(lazy[None, None], w[None, None], **k) for k in layers]
    memory += [convkit.conv2d(x[None, None], w[None, None], **k) for k in layers]
    computed = dask.compute(*results, scheduler="threads")
    labels = [f"{name} {keywords}" for name, keywords in variants] + [str(k) for k in layers]
    for label, got, want in zip(labels, computed, memory):
        assert _nonfinite_mismatch(got, want) is None, (label, _nonfinite_mismatch(got, want))
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, err_msg=label)


def test_chunks_of_unknown_size_are_refused_with_advice():
    lazy = da.arange(10.0, chunks=3)
    lazy = lazy[lazy > 2]
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        convkit.convolve_nd(lazy, np.ones(3))


def test_a_numpy_signal_with_a_dask_kernel_gives_a_lazy_result(rng):
    x = rng.standard_normal(50)
    w = rng.standard_normal(7)
    result = convkit.convolve_nd(x, da.from_array(w, chunks=3), "full")
    assert isinstance(result, da.Array)
    np.testing.assert_allclose(result.compute(), convkit.convolve_nd(x, w), rtol=0, atol=1e-12)
    conv_result = convkit.conv1d(x[None, None], da.from_array(w[None, None], chunks=1))
    assert isinstance(conv_result, da.Array)
    np.testing.assert_allclose(
        conv_result.compute(), convkit.conv1d(x[None, None], w[None, None]), rtol=0, atol=1e-12
    )


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        (np.float16, np.float32),
        (np.float32, np.float32),
        (np.float64, np.float64),
        (np.int16, np.float64),
        (np.bool_, np.float64),
        (np.complex64, np.complex64),
    ],
)
def test_result_dtype_follows_the_in_memory_rule(dtype, expected):
    x = (np.arange(24) % 3).astype(dtype).reshape(4, 6)
    w = np.ones((2, 3), dtype=dtype)
    result = convkit.convolve_nd(da.from_array(x, chunks=(3, 4)), w, "same")
    assert result.dtype == expected
    assert result.chunks == ((3, 1), (4, 2))
    got = _compute_blocks(result, "sync")
    memory = convkit.convolve_nd(x, w, "same")
    assert got.dtype == memory.dtype == expected
    np.testing.assert_allclose(got, memory, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize(("boundary", "fillvalue"), BOUNDARIES, ids=BOUNDARY_IDS)
def test_nonfinite_at_a_chunk_edge_stays_local(rng, strategy, mode, boundary, fillvalue):
    """Non-finite samples on both sides of chunk boundaries (and one at the array's corner,
    which a boundary rule repeats) reach exactly the outputs they reach in memory; where
    the windows of +inf and -inf meet, NaN."""
    x = rng.standard_normal((20, 12))
    x[9, 5] = np.nan  # the last row of the chunk of rows [5, 10)
    x[10, 0] = np.inf  # the first row of the next chunk, in the array's edge column
    x[12, 3] = -np.inf  # the last column of the chunk of columns [0, 4)
    x[19, 11] = np.inf  # the array's corner
    w = rng.standard_normal((4, 3))
    params = dict(mode=mode, boundary=boundary, fillvalue=fillvalue)
    memory = convkit.convolve_nd(x, w, **params)
    assert np.isfinite(memory).any(), "the in-memory result must stay local, not all non-finite"
    with _strategy(strategy):
        result = convkit.convolve_nd(da.from_array(x, chunks=(5, 4)), w, **params)
        got = _compute_blocks(result, "threads")
    assert _nonfinite_mismatch(got, memory) is None, _nonfinite_mismatch(got, memory)
    conv_params = dict(border_mode="half", boundary=boundary, fillvalue=fillvalue)
    conv_memory = convkit.conv2d(x[None, None], w[None, None], **conv_params)
    result = convkit.conv2d(
        da.from_array(x[None, None], chunks=(1, 1, 5, 4)), w[None, None], **conv_params
    )
    conv_got = _compute_blocks(result, "sync")
    mismatch = _nonfinite_mismatch(conv_got, conv_memory)
    assert mismatch is None, mismatch


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_opposite_infinities_give_nan_without_a_warning(rng, strategy):
    """Where the windows of +inf and -inf meet, NaN, as the direct sum (and the in-memory
    call) gives it, without numpy's RuntimeWarning."""
    x = rng.standard_normal(24)
    x[7] = np.inf  # the last sample of the chunk [4, 8)
    x[9] = -np.inf
    w = rng.standard_normal(9)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        memory = convkit.convolve_nd(x, w, "same", boundary="nearest")
        with _strategy(strategy):
            lazy = convkit.convolve_nd(da.from_array(x, chunks=4), w, "same", boundary="nearest")
            got = _compute_blocks(lazy, "sync")
    assert np.isnan(memory).any()
    assert _nonfinite_mismatch(got, memory) is None, _nonfinite_mismatch(got, memory)


@pytest.mark.parametrize("strategy", [None, "halo"])
@pytest.mark.parametrize("preserve_nan", [False, True])
@pytest.mark.parametrize(("boundary", "fillvalue"), BOUNDARIES, ids=BOUNDARY_IDS)
def test_interpolate_fills_holes_across_chunks(rng, strategy, preserve_nan, boundary, fillvalue):
    """A hole wider than a chunk, at a chunk edge and at the array's start."""
    x = rng.standard_normal(40)
    x[8:14] = np.nan  # chunks of 4: covers [8, 12) and half of [12, 16)
    x[0:2] = np.inf
    w = np.abs(rng.standard_normal(5))
    params = dict(
        mode="same",
        boundary=boundary,
        fillvalue=fillvalue,
        nan_policy="interpolate",
        preserve_nan=preserve_nan,
    )
    memory = convkit.convolve_nd(x, w, **params)
    with _strategy(strategy):
        got = _compute_blocks(
            convkit.convolve_nd(da.from_array(x, chunks=4), w, **params), "threads"
        )
    expected, bound = _expected_for("convolve_nd", x, w, axes=None, **params)
    _check(got, memory, expected, bound)


def _cpu_backend_calls(backend_name, x, w, how, monkeypatch):
    """Build the graph with the choice made ``how``, then undo the choice and compute."""
    chunks = (3, 5)
    lazy = da.from_array(x, chunks=chunks)
    if how == "backend=":
        result = convkit.convolve_nd(lazy, w, "same", boundary="symm", backend=backend_name)
    elif how == "use_backend":
        with convkit.use_backend(backend_name):
            result = convkit.convolve_nd(lazy, w, "same", boundary="symm")
    elif how == "set_backend":
        convkit.set_backend(backend_name)
        result = convkit.convolve_nd(lazy, w, "same", boundary="symm")
        convkit.set_backend(None)
    else:
        monkeypatch.setenv("CONVKIT_BACKEND", backend_name)
        result = convkit.convolve_nd(lazy, w, "same", boundary="symm")
        monkeypatch.delenv("CONVKIT_BACKEND")
    return result


@pytest.mark.parametrize("how", ["backend=", "use_backend", "set_backend", "CONVKIT_BACKEND"])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_cpu_backend(rng, backend, how, strategy, monkeypatch):
    x = rng.standard_normal((11, 17)).astype(np.float32)
    w = rng.standard_normal((4, 6)).astype(np.float32)
    memory = convkit.convolve_nd(x, w, "same", boundary="symm", backend=backend)
    with _strategy(strategy):
        result = _cpu_backend_calls(backend, x, w, how, monkeypatch)
        got = _compute_blocks(result, "threads")
    expected, bound = _expected_for(
        "convolve_nd", x, w, mode="same", axes=None, boundary="symm", fillvalue=0
    )
    _check(got, memory, expected, bound, 1 if strategy == "halo" else 4)
    conv_memory = convkit.conv2d(x[None, None], w[None, None], "half", subsample=2, backend=backend)
    with _strategy(strategy):
        conv_got = _compute_blocks(
            convkit.conv2d(
                da.from_array(x[None, None], chunks=(1, 1, 4, 5)),
                w[None, None],
                "half",
                subsample=2,
                backend=backend,
            ),
            "sync",
        )
    np.testing.assert_allclose(conv_got, conv_memory, rtol=1e-4, atol=1e-4)


class CountingBackend(Backend):
    """The SciPy reference under another name, counting the blocks it computes."""

    name = "dask-test-spy"
    capabilities = Capabilities(dtypes=ALL_DTYPES)

    def __init__(self):
        self.calls = 0
        self._lock = threading.Lock()

    def convolve_nd(self, problem):
        with self._lock:
            self.calls += 1
        return resolve_backend("scipy").convolve_nd(problem)

    def conv(self, problem):
        with self._lock:
            self.calls += 1
        return resolve_backend("scipy").conv(problem)


@pytest.fixture
def spy():
    backend = CountingBackend()
    convkit.register_backend(backend)
    yield backend
    convkit.unregister_backend(backend.name)


@pytest.mark.parametrize("how", ["backend=", "use_backend", "set_backend", "CONVKIT_BACKEND"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_the_choice_made_at_build_time_runs_every_block(rng, spy, how, strategy, monkeypatch):
    """The choice is undone before computing, and the threaded scheduler's threads never
    saw the caller's context: the blocks still run on the backend chosen at build time."""
    x = rng.standard_normal((11, 17))
    w = rng.standard_normal((4, 6))
    with _strategy(strategy):
        result = _cpu_backend_calls(spy.name, x, w, how, monkeypatch)
        assert spy.calls == 0
        got = _compute_blocks(result, "threads")
    assert spy.calls >= result.npartitions, (spy.calls, result.npartitions)
    np.testing.assert_allclose(
        got, convkit.convolve_nd(x, w, "same", boundary="symm"), rtol=0, atol=1e-10
    )


def test_a_backend_object_reaches_the_blocks(rng):
    spy = CountingBackend()  # an object need not be registered
    x = rng.standard_normal((2, 3, 15))
    w = rng.standard_normal((4, 3, 3))
    result = convkit.conv1d(da.from_array(x, chunks=(1, 3, 4)), w, "same", backend=spy)
    got = _compute_blocks(result, "threads")
    assert spy.calls >= 2 * 4
    np.testing.assert_allclose(got, convkit.conv1d(x, w, "same"), rtol=0, atol=1e-10)


def test_task_threads_follow_the_threaded_schedulers_pool():
    cores = len(os.sched_getaffinity(0))
    probe = da.zeros(8, chunks=1, dtype=np.int64).map_blocks(
        lambda block: np.full(block.shape, task_threads()), dtype=np.int64
    )
    with dask.config.set(scheduler="threads", num_workers=cores):
        assert set(probe.compute().tolist()) == {1}
    with dask.config.set(scheduler="threads", num_workers=1):
        assert set(probe.compute().tolist()) == {cores}
    convkit.set_num_threads(3)  # the user's own setting wins
    with dask.config.set(scheduler="threads", num_workers=cores):
        assert set(probe.compute().tolist()) == {3}


def test_a_dask_kernel_over_the_memory_limit_is_refused_before_it_is_computed(rng):
    x = da.from_array(rng.standard_normal((200, 200)), chunks=10)
    w, calls = _counted(rng.standard_normal((60, 60)), 30)  # 28.8 kB
    convkit.set_memory_limit(20_000)
    try:
        with pytest.raises(convkit.WorkingSetTooLargeError) as raised:
            convkit.convolve_nd(x, w, "same")
    finally:
        convkit.set_memory_limit(None)
    assert calls == [], "the kernel was computed before being refused"
    message = str(raised.value)
    assert "in2" in message or "kernel" in message, message
    assert "limit" in message, message


def test_chunks_too_large_for_the_memory_limit_are_refused_at_build_time(rng):
    x = da.from_array(rng.standard_normal((400, 400)), chunks=400)  # one 1.28 MB chunk
    w = rng.standard_normal((5, 5))
    convkit.set_memory_limit(200_000)
    try:
        with _nothing_computed(), pytest.raises(convkit.WorkingSetTooLargeError) as raised:
            convkit.convolve_nd(x, w, "same")
        assert "chunk" in str(raised.value), str(raised.value)
        result = convkit.convolve_nd(x.rechunk(50), w, "same")  # what the message advises
        got = result.compute(scheduler="threads")
    finally:
        convkit.set_memory_limit(None)
    np.testing.assert_allclose(got, convkit.convolve_nd(x.compute(), w, "same"), atol=1e-10)


def _bad_calls():
    x = np.ones((6, 8))
    w = np.ones((3, 3))
    image = np.ones((2, 3, 8, 8))
    filters = np.ones((4, 3, 3, 3))
    return [
        ("convolve_nd", (x, w), dict(mode="bogus")),
        ("convolve_nd", (x, w), dict(axes=5)),
        ("convolve_nd", (x, w), dict(axes=())),
        ("convolve_nd", (x, w[0]), {}),
        ("convolve_nd", (x, w), dict(boundary="reflect")),
        ("convolve_nd", (x, w), dict(boundary="wrap", fillvalue=1.0)),
        ("convolve_nd", (x, w), dict(nan_policy="omit")),
        ("convolve_nd", (x, w), dict(preserve_nan=True)),
        ("convolve_nd", (x, w), dict(backend="no-such-backend")),
        ("convolve_nd", (x.astype(object), w), {}),
        ("convolve_nd", (x, np.ones((3, 9))), dict(mode="valid")),
        ("correlate_nd", (x, w), dict(mode="nope")),
        ("conv", (image, filters[:, :1]), {}),
        ("conv", (image, filters), dict(subsample=0)),
        ("conv", (image, filters), dict(border_mode="bogus")),
        ("conv", (image, filters), dict(num_groups=2)),
        ("conv", (image[:, :, :2, :2], filters), {}),
        ("conv2d", (image[0, 0], filters), {}),
        ("conv3d", (image, filters), {}),
    ]


@pytest.mark.parametrize(
    ("name", "operands", "keywords"),
    _bad_calls(),
    ids=[f"{name}-{i}" for i, (name, _, _) in enumerate(_bad_calls())],
)
def test_bad_arguments_raise_at_build_time_as_in_memory(name, operands, keywords):
    function = getattr(convkit, name)
    with pytest.raises(Exception) as in_memory:
        function(*operands, **keywords)
    lazy = (da.from_array(operands[0], chunks=2), operands[1])
    with _nothing_computed(), pytest.raises(type(in_memory.value)) as on_dask:
        function(*lazy, **keywords)
    assert str(on_dask.value) == str(in_memory.value)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("policy", ["propagate", "fill", "interpolate"])
def test_operands_are_not_modified(rng, strategy, policy):
    if strategy == "overlap_add" and policy == "interpolate":
        pytest.skip("overlap-add serves propagate and fill only")
    x = rng.standard_normal((9, 10))
    x[3, 4] = np.nan
    x[0, 9] = np.inf
    w = np.abs(rng.standard_normal((3, 4)))
    x_before, w_before = x.copy(), w.copy()
    lazy_w = da.from_array(w, chunks=2)
    with _strategy(strategy):
        result = convkit.correlate_nd(
            da.from_array(x, chunks=(2, 3)), lazy_w, "same", nan_policy=policy, boundary="mirror"
        )
        _compute_blocks(result, "threads")
        conv_result = convkit.conv2d(da.from_array(x[None, None], chunks=2), w[None, None], "full")
        _compute_blocks(conv_result, "sync")
    assert np.array_equal(x, x_before, equal_nan=True)
    assert np.array_equal(w, w_before)


def test_a_zarr_array_is_read_by_each_task_from_the_store(rng, tmp_path):
    zarr = pytest.importorskip("zarr")
    x = rng.standard_normal((20, 18)).astype(np.float32)
    w = rng.standard_normal((5, 4)).astype(np.float32)
    store = zarr.open_array(tmp_path / "x.zarr", mode="w", shape=x.shape, chunks=(6, 5), dtype="f4")
    store[...] = x
    lazy = da.from_zarr(str(tmp_path / "x.zarr"))
    assert _direct_source(lazy) is not None
    result = convkit.convolve_nd(lazy, w, "same", boundary="wrap")
    # Each output block depends on the store and the kernel only, no chunk or sliver of them.
    graph = dict(result.__dask_graph__())
    source = _direct_source(lazy)
    for key in da.core.flatten(result.__dask_keys__()):
        dependencies = dask.core.get_dependencies(graph, key)
        assert source in dependencies
        assert all(d == source or str(d[0]).endswith("-kernel") for d in dependencies), dependencies
    np.testing.assert_allclose(
        result.compute(scheduler="sync"),
        convkit.convolve_nd(x, w, "same", boundary="wrap"),
        rtol=1e-5,
        atol=1e-5,
    )
    assert _direct_source(lazy.rechunk(7)) is None  # another layer: chunks and slivers


# (convkit boundary, dask-image / scipy.ndimage mode that extends the same way)
DASK_IMAGE_MODES = [
    ("fill", "constant"),
    ("wrap", "wrap"),
    ("symm", "reflect"),
    ("mirror", "mirror"),
    ("nearest", "nearest"),
]


@pytest.mark.parametrize(("boundary", "mode"), DASK_IMAGE_MODES)
@pytest.mark.parametrize("reads", READS)
def test_same_mode_equals_dask_image_convolve(rng, boundary, mode, reads):
    """dask-image's convolve (scipy.ndimage's, per block with a halo) is the outside oracle
    for an odd kernel in "same" mode; its chunks must be at least as deep as the halo."""
    ndfilters = pytest.importorskip("dask_image.ndfilters")
    x = rng.standard_normal((23, 19, 17))
    w = rng.standard_normal((5, 3, 7))
    lazy = _lazy(x, (8, 6, 9), reads)
    ours = convkit.convolve_nd(lazy, w, "same", boundary=boundary).compute(scheduler="sync")
    theirs = ndfilters.convolve(lazy, w, mode=mode, cval=0.0).compute(scheduler="sync")
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_empty_chunks_are_no_empty_blocks(rng, strategy, mode):
    # Boolean indexing leaves empty chunks; each would have been an empty output block whose
    # "valid" call swapped its operands and returned values where none belong.
    x = rng.standard_normal((9, 7))
    w = rng.standard_normal((3, 2))
    lazy = da.from_array(x, chunks=((0, 5, 0, 4), (3, 0, 4)))
    with _strategy(strategy):
        result = convkit.convolve_nd(lazy, w, mode)
    expected = convkit.convolve_nd(x, w, mode)
    np.testing.assert_allclose(_compute_blocks(result, "sync"), expected, rtol=1e-12, atol=1e-12)


def test_a_source_read_under_a_lock_is_read_through_dask(rng):
    # from_array(..., lock=True) says the source is not thread-safe: tasks then take chunks
    # read by Dask's getter (under the lock), never the source itself.
    x = rng.standard_normal((12, 10))
    w = rng.standard_normal((3, 3))
    locked = da.from_array(_ArrayLike(x), chunks=5, lock=True)
    assert _direct_source(locked) is None
    result = convkit.convolve_nd(locked, w, "same").compute(scheduler="threads")
    np.testing.assert_allclose(result, convkit.convolve_nd(x, w, "same"), rtol=1e-12, atol=1e-12)


def test_correlate_nd_refusals_name_correlate_nd(rng):
    convkit.set_memory_limit(1000)
    try:
        with pytest.raises(convkit.WorkingSetTooLargeError, match=r"^correlate_nd: .*rechunk"):
            convkit.correlate_nd(da.ones((100, 100), chunks=50), np.ones((3, 3)), "same")
    finally:
        convkit.set_memory_limit(None)


def test_a_block_over_the_limit_at_compute_time_says_rechunk(rng):
    # The build-time check counts the gathered samples and the outputs; the engine's own
    # buffers are counted by the in-memory call inside the task, whose refusal says to rechunk.
    convkit.set_memory_limit(800_000)
    try:
        lazy = convkit.convolve_nd(
            da.ones((200, 200), chunks=100), np.ones((9, 9)), "same", backend="scipy"
        )
        with pytest.raises(convkit.WorkingSetTooLargeError, match="rechunk the Dask array"):
            lazy.compute(scheduler="sync")
    finally:
        convkit.set_memory_limit(None)


def _threads_in_tasks(scheduler: str) -> set[int]:
    probe = da.zeros(4, chunks=1).map_blocks(
        lambda block: np.full(block.shape, task_threads()), dtype=int
    )
    return set(probe.compute(scheduler=scheduler).tolist())


def test_tasks_of_the_multiprocessing_scheduler_share_the_cores():
    cores = len(os.sched_getaffinity(0))
    with dask.config.set(num_workers=cores):
        assert _threads_in_tasks("processes") == {1}
    assert _threads_in_tasks("sync") == {cores}
