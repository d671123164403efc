"""Command-line arguments that parse as numbers but make no sense."""

import pytest

from convkit._cli import main


@pytest.mark.parametrize("worst", ["-1", "two"])
def test_check_refuses_a_worst_count_that_is_not_zero_or_more(worst, capsys):
    with pytest.raises(SystemExit) as raised:
        main(["check", "scipy", "--small", "--worst", worst])
    assert raised.value.code == 2
    assert "--worst: expected a whole number, 0 or more" in capsys.readouterr().err


@pytest.mark.parametrize(
    "variable, value, message",
    [
        ("CONVKIT_MEMORY_LIMIT", "1", "over the limit of 1 B"),
        ("CONVKIT_NUM_THREADS", "abc", "CONVKIT_NUM_THREADS='abc' is not valid"),
    ],
)
def test_demo_reports_a_setting_it_cannot_run_under_without_a_traceback(
    variable, value, message, monkeypatch, capsys
):
    monkeypatch.setenv(variable, value)
    assert main(["demo", "--backend", "scipy"]) == 2
    assert message in capsys.readouterr().err
