"""Draw docs/_static/dask_scaling.png from the measured bench/baseline/dask_scaling.json.

    python docs/make_dask_scaling_figure.py [--data JSON] [--out PATH]

Left: GB/s of input against the chunk side, one line per number of worker
processes, the in-memory call on the same volume as a dashed line.  Right: the
peak resident memory of all processes of each run; below, the machine and
the load average the runs had beside them.  The numbers come from
``python bench/dask_scaling.py --out bench/baseline/dask_scaling.json``.
Needs matplotlib (the ``docs`` extra).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "baseline" / "dask_scaling.json"
OUT = ROOT / "docs" / "_static" / "dask_scaling.png"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help=f"JSON to read (default {DATA})")
    parser.add_argument("--out", type=Path, default=OUT, help=f"PNG to write (default {OUT})")
    arguments = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report = json.loads(arguments.data.read_text())
    figure, (speed, memory) = plt.subplots(1, 2, figsize=(9, 3.6), layout="constrained")
    for workers in sorted({run["workers"] for run in report["runs"]}):
        runs = sorted(
            (run for run in report["runs"] if run["workers"] == workers),
            key=lambda run: run["chunks"],
        )
        chunks = [run["chunks"] for run in runs]
        label = f"{workers} worker{'s' if workers > 1 else ''} x 1 thread"
        speed.plot(chunks, [run["gb_per_s"] for run in runs], "o-", label=label)
        memory.plot(chunks, [run["peak_rss_bytes"] / 2**30 for run in runs], "o-", label=label)
    speed.axhline(
        report["in_memory"]["gb_per_s"], color="gray", linestyle="--", label="in memory, 2 threads"
    )
    size = report["size"]
    for axis in (speed, memory):
        axis.set_xscale("log", base=2)
        axis.set_xticks(chunks, [f"{c}³" for c in chunks])
        axis.set_xlabel("chunk")
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
    speed.set_ylabel("GB/s of input")
    speed.set_title(f"{size}³ float32 * 9³ 'same', zarr to zarr", fontsize=10)
    memory.set_ylabel("peak RSS, all processes (GiB)")
    memory.set_title("memory of the whole run", fontsize=10)
    speed.legend(fontsize=8)
    loads = [run["load_before"][0] for run in report["runs"] if "load_before" in run]
    if loads:
        figure.supxlabel(
            f"{report.get('machine', '')}; load average {min(loads):.1f}-{max(loads):.1f} "
            "beside the runs",
            fontsize=8,
        )
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(arguments.out, dpi=80)
    plt.close(figure)
    print(f"wrote {arguments.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
