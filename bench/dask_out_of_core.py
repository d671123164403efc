"""A float32 volume on disk, bigger than convkit's memory limit, convolved through Dask.

    python bench/dask_out_of_core.py [--size 1152] [--chunks 128] [--workers 2]
        [--fit-size 384] [--workdir DIR] [--keep] [--samples 4] [--skip-peer]
        [--out bench/baseline/dask.md]

Steps, each timed, with the peak resident memory of every process of the run
(this one, the nannies and the workers: the sum of their RSS, sampled every
75 ms) and the load average beside it:

1. write a ``size``-cubed float32 volume to a zarr store under --workdir,
   chunk by chunk from a seeded generator (it never sits in memory whole);
2. on a ``LocalCluster(processes=True, n_workers=W, threads_per_worker=T)``
   (T = --threads-per-worker, default 1)
   with ``CONVKIT_MEMORY_LIMIT=1G`` for every process:
   ``convkit.convolve_nd(da.from_zarr(IN), kernel, "same")`` written with
   ``da.to_zarr``, then ``dask_image.ndfilters.convolve`` (mode "constant",
   cval 0: convkit's "fill") on the same chunks and cluster;
3. each output checked on sampled blocks against the in-memory convkit call
   on that block's region with its halo (zeros past the volume's edge);
4. on a volume that fits (``fit-size`` cubed), the in-memory call (NumPy in,
   NumPy out, 2 threads) against the same Dask path.

Throughput is GB/s of input (10^9 bytes of the float32 volume per second).
The kernel is 9^3, seeded, not symmetric, so a flipped kernel would show in
the checks.  Stores are uncompressed: random data does not compress, and the
codec's time would fall on both contestants alike.  Writes the markdown report
to --out (default: printed only) and a JSON of the same numbers beside it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

KERNEL_SIZE = 9
SEED = 20261126
MEMORY_LIMIT = "1G"
CONTESTANTS = ("convkit", "dask_image")


class PeakMemory:
    """The largest sum of resident memory over this process and all its descendants.

    Sampled in a thread every ``interval`` seconds while the ``with`` block runs;
    shared pages (libraries) count once per process, so the figure is an upper
    bound of the memory the run really occupies.
    """

    def __init__(self, interval: float = 0.075):
        import psutil

        self._psutil = psutil
        self._root = psutil.Process()
        self._interval = interval
        self._known: dict[int, object] = {}
        self._stop = threading.Event()
        self.peak = 0
        self.processes = 0
        self.samples = 0

    def sample(self) -> int:
        """The current sum of RSS over the process tree, in bytes."""
        total, seen = 0, 0
        try:
            processes = [self._root, *self._root.children(recursive=True)]
        except self._psutil.Error:
            processes = [self._root]
        for process in processes:
            known = self._known.setdefault(process.pid, process)
            try:
                total += known.memory_info().rss
                seen += 1
            except self._psutil.Error:
                self._known.pop(process.pid, None)
        if total > self.peak:
            self.peak, self.processes = total, seen
        self.samples += 1
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self._interval)

    def __enter__(self) -> PeakMemory:
        self.sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def kernel() -> np.ndarray:
    """The seeded, asymmetric 9^3 float32 kernel (positive, summing to 1)."""
    weights = np.random.default_rng(SEED).random((KERNEL_SIZE,) * 3, dtype=np.float32) + 0.1
    return weights / weights.sum(dtype=np.float64).astype(np.float32)


def chunk_slices(shape: tuple[int, ...], chunks: int):
    """The slices of every chunk of a regular ``chunks``-sided grid over ``shape``."""
    ranges = [range(0, n, chunks) for n in shape]
    for start in itertools.product(*ranges):
        yield tuple(slice(s, min(s + chunks, n)) for s, n in zip(start, shape, strict=True))


def _block(index: tuple[slice, ...]) -> np.ndarray:
    """The seeded content of one chunk (independent of the order chunks are written in)."""
    key = [SEED, *(s.start for s in index)]
    shape = tuple(s.stop - s.start for s in index)
    return np.random.default_rng(key).standard_normal(shape, dtype=np.float32)


def write_volume(path: Path, size: int, chunks: int) -> float:
    """Write the seeded ``size``-cubed float32 volume to a zarr store; seconds taken."""
    import zarr

    start = time.perf_counter()
    array = zarr.create_array(
        store=str(path),
        shape=(size,) * 3,
        chunks=(chunks,) * 3,
        dtype="float32",
        compressors=None,
        fill_value=0.0,
        overwrite=True,
    )

    def write(index):
        array[index] = _block(index)

    with ThreadPoolExecutor(2) as pool:
        for _ in pool.map(write, chunk_slices(array.shape, chunks)):
            pass
    return time.perf_counter() - start


def _reusable(path: Path, size: int, chunks: int) -> bool:
    """Whether ``path`` already holds the seeded volume's store of this size and chunking."""
    import zarr

    try:
        array = zarr.open_array(str(path), mode="r")
    except (FileNotFoundError, ValueError):  # zarr's own errors are ValueErrors
        return False
    return array.shape == (size,) * 3 and array.chunks == (chunks,) * 3 and array.nbytes > 0


def empty_like_store(path: Path, source) -> object:
    """An uncompressed zarr array shaped and chunked like ``source`` (a zarr array)."""
    import zarr

    return zarr.create_array(
        store=str(path),
        shape=source.shape,
        chunks=source.chunks,
        dtype=source.dtype,
        compressors=None,
        fill_value=0.0,
        overwrite=True,
    )


def reference_block(source, index: tuple[slice, ...], weights: np.ndarray) -> np.ndarray:
    """The in-memory convkit result on one output block: its region and halo, zeros outside."""
    import convkit

    half = weights.shape[0] // 2
    region = tuple(
        slice(max(s.start - half, 0), min(s.stop + half, n))
        for s, n in zip(index, source.shape, strict=True)
    )
    pad = [
        (r.start - (s.start - half), (s.stop + half) - r.stop)
        for r, s in zip(region, index, strict=True)
    ]
    data = np.pad(source[region], pad)
    return convkit.convolve_nd(data, weights, "valid")


def sampled_blocks(shape: tuple[int, ...], chunks: int, count: int) -> list[tuple[slice, ...]]:
    """The first and last chunk, then seeded random ones, ``count`` in all."""
    every = list(chunk_slices(shape, chunks))
    picked = [every[0], every[-1]]
    rng = np.random.default_rng(SEED + 1)
    for i in rng.permutation(len(every)):
        if len(picked) >= count:
            break
        if every[i] not in picked:
            picked.append(every[i])
    return picked[:count]


def check_blocks(source, result, weights: np.ndarray, blocks) -> float:
    """Worst normwise error max|y - r| / max|r| over the sampled blocks."""
    worst = 0.0
    for index in blocks:
        expected = reference_block(source, index, weights).astype(np.float64)
        got = np.asarray(result[index], dtype=np.float64)
        scale = float(np.abs(expected).max()) or 1.0
        worst = max(worst, float(np.abs(got - expected).max()) / scale)
    return worst


def convkit_graph(source_path: Path, weights: np.ndarray):
    """The lazy convkit result on the store (nothing computed)."""
    import dask.array as da

    import convkit

    return convkit.convolve_nd(da.from_zarr(str(source_path)), weights, "same")


def dask_image_graph(source_path: Path, weights: np.ndarray):
    """``dask_image.ndfilters.convolve`` with zeros past the edges (convkit's "fill").

    scipy.ndimage.convolve flips the kernel as a convolution does and centres an
    odd kernel on the output sample, as mode "same" does, so the kernel goes in
    unchanged.
    """
    import dask.array as da
    from dask_image.ndfilters import convolve

    return convolve(da.from_zarr(str(source_path)), weights, mode="constant", cval=0.0)


def run_to_zarr(client, graph, out_path: Path, source) -> dict:
    """Compute ``graph`` into a new store at ``out_path``: seconds, peak memory, load."""
    import dask.array as da

    target = empty_like_store(out_path, source)
    with PeakMemory() as memory:
        start = time.perf_counter()
        da.to_zarr(graph, target, compute=True)
        seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "peak_rss_bytes": memory.peak,
        "processes": memory.processes,
        "samples": memory.samples,
        "load_after": os.getloadavg(),
    }


def start_cluster(workers: int, threads: int = 1):
    """A LocalCluster of ``workers`` processes, ``threads`` threads each, and its client."""
    from dask.distributed import Client, LocalCluster

    cluster = LocalCluster(
        processes=True,
        n_workers=workers,
        threads_per_worker=threads,
        dashboard_address=None,
        silence_logs=40,
    )
    client = Client(cluster)
    return cluster, client


def warm_up(client, graph_of, workdir: Path, chunks: int) -> None:
    """Run ``graph_of(path)`` once on a small store: imports, JIT and plans done before timing."""
    import zarr

    small = workdir / "warm.zarr"
    write_volume(small, 2 * chunks, chunks)
    source = zarr.open_array(str(small), mode="r")
    run_to_zarr(client, graph_of(small), workdir / "warm-out.zarr", source)
    shutil.rmtree(workdir / "warm-out.zarr")
    shutil.rmtree(small)


def out_of_core(args, workdir: Path, weights: np.ndarray) -> dict:
    """The large volume: generation, convkit and dask-image on the cluster, checks."""
    import zarr

    size, chunks = args.size, args.chunks
    source_path = workdir / f"in-{size}.zarr"
    load = os.getloadavg()
    generation = (
        None if _reusable(source_path, size, chunks) else write_volume(source_path, size, chunks)
    )
    source = zarr.open_array(str(source_path), mode="r")
    blocks = sampled_blocks(source.shape, chunks, args.samples)
    report = {
        "size": size,
        "chunks": chunks,
        "workers": args.workers,
        "threads_per_worker": args.threads_per_worker,
        "input_bytes": source.nbytes,
        "generation_seconds": generation,
        "generation_load_before": load,
        "sampled_blocks": [[[s.start, s.stop] for s in index] for index in blocks],
        "rows": {},
    }
    if generation is not None:
        print(f"wrote {source.nbytes / 2**30:.2f} GiB in {generation:.1f} s", flush=True)
    contestants = {
        name: graph_of
        for name, graph_of in (("convkit", convkit_graph), ("dask_image", dask_image_graph))
        if name in (args.only or CONTESTANTS)
    }
    cluster, client = start_cluster(args.workers, args.threads_per_worker)
    try:
        for name, graph_of in contestants.items():
            warm_up(
                client, lambda path, graph_of=graph_of: graph_of(path, weights), workdir, chunks
            )
            load = os.getloadavg()
            out_path = workdir / f"out-{name}-{size}.zarr"
            row = run_to_zarr(client, graph_of(source_path, weights), out_path, source)
            row["load_before"] = load
            row["gb_per_s"] = source.nbytes / row["seconds"] / 1e9
            row["error"] = check_blocks(source, zarr.open_array(str(out_path)), weights, blocks)
            row["ok"] = row["error"] <= 1e-4
            report["rows"][name] = row
            print(
                f"{name}: {row['seconds']:.1f} s, {row['gb_per_s']:.3f} GB/s, peak "
                f"{row['peak_rss_bytes'] / 2**30:.2f} GiB over {row['processes']} processes, "
                f"error {row['error']:.1e}, load {load[0]:.2f}",
                flush=True,
            )
            shutil.rmtree(out_path)
    finally:
        client.close()
        cluster.close()
    return report


def in_memory(source, weights: np.ndarray, repeats: int, blocks) -> dict:
    """The in-memory convkit call on the whole volume (NumPy in and out, 2 threads).

    Median of ``repeats`` timed calls after three untimed ones (the fftw backend
    measures its plans on a shape's third use), checked on ``blocks``.
    The call runs without the 1G limit the Dask runs have: it is the problem that
    fits in memory.
    """
    import convkit

    volume = source[...]
    convkit.set_num_threads(2)
    convkit.set_memory_limit(16 * 2**30)
    try:
        for _ in range(3):
            result = convkit.convolve_nd(volume, weights, "same")
        load = os.getloadavg()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            convkit.convolve_nd(volume, weights, "same")
            times.append(time.perf_counter() - start)
    finally:
        convkit.set_num_threads(None)
        convkit.set_memory_limit(None)
    seconds = statistics.median(times)
    error = check_blocks(source, result, weights, blocks)
    return {
        "seconds": seconds,
        "times": times,
        "gb_per_s": source.nbytes / seconds / 1e9,
        "load_before": load,
        "error": error,
        "ok": error <= 1e-4,
    }


def fits_in_memory(args, workdir: Path, weights: np.ndarray) -> dict:
    """The in-memory convkit call against the Dask path on a volume that fits."""
    import zarr

    size, chunks = args.fit_size, args.chunks
    source_path = workdir / f"in-{size}.zarr"
    write_volume(source_path, size, chunks)
    source = zarr.open_array(str(source_path), mode="r")
    blocks = sampled_blocks(source.shape, chunks, args.samples)
    report = {
        "size": size,
        "chunks": chunks,
        "workers": args.workers,
        "threads_per_worker": args.threads_per_worker,
        "input_bytes": source.nbytes,
        "rows": {
            "in-memory convkit (NumPy in and out)": in_memory(source, weights, args.repeats, blocks)
        },
    }
    cluster, client = start_cluster(args.workers, args.threads_per_worker)
    try:
        out_path = workdir / f"out-fit-{size}.zarr"
        run_to_zarr(client, convkit_graph(source_path, weights), out_path, source)
        load = os.getloadavg()
        rows = [
            run_to_zarr(client, convkit_graph(source_path, weights), out_path, source)
            for _ in range(args.repeats)
        ]
        seconds = statistics.median(r["seconds"] for r in rows)
        error = check_blocks(source, zarr.open_array(str(out_path)), weights, blocks)
        report["rows"][
            f"convkit on Dask, zarr to zarr, {args.workers} x {args.threads_per_worker}"
        ] = {
            "seconds": seconds,
            "times": [r["seconds"] for r in rows],
            "gb_per_s": source.nbytes / seconds / 1e9,
            "peak_rss_bytes": max(r["peak_rss_bytes"] for r in rows),
            "load_before": load,
            "error": error,
            "ok": error <= 1e-4,
        }
        shutil.rmtree(out_path)
    finally:
        client.close()
        cluster.close()
    for name, row in report["rows"].items():
        print(f"{name}: {row['seconds']:.2f} s, {row['gb_per_s']:.3f} GB/s", flush=True)
    return report


def merge(big: dict, earlier: dict) -> None:
    """Copy into ``big`` the rows of ``earlier`` (a report's JSON) that ``big`` lacks."""
    old = earlier["out_of_core"]
    for key in ("size", "chunks", "workers"):
        if old[key] != big[key]:
            raise SystemExit(
                f"--merge: the earlier run has {key} {old[key]}, this one {big[key]}; "
                "merge only runs of the same volume, chunks and workers"
            )
    for name, row in old["rows"].items():
        if name not in big["rows"]:
            big["rows"][name] = {**row, "from": f"{earlier['date']}, {earlier['command']}"}
    if big["generation_seconds"] is None:
        big["generation_seconds"] = old["generation_seconds"]


def machine() -> str:
    """The CPU model and core count."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, {_memory_gib():.0f} GiB"


def _memory_gib() -> float:
    import psutil

    return psutil.virtual_memory().total / 2**30


def versions() -> dict[str, str]:
    """Versions of the packages the run depends on."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in (
        "convkit-core",
        "convkit-fftw",
        "convkit-numba",
        "numpy",
        "scipy",
        "dask",
        "distributed",
        "zarr",
        "dask-image",
    ):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def markdown(report: dict) -> str:
    """The report as the markdown of bench/baseline/dask.md."""
    big, fit = report["out_of_core"], report.get("fits_in_memory")
    gib = big["input_bytes"] / 2**30
    lines = [
        "# convkit on Dask: a volume bigger than memory",
        "",
        f"`{report['command']}`",
        "",
        f"{report['machine']}; {report['date']}; versions {report['versions']}",
        "",
        (
            f'## {big["size"]}^3 float32 ({gib:.2f} GiB) * 9^3 "same", zarr to zarr, chunks '
            f"{big['chunks']}^3, LocalCluster {big['workers']} workers x "
            f"{big.get('threads_per_worker', 1)} thread(s), "
            f"CONVKIT_MEMORY_LIMIT={MEMORY_LIMIT}"
        ),
        "",
        f"Generating the input (2 threads): {big['generation_seconds']:.1f} s."
        if big["generation_seconds"] is not None
        else "The input store was reused from an earlier run.",
        "",
        "| implementation | seconds | GB/s of input | peak RSS, all processes | load before / after "
        "| sampled blocks |",
        "|---|---:|---:|---:|---|---|",
    ]
    for name, row in big["rows"].items():
        lines.append(
            f"| {name} | {row['seconds']:.1f} | {row['gb_per_s']:.3f} | "
            f"{row['peak_rss_bytes'] / 2**30:.2f} GiB ({row['processes']} processes) | "
            f"{row['load_before'][0]:.2f} / {row['load_after'][0]:.2f} | "
            f"{'ok' if row['ok'] else 'WRONG'} ({row['error']:.1e}, "
            f"{len(big['sampled_blocks'])} blocks) |"
        )
    lines += [
        f"\nThe {name} row comes from an earlier run on the same store: {row['from']}."
        for name, row in big["rows"].items()
        if "from" in row
    ]
    rows = big["rows"]
    if "dask_image" in rows:
        ratio = rows["convkit"]["gb_per_s"] / rows["dask_image"]["gb_per_s"]
        lines += ["", f"convkit / dask_image: **{ratio:.2f}x** (target >= 3x)."]
    if fit:
        lines += [
            "",
            (
                f"## {fit['size']}^3 float32 ({fit['input_bytes'] / 2**20:.0f} MiB), fits in "
                f"memory: chunks {fit['chunks']}^3, median of {report['repeats']}"
            ),
            "",
            "| implementation | seconds | GB/s of input | load before | check |",
            "|---|---:|---:|---|---|",
        ]
        for name, row in fit["rows"].items():
            lines.append(
                f"| {name} | {row['seconds']:.2f} | {row['gb_per_s']:.3f} | "
                f"{row['load_before'][0]:.2f} | {'ok' if row['ok'] else 'WRONG'} "
                f"({row['error']:.1e}) |"
            )
        speeds = [row["gb_per_s"] for row in fit["rows"].values()]
        lines += ["", f"Dask / in-memory: **{speeds[1] / speeds[0]:.2f}x** (target >= 0.7x)."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=256, help="side of the volume (default 256)")
    parser.add_argument("--chunks", type=int, default=128, help="chunk side (default 128)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument(
        "--threads-per-worker", type=int, default=1, help="threads per worker (default 1)"
    )
    parser.add_argument(
        "--fit-size", type=int, default=0, help="side of the in-memory comparison (0: skip it)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of --fit-size")
    parser.add_argument("--samples", type=int, default=4, help="output blocks checked")
    parser.add_argument(
        "--only", action="append", choices=CONTESTANTS, help="run only this one (repeatable)"
    )
    parser.add_argument(
        "--merge",
        type=Path,
        help="take the rows this run does not measure from an earlier run's JSON (same sizes)",
    )
    parser.add_argument("--workdir", type=Path, help="where the stores go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the workdir")
    parser.add_argument("--out", type=Path, help="write the markdown here (and .json beside it)")
    args = parser.parse_args(argv)
    os.environ["CONVKIT_MEMORY_LIMIT"] = MEMORY_LIMIT
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="convkit-dask-", dir="/tmp"))
    workdir.mkdir(parents=True, exist_ok=True)
    weights = kernel()
    report = {
        "command": "python bench/dask_out_of_core.py " + " ".join(argv or sys.argv[1:]),
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "versions": versions(),
        "repeats": args.repeats,
    }
    try:
        report["out_of_core"] = out_of_core(args, workdir, weights)
        if args.merge:
            merge(report["out_of_core"], json.loads(args.merge.read_text()))
        if args.fit_size:
            report["fits_in_memory"] = fits_in_memory(args, workdir, weights)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    text = markdown(report)
    print(text)
    if args.out:
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    rows = [*report["out_of_core"]["rows"].values()]
    rows += [*report.get("fits_in_memory", {}).get("rows", {}).values()]
    return 0 if all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
