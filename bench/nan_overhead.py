"""What nan_policy="interpolate" costs against "propagate": interleaved timings.

    python bench/nan_overhead.py [--backend NAME] [--rounds N]

Each round times propagate and interpolate once each, in turn, on the same
problem, so that the load of a shared machine falls on both alike; printed are
the median and best ms of each and the ratio of the medians.  The problems:
"same" float32 with a smoothing kernel (|standard normal|), 1% of the signal
NaN, 10 samples NaN, and none.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import convkit

PROBLEMS = {
    "2048^2 * 5x5": ((2048, 2048), (5, 5)),
    "4e6 * 25": ((4_000_000,), (25,)),
}


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
        clean = rng.standard_normal(signal_shape, dtype=np.float32)
        kernel = np.abs(rng.standard_normal(kernel_shape, dtype=np.float32))
        for missing in ("1%", "10 samples", "none"):
            signal = clean.copy()
            if missing == "1%":
                signal[rng.random(signal.shape) < 0.01] = np.nan
            elif missing == "10 samples":
                signal.flat[rng.choice(signal.size, 10, replace=False)] = np.nan
            calls = {
                policy: lambda policy=policy: convkit.convolve_nd(
                    signal, kernel, "same", nan_policy=policy, backend=arguments.backend
                )
                for policy in ("propagate", "interpolate")
            }
            for call in calls.values():
                call()
            times = {policy: [] for policy in calls}
            for _ in range(arguments.rounds):
                for policy, call in calls.items():
                    times[policy].append(_seconds(call))
            medians = {policy: statistics.median(seconds) for policy, seconds in times.items()}
            print(
                f"{name} same f32, NaN: {missing:10}  backend={arguments.backend}, "
                f"{arguments.rounds} interleaved rounds:  "
                + "  ".join(
                    f"{policy} median {medians[policy] * 1e3:.1f} ms "
                    f"(best {min(times[policy]) * 1e3:.1f})"
                    for policy in calls
                )
                + f"  interpolate/propagate {medians['interpolate'] / medians['propagate']:.2f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
