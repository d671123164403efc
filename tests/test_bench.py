"""The benchmark harness runs end to end on tiny sizes (speed itself is never asserted)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_bench_writes_checked_results(tmp_path):
    done = subprocess.run(  # noqa: PLW1510 - the return code is asserted
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "results.json").read_text())
    assert report["sgemm_gflops"] > 0 and len(report["workloads"]) >= 13
    for entry in report["workloads"]:
        rows = {row["implementation"]: row for row in entry["rows"]}
        assert rows["convkit[scipy]"]["ok"] and rows["convkit[numba]"]["ok"], entry["workload"]
        assert all(row.get("ok", True) for row in entry["rows"]), entry
        if entry["kind"] == "convolve_nd":  # scipy.signal is always there; torch and PyTensor may not be
            assert any(row["kind"] == "peer" for row in entry["rows"]), entry["workload"]
    table = (tmp_path / "results.md").read_text()
    assert "| implementation | median ms | GFLOP/s | % sgemm | x best peer |" in table
