"""Scoring every organ of a 3-D case from one scan of each volume.

Why: a poor prediction (speckle of every label across a 512x512x300 CT) made per-organ work cost
a full-volume pass per organ and metric, and KD-trees blow up on far surfels. Here the cost is
bounded by the case:

1. one pass over both volumes: joint voxel counts (Dice) and the box of every organ
   (:mod:`metrics.label_counts`);
2. only for surface metrics, one surfel scan per volume for all organs (:mod:`metrics.surfel_scan`),
   the ground truth's limited to its organs' box;
3. per organ, exact surfel distances by lower envelopes (:mod:`metrics.corner_distances`), and
   area-weighted sums and percentile without sorting (:mod:`metrics.surfel_stats`).

NSD alone never lists a predicted surfel farther than the tolerance from the ground truth's box
(their area still counts, from the scan's code histogram), nor computes a distance beyond it.
Values equal surface-distance's (see each module for the exactness argument).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from metrics.corner_distances import nearest_distances
from metrics.empty_cases import DISTANCE_METRICS, empty_case_value
from metrics.label_counts import LabelCounts, count_labels, label_extents
from metrics.lookup_tables import neighbour_code_to_measure
from metrics.near_distances import nearest_distances_near
from metrics.options import EmptyPolicy, OrganSpec
from metrics.overlap import dice_from_counts
from metrics.proximity import axis_reach
from metrics.surface_metrics import HD_PERCENT, nsd_from_overlap
from metrics.surfel_scan import OrganSurfels, scan_surfels
from metrics.surfel_stats import area_percentile, area_sums

#: The most organs one scan handles (slots are stored in a byte; slot 0 means "no organ").
MAX_SLOTS = 255
#: HD95's percentile as the fraction of the surface area it takes.
HD_FRACTION = HD_PERCENT / 100.0


def _slot_lut(labels: Sequence[int], slots: Sequence[int] | None = None) -> np.ndarray:
    """Table from label to slot (organ i of ``labels`` is slot i + 1); only ``slots`` if given, else all."""
    lut = np.zeros(max(labels) + 1, dtype=np.uint8)
    for slot in slots if slots is not None else range(1, len(labels) + 1):
        lut[labels[slot - 1]] = slot
    return lut


def _limits(gt: np.ndarray, organs: Sequence[OrganSpec], labels: Sequence[int],
            si_axis: int | None) -> dict[int, tuple[int, int]]:
    """Slab (first and last slice along the SI axis) of each restricted organ the ground truth holds."""
    restricted = {slot: labels[slot - 1] for slot, organ in enumerate(organs, start=1) if organ.restrict_to_gt_extent}
    if not restricted:
        return {}
    assert si_axis is not None  # checked by check_si_axis
    slabs = label_extents(gt, list(restricted.values()), si_axis)
    return {slot: slabs[label] for slot, label in restricted.items() if label in slabs}


def _union_box(boxes: np.ndarray, slots: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    return boxes[list(slots), 0].min(axis=0), boxes[list(slots), 1].max(axis=0)


def _as_slot_volumes(gt: np.ndarray, pred: np.ndarray, labels: Sequence[int]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The volumes as the kernels take them (uint8, C order), and the labels they then hold.

    The harness's volumes already are (nothing is copied). Any other integer type or layout is
    turned into a volume of slots (organ i -> i + 1, anything else 0), so that the kernels are
    compiled once, for one type.
    """
    if all(v.dtype == np.uint8 and v.flags.c_contiguous for v in (gt, pred)):
        return gt, pred, list(labels)
    ordered = np.array(sorted(labels))
    slot_of = np.array([labels.index(int(label)) + 1 for label in ordered], dtype=np.uint8)

    def convert(volume: np.ndarray) -> np.ndarray:
        at = np.clip(np.searchsorted(ordered, volume), 0, len(ordered) - 1)
        return np.ascontiguousarray(np.where(ordered[at] == volume, slot_of[at], 0).astype(np.uint8))

    return convert(gt), convert(pred), list(range(1, len(labels) + 1))


def _corner_box(voxel_box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Corners touching a voxel box (lo..hi inclusive): lo..hi + 1."""
    return voxel_box[0].copy(), voxel_box[1] + 1


def _scan(volume: np.ndarray, boxes: np.ndarray, slots: list[int], n_slots: int, labels: Sequence[int], *,
          limits: dict[int, tuple[int, int]], limit_axis: int, plane_voxels: np.ndarray, plane_boxes: np.ndarray,
          emit_boxes: np.ndarray | None = None) -> OrganSurfels:
    """Surfels of the given slots, scanning only the box holding all of their voxels."""
    return scan_surfels(volume, slot_lut=_slot_lut(labels, slots), n_slots=n_slots, box=_union_box(boxes, slots), limits=limits,
                        limit_axis=limit_axis, emit_boxes=emit_boxes, plane_voxels=plane_voxels, plane_boxes=plane_boxes)


def _near_boxes(counts: LabelCounts, organs: Sequence[OrganSpec], spacing: tuple[float, ...],
                corner_dims: np.ndarray) -> np.ndarray:
    """Per slot: the ground truth's corner box grown by the tolerance's reach (where NSD looks)."""
    boxes = np.zeros((len(organs), 2, 3), dtype=np.int64)
    boxes[:, 1] = -1
    for slot, organ in enumerate(organs, start=1):
        if counts.gt_voxels(slot) == 0:
            continue
        reach = np.array([axis_reach(s, float(organ.tolerance_mm)) for s in spacing], dtype=np.int64)
        lo, hi = _corner_box(counts.gt_boxes[slot])
        boxes[slot - 1, 0] = np.maximum(lo - reach, 0)
        boxes[slot - 1, 1] = np.minimum(hi + reach, corner_dims - 1)
    return boxes


def score_volumes(
    gt: np.ndarray,
    pred: np.ndarray,
    *,
    spacing: tuple[float, ...],
    organs: Sequence[OrganSpec],
    si_axis: int | None,
    policy: EmptyPolicy,
    names: tuple[str, ...],
    diagonal_mm: float,
) -> dict[str, dict[str, float | int]]:
    """:func:`metrics.score_case` for checked 3-D volumes and at most MAX_SLOTS organs."""
    gt, pred, labels = _as_slot_volumes(gt, pred, [int(organ.label) for organ in organs])
    n_slots = len(organs)
    limit_axis = si_axis if si_axis is not None else 0
    limits = _limits(gt, organs, labels, si_axis)
    counts = count_labels(gt, pred, slot_lut=_slot_lut(labels), n_slots=n_slots, limits=limits,
                          limit_axis=limit_axis)
    results: dict[str, dict[str, float | int]] = {}
    surfaced: list[int] = []
    for slot, organ in enumerate(organs, start=1):
        gt_voxels, pred_voxels = counts.gt_voxels(slot), counts.pred_voxels(slot)
        result: dict[str, float | int] = {}
        if gt_voxels == 0 or pred_voxels == 0:
            for name in names:
                result[name] = empty_case_value(name, gt_empty=gt_voxels == 0, pred_empty=pred_voxels == 0,
                                                policy=policy, diagonal_mm=diagonal_mm)  # type: ignore[assignment]
        else:
            if "dice" in names:
                result["dice"] = dice_from_counts(gt_voxels=gt_voxels, pred_voxels=pred_voxels,
                                                  intersection_voxels=counts.overlap(slot), empty_policy=policy)
            if any(name != "dice" for name in names):
                surfaced.append(slot)
        result["gt_voxels"], result["pred_voxels"] = gt_voxels, pred_voxels
        results[organ.name] = result
    if surfaced:
        _surface_metrics(gt, pred, counts=counts, slots=surfaced, organs=organs, labels=labels, spacing=spacing,
                         limits=limits, limit_axis=limit_axis, names=names, results=results)
    return {
        organ.name: {**{name: float(results[organ.name][name]) for name in names},
                     "gt_voxels": int(results[organ.name]["gt_voxels"]),
                     "pred_voxels": int(results[organ.name]["pred_voxels"])}
        for organ in organs
    }


def _surface_metrics(gt: np.ndarray, pred: np.ndarray, *, counts: LabelCounts, slots: list[int],
                     organs: Sequence[OrganSpec], labels: list[int], spacing: tuple[float, ...],
                     limits: dict[int, tuple[int, int]], limit_axis: int, names: tuple[str, ...],
                     results: dict[str, dict[str, float | int]]) -> None:
    n_slots = len(organs)
    corner_dims = np.array([n + 1 for n in gt.shape], dtype=np.int64)
    areas = neighbour_code_to_measure(spacing)
    distances_wanted = bool(DISTANCE_METRICS & set(names))
    gt_surfels = _scan(gt, counts.gt_boxes, slots, n_slots, labels, limits={}, limit_axis=limit_axis,
                       plane_voxels=counts.gt_plane_voxels, plane_boxes=counts.gt_plane_boxes)
    near = None if distances_wanted else _near_boxes(counts, organs, spacing, corner_dims)
    pred_surfels = _scan(pred, counts.pred_boxes, slots, n_slots, labels, limits=limits, limit_axis=limit_axis,
                         plane_voxels=counts.pred_plane_voxels, plane_boxes=counts.pred_plane_boxes, emit_boxes=near)
    # one pair of distance arrays for all organs, as long as the largest organ needs
    to_pred = np.empty(max(gt_surfels.size(slot) for slot in slots))
    to_gt = np.empty(max(pred_surfels.size(slot) for slot in slots))
    for slot in slots:
        organ = organs[slot - 1]
        gt_set, pred_set = gt_surfels.segments(slot), pred_surfels.segments(slot)
        tolerance = float(organ.tolerance_mm)
        result = results[organ.name]
        if distances_wanted:
            nearest_distances_near(gt_set, pred_set, to_pred, corner_dims=corner_dims, spacing_mm=spacing)
            lo = np.minimum(counts.gt_boxes[slot, 0], counts.pred_boxes[slot, 0])
            hi = np.maximum(counts.gt_boxes[slot, 1], counts.pred_boxes[slot, 1]) + 1
            nearest_distances(pred_set, gt_set, to_gt, corner_dims=corner_dims, spacing_mm=spacing, region=(lo, hi))
            pred_area, pred_within, pred_weighted = area_sums(to_gt, pred_surfels.codes, pred_set, areas, tolerance)
        else:
            assert near is not None
            region = (near[slot - 1, 0], near[slot - 1, 1])
            nearest_distances(gt_set, pred_set, to_pred, corner_dims=corner_dims, spacing_mm=spacing, region=region)
            nearest_distances(pred_set, gt_set, to_gt, corner_dims=corner_dims, spacing_mm=spacing, region=region)
            _, pred_within, _ = area_sums(to_gt, pred_surfels.codes, pred_set, areas, tolerance)
            pred_area = float(pred_surfels.code_counts[slot - 1] @ areas)
        gt_area, gt_within, gt_weighted = area_sums(to_pred, gt_surfels.codes, gt_set, areas, tolerance)
        if "nsd" in names:
            result["nsd"] = nsd_from_overlap(gt_within_area=gt_within, gt_area=gt_area,
                                             pred_within_area=pred_within, pred_area=pred_area)
        if "hd95" in names:
            result["hd95"] = max(area_percentile(to_pred, gt_surfels.codes, gt_set, areas, HD_FRACTION),
                                 area_percentile(to_gt, pred_surfels.codes, pred_set, areas, HD_FRACTION))
        if "assd" in names:
            result["assd"] = (gt_weighted + pred_weighted) / (gt_area + pred_area)
