"""What a boundary other than zero fill costs: interleaved timings of the same problem.

    python bench/boundary_overhead.py [--backend NAME] [--rounds N]

Each round times fill, symm, wrap, mirror and nearest once, in turn, so that the
load of a shared machine falls on all of them alike; printed are the median and
best ms of each, its ratio to fill, and what numpy.pad alone takes for that
padded copy.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import convkit

PROBLEMS = {
    "4096^2 * 5x5 same f32": ((4096, 4096), (5, 5)),
    "256^3 * 7^3 same f32": ((256, 256, 256), (7, 7, 7)),
}
BOUNDARIES = ("fill", "symm", "wrap", "mirror", "nearest")
PAD_MODES = {"symm": "symmetric", "wrap": "wrap", "mirror": "reflect", "nearest": "edge"}


def _seconds(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="auto", help="convkit backend (default auto)")
    parser.add_argument("--rounds", type=int, default=9, help="rounds per problem (default 9)")
    arguments = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    for name, (signal_shape, kernel_shape) in PROBLEMS.items():
        signal = rng.standard_normal(signal_shape, dtype=np.float32)
        kernel = rng.standard_normal(kernel_shape, dtype=np.float32)
        widths = [((k - 1) - (k - 1) // 2, (k - 1) // 2) for k in kernel_shape]
        calls = {
            boundary: lambda boundary=boundary: convkit.convolve_nd(
                signal, kernel, "same", boundary=boundary, backend=arguments.backend
            )
            for boundary in BOUNDARIES
        }
        calls.update(
            {
                f"numpy.pad {mode}": lambda mode=mode: np.pad(signal, widths, mode=mode)
                for mode in PAD_MODES.values()
            }
        )
        for call in calls.values():
            call()
        times = {label: [] for label in calls}
        for _ in range(arguments.rounds):
            for label, call in calls.items():
                times[label].append(_seconds(call))
        fill = statistics.median(times["fill"])
        print(f"{name}, backend={arguments.backend}, {arguments.rounds} interleaved rounds")
        for label, seconds in times.items():
            median = statistics.median(seconds)
            print(
                f"  {label:18} median {median * 1e3:7.1f} ms  best {min(seconds) * 1e3:7.1f} ms"
                f"  median/fill {median / fill:5.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
