"""The benchmark harness runs end to end on tiny sizes (speed itself is never asserted)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import convkit

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quick_bench_writes_checked_results(tmp_path):
    done = subprocess.run(  # noqa: PLW1510 - the return code is asserted
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "results.json").read_text())
    assert report["sgemm_gflops"] > 0 and len(report["workloads"]) >= 13
    installed = [
        info.name for info in convkit.list_backends() if info.available and not info.simulated
    ]
    for entry in report["workloads"]:
        rows = {row["implementation"]: row for row in entry["rows"]}
        assert all(rows[f"convkit[{name}]"]["ok"] for name in installed), entry["workload"]
        assert all(row.get("ok", True) for row in entry["rows"]), entry
        if (
            entry["kind"] == "convolve_nd"
        ):  # scipy.signal is always there; torch and PyTensor may not be
            assert any(row["kind"] == "peer" for row in entry["rows"]), entry["workload"]
    table = (tmp_path / "results.md").read_text()
    assert "| implementation | median ms | GFLOP/s | % sgemm | x best peer |" in table


@pytest.mark.slow
def test_gpu_bench_harness_runs_on_the_cuda_simulator(tmp_path):
    pytest.importorskip("convkit_cuda")
    environment = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    done = subprocess.run(  # noqa: PLW1510 - the return code is asserted
        [
            sys.executable,
            str(ROOT / "bench" / "gpu.py"),
            "--quick",
            "--only",
            "G3",
            "--only",
            "G2 conv f64",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=environment,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "results.json").read_text())
    assert [entry["workload"][:2] for entry in report["workloads"]] == ["G3", "G2"]
    for entry in report["workloads"]:
        rows = {row["implementation"]: row for row in entry["rows"]}
        for label in ("convkit[cuda] device", "convkit[cuda] host"):
            assert rows[label]["ok"] and rows[label]["checked_against"] == "scipy", entry


def test_gpu_profile_says_what_it_needs_where_the_gpu_libraries_are_missing():
    pytest.importorskip("convkit_cuda")
    try:
        import cupy  # noqa: F401
        import torch  # noqa: F401

        pytest.skip("CuPy and PyTorch are installed: the profile would run")
    except ImportError:
        pass
    done = subprocess.run(  # noqa: PLW1510 - the return code is asserted
        [sys.executable, str(ROOT / "bench" / "gpu_profile.py")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2 and "needs a GPU with CuPy and PyTorch" in done.stderr


@pytest.mark.slow  # with CUDA's compilers installed (torch's CUDA wheels bring them) it compiles
def test_cuda_kernel_report_says_what_it_needs_when_the_compilers_are_missing():
    pytest.importorskip("convkit_cuda")
    environment = {key: value for key, value in os.environ.items() if key != "NUMBA_ENABLE_CUDASIM"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "cuda_kernels.py")],
        capture_output=True,
        text=True,
        timeout=900,
        env=environment,
        check=False,
    )
    if done.returncode == 0:  # CUDA's compilers are installed: the report ran
        assert "registers" in done.stdout
        return
    assert done.returncode == 2, done.stderr[-3000:]
    assert "needs CUDA's compiler libraries (NVVM and NVRTC; no GPU)" in done.stderr
    assert 'pip install "numba-cuda[cu13]"' in done.stderr and "Traceback" not in done.stderr


def test_boundary_rows_race_only_peers_that_extend_the_signal_the_same_way(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import numpy as np
    from peers import peers_for
    from workloads import FULL, quick

    rows = [w for w in FULL if w.params.get("boundary", "fill") != "fill"]
    assert {w.params["boundary"] for w in rows} >= {"symm", "wrap", "nearest"}
    for workload in rows:
        small = quick(workload)
        first, second = small.arrays()
        peers = peers_for(small, first, second, 1)
        expected = {"scipy.ndimage.convolve"} | ({"scipy.convolve2d"} if first.ndim == 2 else set())
        assert set(peers) == expected, workload.name
        ours = small.call(convkit, first, second, "scipy")
        for name, call in peers.items():
            np.testing.assert_allclose(call(), ours, rtol=1e-4, atol=1e-4, err_msg=name)


def test_missing_data_rows_race_peers_that_treat_nan_the_same_way(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import numpy as np
    from peers import peers_for
    from workloads import FULL, quick

    rows = [w for w in FULL if w.missing]
    assert {w.params["nan_policy"] for w in rows} == {"propagate", "interpolate"}
    for workload in rows:
        small = quick(workload)
        first, second = small.arrays()
        assert 0 < np.isnan(first).sum() < first.size // 10
        ours = small.call(convkit, first, second, "scipy")
        peers = peers_for(small, first, second, 1)
        assert "scipy.ndimage.convolve" in peers or "scipy.ndimage normalized" in peers
        for name, call in peers.items():
            np.testing.assert_allclose(call(), ours, rtol=1e-4, atol=1e-4, err_msg=name)


def test_gradient_rows_race_torch_backward_and_the_lowered_path(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import numpy as np
    from peers import peers_for
    from run import hiding_gradients
    from workloads import FULL, quick

    from convkit.plugin import resolve_backend

    rows = [w for w in FULL if w.forward is not None]
    assert sorted(w.name.split()[:2] for w in rows) == sorted(
        [kind, layer]
        for kind in ("grad_filters", "grad_input")
        for layer in ("C2", "C3", "C4", "C5")
    )
    numba = "numba" in {info.name for info in convkit.list_backends() if info.available}
    for workload in rows:
        small = quick(workload)
        first, second = small.arrays()
        ours = small.call(convkit, first, second, "scipy")
        for name, call in peers_for(small, first, second, 1).items():
            np.testing.assert_allclose(call(), ours, rtol=1e-4, atol=1e-4, err_msg=name)
        if numba:
            engine = resolve_backend("numba")
            native = getattr(type(engine), small.kind)
            called = []
            monkeypatch.setattr(
                type(engine), small.kind, lambda self, p: called.append(p) or native(self, p)
            )
            lowered = hiding_gradients("numba", lambda: small.call(convkit, first, second, "numba"))
            np.testing.assert_allclose(lowered(), ours, rtol=1e-4, atol=1e-4)
            assert not called and engine.capabilities.operations is None
            monkeypatch.undo()
            monkeypatch.syspath_prepend(str(ROOT / "bench"))


@pytest.mark.slow
def test_dask_out_of_core_bench_runs_on_a_tiny_volume(tmp_path):
    for module in ("dask.distributed", "zarr", "dask_image", "psutil"):
        pytest.importorskip(module)
    out = tmp_path / "dask.md"
    done = subprocess.run(  # noqa: PLW1510 - the return code is asserted
        [
            sys.executable,
            str(ROOT / "bench" / "dask_out_of_core.py"),
            *("--size", "48", "--chunks", "16", "--fit-size", "32", "--repeats", "1"),
            *("--workdir", str(tmp_path / "stores"), "--out", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.with_suffix(".json").read_text())
    rows = report["out_of_core"]["rows"]
    assert set(rows) == {"convkit", "dask_image"}
    for row in rows.values():
        # the caller and two workers at least, each with a Python interpreter's memory
        assert row["ok"] and row["processes"] >= 3 and row["peak_rss_bytes"] > 3 * 2**20
    assert all(row["ok"] for row in report["fits_in_memory"]["rows"].values())
    assert "convkit / dask_image" in out.read_text()
    assert not (tmp_path / "stores").exists()
