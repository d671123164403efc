"""convkit backend "fftw": FFT convolution through pyFFTW.

Importing this package does not import pyFFTW; the backend does on first use.
Plans are cached per shape; :func:`set_planner_effort` chooses how hard FFTW
plans, and :func:`export_wisdom` / :func:`import_wisdom` keep what it learned
across processes.
"""

from convkit_fftw._backend import FftwBackend
from convkit_fftw._plans import (
    export_wisdom,
    get_planner_effort,
    import_wisdom,
    set_planner_effort,
)

__all__ = [
    "FftwBackend",
    "export_wisdom",
    "get_planner_effort",
    "import_wisdom",
    "set_planner_effort",
]
