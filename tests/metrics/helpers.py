"""Shared test helpers: random masks of several kinds and the surface-distance reference."""

from __future__ import annotations

import numpy as np
import surface_distance
from hypothesis import strategies as st

MASK_KINDS = ("blob", "thin", "border", "voxel", "noise", "far")


def random_mask(rng: np.random.Generator, shape: tuple[int, ...], kind: str) -> np.ndarray:
    """A bool mask of the given kind (may be empty only for 'noise' with bad luck)."""
    ndim = len(shape)
    mask = np.zeros(shape, dtype=bool)
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    if kind in ("blob", "far"):
        for _ in range(int(rng.integers(1, 4))):
            center = [rng.uniform(-1, n) for n in shape]
            radii = [rng.uniform(0.5, max(n / 2, 1)) for n in shape]
            mask |= sum(((g - c) / r) ** 2 for g, c, r in zip(grid, center, radii)) <= 1
        if kind == "far":
            mask[tuple(int(rng.integers(0, 2)) * (n - 1) for n in shape)] = True
    elif kind == "thin":  # a one-voxel line or plane
        axis = int(rng.integers(0, ndim))
        index = [slice(None)] * ndim
        index[axis] = int(rng.integers(0, shape[axis]))
        if ndim == 3 and rng.random() < 0.5:  # a line instead of a plane
            other = (axis + 1) % ndim
            index[other] = int(rng.integers(0, shape[other]))
        mask[tuple(index)] = True
    elif kind == "border":  # touches the array's first or last slab along some axis
        axis = int(rng.integers(0, ndim))
        index = [slice(None)] * ndim
        depth = int(rng.integers(1, shape[axis] + 1))
        index[axis] = slice(0, depth) if rng.random() < 0.5 else slice(shape[axis] - depth, None)
        mask[tuple(index)] = True
        mask &= rng.random(shape) < 0.8
    elif kind == "voxel":
        mask[tuple(int(rng.integers(0, n)) for n in shape)] = True
    elif kind == "noise":
        mask = rng.random(shape) < rng.uniform(0.02, 0.3)
    else:
        raise ValueError(kind)
    if not mask.any():
        mask[tuple(int(rng.integers(0, n)) for n in shape)] = True
    return mask


@st.composite
def mask_pairs(draw, *, min_side: int = 1, max_side: int = 12, ndims=(2, 3)):
    """(gt, pred, spacing) with random shapes, kinds and anisotropic spacing; both non-empty."""
    ndim = draw(st.sampled_from(ndims))
    shape = tuple(draw(st.lists(st.integers(min_side, max_side), min_size=ndim, max_size=ndim)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    gt = random_mask(rng, shape, draw(st.sampled_from(MASK_KINDS)))
    relation = draw(st.sampled_from(["independent", "perturbed", "equal"]))
    if relation == "independent":
        pred = random_mask(rng, shape, draw(st.sampled_from(MASK_KINDS)))
    elif relation == "perturbed":
        pred = gt ^ (rng.random(shape) < 0.1)
        if not pred.any():
            pred = gt.copy()
    else:
        pred = gt.copy()
    spacing = tuple(
        draw(st.lists(st.floats(0.3, 4.0, allow_nan=False, allow_infinity=False), min_size=ndim, max_size=ndim))
    )
    return gt, pred, spacing


def reference(gt: np.ndarray, pred: np.ndarray, spacing: tuple[float, ...], tolerance_mm: float) -> dict[str, float]:
    """Dice, NSD, HD95 and ASSD from DeepMind's surface-distance (non-empty masks only)."""
    sd = surface_distance.compute_surface_distances(gt, pred, spacing)
    d_g, d_p = sd["distances_gt_to_pred"], sd["distances_pred_to_gt"]
    a_g, a_p = sd["surfel_areas_gt"], sd["surfel_areas_pred"]
    return {
        "dice": float(surface_distance.compute_dice_coefficient(gt, pred)),
        "nsd": float(surface_distance.compute_surface_dice_at_tolerance(sd, tolerance_mm)),
        "hd95": float(surface_distance.compute_robust_hausdorff(sd, 95)),
        "assd": float((d_g @ a_g + d_p @ a_p) / (a_g.sum() + a_p.sum())),
    }
