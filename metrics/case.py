"""Scoring one case: every organ of a ground-truth / prediction label-volume pair.

3-D volumes (everything the harness scores) go through :mod:`metrics.volume_scoring`: one pass
over both volumes for all organs, then compiled kernels whose cost is bounded by the case, however
scattered the prediction. 2-D images (and more than 255 organs) take the per-organ plan below,
chosen so each metric costs only what it needs:

1. one bounding-box pass over each volume for all organs (:func:`metrics.cropping.label_boxes`);
2. per organ, crop the two boxes (the esophagus-style slab restriction just shrinks them), build
   the organ masks once and take the voxel counts and the intersection (Dice is counts only);
3. only when a surface metric is asked for: surfels of both masks, with boxes split around stray
   clusters (:mod:`metrics.surfaces`);
4. NSD alone: predicted surfels listed only near the ground truth (elsewhere only their total area
   counts, from a histogram of codes), within-tolerance tests bounded by that region
   (:func:`metrics.proximity.within_tolerance`); HD95/ASSD: exact nearest distances (KD-tree or
   feature transform, by cost: :func:`metrics.proximity.nearest_distances`), from which NSD is
   then derived too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from metrics.cropping import Box, box_slices, intersect_boxes, label_boxes
from metrics.empty_cases import DISTANCE_METRICS, empty_case_value, volume_diagonal_mm
from metrics.options import EmptyPolicy, OrganSpec
from metrics.overlap import dice_from_counts
from metrics.proximity import axis_reach, within_tolerance
from metrics.surface_metrics import SurfaceDistances, assd, hd95, nsd, nsd_from_overlap
from metrics.surfaces import Surface, mask_surface, mask_surface_near
from metrics.volume_scoring import MAX_SLOTS, score_volumes
from metrics.validation import (
    KNOWN_METRICS,
    check_empty_policy,
    check_label_volumes,
    check_metrics,
    check_organs,
    check_si_axis,
    check_spacing,
)

DEFAULT_METRICS: tuple[str, ...] = KNOWN_METRICS


def _organ_mask(volume: np.ndarray, box: Box | None, label: int) -> tuple[np.ndarray | None, int]:
    if box is None:
        return None, 0
    mask = volume[box_slices(box)] == label
    return mask, int(np.count_nonzero(mask))


def _intersection(gt_mask: np.ndarray, gt_box: Box, pred_mask: np.ndarray, pred_box: Box) -> int:
    common = intersect_boxes(gt_box, pred_box)
    if common is None:
        return 0
    in_gt = tuple(slice(lo - g, hi - g) for (lo, hi), (g, _) in zip(common, gt_box))
    in_pred = tuple(slice(lo - p, hi - p) for (lo, hi), (p, _) in zip(common, pred_box))
    return int(np.count_nonzero(gt_mask[in_gt] & pred_mask[in_pred]))


def _nsd_only(
    gt_surface: Surface, pred_mask: np.ndarray, pred_box: Box, pred_voxels: int, spacing: tuple[float, ...],
    organ: OrganSpec,
) -> float:
    """NSD without listing the predicted surfels that cannot be within tolerance of the ground truth.

    Only predicted surfels in the ground truth's corner box grown by the tolerance's reach can be
    within it (:func:`metrics.proximity.within_tolerance` looks no further); the others only add
    their area, which a histogram of neighbourhood codes gives without listing them.
    """
    tolerance = float(organ.tolerance_mm)
    reach = np.array([axis_reach(s, tolerance) for s in spacing], dtype=np.int64)
    pred_near, pred_area = mask_surface_near(
        pred_mask, origin=tuple(lo for lo, _ in pred_box), spacing_mm=spacing, count=pred_voxels,
        lo=gt_surface.corners.min(axis=1) - reach, hi=gt_surface.corners.max(axis=1) + reach,
    )
    gt_within, pred_within = within_tolerance(gt_surface, pred_near, spacing_mm=spacing, tolerance_mm=tolerance)
    return nsd_from_overlap(
        gt_within_area=gt_surface.areas_mm[gt_within].sum(),
        gt_area=gt_surface.areas_mm.sum(),
        pred_within_area=pred_near.areas_mm[pred_within].sum(),
        pred_area=pred_area,
    )


def _score_organ(
    *,
    gt: np.ndarray,
    pred: np.ndarray,
    gt_box: Box | None,
    pred_box: Box | None,
    organ: OrganSpec,
    spacing: tuple[float, ...],
    si_axis: int | None,
    policy: EmptyPolicy,
    names: tuple[str, ...],
    diagonal_mm: float,
) -> dict[str, float | int]:
    if organ.restrict_to_gt_extent and gt_box is not None and pred_box is not None:
        assert si_axis is not None  # checked by check_si_axis
        slab = tuple(gt_box[si_axis] if axis == si_axis else (0, n) for axis, n in enumerate(gt.shape))
        pred_box = intersect_boxes(pred_box, slab)
    gt_mask, gt_voxels = _organ_mask(gt, gt_box, organ.label)
    pred_mask, pred_voxels = _organ_mask(pred, pred_box, organ.label)
    result: dict[str, float | int] = {}
    if gt_voxels == 0 or pred_voxels == 0:
        for name in names:
            value = empty_case_value(
                name, gt_empty=gt_voxels == 0, pred_empty=pred_voxels == 0, policy=policy, diagonal_mm=diagonal_mm
            )
            result[name] = value  # type: ignore[assignment]
    else:
        assert gt_mask is not None and pred_mask is not None and gt_box is not None and pred_box is not None
        if "dice" in names:
            result["dice"] = dice_from_counts(
                gt_voxels=gt_voxels,
                pred_voxels=pred_voxels,
                intersection_voxels=_intersection(gt_mask, gt_box, pred_mask, pred_box),
                empty_policy=policy,
            )
        if any(name != "dice" for name in names):
            gt_surface = mask_surface(gt_mask, origin=tuple(lo for lo, _ in gt_box), spacing_mm=spacing, count=gt_voxels)
            if DISTANCE_METRICS & set(names):
                pred_surface = mask_surface(
                    pred_mask, origin=tuple(lo for lo, _ in pred_box), spacing_mm=spacing, count=pred_voxels
                )
                sd = SurfaceDistances.from_surfaces(
                    gt_surface, pred_surface, spacing_mm=spacing, volume_diagonal_mm=diagonal_mm
                )
                if "nsd" in names:
                    result["nsd"] = nsd(sd, organ.tolerance_mm, empty_policy=policy)
                if "hd95" in names:
                    result["hd95"] = hd95(sd, empty_policy=policy)
                if "assd" in names:
                    result["assd"] = assd(sd, empty_policy=policy)
            else:
                result["nsd"] = _nsd_only(gt_surface, pred_mask, pred_box, pred_voxels, spacing, organ)
    ordered: dict[str, float | int] = {name: float(result[name]) for name in names}
    ordered["gt_voxels"] = gt_voxels
    ordered["pred_voxels"] = pred_voxels
    return ordered


def score_case(
    gt: np.ndarray,
    pred: np.ndarray,
    *,
    spacing_mm: Sequence[float],
    organs: Sequence[OrganSpec],
    si_axis: int | None = None,
    empty_policy: EmptyPolicy = EmptyPolicy.AEVAL,
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> dict[str, dict[str, float | int]]:
    """Score every organ of one case.

    Args:
        gt: integer label volume, 3-D (or 2-D), on the ground truth's own grid.
        pred: integer label volume of the same shape (labels as in ``organs``).
        spacing_mm: voxel size in mm per ARRAY axis, in array axis order. Callers holding a
            SimpleITK spacing ``(sx, sy, sz)`` for a ``(z, y, x)`` array pass ``(sz, sy, sx)``.
        organs: the organs to score; labels and names must be unique.
        si_axis: array axis index of the patient's superior-inferior axis; required when an organ
            has ``restrict_to_gt_extent`` (that organ is then scored only on the slab of slices,
            first to last inclusive, where its ground truth is present; no restriction when the
            ground truth lacks it).
        empty_policy: conventions for organs absent from either volume (see
            :class:`metrics.EmptyPolicy`); emptiness is by voxel count after any slab restriction.
        metrics: which of "dice", "nsd", "hd95", "assd" to compute; each costs only what it
            needs (Dice is voxel counts; NSD alone never computes distances beyond the tolerance).

    Returns:
        ``{organ.name: {metric: float for each requested metric, "gt_voxels": int,
        "pred_voxels": int}}`` with plain Python numbers, organs in the given order. Voxel counts
        are those scored (inside the slab for a restricted organ). HD95/ASSD are in mm; they are
        never infinite (one empty side gives the volume diagonal).

    Raises:
        ValueError: on a shape mismatch, a non-integer dtype, a spacing without one finite
            positive entry per axis, duplicate organ labels or names, bad tolerances, an unknown
            metric or policy, or a missing/invalid ``si_axis`` (the message names the organ).
    """
    check_label_volumes(gt=gt, pred=pred)
    spacing = check_spacing(spacing_mm, ndim=gt.ndim)
    organs = check_organs(organs)
    axis = check_si_axis(si_axis, ndim=gt.ndim, organs=organs)
    policy = check_empty_policy(empty_policy)
    names = check_metrics(metrics)

    diagonal = volume_diagonal_mm(gt.shape, spacing)
    if gt.ndim == 3 and len(organs) <= MAX_SLOTS:
        return score_volumes(gt, pred, spacing=spacing, organs=organs, si_axis=axis, policy=policy,
                             names=names, diagonal_mm=diagonal)
    labels = [int(organ.label) for organ in organs]
    gt_boxes = label_boxes(gt, labels=labels)
    pred_boxes = label_boxes(pred, labels=labels)
    return {
        organ.name: _score_organ(
            gt=gt,
            pred=pred,
            gt_box=gt_boxes.get(int(organ.label)),
            pred_box=pred_boxes.get(int(organ.label)),
            organ=organ,
            spacing=spacing,
            si_axis=axis,
            policy=policy,
            names=names,
            diagonal_mm=diagonal,
        )
        for organ in organs
    }
