"""score_case: all organs of a case, reference equality, slab restriction, policies, validation."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics import EmptyPolicy, OrganSpec, score_case
from tests.metrics.helpers import MASK_KINDS, random_mask, reference

TOLERANCE = 1e-6
ALL = ("dice", "nsd", "hd95", "assd")


@st.composite
def label_cases(draw):
    """(gt, pred, spacing, organs): up to three organs, any of them possibly absent on a side."""
    ndim = draw(st.sampled_from([2, 3]))
    shape = tuple(draw(st.lists(st.integers(2, 14), min_size=ndim, max_size=ndim)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dtype = draw(st.sampled_from([np.uint8, np.int16, np.int64]))
    gt = np.zeros(shape, dtype=dtype)
    pred = np.zeros(shape, dtype=dtype)
    labels = [3, 1, 7]
    for label in labels:
        if draw(st.booleans()) or label == 3:
            gt[random_mask(rng, shape, draw(st.sampled_from(MASK_KINDS)))] = label
        if draw(st.booleans()) or label == 3:
            if draw(st.booleans()):
                source = gt == label
                pred[(source ^ (rng.random(shape) < 0.1)) if source.any() else source] = label
            else:
                pred[random_mask(rng, shape, draw(st.sampled_from(MASK_KINDS)))] = label
    spacing = tuple(draw(st.lists(st.floats(0.3, 3.0), min_size=ndim, max_size=ndim)))
    organs = [OrganSpec(label, f"organ{label}", draw(st.floats(0.5, 5.0))) for label in labels]
    return gt, pred, spacing, organs


def _expected(gt_mask, pred_mask, spacing, tolerance, diagonal):
    if gt_mask.any() and pred_mask.any():
        return reference(gt_mask, pred_mask, spacing, tolerance)
    if not gt_mask.any() and not pred_mask.any():
        return {"dice": 1.0, "nsd": 1.0, "hd95": 0.0, "assd": 0.0}
    return {"dice": 0.0, "nsd": 0.0, "hd95": diagonal, "assd": diagonal}


@settings(max_examples=60, deadline=None)
@given(label_cases())
def test_every_organ_equals_the_reference(case):
    gt, pred, spacing, organs = case
    diagonal = math.sqrt(sum((n * s) ** 2 for n, s in zip(gt.shape, spacing)))
    full = score_case(gt, pred, spacing_mm=spacing, organs=organs)
    fast = score_case(gt, pred, spacing_mm=spacing, organs=organs, metrics=("dice", "nsd"))
    for organ in organs:
        gt_mask, pred_mask = gt == organ.label, pred == organ.label
        expected = _expected(gt_mask, pred_mask, spacing, organ.tolerance_mm, diagonal)
        for metric in ALL:
            assert full[organ.name][metric] == pytest.approx(expected[metric], abs=TOLERANCE), metric
        assert fast[organ.name]["dice"] == pytest.approx(expected["dice"], abs=TOLERANCE)
        assert fast[organ.name]["nsd"] == pytest.approx(expected["nsd"], abs=TOLERANCE)
        assert full[organ.name]["gt_voxels"] == int(gt_mask.sum())
        assert full[organ.name]["pred_voxels"] == int(pred_mask.sum())


def test_result_holds_plain_python_numbers_in_a_fixed_order():
    gt = np.zeros((5, 6, 7), dtype=np.uint8)
    gt[1:4, 1:4, 1:4] = 2
    pred = np.roll(gt, 1, axis=1)
    result = score_case(
        gt, pred, spacing_mm=(2.0, 1.0, 1.0), organs=[OrganSpec(2, "kidney", 3.0)], metrics=("nsd", "dice")
    )
    assert list(result) == ["kidney"]
    assert list(result["kidney"]) == ["nsd", "dice", "gt_voxels", "pred_voxels"]
    assert type(result["kidney"]["nsd"]) is float and type(result["kidney"]["dice"]) is float
    assert type(result["kidney"]["gt_voxels"]) is int and result["kidney"]["gt_voxels"] == 27


def test_empty_policies():
    gt = np.zeros((4, 5, 6), dtype=np.uint8)
    pred = np.zeros_like(gt)
    gt[1, 1, 1] = 1  # organ 1 not predicted
    pred[2, 2, 2] = 2  # organ 2 predicted, absent from the ground truth; organ 3 absent from both
    organs = [OrganSpec(1, "a", 2.0), OrganSpec(2, "b", 2.0), OrganSpec(3, "c", 2.0)]
    diagonal = math.sqrt((4 * 2.0) ** 2 + (5 * 1.0) ** 2 + (6 * 0.5) ** 2)
    aeval = score_case(gt, pred, spacing_mm=(2.0, 1.0, 0.5), organs=organs)
    nnunet = score_case(gt, pred, spacing_mm=(2.0, 1.0, 0.5), organs=organs, empty_policy=EmptyPolicy.NNUNET)
    for result in (aeval, nnunet):
        for name in ("a", "b"):
            assert (result[name]["dice"], result[name]["nsd"]) == (0.0, 0.0)
            assert result[name]["hd95"] == pytest.approx(diagonal)
            assert result[name]["assd"] == pytest.approx(diagonal)
    assert aeval["c"] == {"dice": 1.0, "nsd": 1.0, "hd95": 0.0, "assd": 0.0, "gt_voxels": 0, "pred_voxels": 0}
    assert all(math.isnan(nnunet["c"][m]) for m in ALL)
    assert (nnunet["c"]["gt_voxels"], nnunet["c"]["pred_voxels"]) == (0, 0)


def test_swapped_spacing_changes_nsd_and_score_case_uses_array_order():
    gt = np.zeros((10, 12, 12), dtype=np.uint8)
    gt[3:7, 3:9, 3:9] = 1
    pred = np.roll(gt, 1, axis=0)  # one slice off along array axis 0
    organ = [OrganSpec(1, "liver", 2.0)]
    zyx = score_case(gt, pred, spacing_mm=(2.5, 0.8, 0.8), organs=organ)["liver"]
    xyz = score_case(gt, pred, spacing_mm=(0.8, 0.8, 2.5), organs=organ)["liver"]
    assert zyx["nsd"] == pytest.approx(reference(gt == 1, pred == 1, (2.5, 0.8, 0.8), 2.0)["nsd"], abs=TOLERANCE)
    assert zyx["nsd"] < 0.9 and xyz["nsd"] == 1.0
    assert zyx["hd95"] == 2.5 and xyz["hd95"] == pytest.approx(0.8)


# --- slab restriction (esophagus): ground-truth slices 3..6 along the superior-inferior axis.
ESOPHAGUS = OrganSpec(10, "esophagus", 3.0, restrict_to_gt_extent=True)


def _tube_case(*, differing_slice: int):
    gt = np.zeros((10, 9, 9), dtype=np.uint8)
    gt[3:7, 3:6, 3:6] = 10
    pred = gt.copy()
    pred[differing_slice] = 0
    pred[differing_slice, 4:7, 4:8] = 10  # this slice of the prediction is off
    pred[0:3, 3:6, 3:6] = 10  # predicted beyond the annotated extent: ignored
    pred[7:10, 2:7, 2:7] = 10
    return gt, pred


@pytest.mark.parametrize("differing_slice", [3, 6], ids=["bottom-end-slice", "top-end-slice"])
def test_slab_includes_both_end_slices(differing_slice):
    # The original script dropped the top slice: then the differing top slice would be
    # ignored and Dice would be 1.
    gt, pred = _tube_case(differing_slice=differing_slice)
    spacing = (2.5, 0.8, 0.8)
    result = score_case(gt, pred, spacing_mm=spacing, organs=[ESOPHAGUS], si_axis=0)["esophagus"]
    slab = slice(3, 7)
    expected = reference(gt[slab] == 10, pred[slab] == 10, spacing, 3.0)
    assert result["dice"] < 1.0
    for metric in ALL:
        assert result[metric] == pytest.approx(expected[metric], abs=TOLERANCE)
    assert result["gt_voxels"] == 4 * 9
    assert result["pred_voxels"] == int((pred[slab] == 10).sum())


def test_slab_ignores_prediction_outside_and_follows_si_axis():
    gt, pred = _tube_case(differing_slice=3)
    pred[3] = gt[3]  # now identical inside the slab
    for axis, (g, p) in enumerate([(gt, pred), (gt.transpose(1, 0, 2), pred.transpose(1, 0, 2))]):
        spacing = (2.5, 0.8, 0.8) if axis == 0 else (0.8, 2.5, 0.8)
        result = score_case(np.ascontiguousarray(g), np.ascontiguousarray(p), spacing_mm=spacing, organs=[ESOPHAGUS], si_axis=axis)
        assert result["esophagus"] == {
            "dice": 1.0, "nsd": 1.0, "hd95": 0.0, "assd": 0.0, "gt_voxels": 36, "pred_voxels": 36
        }
    # without the restriction the extra prediction counts
    unrestricted = OrganSpec(10, "esophagus", 3.0)
    assert score_case(gt, pred, spacing_mm=(2.5, 0.8, 0.8), organs=[unrestricted])["esophagus"]["dice"] < 1.0


def test_slab_restriction_does_not_apply_without_ground_truth():
    gt = np.zeros((6, 5, 5), dtype=np.uint8)
    pred = np.zeros_like(gt)
    pred[1:3, 1:3, 1:3] = 10
    result = score_case(gt, pred, spacing_mm=(1, 1, 1), organs=[ESOPHAGUS], si_axis=0)["esophagus"]
    assert (result["dice"], result["gt_voxels"], result["pred_voxels"]) == (0.0, 0, 8)


def test_slab_can_leave_the_prediction_empty():
    gt = np.zeros((8, 5, 5), dtype=np.uint8)
    pred = np.zeros_like(gt)
    gt[1:3, 1:3, 1:3] = 10
    pred[5:7, 1:3, 1:3] = 10  # only outside the ground truth's slices
    result = score_case(gt, pred, spacing_mm=(1, 1, 1), organs=[ESOPHAGUS], si_axis=0)["esophagus"]
    assert (result["dice"], result["nsd"], result["pred_voxels"]) == (0.0, 0.0, 0)


def test_two_dimensional_input():
    gt = np.zeros((20, 30), dtype=np.int32)
    gt[5:12, 4:20] = 1
    pred = np.roll(gt, 2, axis=1)
    result = score_case(gt, pred, spacing_mm=(1.5, 0.7), organs=[OrganSpec(1, "slice", 1.0)])["slice"]
    expected = reference(gt == 1, pred == 1, (1.5, 0.7), 1.0)
    for metric in ALL:
        assert result[metric] == pytest.approx(expected[metric], abs=TOLERANCE)


def test_far_stray_voxels_cost_little_memory_and_score_like_the_reference():
    shape = (100, 200, 200)
    gt = np.zeros(shape, dtype=np.uint8)
    gt[40:60, 80:120, 70:130] = 1
    pred = np.roll(gt, 3, axis=2)
    pred[0, 0, 0] = pred[-1, -1, -1] = 1
    organs = [OrganSpec(1, "spleen", 3.0)]
    tracemalloc.start()
    try:
        fast = score_case(gt, pred, spacing_mm=(2.5, 0.8, 0.8), organs=organs, metrics=("dice", "nsd"))["spleen"]
        peak = tracemalloc.get_traced_memory()[1]
        full = score_case(gt, pred, spacing_mm=(2.5, 0.8, 0.8), organs=organs)["spleen"]
        peak = max(peak, tracemalloc.get_traced_memory()[1])
    finally:
        tracemalloc.stop()
    # a distance transform over the box spanning both corners would need > 100 bytes per voxel
    assert peak < 3 * gt.size
    expected = reference(gt == 1, pred == 1, (2.5, 0.8, 0.8), 3.0)
    assert fast["nsd"] == pytest.approx(expected["nsd"], abs=TOLERANCE)
    for metric in ALL:
        assert full[metric] == pytest.approx(expected[metric], abs=TOLERANCE)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pred": np.zeros((4, 4, 5), np.uint8)}, r"gt \(4, 4, 4\) vs pred \(4, 4, 5\)"),
        ({"gt": np.zeros((4, 4, 4), np.float32)}, "integer dtype.*float32"),
        ({"pred": np.zeros((4, 4, 4), bool)}, "integer dtype.*bool"),
        ({"spacing_mm": (1.0, 1.0)}, r"one entry per array axis \(3\), got 2: \(1.0, 1.0\)"),
        ({"spacing_mm": (1.0, 0.0, 1.0)}, r"finite and > 0, got \(1.0, 0.0, 1.0\)"),
        ({"spacing_mm": (1.0, float("nan"), 1.0)}, "finite and > 0"),
        ({"organs": [OrganSpec(1, "a", 1.0), OrganSpec(1, "b", 1.0)]}, "duplicate label 1: organs 'a' and 'b'"),
        ({"organs": [OrganSpec(1, "a", 1.0), OrganSpec(2, "a", 1.0)]}, "duplicate organ name 'a'"),
        ({"organs": [OrganSpec(0, "bg", 1.0)]}, "label must be an int >= 1, got 0"),
        ({"organs": [OrganSpec(1, "a", -2.0)]}, "organ 'a': tolerance_mm must be finite and > 0, got -2.0"),
        ({"organs": [ESOPHAGUS]}, "organ 'esophagus' has restrict_to_gt_extent=True, so si_axis"),
        ({"organs": [ESOPHAGUS], "si_axis": 3}, r"si_axis must be an int in \[0, 3\)"),
        ({"metrics": ("dice", "hd99")}, "unknown metrics \\['hd99'\\]"),
        ({"metrics": "dice"}, "sequence of names"),
        ({"empty_policy": "zero"}, "empty_policy must be one of"),
    ],
)
def test_invalid_inputs_are_rejected_with_the_values(kwargs, message):
    arguments = {
        "gt": np.zeros((4, 4, 4), np.uint8),
        "pred": np.zeros((4, 4, 4), np.uint8),
        "spacing_mm": (1.0, 1.0, 1.0),
        "organs": [OrganSpec(1, "a", 1.0)],
    }
    arguments.update(kwargs)
    gt, pred = arguments.pop("gt"), arguments.pop("pred")
    with pytest.raises(ValueError, match=message):
        score_case(gt, pred, **arguments)


def test_memory_layout_and_integer_dtype_do_not_matter():
    gt = np.zeros((20, 10, 12), dtype=np.uint8)
    gt[2:9, 2:7, 3:9] = 1
    gt[12:15, 1:4, 1:4] = 2
    pred = np.roll(gt, 1, axis=2)
    organs = [OrganSpec(1, "a", 2.0), OrganSpec(2, "b", 1.0)]
    expected = score_case(gt, pred, spacing_mm=(1.5, 0.7, 0.9), organs=organs)
    for convert in (np.asfortranarray, lambda a: a.astype(">i2"), lambda a: a.astype(np.uint64),
                    lambda a: np.pad(a, 1)[1:-1, 1:-1, 1:-1]):
        assert score_case(convert(gt), convert(pred), spacing_mm=(1.5, 0.7, 0.9), organs=organs) == expected


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), density=st.floats(0.01, 0.2))
def test_speckled_prediction_equals_the_reference(seed, density):
    """A threshold-like speckle of every label against compact organs (speckle -> organ over the whole
    volume, organ -> speckle through the growing reach) still equals surface-distance."""
    rng = np.random.default_rng(seed)
    shape, spacing = (24, 48, 48), (2.5, 0.8, 0.8)
    gt = np.zeros(shape, dtype=np.uint8)
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    for label, center, radius in ((1, (8, 14, 14), 6), (2, (14, 30, 32), 9)):
        gt[sum(((g - c) / (radius / s)) ** 2 for g, c, s in zip(grid, center, (1, 2.5, 2.5))) <= 1] = label
    pred = np.zeros(shape, dtype=np.uint8)
    noise = rng.random(shape)
    pred[noise < density] = 1
    pred[(noise >= density) & (noise < 2 * density)] = 2
    organs = [OrganSpec(1, "one", 2.0), OrganSpec(2, "two", 3.0)]
    result = score_case(gt, pred, spacing_mm=spacing, organs=organs)
    for organ in organs:
        expected = reference(gt == organ.label, pred == organ.label, spacing, organ.tolerance_mm)
        for metric in ALL:
            assert result[organ.name][metric] == pytest.approx(expected[metric], abs=TOLERANCE), (organ.name, metric)
