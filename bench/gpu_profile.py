"""Where the "cuda" backend's time goes: the kernels' own time against the whole call.

    python bench/gpu_profile.py [--only SUBSTRING] [--repeat N]

For each workload of bench/gpu.py (operands already on the device, CuPy
arrays) the call runs ``--repeat`` times under PyTorch's profiler, whose CUPTI
trace records every kernel in the process (Numba's included) with its device
time.  The table gives the wall time per call, the kernels' time per call and
the share of the call the GPU spent computing: a small share means the call
is bound by the host (Python, launch preparation), not by the kernel.  Needs
a GPU, CuPy and PyTorch.
"""

from __future__ import annotations

import argparse
import sys
import time

from gpu import GPU_FULL

import convkit


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only", action="append", default=[], help="workloads whose name contains this"
    )
    parser.add_argument("--repeat", type=int, default=10, help="profiled calls per workload")
    arguments = parser.parse_args(argv)
    try:
        import cupy
        from torch.profiler import ProfilerActivity, profile
    except ImportError:
        print("bench/gpu_profile.py needs a GPU with CuPy and PyTorch", file=sys.stderr)
        return 2
    print(
        "| workload | wall ms per call | kernel ms per call | kernel share | kernels per call | "
        "GFLOP/s in the kernels |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for workload in GPU_FULL:
        if arguments.only and not any(s in workload.name for s in arguments.only):
            continue
        first, second = (cupy.asarray(array) for array in workload.arrays())
        for _ in range(2):
            workload.call(convkit, first, second, "cuda")
        cupy.cuda.Device().synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as trace:
            start = time.perf_counter()
            for _ in range(arguments.repeat):
                workload.call(convkit, first, second, "cuda")
            cupy.cuda.Device().synchronize()
            wall = (time.perf_counter() - start) / arguments.repeat
        kernels = [
            event
            for event in trace.events()
            if str(getattr(event, "device_type", "")).endswith("CUDA")
        ]
        kernel = sum(event.time_range.elapsed_us() for event in kernels) / 1e6 / arguments.repeat
        print(
            f"| {workload.name} | {wall * 1e3:.3g} | {kernel * 1e3:.3g} | {kernel / wall:.0%} | "
            f"{len(kernels) / arguments.repeat:.3g} | "
            f"{workload.flops / kernel / 1e9 if kernel else float('nan'):.4g} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
