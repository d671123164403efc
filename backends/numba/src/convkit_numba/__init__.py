"""convkit backend "numba": parallel CPU kernels compiled by Numba.

Importing this package does not import Numba; the backend does on first use.
"""

from convkit_numba._backend import NumbaBackend

__all__ = ["NumbaBackend"]
