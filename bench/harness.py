"""What both benchmarks (run.py, gpu.py) share: their arguments, versions, markdown sections."""

from __future__ import annotations

import argparse
from pathlib import Path


def arguments(description: str, budget: float, quick: str, argv=None) -> argparse.Namespace:
    """The common command line: --quick, --only (repeatable), --out, --budget (each script's default)."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument(
        "--only", action="append", default=[], help="run workloads whose name contains this"
    )
    parser.add_argument(
        "--out", type=Path, help="output folder (default: a new one under bench/results/)"
    )
    parser.add_argument(
        "--budget", type=float, default=budget, help="seconds of repeats per implementation"
    )
    return parser.parse_args(argv)


def selected(workloads: list, only: list[str]) -> list:
    """The workloads whose names contain one of ``only`` (all when empty)."""
    return [w for w in workloads if any(s in w.name for s in only)] if only else list(workloads)


def versions(modules: tuple[str, ...]) -> dict[str, str]:
    """The installed versions of ``modules`` (missing ones left out)."""
    found = {}
    for module in modules:
        try:
            found[module] = __import__(module).__version__
        except (ImportError, AttributeError):
            pass
    return found


def workload_heading(entry: dict, ceiling: str) -> list[str]:
    """A workload's heading, its size and target, and its table's header (``ceiling``: that column's name)."""
    return [
        f"## {entry['workload']}",
        "",
        (
            f"{entry['flops'] / 1e9:.3g} GFLOP direct, {entry['bytes'] / 2**20:.3g} MiB in+out; "
            f"target: {entry['target'] or '-'}"
        ),
        "",
        f"| implementation | median ms | GFLOP/s | % {ceiling} | x best peer | first call ms | check |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]


def skipped_row(row: dict) -> str:
    """The row of an implementation that could not run the workload."""
    return f"| {row['implementation']} | - | - | - | - | - | skipped: {row['skipped'][:80]} |"
