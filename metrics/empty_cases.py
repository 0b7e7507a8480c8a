"""The values metrics take when an organ is absent from the ground truth and/or the prediction.

One place for the conventions of :class:`metrics.EmptyPolicy`, so Dice, NSD, HD95 and ASSD (and
the low-level functions and :func:`metrics.score_case`) cannot drift apart:

============================  ==========  ==========  =======================
case                          Dice, NSD   HD95, ASSD  policy
============================  ==========  ==========  =======================
absent from both              1.0         0.0         ``AEVAL`` (default)
absent from both              NaN         NaN         ``NNUNET``
absent from exactly one       0.0         diagonal    both policies
============================  ==========  ==========  =======================

"diagonal" is the physical diagonal of the volume, ``sqrt(sum((n_i * s_i)**2))`` in mm for shape
``n`` and spacing ``s``: the largest distance two points of the volume can have, a finite worst
case so that no Infinity ever reaches a JSON result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from metrics.options import EmptyPolicy

OVERLAP_METRICS = frozenset({"dice", "nsd"})
DISTANCE_METRICS = frozenset({"hd95", "assd"})


def volume_diagonal_mm(shape: Sequence[int], spacing_mm: Sequence[float]) -> float:
    """Physical diagonal of a volume in mm: ``sqrt(sum((n_i * s_i)**2))``, array axis order."""
    return math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing_mm)))


def empty_case_value(
    metric: str, *, gt_empty: bool, pred_empty: bool, policy: EmptyPolicy, diagonal_mm: float
) -> float | None:
    """The metric's value when at least one side is empty, or None when neither is.

    Args:
        metric: "dice", "nsd", "hd95" or "assd".
        gt_empty: the ground truth has no voxel of the organ (voxel count, not array size).
        pred_empty: the prediction has no voxel of the organ.
        policy: the EmptyPolicy.
        diagonal_mm: the volume diagonal in mm (see :func:`volume_diagonal_mm`).

    Raises:
        ValueError: for an unknown metric name.
    """
    if metric not in OVERLAP_METRICS | DISTANCE_METRICS:
        raise ValueError(f"unknown metric {metric!r}")
    if not gt_empty and not pred_empty:
        return None
    if gt_empty and pred_empty:
        if policy is EmptyPolicy.NNUNET:
            return math.nan
        return 1.0 if metric in OVERLAP_METRICS else 0.0
    return 0.0 if metric in OVERLAP_METRICS else float(diagonal_mm)
