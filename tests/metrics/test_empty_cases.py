"""One table of empty-organ values for every metric and policy."""

from __future__ import annotations

import math

import pytest

from metrics import EmptyPolicy
from metrics.empty_cases import empty_case_value, volume_diagonal_mm

DIAGONAL = 123.0


@pytest.mark.parametrize(
    ("metric", "gt_empty", "pred_empty", "policy", "expected"),
    [
        ("dice", True, True, EmptyPolicy.AEVAL, 1.0),
        ("nsd", True, True, EmptyPolicy.AEVAL, 1.0),
        ("hd95", True, True, EmptyPolicy.AEVAL, 0.0),
        ("assd", True, True, EmptyPolicy.AEVAL, 0.0),
        ("dice", True, True, EmptyPolicy.NNUNET, math.nan),
        ("nsd", True, True, EmptyPolicy.NNUNET, math.nan),
        ("hd95", True, True, EmptyPolicy.NNUNET, math.nan),
        ("assd", True, True, EmptyPolicy.NNUNET, math.nan),
        ("dice", True, False, EmptyPolicy.AEVAL, 0.0),
        ("nsd", False, True, EmptyPolicy.AEVAL, 0.0),
        ("hd95", True, False, EmptyPolicy.AEVAL, DIAGONAL),
        ("assd", False, True, EmptyPolicy.AEVAL, DIAGONAL),
        ("dice", False, True, EmptyPolicy.NNUNET, 0.0),
        ("nsd", True, False, EmptyPolicy.NNUNET, 0.0),
        ("hd95", False, True, EmptyPolicy.NNUNET, DIAGONAL),
        ("assd", True, False, EmptyPolicy.NNUNET, DIAGONAL),
        ("dice", False, False, EmptyPolicy.AEVAL, None),
        ("hd95", False, False, EmptyPolicy.NNUNET, None),
    ],
)
def test_empty_case_values(metric, gt_empty, pred_empty, policy, expected):
    value = empty_case_value(metric, gt_empty=gt_empty, pred_empty=pred_empty, policy=policy, diagonal_mm=DIAGONAL)
    if expected is None:
        assert value is None
    elif math.isnan(expected):
        assert math.isnan(value)
    else:
        assert value == expected


def test_unknown_metric():
    with pytest.raises(ValueError, match="unknown metric 'hd100'"):
        empty_case_value("hd100", gt_empty=True, pred_empty=True, policy=EmptyPolicy.AEVAL, diagonal_mm=1.0)


def test_volume_diagonal_worked_by_hand():
    # 4 x 5 x 6 voxels of 2 x 1 x 0.5 mm: 8 x 5 x 3 mm
    assert volume_diagonal_mm((4, 5, 6), (2.0, 1.0, 0.5)) == pytest.approx(math.sqrt(64 + 25 + 9))
    assert volume_diagonal_mm((3, 4), (1.5, 2.0)) == pytest.approx(math.sqrt(4.5**2 + 8.0**2))
