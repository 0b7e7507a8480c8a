"""Dice from voxel counts, and emptiness decided by voxel count."""

from __future__ import annotations

import math

import numpy as np
import pytest
import surface_distance
from hypothesis import given, settings

from metrics import EmptyPolicy, dice
from metrics.overlap import dice_from_counts
from tests.metrics.helpers import mask_pairs


def test_dice_worked_by_hand():
    gt = np.zeros((4, 5, 6), dtype=bool)
    pred = np.zeros_like(gt)
    gt[0:2, 0:2, 0:2] = True  # 8 voxels
    pred[1:3, 0:2, 0:2] = True  # 8 voxels, 4 shared
    assert dice(gt, pred) == pytest.approx(2 * 4 / 16)
    assert isinstance(dice(gt, pred), float)


def test_emptiness_is_by_voxel_count_not_array_size():
    # The original script tested the array size, which is never 0, and then divided 0 by 0.
    gt = np.zeros((8, 8, 8), dtype=bool)
    pred = np.zeros((8, 8, 8), dtype=bool)
    assert gt.size > 0
    assert dice(gt, pred) == 1.0
    assert math.isnan(dice(gt, pred, empty_policy=EmptyPolicy.NNUNET))
    pred[3, 3, 3] = True
    assert dice(gt, pred) == 0.0  # empty ground truth, something predicted
    assert dice(pred, gt) == 0.0  # organ present, nothing predicted
    assert dice(pred, gt, empty_policy=EmptyPolicy.NNUNET) == 0.0


def test_empty_2d():
    assert dice(np.zeros((3, 4), dtype=bool), np.zeros((3, 4), dtype=bool)) == 1.0
    assert dice(np.eye(3, dtype=bool), np.zeros((3, 3), dtype=bool)) == 0.0


def test_integer_masks_mean_non_zero():
    gt = np.array([[0, 2], [3, 0]])
    pred = np.array([[0, 1], [0, 0]])
    assert dice(gt, pred) == pytest.approx(2 * 1 / 3)


def test_counts_function_and_policy_strings():
    assert dice_from_counts(gt_voxels=10, pred_voxels=30, intersection_voxels=5) == 0.25
    assert math.isnan(dice_from_counts(gt_voxels=0, pred_voxels=0, intersection_voxels=0, empty_policy=EmptyPolicy("nnunet")))
    assert dice(np.ones((2, 2), bool), np.ones((2, 2), bool), empty_policy="aeval") == 1.0


@pytest.mark.parametrize(
    ("gt", "pred", "message"),
    [
        (np.zeros((2, 3), bool), np.zeros((3, 2), bool), r"\(2, 3\) vs \(3, 2\)"),
        (np.zeros((2, 3), float), np.zeros((2, 3), bool), "float64"),
        ([[True]], np.zeros((1, 1), bool), "numpy array"),
        (np.zeros(3, bool), np.zeros(3, bool), r"shape \(3,\)"),
    ],
)
def test_bad_masks_are_rejected(gt, pred, message):
    with pytest.raises(ValueError, match=message):
        dice(gt, pred)


def test_bad_policy_is_rejected():
    with pytest.raises(ValueError, match="empty_policy"):
        dice(np.ones((2, 2), bool), np.ones((2, 2), bool), empty_policy="flare")


@settings(max_examples=40, deadline=None)
@given(mask_pairs())
def test_dice_equals_reference(pair):
    gt, pred, _ = pair
    assert dice(gt, pred) == pytest.approx(surface_distance.compute_dice_coefficient(gt, pred), abs=1e-12)
