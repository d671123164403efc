"""What a user would pick instead of convkit: scipy.signal, PyTorch, PyTensor.

Each peer is optional: a missing package just drops its column.  Each peer
returns a callable with the same meaning as the workload's convkit call (true
convolution; the filter is flipped once, outside the timed call, for
cross-correlating libraries).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from workloads import Workload

Peer = Callable[[], np.ndarray]


# scipy.ndimage's name for each boundary; convolve2d's for those it has.
_NDIMAGE_MODES = {
    "fill": "constant",
    "wrap": "wrap",
    "symm": "reflect",
    "mirror": "mirror",
    "nearest": "nearest",
}
_CONVOLVE2D_BOUNDARIES = {"fill": "fill", "wrap": "wrap", "symm": "symm"}


def _boundary_peers(workload: Workload, first, second) -> dict[str, Peer]:
    """scipy.ndimage.convolve and, in 2-D, convolve2d: the peers that extend the signal.

    Only for "same" with odd kernels over every axis, where ndimage's centring is convkit's.
    """
    boundary = workload.params.get("boundary")
    if (
        workload.kind != "convolve_nd"
        or boundary is None
        or workload.params.get("mode") != "same"
        or workload.params.get("axes") is not None
        or any(k % 2 == 0 for k in second.shape)
    ):
        return {}
    import scipy.ndimage
    import scipy.signal

    mode = _NDIMAGE_MODES[boundary]
    peers = {"scipy.ndimage.convolve": lambda: scipy.ndimage.convolve(first, second, mode=mode)}
    if first.ndim == 2 and boundary in _CONVOLVE2D_BOUNDARIES:
        name = _CONVOLVE2D_BOUNDARIES[boundary]
        peers["scipy.convolve2d"] = lambda: scipy.signal.convolve2d(
            first, second, "same", boundary=name
        )
    return peers


def _scipy_peers(workload: Workload, first, second, threads: int) -> dict[str, Peer]:
    if workload.kind != "convolve_nd" and not _single_channel(workload):
        return {}
    if workload.params.get("boundary", "fill") != "fill":
        return _boundary_peers(workload, first, second)
    import scipy.fft
    import scipy.signal

    mode = workload.params.get("mode", "full") if workload.kind == "convolve_nd" else "valid"
    axes = workload.params.get("axes")
    if workload.kind == "conv":
        first, second = first[0, 0], second[0, 0]

    lift = (
        (lambda result: result[None, None]) if workload.kind == "conv" else (lambda result: result)
    )

    def with_workers(function):
        def call():
            with scipy.fft.set_workers(threads):
                return lift(function())

        return call

    peers = {
        **_boundary_peers(workload, first, second),
        "scipy.fftconvolve": with_workers(
            lambda: scipy.signal.fftconvolve(first, second, mode, axes=axes)
        ),
        "scipy.oaconvolve": with_workers(
            lambda: scipy.signal.oaconvolve(first, second, mode, axes=axes)
        ),
    }
    if axes is None:
        peers["scipy.convolve(auto)"] = with_workers(
            lambda: scipy.signal.convolve(first, second, mode)
        )
    return peers


def _single_channel(workload: Workload) -> bool:
    first, second = workload.shapes
    return (
        workload.kind == "conv"
        and first[:2] == (1, 1)
        and second[:2] == (1, 1)
        and not workload.params
    )


def _torch_padding(workload: Workload, kernel: tuple[int, ...]):
    """torch's ``padding`` for the workload's border mode, or None where torch has none."""
    border = workload.params.get("border_mode", "valid")
    if border == "half":
        return tuple(k // 2 for k in kernel)
    if border == "valid":
        return 0
    if isinstance(border, int):
        return border
    return None


def _torch_gradient_peers(workload: Workload, first, second) -> dict[str, Peer]:
    """torch's autograd backward of the same layer, for one operand.

    The graph (``y = conv(x, w)`` with only the differentiated operand
    requiring a gradient) is built once, outside the timing; each call runs
    ``torch.autograd.grad(y, that operand, output_grad, retain_graph=True)``,
    that is torch's backward-data or backward-weights kernel alone (oneDNN on
    CPU).  convkit's filters are flipped against torch's (``filter_flip``), so
    the filter gradient is flipped back, inside the timed call.
    """
    import torch
    from torch.nn import functional

    p = workload.params
    if workload.kind == "conv_grad_input":
        grad, filters = first, second
        input_shape, filter_shape = p["input_shape"], filters.shape
    else:
        data, grad = first, second
        input_shape, filter_shape = data.shape, p["filter_shape"]
    spatial = len(input_shape) - 2
    padding = _torch_padding(workload, tuple(filter_shape[2:]))
    if spatial not in (1, 2, 3) or padding is None:
        return {}
    flip = (Ellipsis,) + (slice(None, None, -1),) * spatial if p.get("filter_flip", True) else ()
    function = (functional.conv1d, functional.conv2d, functional.conv3d)[spatial - 1]
    options = {
        "stride": p.get("subsample", 1),
        "padding": padding,
        "groups": p.get("num_groups", 1),
    }
    output_grad = torch.from_numpy(np.ascontiguousarray(grad))
    if workload.kind == "conv_grad_input":
        x = torch.zeros(input_shape, dtype=output_grad.dtype, requires_grad=True)
        w = torch.from_numpy(filters[flip].copy())  # a copy: torch refuses negative strides
        y = function(x, w, **options)

        def input_gradient():
            (result,) = torch.autograd.grad(y, x, output_grad, retain_graph=True)
            return result.numpy()

        return {"torch autograd": input_gradient}
    x = torch.from_numpy(np.ascontiguousarray(data))
    w = torch.zeros(filter_shape, dtype=output_grad.dtype, requires_grad=True)
    y = function(x, w, **options)

    def filter_gradient():
        (result,) = torch.autograd.grad(y, w, output_grad, retain_graph=True)
        return result.numpy()[flip].copy()

    return {"torch autograd": filter_gradient}


def _torch_peers(workload: Workload, first, second, threads: int) -> dict[str, Peer]:
    try:
        import torch
        from torch.nn import functional
    except ImportError:
        return {}
    torch.set_num_threads(threads)
    if workload.forward is not None:
        return _torch_gradient_peers(workload, first, second)
    if workload.kind == "conv":
        spatial = first.ndim - 2
        if spatial not in (1, 2, 3):
            return {}
        p = workload.params
        kernel = second.shape[2:]
        padding = _torch_padding(workload, kernel)
        if padding is None:
            return {}
        x = torch.from_numpy(np.ascontiguousarray(first))
        w = torch.from_numpy(second[(Ellipsis,) + (slice(None, None, -1),) * spatial].copy())
        function = (functional.conv1d, functional.conv2d, functional.conv3d)[spatial - 1]
        stride, groups = p.get("subsample", 1), p.get("num_groups", 1)

        def call():
            with torch.no_grad():
                return function(x, w, stride=stride, padding=padding, groups=groups).numpy()

        return {"torch.conv": call}
    mode, axes = workload.params.get("mode", "full"), workload.params.get("axes")
    if workload.params.get("boundary", "fill") != "fill":
        return {}  # torch's padding modes are not all of these; ndimage and convolve2d stand in
    # torch's CPU conv unfolds the input (kernel size x outputs elements): skip it where that
    # buffer alone would not fit in memory, rather than let it try.
    unfolded = (
        second.size * workload.problem().multiply_adds // max(second.size, 1) * first.itemsize
    )
    if unfolded > 8 * 2**30:
        return {}
    if first.ndim == 2 and axes is None and mode in ("full", "same"):
        x = torch.from_numpy(first)[None, None]
        w = torch.from_numpy(second[::-1, ::-1].copy())[None, None]
        padding = tuple(k - 1 for k in second.shape) if mode == "full" else "same"

        def call2d():
            with torch.no_grad():
                return functional.conv2d(x, w, padding=padding)[0, 0].numpy()

        if mode == "same" and any(k % 2 == 0 for k in second.shape):
            return {}
        return {"torch.conv": call2d}
    if first.ndim == 2 and axes in (-1, 1) and second.shape[0] == 1 and mode == "full":
        x = torch.from_numpy(first)[:, None]
        w = torch.from_numpy(second[:, ::-1].copy())[None]

        def call1d():
            with torch.no_grad():
                return functional.conv1d(x, w, padding=second.shape[1] - 1)[:, 0].numpy()

        return {"torch.conv": call1d}
    return {}


def _pytensor_peers(workload: Workload, first, second, threads: int) -> dict[str, Peer]:
    """PyTensor 2.36 has no CNN conv2d (nnet was removed); its signal.convolve2d is the peer."""
    if workload.kind != "convolve_nd" or first.ndim != 2 or workload.params.get("axes") is not None:
        return {}
    try:
        import pytensor
        import pytensor.tensor as pt
        from pytensor.tensor.signal import convolve2d
    except ImportError:
        return {}
    mode = workload.params.get("mode", "full")
    if mode == "same" or workload.params.get("boundary", "fill") != "fill":
        return {}
    a, b = pt.matrix(dtype=workload.dtype), pt.matrix(dtype=workload.dtype)
    function = pytensor.function([a, b], convolve2d(a, b, mode=mode))
    return {"pytensor.convolve2d": lambda: function(first, second)}


def _missing_data_peers(workload: Workload, first, second) -> dict[str, Peer]:
    """For a signal with NaN, "same" with zero fill and odd kernels: with "propagate", the
    direct methods, whose NaN stay local (an FFT spreads them over the whole result); with
    "interpolate", the same two scipy.ndimage convolutions written by hand, and
    astropy.convolution where installed (divided by the kernel's sum, which it multiplies
    back with normalize_kernel=False)."""
    if workload.params.get("nan_policy", "propagate") == "propagate":
        import scipy.ndimage
        import scipy.signal

        peers = {
            "scipy.ndimage.convolve": lambda: scipy.ndimage.convolve(first, second, mode="constant")
        }
        if first.ndim == 2:
            peers["scipy.convolve2d"] = lambda: scipy.signal.convolve2d(first, second, "same")
        return peers
    import scipy.ndimage

    def by_hand():
        finite = np.isfinite(first)
        values = scipy.ndimage.convolve(np.where(finite, first, 0), second, mode="constant")
        weights = scipy.ndimage.convolve(
            finite.astype(first.dtype), second, mode="constant", cval=1.0
        )
        return values / weights

    peers = {"scipy.ndimage normalized": by_hand}
    try:
        from astropy.convolution import convolve, convolve_fft
    except ImportError:
        return peers
    options = {"nan_treatment": "interpolate", "normalize_kernel": False, "boundary": "fill"}
    total = second.sum(dtype=np.float64)
    peers["astropy.convolve"] = lambda: convolve(first, second, fill_value=0.0, **options) / total
    peers["astropy.convolve_fft"] = lambda: convolve_fft(first, second, **options) / total
    return peers


def peers_for(workload: Workload, first, second, threads: int) -> dict[str, Peer]:
    """Every installed peer that computes this workload."""
    if workload.missing:
        return _missing_data_peers(workload, first, second)
    found: dict[str, Peer] = {}
    for factory in (_scipy_peers, _torch_peers, _pytensor_peers):
        found.update(factory(workload, first, second, threads))
    return found
