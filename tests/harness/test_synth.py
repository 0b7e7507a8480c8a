import numpy as np
import SimpleITK as sitk

from harness.data.synth import appearance, generate_case
from harness.imageio import Geometry
from harness.manifest import load_benchmark


def test_every_case_written_in_native_ids_and_files(synthetic_root):
    for manifest in load_benchmark("synthetic"):
        native_ids = set(manifest.gt_mapping.label_map.labels) | {0}
        for case in manifest.cases:
            image = sitk.ReadImage(str(synthetic_root / case.image))
            label = sitk.ReadImage(str(synthetic_root / case.label))
            assert Geometry.of(image) == Geometry.of(label)
            values = set(np.unique(sitk.GetArrayViewFromImage(label)).tolist())
            assert values <= native_ids, (manifest.key, case.case_id, values - native_ids)


def test_deterministic():
    manifest = load_benchmark("synthetic", keys=["amos_mr"])[0]
    a = generate_case(manifest, manifest.cases[1], 1)
    b = generate_case(manifest, manifest.cases[1], 1)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def test_intensities_are_ct_hu_and_mr_like():
    look = appearance()
    ct = load_benchmark("synthetic", keys=["flare22"])[0]
    image, _, _ = generate_case(ct, ct.cases[0], 0)
    assert image.dtype == np.int16 and image.min() <= look["CT"]["air"] + 3 and image.max() < 400
    mr = load_benchmark("synthetic", keys=["totalseg_mr"])[0]
    image, _, _ = generate_case(mr, mr.cases[0], 0)
    assert image.min() >= -5 and image.max() > 800


def _cases(root):
    """(manifest, case, native label array, geometry) of every written synthetic case."""
    for manifest in load_benchmark("synthetic"):
        for case in manifest.cases:
            label = sitk.ReadImage(str(root / case.label))
            yield manifest, case, sitk.GetArrayFromImage(label), Geometry.of(label)


def test_anisotropic_spacing_and_non_identity_orientations(synthetic_root):
    directions, spacings = set(), set()
    for manifest, case, _, geometry in _cases(synthetic_root):
        directions.add(tuple(round(d, 3) for d in geometry.direction))
        spacings.add(len(set(geometry.spacing_xyz)) > 1)
    assert len(directions) >= 4  # LPS, RAS-stored, oblique, coronal
    assert True in spacings


def test_partial_fields_of_view_leave_organs_out(synthetic_root):
    absent = 0
    for manifest, case, native, _ in _cases(synthetic_root):
        labels = manifest.gt_mapping.apply(native)
        absent += 10 - (len(np.unique(labels)) - 1)
    assert absent >= 10


def test_anatomy_is_right_in_patient_space_whatever_the_array_order(synthetic_root):
    """The right kidney lies on the patient's right (LPS x < 0) in every case, flips included."""
    for manifest, case, native, geometry in _cases(synthetic_root):
        labels = manifest.gt_mapping.apply(native)
        image = sitk.GetImageFromArray(labels)
        image.SetSpacing(geometry.spacing_xyz)
        image.SetOrigin(geometry.origin_xyz)
        image.SetDirection(geometry.direction)
        for organ_id, side in ((2, -1), (3, 1), (5, -1), (1, 1)):
            voxels = np.argwhere(labels == organ_id)
            if len(voxels) == 0:
                continue
            k, j, i = voxels.mean(axis=0)
            x = image.TransformContinuousIndexToPhysicalPoint((float(i), float(j), float(k)))[0]
            assert np.sign(x) == side, (manifest.key, case.case_id, organ_id, x)


def test_coronal_case_has_si_along_array_axis_1():
    manifest = load_benchmark("synthetic", keys=["totalseg_mr"])[0]
    geometry = generate_case(manifest, manifest.cases[0], 0)[2]
    assert geometry.si_array_axis() == 1


# --- full size (`harness data synth --scale full`): geometry checked without writing, one small case written


def test_full_scale_grids_are_the_sources_real_sizes():
    """CT on 512-voxel slices at < 1 mm (TotalSegmentator 1.5 mm isotropic), MR coarser; tens of millions of voxels."""
    from harness.data.synth import FULL_PROFILES, PROFILES, case_grid

    assert set(FULL_PROFILES) == set(PROFILES)
    for manifest in load_benchmark("synthetic"):
        profile = FULL_PROFILES[manifest.key]
        for index in range(len(manifest.cases)):
            geometry = case_grid(profile, index, np.random.default_rng(index))
            mini = case_grid(PROFILES[manifest.key], index, np.random.default_rng(index))
            assert geometry.direction == mini.direction  # same orientations as the miniature
            voxels = int(np.prod(geometry.size_xyz))
            assert voxels > 20 * int(np.prod(mini.size_xyz)), (manifest.key, index)
            si = 2 - geometry.si_array_axis()  # SimpleITK (x, y, z) index of the SI axis
            inplane = [n for axis, n in enumerate(geometry.size_xyz) if axis != si]
            if manifest.modality == "CT" and manifest.key != "totalseg_ct":
                assert inplane == [512, 512] and max(geometry.spacing_xyz[:2]) < 1.0, (manifest.key, geometry)
                assert 1.0 <= geometry.spacing_xyz[si] <= 5.0 and geometry.size_xyz[si] >= 40
            else:  # TotalSegmentator works at 1.5 mm; MR matrices are smaller
                assert min(geometry.spacing_xyz) >= 1.0 and min(inplane) >= 256, (manifest.key, geometry)


def test_full_case_list_extends_the_miniature_with_source_like_names():
    from harness.data.synth import full_case_list

    manifest = load_benchmark("synthetic", keys=["amos_ct"])[0]
    cases = full_case_list(manifest, 7)
    assert cases[:4] == list(manifest.cases)
    assert len({c.case_id for c in cases}) == 7 and len({c.image for c in cases}) == 7
    extra = cases[4]
    assert manifest.cases[-1].case_id == "amos_0022" and extra.case_id == "amos_0023"
    assert extra.image == f"imagesVa/{extra.case_id}.nii.gz" and extra.label == f"labelsVa/{extra.case_id}.nii.gz"
    assert full_case_list(manifest, 2) == list(manifest.cases[:2])


def test_full_scale_case_and_manifest_make_the_root_a_benchmark(tmp_path):
    """One full-size MR case: real grid on disk, native ids, and <root>/manifests/ chosen with no --benchmark."""
    import pytest

    from harness.data.synth import FULL_PROFILES, case_grid, synthesize
    from harness.errors import HarnessError
    from harness.manifest import default_benchmark, sha256_file

    written = synthesize(tmp_path, keys=["amos_mr"], scale="full", cases=1)
    assert len(written) == 2
    assert default_benchmark(tmp_path) == str(tmp_path / "manifests")
    (manifest,) = load_benchmark(default_benchmark(tmp_path))
    assert manifest.key == "amos_mr" and manifest.expected_case_count == 1 and len(manifest.cases) == 1
    case = manifest.cases[0]
    assert sha256_file(tmp_path / case.image) == case.image_sha256
    image = sitk.ReadImage(str(tmp_path / case.image))
    label = sitk.ReadImage(str(tmp_path / case.label))
    expected = case_grid(FULL_PROFILES["amos_mr"], 0, np.random.default_rng(0))
    assert Geometry.of(image) == Geometry.of(label)
    assert Geometry.of(image).size_xyz == expected.size_xyz and Geometry.of(image).spacing_xyz == expected.spacing_xyz
    native = sitk.GetArrayFromImage(label)
    assert set(np.unique(native).tolist()) <= set(manifest.gt_mapping.label_map.labels) | {0}
    labels = manifest.gt_mapping.apply(native)
    assert len(np.unique(labels)) - 1 >= 8  # a full field of view holds (almost) every organ
    for organ_id, side in ((2, -1), (3, 1), (5, -1), (1, 1)):  # right kidney and liver on the patient's right
        k, j, i = np.argwhere(labels == organ_id).mean(axis=0)
        x = label.TransformContinuousIndexToPhysicalPoint((float(i), float(j), float(k)))[0]
        assert np.sign(x) == side, (organ_id, x)
    assert synthesize(tmp_path, keys=["amos_mr"], scale="full", cases=1) == []  # rerun: nothing to redo
    with pytest.raises(HarnessError, match="--cases"):
        synthesize(tmp_path, keys=["amos_mr"], cases=2)
