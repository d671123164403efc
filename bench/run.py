"""Benchmark every convkit backend against the peers a user would pick instead.

    python bench/run.py [--quick] [--only SUBSTRING] [--out DIR] [--budget SECONDS]

Each implementation's result is checked against the reference before it is
timed.  Reported per workload: median ms, GFLOP/s (direct-definition flops),
% of the sgemm rate measured at start, ratio to the best peer (>1: faster),
and the first call's time in this process.  Writes results.json, results.md
and results.png to --out (default bench/results/<timestamp>).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from harness import arguments as parse_arguments
from harness import selected, skipped_row, versions, workload_heading
from peers import peers_for
from workloads import FULL, Workload, quick

import convkit
from convkit.plugin import resolve_backend

ROOT = Path(__file__).resolve().parent


def sgemm_rate(size: int) -> float:
    """GFLOP/s of NumPy's float32 matrix product (the machine's practical ceiling)."""
    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    a @ a
    best = min(
        _timed(lambda: a @ a) for _ in range(5)
    )  # this VM's timings are noisy: take the best
    return 2 * size**3 / best / 1e9


def _timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def measure(call, budget: float, max_repeat: int) -> tuple[np.ndarray, float, float, int]:
    """(result, first call seconds, median seconds, repeats).

    The median is of steady-state calls: after the first call, two untimed
    warm-up calls (when the first took less than the budget) let every
    implementation settle its plans and caches (the fftw backend measures its
    FFT plans on a shape's third use).
    """
    start = time.perf_counter()
    result = call()
    first = time.perf_counter() - start
    if first < budget:
        call()
        call()
    times: list[float] = []
    while len(times) < max_repeat and (sum(times) < budget or len(times) < 3):
        if first > budget and len(times) >= 1:
            break
        times.append(_timed(call))
    return result, first, statistics.median(times), len(times)


def check(result, reference: np.ndarray, dtype: str) -> tuple[bool, float]:
    """Normwise agreement with the reference, max |y - r| / max |r| over its finite values;
    NaN where the reference has NaN, and nowhere else."""
    result = np.asarray(result)
    if result.shape != reference.shape:
        return False, float("inf")
    missing = np.isnan(reference)
    if not np.array_equal(np.isnan(result), missing):
        return False, float("inf")
    result, reference = result[~missing], reference[~missing]
    if reference.size == 0:
        return True, 0.0
    scale = float(np.abs(reference).max()) or 1.0
    error = float(np.abs(result.astype(np.float64) - reference).max()) / scale
    return error <= (1e-4 if dtype == "float32" else 1e-9), error


def warm_first_call(backend: str) -> float | None:
    """Seconds of the first call in a fresh process, with the compile cache warm."""
    script = (
        "import time; start = time.perf_counter()\n"
        "import numpy, convkit\n"
        "convkit.conv2d(numpy.ones((2, 3, 5, 5), numpy.float32), numpy.ones((1, 3, 3, 3), numpy.float32),"
        f" backend={backend!r})\n"
        "convkit.convolve_nd(numpy.ones(50, numpy.float32), numpy.ones(5, numpy.float32),"
        f" backend={backend!r})\n"
        "print(time.perf_counter() - start)\n"
    )
    seconds = None
    for _ in range(2):  # the first run fills the cache
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            return None
        seconds = float(done.stdout.strip().splitlines()[-1])
    return seconds


def hiding_gradients(name: str, call):
    """``call`` with backend ``name`` offering only conv and convolve_nd, so the core lowers the
    gradients to its conv: the generic path, timed in the same run as the native one (the
    backend object itself, so its operands are not copied as a third-party wrapper's would be)."""
    engine = resolve_backend(name)
    forward_only = dataclasses.replace(
        engine.capabilities, operations=frozenset({"conv", "convolve_nd"})
    )

    def lowered():
        engine.capabilities = forward_only
        try:
            return call()
        finally:
            del engine.capabilities

    return lowered


def run_workload(
    workload: Workload, threads: int, budget: float, max_repeat: int, ceiling: float
) -> dict:
    first, second = workload.arrays()
    reference = np.asarray(workload.call(convkit, first, second, "scipy"), dtype=np.float64)
    rows = []
    candidates = {}
    for info in convkit.list_backends():
        if info.available and not info.simulated:
            candidates[f"convkit[{info.name}]"] = lambda name=info.name: workload.call(
                convkit, first, second, name
            )
    # What a user gets without naming a backend: the cost model's choice.
    candidates["convkit[auto]"] = lambda: workload.call(convkit, first, second, "auto")
    if workload.forward is not None and "convkit[numba]" in candidates:
        candidates["convkit[numba-lowered]"] = hiding_gradients(
            "numba", candidates["convkit[numba]"]
        )
    peers = peers_for(workload, first, second, threads)
    for label, call in [*candidates.items(), *peers.items()]:
        kind = "convkit" if label.startswith("convkit") else "peer"
        try:
            result, first_s, median_s, repeats = measure(call, budget, max_repeat)
        except (convkit.BackendError, MemoryError, RuntimeError) as error:
            # A backend that cannot do the problem, or a peer that runs out of memory.
            rows.append(
                {
                    "implementation": label,
                    "kind": kind,
                    "skipped": f"{type(error).__name__}: {error}",
                }
            )
            continue
        ok, error = check(result, reference, workload.dtype)
        rows.append(
            {
                "implementation": label,
                "kind": kind,
                "ok": ok,
                "relative_error": error,
                "first_call_s": first_s,
                "median_s": median_s,
                "repeats": repeats,
                "gflops": workload.flops / median_s / 1e9,
                "percent_of_sgemm": 100 * workload.flops / median_s / 1e9 / ceiling,
            }
        )
    timed_peers = [r["median_s"] for r in rows if r.get("kind") == "peer" and r.get("ok")]
    best_peer = min(timed_peers) if timed_peers else None
    for row in rows:
        if "median_s" in row and best_peer:
            row["ratio_to_best_peer"] = best_peer / row["median_s"]
    return {
        "workload": workload.name,
        "kind": workload.kind,
        "shapes": workload.shapes,
        "dtype": workload.dtype,
        "params": {k: str(v) for k, v in workload.params.items()},
        "target": workload.target,
        "flops": workload.flops,
        "bytes": workload.bytes,
        "rows": rows,
    }


def markdown(report: dict) -> str:
    lines = [
        f"# convkit benchmark ({'quick' if report['quick'] else 'full'})",
        "",
        (
            f"{report['machine']}; {report['threads']} threads; sgemm ceiling "
            f"{report['sgemm_gflops']:.0f} GFLOP/s; versions {report['versions']}"
        ),
        "",
    ]
    if report.get("warm_first_call_s"):
        lines += [
            "Warm-cache first call in a fresh process (import included): "
            + ", ".join(f"{k} {v:.2f} s" for k, v in report["warm_first_call_s"].items()),
            "",
        ]
    for entry in report["workloads"]:
        lines += workload_heading(entry, "sgemm")
        for row in entry["rows"]:
            if "skipped" in row:
                lines.append(skipped_row(row))
                continue
            ratio = row.get("ratio_to_best_peer")
            lines.append(
                f"| {row['implementation']} | {row['median_s'] * 1e3:.3g} | {row['gflops']:.3g} | "
                f"{row['percent_of_sgemm']:.3g} | {'-' if ratio is None else f'{ratio:.2f}'} | "
                f"{row['first_call_s'] * 1e3:.3g} | {'ok' if row['ok'] else 'WRONG'} "
                f"({row['relative_error']:.1e}) |"
            )
        lines.append("")
    return "\n".join(lines)


def plot(report: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    entries = report["workloads"]
    figure, axis = plt.subplots(figsize=(11, 0.55 * sum(len(e["rows"]) for e in entries) + 1.5))
    labels, values, colors = [], [], []
    for entry in entries:
        for row in entry["rows"]:
            if "median_s" in row:
                labels.append(f"{entry['workload'][:34]} | {row['implementation']}")
                values.append(row["median_s"] * 1e3)
                colors.append("tab:blue" if row["kind"] == "convkit" else "tab:gray")
    axis.barh(range(len(values)), values, color=colors)
    axis.set_yticks(range(len(values)), labels, fontsize=7)
    axis.invert_yaxis()
    axis.set_xscale("log")
    axis.set_xlabel("median ms (log); blue: convkit, grey: peers")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def main(argv=None) -> int:
    arguments = parse_arguments(__doc__, 2.0, "tiny sizes, for the tests", argv)
    threads = convkit.get_num_threads()
    workloads = selected([quick(w) for w in FULL] if arguments.quick else FULL, arguments.only)
    out = arguments.out or ROOT / "results" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    budget, max_repeat = (0.05, 2) if arguments.quick else (arguments.budget, 50)
    ceiling = sgemm_rate(256 if arguments.quick else 2048)
    report = {
        "quick": arguments.quick,
        "threads": threads,
        "sgemm_gflops": ceiling,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "versions": versions(("convkit", "numpy", "scipy", "numba", "torch", "pyfftw", "pytensor")),
        "workloads": [],
    }
    if not arguments.quick:
        report["warm_first_call_s"] = {
            info.name: warm_first_call(info.name)
            for info in convkit.list_backends()
            if info.available and info.name != "scipy"
        }
    for workload in workloads:
        entry = run_workload(workload, threads, budget, max_repeat, ceiling)
        report["workloads"].append(entry)
        best = [r for r in entry["rows"] if "median_s" in r]
        print(
            f"{workload.name}: "
            + ", ".join(
                f"{r['implementation']} {r['median_s'] * 1e3:.3g} ms{'' if r['ok'] else ' WRONG'}"
                for r in best
            ),
            flush=True,
        )
    (out / "results.json").write_text(json.dumps(report, indent=1, default=str))
    (out / "results.md").write_text(markdown(report))
    plotted = plot(report, out / "results.png")
    print(
        f"\nwrote {out / 'results.json'}, {out / 'results.md'}"
        + (f", {out / 'results.png'}" if plotted else "")
    )
    wrong = [r for e in report["workloads"] for r in e["rows"] if r.get("ok") is False]
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
