"""Threads per Dask task: convkit's own budget against an oversubscribed run, side by side.

Each Dask task runs convkit with ``convkit._dask.task_threads()`` threads: on a
``distributed`` worker, ``OMP_NUM_THREADS`` (the nanny sets it to 1) or the cores
over the worker's threads; in the threaded scheduler, the cores over its pool.
This script runs the same lazy convolution with that budget and with
``CONVKIT_NUM_THREADS`` forcing every task to use all the cores (what a library
that ignores the scheduler does: cores x tasks threads on the cores), and
reports wall time, CPU time and involuntary context switches of the processes
that compute.

    python bench/dask_threads.py [--size 192] [--chunks 64] [--backend numba] [--rounds 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import time

import numpy as np


def _measure(compute, processes) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and involuntary context switches of ``processes``."""
    import psutil

    def totals():
        cpu, switches = 0.0, 0
        for process in processes():
            try:
                times = process.cpu_times()
                cpu += times.user + times.system
                switches += process.num_ctx_switches().involuntary
            except psutil.NoSuchProcess:
                continue
        return cpu, switches

    cpu0, switches0 = totals()
    start = time.perf_counter()
    compute()
    wall = time.perf_counter() - start
    cpu1, switches1 = totals()
    return wall, cpu1 - cpu0, switches1 - switches0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--chunks", type=int, default=64)
    parser.add_argument("--kernel", type=int, default=9)
    parser.add_argument("--backend", default="numba")
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()

    import dask.array as da
    import psutil
    from dask.distributed import Client, LocalCluster

    import convkit
    from convkit._dask import task_threads

    cores = len(os.sched_getaffinity(0))
    rng = np.random.default_rng(0)
    shape = (options.size,) * 3
    data = rng.standard_normal(shape, dtype=np.float32)
    kernel = rng.standard_normal((options.kernel,) * 3, dtype=np.float32)
    volume = da.from_array(data, chunks=options.chunks)
    lazy = convkit.convolve_nd(volume, kernel, "same", backend=options.backend)
    rows = []
    me = psutil.Process()

    for label, threads in (("convkit's budget", None), ("every task all cores", cores)):
        if threads is None:
            os.environ.pop("CONVKIT_NUM_THREADS", None)
        else:
            os.environ["CONVKIT_NUM_THREADS"] = str(threads)
        lazy.compute(scheduler="threads")  # compile and plan first
        for _ in range(options.rounds):
            wall, cpu, switches = _measure(lambda: lazy.compute(scheduler="threads"), lambda: [me])
            rows.append(("threaded scheduler", label, wall, cpu, switches))
    os.environ.pop("CONVKIT_NUM_THREADS", None)

    for label, env in (
        ("convkit's budget", {}),
        ("every task all cores", {"CONVKIT_NUM_THREADS": str(cores)}),
    ):
        with (
            LocalCluster(
                n_workers=cores,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                scheduler_kwargs={"dashboard": False},
                silence_logs=logging.WARNING,
                env=env,
            ) as cluster,
            Client(cluster) as client,
        ):
            budgets = {
                client.submit(task_threads, workers=[address], pure=False).result()
                for address in client.scheduler_info()["workers"]
            }
            pids = list(client.run(os.getpid).values())

            def workers(pids=pids):
                return [psutil.Process(pid) for pid in pids if psutil.pid_exists(pid)]

            client.compute(lazy).result()  # compile and plan in every worker
            for _ in range(options.rounds):
                wall, cpu, switches = _measure(lambda: client.compute(lazy).result(), workers)
                rows.append(
                    (f"LocalCluster {cores}x1", f"{label} ({sorted(budgets)})", wall, cpu, switches)
                )

    print(
        f"{shape} float32, kernel {options.kernel}^3 'same', chunks {options.chunks}^3, "
        f"backend {options.backend}, {cores} cores, load {os.getloadavg()[0]:.1f}"
    )
    print("| scheduler | threads per task | wall s | CPU s | involuntary switches |")
    print("|---|---|---|---|---|")
    for scheduler, label, wall, cpu, switches in rows:
        print(f"| {scheduler} | {label} | {wall:.2f} | {cpu:.2f} | {switches} |")


if __name__ == "__main__":
    main()
