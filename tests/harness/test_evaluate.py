"""`harness evaluate` and `harness score` on real NIfTI/MHA files of the synthetic benchmark."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from harness.cli import main
from harness.jsonio import read_json
from harness.manifest import load_benchmark

REPO = Path(__file__).resolve().parents[2]


def _threshold_module():
    spec = importlib.util.spec_from_file_location("segment", REPO / "containers/examples/threshold/segment.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _predict(root: Path, key: str, out: Path, *, label_map: str = "a-eval", suffix: str = ".nii.gz") -> None:
    segment = _threshold_module()
    bands = segment.load_tables(REPO / "harness/data/synthetic_appearance.json",
                                REPO / f"ground_truth_manifests/label_maps/{label_map}.json")
    out.mkdir(parents=True, exist_ok=True)
    for case in load_benchmark("synthetic", keys=[key])[0].cases:
        sitk.WriteImage(segment.segment(sitk.ReadImage(str(root / case.image)), bands), str(out / f"{case.case_id}{suffix}"))


def _evaluate(root, key, preds, out, *extra):
    return main(["evaluate", "--benchmark", "synthetic", "--dataset", key, "--predictions", str(preds),
                 "--data-root", str(root), "--out", str(out), "--no-progress", "-q", "--workers", "2", *extra])


def test_perfect_predictions_in_another_label_convention(synthetic_root, tmp_path):
    _predict(synthetic_root, "amos_mr", tmp_path / "preds", label_map="flare22", suffix=".mha")
    assert _evaluate(synthetic_root, "amos_mr", tmp_path / "preds", tmp_path / "r.json", "--label-map", "flare22") == 0
    results = read_json(tmp_path / "r.json", "results")
    assert results["datasets"]["amos_mr"]["dice"] == pytest.approx(1.0)
    assert results["aggregates"]["mr"]["nsd"] == pytest.approx(1.0) and results["aggregates"]["ct"]["dice"] is None


def test_broken_cases_fail_precisely_and_the_others_are_scored(synthetic_root, tmp_path):
    preds = tmp_path / "preds"
    _predict(synthetic_root, "btcv", preds)
    (preds / "img0002.nii.gz").unlink()                                   # missing
    (preds / "img0003.nii.gz").write_bytes(b"\x1f\x8b not really a volume")  # unreadable
    image = sitk.ReadImage(str(preds / "img0004.nii.gz"))
    floating = sitk.Cast(image, sitk.sitkFloat32)
    sitk.WriteImage(floating, str(preds / "img0004.nii.gz"))              # float labels
    code = _evaluate(synthetic_root, "btcv", preds, tmp_path / "r.json")
    assert code == 1
    cases = {c["case_id"]: c for c in read_json(tmp_path / "r.json", "results")["datasets"]["btcv"]["cases"]}
    assert cases["img0001"]["status"] == "ok" and cases["img0001"]["metrics"]["liver"]["dice"] == 1.0
    assert cases["img0002"]["error_kind"] == "missing_prediction" and "img0002.nii.gz" in cases["img0002"]["error"]
    assert cases["img0003"]["error_kind"] == "unreadable_prediction" and "img0003" in cases["img0003"]["error"]
    assert cases["img0004"]["error_kind"] == "non_integer_labels" and "32-bit float" in cases["img0004"]["error"]
    for failed in ("img0002", "img0003", "img0004"):
        assert all(m["dice"] == 0.0 for m in cases[failed]["metrics"].values())
    csv_lines = (tmp_path / "r.cases.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + 4 * 10


def test_geometry_mismatch_is_refused(synthetic_root, tmp_path):
    preds = tmp_path / "preds"
    _predict(synthetic_root, "flare22", preds)
    image = sitk.ReadImage(str(preds / "FLARETs_0001.nii.gz"))
    image.SetOrigin([o + 5.0 for o in image.GetOrigin()])
    sitk.WriteImage(image, str(preds / "FLARETs_0001.nii.gz"))
    _evaluate(synthetic_root, "flare22", preds, tmp_path / "r.json")
    case = read_json(tmp_path / "r.json", "results")["datasets"]["flare22"]["cases"][0]
    assert case["error_kind"] == "geometry_mismatch" and "origin" in case["error"]


def test_resume_adds_a_second_dataset_to_the_same_file(synthetic_root, tmp_path):
    for key in ("btcv", "word"):
        _predict(synthetic_root, key, tmp_path / key)
        assert _evaluate(synthetic_root, key, tmp_path / key, tmp_path / "r.json") == 0
    results = read_json(tmp_path / "r.json", "results")
    assert set(results["datasets"]) == {"btcv", "word"} and results["aggregates"]["ct"]["datasets"] == ["word", "btcv"]  # the paper's order


def test_score_command_prints_json_per_organ(synthetic_root, tmp_path, capsys):
    case = load_benchmark("synthetic", keys=["totalseg_ct"])[0].cases[3]  # chest-only field of view
    _predict(synthetic_root, "totalseg_ct", tmp_path / "p")
    code = main(["score", str(synthetic_root / case.label), str(tmp_path / "p" / f"{case.case_id}.nii.gz"),
                 "--gt-label-map", "totalseg_ct_v2", "--json"])
    scores = json.loads(capsys.readouterr().out)
    assert code == 0 and scores["status"] == "ok"
    assert set(scores["organs"]) == {"spleen", "kidney_right", "kidney_left", "gallbladder", "liver", "stomach",
                                     "pancreas", "adrenal_gland_right", "adrenal_gland_left", "esophagus"}
    absent = [o for o, v in scores["organs"].items() if "absent_in_both" in v["flags"]]
    assert absent and all(scores["organs"][o]["dice"] == 1.0 for o in absent)


def test_score_command_with_nnunet_policy_gives_null_for_absent_organs(synthetic_root, tmp_path, capsys):
    case = load_benchmark("synthetic", keys=["totalseg_ct"])[0].cases[3]
    _predict(synthetic_root, "totalseg_ct", tmp_path / "p")
    main(["score", str(synthetic_root / case.label), str(tmp_path / "p" / f"{case.case_id}.nii.gz"),
          "--gt-label-map", "totalseg_ct_v2", "--json", "--empty-policy", "nnunet"])
    scores = json.loads(capsys.readouterr().out)
    absent = [o for o, v in scores["organs"].items() if "absent_in_both" in v["flags"]]
    assert absent and all(scores["organs"][o]["dice"] is None for o in absent)


def test_score_command_reports_a_mismatched_prediction(synthetic_root, tmp_path, capsys):
    case = load_benchmark("synthetic", keys=["btcv"])[0].cases[0]
    other = load_benchmark("synthetic", keys=["btcv"])[0].cases[2]  # a shorter field of view
    code = main(["score", str(synthetic_root / case.label), str(synthetic_root / other.label),
                 "--gt-label-map", "btcv", "--pred-label-map", "btcv"])
    assert code == 1 and "does not match the input's grid: size" in capsys.readouterr().err
