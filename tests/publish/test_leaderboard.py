import csv
import io
import json

import pytest

from harness.errors import HarnessError, LeaderboardError, SchemaError
from harness.jsonio import read_json
from harness.publish.leaderboard import (build_leaderboard, check_compatible,
                                         competition_ranks, load_submissions, parse_source)
from tests.publish.conftest import make_results, run_cli


def _by_name(document):
    return {e["name"]: e for e in document["submissions"]}


def test_outputs_are_written_and_the_json_validates_without_nan(leaderboard_out):
    names = sorted(p.name for p in leaderboard_out.iterdir())
    assert names == ["leaderboard.html", "leaderboard.json", "leaderboard.md", "leaderboard_ci.csv",
                     "leaderboard_dice.csv", "leaderboard_nsd.csv"]
    text = (leaderboard_out / "leaderboard.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    document = read_json(leaderboard_out / "leaderboard.json", "leaderboard")
    assert [t["key"] for t in document["test_sets"]] == ["flare22", "amos_ct", "word", "totalseg_ct", "btcv",
                                                         "amos_mr", "totalseg_mr"]
    assert document["groups"]["mr"] == ["amos_mr", "totalseg_mr"]
    assert not list(leaderboard_out.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_scores_are_the_results_files_own_numbers(leaderboard_out, results_files):
    board = _by_name(read_json(leaderboard_out / "leaderboard.json"))
    results = read_json(results_files["medium"])
    entry = board["medium-net"]
    for key, dataset in results["datasets"].items():
        for metric in ("dice", "nsd"):
            assert entry["test_sets"][key][metric]["score"] == pytest.approx(dataset[metric])
            assert entry["test_sets"][key]["organs"]["liver"][metric] == pytest.approx(
                dataset["organs"]["liver"][metric])
    for group in ("ct", "mr", "all"):
        assert entry["groups"][group]["dice"]["score"] == pytest.approx(results["aggregates"][group]["dice"])
    assert entry["test_sets"]["btcv"]["n_failed"] == 1
    failed = [c for c in entry["test_sets"]["btcv"]["cases"] if c["status"] == "failed"]
    assert [(c["case_id"], c["dice"]) for c in failed] == [("img0002", 0.0)]


def test_intervals_bracket_every_score(leaderboard_out):
    for entry in read_json(leaderboard_out / "leaderboard.json")["submissions"]:
        cells = [entry["test_sets"][k] for k in entry["test_sets"]] + list(entry["groups"].values())
        for cell in cells:
            for metric in ("dice", "nsd"):
                value = cell[metric]
                if value["score"] is None:
                    assert value["ci_low"] is None and value["ci_high"] is None
                else:
                    assert value["ci_low"] <= value["score"] + 1e-12 and value["score"] - 1e-12 <= value["ci_high"]


def test_missing_test_sets_leave_group_means_empty_and_the_submission_unranked(leaderboard_out):
    document = read_json(leaderboard_out / "leaderboard.json")
    entry = _by_name(document)["no-mr-run"]
    assert entry["test_sets"]["amos_mr"]["status"] == "missing"
    assert entry["groups"]["mr"]["dice"]["score"] is None and entry["groups"]["all"]["nsd"]["score"] is None
    assert entry["groups"]["mr"]["missing"] == ["amos_mr", "totalseg_mr"]
    assert entry["groups"]["ct"]["dice"]["score"] is not None  # CT needs no MR set
    assert entry["ranks"]["mean_score"] is None and entry["ranks"]["rank_then_aggregate"] is None
    assert entry["ranks"]["per_test_set"]["amos_mr"] is None and entry["ranks"]["per_test_set"]["btcv"] is not None
    assert any("missing test sets: amos_mr, totalseg_mr" in note for note in entry["notes"])
    assert document["submissions"][-1]["name"] == "no-mr-run"  # unranked come last


def test_two_rankings(leaderboard_out):
    document = read_json(leaderboard_out / "leaderboard.json")
    ranked = [(e["name"], e["ranks"]["mean_score"]) for e in document["submissions"]]
    # All means: strong (CT .92, MR .85) > medium (.84/.78, one failed case) vs ct-model (.90/.35)
    assert ranked[0] == ("strong-net", 1)
    board = _by_name(document)
    means = {n: board[n]["groups"]["all"]["dice"]["score"] for n in ("medium-net", "ct-model")}
    better = max(means, key=means.get)
    assert board[better]["ranks"]["mean_score"] == 2
    # rank-then-aggregate: ct-model beats medium-net on all five CT sets and loses both MR sets
    ct_model = board["ct-model"]["ranks"]
    assert ct_model["mean_rank"] == pytest.approx(sum(ct_model["per_test_set"].values()) / 7)
    assert board["strong-net"]["ranks"]["rank_then_aggregate"] == 1
    assert ct_model["rank_then_aggregate"] < board["medium-net"]["ranks"]["rank_then_aggregate"]


def test_competition_ranks_share_ties_and_skip():
    assert competition_ranks({"a": 0.9, "b": 0.8, "c": 0.9, "d": None}, higher_is_better=True) == \
        {"a": 1, "b": 3, "c": 1, "d": None}
    assert competition_ranks({"a": 2.0, "b": 1.5}, higher_is_better=False) == {"a": 2, "b": 1}


def test_csv_and_markdown_tables_in_percent(leaderboard_out):
    document = read_json(leaderboard_out / "leaderboard.json")
    rows = list(csv.DictReader(io.StringIO((leaderboard_out / "leaderboard_dice.csv").read_text())))
    assert list(rows[0])[:6] == ["rank_mean_score", "rank_then_aggregate", "mean_rank", "submission", "flare22",
                                 "amos_ct"]
    assert list(rows[0])[-4:] == ["ct_mean", "mr_mean", "all_mean", "notes"]
    strong = next(r for r in rows if r["submission"] == "strong-net")
    expected = _by_name(document)["strong-net"]["test_sets"]["word"]["dice"]["score"]
    assert strong["word"] == f"{100 * expected:.2f}"
    no_mr = next(r for r in rows if r["submission"] == "no-mr-run")
    assert no_mr["amos_mr"] == "" and no_mr["all_mean"] == "" and no_mr["rank_mean_score"] == ""
    markdown = (leaderboard_out / "leaderboard.md").read_text()
    assert "| Submission | FLARE22 | AMOS CT | WORD | TotalSeg CT | BTCV | AMOS MR | TotalSeg MR | CT mean | " \
           "MR mean | All mean |" in markdown
    assert f"| {100 * expected:.2f} |" in markdown
    assert "## NSD (%)" in markdown and "95% confidence intervals" in markdown
    ci = list(csv.DictReader(io.StringIO((leaderboard_out / "leaderboard_ci.csv").read_text())))
    assert {r["status"] for r in ci if r["submission"] == "no-mr-run" and r["column"] == "amos_mr"} == {"missing"}


def test_bootstrap_is_deterministic_and_independent_of_file_order(results_files):
    files = [str(results_files[k]) for k in ("strong", "medium")]
    first = build_leaderboard(load_submissions(files), resamples=1000, seed=3)
    swapped = build_leaderboard(load_submissions(files[::-1]), resamples=1000, seed=3)
    reseeded = build_leaderboard(load_submissions(files), resamples=1000, seed=4)
    pick = lambda d: {e["name"]: e["groups"]["all"]["dice"] for e in d["submissions"]}  # noqa: E731
    assert pick(first) == pick(swapped)
    assert pick(first) != pick(reseeded)
    assert [e["name"] for e in first["submissions"]] == [e["name"] for e in swapped["submissions"]]


def test_no_bootstrap_gives_null_intervals(results_files):
    document = build_leaderboard(load_submissions([str(results_files["strong"])]), resamples=0)
    cell = document["submissions"][0]["test_sets"]["btcv"]["dice"]
    assert cell["score"] is not None and cell["ci_low"] is None and cell["ci_high"] is None


def test_refuses_to_mix_empty_policies_and_benchmarks(tmp_path, results_files):
    nnunet = make_results(tmp_path / "nn" / "results.json", name="nn", seed=5, quality={"CT": 0.9, "MR": 0.9},
                          empty_policy="nnunet", only_cases=1)
    with pytest.raises(LeaderboardError, match="mix empty-organ policys|mix empty-organ polic"):
        check_compatible(load_submissions([str(results_files["strong"]), str(nnunet)]))
    other = tmp_path / "other.json"
    document = json.loads(results_files["strong"].read_text())
    document["benchmark"] = "a-eval"
    other.write_text(json.dumps(document))
    with pytest.raises(LeaderboardError, match=r"mix benchmarks .*'synthetic'.*'a-eval'"):
        build_leaderboard(load_submissions([str(results_files["medium"]), str(other)]))


def test_partial_test_sets_are_shown_but_not_averaged(tmp_path):
    partial = make_results(tmp_path / "p" / "results.json", name="partial", seed=6, quality={"CT": 0.9, "MR": 0.9},
                           only_cases=2)
    entry = build_leaderboard(load_submissions([str(partial)]), resamples=0)["submissions"][0]
    assert entry["test_sets"]["btcv"]["status"] == "incomplete" and entry["test_sets"]["btcv"]["n_cases"] == 2
    assert entry["test_sets"]["btcv"]["dice"]["score"] is not None
    assert entry["groups"]["ct"]["dice"]["score"] is None and "btcv" in entry["groups"]["ct"]["missing"]
    assert any("only 2 of 4 cases" in n for n in entry["notes"])


def test_labels_duplicates_and_invalid_files(tmp_path, results_files):
    assert parse_source("mine=" + str(results_files["strong"])) == ("mine", results_files["strong"])
    assert parse_source(str(results_files["strong"])) == (None, results_files["strong"])
    same = [str(results_files["strong"]), str(results_files["strong"])]
    with pytest.raises(LeaderboardError, match="LABEL=path"):
        load_submissions(same)
    labelled = load_submissions([f"a={same[0]}", f"b={same[1]}"])
    assert [s.label for s in labelled] == ["a", "b"]
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema_version": 1, "datasets": NaN}')
    with pytest.raises(SchemaError):
        load_submissions([str(broken)])
    with pytest.raises(LeaderboardError, match="no such results file"):
        load_submissions([str(tmp_path / "absent.json")])


def test_cli_usage_errors(tmp_path, results_files, capsys):
    from tests.publish.conftest import publish_parser

    with pytest.raises(SystemExit):
        publish_parser().parse_args(["leaderboard", str(results_files["strong"]), "--out", str(tmp_path),
                                     "--bootstrap", "-1"])
    with pytest.raises(HarnessError):
        run_cli("leaderboard", str(tmp_path / "none.json"), "--out", str(tmp_path / "o"))
    assert run_cli("leaderboard", str(results_files["strong"]), "--out", str(tmp_path / "one"), "--bootstrap",
                   "0", "--metric", "nsd") == 0
    out = capsys.readouterr().out
    assert "ranked by NSD" in out and str(tmp_path / "one" / "leaderboard.html") in out
