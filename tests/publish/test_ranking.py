"""Rankings with their uncertainty (challengeR's methods) and merges that cannot mislead."""

from __future__ import annotations

import csv
import io
import json
import shutil
from importlib import resources

import numpy as np
import pytest
from scipy.stats import wilcoxon

from harness.jsonio import read_json, validate
from harness.publish import ranking
from harness.errors import LeaderboardError
from harness.publish.leaderboard import build_leaderboard, load_submissions
from harness.publish.tables import markdown, score_csv
from tests.publish.conftest import make_results, publish_parser, run_cli


def _by_name(document):
    return {e["name"]: e for e in document["submissions"]}


# -- the statistics ---------------------------------------------------------------------------------

def test_holm_matches_the_step_down_by_hand():
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06
    assert np.allclose(ranking.holm(p), [0.03, 0.06, 0.06, 0.02])
    with_untested = ranking.holm(np.array([0.01, np.nan, 0.02]))  # two tests, not three
    assert np.isnan(with_untested[1]) and np.allclose(with_untested[[0, 2]], [0.02, 0.02])
    batched = ranking.holm(np.stack([p, p[::-1]]))
    assert np.allclose(batched[1], ranking.holm(p[::-1]))


def test_pairwise_tests_are_scipys_one_sided_wilcoxon_and_wins_count_significant_ones():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.6, 0.9, size=40)
    scores = np.stack([base + 0.05 + rng.normal(0, 0.01, 40), base + rng.normal(0, 0.01, 40), base.copy()])
    p = ranking.one_sided_pvalues(scores)
    assert p[0, 1] == pytest.approx(wilcoxon(scores[0] - scores[1], alternative="greater").pvalue)
    assert np.isnan(p[0, 0])
    adjusted = ranking.significance(scores)
    assert np.allclose(adjusted.ravel()[~np.isnan(adjusted.ravel())],
                       ranking.holm(p.ravel())[~np.isnan(p.ravel())])
    assert ranking.wins(adjusted).tolist()[0] == 2  # the shifted one beats both others
    identical = ranking.one_sided_pvalues(np.stack([base, base]))
    assert np.isnan(identical[0, 1])  # all differences zero: no test, never a win


def test_competition_ranks_per_replicate():
    values = np.array([[0.9, 0.5], [0.8, 0.5], [0.9, 0.7]])
    assert ranking.competition_rank_columns(values, higher_is_better=True).tolist() == [[1, 2], [3, 2], [1, 1]]


# -- the leaderboard's ranking section -----------------------------------------------------------

@pytest.fixture(scope="module")
def close_race(tmp_path_factory):
    """Two submissions a hair apart, one clearly worse, and a CT-only one better than all on CT."""
    root = tmp_path_factory.mktemp("race")
    return {
        "a": make_results(root / "a" / "results.json", name="alpha", seed=11, quality={"CT": 0.86, "MR": 0.80}),
        "b": make_results(root / "b" / "results.json", name="beta", seed=12, quality={"CT": 0.855, "MR": 0.80}),
        "c": make_results(root / "c" / "results.json", name="gamma", seed=13, quality={"CT": 0.70, "MR": 0.60}),
        "ct": make_results(root / "ct" / "results.json", name="ct-only", seed=14, quality={"CT": 0.95},
                           skip=("amos_mr", "totalseg_mr")),
    }


def test_rank_distribution_interval_and_kendall_tau(close_race):
    document = build_leaderboard(load_submissions([str(p) for p in close_race.values()]), resamples=1000, seed=1)
    validate(document, "leaderboard", where="leaderboard")
    section = document["ranking"]
    assert section["official"] == "mean" and sorted(section["submissions"]) == ["alpha", "beta", "gamma"]
    boot = section["bootstrap"]
    for name in section["submissions"]:
        counts = boot["rank_counts"][name]
        assert sum(counts) == 1000 and len(counts) == 3
        low, high = boot["rank_interval"][name]
        assert low <= section["schemes"]["mean"][name] <= high
    assert boot["rank_interval"]["gamma"] == [3, 3]  # clearly last in every resample
    assert boot["rank_interval"]["alpha"] == [1, 2] and boot["rank_interval"]["beta"] == [1, 2]  # a coin toss
    tau = boot["kendall_tau"]
    assert -1 <= tau["q025"] <= tau["median"] <= tau["q975"] <= 1 and tau["q025"] < 1
    assert section["agreement"]["mean"] == 1.0
    entry = _by_name(document)["gamma"]
    assert entry["ranks"]["rank_interval"] == [3, 3] and entry["ranks"]["official"] == 3


def test_renaming_or_adding_a_submission_changes_nobody_elses_numbers(close_race):
    files = [str(close_race[k]) for k in ("a", "b", "c")]
    first = build_leaderboard(load_submissions(files), resamples=1000, seed=5)
    renamed = build_leaderboard(load_submissions([f"zzz={files[0]}", *files[1:]]), resamples=1000, seed=5)
    grown = build_leaderboard(load_submissions([*files, str(close_race["ct"])]), resamples=1000, seed=5)

    def cells(document, name):
        entry = _by_name(document)[name]
        return ({k: entry["test_sets"][k]["dice"] for k in entry["test_sets"]}, entry["groups"]["all"]["nsd"])

    assert cells(first, "alpha") == cells(renamed, "zzz")
    counts = lambda document: document["ranking"]["bootstrap"]["rank_counts"]  # noqa: E731
    assert counts(first)["alpha"] == counts(renamed)["zzz"]
    for name in ("alpha", "beta", "gamma"):
        assert cells(first, name) == cells(grown, name)  # paired draws fixed by seed and test set only
        assert first["ranking"]["bootstrap"]["rank_counts"][name] == grown["ranking"]["bootstrap"]["rank_counts"][name]


def test_unranked_submissions_do_not_enter_the_ranks_of_ranked_ones(close_race):
    files = [str(close_race[k]) for k in ("a", "b", "c")]
    without = _by_name(build_leaderboard(load_submissions(files), resamples=0))
    with_ct = _by_name(build_leaderboard(load_submissions([*files, str(close_race["ct"])]), resamples=0))
    for name in ("alpha", "beta", "gamma"):
        assert without[name]["ranks"] == with_ct[name]["ranks"]
    ct_only = with_ct["ct-only"]["ranks"]
    assert ct_only["official"] is None and ct_only["unranked_reason"] == "unranked: missing amos_mr, totalseg_mr"
    assert ct_only["per_test_set"]["btcv"] == 1 and ct_only["per_test_set"]["amos_mr"] is None  # where it would stand
    assert without["alpha"]["ranks"]["per_test_set"]["btcv"] in (1, 2)  # it displaced nobody


def test_test_based_ranking_can_be_official_and_is_stated(close_race, tmp_path):
    files = [str(close_race[k]) for k in ("a", "b", "c")]
    assert run_cli("leaderboard", *files, "--out", str(tmp_path), "--ranking", "test-based", "--bootstrap", "1000",
                   "-q") == 0
    document = read_json(tmp_path / "leaderboard.json", "leaderboard")
    section = document["ranking"]
    assert section["official"] == "test-based" and section["bootstrap"]["scheme"] == "test-based"
    wins = section["tests"]["wins"]
    assert wins["gamma"] == 0 and wins["alpha"] >= 1 and wins["beta"] >= 1
    ranks = [e["ranks"]["official"] for e in document["submissions"]]
    assert ranks == sorted(ranks) and document["submissions"][-1]["name"] == "gamma"
    assert all(e["ranks"]["official"] == e["ranks"]["test_based"] for e in document["submissions"])
    page = (tmp_path / "leaderboard.html").read_text()
    assert "Official ranking: test-based (test-based) of Dice" in page
    assert "All mean and rank-then-aggregate are shown as robustness checks" in page
    assert "Official ranking: test-based" in (tmp_path / "leaderboard.md").read_text()


def test_too_few_resamples_are_refused(close_race, tmp_path, capsys):
    files = [str(close_race["a"])]
    with pytest.raises(SystemExit):
        publish_parser().parse_args(["leaderboard", *files, "--out", str(tmp_path), "--bootstrap", "999"])
    assert "no trustworthy 95% interval" in capsys.readouterr().err
    with pytest.raises(LeaderboardError, match="at least 1000"):
        build_leaderboard(load_submissions(files), resamples=1)
    assert build_leaderboard(load_submissions(files), resamples=0)["ranking"]["bootstrap"] is None


# -- merges that cannot mislead --------------------------------------------------------------------

def test_nsd_table_and_csv_are_ranked_by_nsd(tmp_path):
    dice_first = make_results(tmp_path / "d" / "results.json", name="dice-first", seed=21,
                              quality={"CT": 0.90, "MR": 0.88}, nsd_shift=-0.15)
    nsd_first = make_results(tmp_path / "n" / "results.json", name="nsd-first", seed=22,
                             quality={"CT": 0.86, "MR": 0.84}, nsd_shift=0.08)
    document = build_leaderboard(load_submissions([str(dice_first), str(nsd_first)]), resamples=0)
    assert [e["name"] for e in document["submissions"]] == ["dice-first", "nsd-first"]  # ranked by Dice
    rows = list(csv.DictReader(io.StringIO(score_csv(document, metric="nsd"))))
    assert [(r["submission"], r["rank_mean_score"]) for r in rows] == [("nsd-first", "1"), ("dice-first", "2")]
    dice_rows = list(csv.DictReader(io.StringIO(score_csv(document, metric="dice"))))
    assert [(r["submission"], r["rank_mean_score"]) for r in dice_rows] == [("dice-first", "1"), ("nsd-first", "2")]
    text = markdown(document)
    nsd_section = text[text.index("## NSD (%)"):]
    assert nsd_section.index("nsd-first") < nsd_section.index("dice-first")
    from harness.publish.html import score_table

    table = score_table(document, metric="nsd")
    assert table.index('class="first" data-submission="nsd-first"') < table.index('data-submission="dice-first"')


def _manifests_with_other_cases(tmp_path):
    folder = tmp_path / "manifests"
    shutil.copytree(str(resources.files("ground_truth_manifests").joinpath("synthetic")), folder)
    manifest = json.loads((folder / "btcv.json").read_text())
    manifest["cases"][-1]["case_id"] = "img0099"
    manifest["cases"][-1]["label_sha256"] = "0" * 64
    (folder / "btcv.json").write_text(json.dumps(manifest))
    return folder


def test_results_carry_a_case_list_fingerprint_and_different_cases_are_refused(tmp_path, close_race):
    results = read_json(close_race["a"], "results")
    fingerprint = results["datasets"]["btcv"]["fingerprint"]
    assert len(fingerprint["cases_sha256"]) == 64 and fingerprint["n_listed"] == 4
    assert len(fingerprint["manifest_sha256"]) == 64
    other = make_results(tmp_path / "o" / "results.json", name="other-cases", seed=31, quality={"CT": 0.9, "MR": 0.9},
                         manifests_dir=str(_manifests_with_other_cases(tmp_path)))
    assert read_json(other)["datasets"]["btcv"]["fingerprint"]["cases_sha256"] != fingerprint["cases_sha256"]
    assert read_json(other)["datasets"]["flare22"]["fingerprint"]["cases_sha256"] == \
        results["datasets"]["flare22"]["fingerprint"]["cases_sha256"]
    with pytest.raises(LeaderboardError, match=r"test set btcv was scored on different cases: 'alpha' .*'other-cases'"):
        build_leaderboard(load_submissions([str(close_race["a"]), str(other)]), resamples=0)


def test_default_names_come_from_the_image_or_the_results_folder(tmp_path):
    evaluated = make_results(tmp_path / "team-x-run" / "results.json", name="", seed=41, quality={"CT": 0.9},
                             submission={"name": "/data/team-x/predictions/flare22", "label_map": "a-eval"})
    untagged = make_results(tmp_path / "u" / "results.json", name="", seed=42, quality={"CT": 0.9},
                            submission={"name": "sha256:" + "ab" * 32, "image": "sha256:" + "ab" * 32,
                                        "image_id": "sha256:" + "ab" * 32})
    tagged = make_results(tmp_path / "t" / "results.json", name="", seed=43, quality={"CT": 0.9},
                          submission={"name": "registry.example/team/model:v2", "image": "model.tar",
                                      "image_id": "sha256:" + "cd" * 32})
    names = [s.label for s in load_submissions([str(evaluated), str(untagged), str(tagged)])]
    assert names == ["team-x-run", "sha256:" + "ab" * 32, "registry.example/team/model:v2"]


def test_page_facts_runtime_failed_marker_and_tolerances(tmp_path, close_race):
    from harness.publish.html import report
    from harness.taxonomy import load_taxonomy

    timed = make_results(tmp_path / "timed" / "results.json", name="timed", seed=51, quality={"CT": 0.8, "MR": 0.8},
                         failed=("img0002",), runtime={"wall_s": 12.5, "peak_memory_bytes": 3 * 1024**3,
                                                        "exit_code": 0})
    document = build_leaderboard(load_submissions([str(timed), str(close_race["a"])]), resamples=0)
    entry = _by_name(document)["timed"]
    assert entry["runtime"]["peak_memory_bytes"] == 3 * 1024**3 and entry["runtime"]["n_timed"] == 27
    assert entry["runtime"]["wall_s_total"] == pytest.approx(12.5 * 27)
    page = report(document)
    assert 'data-peak="3221225472">3.00 GiB' in page and "5m 38s" in page  # 337.5 s, rounded
    assert f'data-digest="sha256:{51:064x}"' in page and "0.1.0" in page
    assert 'data-failed="1"' in page and "†" in page
    for organ in load_taxonomy().organs:
        assert f'data-organ="{organ.name}">{organ.nsd_tolerance_mm:g}</td>' in page
    assert page.count('data-cases="4"') == 7


def test_a_rerun_does_not_resume_results_of_another_case_list(tmp_path, close_race):
    from harness.errors import HarnessError
    from harness.manifest import load_benchmark
    from harness.results import ResultsStore
    from harness.taxonomy import load_taxonomy

    path = tmp_path / "results.json"
    shutil.copyfile(close_race["a"], path)
    previous = read_json(path)
    with pytest.raises(HarnessError, match="test set btcv scored on another case list"):
        ResultsStore.open(path, benchmark="synthetic", settings=previous["settings"],
                          organs=list(load_taxonomy().organ_names), submission=previous["submission"],
                          manifests=load_benchmark(str(_manifests_with_other_cases(tmp_path))))
