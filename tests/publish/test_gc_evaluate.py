import json
import shutil
from pathlib import Path

import pytest

from harness.jsonio import read_json
from harness.labelmap import shipped_mapping
from harness.errors import GroundTruthError, LeaderboardError, PredictionsError
from harness.publish.gc_evaluate import evaluate_predictions
from harness.publish.gc_ground_truth import image_stem, load_ground_truth
from harness.scoring.case import ScoreSettings
from tests.publish.conftest import run_cli
from tests.publish.gc_layout import RELATIVE_PATH, make_gc_layout


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    return make_gc_layout(tmp_path_factory.mktemp("gc"))


@pytest.fixture(scope="module")
def metrics(layout):
    code = run_cli("gc-evaluate", "--input", str(layout.input_dir), "--ground-truth", str(layout.ground_truth_dir),
                   "--output", str(layout.output_dir), "--workers", "1", "--bootstrap", "1000", "-q")
    assert code == 0
    return read_json(layout.output_dir / "metrics.json", "gc_metrics")


def by_case(layout, metrics) -> dict:
    """metrics.json's per-case results keyed by (test set, case id), mapped back as the organizer can."""
    cases = load_ground_truth(layout.ground_truth_dir).cases_by_ref()
    return {(cases[r["case_ref"]].test_set, cases[r["case_ref"]].case_id): r for r in metrics["results"]}


def test_every_case_is_scored_or_failed_with_its_reason(layout, metrics):
    results = by_case(layout, metrics)
    assert set(results) == set(layout.expected)
    for key, (status, case_dice, kind) in layout.expected.items():
        entry = results[key]
        assert (entry["status"], entry["error_kind"]) == (status, kind), entry["error"]
        assert entry["dice"] == pytest.approx(case_dice)
        assert entry["pk"] == layout.job_of_case.get(key)
    assert results[("btcv", "img0002")]["metrics"]["kidney_left"]["dice"] == 0.0
    assert "status 'Failed'" in results[("amos_mr", "amos_0508")]["error"]
    assert "origin" in results[("btcv", "img0003")]["error"]
    assert results[("amos_mr", "amos_0510")]["pk"] is None


def test_aggregates_at_stable_dotted_paths(metrics):
    aggregates = metrics["aggregates"]
    # BTCV organ means: kidney_left (1 + 0 + 0 + 0)/4, every other organ (1 + 1 + 0 + 0)/4
    btcv = (9 * 0.5 + 0.25) / 10
    amos_mr = 1 / 3  # one perfect case of three
    assert aggregates["btcv"]["dice"] == pytest.approx(btcv)
    assert aggregates["btcv"]["organs"]["kidney_left"]["dice"] == pytest.approx(0.25)
    assert aggregates["amos_mr"]["nsd"] == pytest.approx(amos_mr)
    assert aggregates["ct"]["dice"] == pytest.approx(btcv) and aggregates["mr"]["dice"] == pytest.approx(amos_mr)
    assert aggregates["dice"]["mean"] == pytest.approx((btcv + amos_mr) / 2)
    assert aggregates["all"]["dice"] == aggregates["dice"]["mean"]
    assert aggregates["nsd"]["ci_low"] <= aggregates["nsd"]["mean"] <= aggregates["nsd"]["ci_high"]
    assert aggregates["organs"]["kidney_left"]["dice"] == pytest.approx((0.25 + amos_mr) / 2)
    assert (aggregates["n_cases"], aggregates["n_failed"], aggregates["n_jobs"], aggregates["n_unmatched_jobs"]) == \
        (7, 4, 7, 1)
    for path in ("dice.mean", "nsd.mean", "ct.dice", "mr.nsd", "btcv.dice", "amos_mr.organs.liver.nsd"):
        value = aggregates
        for part in path.split("."):
            value = value[part]
        assert isinstance(value, float), path


def test_unmatched_jobs_are_listed_and_nothing_is_nan(layout, metrics):
    assert [j["pk"] for j in metrics["unmatched_jobs"]] == layout.unmatched_pks
    assert metrics["unmatched_jobs"][0]["image_names"] == ["not-in-the-archive.mha"]
    text = (layout.output_dir / "metrics.json").read_text()
    assert "NaN" not in text and "Infinity" not in text


def test_same_numbers_whatever_the_job_order_and_workers(layout, metrics, tmp_path):
    shuffled = tmp_path / "input"
    shutil.copytree(layout.input_dir, shuffled)
    jobs = json.loads((shuffled / "predictions.json").read_text())
    (shuffled / "predictions.json").write_text(json.dumps(jobs[::-1]))
    again = evaluate_predictions(input_dir=shuffled, ground_truth_dir=layout.ground_truth_dir,
                                 output_dir=tmp_path / "out", pred_mapping=shipped_mapping("a-eval"),
                                 settings=ScoreSettings(), output_relative_path=RELATIVE_PATH, workers=2,
                                 resamples=1000)
    assert again["aggregates"] == metrics["aggregates"]
    assert [r["case_ref"] for r in again["results"]] == [r["case_ref"] for r in metrics["results"]]


def test_duplicate_jobs_for_one_case_keep_the_first_pk(layout, tmp_path):
    shutil.copytree(layout.input_dir, tmp_path / "input")
    jobs = json.loads((tmp_path / "input" / "predictions.json").read_text())
    original = next(j for j in jobs if j["pk"] == layout.job_of_case[("btcv", "img0001")])
    twin = json.loads(json.dumps(original))
    twin["pk"] = "ffffffff-0000-4000-8000-000000000000"  # sorts last: jobs are taken in pk order
    jobs.append(twin)
    (tmp_path / "input" / "predictions.json").write_text(json.dumps(jobs))
    result = evaluate_predictions(input_dir=tmp_path / "input", ground_truth_dir=layout.ground_truth_dir,
                                  output_dir=tmp_path / "out", pred_mapping=shipped_mapping("a-eval"),
                                  settings=ScoreSettings(), output_relative_path=RELATIVE_PATH, resamples=0)
    case = by_case(layout, result)[("btcv", "img0001")]
    assert case["pk"] == original["pk"] and case["status"] == "ok"
    dropped = [j for j in result["unmatched_jobs"] if j["pk"] == twin["pk"]]
    assert dropped and "already scored" in dropped[0]["reason"]
    assert result["aggregates"]["dice"]["ci_low"] is None  # --bootstrap 0


def test_wrong_output_socket_fails_cases_with_a_hint(layout, tmp_path):
    result = evaluate_predictions(input_dir=layout.input_dir, ground_truth_dir=layout.ground_truth_dir,
                                  output_dir=tmp_path, pred_mapping=shipped_mapping("a-eval"),
                                  settings=ScoreSettings(metrics=("dice", "nsd")),
                                  output_relative_path="images/liver-segmentation", resamples=0)
    # the jobs declare their output socket: it is taken from them, whatever the flag says
    assert result["aggregates"]["dice"]["mean"] == metrics_without_flag(layout, tmp_path)["aggregates"]["dice"]["mean"]
    assert by_case(layout, result)[("btcv", "img0001")]["status"] == "ok"


def metrics_without_flag(layout, tmp_path):
    return evaluate_predictions(input_dir=layout.input_dir, ground_truth_dir=layout.ground_truth_dir,
                                output_dir=tmp_path / "default", pred_mapping=shipped_mapping("a-eval"),
                                settings=ScoreSettings(metrics=("dice", "nsd")), output_relative_path=RELATIVE_PATH,
                                resamples=0)


def _rewrite_jobs(layout, tmp_path, change) -> Path:
    """A copy of the evaluation input whose predictions.json went through `change(jobs)`."""
    shutil.copytree(layout.input_dir, tmp_path / "input")
    jobs = json.loads((tmp_path / "input" / "predictions.json").read_text())
    change(jobs)
    (tmp_path / "input" / "predictions.json").write_text(json.dumps(jobs))
    return tmp_path / "input"


def test_output_path_comes_from_the_jobs_own_socket(layout, tmp_path):
    def move(jobs):  # newer files name the socket `socket`; this phase's output lies elsewhere
        for job in jobs:
            output = job["outputs"][0]
            output["socket"] = {**output.pop("interface"), "relative_path": "images/organs"}
            source = tmp_path / "input" / job["pk"] / "output" / RELATIVE_PATH
            if source.is_dir():
                source.rename(tmp_path / "input" / job["pk"] / "output" / "images" / "organs")

    input_dir = _rewrite_jobs(layout, tmp_path, move)
    result = evaluate_predictions(input_dir=input_dir, ground_truth_dir=layout.ground_truth_dir,
                                  output_dir=tmp_path / "out", pred_mapping=shipped_mapping("a-eval"),
                                  settings=ScoreSettings(metrics=("dice", "nsd")), output_relative_path=RELATIVE_PATH,
                                  resamples=0)
    assert by_case(layout, result)[("btcv", "img0001")]["status"] == "ok"
    assert result["aggregates"]["dice"]["mean"] == metrics_without_flag(layout, tmp_path)["aggregates"]["dice"]["mean"]


def test_misconfigured_phase_exits_non_zero_and_writes_no_metrics(layout, tmp_path, capsys):
    from harness.errors import HarnessError

    def rename(jobs):  # the phase's archive is another one: no input image name is in the ground truth
        for job in jobs:
            job["inputs"][0]["image"]["name"] = f"other-{job['pk']}.mha"

    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(HarnessError, match="none of the 7 algorithm jobs matches the ground truth"):
        run_cli("gc-evaluate", "--input", str(_rewrite_jobs(layout, tmp_path / "a", rename)), "--ground-truth",
                str(layout.ground_truth_dir), "--output", str(out), "--workers", "1", "--bootstrap", "0", "-q")
    assert not (out / "metrics.json").exists()

    def undeclare(jobs):  # outputs nowhere the jobs or the flag say
        for job in jobs:
            job["outputs"] = []

    with pytest.raises(HarnessError, match=r"no output of any of the 6 matched jobs was found .*images/elsewhere"):
        run_cli("gc-evaluate", "--input", str(_rewrite_jobs(layout, tmp_path / "b", undeclare)), "--ground-truth",
                str(layout.ground_truth_dir), "--output", str(out), "--workers", "1", "--bootstrap", "0", "-q",
                "--output-relative-path", "images/elsewhere")
    assert not (out / "metrics.json").exists()


def test_metrics_json_does_not_pair_images_with_cases(layout, metrics):
    text = (layout.output_dir / "metrics.json").read_text()
    ground_truth = load_ground_truth(layout.ground_truth_dir)
    for case in ground_truth.cases:
        assert case.case_id not in text and image_stem(case.image_name) not in text
    assert "labels/btcv" not in text and "labels/amos_mr" not in text
    for entry in metrics["results"]:
        assert set(entry) == {"pk", "case_ref", "status", "error_kind", "error", "dice", "nsd", "metrics"}
    # the organizer maps them back with the ground truth, and only with it
    assert set(by_case(layout, metrics)) == set(layout.expected)


def test_a_two_dimensional_output_is_a_geometry_error(layout, tmp_path):
    import numpy as np
    import SimpleITK as sitk

    input_dir = _rewrite_jobs(layout, tmp_path, lambda jobs: None)
    pk = layout.job_of_case[("btcv", "img0001")]
    (output,) = (input_dir / pk / "output" / RELATIVE_PATH).iterdir()
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((8, 8), np.uint8)), str(output))
    result = evaluate_predictions(input_dir=input_dir, ground_truth_dir=layout.ground_truth_dir,
                                  output_dir=tmp_path / "out", pred_mapping=shipped_mapping("a-eval"),
                                  settings=ScoreSettings(metrics=("dice", "nsd")), output_relative_path=RELATIVE_PATH,
                                  resamples=0)
    case = by_case(layout, result)[("btcv", "img0001")]
    assert case["error_kind"] == "geometry_mismatch" and "2-D; expected 3-D" in case["error"]


def test_leaderboard_reads_gc_metrics_with_the_ground_truth(layout, metrics, tmp_path):
    from harness.publish.leaderboard import build_leaderboard, load_submissions

    with pytest.raises(LeaderboardError, match="--gc-ground-truth"):
        load_submissions([str(layout.output_dir / "metrics.json")])
    submissions = load_submissions([f"platform={layout.output_dir / 'metrics.json'}"],
                                   gc_ground_truth=layout.ground_truth_dir)
    document = build_leaderboard(submissions, resamples=0)
    entry = document["submissions"][0]
    assert entry["name"] == "platform"
    assert entry["test_sets"]["btcv"]["dice"]["score"] == pytest.approx(metrics["aggregates"]["btcv"]["dice"])
    assert entry["groups"]["all"]["dice"]["score"] == pytest.approx(metrics["aggregates"]["dice"]["mean"])
    assert entry["test_sets"]["btcv"]["n_failed"] == 2
    assert run_cli("leaderboard", str(layout.output_dir / "metrics.json"), "--gc-ground-truth",
                   str(layout.ground_truth_dir), "--out", str(tmp_path / "board"), "--bootstrap", "0", "-q") == 0
    assert (tmp_path / "board" / "leaderboard.html").is_file()


def test_a_broken_ground_truth_or_input_stops_the_evaluation(layout, tmp_path):
    with pytest.raises(PredictionsError, match="predictions.json does not exist"):
        evaluate_predictions(input_dir=tmp_path, ground_truth_dir=layout.ground_truth_dir, output_dir=tmp_path,
                             pred_mapping=shipped_mapping("a-eval"), settings=ScoreSettings(),
                             output_relative_path=RELATIVE_PATH)
    with pytest.raises(GroundTruthError, match="ground truth of benchmark 'gc-test', not 'a-eval'"):
        load_ground_truth(layout.ground_truth_dir, benchmark="a-eval")
    with pytest.raises(GroundTruthError, match="no ground_truth.json"):
        load_ground_truth(tmp_path)
    broken = tmp_path / "gt"
    shutil.copytree(layout.ground_truth_dir, broken)
    index = json.loads((broken / "ground_truth.json").read_text())
    index["cases"][1]["image_name"] = index["cases"][0]["image_name"].replace(".nii.gz", ".mha")
    (next(broken.glob("labels/amos_mr/*"))).unlink()
    (broken / "ground_truth.json").write_text(json.dumps(index))
    with pytest.raises(GroundTruthError, match=r"image names must be unique.*label file labels/amos_mr/.* is missing"):
        load_ground_truth(broken)
    assert not (tmp_path / "metrics.json").exists()


def test_ground_truth_index_as_the_organizer_builds_it(layout):
    ground_truth = load_ground_truth(layout.ground_truth_dir, benchmark="gc-test")
    assert [m.key for m in ground_truth.manifests] == ["btcv", "amos_mr"]
    assert len(ground_truth.cases) == 7
    names = [c.image_name for c in ground_truth.cases]
    assert all(n.endswith(".nii.gz") and "img" not in n and "amos" not in n for n in names)  # opaque
    first = ground_truth.cases[0]
    assert ground_truth.match([first.image_name]) == [first]
    assert ground_truth.match([image_stem(first.image_name) + ".mha"]) == [first]
    assert ground_truth.match(["other.mha"]) == []
    assert image_stem("a.b.nii.gz") == "a.b" and image_stem("x.tif") == "x" and image_stem("noext") == "noext"


def test_nnunet_policy_writes_null_not_nan(layout, tmp_path):
    assert run_cli("gc-evaluate", "--input", str(layout.input_dir), "--ground-truth", str(layout.ground_truth_dir),
                   "--output", str(tmp_path), "--empty-policy", "nnunet", "--metrics", "dice", "--workers", "1",
                   "--bootstrap", "0", "-q") == 0
    metrics = read_json(tmp_path / "metrics.json", "gc_metrics")
    assert metrics["settings"] == {"empty_policy": "nnunet", "metrics": ["dice", "nsd"]}  # nsd always scored
    perfect = by_case(layout, metrics)[("btcv", "img0001")]
    assert perfect["metrics"]["gallbladder"]["dice"] is None  # absent from both: undefined, not 1
    assert perfect["dice"] == 1.0  # the mean over the organs that are defined
    # BTCV with nan-means: painted organs (1 + 1 + 0 + 0)/4 and kidney_left 1/4; absent organs only 0s
    assert metrics["aggregates"]["btcv"]["organs"]["gallbladder"]["dice"] == 0.0
    assert "NaN" not in (tmp_path / "metrics.json").read_text()
