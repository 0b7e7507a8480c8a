"""NSD, HD95 and ASSD from surface_distances: reference equality, hand-worked values, empties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import surface_distance
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics import EmptyPolicy, SurfaceDistances, assd, hd95, nsd, surface_distances
from tests.metrics.helpers import mask_pairs, reference

TOLERANCE = 1e-6


@settings(max_examples=120, deadline=None)
@given(mask_pairs(), st.floats(0.2, 6.0))
def test_metrics_equal_the_reference(pair, tolerance):
    gt, pred, spacing = pair
    expected = reference(gt, pred, spacing, tolerance)
    sd = surface_distances(gt, pred, spacing)
    assert nsd(sd, tolerance) == pytest.approx(expected["nsd"], abs=TOLERANCE)
    assert hd95(sd) == pytest.approx(expected["hd95"], abs=TOLERANCE)
    assert assd(sd) == pytest.approx(expected["assd"], abs=TOLERANCE)


@settings(max_examples=40, deadline=None)
@given(mask_pairs())
def test_sorted_distances_and_areas_equal_the_reference(pair):
    gt, pred, spacing = pair
    theirs = surface_distance.compute_surface_distances(gt, pred, spacing)
    ours = surface_distances(gt, pred, spacing)
    np.testing.assert_allclose(ours.distances_gt_to_pred_mm, theirs["distances_gt_to_pred"], rtol=1e-12)
    np.testing.assert_allclose(ours.distances_pred_to_gt_mm, theirs["distances_pred_to_gt"], rtol=1e-12)
    np.testing.assert_allclose(ours.surfel_areas_gt_mm2, theirs["surfel_areas_gt"], rtol=1e-12)
    np.testing.assert_allclose(ours.surfel_areas_pred_mm2, theirs["surfel_areas_pred"], rtol=1e-12)


def test_far_stray_voxels_equal_the_reference():
    gt = np.zeros((40, 30, 30), dtype=bool)
    gt[10:20, 5:15, 8:20] = True
    pred = np.roll(gt, 2, axis=2)
    pred[0, 0, 0] = pred[-1, -1, -1] = True
    spacing = (2.5, 0.8, 0.7)
    expected = reference(gt, pred, spacing, 3.0)
    sd = surface_distances(gt, pred, spacing)
    assert nsd(sd, 3.0) == pytest.approx(expected["nsd"], abs=TOLERANCE)
    assert hd95(sd) == pytest.approx(expected["hd95"], abs=TOLERANCE)
    assert assd(sd) == pytest.approx(expected["assd"], abs=TOLERANCE)


def _shifted_voxels(ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """A single voxel and its neighbour one step along axis 0."""
    gt = np.zeros((4,) * ndim, dtype=bool)
    pred = np.zeros_like(gt)
    gt[(1,) * ndim] = True
    pred[(2,) + (1,) * (ndim - 1)] = True
    return gt, pred


def test_shifted_voxel_worked_by_hand_3d():
    # The two cubes share the face between them: half of each surface's corners coincide with
    # the other's (distance 0), the other half lie one voxel (s0 = 2.5 mm) away along axis 0.
    # All surfels have the same area, so NSD is 1/2 below 2.5 mm and 1 from 2.5 mm on, HD95 is
    # 2.5 mm and ASSD is the mean of 0 and 2.5.
    gt, pred = _shifted_voxels(3)
    sd = surface_distances(gt, pred, (2.5, 0.8, 0.8))
    assert sorted(sd.distances_gt_to_pred_mm.tolist()) == [0.0] * 4 + [2.5] * 4
    assert nsd(sd, 2.0) == pytest.approx(0.5)
    assert nsd(sd, 2.5) == 1.0  # distance equal to the tolerance counts as within
    assert hd95(sd) == 2.5
    assert assd(sd) == pytest.approx(1.25)


def test_shifted_pixel_worked_by_hand_2d():
    gt, pred = _shifted_voxels(2)
    sd = surface_distances(gt, pred, (3.0, 0.5))
    assert nsd(sd, 1.0) == pytest.approx(0.5)
    assert hd95(sd) == 3.0
    assert assd(sd) == pytest.approx(1.5)


def test_spacing_is_in_array_order_so_swapping_it_changes_the_result():
    # Shift along array axis 0. With (2.5, 0.8, 0.8) axis 0 is the 2.5 mm axis (z of a z,y,x
    # array): the far half of each surface is 2.5 mm away, beyond a 2 mm tolerance. Passing
    # SimpleITK's (x, y, z) order (0.8, 0.8, 2.5) by mistake makes it 0.8 mm and NSD 1.
    gt, pred = _shifted_voxels(3)
    array_order = surface_distances(gt, pred, (2.5, 0.8, 0.8))
    swapped = surface_distances(gt, pred, (0.8, 0.8, 2.5))
    assert nsd(array_order, 2.0) == pytest.approx(0.5)
    assert nsd(swapped, 2.0) == 1.0
    assert hd95(array_order) == 2.5 and hd95(swapped) == 0.8


def test_spacing_order_matters_on_an_anisotropic_blob():
    gt = np.zeros((12, 20, 20), dtype=bool)
    gt[3:9, 4:16, 5:14] = True
    gt[5:7, 2:4, 7:9] = True
    pred = np.roll(gt, 1, axis=0)  # one slice further along array axis 0
    values = {}
    for spacing in [(2.5, 0.8, 0.8), (0.8, 0.8, 2.5)]:
        values[spacing] = nsd(surface_distances(gt, pred, spacing), 2.0)
        assert values[spacing] == pytest.approx(reference(gt, pred, spacing, 2.0)["nsd"], abs=TOLERANCE)
    assert values[(0.8, 0.8, 2.5)] == 1.0  # axis 0 read as 0.8 mm: every surfel within 2 mm
    assert values[(2.5, 0.8, 0.8)] < 0.9  # axis 0 is 2.5 mm: the end faces are out of tolerance


# --- empty masks, 2-D and 3-D. Volume diagonal: 3-D (4, 5, 6) voxels of (2, 1, 0.5) mm is
# sqrt(8^2 + 5^2 + 3^2) = sqrt(98) mm; 2-D (3, 4) pixels of (1.5, 2) mm is sqrt(4.5^2 + 8^2) mm.
CASES = {3: ((4, 5, 6), (2.0, 1.0, 0.5), math.sqrt(98.0)), 2: ((3, 4), (1.5, 2.0), math.sqrt(84.25))}


def _masks(ndim: int, gt_empty: bool, pred_empty: bool):
    shape, spacing, diagonal = CASES[ndim]
    gt = np.zeros(shape, dtype=bool)
    pred = np.zeros(shape, dtype=bool)
    if not gt_empty:
        gt[(1,) * ndim] = True
    if not pred_empty:
        pred[(2,) * ndim] = True
    return surface_distances(gt, pred, spacing), diagonal


@pytest.mark.parametrize("ndim", [2, 3])
def test_empty_ground_truth(ndim):
    sd, diagonal = _masks(ndim, gt_empty=True, pred_empty=False)
    for policy in EmptyPolicy:
        assert nsd(sd, 2.0, empty_policy=policy) == 0.0
        assert hd95(sd, empty_policy=policy) == pytest.approx(diagonal)
        assert assd(sd, empty_policy=policy) == pytest.approx(diagonal)
    assert sd.gt_empty and not sd.pred_empty
    assert np.all(np.isinf(sd.distances_pred_to_gt_mm))  # raw distances to an empty surface


@pytest.mark.parametrize("ndim", [2, 3])
def test_empty_prediction(ndim):
    sd, diagonal = _masks(ndim, gt_empty=False, pred_empty=True)
    for policy in EmptyPolicy:
        assert nsd(sd, 2.0, empty_policy=policy) == 0.0
        assert hd95(sd, empty_policy=policy) == pytest.approx(diagonal)
        assert assd(sd, empty_policy=policy) == pytest.approx(diagonal)


@pytest.mark.parametrize("ndim", [2, 3])
def test_both_empty(ndim):
    sd, _ = _masks(ndim, gt_empty=True, pred_empty=True)
    assert nsd(sd, 2.0) == 1.0
    assert hd95(sd) == 0.0
    assert assd(sd) == 0.0
    assert math.isnan(nsd(sd, 2.0, empty_policy=EmptyPolicy.NNUNET))
    assert math.isnan(hd95(sd, empty_policy=EmptyPolicy.NNUNET))
    assert math.isnan(assd(sd, empty_policy=EmptyPolicy.NNUNET))


def test_identical_masks():
    gt = np.zeros((5, 6, 7), dtype=bool)
    gt[1:4, 2:5, 1:6] = True
    sd = surface_distances(gt, gt.copy(), (1.0, 2.0, 3.0))
    assert (nsd(sd, 0.1), hd95(sd), assd(sd)) == (1.0, 0.0, 0.0)


def test_validation():
    ok = np.ones((2, 2, 2), dtype=bool)
    with pytest.raises(ValueError, match=r"\(2, 2, 2\) vs \(2, 2\)"):
        surface_distances(ok, np.ones((2, 2), bool), (1, 1, 1))
    with pytest.raises(ValueError, match="one entry per array axis"):
        surface_distances(ok, ok, (1, 1))
    with pytest.raises(ValueError, match=r"> 0, got \(1.0, -1.0, 1.0\)"):
        surface_distances(ok, ok, (1, -1, 1))
    with pytest.raises(ValueError, match="4 dimensions|2 or 3 dimensions"):
        surface_distances(np.ones((1, 1, 1, 1), bool), np.ones((1, 1, 1, 1), bool), (1, 1, 1, 1))
    sd = surface_distances(ok, ok, (1, 1, 1))
    with pytest.raises(ValueError, match="tolerance_mm must be finite and > 0, got 0.0"):
        nsd(sd, 0.0)
    with pytest.raises(ValueError, match="SurfaceDistances"):
        hd95({"distances_gt_to_pred": []})  # type: ignore[arg-type]
    assert isinstance(sd, SurfaceDistances)
