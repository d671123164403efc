"""SciPy's own tests of its convolutions, run against convkit.compat on every CPU backend.

Each run is a pytest session of its own, in a folder outside this repository (so that
SciPy's conftest, with its ``xp`` fixture and markers, is the one in force), with
tests/scipy_suite_plugin.py loaded: see that file for what it keeps, replaces and marks.
The quick level runs the reference backend (about 70 s on two cores); ``--run-slow``
adds numba and fftw.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import convkit

TESTS = Path(__file__).resolve().parent
MODULES = ("scipy.signal.tests.test_signaltools", "scipy.ndimage.tests.test_filters")
# SciPy 1.17 has about 13,300 such tests; far fewer means the selection broke.
AT_LEAST = 10_000


def _run_scipy_suite(backend: str, folder: Path) -> subprocess.CompletedProcess:
    path = os.pathsep.join([str(TESTS), *filter(None, [os.environ.get("PYTHONPATH")])])
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "scipy_suite_plugin",
        "-p",
        "no:cacheprovider",
        "--compat-backend",
        backend,
        "-q",
        "-rfE",
        "--pyargs",
        *MODULES,
    ]
    return subprocess.run(
        command,
        check=False,
        cwd=folder,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=1800,
    )


@pytest.mark.parametrize(
    "backend",
    [
        "scipy",
        pytest.param("numba", marks=pytest.mark.slow),
        pytest.param("fftw", marks=pytest.mark.slow),
    ],
)
def test_scipys_own_tests_pass_on(backend, tmp_path):
    pytest.importorskip("hypothesis")  # SciPy's ndimage tests use it
    info = {entry.name: entry for entry in convkit.list_backends()}
    if backend not in info or not info[backend].available:
        pytest.skip(f"backend {backend!r} is not available here")
    done = _run_scipy_suite(backend, tmp_path)
    summary = (done.stdout.strip().splitlines() or [""])[-1]
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    passed = int(re.search(r"(\d+) passed", summary).group(1))
    assert passed >= AT_LEAST, summary
    assert not re.search(r"\d+ (failed|errors?)\b", summary), summary
    print(f"{backend}: {summary}")
