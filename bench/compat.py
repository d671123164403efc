"""The drop-ins of convkit.compat against the SciPy functions they replace, side by side.

    python bench/compat.py [--quick] [--rounds N] [--backend NAME] [--out FILE.md]

On the bench's image workload (4096^2 float32 * 5x5) and signal workload (256 rows of
16384 float32 * 257 taps along the rows), each row calls a SciPy function and its
convkit.compat twin with the same arguments.  Each round times every row's original
and drop-in once, in turn, so that the load of a shared machine falls on both alike;
reported are the medians, the ratio original / drop-in (> 1: the drop-in is faster),
and the largest difference between the two results relative to the largest value.
``--backend`` runs the drop-ins under ``convkit.use_backend`` (default: convkit's
choice).  ``--quick`` runs 1/16-size twins once (for the tests).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import scipy.ndimage
import scipy.signal

import convkit
from convkit.compat import ndimage, signal

IMAGE = "img 4096^2 f32 * 5x5"
ROWS = "rows (256,16384) f32 * 257 taps, axis -1"
TARGET_WORST, TARGET_MEDIAN = 0.9, 2.0


def _operands(quick: bool) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    side, rows, length = (256, 16, 1024) if quick else (4096, 256, 16384)
    image = rng.standard_normal((side, side), dtype=np.float32)
    signals = rng.standard_normal((rows, length), dtype=np.float32)
    return {
        IMAGE: (image, rng.standard_normal((5, 5), dtype=np.float32)),
        ROWS: (signals, rng.standard_normal((1, 257), dtype=np.float32)),
    }


def rows(quick: bool) -> list[tuple[str, str, object, object, tuple, dict]]:
    """(workload, call, SciPy function, drop-in, arguments, keywords) per row."""
    operands = _operands(quick)
    image, kernel = operands[IMAGE]
    signals, taps = operands[ROWS]
    line = taps[0]
    return [
        (IMAGE, "signal.fftconvolve same", scipy.signal.fftconvolve, signal.fftconvolve, (image, kernel, "same"), {}),
        (IMAGE, "signal.oaconvolve same", scipy.signal.oaconvolve, signal.oaconvolve, (image, kernel, "same"), {}),
        (IMAGE, "signal.convolve same (auto)", scipy.signal.convolve, signal.convolve, (image, kernel, "same"), {}),
        (IMAGE, "signal.correlate same (auto)", scipy.signal.correlate, signal.correlate, (image, kernel, "same"), {}),
        (IMAGE, "signal.convolve2d same symm", scipy.signal.convolve2d, signal.convolve2d, (image, kernel, "same", "symm"), {}),
        (IMAGE, "signal.correlate2d same fill", scipy.signal.correlate2d, signal.correlate2d, (image, kernel, "same"), {}),
        (IMAGE, "ndimage.convolve reflect", scipy.ndimage.convolve, ndimage.convolve, (image, kernel), {}),
        (IMAGE, "ndimage.correlate constant", scipy.ndimage.correlate, ndimage.correlate, (image, kernel), {"mode": "constant"}),
        (IMAGE, "ndimage.gaussian_filter sigma=2", scipy.ndimage.gaussian_filter, ndimage.gaussian_filter, (image, 2.0), {}),
        (IMAGE, "ndimage.uniform_filter size=5", scipy.ndimage.uniform_filter, ndimage.uniform_filter, (image, 5), {}),
        (ROWS, "signal.fftconvolve same axes=-1", scipy.signal.fftconvolve, signal.fftconvolve, (signals, taps, "same"), {"axes": -1}),
        (ROWS, "signal.oaconvolve same axes=-1", scipy.signal.oaconvolve, signal.oaconvolve, (signals, taps, "same"), {"axes": -1}),
        (ROWS, "ndimage.convolve1d axis=-1", scipy.ndimage.convolve1d, ndimage.convolve1d, (signals, line), {"axis": -1}),
        (ROWS, "ndimage.correlate1d axis=-1 wrap", scipy.ndimage.correlate1d, ndimage.correlate1d, (signals, line), {"axis": -1, "mode": "wrap"}),
    ]  # fmt: skip


def _seconds(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def measure(table, rounds: int, backend: str | None) -> list[dict]:
    """Interleaved timings: every round times each row's original, then its drop-in."""
    results = []
    with convkit.use_backend(backend) if backend else _nothing():
        checks = []
        for workload, call, original, drop_in, arguments, keywords in table:
            expected = original(*arguments, **keywords)
            got = drop_in(*arguments, **keywords)
            drop_in(*arguments, **keywords)  # plans and caches settle (fftw: third use)
            scale = float(np.abs(expected).max()) or 1.0
            difference = float(np.abs(got.astype(np.float64) - expected).max()) / scale
            checks.append((got.shape == expected.shape and got.dtype == expected.dtype, difference))
        times = [([], []) for _ in table]
        for _ in range(rounds):
            for (_, _, original, drop_in, arguments, keywords), (before, after) in zip(
                table, times
            ):
                before.append(_seconds(lambda: original(*arguments, **keywords)))
                after.append(_seconds(lambda: drop_in(*arguments, **keywords)))
    for (workload, call, *_), (before, after), (same_type, difference) in zip(table, times, checks):
        scipy_ms, convkit_ms = statistics.median(before) * 1e3, statistics.median(after) * 1e3
        results.append(
            {
                "workload": workload,
                "call": call,
                "scipy_ms": scipy_ms,
                "convkit_ms": convkit_ms,
                "ratio": scipy_ms / convkit_ms,
                "same_shape_and_dtype": same_type,
                "max_difference": difference,
            }
        )
    return results


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def report(results: list[dict], rounds: int, backend: str | None) -> str:
    ratios = [row["ratio"] for row in results]
    worst, median = min(ratios), statistics.median(ratios)
    load = os.getloadavg()
    lines = [
        "# convkit.compat drop-ins against SciPy",
        "",
        f"`python bench/compat.py --rounds {rounds}`"
        + (f" `--backend {backend}`" if backend else "")
        + f"; backend: {backend or 'convkit auto'}; {platform.machine()}, {os.cpu_count()} cores; "
        f"load average at the end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1/5/15 min); "
        f"scipy {scipy.__version__}, numpy {np.__version__}.",
        "",
        "Medians of interleaved rounds (original, then drop-in, per row per round). "
        "ratio = SciPy ms / drop-in ms (> 1: the drop-in is faster); difference = max "
        "|drop-in - SciPy| / max |SciPy|.",
        "",
        "| workload | call | SciPy ms | drop-in ms | ratio | same shape, dtype | difference |",
        "|---|---|---:|---:|---:|---|---:|",
    ]
    for row in results:
        lines.append(
            f"| {row['workload']} | {row['call']} | {row['scipy_ms']:.1f} | "
            f"{row['convkit_ms']:.1f} | {row['ratio']:.2f}x | "
            f"{'yes' if row['same_shape_and_dtype'] else 'NO'} | {row['max_difference']:.1e} |"
        )
    met = worst >= TARGET_WORST and median >= TARGET_MEDIAN
    lines += [
        "",
        f"Slowest ratio {worst:.2f}x (target >= {TARGET_WORST}x), median {median:.2f}x "
        f"(target >= {TARGET_MEDIAN}x): {'met' if met else 'NOT met'}.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1/16-size twins, one round")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--backend", default=None, help="convkit backend (default: auto)")
    parser.add_argument("--out", type=Path, help="also write the table here (and .json beside)")
    arguments = parser.parse_args(argv)
    rounds = 1 if arguments.quick else arguments.rounds
    results = measure(rows(arguments.quick), rounds, arguments.backend)
    text = report(results, rounds, arguments.backend)
    print(text)
    if arguments.out:
        arguments.out.write_text(text)
        arguments.out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    return 0 if all(row["same_shape_and_dtype"] for row in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
