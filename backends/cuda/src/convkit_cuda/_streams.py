"""Which CUDA stream a call runs on.

- Inside ``with convkit_cuda.use_stream(stream)``: that stream (a Numba
  stream, a CuPy stream, or a raw ``cudaStream_t`` handle as an int).
- Otherwise, device (GPU) operands run on their framework's current stream
  (CuPy's, PyTorch's), else on Numba's default stream, and the call returns
  without waiting, as GPU libraries do.
- NumPy operands get a private stream, and the call waits for the result.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

from convkit.plugin import Problem

__all__ = ["stream_for", "use_stream"]

_chosen: contextvars.ContextVar[object | None] = contextvars.ContextVar(
    "convkit_cuda_stream", default=None
)


@contextmanager
def use_stream(stream: object) -> Iterator[None]:
    """Run the "cuda" backend's calls in this context on ``stream``.

    Parameters
    ----------
    stream : numba.cuda stream, cupy.cuda.Stream, or int
        The stream; a CuPy stream or a raw handle is wrapped with
        ``numba.cuda.external_stream``.  Context-local, like
        ``convkit.use_backend``.
    """
    if stream is None or isinstance(stream, bool):
        raise TypeError(f"use_stream: expected a CUDA stream, got {stream!r}")
    token = _chosen.set(stream)
    try:
        yield
    finally:
        _chosen.reset(token)


def _as_numba_stream(stream: object):
    from numba import cuda

    pointer = getattr(stream, "ptr", stream)  # CuPy streams carry their handle as .ptr
    if pointer is stream and hasattr(stream, "synchronize"):
        return stream  # already a Numba stream
    if not isinstance(pointer, int):
        raise TypeError(
            f"use_stream: expected a Numba or CuPy stream or an int handle, got {stream!r}"
        )
    return cuda.external_stream(pointer)


def stream_for(problem: Problem) -> tuple[object, bool]:
    """``(stream, wait)``: the stream to run on and whether to wait for it before returning."""
    from numba import cuda

    chosen = _chosen.get()
    if chosen is not None:
        return _as_numba_stream(chosen), not problem.on_device
    if not problem.on_device:
        return cuda.stream(), True
    template = problem.operands[0]
    package = type(template).__module__.partition(".")[0]
    if package == "cupy":
        import cupy

        return cuda.external_stream(cupy.cuda.get_current_stream().ptr), False
    if package == "torch":
        import torch

        return cuda.external_stream(torch.cuda.current_stream(template.device).cuda_stream), False
    return cuda.default_stream(), False
