"""`harness --help` speaks to users: what the tool is for and how to start, not an internal docstring."""

from __future__ import annotations

import pytest

from harness.cli import main


def test_top_level_help_says_what_the_tool_does_and_how_to_start(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    text = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert "run a participant's Docker image" in text and "score its predictions" in text
    assert "harness data synth --out" in text and "harness run --image" in text
    assert "No logic lives here" not in text and "parse flags" not in text


def test_run_help_lists_the_distributed_flags(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    assert "--scheduler ADDRESS" in text and "--cluster local:N" in text
