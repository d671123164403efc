"""Benchmark the "cuda" backend on a GPU against the peers a GPU user would pick instead.

    python bench/gpu.py [--quick] [--only SUBSTRING] [--out DIR] [--budget SECONDS]
    NUMBA_ENABLE_CUDASIM=1 python bench/gpu.py --quick     # the harness itself, on the simulator

Peers: PyTorch's conv (cuDNN, TF32 off, cudnn.benchmark on so that cuDNN
picks its fastest algorithm) for the CNN layers; cupyx.scipy.signal's
fftconvolve and convolve (its automatic method choice) for convolve_nd.
Operands live on the device before timing (CuPy arrays; convkit returns CuPy
arrays); a second convkit row passes NumPy arrays, so copies to and from the
device are included.  Every call is followed by a device synchronization, and
every result is checked (against the best-matching peer on a GPU, the
reference backend on the simulator) before it is timed.  The ceiling is the
measured float32 matrix-product rate with TF32 off.  Writes results.json and
results.md to --out (default bench/results/gpu-<timestamp>).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from harness import arguments as parse_arguments
from harness import selected, skipped_row, versions, workload_heading
from workloads import Workload, quick

import convkit

ROOT = Path(__file__).resolve().parent

# The CPU benchmark's workloads scaled to fill a GPU (an H100 has 132 multiprocessors).
GPU_FULL = [
    Workload(
        "G2 conv N64 C64 56x56 F64 3x3 half",
        "conv",
        ((64, 64, 56, 56), (64, 64, 3, 3)),
        "float32",
        {"border_mode": "half"},
        "cuda >= 0.5x cuDNN",
    ),
    Workload(
        "G3 conv N64 C128 28x28 F256 3x3 s2",
        "conv",
        ((64, 128, 28, 28), (256, 128, 3, 3)),
        "float32",
        {"border_mode": "half", "subsample": 2},
        "cuda >= 0.5x cuDNN",
    ),
    Workload(
        "G4 conv N64 C256 14x14 F1024 1x1",
        "conv",
        ((64, 256, 14, 14), (1024, 256, 1, 1)),
        "float32",
        {},
        "cuda >= 0.5x cuDNN",
    ),
    Workload(
        "G5 conv N32 C3 224x224 F64 7x7 s2 p3",
        "conv",
        ((32, 3, 224, 224), (64, 3, 7, 7)),
        "float32",
        {"border_mode": 3, "subsample": 2},
        "cuda >= 0.5x cuDNN",
    ),
    Workload(
        "G6 depthwise N64 C128 56x56 3x3 g128",
        "conv",
        ((64, 128, 56, 56), (128, 1, 3, 3)),
        "float32",
        {"border_mode": "half", "num_groups": 128},
        "cuda >= 0.5x cuDNN",
    ),
    Workload(
        "G2 conv f64 N16 C64 56x56 F64 3x3 half",
        "conv",
        ((16, 64, 56, 56), (64, 64, 3, 3)),
        "float64",
        {"border_mode": "half"},
        "-",
    ),
    Workload(
        "img convolve_nd 8192^2 * 5x5 same f32",
        "convolve_nd",
        ((8192, 8192), (5, 5)),
        "float32",
        {"mode": "same"},
        "cuda >= 1x cupyx",
    ),
    Workload(
        "vol convolve_nd 256^3 * 3^3 same f32",
        "convolve_nd",
        ((256, 256, 256), (3, 3, 3)),
        "float32",
        {"mode": "same"},
        "cuda >= 1x cupyx",
    ),
    Workload(
        "rows convolve_nd (4096,16384) * (1,17) axes=-1 f32",
        "convolve_nd",
        ((4096, 16384), (1, 17)),
        "float32",
        {"axes": -1},
        "cuda >= 1x cupyx",
    ),
    Workload(
        "fft 2048^2 * 64^2 full f32",
        "convolve_nd",
        ((2048, 2048), (64, 64)),
        "float32",
        {"mode": "full"},
        "- (a large kernel: FFT territory)",
    ),
]


def simulated() -> bool:
    from numba import config

    return bool(getattr(config, "ENABLE_CUDASIM", False))


class Device:
    """Device arrays and synchronization: CuPy on a GPU, Numba's arrays on the simulator."""

    def __init__(self):
        self.cupy = None
        if not simulated():
            import cupy

            self.cupy = cupy

    def put(self, array: np.ndarray):
        if self.cupy is not None:
            return self.cupy.asarray(array)
        from numba import cuda

        return cuda.to_device(array)

    def get(self, array) -> np.ndarray:
        if isinstance(array, np.ndarray):
            return array
        if self.cupy is not None:
            return self.cupy.asnumpy(array)
        if hasattr(array, "copy_to_host"):
            return array.copy_to_host()
        return array.detach().cpu().numpy()  # a torch tensor

    def synchronize(self) -> None:
        if self.cupy is not None:
            self.cupy.cuda.Device().synchronize()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.synchronize()
        except ImportError:
            pass

    def name(self) -> str:
        if self.cupy is None:
            return "Numba CUDA simulator"
        properties = self.cupy.cuda.runtime.getDeviceProperties(0)
        return f"{properties['name'].decode()}, {properties['multiProcessorCount']} multiprocessors"


def matmul_rate(device: Device) -> float | None:
    """GFLOP/s of a float32 8192^3 matrix product on the GPU with TF32 off (the ceiling)."""
    if device.cupy is None:
        return None
    try:
        import torch
    except ImportError:
        return None
    torch.backends.cuda.matmul.allow_tf32 = False
    a = torch.randn(8192, 8192, device="cuda")
    a @ a
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        a @ a
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * 8192**3 / best / 1e9


def torch_peer(workload: Workload, first: np.ndarray, second: np.ndarray):
    """cuDNN through torch (cross-correlation: the filter is flipped once, outside the timing)."""
    if workload.kind != "conv":
        return None
    try:
        import torch
        from torch.nn import functional
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    spatial = first.ndim - 2
    p = workload.params
    border, kernel = p.get("border_mode", "valid"), second.shape[2:]
    padding = (
        tuple(k // 2 for k in kernel) if border == "half" else 0 if border == "valid" else border
    )
    x = torch.as_tensor(first, device="cuda")
    # A copy, not ascontiguousarray: a flipped 1x1 kernel counts as contiguous but keeps its
    # negative strides, which torch refuses.
    w = torch.as_tensor(
        second[(Ellipsis,) + (slice(None, None, -1),) * spatial].copy(), device="cuda"
    )
    function = (functional.conv1d, functional.conv2d, functional.conv3d)[spatial - 1]
    stride, groups = p.get("subsample", 1), p.get("num_groups", 1)

    def call():
        with torch.no_grad():
            return function(x, w, stride=stride, padding=padding, groups=groups)

    return call


def cupyx_peers(workload: Workload, device: Device, first, second) -> dict:
    if workload.kind != "convolve_nd" or device.cupy is None:
        return {}
    try:
        from cupyx.scipy import signal
    except ImportError:
        return {}
    mode, axes = workload.params.get("mode", "full"), workload.params.get("axes")
    peers = {"cupyx.fftconvolve": lambda: signal.fftconvolve(first, second, mode, axes=axes)}
    if axes is None:
        peers["cupyx.convolve(auto)"] = lambda: signal.convolve(first, second, mode)
    return peers


def measure(
    call, device: Device, budget: float, max_repeat: int
) -> tuple[object, float, float, int]:
    """(result, first call seconds, median seconds, repeats); every call synchronized."""
    start = time.perf_counter()
    result = call()
    device.synchronize()
    first = time.perf_counter() - start
    call()
    device.synchronize()
    times: list[float] = []
    while len(times) < max_repeat and (sum(times) < budget or len(times) < 3):
        start = time.perf_counter()
        call()
        device.synchronize()
        times.append(time.perf_counter() - start)
    return result, first, statistics.median(times), len(times)


def relative_error(result: np.ndarray, reference: np.ndarray) -> float:
    if result.shape != reference.shape:
        return float("inf")
    scale = float(np.abs(reference).max()) or 1.0
    return float(np.abs(result.astype(np.float64) - reference).max()) / scale


def run_workload(
    workload: Workload, device: Device, budget: float, max_repeat: int, ceiling: float | None
) -> dict:
    first, second = workload.arrays()
    first_device, second_device = device.put(first), device.put(second)
    candidates = {
        "convkit[cuda] device": lambda: workload.call(convkit, first_device, second_device, "cuda"),
        "convkit[cuda] host": lambda: workload.call(convkit, first, second, "cuda"),
    }
    peers = cupyx_peers(workload, device, first_device, second_device)
    torch_call = torch_peer(workload, first, second)
    if torch_call is not None:
        peers["torch.conv (cuDNN)"] = torch_call
    results, rows = {}, []
    for label, call in [*candidates.items(), *peers.items()]:
        kind = "convkit" if label.startswith("convkit") else "peer"
        try:
            result, first_s, median_s, repeats = measure(call, device, budget, max_repeat)
        except Exception as error:  # noqa: BLE001 - a peer out of memory, say: report it, go on
            rows.append(
                {
                    "implementation": label,
                    "kind": kind,
                    "skipped": f"{type(error).__name__}: {error}",
                }
            )
            continue
        results[label] = device.get(result)
        rows.append(
            {
                "implementation": label,
                "kind": kind,
                "first_call_s": first_s,
                "median_s": median_s,
                "repeats": repeats,
                "gflops": workload.flops / median_s / 1e9,
                "percent_of_ceiling": (100 * workload.flops / median_s / 1e9 / ceiling)
                if ceiling
                else None,
            }
        )
    # The check: against the reference backend where it is quick, else against cuDNN / cupyx.
    if device.cupy is None:
        reference, against = (
            np.asarray(workload.call(convkit, first, second, "scipy"), np.float64),
            "scipy",
        )
    else:
        against = next(
            (label for label in ("torch.conv (cuDNN)", "cupyx.fftconvolve") if label in results),
            None,
        )
        reference = None if against is None else results[against].astype(np.float64)
    tolerance = 1e-4 if workload.dtype == "float32" else 1e-9
    for row in rows:
        if row["implementation"] in results and reference is not None:
            row["relative_error"] = relative_error(results[row["implementation"]], reference)
            row["ok"] = row["relative_error"] <= tolerance
            row["checked_against"] = against
    timed_peers = [
        row["median_s"]
        for row in rows
        if row["kind"] == "peer" and row.get("ok", True) and "median_s" in row
    ]
    for row in rows:
        if "median_s" in row and timed_peers:
            row["ratio_to_best_peer"] = min(timed_peers) / row["median_s"]
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
    ceiling = report["ceiling_gflops"]
    lines = [
        f"# convkit GPU benchmark ({'quick' if report['quick'] else 'full'})",
        "",
        (
            f"{report['device']}; float32 matmul ceiling (TF32 off): "
            f"{'-' if ceiling is None else f'{ceiling:.0f} GFLOP/s'}; versions {report['versions']}"
        ),
        "",
    ]
    for entry in report["workloads"]:
        lines += workload_heading(entry, "ceiling")
        for row in entry["rows"]:
            if "skipped" in row:
                lines.append(skipped_row(row))
                continue
            ratio, percent = row.get("ratio_to_best_peer"), row.get("percent_of_ceiling")
            check = (
                "-"
                if "ok" not in row
                else f"{'ok' if row['ok'] else 'WRONG'} ({row['relative_error']:.1e} vs {row['checked_against']})"
            )
            lines.append(
                f"| {row['implementation']} | {row['median_s'] * 1e3:.3g} | {row['gflops']:.4g} | "
                f"{'-' if percent is None else f'{percent:.3g}'} | {'-' if ratio is None else f'{ratio:.2f}'} | "
                f"{row['first_call_s'] * 1e3:.4g} | {check} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    arguments = parse_arguments(__doc__, 1.0, "tiny sizes (the simulator, the tests)", argv)
    device = Device()
    workloads = selected(
        [quick(w) for w in GPU_FULL] if arguments.quick else GPU_FULL, arguments.only
    )
    out = arguments.out or ROOT / "results" / time.strftime("gpu-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    budget, max_repeat = (0.01, 1) if arguments.quick else (arguments.budget, 100)
    report = {
        "quick": arguments.quick,
        "device": device.name(),
        "ceiling_gflops": matmul_rate(device),
        "versions": versions(("convkit", "numpy", "numba", "numba_cuda", "cupy", "torch")),
        "workloads": [],
    }
    for workload in workloads:
        entry = run_workload(workload, device, budget, max_repeat, report["ceiling_gflops"])
        report["workloads"].append(entry)
        print(
            f"{workload.name}: "
            + ", ".join(
                f"{row['implementation']} {row['median_s'] * 1e3:.3g} ms{' WRONG' if row.get('ok') is False else ''}"
                for row in entry["rows"]
                if "median_s" in row
            ),
            flush=True,
        )
    (out / "results.json").write_text(json.dumps(report, indent=1, default=str))
    (out / "results.md").write_text(markdown(report))
    print(f"\nwrote {out / 'results.json'}, {out / 'results.md'}")
    wrong = [
        row for entry in report["workloads"] for row in entry["rows"] if row.get("ok") is False
    ]
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
