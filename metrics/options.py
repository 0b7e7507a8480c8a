"""Options that callers pass to :func:`metrics.score_case`: the empty-organ policy and organ specs."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class EmptyPolicy(enum.Enum):
    """What a metric is when an organ is absent from the ground truth and/or the prediction.

    ``AEVAL`` (the default, the A-Eval / FLARE convention): absent from both -> Dice = NSD = 1 and
    HD95 = ASSD = 0; absent from exactly one -> Dice = NSD = 0 and HD95 = ASSD = the physical
    diagonal of the volume in mm (a finite worst case, so no Infinity ever reaches JSON).

    ``NNUNET`` (opt-in, nnU-Net's convention): absent from both -> NaN for every metric (callers
    nan-mean); absent from exactly one -> the same values as ``AEVAL``.
    """

    AEVAL = "aeval"
    NNUNET = "nnunet"


@dataclass(frozen=True)
class OrganSpec:
    """One organ of the benchmark taxonomy, as scored by :func:`metrics.score_case`.

    Attributes:
        label: the organ's integer id in both the ground-truth and the prediction volume (>= 1).
        name: key of the organ in the result dict.
        tolerance_mm: NSD tolerance in mm (> 0).
        restrict_to_gt_extent: score only on the slices, along the superior-inferior axis, from
            the first to the last slice where the ground truth has the organ (both end slices
            included); ground truth and prediction outside that slab are ignored for every metric
            of the organ. No restriction when the ground truth lacks the organ. True for the
            esophagus, whose annotated length is arbitrary.
    """

    label: int
    name: str
    tolerance_mm: float
    restrict_to_gt_extent: bool = False
