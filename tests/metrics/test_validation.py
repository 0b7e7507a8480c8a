"""Input checks: every error is a ValueError that names the bad argument and its value."""

from __future__ import annotations

import numpy as np
import pytest

from metrics import OrganSpec
from metrics.validation import (
    check_label_volumes,
    check_masks,
    check_metrics,
    check_organs,
    check_si_axis,
    check_spacing,
    check_tolerance,
)


def test_label_volumes():
    check_label_volumes(gt=np.zeros((2, 3), np.uint16), pred=np.zeros((2, 3), np.int8))
    with pytest.raises(ValueError, match="gt must be a numpy array, got list"):
        check_label_volumes(gt=[[1]], pred=np.zeros((1, 1), np.uint8))
    with pytest.raises(ValueError, match=r"gt must be 2-D or 3-D, got shape \(1, 1, 1, 1\)"):
        check_label_volumes(gt=np.zeros((1, 1, 1, 1), np.uint8), pred=np.zeros((1, 1, 1, 1), np.uint8))


def test_masks_convert_integers_to_bool():
    gt, pred = check_masks(gt_mask=np.array([[0, 5]]), pred_mask=np.array([[True, False]]))
    assert gt.dtype == bool and gt.tolist() == [[False, True]] and pred.tolist() == [[True, False]]


@pytest.mark.parametrize(
    ("spacing", "message"),
    [
        ("abc", "sequence of 3 numbers"),
        (None, "sequence of 3 numbers"),
        ((1, 2, float("inf")), "finite and > 0"),
        ((1, 2, 3, 4), "got 4"),
    ],
)
def test_spacing(spacing, message):
    with pytest.raises(ValueError, match=message):
        check_spacing(spacing, ndim=3)


def test_spacing_returns_floats():
    assert check_spacing(np.array([2, 1, 1]), ndim=3) == (2.0, 1.0, 1.0)


@pytest.mark.parametrize("value", [True, "3", float("nan"), -1, 0])
def test_tolerance(value):
    with pytest.raises(ValueError, match="tolerance_mm"):
        check_tolerance(value)


def test_organs_must_be_organ_specs():
    with pytest.raises(ValueError, match="OrganSpec instances"):
        check_organs([(1, "liver", 5.0)])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="label must be an int >= 1, got 1.5"):
        check_organs([OrganSpec(1.5, "liver", 5.0)])  # type: ignore[arg-type]


def test_si_axis_optional_without_restricted_organs():
    assert check_si_axis(None, ndim=3, organs=[OrganSpec(1, "liver", 5.0)]) is None
    assert check_si_axis(np.int64(2), ndim=3, organs=[]) == 2
    with pytest.raises(ValueError, match="si_axis must be an int"):
        check_si_axis(True, ndim=3, organs=[])


def test_metrics():
    assert check_metrics(["hd95", "dice"]) == ("hd95", "dice")
    with pytest.raises(ValueError, match="repeated"):
        check_metrics(["dice", "dice"])
    with pytest.raises(ValueError, match="at least one"):
        check_metrics([])
