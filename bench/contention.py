"""The fftw backend alone and beside processes that keep every core busy.

    python bench/contention.py [--rounds 4] [--calls 5] [--busy N] [--keep-wisdom]

One round runs the README Quick start's two calls (conv2d of 8 x 3 x 32 x 32 by
16 x 3 x 3 x 3, convolve_nd of 256 x 256 by 5 x 5) ``--calls`` times each on
the fftw backend, starting from an empty plan pool and, unless
``--keep-wisdom``, with FFTW's wisdom forgotten, as in a fresh process: it
includes the estimated plans of the first calls, the measured planning of the
third and the measured runs after it.  Rounds alternate between an idle machine and one
where ``--busy`` processes (default: one per core) spin; each of them stops
by itself after ``--busy-seconds`` in case this script is killed.  Prints the
median round and the slowest call of each, and the ratio of the medians.
Speed is not asserted anywhere; bench/NOTES.md records the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np

import convkit
from convkit_fftw._plans import clear_plans

SPIN = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"


def quick_start_calls():
    """The README Quick start's two calls, as functions of no argument."""
    x = np.random.default_rng(0).standard_normal((8, 3, 32, 32)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((16, 3, 3, 3)).astype(np.float32)
    image = np.random.default_rng(2).standard_normal((256, 256))
    kernel = np.full((5, 5), 1 / 25)
    return [
        lambda: convkit.conv2d(x, w, border_mode="half", subsample=2, backend="fftw"),
        lambda: convkit.convolve_nd(image, kernel, mode="same", backend="fftw"),
    ]


def run_round(calls, repeats: int, keep_wisdom: bool) -> tuple[float, float]:
    """Seconds for the whole round (fresh plans) and for its slowest call."""
    clear_plans()
    if not keep_wisdom:
        sys.modules["pyfftw"].forget_wisdom()  # as the backend imported it
    slowest = 0.0
    start = time.perf_counter()
    for _ in range(repeats):
        for call in calls:
            began = time.perf_counter()
            call()
            slowest = max(slowest, time.perf_counter() - began)
    return time.perf_counter() - start, slowest


def start_busy(count: int, seconds: float) -> list[subprocess.Popen]:
    """``count`` processes that spin for ``seconds`` and then exit."""
    return [
        subprocess.Popen([sys.executable, "-c", SPIN.format(seconds=seconds)]) for _ in range(count)
    ]


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4, help="rounds of each kind (default 4)")
    parser.add_argument(
        "--calls", type=int, default=5, help="calls of each operation per round (default 5)"
    )
    parser.add_argument(
        "--busy",
        type=int,
        default=os.cpu_count() or 1,
        help="spinning processes during the loaded rounds (default: one per core)",
    )
    parser.add_argument(
        "--busy-seconds",
        type=float,
        default=120.0,
        help="each spinning process exits after this long (default 120)",
    )
    parser.add_argument(
        "--keep-wisdom",
        action="store_true",
        help="keep what FFTW's planner learned in earlier rounds (no measured planning)",
    )
    args = parser.parse_args(argv)

    calls = quick_start_calls()
    run_round(calls, 1, True)  # imports and pyFFTW's first use, not counted
    alone, loaded = [], []
    for _ in range(args.rounds):
        alone.append(run_round(calls, args.calls, args.keep_wisdom))
        busy = start_busy(args.busy, args.busy_seconds)
        try:
            time.sleep(0.3)  # let them reach the cores
            loaded.append(run_round(calls, args.calls, args.keep_wisdom))
        finally:
            stop(busy)
    for name, rounds in (("alone", alone), (f"beside {args.busy} busy", loaded)):
        print(
            f"{name:>16}: round median {statistics.median(r for r, _ in rounds) * 1e3:8.1f} ms, "
            f"slowest call {max(s for _, s in rounds) * 1e3:8.1f} ms "
            f"(rounds: {', '.join(f'{r * 1e3:.0f}' for r, _ in rounds)} ms)"
        )
    ratio = statistics.median(r for r, _ in loaded) / statistics.median(r for r, _ in alone)
    print(
        f"{'ratio':>16}: {ratio:.2f}x (cores: {os.cpu_count()}, threads: {convkit.get_num_threads()})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
