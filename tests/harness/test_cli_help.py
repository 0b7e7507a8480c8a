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


def _leaf_parsers(parser, path=()):
    """(command path, parser) of every runnable command, e.g. (("data", "verify"), parser)."""
    import argparse

    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, child in subs[0].choices.items():
        yield from _leaf_parsers(child, (*path, name))


def test_every_command_dispatches_through_func_and_takes_quiet_and_no_progress():
    from harness.cli import build_parser

    leaves = dict(_leaf_parsers(build_parser()))
    assert ("gc-ground-truth",) in leaves and ("data", "synth") in leaves and ("label-maps",) in leaves
    for path, parser in leaves.items():
        options = {s for a in parser._actions for s in a.option_strings}
        assert {"--quiet", "-q", "--no-progress"} <= options, path
        assert callable(parser.get_default("func")), path


def test_pred_label_map_is_a_hidden_deprecated_alias_of_label_map(capsys):
    from harness.cli import build_parser

    parser = build_parser()
    for command in (["score", "gt.nii.gz", "pred.nii.gz"], ["evaluate", "--dataset", "btcv", "--predictions", "p",
                                                             "--out", "r.json"]):
        assert parser.parse_args(command).label_map == "a-eval"
        assert parser.parse_args([*command, "--label-map", "btcv"]).label_map == "btcv"
        assert capsys.readouterr().err == ""
        assert parser.parse_args([*command, "--pred-label-map", "btcv"]).label_map == "btcv"
        assert "--pred-label-map is deprecated, use --label-map" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = capsys.readouterr().out
    assert "--label-map" in text and "--pred-label-map" not in text


def test_gc_ground_truth_is_a_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["gc-ground-truth", "--help"])
    text = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert "--out OUT" in text and "archive" in text


def test_gc_ground_truth_command_writes_a_loadable_ground_truth(synthetic_root, tmp_path, capsys):
    from harness.publish.gc_ground_truth import load_ground_truth

    code = main(["gc-ground-truth", "--benchmark", "synthetic", "--data-root", str(synthetic_root),
                 "--datasets", "btcv", "--out", str(tmp_path / "upload")])
    assert code == 0 and "upload" in capsys.readouterr().out
    truth = load_ground_truth(tmp_path / "upload" / "ground_truth", benchmark="synthetic")
    assert {c.test_set for c in truth.cases} == {"btcv"}
    assert len(list((tmp_path / "upload" / "archive_images").iterdir())) == len(truth.cases)
