"""The third-party example plugin is discovered, selected and passes the matrix.

The example distribution is exposed the way an installed one is: a
``*.dist-info`` folder (written from the example's own pyproject.toml) and its
source folder on the import path.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tomllib

import convkit
from convkit import _discovery
from convkit.testing import check_backend, generate_cases

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "convkit-plugin-example"


def _expose(site: Path) -> None:
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    dist_info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    lines = []
    for group, entries in project["entry-points"].items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {target}" for name, target in entries.items()]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    # What an installed wheel records: which import packages the distribution ships.
    packages = sorted(
        path.name for path in (EXAMPLE / "src").iterdir() if (path / "__init__.py").exists()
    )
    (dist_info / "top_level.txt").write_text("\n".join(packages) + "\n")


@pytest.fixture
def example_installed(tmp_path, monkeypatch):
    _expose(tmp_path)
    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))
    monkeypatch.syspath_prepend(str(tmp_path))
    _discovery._registry.forget_discovery()
    yield {"PYTHONPATH": os.pathsep.join([str(tmp_path), str(EXAMPLE / "src")])}
    monkeypatch.undo()
    _discovery._registry.forget_discovery()
    sys.modules.pop("convkit_plugin_example", None)


def _run(arguments, extra_environment):
    environment = {k: v for k, v in os.environ.items() if k != "CONVKIT_BACKEND"}
    environment.update(extra_environment)
    return subprocess.run(
        [sys.executable, *arguments],
        capture_output=True,
        text=True,
        check=False,
        env=environment,
        timeout=600,
    )


def test_discovered_and_selected_by_name(example_installed):
    info = {b.name: b for b in convkit.list_backends()}["numpy-example"]
    assert info.available and info.version == "0.1.0"
    assert "convkit-plugin-example 0.1.0" in info.origin
    x, w = np.random.default_rng(0).standard_normal((2, 3, 8, 8)), np.ones((4, 3, 3, 3))
    np.testing.assert_allclose(
        convkit.conv2d(x, w, "half", backend="numpy-example"),
        convkit.conv2d(x, w, "half", backend="scipy"),
        atol=1e-12,
    )


def test_selected_by_environment_variable(example_installed):
    script = (
        "import numpy, convkit, convkit_plugin_example as plugin\n"
        "calls = []\n"
        "original = plugin.NumpyBackend.convolve_nd\n"
        "plugin.NumpyBackend.convolve_nd = lambda self, p: calls.append(p) or original(self, p)\n"
        "print(convkit.convolve_nd(numpy.ones(4), numpy.ones(2)).round(9).tolist(), len(calls))\n"
    )
    done = _run(["-c", script], {**example_installed, "CONVKIT_BACKEND": "numpy-example"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[1.0, 2.0, 2.0, 2.0, 1.0] 1"
    done = _run(["-c", script], {**example_installed, "CONVKIT_BACKEND": "scipy"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(" 0"), done.stdout


def test_passes_the_matrix(example_installed):
    report = check_backend("numpy-example", generate_cases("fast"))
    assert report.ok, report.format()


@pytest.mark.slow
def test_check_command_and_pytest_entry(example_installed):
    done = _run(["-m", "convkit", "check", "numpy-example"], example_installed)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert " passed, 0 failed" in done.stdout.splitlines()[-1]
    done = _run(
        [
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--pyargs",
            "convkit.testing",
            "--convkit-backend",
            "numpy-example",
            "-x",
        ],
        example_installed,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert (
        " passed" in done.stdout.splitlines()[-1] and "failed" not in done.stdout.splitlines()[-1]
    )
