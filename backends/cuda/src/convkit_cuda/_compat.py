"""numba-cuda's kernel compiler on NumPy releases newer than it knows.

numba-cuda (up to 0.30.4 at least) registers an overload for ``np.row_stack``
when its compiler's array module is first imported, at the first kernel
compilation.  NumPy 2.5 removed that alias of ``np.vstack``, so there every
compilation fails with ``AttributeError: module 'numpy' has no attribute
'row_stack'`` (seen on a GPU machine with numpy 2.5.2 and numba-cuda 0.30.4).
The alias is put back only while that one module is imported, then removed
again, so nothing else in the process ever sees it.
"""

from __future__ import annotations

import importlib
from functools import cache

import numpy as np

__all__ = ["prepare_compiler"]

_REMOVED_ALIASES = {"row_stack": np.vstack}
_COMPILER_MODULE = "numba.cuda.np.arrayobj"


@cache
def prepare_compiler() -> None:
    """Import numba-cuda's array compiler module with the NumPy aliases it expects."""
    missing = [name for name in _REMOVED_ALIASES if not hasattr(np, name)]
    if not missing:
        return
    for name in missing:
        setattr(np, name, _REMOVED_ALIASES[name])
    try:
        importlib.import_module(_COMPILER_MODULE)
    finally:
        for name in missing:
            delattr(np, name)
