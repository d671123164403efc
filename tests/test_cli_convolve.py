"""``python -m convkit convolve``: zarr and .npy files through Dask, written safely, clear errors."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import convkit

da = pytest.importorskip("dask.array")
zarr = pytest.importorskip("zarr")
pytest.importorskip("distributed")

from convkit import _files  # noqa: E402 - after the skips: the command needs dask and zarr

RNG = np.random.default_rng(14)
VOLUME = RNG.standard_normal((24, 20, 18)).astype(np.float32)
KERNEL = RNG.standard_normal((3, 5, 4)).astype(np.float32)


def run_cli(*arguments, cwd, timeout=240):
    """The command in a fresh process; a hang fails the test instead of stalling the run."""
    return subprocess.run(  # noqa: PLW1510 - callers assert the return code
        [sys.executable, "-m", "convkit", "convolve", *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def read(path):
    path = Path(path)
    return np.load(path) if path.suffix == ".npy" else zarr.open_array(str(path), mode="r")[...]


def leftovers(directory):
    """Hidden temporaries (``.NAME.partial-PID``, ``.NAME.old-PID``) the command left behind."""
    return sorted(name for name in os.listdir(directory) if name.startswith("."))


@pytest.fixture
def files(tmp_path):
    np.save(tmp_path / "volume.npy", VOLUME)
    np.save(tmp_path / "kernel.npy", KERNEL)
    for zarr_format in (2, 3):
        stored = zarr.create_array(
            str(tmp_path / f"volume{zarr_format}.zarr"),
            shape=VOLUME.shape,
            chunks=(10, 8, 7),  # uneven: the last chunk of every axis is shorter
            dtype=VOLUME.dtype,
            zarr_format=zarr_format,
        )
        stored[...] = VOLUME
    return tmp_path


@pytest.mark.parametrize(
    ("source", "target", "chunks"),
    [
        ("volume2.zarr", "out.zarr", None),
        ("volume3.zarr", "out.zarr", "6,5,4"),
        ("volume.npy", "out.npy", "8,8,8"),
        ("volume.npy", "out.zarr", "auto"),
        ("volume3.zarr", "out.npy", "3"),
    ],
)
def test_round_trip_equals_the_in_memory_call(files, source, target, chunks):
    extra = ["--chunks", chunks] if chunks else []
    done = run_cli(source, "kernel.npy", target, "--backend", "scipy", *extra, cwd=files)
    assert done.returncode == 0, done.stderr
    expected = convkit.convolve_nd(VOLUME, KERNEL, mode="same", backend="scipy")
    got = read(files / target)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    if target.endswith(".zarr"):  # OUTPUT keeps INPUT's zarr format; a .npy INPUT gives format 3
        written = zarr.open_array(str(files / target), mode="r").metadata.zarr_format
        assert written == (2 if source == "volume2.zarr" else 3)
    summary = done.stdout.strip()
    assert "\n" not in summary and "(24, 20, 18) float32" in summary and "(3, 5, 4)" in summary
    assert "scipy" in summary and "GB/s of input" in summary
    assert "%" in done.stderr  # the progress bar
    assert leftovers(files) == []


def test_options_reach_the_operation(files):
    kernel = KERNEL[:, :1]  # axis 1 is not convolved: the kernel broadcasts along it
    np.save(files / "narrow.npy", kernel)
    done = run_cli(
        "volume.npy", "narrow.npy", "out.npy", "--mode", "full", "--axes", "0,2",
        "--boundary", "wrap", "--correlate", "--chunks", "7,20,5", "--quiet", cwd=files,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # --quiet: no progress bar
    assert "correlate_nd" in done.stdout
    expected = convkit.correlate_nd(VOLUME, kernel, mode="full", axes=(0, 2), boundary="wrap")
    np.testing.assert_allclose(read(files / "out.npy"), expected, rtol=1e-5, atol=1e-5)


def test_fillvalue_and_nan_policy(files):
    volume = VOLUME.copy()
    volume[5, 5, 5] = np.nan
    np.save(files / "holes.npy", volume)
    done = run_cli(
        "holes.npy", "kernel.npy", "out.npy", "--fillvalue", "2.5", "--nan-policy", "fill",
        "--chunks", "9", "--quiet", cwd=files,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    expected = convkit.convolve_nd(volume, KERNEL, mode="same", fillvalue=2.5, nan_policy="fill")
    np.testing.assert_allclose(read(files / "out.npy"), expected, rtol=1e-5, atol=1e-4)


def test_two_worker_processes(files):
    done = run_cli(
        "volume3.zarr", "kernel.npy", "out.zarr", "--workers", "2", "--chunks", "12,10,9",
        cwd=files, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "2 worker processes" in done.stdout
    expected = convkit.convolve_nd(VOLUME, KERNEL, mode="same")
    np.testing.assert_allclose(read(files / "out.zarr"), expected, rtol=1e-5, atol=1e-5)
    assert leftovers(files) == []


@pytest.mark.parametrize("target", ["out.npy", "out.zarr"])
def test_existing_output_is_kept_unless_overwrite(files, target):
    first = run_cli("volume.npy", "kernel.npy", target, "--quiet", cwd=files)
    assert first.returncode == 0, first.stderr
    before = read(files / target)
    refused = run_cli("volume.npy", "kernel.npy", target, "--quiet", "--mode", "full", cwd=files)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        f"error: OUTPUT {target!r} exists; pass --overwrite to replace it "
        "(once the new one is complete), or choose another path"
    )
    np.testing.assert_array_equal(read(files / target), before)
    replaced = run_cli(
        "volume.npy", "kernel.npy", target, "--quiet", "--mode", "full", "--overwrite", cwd=files
    )
    assert replaced.returncode == 0, replaced.stderr
    assert read(files / target).shape == (26, 24, 21)
    assert leftovers(files) == []


def test_overwrite_replaces_only_an_output_of_the_same_kind(files):
    (files / "notes").mkdir()
    (files / "notes" / "keep.txt").write_text("mine")
    done = run_cli("volume.npy", "kernel.npy", "notes", "--overwrite", cwd=files)
    assert done.returncode == 2
    assert "exists and is not a zarr store" in done.stderr
    assert (files / "notes" / "keep.txt").read_text() == "mine"


def corrupt_one_chunk(store):
    """Garble one chunk file of a zarr store: reading it fails midway through the run."""
    chunk = next(
        path
        for path in sorted(Path(store).rglob("*"))
        if path.is_file() and path.name not in ("zarr.json", ".zarray", ".zattrs")
    )
    chunk.write_bytes(b"not a compressed chunk")


@pytest.mark.parametrize("target", ["out.npy", "out.zarr"])
def test_failure_while_computing_leaves_no_output(files, target):
    corrupt_one_chunk(files / "volume3.zarr")
    done = run_cli("volume3.zarr", "kernel.npy", target, "--quiet", cwd=files)
    assert done.returncode != 0
    assert not (files / target).exists()
    assert leftovers(files) == []
    # An existing OUTPUT survives a failed --overwrite untouched.
    np.save(files / "old.npy", VOLUME)
    done = run_cli("volume3.zarr", "kernel.npy", "old.npy", "--overwrite", "--quiet", cwd=files)
    assert done.returncode != 0
    np.testing.assert_array_equal(np.load(files / "old.npy"), VOLUME)
    assert leftovers(files) == []


@pytest.mark.parametrize("kind", ["npy", "zarr"])
def test_write_output_removes_the_temporary_on_failure(tmp_path, kind):
    def fail_on_one_block(block, block_info=None):
        if block_info[None]["chunk-location"] == (1, 1):
            raise RuntimeError("injected failure")
        return block

    array = da.ones((8, 8), chunks=4).map_blocks(fail_on_one_block, dtype=float)
    target = tmp_path / f"out.{kind}"
    with pytest.raises(RuntimeError, match="injected failure"):
        _files.write_output(array, target, kind, progress=False)
    assert os.listdir(tmp_path) == []


def test_write_output_stores_irregular_chunks_in_zarr(tmp_path):
    array = da.concatenate([da.ones((3, 4), chunks=3), 2 * da.ones((5, 4), chunks=5)])
    _files.write_output(array, tmp_path / "out.zarr", "zarr", progress=False)
    np.testing.assert_array_equal(read(tmp_path / "out.zarr"), array.compute())
    assert os.listdir(tmp_path) == ["out.zarr"]


def test_npy_input_travels_as_its_path(files):
    """A worker process reopens the .npy file: the graph holds its path, not its data."""
    import pickle

    array, _ = _files.open_input(files / "volume.npy", "8")
    assert len(pickle.dumps(dict(array.__dask_graph__()))) < VOLUME.nbytes / 4
    np.testing.assert_array_equal(array.compute(), VOLUME)


def error_cases(files):
    (files / "volume.tif").write_bytes(b"II*\x00")
    (files / "group.zarr").mkdir()
    zarr.open_group(str(files / "group3.zarr"), mode="w")
    np.save(files / "flat.npy", KERNEL[0])
    np.save(files / "dates.npy", np.zeros(3, "datetime64[s]").reshape(1, 1, 3))
    (files / "broken.npy").write_bytes(b"\x93NUMPY garbage")
    return [
        (["missing.npy", "kernel.npy", "o.npy"], "INPUT 'missing.npy': no such file or directory"),
        (["volume.npy", "missing.npy", "o.npy"], "KERNEL 'missing.npy': no such file or directory"),
        (
            ["volume.tif", "kernel.npy", "o.npy"],
            "expected a zarr store (a directory) or a .npy file",
        ),
        (["group.zarr", "kernel.npy", "o.npy"], "not a zarr array"),
        (["group3.zarr", "kernel.npy", "o.npy"], "a zarr group"),
        (["broken.npy", "kernel.npy", "o.npy"], "INPUT 'broken.npy': not a readable .npy file"),
        (["volume.npy", "volume2.zarr", "o.npy"], "KERNEL 'volume2.zarr': expected a .npy file"),
        (["volume.npy", "flat.npy", "o.npy"], "same dimensionality"),
        (["volume.npy", "dates.npy", "o.npy"], "datetime64"),
        (["volume.npy", "kernel.npy", "nowhere/o.npy"], "the directory 'nowhere' does not exist"),
        (["volume.npy", "kernel.npy", "o.npy", "--mode", "middle"], "mode"),
        (["volume.npy", "kernel.npy", "o.npy", "--boundary", "reflect"], "reflect"),
        (["volume.npy", "kernel.npy", "o.npy", "--nan-policy", "omit"], "nan_policy"),
        (["volume.npy", "kernel.npy", "o.npy", "--axes", "0,x"], "--axes: expected axis numbers"),
        (["volume.npy", "kernel.npy", "o.npy", "--axes", "0,5"], "axis 5 is out of range"),
        (
            ["volume.npy", "kernel.npy", "o.npy", "--chunks", "8,8"],
            "--chunks: expected 'auto' or 3",
        ),
        (["volume.npy", "kernel.npy", "o.npy", "--chunks", "0"], "--chunks: expected"),
        (["volume.npy", "kernel.npy", "o.npy", "--workers", "0"], "--workers: expected"),
        (["volume.npy", "kernel.npy", "o.npy", "--workers", "two"], "--workers: expected"),
        (["volume.npy", "kernel.npy", "o.npy", "--fillvalue", "lots"], "--fillvalue: expected"),
        (["volume.npy", "kernel.npy", "o.npy", "--backend", "nosuch"], "nosuch"),
    ]


def test_every_user_error_is_one_line_with_status_2(files, capsys, monkeypatch):
    from convkit._cli import main

    monkeypatch.chdir(files)
    for arguments, message in error_cases(files):
        assert main(["convolve", *arguments]) == 2, arguments
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (arguments, lines)
        assert message in lines[0], (arguments, lines[0])
        assert not (files / "o.npy").exists()
        assert leftovers(files) == []


def test_a_user_error_exits_2_without_a_traceback(files):
    done = run_cli("volume.npy", "kernel.npy", "o.npy", "--mode", "middle", cwd=files)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr
    assert done.stdout == ""


def test_the_command_line_imports_dask_only_when_convolving():
    script = (
        "import sys, convkit._cli\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed', 'zarr')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]", done.stdout


SLOW_WRITE = """
import sys, time
import dask.array as da
from convkit import _files

def slow(block):
    time.sleep(0.2)
    return block

array = da.ones((40, 40), chunks=4).map_blocks(slow, dtype=float)
workers = int(sys.argv[3]) if len(sys.argv) > 3 else None
_files.write_output(array, sys.argv[1], sys.argv[2], workers=workers, progress=False)
"""


@pytest.mark.parametrize(("kind", "workers"), [("npy", None), ("zarr", None), ("zarr", 2)])
def test_ctrl_c_while_writing_leaves_nothing(tmp_path, kind, workers):
    import signal
    import time

    target = tmp_path / f"out.{kind}"
    command = [sys.executable, "-c", SLOW_WRITE, str(target), kind]
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and script
        command + ([str(workers)] if workers else []), stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while not os.listdir(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert os.listdir(tmp_path), "the temporary never appeared"
        time.sleep(2 if workers else 0.5)  # some chunks are written
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
    finally:
        process.kill()
    assert process.returncode != 0, process.stderr.read()
    assert os.listdir(tmp_path) == []


def test_ctrl_c_in_the_command_exits_130_and_writes_nothing(files):
    import signal
    import time

    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "convkit", "convolve", "volume.npy", "kernel.npy", "out.zarr"]
        + ["--chunks", "2", "--backend", "scipy", "--quiet"],  # 1080 small tasks: seconds
        cwd=files,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not leftovers(files) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert leftovers(files), "the temporary never appeared"
        time.sleep(0.3)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert stderr.strip() == "interrupted: OUTPUT 'out.zarr' not written"
    assert stdout == "" and not (files / "out.zarr").exists() and leftovers(files) == []
