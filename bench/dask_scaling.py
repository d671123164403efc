"""Throughput of convkit on Dask against workers and chunk size, on a mid-size zarr volume.

    python bench/dask_scaling.py [--size 512] [--workers 1,2] [--chunks 64,128,256]
        [--repeats 2] [--out bench/baseline/dask_scaling.json]

The same pipeline as bench/dask_out_of_core.py (9^3 float32 kernel, "same",
zarr to zarr, LocalCluster with one thread per worker process,
``CONVKIT_MEMORY_LIMIT=1G``), once per (workers, chunks), median of
--repeats timed runs after a warm-up on a small store of the same chunking;
beside them the in-memory call (NumPy in and out, 2 threads) on the same
volume.  Each run records GB/s of input, the peak RSS of all processes, the
load average, and how many threads convkit gave each task.  Writes JSON;
``python docs/make_dask_scaling_figure.py`` draws it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from dask_out_of_core import (
    MEMORY_LIMIT,
    check_blocks,
    convkit_graph,
    in_memory,
    kernel,
    machine,
    run_to_zarr,
    sampled_blocks,
    start_cluster,
    versions,
    warm_up,
    write_volume,
)

ROOT = Path(__file__).resolve().parent


def _task_threads() -> int:
    import convkit._dask

    return convkit._dask.task_threads()


def _integers(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=512, help="side of the volume (default 512)")
    parser.add_argument("--workers", type=_integers, default=[1, 2], help="e.g. 1,2")
    parser.add_argument("--chunks", type=_integers, default=[64, 128, 256], help="e.g. 64,128,256")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per point")
    parser.add_argument("--out", type=Path, help="JSON to write (default: printed only)")
    args = parser.parse_args(argv)
    import zarr

    os.environ["CONVKIT_MEMORY_LIMIT"] = MEMORY_LIMIT
    weights = kernel()
    workdir = Path(tempfile.mkdtemp(prefix="convkit-dask-scaling-", dir="/tmp"))
    report = {
        "command": "python bench/dask_scaling.py " + " ".join(argv or sys.argv[1:]),
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "versions": versions(),
        "size": args.size,
        "kernel": list(weights.shape),
        "memory_limit": MEMORY_LIMIT,
        "runs": [],
    }
    try:
        stores = {}
        for chunks in args.chunks:
            stores[chunks] = workdir / f"in-{chunks}.zarr"
            write_volume(stores[chunks], args.size, chunks)
        first = zarr.open_array(str(stores[args.chunks[0]]), mode="r")
        report["input_bytes"] = first.nbytes
        report["in_memory"] = in_memory(
            first, weights, args.repeats, sampled_blocks(first.shape, args.chunks[0], 2)
        )
        print(f"in memory: {report['in_memory']['gb_per_s']:.3f} GB/s", flush=True)
        for workers in args.workers:
            cluster, client = start_cluster(workers)
            try:
                for chunks in args.chunks:
                    source = zarr.open_array(str(stores[chunks]), mode="r")
                    warm_up(client, lambda path: convkit_graph(path, weights), workdir, chunks)
                    threads = client.submit(_task_threads, pure=False).result()
                    out = workdir / "out.zarr"
                    load = os.getloadavg()
                    rows = [
                        run_to_zarr(client, convkit_graph(stores[chunks], weights), out, source)
                        for _ in range(args.repeats)
                    ]
                    blocks = sampled_blocks(source.shape, chunks, 2)
                    error = check_blocks(source, zarr.open_array(str(out)), weights, blocks)
                    shutil.rmtree(out)
                    seconds = [row["seconds"] for row in rows]
                    run = {
                        "workers": workers,
                        "chunks": chunks,
                        "seconds": seconds,
                        "gb_per_s": source.nbytes / statistics.median(seconds) / 1e9,
                        "peak_rss_bytes": max(row["peak_rss_bytes"] for row in rows),
                        "task_threads": threads,
                        "load_before": load,
                        "load_after": rows[-1]["load_after"],
                        "error": error,
                    }
                    report["runs"].append(run)
                    print(
                        f"{workers} workers, chunks {chunks}: {run['gb_per_s']:.3f} GB/s, peak "
                        f"{run['peak_rss_bytes'] / 2**30:.2f} GiB, {threads} threads per task, "
                        f"error {error:.1e}, load {load[0]:.2f}",
                        flush=True,
                    )
            finally:
                client.close()
                cluster.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    text = json.dumps(report, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
        print(f"wrote {args.out}")
    else:
        print(text)
    return 0 if all(run["error"] <= 1e-4 for run in report["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
