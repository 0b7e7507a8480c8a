"""Volumetric overlap: the Dice coefficient, from voxel counts only."""

from __future__ import annotations

import numpy as np

from metrics.empty_cases import empty_case_value
from metrics.options import EmptyPolicy
from metrics.validation import check_empty_policy, check_masks


def dice_from_counts(
    *, gt_voxels: int, pred_voxels: int, intersection_voxels: int, empty_policy: EmptyPolicy = EmptyPolicy.AEVAL
) -> float:
    """Dice = 2|P & G| / (|P| + |G|) from voxel counts.

    Empty cases (by voxel count): both 0 -> 1.0 (AEVAL) or NaN (NNUNET); exactly one 0 -> 0.0.
    """
    value = empty_case_value(
        "dice", gt_empty=gt_voxels == 0, pred_empty=pred_voxels == 0, policy=empty_policy, diagonal_mm=0.0
    )
    if value is not None:
        return value
    return 2.0 * intersection_voxels / (gt_voxels + pred_voxels)


def dice(gt_mask: np.ndarray, pred_mask: np.ndarray, *, empty_policy: EmptyPolicy = EmptyPolicy.AEVAL) -> float:
    """Dice coefficient of two binary masks.

    Args:
        gt_mask: bool array (or integer, non-zero = foreground) of any shape with 2 or 3 axes.
        pred_mask: same shape as ``gt_mask``.
        empty_policy: what an empty organ gives. Emptiness is decided by voxel count (a mask of
            any size with no True voxel is empty): both empty -> 1.0 under ``AEVAL``, NaN under
            ``NNUNET``; exactly one empty -> 0.0 under both.

    Returns:
        Dice in [0, 1] as a Python float (or NaN, see above).

    Raises:
        ValueError: if the masks are not bool/integer arrays of one shape, or the policy is unknown.
    """
    gt_mask, pred_mask = check_masks(gt_mask=gt_mask, pred_mask=pred_mask)
    policy = check_empty_policy(empty_policy)
    return dice_from_counts(
        gt_voxels=int(np.count_nonzero(gt_mask)),
        pred_voxels=int(np.count_nonzero(pred_mask)),
        intersection_voxels=int(np.count_nonzero(gt_mask & pred_mask)),
        empty_policy=policy,
    )
