"""The README's commands and examples are the ones CI runs, and they work."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def test_ci_runs_the_readme_setup_and_test_commands():
    setup_and_test = _blocks("bash")[0].strip().splitlines()
    assert len(setup_and_test) == 2
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    for command in setup_and_test:
        assert command in ci, command
    assert "python3 -m venv" in "\n".join(ci)


def test_ci_runs_every_test_level_the_readme_lists():
    levels = _blocks("bash")[1].strip().splitlines()
    assert len(levels) >= 2 and all(
        "--run-slow" in level or "--convkit-full" in level for level in levels
    )
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    for command in levels:
        assert command in ci, command
    assert ci.index(levels[0]) > ci.index("python -m pytest")  # after the quick loop


def test_readme_python_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    blocks = _blocks("python")
    assert len(blocks) >= 4
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {"__name__": "readme"})  # noqa: S102 - our own README


DISTRIBUTIONS = [ROOT, *(ROOT / "backends" / engine for engine in ("numba", "fftw", "cuda"))]


def _pyproject(directory):
    tomllib = pytest.importorskip("tomllib")  # Python 3.11 and later

    return tomllib.loads((directory / "pyproject.toml").read_text())


def test_every_distribution_requires_a_setuptools_that_reads_its_license():
    # An SPDX expression in `license` is read by setuptools 77 and later; older ones reject it.
    for directory in DISTRIBUTIONS:
        project = _pyproject(directory)
        assert isinstance(project["project"]["license"], str), directory
        assert project["build-system"]["requires"] == ["setuptools>=77"], directory


def test_every_distribution_ships_py_typed():
    for directory in DISTRIBUTIONS:
        package_data = _pyproject(directory)["tool"]["setuptools"]["package-data"]
        ((package, files),) = package_data.items()
        source = directory / ("src" if directory != ROOT else "") / package.replace(".", "/")
        assert files == ["py.typed"] and (source / "py.typed").is_file(), directory
