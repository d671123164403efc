"""convkit backend "cuda": tiled CUDA kernels compiled by numba-cuda.

Importing this package does not import Numba; the backend does on first use.
Under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) the backend is
available but marked simulated: usable by name (the tests do), never chosen
by "auto".
"""

from convkit_cuda._backend import CudaBackend
from convkit_cuda._streams import use_stream

__all__ = ["CudaBackend", "use_stream"]
