"""fftw's "wrap" boundary, circular against the padded copy: interleaved timings.

    python bench/fftw_wrap.py [--rounds N] [--only SUBSTRING]

Each round times, in turn, the problem with zero fill, with "wrap" as the
backend chooses, and with "wrap" forced onto each route: the circular
convolution of the signal's own length, and zero fill on the padded copy
(``convkit.plugin.explicit_boundary``).  Printed are the median and best ms
of each, their ratio to fill, and the backend's predictions.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import convkit
from convkit.plugin import normalize_convolve
from convkit_fftw import FftwBackend

PROBLEMS = {
    "4096^2 * 31x31 same f32": ((4096, 4096), (31, 31)),
    "4096^2 * 5x5 same f32": ((4096, 4096), (5, 5)),
    "256^3 * 7^3 same f32": ((256, 256, 256), (7, 7, 7)),
    "2^20 * 1001 same f32": ((2**20,), (1001,)),
    "2^16 * 31 same f32": ((2**16,), (31,)),
    "4096 * 31 same f32": ((4096,), (31,)),
    "512^2 * 5x5 same f32": ((512, 512), (5, 5)),
    "1024^2 * 31x31 same f32": ((1024, 1024), (31, 31)),
    "128^3 * 7^3 same f32": ((128, 128, 128), (7, 7, 7)),
    "4099 * 31 same f32 (prime)": ((4099,), (31,)),
    "1031^2 * 5x5 same f32 (prime)": ((1031, 1031), (5, 5)),
}


class _Forced(FftwBackend):
    """fftw with the route of "wrap" fixed (circular, or the padded copy)."""

    def __init__(self, circular: bool) -> None:
        self._circular = circular

    def circular(self, problem) -> bool:
        return self._circular


def _seconds(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="rounds per problem (default 7)")
    parser.add_argument("--only", default="", help="problems whose name contains this")
    arguments = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    fftw = FftwBackend()
    for name, (signal_shape, kernel_shape) in PROBLEMS.items():
        if arguments.only not in name:
            continue
        signal = rng.standard_normal(signal_shape, dtype=np.float32)
        kernel = rng.standard_normal(kernel_shape, dtype=np.float32)
        backends = {
            "fill": "fftw",
            "wrap": "fftw",
            "circular": _Forced(True),
            "padded": _Forced(False),
        }
        calls = {
            label: lambda label=label, backend=backend: convkit.convolve_nd(
                signal,
                kernel,
                "same",
                boundary="fill" if label == "fill" else "wrap",
                backend=backend,
            )
            for label, backend in backends.items()
        }
        reference = calls["padded"]()
        for label, call in calls.items():
            result = call()  # also the first calls, which plan
            scale = float(np.abs(reference).max())
            if label != "fill":
                assert np.abs(result - reference).max() <= 1e-4 * scale, label
            call()
        times = {label: [] for label in calls}
        for _ in range(arguments.rounds):
            for label, call in calls.items():
                times[label].append(_seconds(call))
        problem = normalize_convolve(signal, kernel, "same", boundary="wrap")
        fill_problem = normalize_convolve(signal, kernel, "same")
        fill = statistics.median(times["fill"])
        print(
            f"{name}, {arguments.rounds} interleaved rounds; predicted ms: circular "
            f"{fftw._seconds(problem) * 1e3:.1f}, padded {fftw._padded_seconds(problem) * 1e3:.1f}, "
            f"fill {fftw._seconds(fill_problem) * 1e3:.1f}; chooses "
            f"{'circular' if fftw.circular(problem) else 'padded'}"
        )
        for label, seconds in times.items():
            median = statistics.median(seconds)
            print(
                f"  {label:9} median {median * 1e3:8.2f} ms  best {min(seconds) * 1e3:8.2f} ms"
                f"  median/fill {median / fill:5.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
