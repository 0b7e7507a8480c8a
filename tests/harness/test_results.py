import json
import math

import pytest

from harness.errors import HarnessError, SchemaError
from harness.jsonio import read_json, write_json_atomic
from harness.manifest import load_benchmark
from harness.results import ResultsStore, aggregate, failed_record, ok_record, summarize_dataset

ORGANS = ["liver", "spleen"]
SETTINGS = {"empty_policy": "aeval", "metrics": ["dice", "nsd"]}


def _ok(case_id, liver, spleen):
    return ok_record(case_id, {"liver": {"dice": liver, "nsd": liver, "gt_voxels": 5, "pred_voxels": 5},
                               "spleen": {"dice": spleen, "nsd": spleen, "gt_voxels": 5, "pred_voxels": 5}})


def test_aggregation_is_mean_of_organ_means_and_failed_cases_score_zero():
    manifest = load_benchmark("synthetic", keys=["btcv"])[0]
    cases = [_ok("img0001", 0.9, 0.5), _ok("img0002", 0.7, 0.3),
             failed_record("img0003", kind="crash", message="boom", organs=ORGANS, metrics=["dice", "nsd"])]
    summary = summarize_dataset(manifest, cases, organs=ORGANS, metrics=["dice", "nsd"])
    assert summary["organs"]["liver"]["dice"] == pytest.approx((0.9 + 0.7 + 0) / 3)
    assert summary["organs"]["spleen"]["dice"] == pytest.approx((0.5 + 0.3 + 0) / 3)
    assert summary["dice"] == pytest.approx(((1.6 / 3) + (0.8 / 3)) / 2)
    assert summary["n_failed"] == 1 and summary["complete"] is False


def test_ct_mr_all_means_over_dataset_scores():
    datasets = {"a": {"modality": "CT", "dice": 0.8, "nsd": 0.6}, "b": {"modality": "CT", "dice": 0.6, "nsd": 0.4},
                "c": {"modality": "MR", "dice": 0.2, "nsd": None}}
    result = aggregate(datasets)
    assert result["ct"]["dice"] == pytest.approx(0.7)
    assert result["mr"]["dice"] == pytest.approx(0.2) and result["mr"]["nsd"] is None
    assert result["all"]["dice"] == pytest.approx((0.8 + 0.6 + 0.2) / 3)
    assert result["all"]["datasets"] == ["a", "b", "c"]


def test_nan_becomes_null_with_flag_and_is_left_out_of_means():
    manifest = load_benchmark("synthetic", keys=["btcv"])[0]
    both_empty = ok_record("img0001", {"liver": {"dice": math.nan, "nsd": math.nan, "gt_voxels": 0, "pred_voxels": 0},
                                       "spleen": {"dice": 0.5, "nsd": 0.5, "gt_voxels": 3, "pred_voxels": 3}})
    assert both_empty["metrics"]["liver"]["dice"] is None
    assert "absent_in_both" in both_empty["metrics"]["liver"]["flags"]
    assert "dice_undefined" in both_empty["metrics"]["liver"]["flags"]
    summary = summarize_dataset(manifest, [both_empty, _ok("img0002", 0.8, 0.7)], organs=ORGANS, metrics=["dice", "nsd"])
    assert summary["organs"]["liver"]["dice"] == pytest.approx(0.8)
    assert summary["organs"]["liver"]["n_defined"] == 1


def _store(path, **kwargs):
    return ResultsStore.open(path, benchmark="synthetic", settings=SETTINGS, organs=ORGANS,
                             manifests=load_benchmark("synthetic"), **kwargs)


def test_store_writes_valid_json_after_each_case_and_resumes(tmp_path):
    path = tmp_path / "results.json"
    store = _store(path, submission={"name": "x", "image_id": "sha256:aa"})
    store.add("btcv", _ok("img0001", 0.9, 0.8))
    first = read_json(path, "results")
    assert [c["case_id"] for c in first["datasets"]["btcv"]["cases"]] == ["img0001"]
    assert (tmp_path / "results.cases.csv").read_text().count("\n") == 1 + 2
    resumed = _store(path, submission={"name": "x", "image_id": "sha256:aa"})
    assert resumed.finished("btcv") == {"img0001"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.cases.csv", "results.json"]  # no temp files left


def test_resume_refuses_results_of_another_image(tmp_path):
    path = tmp_path / "results.json"
    _store(path, submission={"name": "x", "image_id": "sha256:aa"}).add("btcv", _ok("img0001", 0.9, 0.8))
    with pytest.raises(HarnessError, match="image id sha256:aa vs sha256:bb"):
        _store(path, submission={"name": "x", "image_id": "sha256:bb"})


def test_no_nan_or_infinity_ever_written(tmp_path):
    path = tmp_path / "x.json"
    write_json_atomic(path, {"a": math.inf, "b": [math.nan, 1.5]})
    assert json.loads(path.read_text()) == {"a": None, "b": [None, 1.5]}
    path.write_text('{"a": NaN}')
    with pytest.raises(SchemaError, match="NaN/Infinity are not allowed"):
        read_json(path)


def test_schema_violation_is_refused_before_writing(tmp_path):
    path = tmp_path / "results.json"
    with pytest.raises(SchemaError, match="invalid results document"):
        write_json_atomic(path, {"schema_version": 1}, "results")
    assert not path.exists()
