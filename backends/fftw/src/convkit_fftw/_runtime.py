"""pyFFTW, imported so that its OpenMP threads wait passively.

pyFFTW's wheels run FFTW's threads on their own copy of GNU OpenMP, whose
idle threads spin on a core for a while after every parallel region, and
which reads its wait policy once, when the library loads.  Spinning threads
take the cores that a busy machine's other processes (or the thread they wait
for) need: on the project's 2-core machine with other processes running, a
quick-start-sized conv took seconds instead of milliseconds (bench/NOTES.md).
pyFFTW is therefore imported with ``OMP_WAIT_POLICY=PASSIVE`` in the
environment, which is restored right after, so that other OpenMP libraries
loaded later keep their own defaults.  A policy the user set is kept.
"""

from __future__ import annotations

import os
import sys
import threading
from types import ModuleType

__all__ = ["load_pyfftw"]

_import_lock = threading.Lock()
_module: ModuleType | None = None
_OPENMP_WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def load_pyfftw() -> ModuleType:
    """Import pyFFTW (once), its OpenMP runtime set to wait passively unless the user chose otherwise."""
    global _module
    if _module is not None:
        return _module
    with _import_lock:
        if _module is None:
            if "pyfftw" in sys.modules or any(
                name in os.environ for name in _OPENMP_WAIT_VARIABLES
            ):
                import pyfftw
            else:
                os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
                try:
                    import pyfftw
                finally:
                    del os.environ["OMP_WAIT_POLICY"]
            _module = pyfftw
    return _module
