"""harness data prepare: each source's layout and conventions, the conversions, resume and safety."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from harness.data.prepare import prepare
from harness.errors import HarnessError
from harness.imageio import Geometry
from harness.manifest import load_benchmark, load_manifest_file, sha256_file

from tests.data import sources as src
from tests.data.conftest import label_of, manifest_of


def _assert_prepared(root, key, source_images: dict, geometry_of: dict, *, omit: dict | None = None):
    """Manifest, checksums, image bytes and benchmark-id labels of every prepared case."""
    manifest = manifest_of(root, key)
    assert manifest["gt_label_map"] == "a-eval"
    assert [c["case_id"] for c in manifest["cases"]] == sorted(source_images)
    for case in manifest["cases"]:
        cid = case["case_id"]
        assert case["image"] == f"{key}/images/{cid}.nii.gz" and case["label"] == f"{key}/labels/{cid}.nii.gz"
        assert case["image_sha256"] == sha256_file(root / case["image"])
        assert case["label_sha256"] == sha256_file(root / case["label"])
        assert (root / case["image"]).read_bytes() == source_images[cid].read_bytes()
        labels, written = label_of(root, key, cid)
        assert written.GetPixelID() == sitk.sitkUInt8
        expected = src.expected_labels(geometry_of[cid], omit=(omit or {}).get(cid, ()))
        assert np.array_equal(labels, expected), (cid, np.unique(labels), np.unique(expected))
        image = sitk.ReadImage(str(root / case["image"]))
        assert not Geometry.of(image).differences(Geometry.of(written))


def test_flare22_takes_the_validation_set_in_benchmark_ids(tmp_path, run_prepare):
    source = src.make_flare22(tmp_path / "FLARE22")
    before = src.tree_digest(source)
    report = run_prepare("flare22", source)
    assert report.ok and [o.status for o in report.outcomes] == ["prepared"] * 3
    images = {f"FLARETs_{n:04d}": source / "Validation" / f"FLARETs_{n:04d}_0000.nii.gz" for n in (1, 2, 3)}
    _assert_prepared(run_prepare.root, "flare22", images, {cid: src.grid("ras") for cid in images})
    assert src.tree_digest(source) == before


def test_amos_ct_and_mr_each_take_only_their_own_ids(tmp_path, run_prepare):
    source = src.make_amos(tmp_path / "download")
    before = src.tree_digest(source)
    ct = run_prepare("amos_ct", source)
    mr = run_prepare("amos_mr", source)
    assert [o.case_id for o in ct.outcomes] == ["amos_0008", "amos_0013"]
    assert [o.case_id for o in mr.outcomes] == ["amos_0507", "amos_0510"]
    assert any("left out 2 MR" in n for n in ct.notes) and any("left out 2 CT" in n for n in mr.notes)
    for key, report in (("amos_ct", ct), ("amos_mr", mr)):
        images = {o.case_id: source / "amos22" / "imagesVa" / f"{o.case_id}.nii.gz" for o in report.outcomes}
        _assert_prepared(run_prepare.root, key, images, {cid: src.grid("ras") for cid in images})
    assert src.tree_digest(source) == before


def _right_adrenal_on_patients_right(labels: np.ndarray, geometry: Geometry) -> None:
    from harness.data.synth import physical_points

    x = np.broadcast_to(physical_points(geometry)[0], labels.shape)
    centre_x = src.centre_of(geometry)[0]
    assert (x[labels == 8] < centre_x).all() and (labels == 8).any()  # LPS: right = smaller x
    assert (x[labels == 9] > centre_x).all() and (labels == 9).any()


def test_word_adrenal_split_follows_the_patients_side_not_array_order(tmp_path, run_prepare):
    geometries = {1: src.grid("lps"), 2: src.grid("ras"), 3: src.grid("ras", centre=(40.0, -10.0, 300.0))}
    source = src.make_word(tmp_path / "WORD", geometries)
    # the trap: in array order the right adrenal is at low x index in case 1, at high x index in case 2
    native1, native2 = (src.word_native(geometries[i]) for i in (1, 2))
    assert np.array_equal(native1[:, :, ::-1][:, ::-1, :], native2)
    before = src.tree_digest(source)
    report = run_prepare("word", source)
    assert report.ok and [o.case_id for o in report.outcomes] == ["word_0001", "word_0002", "word_0003"]
    images = {f"word_{n:04d}": source / "WORD-V0.1.0" / "imagesTs" / f"word_{n:04d}.nii.gz" for n in geometries}
    _assert_prepared(run_prepare.root, "word", images, {f"word_{n:04d}": g for n, g in geometries.items()})
    for n, geometry in geometries.items():
        labels, _ = label_of(run_prepare.root, "word", f"word_{n:04d}")
        _right_adrenal_on_patients_right(labels, geometry)
    notes = {o.case_id: " ".join(o.notes) for o in report.outcomes}
    assert "midpoint of the kidneys" in notes["word_0003"] and "x=40.0 mm" in notes["word_0003"]
    assert src.tree_digest(source) == before


def test_word_without_kidneys_splits_at_the_body_centroid(tmp_path, run_prepare):
    geometry = src.grid("ras", centre=(-25.0, 0.0, 0.0))
    source = src.make_word(tmp_path / "WORD", {7: geometry})
    label_path = source / "WORD-V0.1.0" / "labelsTs" / "word_0007.nii.gz"
    src.write(label_path, src.word_native(geometry, omit=("kidney_right", "kidney_left")), geometry)
    report = run_prepare("word", source)
    assert report.ok
    labels, _ = label_of(run_prepare.root, "word", "word_0007")
    _right_adrenal_on_patients_right(labels, geometry)
    assert "body centroid" in " ".join(report.outcomes[0].notes)


def test_word_kidney_sides_contradicting_the_header_fail_that_case_only(tmp_path, run_prepare):
    geometries = {1: src.grid("lps"), 2: src.grid("lps")}
    source = src.make_word(tmp_path / "WORD", geometries)
    swapped = src.word_native(geometries[2])
    right, left = src.id_of("word", "kidney_right"), src.id_of("word", "kidney_left")
    swapped = np.where(swapped == right, left, np.where(swapped == left, right, swapped)).astype(np.uint8)
    src.write(source / "WORD-V0.1.0" / "labelsTs" / "word_0002.nii.gz", swapped, geometries[2])
    report = run_prepare("word", source)
    assert [o.status for o in report.outcomes] == ["prepared", "failed"]
    assert "right kidney" in report.outcomes[1].problem and "word_0002" in report.outcomes[1].problem
    assert [c["case_id"] for c in manifest_of(run_prepare.root, "word")["cases"]] == ["word_0001"]
    assert not (run_prepare.root / "word" / "labels" / "word_0002.nii.gz").exists()


@pytest.mark.parametrize("modality", ["CT", "MR"])
def test_totalseg_merges_structure_files_of_the_test_split(tmp_path, run_prepare, modality):
    key = "totalseg_ct" if modality == "CT" else "totalseg_mr"
    splits = {"s0001": "train", "s0002": "test", "s0003": "val", "s0005": "test"}
    missing = {"s0005": ("adrenal_gland_left", "gallbladder")}
    source = src.make_totalseg(tmp_path / "TS", splits, modality=modality, missing=missing)
    before = src.tree_digest(source)
    report = run_prepare(key, source)
    assert report.ok and [o.case_id for o in report.outcomes] == ["s0002", "s0005"]
    assert any("2 test" in n and "1 train" in n and "1 val" in n for n in report.notes)
    base = next(p for p in source.iterdir())
    image_name = "ct.nii.gz" if modality == "CT" else "mri.nii.gz"
    images = {s: base / s / image_name for s in ("s0002", "s0005")}
    _assert_prepared(run_prepare.root, key, images, {s: src.grid("ras") for s in images}, omit=missing)
    notes = {o.case_id: " ".join(o.notes) for o in report.outcomes}
    assert "gallbladder, adrenal_gland_left: organ(s) absent" in notes["s0005"]
    assert "gallbladder over liver" in notes["s0002"]  # the smaller structure wins the overlap
    assert src.tree_digest(source) == before


def test_totalseg_structure_file_off_the_image_grid_fails_the_case(tmp_path, run_prepare):
    source = src.make_totalseg(tmp_path / "TS", {"s0002": "test", "s0004": "test"})
    moved = src.grid("ras", centre=(0.0, 0.0, 10.0))
    liver = source / "Totalsegmentator_dataset_v201" / "s0004" / "segmentations" / "liver.nii.gz"
    src.write(liver, src.organ_mask(moved, "liver").astype(np.uint8), moved)
    report = run_prepare("totalseg_ct", source)
    assert [o.status for o in report.outcomes] == ["prepared", "failed"]
    assert "structure file liver" in report.outcomes[1].problem and "origin" in report.outcomes[1].problem


def test_btcv_takes_the_training_set(tmp_path, run_prepare):
    source = src.make_btcv(tmp_path / "btcv")
    before = src.tree_digest(source)
    report = run_prepare("btcv", source)
    assert report.ok and [o.case_id for o in report.outcomes] == ["img0001", "img0002", "img0003"]
    images = {o.case_id: source / "Abdomen" / "RawData" / "Training" / "img" / f"{o.case_id}.nii.gz"
              for o in report.outcomes}
    _assert_prepared(run_prepare.root, "btcv", images, {cid: src.grid("lps") for cid in images})
    assert src.tree_digest(source) == before


def test_label_header_float_noise_is_written_on_the_image_grid(tmp_path, run_prepare):
    source = src.make_btcv(tmp_path / "btcv", numbers=(1,))
    geometry = src.grid("lps")
    noisy = Geometry(geometry.size_xyz, geometry.spacing_xyz,
                     tuple(o + 0.004 for o in geometry.origin_xyz), geometry.direction)
    label = source / "Abdomen" / "RawData" / "Training" / "label" / "label0001.nii.gz"
    src.write(label, src.paint(noisy, src.native_ids("btcv")), noisy)
    report = run_prepare("btcv", source)
    assert report.ok and "float noise" in " ".join(report.outcomes[0].notes)
    _, written = label_of(run_prepare.root, "btcv", "img0001")
    assert Geometry.of(written).origin_xyz == pytest.approx(geometry.origin_xyz, abs=1e-5)


def test_wrong_case_count_stops_before_writing_unless_overridden(tmp_path):
    source = src.make_btcv(tmp_path / "btcv")
    root = tmp_path / "root"
    with pytest.raises(HarnessError, match=r"found 3 test case\(s\).*expects 30.*--allow-count-mismatch"):
        prepare("btcv", source=source, data_root=root)
    assert not (root / "btcv").exists() and not (root / "manifests").exists()
    report = prepare("btcv", source=source, data_root=root, allow_count_mismatch=True)
    assert report.count_overridden and report.ok
    manifest = manifest_of(root, "btcv")
    assert manifest["expected_case_count"] == 3 and "Organizer override" in manifest["description"]
    (prepared,) = load_benchmark(str(root / "manifests"))
    load_manifest_file.cache_clear()
    prepared.check_complete()


def test_no_cases_found_names_the_expected_layout(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(HarnessError, match="imagesTs/word_<nnnn>"):
        prepare("word", source=empty, data_root=tmp_path / "root", allow_count_mismatch=True)


def test_case_list_is_still_held_to_the_contract_count(tmp_path):
    source = src.make_amos(tmp_path / "download", ct=(8, 13, 22))
    with pytest.raises(HarnessError, match=r"found 2 test case\(s\).*expects 40"):
        prepare("amos_ct", source=source, data_root=tmp_path / "root", only_cases=["amos_0022", "amos_0008"])


def test_case_list_pins_the_benchmarks_cases(tmp_path, run_prepare):
    source = src.make_amos(tmp_path / "download", ct=(8, 13, 22))
    report = run_prepare("amos_ct", source, only_cases=["amos_0022", "amos_0008"])
    assert [o.case_id for o in report.outcomes] == ["amos_0008", "amos_0022"]
    assert any("took 2 listed case(s), left out 1" in n for n in report.notes)
    with pytest.raises(HarnessError, match="not found.*amos_0099"):
        run_prepare("amos_ct", source, only_cases=["amos_0099"])


def test_rerun_skips_finished_cases_redoes_changed_ones_and_force_redoes_all(tmp_path, run_prepare):
    source = src.make_btcv(tmp_path / "btcv")
    run_prepare("btcv", source)
    label = run_prepare.root / "btcv" / "labels" / "img0002.nii.gz"
    label.write_bytes(b"corrupted")
    again = run_prepare("btcv", source)
    assert {o.case_id: o.status for o in again.outcomes} == {"img0001": "skipped", "img0002": "prepared",
                                                             "img0003": "skipped"}
    assert manifest_of(run_prepare.root, "btcv")["cases"][1]["label_sha256"] == sha256_file(label)
    forced = run_prepare("btcv", source, force=True)
    assert {o.status for o in forced.outcomes} == {"prepared"}


def test_interrupted_run_keeps_finished_cases(tmp_path, run_prepare, monkeypatch):
    from harness.data.prepare import pipeline

    source = src.make_btcv(tmp_path / "btcv")
    real = pipeline._prepare_case
    calls = []

    def interrupted(adapter, case, data_root):
        if case.case_id == "img0003":
            raise KeyboardInterrupt
        calls.append(case.case_id)
        return real(adapter, case, data_root)

    monkeypatch.setattr(pipeline, "_prepare_case", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_prepare("btcv", source)
    assert [c["case_id"] for c in manifest_of(run_prepare.root, "btcv")["cases"]] == ["img0001", "img0002"]
    monkeypatch.setattr(pipeline, "_prepare_case", real)
    resumed = run_prepare("btcv", source)
    assert [o.status for o in resumed.outcomes] == ["skipped", "skipped", "prepared"]
    assert not list((run_prepare.root / "btcv").rglob(".tmp-*"))


def test_a_broken_source_case_is_reported_and_the_others_go_on(tmp_path, run_prepare):
    source = src.make_flare22(tmp_path / "FLARE22")
    (source / "Validation-Public-Labels" / "FLARETs_0002.nii.gz").unlink()
    small = Geometry((8, 8, 6), src.SPACING, (0.0, 0.0, 0.0), tuple(np.eye(3).ravel()))
    src.write(source / "Validation-Public-Labels" / "FLARETs_0003.nii.gz", np.zeros((6, 8, 8), np.uint8), small)
    report = run_prepare("flare22", source)
    status = {o.case_id: (o.status, o.problem or "") for o in report.outcomes}
    assert status["FLARETs_0001"][0] == "prepared"
    assert status["FLARETs_0002"][0] == "failed" and "has no label file" in status["FLARETs_0002"][1]
    assert status["FLARETs_0003"][0] == "failed" and "size" in status["FLARETs_0003"][1]
    assert [c["case_id"] for c in manifest_of(run_prepare.root, "flare22")["cases"]] == ["FLARETs_0001"]


@pytest.mark.parametrize("where", ["root_inside_source", "root_is_source"])
def test_never_writes_into_the_source(tmp_path, where):
    source = src.make_btcv(tmp_path / "btcv")
    before = src.tree_digest(source)
    root = source / "prepared" if where == "root_inside_source" else source
    with pytest.raises(HarnessError, match="source"):
        prepare("btcv", source=source, data_root=root, allow_count_mismatch=True)
    assert src.tree_digest(source) == before


def test_manifest_out_must_be_named_by_key(tmp_path, run_prepare):
    source = src.make_btcv(tmp_path / "btcv", numbers=(1,))
    with pytest.raises(HarnessError, match="btcv.json"):
        run_prepare("btcv", source, manifest_out=tmp_path / "elsewhere.json")
    folder = tmp_path / "manifests-elsewhere"
    folder.mkdir()
    report = run_prepare("btcv", source, manifest_out=folder)
    assert report.manifest_path == folder / "btcv.json" and report.manifest_path.is_file()
