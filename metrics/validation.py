"""Input checks shared by the public functions; every error is a ValueError naming the bad value.

Checks run before any computation, so a bad call fails fast with the shapes/values in the message
instead of deep inside numpy.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence

import numpy as np

from metrics.options import EmptyPolicy, OrganSpec

KNOWN_METRICS: tuple[str, ...] = ("dice", "nsd", "hd95", "assd")


def check_label_volumes(*, gt: object, pred: object) -> None:
    """Check that ``gt`` and ``pred`` are 2-D or 3-D integer arrays of one shape.

    Raises:
        ValueError: if either is not a numpy array, not 2-D/3-D, not of an integer dtype (bool
            is not accepted: pass labels), or if their shapes differ.
    """
    for name, volume in (("gt", gt), ("pred", pred)):
        if not isinstance(volume, np.ndarray):
            raise ValueError(f"{name} must be a numpy array, got {type(volume).__name__}")
        if volume.ndim not in (2, 3):
            raise ValueError(f"{name} must be 2-D or 3-D, got shape {volume.shape}")
        if not np.issubdtype(volume.dtype, np.integer):
            raise ValueError(f"{name} must have an integer dtype (a label volume), got {volume.dtype}")
    if gt.shape != pred.shape:  # type: ignore[union-attr]
        raise ValueError(f"gt and pred shapes differ: gt {gt.shape} vs pred {pred.shape}")  # type: ignore[union-attr]


def check_masks(*, gt_mask: object, pred_mask: object, ndims: tuple[int, ...] = (2, 3)) -> tuple[np.ndarray, np.ndarray]:
    """Check two binary masks and return them as bool arrays.

    Accepts bool arrays, or integer arrays where non-zero means foreground.

    Raises:
        ValueError: if either is not a numpy array of bool or integer dtype, has a dimension
            count outside ``ndims``, or if their shapes differ.
    """
    out = []
    for name, mask in (("gt_mask", gt_mask), ("pred_mask", pred_mask)):
        if not isinstance(mask, np.ndarray):
            raise ValueError(f"{name} must be a numpy array, got {type(mask).__name__}")
        if mask.ndim not in ndims:
            raise ValueError(f"{name} must have {' or '.join(map(str, ndims))} dimensions, got shape {mask.shape}")
        if mask.dtype != bool and not np.issubdtype(mask.dtype, np.integer):
            raise ValueError(f"{name} must be a bool (or integer) array, got dtype {mask.dtype}")
        out.append(mask if mask.dtype == bool else mask != 0)
    if out[0].shape != out[1].shape:
        raise ValueError(f"gt_mask and pred_mask shapes differ: {out[0].shape} vs {out[1].shape}")
    return out[0], out[1]


def check_spacing(spacing_mm: object, *, ndim: int) -> tuple[float, ...]:
    """Return ``spacing_mm`` as a tuple of floats after checking it.

    Raises:
        ValueError: if it is not a sequence of ``ndim`` finite numbers > 0.
    """
    try:
        values = tuple(float(s) for s in spacing_mm)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ValueError(f"spacing_mm must be a sequence of {ndim} numbers, got {spacing_mm!r}") from None
    if len(values) != ndim:
        raise ValueError(
            f"spacing_mm must have one entry per array axis ({ndim}), got {len(values)}: {values}"
        )
    if not all(math.isfinite(s) and s > 0 for s in values):
        raise ValueError(f"spacing_mm entries must be finite and > 0, got {values}")
    return values


def check_tolerance(tolerance_mm: object, *, what: str = "tolerance_mm") -> float:
    """Return the tolerance as a float after checking that it is finite and > 0.

    Raises:
        ValueError: if it is not a finite number > 0.
    """
    if isinstance(tolerance_mm, bool) or not isinstance(tolerance_mm, numbers.Real):
        raise ValueError(f"{what} must be a number, got {tolerance_mm!r}")
    value = float(tolerance_mm)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{what} must be finite and > 0, got {value}")
    return value


def check_organs(organs: Iterable[OrganSpec]) -> tuple[OrganSpec, ...]:
    """Return the organs as a tuple after checking labels, names and tolerances.

    Raises:
        ValueError: if an entry is not an OrganSpec, a label is not an int >= 1, a tolerance is
            not finite and > 0, or two organs share a label or a name.
    """
    organs = tuple(organs)
    seen_labels: dict[int, str] = {}
    seen_names: set[str] = set()
    for organ in organs:
        if not isinstance(organ, OrganSpec):
            raise ValueError(f"organs must contain OrganSpec instances, got {organ!r}")
        if isinstance(organ.label, bool) or not isinstance(organ.label, numbers.Integral) or organ.label < 1:
            raise ValueError(f"organ {organ.name!r}: label must be an int >= 1, got {organ.label!r}")
        check_tolerance(organ.tolerance_mm, what=f"organ {organ.name!r}: tolerance_mm")
        if int(organ.label) in seen_labels:
            raise ValueError(
                f"duplicate label {organ.label}: organs {seen_labels[int(organ.label)]!r} and {organ.name!r}"
            )
        if organ.name in seen_names:
            raise ValueError(f"duplicate organ name {organ.name!r}")
        seen_labels[int(organ.label)] = organ.name
        seen_names.add(organ.name)
    return organs


def check_si_axis(si_axis: object, *, ndim: int, organs: Sequence[OrganSpec]) -> int | None:
    """Return the superior-inferior axis index (or None when no organ needs it).

    Raises:
        ValueError: if an organ has ``restrict_to_gt_extent`` and ``si_axis`` is None (the message
            names the organ), or if ``si_axis`` is not an int in ``[0, ndim)``.
    """
    if si_axis is None:
        for organ in organs:
            if organ.restrict_to_gt_extent:
                raise ValueError(
                    f"organ {organ.name!r} has restrict_to_gt_extent=True, so si_axis (the array axis "
                    "that is the patient's superior-inferior axis) is required"
                )
        return None
    if isinstance(si_axis, bool) or not isinstance(si_axis, numbers.Integral) or not 0 <= si_axis < ndim:
        raise ValueError(f"si_axis must be an int in [0, {ndim}) for {ndim}-D volumes, got {si_axis!r}")
    return int(si_axis)


def check_metrics(metrics: Iterable[str]) -> tuple[str, ...]:
    """Return the requested metric names as a tuple.

    Raises:
        ValueError: if a name is unknown or repeated, or none is given.
    """
    if isinstance(metrics, str):
        raise ValueError(f"metrics must be a sequence of names, got the string {metrics!r}")
    names = tuple(metrics)
    unknown = [m for m in names if m not in KNOWN_METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; known: {list(KNOWN_METRICS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"metrics repeated: {list(names)}")
    if not names:
        raise ValueError("metrics must name at least one of " + ", ".join(KNOWN_METRICS))
    return names


def check_empty_policy(empty_policy: object) -> EmptyPolicy:
    """Return an EmptyPolicy, accepting the enum or its string value ("aeval", "nnunet").

    Raises:
        ValueError: for anything else.
    """
    if isinstance(empty_policy, EmptyPolicy):
        return empty_policy
    try:
        return EmptyPolicy(empty_policy)
    except ValueError:
        raise ValueError(
            f"empty_policy must be one of {[p.value for p in EmptyPolicy]}, got {empty_policy!r}"
        ) from None
