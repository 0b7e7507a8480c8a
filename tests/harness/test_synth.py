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
