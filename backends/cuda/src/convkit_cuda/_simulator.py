"""Whether Numba runs CUDA code on its simulator (``NUMBA_ENABLE_CUDASIM=1``)."""

from __future__ import annotations

__all__ = ["simulated"]


def simulated() -> bool:
    """True under Numba's CUDA simulator (imports Numba's config, not its CUDA driver)."""
    from numba import config

    return bool(getattr(config, "ENABLE_CUDASIM", False))
