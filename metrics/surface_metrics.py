"""Surface metrics derived from surfel distances: NSD, HD95 and ASSD.

The expensive step runs once: :func:`surface_distances` finds the surfels of both masks and the
distance from each to the other surface. :func:`nsd`, :func:`hd95` and :func:`assd` are cheap
functions of its result. Definitions follow DeepMind's ``surface-distance`` (Nikolov et al.):

* NSD at tolerance t = (sum of areas of gt surfels with d <= t + same for pred surfels)
  / (total gt area + total pred area)  (``compute_surface_dice_at_tolerance``);
* HD95 = max over both directions of the area-weighted 95th percentile of the distances
  (``compute_robust_hausdorff(..., 95)``);
* ASSD = (sum d_g * a_g + sum d_p * a_p) / (sum a_g + sum a_p), the area-weighted average
  symmetric surface distance.

Empty masks (decided by voxel count; see :mod:`metrics.empty_cases`): both empty -> NSD 1.0,
HD95 = ASSD = 0.0 under ``EmptyPolicy.AEVAL``, NaN under ``EmptyPolicy.NNUNET``; exactly one empty
-> NSD 0.0 and HD95 = ASSD = the physical diagonal of the volume in mm under both policies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from metrics.cropping import box_slices, label_boxes
from metrics.empty_cases import empty_case_value, volume_diagonal_mm
from metrics.options import EmptyPolicy
from metrics.proximity import nearest_distances
from metrics.surfaces import Surface, mask_surface
from metrics.validation import check_empty_policy, check_masks, check_spacing, check_tolerance


@dataclass(frozen=True)
class SurfaceDistances:
    """Surfel distances and areas of a ground-truth and a predicted surface.

    Each direction is sorted by (distance, area), as surface-distance sorts it. Areas are in mm^2
    for 3-D masks and contour lengths in mm for 2-D masks. A direction whose source surface is
    empty has empty arrays; distances towards an empty surface are ``+inf`` (metrics never return
    them: see the empty cases in the module docstring).

    Attributes:
        distances_gt_to_pred_mm: float64 (n_gt,), from each gt surfel to the predicted surface.
        distances_pred_to_gt_mm: float64 (n_pred,), from each predicted surfel to the gt surface.
        surfel_areas_gt_mm2: float64 (n_gt,), in the same order as distances_gt_to_pred_mm.
        surfel_areas_pred_mm2: float64 (n_pred,), in the same order as distances_pred_to_gt_mm.
        volume_diagonal_mm: physical diagonal of the masks' volume (the one-empty value).
    """

    distances_gt_to_pred_mm: np.ndarray
    distances_pred_to_gt_mm: np.ndarray
    surfel_areas_gt_mm2: np.ndarray
    surfel_areas_pred_mm2: np.ndarray
    volume_diagonal_mm: float

    @property
    def gt_empty(self) -> bool:
        """Whether the ground-truth mask had no voxel (hence no surfel)."""
        return self.surfel_areas_gt_mm2.size == 0

    @property
    def pred_empty(self) -> bool:
        """Whether the predicted mask had no voxel (hence no surfel)."""
        return self.surfel_areas_pred_mm2.size == 0

    @staticmethod
    def from_surfaces(gt: Surface, pred: Surface, *, spacing_mm: Sequence[float], volume_diagonal_mm: float) -> "SurfaceDistances":
        """Compute both directions' distances (KD-tree, exact) and sort them."""
        d_gt = nearest_distances(gt, pred, spacing_mm=spacing_mm)
        d_pred = nearest_distances(pred, gt, spacing_mm=spacing_mm)
        order_gt = np.lexsort((gt.areas_mm, d_gt))
        order_pred = np.lexsort((pred.areas_mm, d_pred))
        return SurfaceDistances(
            distances_gt_to_pred_mm=d_gt[order_gt],
            distances_pred_to_gt_mm=d_pred[order_pred],
            surfel_areas_gt_mm2=gt.areas_mm[order_gt],
            surfel_areas_pred_mm2=pred.areas_mm[order_pred],
            volume_diagonal_mm=float(volume_diagonal_mm),
        )


def _whole_mask_surface(mask: np.ndarray, spacing_mm: Sequence[float]) -> Surface:
    boxes = label_boxes(mask.view(np.uint8), labels=[1])
    if 1 not in boxes:
        return Surface.empty(mask.ndim)
    box = boxes[1]
    return mask_surface(mask[box_slices(box)], origin=tuple(lo for lo, _ in box), spacing_mm=spacing_mm)


def surface_distances(gt_mask: np.ndarray, pred_mask: np.ndarray, spacing_mm: Sequence[float]) -> SurfaceDistances:
    """Surfels of both masks and their distances to the other surface, computed once.

    Args:
        gt_mask: bool array (or integer, non-zero = foreground), 2-D or 3-D.
        pred_mask: same shape as ``gt_mask``.
        spacing_mm: voxel size in mm per ARRAY axis, in array axis order (for a SimpleITK image
            ``(sx, sy, sz)`` read into a ``(z, y, x)`` array, pass ``(sz, sy, sx)``).

    Returns:
        A :class:`SurfaceDistances`. Work and memory scale with the organ's crop and number of
        surfels, not with the volume (a far stray voxel only adds its own surfels).

    Raises:
        ValueError: if the masks are not bool/integer 2-D/3-D arrays of one shape, or the spacing
            does not have one finite positive entry per axis.
    """
    gt_mask, pred_mask = check_masks(gt_mask=gt_mask, pred_mask=pred_mask)
    spacing = check_spacing(spacing_mm, ndim=gt_mask.ndim)
    return SurfaceDistances.from_surfaces(
        _whole_mask_surface(gt_mask, spacing),
        _whole_mask_surface(pred_mask, spacing),
        spacing_mm=spacing,
        volume_diagonal_mm=volume_diagonal_mm(gt_mask.shape, spacing),
    )


def _check_sd(sd: object) -> SurfaceDistances:
    if not isinstance(sd, SurfaceDistances):
        raise ValueError(f"sd must be a SurfaceDistances (from surface_distances()), got {type(sd).__name__}")
    return sd


def nsd_from_overlap(
    *, gt_within_area: float, gt_area: float, pred_within_area: float, pred_area: float
) -> float:
    """NSD from the surface areas within tolerance and the total areas of both surfaces.

    The within-tolerance areas are summed over a subset of the surfels the totals are summed over,
    in another order, so a perfect overlap can come out an ulp above 1: the result is clamped to
    [0, 1], the range the results schemas promise.
    """
    return float(min(1.0, (gt_within_area + pred_within_area) / (gt_area + pred_area)))


def nsd(sd: SurfaceDistances, tolerance_mm: float, *, empty_policy: EmptyPolicy = EmptyPolicy.AEVAL) -> float:
    """Normalized surface Dice at ``tolerance_mm``.

    Returns:
        The fraction, in [0, 1], of the summed surface area of both surfaces lying within
        ``tolerance_mm`` of the other surface (distance <= tolerance). Both masks empty -> 1.0
        (AEVAL) or NaN (NNUNET); exactly one empty -> 0.0.

    Raises:
        ValueError: if ``sd`` is not a SurfaceDistances or the tolerance is not finite and > 0.
    """
    sd = _check_sd(sd)
    tolerance = check_tolerance(tolerance_mm)
    value = empty_case_value(
        "nsd", gt_empty=sd.gt_empty, pred_empty=sd.pred_empty,
        policy=check_empty_policy(empty_policy), diagonal_mm=sd.volume_diagonal_mm,
    )
    if value is not None:
        return value
    return nsd_from_overlap(
        gt_within_area=sd.surfel_areas_gt_mm2[sd.distances_gt_to_pred_mm <= tolerance].sum(),
        gt_area=sd.surfel_areas_gt_mm2.sum(),
        pred_within_area=sd.surfel_areas_pred_mm2[sd.distances_pred_to_gt_mm <= tolerance].sum(),
        pred_area=sd.surfel_areas_pred_mm2.sum(),
    )


#: HD95's percentile of the area-weighted surfel distances.
HD_PERCENT = 95.0


def sorted_area_percentile(distances: np.ndarray, areas: np.ndarray, percent: float) -> float:
    """surface-distance's percentile rule on surfels sorted by (distance, area): the distance where
    ``cumsum(area) / sum(area)`` first reaches ``percent / 100`` (the last one if it never does)."""
    cumulative = np.cumsum(areas) / np.sum(areas)
    index = int(np.searchsorted(cumulative, percent / 100.0))
    return float(distances[min(index, len(distances) - 1)])


def hd95(sd: SurfaceDistances, *, empty_policy: EmptyPolicy = EmptyPolicy.AEVAL) -> float:
    """Robust (95th percentile) Hausdorff distance in mm.

    For each direction, the smallest sorted distance at which the cumulative surfel area reaches
    95% of that surface's area; the result is the larger of the two directions. Both masks empty
    -> 0.0 (AEVAL) or NaN (NNUNET); exactly one empty -> the volume diagonal in mm.

    Raises:
        ValueError: if ``sd`` is not a SurfaceDistances.
    """
    sd = _check_sd(sd)
    value = empty_case_value(
        "hd95", gt_empty=sd.gt_empty, pred_empty=sd.pred_empty,
        policy=check_empty_policy(empty_policy), diagonal_mm=sd.volume_diagonal_mm,
    )
    if value is not None:
        return value
    return max(
        sorted_area_percentile(sd.distances_gt_to_pred_mm, sd.surfel_areas_gt_mm2, HD_PERCENT),
        sorted_area_percentile(sd.distances_pred_to_gt_mm, sd.surfel_areas_pred_mm2, HD_PERCENT),
    )


def assd(sd: SurfaceDistances, *, empty_policy: EmptyPolicy = EmptyPolicy.AEVAL) -> float:
    """Average symmetric surface distance in mm, weighted by surfel area.

    ``(sum d_g * a_g + sum d_p * a_p) / (sum a_g + sum a_p)``. Both masks empty -> 0.0 (AEVAL) or
    NaN (NNUNET); exactly one empty -> the volume diagonal in mm.

    Raises:
        ValueError: if ``sd`` is not a SurfaceDistances.
    """
    sd = _check_sd(sd)
    value = empty_case_value(
        "assd", gt_empty=sd.gt_empty, pred_empty=sd.pred_empty,
        policy=check_empty_policy(empty_policy), diagonal_mm=sd.volume_diagonal_mm,
    )
    if value is not None:
        return value
    weighted = np.dot(sd.distances_gt_to_pred_mm, sd.surfel_areas_gt_mm2) + np.dot(
        sd.distances_pred_to_gt_mm, sd.surfel_areas_pred_mm2
    )
    return float(weighted / (sd.surfel_areas_gt_mm2.sum() + sd.surfel_areas_pred_mm2.sum()))
