"""The real downloads as they are: TotalSegmentator's non-orthonormal headers, WORD's separate test
labels, FLARE22's Testing/ folder, AMOS's 100 validation CTs, and the release each set is built from."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from harness.cli import build_parser
from harness.data.prepare import prepare
from harness.errors import CaseFailed, HarnessError
from harness.imageio import Geometry, read_header_approximating, read_image, read_image_approximating
from harness.manifest import load_benchmark, load_manifest_file, sha256_file
from harness.nifti_direction import MAX_APPROXIMATION_DEGREES, nearest_orthonormal

from tests.data import sources as src
from tests.data.conftest import label_of, manifest_of


def run_cli(*argv: str) -> int:
    """`harness data ARGV --no-progress` as the command dispatches it (a HarnessError propagates)."""
    args = build_parser().parse_args(["data", *argv, "--no-progress"])
    return args.func(args)


def _sheared_file(tmp_path, shear: float = src.SHEAR):
    geometry = src.grid("ras")
    array = src.image(geometry)
    return src.write_sheared(tmp_path / "sheared.nii.gz", array, geometry, shear), array, geometry


# ---------------------------------------------------------------- 1. non-orthonormal direction cosines


def test_the_fixture_is_what_itk_refuses(tmp_path):
    """The premise: plain SimpleITK cannot read the fixture (so the tests below can fail)."""
    path, _, _ = _sheared_file(tmp_path)
    header = nib.load(str(path)).header
    assert int(header["qform_code"]) == 0 and int(header["sform_code"]) == 1
    with pytest.raises(RuntimeError, match="orthonormal direction cosines"):
        sitk.ReadImage(str(path))
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    with pytest.raises(RuntimeError, match="orthonormal direction cosines"):
        reader.ReadImageInformation()


def test_reading_falls_back_to_the_nearest_rotation_and_says_by_how_much(tmp_path):
    path, array, geometry = _sheared_file(tmp_path)
    image, approximation = read_image_approximating(path)
    assert np.array_equal(sitk.GetArrayFromImage(image), array) and image.GetPixelID() == sitk.sitkInt16
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    assert np.allclose(direction @ direction.T, np.eye(3), atol=1e-12)
    assert not Geometry.of(image).differences(geometry, direction_atol=2 * src.SHEAR)
    # the header's unit axes are ~SHEAR from a rotation: that is what is recorded
    assert src.SHEAR / 4 < approximation.max_abs_deviation < src.SHEAR
    assert 0.005 < approximation.max_angle_degrees < 0.1
    header = read_header_approximating(path)
    assert header.geometry == Geometry.of(image) and header.approximation == approximation
    assert (header.dimension, header.components) == (3, 1)
    # evaluate's and the runner's reader (harness.imageio.read_image) takes the same decision
    assert Geometry.of(read_image(path, case_id="c", role="ground truth", kind="unreadable_ground_truth")) \
        == Geometry.of(image)


def test_an_orthonormal_file_is_read_by_itk_unchanged(tmp_path):
    geometry = src.grid("ras")
    path = src.write(tmp_path / "clean.nii.gz", src.image(geometry), geometry)
    image, approximation = read_image_approximating(path)
    assert approximation is None and read_header_approximating(path).approximation is None
    assert Geometry.of(image) == Geometry.of(sitk.ReadImage(str(path)))


def test_nearest_orthonormal_is_the_polar_factor():
    rng = np.random.default_rng(0)
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    assert np.allclose(nearest_orthonormal(rotation), rotation)
    skewed = rotation @ (np.eye(3) + 0.01 * rng.normal(size=(3, 3)))
    nearest = nearest_orthonormal(skewed)
    assert np.allclose(nearest.T @ nearest, np.eye(3))
    # no other rotation near it is closer to the skewed matrix
    for _ in range(20):
        angle = rng.normal(size=3) * 1e-3
        small, _ = np.linalg.qr(np.eye(3) + np.array([[0, -angle[2], angle[1]], [angle[2], 0, -angle[0]],
                                                         [-angle[1], angle[0], 0]]))
        small *= np.sign(np.diag(small))
        assert np.linalg.norm(skewed - nearest) <= np.linalg.norm(skewed - nearest @ small) + 1e-12


def test_a_real_shear_is_refused_not_rotated(tmp_path):
    shear = np.tan(np.radians(MAX_APPROXIMATION_DEGREES * 2))
    path, _, _ = _sheared_file(tmp_path, shear=shear)
    with pytest.raises(RuntimeError, match="degrees from the nearest rotation.*resampled"):
        read_image_approximating(path)
    with pytest.raises(CaseFailed, match=r"case c: cannot read prediction .*sheared\.nii\.gz.*sheared"):
        read_image(path, case_id="c", role="prediction", kind="unreadable_prediction")


def test_run_staging_converts_such_a_file_for_the_container(tmp_path):
    from harness.manifest import InputSocket
    from harness.runner.protocols.gc import stage_case

    path, array, _ = _sheared_file(tmp_path)
    job = stage_case(image_path=path, socket=InputSocket("ct-image", "CT Image", "images/ct"),
                     scratch=tmp_path / "scratch")
    (staged,) = (job.input_dir / "images" / "ct").iterdir()
    image = sitk.ReadImage(str(staged))  # plain ITK reads what the container gets
    assert np.array_equal(sitk.GetArrayFromImage(image), array)


def test_evaluate_scores_against_a_ground_truth_with_such_a_header(tmp_path):
    from harness.labelmap import shipped_mapping
    from harness.scoring.case import CaseJob, score_files

    geometry = src.grid("ras")
    truth = src.expected_labels(geometry)
    gt = src.write_sheared(tmp_path / "gt.nii.gz", truth, geometry)
    prediction = src.write_sheared(tmp_path / "pred.nii.gz", truth, geometry)  # a container copied the header
    mapping = shipped_mapping("a-eval")
    record = score_files(CaseJob(case_id="c", gt_path=gt, pred_path=prediction, gt_mapping=mapping,
                                 pred_mapping=mapping))
    assert record["status"] == "ok", record["error"]
    assert all(scores["dice"] == 1.0 for scores in record["metrics"].values())


@pytest.mark.parametrize("modality", ["CT", "MR"])
def test_totalseg_subjects_with_non_orthonormal_headers_are_prepared_with_clean_ones(tmp_path, run_prepare, modality):
    key = "totalseg_ct" if modality == "CT" else "totalseg_mr"
    splits = {"s0001": "test", "s0002": "test", "s0004": "train"}
    source = src.make_totalseg(tmp_path / "TS", splits, modality=modality, sheared=("s0002", "s0004"))
    base = next(source.iterdir())
    image_name = "ct.nii.gz" if modality == "CT" else "mri.nii.gz"
    with pytest.raises(RuntimeError, match="orthonormal"):
        sitk.ReadImage(str(base / "s0002" / image_name))
    before = src.tree_digest(source)
    report = run_prepare(key, source)
    assert report.ok and [o.status for o in report.outcomes] == ["prepared", "prepared"]
    notes = {o.case_id: " ".join(o.notes) for o in report.outcomes}
    assert "non-orthonormal direction cosines" in notes["s0002"] and "orthonormal" not in notes["s0001"]

    root = run_prepare.root
    manifest = manifest_of(root, key)
    cases = {c["case_id"]: c for c in manifest["cases"]}
    assert "direction_approximated" not in cases["s0001"]
    approximated = cases["s0002"]["direction_approximated"]
    assert 0 < approximated["max_abs_deviation"] < src.SHEAR and 0 < approximated["max_angle_degrees"] < 0.1
    # the clean subject's image is the published file; the broken one is rewritten with a clean header
    assert (root / cases["s0001"]["image"]).read_bytes() == (base / "s0001" / image_name).read_bytes()
    prepared = root / cases["s0002"]["image"]
    assert cases["s0002"]["image_sha256"] == sha256_file(prepared)
    clean = sitk.ReadImage(str(prepared))  # plain ITK: no fallback needed any more
    header = nib.load(str(prepared)).header
    assert int(header["qform_code"]) > 0 and int(header["sform_code"]) > 0
    source_voxels = np.asanyarray(nib.load(str(base / "s0002" / image_name)).dataobj).transpose(2, 1, 0)
    assert np.array_equal(sitk.GetArrayFromImage(clean), source_voxels)
    assert clean.GetPixelID() == (sitk.sitkInt16 if modality == "CT" else sitk.sitkFloat32)
    for case_id in ("s0001", "s0002"):
        labels, written = label_of(root, key, case_id)
        assert np.array_equal(labels, src.expected_labels(src.grid("ras")))
        assert not Geometry.of(sitk.ReadImage(str(root / cases[case_id]["image"]))).differences(Geometry.of(written))
    assert src.tree_digest(source) == before
    # the manifest loads through the harness's reader, with the record
    load_manifest_file.cache_clear()
    (loaded,) = load_benchmark(str(root / "manifests"))
    assert loaded.case("s0002").direction_approximated.max_angle_degrees == approximated["max_angle_degrees"]
    assert loaded.case("s0001").direction_approximated is None
    assert run_cli("verify", "--data-root", str(root)) == 0


def test_verify_reports_a_broken_header_in_the_data_root(tmp_path, run_prepare):
    source = src.make_totalseg(tmp_path / "TS", {"s0001": "test"}, sheared=("s0001",))
    run_prepare("totalseg_ct", source)
    from harness.data.verify import verify
    from harness.jsonio import read_json, write_json_atomic

    root = run_prepare.root
    image = root / "totalseg_ct" / "images" / "s0001.nii.gz"
    image.write_bytes((next(source.iterdir()) / "s0001" / "ct.nii.gz").read_bytes())
    manifest_path = root / "manifests" / "totalseg_ct.json"
    document = read_json(manifest_path, "manifest")
    document["cases"][0]["image_sha256"] = sha256_file(image)
    write_json_atomic(manifest_path, document, "manifest")
    (problem,) = verify(str(root / "manifests"), root).problems
    assert problem.case_id == "s0001" and problem.path == "totalseg_ct/images/s0001.nii.gz"
    assert "non-orthonormal direction cosines" in problem.message and "prepare it again" in problem.message


# ---------------------------------------------------------------- 2. WORD's separate test labels


def _word_expected(root, case_ids, geometries):
    for case_id, geometry in zip(case_ids, geometries):
        labels, _ = label_of(root, "word", case_id)
        assert np.array_equal(labels, src.expected_labels(geometry))


@pytest.mark.parametrize("where", ["beside", "labels_flag"])
def test_word_labels_unpacked_apart_from_the_images(tmp_path, run_prepare, where):
    geometries = {1: src.grid("lps"), 2: src.grid("ras")}
    labels = tmp_path / "download" / "labelsTs" if where == "beside" else tmp_path / "elsewhere" / "labelsTs"
    source = src.make_word(tmp_path / "download", geometries, labels_at=labels)
    assert not (source / "WORD-V0.1.0" / "labelsTs").exists()
    options = {"labels": labels} if where == "labels_flag" else {}
    report = run_prepare("word", source / "WORD-V0.1.0", **options)
    assert report.ok and [o.case_id for o in report.outcomes] == ["word_0001", "word_0002"]
    assert any(f"test labels taken from {labels}" in n for n in report.notes)
    _word_expected(run_prepare.root, ["word_0001", "word_0002"], [geometries[1], geometries[2]])
    assert run_cli("verify", "--data-root", str(run_prepare.root)) == 0


def test_word_without_its_label_archive_says_where_the_labels_are_published(tmp_path):
    source = src.make_word(tmp_path / "download", {1: src.grid("lps")}, labels_at=tmp_path / "not-unpacked")
    with pytest.raises(HarnessError, match=r"no labelsTs/.*WORD_V0\.1\.0_labelsTs\.zip.*HiLab-git/WORD.*--labels DIR"):
        prepare("word", source=source, data_root=tmp_path / "root", allow_count_mismatch=True)
    assert not (tmp_path / "root" / "word").exists()


def test_word_label_missing_from_the_archive_names_the_archive(tmp_path, run_prepare):
    source = src.make_word(tmp_path / "download", {1: src.grid("lps"), 2: src.grid("lps")})
    (source / "WORD-V0.1.0" / "labelsTs" / "word_0002.nii.gz").unlink()
    report = run_prepare("word", source)
    failed = report.with_status("failed")
    assert [o.case_id for o in failed] == ["word_0002"]
    assert "has no label file" in failed[0].problem and "WORD_V0.1.0_labelsTs.zip" in failed[0].problem


def test_labels_flag_is_refused_where_the_labels_come_with_the_images(tmp_path):
    source = src.make_btcv(tmp_path / "btcv", numbers=(1,))
    with pytest.raises(HarnessError, match="--labels is not used for btcv"):
        prepare("btcv", source=source, data_root=tmp_path / "root", labels=tmp_path, allow_count_mismatch=True)


def test_cli_takes_labels(tmp_path, capsys):
    labels = tmp_path / "labels-archive" / "labelsTs"
    source = src.make_word(tmp_path / "download", {1: src.grid("lps")}, labels_at=labels)
    root = tmp_path / "root"
    assert run_cli("prepare", "word", "--source", str(source), "--labels", str(labels), "--data-root", str(root),
                   "--allow-count-mismatch") == 0
    assert "word: 1 prepared" in capsys.readouterr().out


# ---------------------------------------------------------------- 3. releases and case lists


def test_every_shipped_manifest_names_its_release_and_where_its_cases_come_from():
    load_manifest_file.cache_clear()
    manifests = {m.key: m for m in load_benchmark("a-eval")}
    assert manifests["totalseg_ct"].release.name == "TotalSegmentator CT dataset v2.0.1"
    assert manifests["totalseg_mr"].release.name == "TotalSegmentator MRI dataset v1.0.0"
    assert "Totalsegmentator_dataset_v201.zip" in manifests["totalseg_ct"].release.archives
    assert "WORD_V0.1.0_labelsTs.zip" in manifests["word"].release.archives
    for manifest in manifests.values():
        release = manifest.release
        assert release is not None and release.name and release.test_cases
        if release.case_list is None:
            assert release.case_list_note  # either the list, or why there is none
        else:
            assert len(release.case_list) == manifest.expected_case_count
    assert manifests["flare22"].release.case_list[0] == "FLARETs_0001"
    assert manifests["flare22"].release.case_list[-1] == "FLARETs_0050"
    assert "img0011" not in manifests["btcv"].release.case_list and "img0040" in manifests["btcv"].release.case_list
    assert "not published" in manifests["amos_ct"].release.case_list_note.lower()


def test_prepared_manifest_carries_the_release(tmp_path, run_prepare):
    run_prepare("btcv", src.make_btcv(tmp_path / "btcv", numbers=(1,)))
    assert manifest_of(run_prepare.root, "btcv")["release"]["name"].startswith("BTCV")


def test_flare22_testing_folder_is_left_out_and_said(tmp_path, run_prepare):
    source = src.make_flare22(tmp_path / "FLARE22", numbers=(1, 2), testing=(1, 51, 52))
    report = run_prepare("flare22", source)
    assert report.ok and [o.case_id for o in report.outcomes] == ["FLARETs_0001", "FLARETs_0002"]
    assert any("left out 3 image(s)" in n and "Testing" in n for n in report.notes)
    for case_id in ("FLARETs_0001", "FLARETs_0002"):
        labels, _ = label_of(run_prepare.root, "flare22", case_id)
        assert np.array_equal(labels, src.expected_labels(src.grid("ras")))
        image = run_prepare.root / "flare22" / "images" / f"{case_id}.nii.gz"
        assert image.read_bytes() == (source / "Validation" / f"{case_id}_0000.nii.gz").read_bytes()
    assert run_cli("verify", "--data-root", str(run_prepare.root)) == 0


def test_flare22_count_error_names_the_testing_folder_and_the_validation_cases(tmp_path):
    source = src.make_flare22(tmp_path / "FLARE22", numbers=(1, 2), testing=(51,))
    with pytest.raises(HarnessError, match=r"expects 50 \(left out 1 image\(s\) under .*Testing.*"
                                           r"FLARETs_0001\.\.FLARETs_0050"):
        prepare("flare22", source=source, data_root=tmp_path / "root")


def test_flare22_labels_in_a_folder_of_their_own(tmp_path, run_prepare):
    labels = tmp_path / "tuning" / "labels"
    source = src.make_flare22(tmp_path / "FLARE22", numbers=(1,), labels_at=labels)
    (failed,) = run_prepare("flare22", source).outcomes  # the image is found, its label is elsewhere
    assert failed.status == "failed" and "has no label file" in failed.problem and "--labels DIR" in failed.problem
    report = run_prepare("flare22", source, labels=labels)
    assert report.ok and [o.case_id for o in report.outcomes] == ["FLARETs_0001"]


def test_amos_ct_count_error_says_the_40_are_not_published_and_what_to_do(tmp_path):
    source = src.make_amos(tmp_path / "download", ct=(8, 13, 22))
    with pytest.raises(HarnessError, match=r"found 3 .*expects 40.*40 of the 100 validation CTs.*AMOS 2022.*"
                                           r"Not published.*--cases FILE.*--allow-count-mismatch"):
        prepare("amos_ct", source=source, data_root=tmp_path / "root")


def test_btcv_takes_only_the_published_training_cases(tmp_path, run_prepare):
    source = src.make_btcv(tmp_path / "btcv", numbers=(1, 15, 21))  # img0015 is no BTCV training case
    report = run_prepare("btcv", source)
    assert [o.case_id for o in report.outcomes] == ["img0001", "img0021"]
    assert any("left out 1 case(s) that are not in the benchmark's published list of 30 (img0015)" in n
               for n in report.notes)


def test_totalseg_count_error_names_the_release(tmp_path):
    source = src.make_totalseg(tmp_path / "TS", {"s0001": "test", "s0002": "train"})
    with pytest.raises(HarnessError, match=r"expects 89.*1082 train / 57 val / 89 test.*from TotalSegmentator CT dataset v2\.0\.1"):
        prepare("totalseg_ct", source=source, data_root=tmp_path / "root")
