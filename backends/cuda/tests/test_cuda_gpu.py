"""The cuda backend on a real GPU: CuPy and PyTorch arrays, streams, larger problems.

Skipped where no GPU is present (CI, the simulator's tests cover the kernel
there); `bench/gpu_session.sh` runs them on a lent GPU.
"""

import os

import numpy as np
import pytest

import convkit

pytest.importorskip("convkit_cuda")


def _gpu_available() -> bool:
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return False
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:  # noqa: BLE001 - no driver: no GPU
        return False


pytestmark = pytest.mark.skipif(not _gpu_available(), reason="no CUDA GPU here")

RNG = np.random.default_rng(7)


def _case(dtype):
    x = RNG.standard_normal((4, 6, 33, 47)).astype(dtype)
    w = RNG.standard_normal((8, 3, 3, 5)).astype(dtype)
    arguments = {
        "border_mode": "half",
        "subsample": (1, 2),
        "filter_dilation": (2, 1),
        "num_groups": 2,
    }
    return x, w, arguments, convkit.conv2d(x, w, backend="scipy", **arguments)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cupy_in_cupy_out(dtype):
    cupy = pytest.importorskip("cupy")
    x, w, arguments, expected = _case(dtype)
    got = convkit.conv2d(cupy.asarray(x), cupy.asarray(w), backend="cuda", **arguments)
    assert isinstance(got, cupy.ndarray) and got.dtype == np.dtype(dtype)
    np.testing.assert_allclose(
        cupy.asnumpy(got),
        expected,
        rtol=1e-4 if dtype == "float32" else 1e-10,
        atol=1e-4 if dtype == "float32" else 1e-10,
    )


def test_torch_in_torch_out_on_the_current_stream():
    torch = pytest.importorskip("torch")
    x, w, arguments, expected = _case("float32")
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        tx, tw = torch.as_tensor(x, device="cuda"), torch.as_tensor(w, device="cuda")
        got = convkit.conv2d(tx, tw, backend="cuda", **arguments)
    stream.synchronize()
    assert isinstance(got, torch.Tensor) and got.is_cuda
    np.testing.assert_allclose(got.cpu().numpy(), expected, rtol=1e-4, atol=1e-4)


def test_use_stream_with_a_cupy_stream():
    cupy = pytest.importorskip("cupy")
    import convkit_cuda

    a, b = RNG.standard_normal((3, 5000)), RNG.standard_normal((1, 31))
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream, convkit_cuda.use_stream(stream):
        got = convkit.convolve_nd(cupy.asarray(a), cupy.asarray(b), "same", axes=1, backend="cuda")
    stream.synchronize()
    np.testing.assert_allclose(
        cupy.asnumpy(got),
        convkit.convolve_nd(a, b, "same", axes=1, backend="scipy"),
        rtol=1e-10,
        atol=1e-10,
    )


def test_numpy_in_numpy_out_and_the_inputs_untouched():
    x, w, arguments, expected = _case("float64")
    copies = x.copy(), w.copy()
    got = convkit.conv2d(x, w, backend="cuda", **arguments)
    assert isinstance(got, np.ndarray)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)
    assert np.array_equal(x, copies[0]) and np.array_equal(w, copies[1])


def test_a_layer_larger_than_one_grid_wave():
    """Many tasks and tiles (more blocks than the GPU runs at once), 8 filters per thread."""
    x = RNG.standard_normal((16, 32, 40, 72)).astype(np.float32)
    w = RNG.standard_normal((48, 32, 3, 3)).astype(np.float32)
    got = convkit.conv2d(x, w, border_mode="half", backend="cuda")
    expected = convkit.conv2d(
        x.astype(np.float64), w.astype(np.float64), border_mode="half", backend="scipy"
    )
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()


@pytest.mark.parametrize("operation", ["conv2d", "convolve_nd"])
def test_device_operands_cross_no_data_to_the_host(monkeypatch, operation):
    """Device arrays in: no byte comes back to the host, and only launch metadata (index
    tables far smaller than the operands) goes to the device."""
    cupy = pytest.importorskip("cupy")
    from numba.cuda.cudadrv import driver

    x = cupy.asarray(RNG.standard_normal((8, 16, 64, 64)).astype(np.float32))
    w = cupy.asarray(RNG.standard_normal((32, 16, 3, 3)).astype(np.float32))
    call = (
        (lambda: convkit.conv2d(x, w, border_mode="half", backend="cuda"))
        if operation == "conv2d"
        else (lambda: convkit.convolve_nd(x, w[:1, :1], "same", axes=(-2, -1), backend="cuda"))
    )
    call()  # compile first: the counts below are the steady state
    traffic = {"to_host": 0, "to_device": 0}
    to_host, to_device = driver.device_to_host, driver.host_to_device

    def counting_to_host(dst, src, size, stream=0):
        traffic["to_host"] += size
        return to_host(dst, src, size, stream)

    def counting_to_device(dst, src, size, stream=0):
        traffic["to_device"] += size
        return to_device(dst, src, size, stream)

    monkeypatch.setattr(driver, "device_to_host", counting_to_host)
    monkeypatch.setattr(driver, "host_to_device", counting_to_device)
    got = call()
    cupy.cuda.runtime.deviceSynchronize()
    assert isinstance(got, cupy.ndarray)
    print(f"{operation}: {traffic} bytes moved for {x.nbytes + w.nbytes} bytes of operands")
    assert traffic["to_host"] == 0
    assert traffic["to_device"] <= 0.01 * (x.nbytes + w.nbytes)
