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
