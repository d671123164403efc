"""First-call cost: import and first call in a fresh process, with an empty and a warm cache.

Each measurement runs a new Python process that imports numpy and convkit and
makes the README's Quick start calls on one backend, timing the import, the
first call (which compiles, or loads from Numba's on-disk cache) and the
second call.  "cold" gives the process a new, empty ``NUMBA_CACHE_DIR``;
"warm" runs a second process on the cache the cold one filled, as a
deployment does after ``python -m convkit warmup``.

    python bench/first_call.py                      # numba and fftw, 3 repeats
    python bench/first_call.py --backend numba --repeat 5
    PYTHONPATH=/other/checkout python bench/first_call.py   # another version of convkit

It measures the convkit the child process imports (``PYTHONPATH`` decides),
so the same script times a before and an after.  Prints one line per
process and the median per backend, call and cache state; ``--json FILE``
also writes the raw numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

# The child: the Quick start's two calls, timed from before numpy's import.
CHILD = """\
import json, sys, time
start = time.perf_counter()
import numpy as np
import convkit
imported = time.perf_counter()
backend, call = sys.argv[1], sys.argv[2]
if call == "conv2d":
    x = np.random.default_rng(0).standard_normal((8, 3, 32, 32)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((16, 3, 3, 3)).astype(np.float32)
    run = lambda: convkit.conv2d(x, w, border_mode="half", subsample=2, backend=backend)
else:
    image = np.random.default_rng(2).standard_normal((256, 256))
    run = lambda: convkit.convolve_nd(image, np.full((5, 5), 1 / 25), mode="same", backend=backend)
made, made_cpu = time.perf_counter(), time.process_time()
run()
first, first_cpu = time.perf_counter(), time.process_time()
run()
second = time.perf_counter()
print(json.dumps({"import": imported - start, "first": first - made, "first_cpu": first_cpu - made_cpu,
                  "second": second - first,
                  "import_and_first": (imported - start) + (first - made),
                  "convkit": convkit.__file__,
                  "backend_package": next((module.__file__ for name, module in sys.modules.items()
                                           if name == "convkit_" + backend), None)}))
"""

CALLS = {
    "conv2d": "conv2d float32 (8,3,32,32)*(16,3,3,3) half s2",
    "convolve_nd": "convolve_nd float64 256^2*5x5 same",
}


def measure(backend: str, call: str, cache: str) -> dict:
    """One fresh process's timings (seconds) with ``NUMBA_CACHE_DIR=cache``."""
    environment = {**os.environ, "NUMBA_CACHE_DIR": cache}
    # Run in the cache folder: "python -c" puts the working directory first on sys.path, and a
    # checkout's convkit/ there would shadow the one PYTHONPATH names.
    done = subprocess.run(
        [sys.executable, "-c", CHILD, backend, call],
        capture_output=True,
        text=True,
        env=environment,
        cwd=cache,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{backend} {call}: the child process failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backend", action="append", help="backend to time (repeatable); default: numba and fftw"
    )
    parser.add_argument(
        "--call",
        action="append",
        choices=sorted(CALLS),
        help="Quick start call to time (repeatable); default: both",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="cold/warm pairs per backend and call (default 3)"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the raw timings to FILE")
    arguments = parser.parse_args(argv)
    backends = arguments.backend or ["numba", "fftw"]
    calls = arguments.call or list(CALLS)
    rows = []
    for backend in backends:
        for call in calls:
            for repeat in range(arguments.repeat):
                with tempfile.TemporaryDirectory(prefix="convkit-first-call-") as cache:
                    for state in ("cold", "warm"):
                        timing = measure(backend, call, cache)
                        rows.append(
                            {
                                "backend": backend,
                                "call": call,
                                "state": state,
                                "repeat": repeat,
                                **timing,
                            }
                        )
                        print(
                            f"{backend:6} {call:11} {state}: import {timing['import']:.2f} s, first call "
                            f"{timing['first']:.2f} s, import + first {timing['import_and_first']:.2f} s, "
                            f"second call {timing['second'] * 1e3:.1f} ms",
                            flush=True,
                        )
    packages = sorted({row["backend_package"] for row in rows if row["backend_package"]})
    print(f"\nconvkit from {rows[0]['convkit']}, backends from {', '.join(packages)}")
    print(
        f"medians of {arguments.repeat} fresh processes each, seconds (first cpu: the first call's "
        "CPU time, less sensitive to a busy machine than its wall time)"
    )
    print(
        f"{'backend':8} {'call':44} {'cache':6} {'import':>7} {'first':>7} {'first cpu':>9} "
        f"{'import+first':>13}"
    )
    for backend in backends:
        for call in calls:
            for state in ("cold", "warm"):
                chosen = [
                    row
                    for row in rows
                    if (row["backend"], row["call"], row["state"]) == (backend, call, state)
                ]
                median = {
                    key: statistics.median(row[key] for row in chosen)
                    for key in ("import", "first", "first_cpu", "import_and_first")
                }
                print(
                    f"{backend:8} {CALLS[call]:44} {state:6} {median['import']:7.2f} {median['first']:7.2f} "
                    f"{median['first_cpu']:9.2f} {median['import_and_first']:13.2f}"
                )
    if arguments.json:
        with open(arguments.json, "w") as handle:
            json.dump(rows, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
