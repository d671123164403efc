"""Out of core, sized for CI: a float32 volume in a zarr store, eight times convkit's memory
budget, convolved with a 9^3 kernel by a two-process ``distributed.LocalCluster`` and written to
another zarr store chunk by chunk.

The peak resident memory of the whole run (this process, the worker processes and whatever
else it started, sampled every 50 ms) must stay under a bound that follows from the chunk
sizes, not from the volume, and sampled output blocks must equal the in-memory call on the
matching input region with its halo.
"""

from __future__ import annotations

import gc
import threading
import time

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
zarr = pytest.importorskip("zarr")
psutil = pytest.importorskip("psutil")

import convkit  # noqa: E402
from convkit.plugin import normalize_convolve  # noqa: E402
from convkit.testing import error_bound  # noqa: E402

MIB = 2**20
CHUNK = 64
# A long bar of 64 x 2 x 2 chunks: the volume grows along the first axis, what a task and
# its neighbours hold does not.
SHAPE = (64 * CHUNK, 2 * CHUNK, 2 * CHUNK)  # float32: 256 MiB
KERNEL = 9
LIMIT = 32 * MIB
TIMEOUT = 300

CHUNK_BYTES = CHUNK**3 * 4  # 1 MiB
SLAB_BYTES = CHUNK_BYTES * (SHAPE[1] // CHUNK) * (SHAPE[2] // CHUNK)  # one layer of chunks
HALO_BLOCK_BYTES = (CHUNK + KERNEL - 1) ** 3 * 4
# What the run may add to the resident memory it starts from (the cluster up, convkit and its
# backends loaded and warmed on blocks of the same shapes), per worker (one thread each):
# - the data the worker holds: a block's task reads the chunks its halo touches, up to three
#   slabs (its own and one on each side); the chunks loaded for the next blocks, up to two
#   slabs more; and each of those may also be held as a copy fetched from the other worker:
#   2 x (3 + 2) = 10 slabs;
# - the running task: the block with its halo, the output block, and the backend's work
#   space (an FFT of the block with its halo, complex: about twice its size): 4 halo blocks;
# - zarr's decoding and encoding buffers and the output block awaiting its write: 3 chunks;
# - freed memory the allocator keeps for reuse in the arenas of the worker's threads (the
#   task's, the event loop's, the one that (de)serializes transfers): 16 MiB.
# In the caller: the graph and the client's bookkeeping, 16 MiB.  The bound is about half
# the volume: a run that held the volume at once would not fit under it.
PER_WORKER_BYTES = 10 * SLAB_BYTES + 4 * HALO_BLOCK_BYTES + 3 * CHUNK_BYTES + 16 * MIB
CALLER_BYTES = 16 * MIB
WORKERS = 2


def _tree_rss(process: psutil.Process) -> int:
    total = 0
    for member in (process, *process.children(recursive=True)):
        try:
            total += member.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


class _PeakMemory(threading.Thread):
    """Samples the resident memory of this process and all its descendants."""

    def __init__(self, every: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.every = every
        self.peak = 0
        self._done = threading.Event()
        self._process = psutil.Process()

    def run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, _tree_rss(self._process))
            self._done.wait(self.every)

    def __enter__(self) -> _PeakMemory:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self.join()
        self.peak = max(self.peak, _tree_rss(self._process))


def _write_volume(path: str, shape: tuple[int, ...], seed: int) -> None:
    """A float32 zarr store of ``shape``, written one slab at a time."""
    store = zarr.open_array(path, mode="w", shape=shape, chunks=(CHUNK,) * 3, dtype="float32")
    rng = np.random.default_rng(seed)
    for start in range(0, shape[0], CHUNK):
        store[start : start + CHUNK] = rng.standard_normal(
            (min(CHUNK, shape[0] - start), *shape[1:]), dtype=np.float32
        )


def _convolve_store(client, source: str, target: str, kernel: np.ndarray) -> None:
    result = convkit.convolve_nd(da.from_zarr(source), kernel, "same")
    assert result.chunks == da.from_zarr(source).chunks
    client.compute(da.to_zarr(result, target, compute=False)).result(timeout=TIMEOUT)


def _expected_block(source, kernel: np.ndarray, block: tuple[int, ...]) -> tuple:
    """The in-memory call on the block's input region with its halo (zeros past the
    volume's ends, as "same" mode extends it), in "valid" mode, and the kit's bound."""
    reach = (KERNEL - 1) // 2
    region, widths = [], []
    for index, size in zip(block, source.shape):
        low, high = index * CHUNK - reach, (index + 1) * CHUNK + reach
        region.append(slice(max(low, 0), min(high, size)))
        widths.append((max(low, 0) - low, high - min(high, size)))
    signal = np.pad(np.asarray(source[tuple(region)]), widths)
    expected = convkit.convolve_nd(signal, kernel, "valid")
    scale = convkit.convolve_nd(
        np.abs(signal).astype(np.float64), np.abs(kernel).astype(np.float64), "valid"
    )
    return expected, error_bound(normalize_convolve(signal, kernel, "valid"), scale, "fft")


def test_a_volume_larger_than_the_budget_streams_from_zarr_to_zarr(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVKIT_MEMORY_LIMIT", str(LIMIT))
    volume_bytes = int(np.prod(SHAPE)) * 4
    bound = WORKERS * PER_WORKER_BYTES + CALLER_BYTES
    assert volume_bytes >= 8 * convkit.get_memory_limit()
    assert bound < 0.6 * volume_bytes
    source, target = str(tmp_path / "volume.zarr"), str(tmp_path / "result.zarr")
    warm_source, warm_target = str(tmp_path / "warm.zarr"), str(tmp_path / "warm-result.zarr")
    _write_volume(source, SHAPE, seed=0)
    _write_volume(warm_source, (3 * CHUNK, *SHAPE[1:]), seed=1)
    kernel = np.random.default_rng(2).standard_normal((KERNEL,) * 3).astype(np.float32)

    cluster = distributed.LocalCluster(
        processes=True, n_workers=WORKERS, threads_per_worker=1, dashboard_address=":0"
    )
    client = distributed.Client(cluster, timeout=TIMEOUT)
    try:
        limits = client.run(convkit.get_memory_limit)
        assert set(limits.values()) == {LIMIT}, limits
        # Blocks of every shape the run meets (edges and middle), so that imports, compiled
        # kernels and FFT plans are in the starting point, not in the growth.
        _convolve_store(client, warm_source, warm_target, kernel)
        gc.collect()
        start = _tree_rss(psutil.Process())
        began = time.perf_counter()
        with _PeakMemory() as memory:
            _convolve_store(client, source, target, kernel)
        seconds = time.perf_counter() - began
    finally:
        client.close()
        cluster.close()

    grown = memory.peak - start
    assert grown <= bound, (
        f"the run grew the resident memory of all its processes by {grown / MIB:.0f} MiB "
        f"(from {start / MIB:.0f} MiB, in {seconds:.1f} s), over the {bound / MIB:.0f} MiB "
        f"its chunks allow; the volume is {volume_bytes / MIB:.0f} MiB"
    )

    written = zarr.open_array(target, mode="r")
    assert written.shape == SHAPE and written.dtype == np.float32
    assert tuple(written.chunks) == (CHUNK,) * 3
    grid = tuple(size // CHUNK for size in SHAPE)
    samples = [(0, 0, 0), (grid[0] // 2, 1, 0), (grid[0] - 1, 1, 1), (17, 0, 1)]
    volume = zarr.open_array(source, mode="r")
    for block in samples:
        got = np.asarray(written[tuple(slice(i * CHUNK, (i + 1) * CHUNK) for i in block)])
        expected, bound = _expected_block(volume, kernel, block)
        error = np.abs(got.astype(np.float64) - expected)
        assert np.isfinite(got).all(), block
        assert (error <= 2 * bound).all(), (
            f"block {block}: largest error {error.max():.3g}, "
            f"{int((error > 2 * bound).sum())} outputs over twice the kit's bound"
        )
