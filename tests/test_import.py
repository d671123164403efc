"""``import convkit`` stays light: no backend, no engine, no scipy, no autograd framework
(docs/choosing.rst, docs/autograd.rst)."""

import subprocess
import sys

FORBIDDEN = (
    "scipy",
    "numba",
    "llvmlite",
    "pyfftw",
    "cupy",
    "torch",
    "pytensor",
    "convkit._scipy_backend",
    "convkit.testing",
    "importlib.metadata",
)


def test_import_convkit_imports_no_engine():
    script = (
        "import sys, convkit\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r} or m in {FORBIDDEN!r}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout


def test_importtime_report_shows_no_engine():
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import convkit"],
        capture_output=True,
        text=True,
        check=True,
    )
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert "convkit" in imported
    assert not {name for name in imported if name.split(".")[0] in ("scipy", "numba", "pyfftw")}


def test_the_autograd_bridges_are_imported_only_by_name():
    script = "import convkit\nprint(hasattr(convkit, 'torch'), hasattr(convkit, 'pytensor'))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["False", "False"], done.stdout


def test_import_convkit_imports_no_dask():
    """Dask arrays are recognized by their ``__dask_graph__``, without importing dask: not
    on import, nor when a call gets NumPy arrays (on the reference backend: pyFFTW's
    interfaces import dask themselves when it is installed)."""
    script = (
        "import sys, convkit\n"
        "convkit.convolve_nd([1.0, 2.0, 3.0], [1.0, 1.0], 'same', backend='scipy')\n"
        "print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('dask', 'distributed', 'zarr', 'toolz', 'cloudpickle')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout
