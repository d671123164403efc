"""The docs in docs/ build without a warning; no project file cites an outside contract."""

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Built from pieces, so that this file does not cite what it looks for.
CONTRACT = "SP" + "EC"

needs_sphinx = pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in ("sphinx", "numpydoc", "myst_parser")),
    reason='needs the docs extra: python -m pip install -e ".[docs]"',
)


def _project_files():
    """Tracked files, and new ones git does not ignore."""
    try:
        listing = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the project's files are not known")
    return [ROOT / name for name in listing.decode().split("\0") if name]


def test_no_project_file_cites_the_planning_contract():
    pattern = re.compile(rf"\b{CONTRACT}\b")
    citing = []
    for path in _project_files():
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        citing += [
            f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
            for number, line in enumerate(text.splitlines(), 1)
            if pattern.search(line)
        ]
    assert not citing, (
        f"these lines cite {CONTRACT}, a file the project does not contain; state the rule in "
        "the project's own words or link to the page of docs/ that does:\n" + "\n".join(citing)
    )


_BUILD = """
import sys
from sphinx.cmd.build import main
status = main(["-W", "--keep-going", "-q", "-b", sys.argv[1], "docs", sys.argv[2]])
engines = sorted(
    name for name in sys.modules
    if name.split(".")[0] in ("numba", "pyfftw", "convkit_numba", "convkit_fftw", "convkit_cuda")
)
if sys.argv[1] == "html" and engines:
    print("building the docs imported", engines, file=sys.stderr)
    status = status or 1
sys.exit(status)
"""


def _build(builder, output):
    try:
        result = subprocess.run(
            [sys.executable, "-c", _BUILD, builder, str(output)],
            cwd=ROOT,
            capture_output=True,
            check=False,
            text=True,
            timeout=600,
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"sphinx -b {builder} did not finish in {error.timeout} s")
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]


@pytest.mark.slow
@needs_sphinx
def test_docs_build_without_warnings_and_import_no_engine(tmp_path):
    _build("html", tmp_path / "html")
    assert (tmp_path / "html" / "index.html").is_file()
    for page in ("semantics", "choosing", "writing-a-backend", "conformance", "performance", "api"):
        assert (tmp_path / "html" / f"{page}.html").is_file(), page
    reference = (tmp_path / "html" / "generated" / "convkit.html").read_text()
    import convkit

    for name in convkit.__all__:
        assert f"convkit.{name}" in reference, f"the API reference does not list convkit.{name}"


@pytest.mark.slow
@needs_sphinx
def test_docs_examples_run(tmp_path):
    _build("doctest", tmp_path / "doctest")


def test_the_boundary_figure_script_draws_the_png(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.syspath_prepend(str(ROOT / "docs"))
    import make_boundary_figure

    assert make_boundary_figure.main(["--out", str(tmp_path / "b.png")]) == 0
    assert (tmp_path / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (ROOT / "docs" / "_static" / "boundaries.png").is_file()


def test_the_dask_scaling_figure_script_draws_the_png(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.syspath_prepend(str(ROOT / "docs"))
    import make_dask_scaling_figure

    runs = [
        {"workers": w, "chunks": c, "gb_per_s": 0.1 * w, "peak_rss_bytes": c * 2**20}
        for w in (1, 2)
        for c in (64, 128)
    ]
    data = tmp_path / "scaling.json"
    data.write_text(json.dumps({"size": 256, "runs": runs, "in_memory": {"gb_per_s": 0.3}}))
    out = tmp_path / "s.png"
    assert make_dask_scaling_figure.main(["--data", str(data), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (ROOT / "docs" / "_static" / "dask_scaling.png").is_file()
