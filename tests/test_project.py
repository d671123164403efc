"""The README's commands and examples are the ones CI runs, and they work."""

import re
from pathlib import Path

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


def test_readme_python_examples_run():
    blocks = _blocks("python")
    assert len(blocks) >= 4
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {"__name__": "readme"})  # noqa: S102 - our own README
