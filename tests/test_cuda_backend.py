"""The cuda backend: honest availability, and the matrix on Numba's CUDA simulator.

A real GPU is not needed: CI runs the small conformance matrix under the simulator
(``NUMBA_ENABLE_CUDASIM=1``), where the backend is available but marked simulated.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("convkit_cuda")

SIMULATOR = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
NO_SIMULATOR = {key: value for key, value in os.environ.items() if key != "NUMBA_ENABLE_CUDASIM"}

DESCRIBE = textwrap.dedent("""\
    import json, numpy as np, convkit
    from convkit._registry import select_backend
    from convkit.plugin import normalize_conv
    info = {b.name: b for b in convkit.list_backends()}["cuda"]
    problem = normalize_conv(np.ones((1, 1, 6, 6)), np.ones((1, 1, 3, 3)), "valid", 1, True, 1, 1, None, "conv2d")
    print(json.dumps({"available": info.available, "reason": info.reason, "simulated": info.simulated,
                      "device": info.device, "auto": select_backend(problem, None).name}))
""")


def _describe(environment):
    done = subprocess.run([sys.executable, "-c", DESCRIBE], capture_output=True, text=True,
                          env=environment, check=False, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_without_a_gpu_the_backend_is_unavailable_with_the_reason():
    described = _describe(NO_SIMULATOR)
    if described["available"]:
        pytest.skip(f"a GPU is present: {described['device']}")
    assert "GPU" in described["reason"] or "CUDA" in described["reason"]
    assert described["auto"] != "cuda"


def test_on_the_simulator_the_backend_is_available_simulated_and_never_auto():
    described = _describe(SIMULATOR)
    assert described["available"] and described["simulated"]
    assert "simulator" in described["device"].lower()
    assert described["auto"] != "cuda"


def test_small_matrix_passes_on_the_simulator():
    done = subprocess.run([sys.executable, "-m", "convkit", "check", "cuda", "--small"],
                          capture_output=True, text=True, env=SIMULATOR, check=False, timeout=3000)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " 0 failed" in done.stdout.splitlines()[-1]


DEVICE_ARRAYS = textwrap.dedent("""\
    import numpy as np, pytest, convkit, convkit_cuda
    from numba import cuda
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 4, 7, 6)), rng.standard_normal((4, 2, 3, 2))
    dx, dw = cuda.to_device(x), cuda.to_device(w)
    for flip in (True, False):
        got = convkit.conv2d(dx, dw, border_mode="half", subsample=(1, 2), filter_flip=flip,
                             num_groups=2, backend="cuda")
        expected = convkit.conv2d(x, w, border_mode="half", subsample=(1, 2), filter_flip=flip,
                                  num_groups=2, backend="scipy")
        assert type(got) is type(dx) and got.shape == expected.shape  # stays on the device
        assert np.allclose(got.copy_to_host(), expected, atol=1e-12)
    assert np.array_equal(dx.copy_to_host(), x) and np.array_equal(dw.copy_to_host(), w)
    a, b = rng.standard_normal((3, 20)), rng.standard_normal((1, 30))
    for mode in ("full", "same", "valid"):
        got = convkit.convolve_nd(cuda.to_device(a), cuda.to_device(b), mode, axes=1, backend="cuda")
        expected = convkit.convolve_nd(a, b, mode, axes=1, backend="scipy")
        assert type(got) is type(dx) and np.allclose(got.copy_to_host(), expected, atol=1e-12)
    with convkit_cuda.use_stream(cuda.stream()):
        assert np.allclose(convkit.convolve_nd(a, b, backend="cuda"), convkit.convolve_nd(a, b, backend="scipy"))
    with pytest.raises(TypeError, match="input is a device .GPU. array but filters is not"):
        convkit.conv2d(dx, w, backend="cuda")
    with pytest.raises(TypeError, match="does not cast device arrays"):
        convkit.conv2d(cuda.to_device(x.astype(np.float32)), dw, num_groups=2, backend="cuda")
    with pytest.raises(TypeError, match="non-contiguous device array"):
        convkit.convolve_nd(cuda.to_device(np.asfortranarray(rng.standard_normal((5, 6)))),
                            cuda.to_device(np.ones((2, 2))), backend="cuda")
    with pytest.raises(ValueError, match="empty or 0-d device array"):
        convkit.convolve_nd(cuda.to_device(np.ones((0, 3))), cuda.to_device(np.ones((1, 3))), backend="cuda")
    with pytest.raises(convkit.BackendUnavailableError, match="does not take device .GPU. arrays"):
        convkit.conv2d(dx, dw, num_groups=2, backend="numba")
    with pytest.raises(convkit.BackendUnavailableError, match="auto never picks it"):
        convkit.conv2d(dx, dw, num_groups=2)
    with pytest.raises(TypeError, match="expected a CUDA stream"):
        with convkit_cuda.use_stream(None):
            pass
    print("ok")
""")


def test_device_arrays_stay_on_the_device_on_the_simulator():
    done = subprocess.run([sys.executable, "-c", DEVICE_ARRAYS], capture_output=True, text=True,
                          env=SIMULATOR, check=False, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "ok"
