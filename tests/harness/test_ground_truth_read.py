"""The ground truth is read as strictly as a prediction: a broken download fails its case, by name."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from harness.labelmap import build_mapping, resolve_label_map
from harness.scoring.case import CaseJob, read_ground_truth, score_files
from tests.runner.outputs_helpers import compressed_zeros


def _labels(dtype=np.uint8) -> sitk.Image:
    voxels = np.random.default_rng(4).integers(0, 11, (20, 30, 40)).astype(dtype)
    image = sitk.GetImageFromArray(voxels)
    image.SetSpacing((0.8, 0.8, 2.5))
    image.SetOrigin((-100.0, 20.0, 5.0))
    return image


@pytest.mark.parametrize("dtype", [np.uint8, np.int16])
def test_a_ground_truth_reads_as_itk_reads_it(tmp_path, dtype):
    path = tmp_path / "case.nii.gz"
    sitk.WriteImage(_labels(dtype), str(path), useCompression=True)
    itk = sitk.ReadImage(str(path))
    truth = read_ground_truth(path, case_id="c1")
    assert truth.image is None  # inflated by the strict reader, not by ITK
    np.testing.assert_array_equal(truth.voxels, sitk.GetArrayFromImage(itk))
    assert truth.voxels.dtype == dtype and truth.geometry.size_xyz == itk.GetSize()
    assert truth.geometry.spacing_xyz == pytest.approx(itk.GetSpacing())
    assert truth.geometry.origin_xyz == pytest.approx(itk.GetOrigin())


def _job(tmp_path, gt_path) -> CaseJob:
    prediction = tmp_path / "pred.nii.gz"
    sitk.WriteImage(_labels(), str(prediction), useCompression=True)
    mapping = build_mapping(resolve_label_map("a-eval"))
    return CaseJob(case_id="c1", gt_path=gt_path, pred_path=prediction, gt_mapping=mapping, pred_mapping=mapping)


def test_a_truncated_ground_truth_fails_its_case_instead_of_scoring_stale_memory(tmp_path):
    whole = tmp_path / "whole.nii.gz"
    sitk.WriteImage(_labels(), str(whole), useCompression=True)
    truncated = tmp_path / "gt.nii.gz"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size * 3 // 4])
    assert sitk.ReadImage(str(truncated)).GetSize() == (40, 30, 20)  # ITK itself reads it without a word
    record = score_files(_job(tmp_path, truncated))
    assert record["status"] == "failed" and record["error_kind"] == "unreadable_ground_truth"
    assert "case c1: ground truth" in record["error"] and "gt.nii.gz is truncated" in record["error"]


def test_a_truncated_uncompressed_ground_truth_fails_its_case(tmp_path):
    whole = tmp_path / "whole.nii"
    sitk.WriteImage(_labels(), str(whole))
    cut = tmp_path / "gt.nii"
    cut.write_bytes(whole.read_bytes()[:-1000])
    record = score_files(_job(tmp_path, cut))
    assert record["error_kind"] == "unreadable_ground_truth" and "gt.nii is truncated" in record["error"]


def test_a_ground_truth_header_putting_its_voxels_a_gigabyte_in_is_refused(tmp_path):
    plain = tmp_path / "plain.nii"
    sitk.WriteImage(_labels(), str(plain))
    header = bytearray(plain.read_bytes()[:352])
    header[108:112] = np.array([1024**3], dtype="<f4").tobytes()  # vox_offset
    bomb = tmp_path / "gt.nii.gz"
    bomb.write_bytes(compressed_zeros(1024**3, prefix=bytes(header), wrapper="gzip"))
    record = score_files(_job(tmp_path, bomb))
    assert record["error_kind"] == "unreadable_ground_truth" and "vox_offset" in record["error"]


def test_a_whole_ground_truth_scores(tmp_path):
    path = tmp_path / "gt.nii.gz"
    sitk.WriteImage(_labels(), str(path), useCompression=True)
    record = score_files(_job(tmp_path, path))
    assert record["status"] == "ok"
    assert all(organ["dice"] == 1.0 for organ in record["metrics"].values())
