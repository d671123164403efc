"""``python -m convkit`` info, demo, check and warmup; the seed comparison's numbers."""

import subprocess
import sys

import numpy as np
import scipy.signal

import convkit

# The seed comparison: image = arange(25).reshape(5, 5), kernel = arange(9).reshape(3, 3).
# Theano's conv2d and scipy's fftconvolve print these (true convolution, integer valued).
SEED_FULL = np.array(
    [
        [0, 0, 1, 4, 7, 10, 8],
        [0, 8, 26, 41, 56, 56, 38],
        [15, 54, 120, 156, 192, 168, 105],
        [60, 159, 300, 336, 372, 303, 180],
        [105, 264, 480, 516, 552, 438, 255],
        [150, 344, 584, 617, 650, 488, 272],
        [120, 266, 439, 460, 481, 352, 192],
    ]
)
SEED_VALID = np.array([[120, 156, 192], [300, 336, 372], [480, 516, 552]])


def test_seed_numbers_are_the_true_convolution():
    image, kernel = np.arange(25).reshape(5, 5), np.arange(9).reshape(3, 3)
    np.testing.assert_array_equal(scipy.signal.convolve2d(image, kernel, "full"), SEED_FULL)
    np.testing.assert_array_equal(scipy.signal.convolve2d(image, kernel, "valid"), SEED_VALID)


def test_seed_comparison_values():
    image, kernel = np.arange(25.0).reshape(5, 5), np.arange(9.0).reshape(3, 3)
    np.testing.assert_allclose(
        convkit.conv2d(image[None, None], kernel[None, None], "full")[0, 0], SEED_FULL, atol=1e-9
    )
    np.testing.assert_allclose(convkit.convolve_nd(image, kernel, "full"), SEED_FULL, atol=1e-9)
    np.testing.assert_allclose(
        convkit.conv2d(image[None, None], kernel[None, None])[0, 0], SEED_VALID, atol=1e-9
    )
    np.testing.assert_allclose(convkit.convolve_nd(image, kernel, "valid"), SEED_VALID, atol=1e-9)
    batch, filters = np.arange(150.0).reshape(2, 3, 5, 5), np.arange(27.0).reshape(1, 3, 3, 3)
    assert convkit.conv2d(batch, filters, "full").shape == (2, 1, 7, 7)
    assert convkit.convolve_nd(batch, filters, "full").shape == (2, 5, 7, 7)


def run_cli(*arguments):
    done = subprocess.run(  # noqa: PLW1510 - the return code is asserted
        [sys.executable, "-m", "convkit", *arguments], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_info_lists_scipy():
    output = run_cli("info")
    assert "backend" in output and "available" in output
    scipy_row = next(line for line in output.splitlines() if line.startswith("scipy "))
    assert "yes" in scipy_row and "conv,convolve_nd" in scipy_row


def test_demo_prints_the_seed_comparison():
    output = run_cli("demo", "--backend", "scipy")
    assert "[ 15.  54. 120. 156. 192. 168. 105.]" in output
    assert "[[120. 156. 192.]" in output
    assert output.count("equal: True") == 2
    assert "conv2d(x, w, 'full').shape      = (2, 1, 7, 7)" in output
    assert "convolve_nd(x, w, 'full').shape = (2, 5, 7, 7)" in output
    assert (
        "conv2d: input has 3 channels but filters expect 1 (filters shape (1, 1, 3, 3), num_groups=1); "
        "with num_groups=g, filters.shape[1] must equal channels / g"
    ) in output
    assert "filters[None, None]" in output
    assert "(2, 3, 7, 7): True" in output
    assert "False" not in output


def test_demo_shows_the_comparison_once_then_one_agreement_row_per_backend():
    output = run_cli("demo")
    available = [info.name for info in convkit.list_backends() if info.available]
    assert output.count("equal: True") == 2 and output.count("1. One image, one filter") == 1
    rows = {
        line.split()[0]: line.split()[1:]
        for line in output.splitlines()
        if line.split() and line.split()[0] in available
    }
    assert set(rows) == set(available)
    for name, cells in rows.items():
        assert cells and all(cell in ("ok", "n/a") or cell.startswith("[") for cell in cells), name
    assert "DIFFERS" not in output and "False" not in output
    assert len(output.splitlines()) < 70


def test_demo_with_unknown_backend_fails_cleanly():
    done = subprocess.run(  # noqa: PLW1510 - the return code is asserted
        [sys.executable, "-m", "convkit", "demo", "--backend", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "unknown convkit backend 'nope'" in done.stderr
    assert "Traceback" not in done.stderr


def test_check_auto_checks_the_backend_auto_picks_per_case(monkeypatch, capsys):
    import convkit.testing
    from convkit._cli import main

    cases = convkit.testing.generate_cases("small")[:12]
    monkeypatch.setattr(convkit.testing, "generate_cases", lambda level: cases)
    assert main(["check", "auto", "--small", "--worst", "0"]) == 0
    output = capsys.readouterr().out
    assert "backend 'auto', 12 cases" in output and "12 passed, 0 failed" in output
    picked = output.strip().splitlines()[-1]
    assert picked.startswith("auto picked, per case: ")
    counts = [int(part.split()[-1]) for part in picked.split(": ", 1)[1].split(", ")]
    assert sum(counts) <= 12


def test_check_full_and_small_together_are_refused():
    done = subprocess.run(
        [sys.executable, "-m", "convkit", "check", "scipy", "--full", "--small"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--small: not allowed with argument --full" in done.stderr


def test_warmup_shows_progress_on_stderr_and_a_summary():
    done = subprocess.run(
        [sys.executable, "-m", "convkit", "warmup", "--backend", "scipy", "--dtype", "float32"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    from convkit._cli import WARMUP_CALLS

    steps = done.stderr.strip().splitlines()  # not a terminal: one line per step, no redrawing
    assert len(steps) == len(WARMUP_CALLS) and "\r" not in done.stderr
    assert steps[-1].startswith(
        "[" + "#" * 30 + f"] {len(WARMUP_CALLS)}/{len(WARMUP_CALLS)} scipy float32: "
    )
    assert done.stdout.startswith("scipy: float32 warmed in ")


def test_warmup_refuses_an_unknown_backend_cleanly():
    done = subprocess.run(
        [sys.executable, "-m", "convkit", "warmup", "--backend", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (
        done.returncode == 2
        and "warmup --backend 'nope': unknown; installed backends:" in done.stderr
    )
    assert "Traceback" not in done.stderr
