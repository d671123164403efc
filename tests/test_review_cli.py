"""Command-line arguments that parse as numbers but make no sense."""

import pytest

from convkit._cli import main


@pytest.mark.parametrize("worst", ["-1", "two"])
def test_check_refuses_a_worst_count_that_is_not_zero_or_more(worst, capsys):
    with pytest.raises(SystemExit) as raised:
        main(["check", "scipy", "--small", "--worst", worst])
    assert raised.value.code == 2
    assert "--worst: expected a whole number, 0 or more" in capsys.readouterr().err
