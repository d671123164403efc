"""Tools to test convkit backends: the direct-definition oracle.

``convkit.testing`` is imported by tests only; ``import convkit`` does not
import it.
"""

from convkit.testing._direct import direct_conv, direct_convolve_nd

__all__ = ["direct_conv", "direct_convolve_nd"]
