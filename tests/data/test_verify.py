"""harness data verify: a prepared root passes; each kind of damage is one line naming case and file."""

from __future__ import annotations

import numpy as np
import pytest

from harness.cli import build_parser
from harness.data.verify import verify
from harness.errors import HarnessError
from harness.imageio import Geometry
from harness.jsonio import read_json, write_json_atomic
from harness.manifest import sha256_file

from tests.data import sources as src


def run_cli(*argv: str) -> int:
    """`harness data ARGV --no-progress` as the command dispatches it (a HarnessError propagates)."""
    args = build_parser().parse_args(["data", *argv, "--no-progress"])
    return args.func(args)


@pytest.fixture()
def prepared(tmp_path, run_prepare):
    """A data root with btcv prepared from a three-case download."""
    run_prepare("btcv", src.make_btcv(tmp_path / "btcv"))
    return run_prepare.root


def _rewrite_label(root, case_id: str, array: np.ndarray, geometry: Geometry) -> None:
    """Replace a prepared label and record its new sha256, so only the intended problem remains."""
    path = root / "btcv" / "labels" / f"{case_id}.nii.gz"
    src.write(path, array, geometry)
    manifest_path = root / "manifests" / "btcv.json"
    document = read_json(manifest_path, "manifest")
    for case in document["cases"]:
        if case["case_id"] == case_id:
            case["label_sha256"] = sha256_file(path)
    write_json_atomic(manifest_path, document, "manifest")


def test_prepared_root_verifies(prepared, capsys):
    assert run_cli("verify", "--data-root", str(prepared)) == 0
    out = capsys.readouterr().out
    assert "btcv: 3/3 cases, 0 problem(s)" in out and "all good" in out


def test_corrupted_file_is_a_checksum_problem(prepared, capsys):
    image = prepared / "btcv" / "images" / "img0002.nii.gz"
    data = bytearray(image.read_bytes())
    data[len(data) // 2] ^= 0xFF
    image.write_bytes(bytes(data))
    assert run_cli("verify", "btcv", "--data-root", str(prepared)) == 1
    lines = [l for l in capsys.readouterr().out.splitlines() if "sha256" in l]
    assert len(lines) == 1 and lines[0].startswith("btcv img0002 btcv/images/img0002.nii.gz: image sha256")


def test_label_off_the_image_grid_is_reported(prepared):
    shifted = src.grid("lps", centre=(0.0, 0.0, 2.5))
    _rewrite_label(prepared, "img0001", src.expected_labels(shifted), shifted)
    report = verify(str(prepared / "manifests"), prepared)
    assert [p.line() for p in report.problems] == [
        "btcv img0001 btcv/labels/img0001.nii.gz: label is not on the image's grid: origin "
        "(-30, -30, -25) != (-30, -30, -27.5) mm"]


def test_label_value_outside_the_taxonomy_is_reported(prepared):
    geometry = src.grid("lps")
    labels = src.expected_labels(geometry)
    labels[0, 0, :3] = 11
    _rewrite_label(prepared, "img0003", labels, geometry)
    (problem,) = verify(str(prepared / "manifests"), prepared).problems
    assert problem.case_id == "img0003" and problem.path == "btcv/labels/img0003.nii.gz"
    assert "outside gt_label_map 'a-eval' (0..10): 11 (3 voxels)" in problem.message


def test_missing_file_and_case_count(prepared):
    (prepared / "btcv" / "labels" / "img0001.nii.gz").unlink()
    manifest_path = prepared / "manifests" / "btcv.json"
    document = read_json(manifest_path, "manifest")
    document["expected_case_count"] = 30
    write_json_atomic(manifest_path, document, "manifest")
    lines = [p.line() for p in verify(str(prepared / "manifests"), prepared).problems]
    assert any(l.startswith("btcv: 3 cases listed") and "30 expected" in l for l in lines)
    assert "btcv img0001 btcv/labels/img0001.nii.gz: label file missing under" in "\n".join(lines)


def test_unprepared_shipped_benchmark_says_how_to_prepare(tmp_path):
    report = verify("a-eval", tmp_path, keys=["word"])
    assert [p.line() for p in report.problems][0].endswith(
        "lists no cases: prepare it with `harness data prepare word --source DIR --data-root R`")


def test_unknown_test_set_is_a_usage_error(prepared):
    with pytest.raises(HarnessError, match="unknown test set.*nope.*available: btcv"):
        run_cli("verify", "nope", "--data-root", str(prepared))


def test_synthetic_benchmark_verifies_with_unchecked_checksums(tmp_path, capsys):
    from harness.data.synth import synthesize

    synthesize(tmp_path, keys=["btcv"])
    assert run_cli("verify", "btcv", "--benchmark", "synthetic", "--data-root", str(tmp_path)) == 0
    assert "btcv: 4/4 cases, 0 problem(s), no sha256 recorded (not checked)" in capsys.readouterr().out
    label = tmp_path / "RawData" / "Training" / "label" / "label0002.nii.gz"
    label.unlink()
    assert run_cli("verify", "btcv", "--benchmark", "synthetic", "--data-root", str(tmp_path)) == 1
