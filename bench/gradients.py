"""The gradients of C2-C5: native numba, the lowered path and torch's backward, interleaved.

    python bench/gradients.py [--rounds N] [--only SUBSTRING]

Each round times every implementation once, in turn, on the same problem,
so that the load of a shared machine falls on all alike; printed are the
median and best ms of each, and the ratios numba / torch and
numba-lowered / numba of the medians.  The implementations are those of
``bench/run.py --only grad``: convkit[numba] (native), convkit[numba-lowered]
(the same backend with its gradients hidden) and torch's autograd backward.
"""

from __future__ import annotations

import argparse
import statistics
import time

from peers import peers_for
from run import hiding_gradients
from workloads import FULL

import convkit


def _seconds(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="rounds per problem (default 9)")
    parser.add_argument("--only", default="grad", help="rows whose name contains this")
    arguments = parser.parse_args(argv)
    threads = convkit.get_num_threads()
    for workload in FULL:
        if workload.forward is None or arguments.only not in workload.name:
            continue
        first, second = workload.arrays()

        def native(first=first, second=second, workload=workload):
            return workload.call(convkit, first, second, "numba")

        calls = {"numba": native, "numba-lowered": hiding_gradients("numba", native)}
        calls.update(peers_for(workload, first, second, threads))
        for call in calls.values():
            call()
        times = {name: [] for name in calls}
        for _ in range(arguments.rounds):
            for name, call in calls.items():
                times[name].append(_seconds(call))
        medians = {name: statistics.median(seconds) for name, seconds in times.items()}
        ratios = f"lowered/numba {medians['numba-lowered'] / medians['numba']:.2f}"
        if "torch autograd" in medians:
            ratios = f"numba/torch {medians['numba'] / medians['torch autograd']:.2f}  " + ratios
        print(
            f"{workload.name}  ({arguments.rounds} interleaved rounds):  "
            + "  ".join(
                f"{name} {medians[name] * 1e3:.1f} ms (best {min(times[name]) * 1e3:.1f})"
                for name in calls
            )
            + f"  {ratios}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
