"""`vinfer demo`, the README's first command, run as a user would."""

import re

from typer.testing import CliRunner

from sdk.cli import app


def test_demo_with_a_liar_escalates_slashes_it_and_verifies_the_correct_result():
    result = CliRunner().invoke(app, ["demo", "--byzantine", "1", "--batch", "8"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "FINALIZED after 2 round(s)" in result.output
    assert re.search(r"slashed 0\.500 ETH \(revealed a wrong result\)", result.output)
    assert len(re.findall(r"check  ok", result.output)) == 5
    predicted, label = (re.search(rf"{row}\s+((?:\S\s+)+)", result.output).group(1).split()[:8] for row in ("predicted", "label"))
    assert sum(p == l for p, l in zip(predicted, label)) >= 6


def test_demo_refuses_a_first_round_made_only_of_liars():
    result = CliRunner().invoke(app, ["demo", "--byzantine", "3"])
    assert result.exit_code == 1
    assert "whole first round" in result.output
