"""convkit: one convolution API over interchangeable engines.

Two operations, each with exact semantics, on every backend:

- :func:`convolve_nd`: N-d convolution, as ``scipy.signal.fftconvolve``
  (with NaN and inf kept local), and :func:`correlate_nd`, as
  ``scipy.signal.correlate``;
- :func:`conv` / :func:`conv1d` / :func:`conv2d` / :func:`conv3d`: CNN-layer
  convolution, as Theano's / PyTensor's ``conv2d``, with its gradients
  :func:`conv_grad_input` and :func:`conv_grad_filters` and the transposed
  convolution :func:`conv_transpose`.

Backends are plugins (entry-point group ``convkit.backends``), loaded on
first use; ``import convkit`` imports none of them.
"""

from convkit._api import conv, conv1d, conv2d, conv3d, convolve_nd, correlate_nd
from convkit._auto import get_autotune, load_autotune, save_autotune, set_autotune
from convkit._config import get_memory_limit, get_num_threads, set_memory_limit, set_num_threads
from convkit._discovery import BackendInfo, list_backends, register_backend, unregister_backend
from convkit._errors import (
    BackendError,
    BackendResultError,
    BackendUnavailableError,
    UnknownBackendError,
    WorkingSetTooLargeError,
)
from convkit._explain import Explanation, explain
from convkit._gradients import conv_grad_filters, conv_grad_input, conv_transpose
from convkit._selection import set_backend, use_backend

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "BackendInfo",
    "BackendResultError",
    "BackendUnavailableError",
    "Explanation",
    "UnknownBackendError",
    "WorkingSetTooLargeError",
    "conv",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_grad_filters",
    "conv_grad_input",
    "conv_transpose",
    "convolve_nd",
    "correlate_nd",
    "explain",
    "get_autotune",
    "get_memory_limit",
    "get_num_threads",
    "list_backends",
    "load_autotune",
    "register_backend",
    "save_autotune",
    "set_autotune",
    "set_backend",
    "set_memory_limit",
    "set_num_threads",
    "unregister_backend",
    "use_backend",
]
