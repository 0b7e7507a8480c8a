"""Distances between the surfels of two surfaces.

Two questions are asked of a pair of surfaces, with different costs:

* :func:`nearest_distances` - the exact distance from every surfel of one surface to the closest
  surfel of the other (needed by HD95 and ASSD). A cost model picks a KD-tree over surfel corners
  (memory proportional to the surfels, never to the box spanning an organ and a stray voxel), a
  KD-tree over only the target surfels near a compact query, or scipy's exact feature transform over
  the box when the queries are many and scattered (a speckled prediction: far KD-tree queries cost
  tens of microseconds each, the transform tens of nanoseconds per corner of the box).
* :func:`within_tolerance` - only whether that distance is <= a tolerance (all NSD needs). Work is
  bounded by the region within the tolerance of the ground truth: surfels of the prediction
  outside it are "not within" without any distance being computed. It uses per-row prefix counts
  over that region and an ellipsoidal stencil of row offsets, and falls back to a KD-tree query
  with an upper bound when that region would be large compared with the number of surfels (a
  ground truth with far-apart parts) or the stencil has very many rows (tolerance >> spacing).

Exactness: a distance is always evaluated as ``sqrt(((d0*s0)**2 + (d1*s1)**2) + (d2*s2)**2)`` from
integer corner-index differences ``d`` and spacing ``s`` in float64, the same operations in the
same order as ``scipy.ndimage.distance_transform_edt`` (used by surface-distance), so the
``<= tolerance`` decisions agree with the reference even when a distance equals the tolerance.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from metrics.surfaces import Surface

#: The dense row method is used when its region has at most this many corners per surfel ...
DENSE_CORNERS_PER_SURFEL = 64
#: ... or at most this many corners in all; and never more than DENSE_MAX_CORNERS.
DENSE_ALWAYS_CORNERS = 1 << 20
DENSE_MAX_CORNERS = 1 << 26
#: ... and only when the tolerance ellipsoid has at most this many rows (tolerance / spacing small).
DENSE_MAX_ROWS = 512


def _kd_tree(points: np.ndarray):
    """A scipy KD-tree of (n, 3) points. scipy is imported on first use: the 3-D scoring path
    (:mod:`metrics.volume_scoring`) never needs it, and the import costs a scoring process 0.4 s."""
    from scipy.spatial import cKDTree

    return cKDTree(points, balanced_tree=False, compact_nodes=False)


def exact_distance_mm(offsets: np.ndarray, spacing_mm: Sequence[float]) -> np.ndarray:
    """Euclidean length in mm of integer corner offsets, computed as the reference does.

    Args:
        offsets: integer array of shape (ndim, ...), index differences per array axis.
        spacing_mm: ndim voxel sizes in mm.

    Returns:
        float64 array of shape ``offsets.shape[1:]``.
    """
    total = None
    for axis, s in enumerate(spacing_mm):
        term = offsets[axis].astype(np.float64) * np.float64(s)
        term *= term
        total = term if total is None else np.add(total, term, out=total)
    return np.sqrt(total)


#: Cost model of :func:`nearest_distances`, in nanoseconds (measured on the full-size benchmark case):
#: a KD-tree query from a surfel near the other surface (its neighbourhood holds the answer) ...
KD_NEAR_NS = 2_000.0
#: ... and from a far one, per (target surfels ** KD_FAR_EXPONENT): far queries see a wide front of
#: nearly equidistant surfels (liver, 96k surfels: ~50 us per query).
KD_FAR_NS = 10.0
KD_FAR_EXPONENT = 0.75
#: A query is "near" when it lies in the target's box grown by this many mm.
NEAR_MARGIN_MM = 10.0
#: One corner of a dense feature transform (scipy's exact EDT with indices) ...
FEATURE_TRANSFORM_NS = 80.0
#: ... which holds ndim int32 indices per corner (plus scipy's own work arrays): never over more
#: corners than this (2^27 corners: ~1.6 GB of indices in 3-D); larger boxes use a KD-tree.
FEATURE_TRANSFORM_MAX_CORNERS = 1 << 27
#: The local search is used when the target has this many times the query's surfels and a box this
#: many times larger (a compact ground truth against a speckled prediction) ...
LOCAL_SURFEL_RATIO = 4
LOCAL_BOX_RATIO = 8
#: ... starting with this reach in mm around the query (grown four-fold until every answer is proven).
LOCAL_REACH_MM = 8.0


def nearest_distances(query: Surface, target: Surface, *, spacing_mm: Sequence[float]) -> np.ndarray:
    """Distance in mm from each surfel of ``query`` to the nearest surfel of ``target``.

    Surfels are lattice corners, so this is exactly what surface-distance reads from
    ``distance_transform_edt(~target_border, sampling=spacing)`` at the query's corners. Three ways to
    get it, chosen by a cost model so that the work is bounded by the case, not by how scattered a
    prediction is:

    * few queries far from a compact target: a KD-tree over the target;
    * many queries spread over a box (a speckled prediction, or the ground truth's distances seen
      from it): scipy's exact feature transform of the target over the box of both, read at the
      queries (cost: the box, however many surfels; no KD-tree pathology for far queries; memory:
      ndim int32 per corner of the box, capped by FEATURE_TRANSFORM_MAX_CORNERS);
    * a compact query against a much larger target (the ground truth's surfels against a speckled
      prediction): a KD-tree over only the target surfels near the query, grown until every answer
      is provably the global nearest.

    Args:
        query: the surfels whose distances are wanted.
        target: the other surface.
        spacing_mm: voxel size in mm, array axis order.

    Returns:
        float64 array of shape (query.size,), in query order; ``+inf`` everywhere if ``target``
        has no surfels. Every value is recomputed from integer corner offsets
        (:func:`exact_distance_mm`), so the three ways agree to the last bit but for exact ties
        (two nearest corners whose distances differ only by rounding).
    """
    if query.size == 0:
        return np.zeros(0, dtype=np.float64)
    if target.size == 0:
        return np.full(query.size, np.inf)
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    q_lo, q_hi = query.corners.min(axis=1), query.corners.max(axis=1)
    t_lo, t_hi = target.corners.min(axis=1), target.corners.max(axis=1)
    lo, hi = np.minimum(q_lo, t_lo), np.maximum(q_hi, t_hi)
    box_corners = float(np.prod(hi - lo + 1, dtype=np.float64))
    query_box = float(np.prod(q_hi - q_lo + 1, dtype=np.float64))
    target_box = float(np.prod(t_hi - t_lo + 1, dtype=np.float64))
    if target.size > LOCAL_SURFEL_RATIO * query.size and query_box * LOCAL_BOX_RATIO < target_box:
        return _nearest_by_local_tree(query, target, spacing)
    margin = np.ceil(NEAR_MARGIN_MM / spacing).astype(np.int64)
    near = np.all((query.corners >= (t_lo - margin)[:, None]) & (query.corners <= (t_hi + margin)[:, None]), axis=0)
    n_near = int(np.count_nonzero(near))
    tree_ns = n_near * KD_NEAR_NS + (query.size - n_near) * KD_FAR_NS * float(target.size) ** KD_FAR_EXPONENT
    if box_corners * FEATURE_TRANSFORM_NS < tree_ns and box_corners <= FEATURE_TRANSFORM_MAX_CORNERS:
        return _nearest_by_feature_transform(query, target, spacing, lo=lo, hi=hi)
    return _nearest_by_tree(query, target, spacing)


def _nearest_by_tree(query: Surface, target: Surface, spacing: np.ndarray) -> np.ndarray:
    tree = _kd_tree(target.corners.T * spacing[None, :])
    _, nearest = tree.query(query.corners.T * spacing[None, :], k=1)
    # Recompute from integer offsets so the values are bit-identical to the reference's.
    return exact_distance_mm(query.corners - target.corners[:, nearest], spacing)


def _nearest_by_feature_transform(
    query: Surface, target: Surface, spacing: np.ndarray, *, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """Exact nearest target corner of every query corner from one feature transform over their box.

    Only indices are computed (int32 per axis and corner), never the dense distance map: distances
    come from the offsets at the query corners alone.
    """
    from scipy import ndimage  # on first use, as in _kd_tree

    free = np.ones(tuple(int(n) for n in hi - lo + 1), dtype=bool)
    free[tuple(target.corners - lo[:, None])] = False
    features = ndimage.distance_transform_edt(
        free, sampling=spacing, return_distances=False, return_indices=True
    )
    del free
    local = query.corners - lo[:, None]
    nearest = np.stack([features[axis][tuple(local)] for axis in range(len(spacing))]).astype(np.int64)
    return exact_distance_mm(local - nearest, spacing)


def _nearest_by_local_tree(
    query: Surface, target: Surface, spacing: np.ndarray, *, reach_mm: float = LOCAL_REACH_MM
) -> np.ndarray:
    """Nearest distances from a compact query to a large target, looking only near the query.

    A KD-tree is built over the target corners inside the query's box grown by ``m_a`` corners per
    axis; any target corner outside it is farther than ``R = min_a(m_a * s_a)``, so an answer
    ``<= R`` is the global nearest. Queries without one are retried with a four times larger reach;
    once the grown box holds the whole target every answer is final.
    """
    distances = np.full(query.size, np.inf)
    pending = np.arange(query.size)
    t_lo, t_hi = target.corners.min(axis=1), target.corners.max(axis=1)
    while pending.size:
        corners = query.corners[:, pending]
        grow = np.ceil(reach_mm / spacing).astype(np.int64)
        lo, hi = corners.min(axis=1) - grow, corners.max(axis=1) + grow
        final = bool(np.all(lo <= t_lo) and np.all(hi >= t_hi))
        inside = np.all((target.corners >= lo[:, None]) & (target.corners <= hi[:, None]), axis=0)
        candidates = target.corners[:, inside]
        if candidates.shape[1]:
            bound = np.inf if final else float(np.min(grow * spacing))
            tree = _kd_tree(candidates.T * spacing[None, :])
            found, nearest = tree.query(corners.T * spacing[None, :], k=1, distance_upper_bound=bound * (1 + 1e-9))
            hit = np.isfinite(found)
            exact = exact_distance_mm(corners[:, hit] - candidates[:, nearest[hit]], spacing)
            settled = exact <= bound
            distances[pending[hit][settled]] = exact[settled]
            resolved = np.zeros(pending.size, dtype=bool)
            resolved[np.flatnonzero(hit)[settled]] = True
            pending = pending[~resolved]
        reach_mm *= 4
    return distances


def axis_reach(spacing: float, tolerance_mm: float) -> int:
    """Largest k >= 0 with a distance of k voxels along one axis <= tolerance."""
    k = int(tolerance_mm // spacing) + 2
    while k > 0 and exact_distance_mm(np.array([[k]]), [spacing])[0] > tolerance_mm:
        k -= 1
    return k


def row_stencil(*, spacing_mm: Sequence[float], tolerance_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """The tolerance ellipsoid as rows along the last axis (cached per spacing and tolerance).

    Returns:
        ``(offsets, half_widths)``: offsets is an int64 array of shape (m, ndim - 1) of index
        offsets along the first ndim - 1 axes, half_widths an int64 array of shape (m,); the
        corner offset ``(*offsets[j], t)`` is within ``tolerance_mm`` iff ``|t| <= half_widths[j]``.
        Rows are sorted by their distance from the centre row (nearest first). The arrays are
        shared between calls: do not modify them.
    """
    return _row_stencil(tuple(float(s) for s in spacing_mm), float(tolerance_mm))


@functools.lru_cache(maxsize=64)
def _row_stencil(spacing_mm: tuple[float, ...], tolerance_mm: float) -> tuple[np.ndarray, np.ndarray]:
    ndim = len(spacing_mm)
    reach = [axis_reach(s, tolerance_mm) for s in spacing_mm]
    grids = np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij")
    offsets = np.stack([g.ravel() for g in grids])  # (ndim, K) all offsets in the bounding box
    inside = exact_distance_mm(offsets, spacing_mm) <= tolerance_mm
    rows = offsets[: ndim - 1].T
    last = np.abs(offsets[ndim - 1])
    keys, inverse = np.unique(rows, axis=0, return_inverse=True)
    half = np.full(len(keys), -1, dtype=np.int64)
    np.maximum.at(half, inverse.ravel()[inside], last[inside])
    keep = half >= 0
    keys, half = keys[keep], half[keep]
    row_distance = exact_distance_mm(np.concatenate([keys.T, np.zeros((1, len(keys)), np.int64)]), spacing_mm)
    order = np.argsort(row_distance, kind="stable")
    keys, half = keys[order].astype(np.int64), half[order]
    keys.flags.writeable = False
    half.flags.writeable = False
    return keys, half


class _RowCounts:
    """Per-row prefix counts of one surface's corners inside a box of corner indices.

    ``prefix[r * (L + 1) + j]`` is the number of counted corners in row ``r`` (a position along
    the first ndim - 1 axes of the box) at positions ``< j`` along the last axis (length ``L``).
    """

    def __init__(self, surface: Surface, lo: np.ndarray, shape: tuple[int, ...]) -> None:
        self.lo = lo
        self.shape = shape
        row_length = shape[-1] + 1  # one leading zero per row
        self.strides = np.array(
            [int(np.prod(shape[k + 1 : -1], dtype=np.int64)) * row_length for k in range(len(shape) - 1)] + [1],
            dtype=np.int64,
        )
        local = surface.corners - lo[:, None]
        inside = np.all((local >= 0) & (local < np.asarray(shape)[:, None]), axis=0)
        dtype = np.int16 if row_length <= np.iinfo(np.int16).max else np.int32
        counts = np.zeros((int(np.prod(shape[:-1], dtype=np.int64)), row_length), dtype=dtype)
        counts.reshape(-1)[self.strides @ local[:, inside] + 1] = 1
        np.add.accumulate(counts, axis=1, out=counts)
        self.prefix = counts.reshape(-1)

    def any_within(self, corners: np.ndarray, *, offsets: np.ndarray, half_widths: np.ndarray) -> np.ndarray:
        """Whether a counted corner lies in the stencil around each query corner.

        Query corners (ndim, n) must lie in the box shrunk by the stencil's reach along every axis,
        so no offset leaves the box. Rows are visited nearest first; decided corners are dropped
        after passes of 1, 1, 2, 4, 8, ... rows (most corners are decided by the first rows).
        """
        here = self.strides @ (corners - self.lo[:, None])  # flat prefix index of each corner
        row_steps = offsets @ self.strides[:-1]
        starts = row_steps - half_widths
        stops = row_steps + half_widths + 1
        found = np.zeros(corners.shape[1], dtype=bool)
        pending = np.arange(corners.shape[1])
        prefix = self.prefix
        first, width = 0, 1
        while first < len(starts) and pending.size:
            last = first + width
            hit = None
            for start, stop in zip(starts[first:last], stops[first:last]):
                row_hit = prefix[here + stop] > prefix[here + start]
                hit = row_hit if hit is None else np.logical_or(hit, row_hit, out=hit)
            found[pending[hit]] = True
            miss = ~hit
            pending = pending[miss]
            here = here[miss]
            first, width = last, (width * 2 if first else 1)
        return found


def _within_by_tree(query: Surface, target: Surface, *, spacing_mm: Sequence[float], tolerance_mm: float) -> np.ndarray:
    if query.size == 0 or target.size == 0:
        return np.zeros(query.size, dtype=bool)
    scale = np.asarray(spacing_mm, dtype=np.float64)[None, :]
    tree = _kd_tree(target.corners.T * scale)
    bound = tolerance_mm * (1 + 1e-9) + 1e-12  # generous: the exact test below decides
    distance, nearest = tree.query(query.corners.T * scale, k=1, distance_upper_bound=bound)
    candidates = np.flatnonzero(np.isfinite(distance))
    within = np.zeros(query.size, dtype=bool)
    offsets = query.corners[:, candidates] - target.corners[:, nearest[candidates]]
    within[candidates] = exact_distance_mm(offsets, spacing_mm) <= tolerance_mm
    return within


def within_tolerance(
    gt: Surface, pred: Surface, *, spacing_mm: Sequence[float], tolerance_mm: float
) -> tuple[np.ndarray, np.ndarray]:
    """Which surfels of each surface lie within ``tolerance_mm`` of the other surface.

    Args:
        gt: ground-truth surface (defines the region of work).
        pred: predicted surface.
        spacing_mm: voxel size in mm, array axis order.
        tolerance_mm: the tolerance in mm (> 0).

    Returns:
        ``(gt_within, pred_within)``: bool arrays of shapes (gt.size,) and (pred.size,); a surfel
        is within when its distance to the nearest surfel of the other surface is <= tolerance.
        All False when the other surface is empty.
    """
    if gt.size == 0 or pred.size == 0:
        return np.zeros(gt.size, dtype=bool), np.zeros(pred.size, dtype=bool)
    offsets, half_widths = row_stencil(spacing_mm=spacing_mm, tolerance_mm=tolerance_mm)
    reach = np.array([axis_reach(s, tolerance_mm) for s in spacing_mm], dtype=np.int64)
    gt_lo = gt.corners.min(axis=1)
    gt_hi = gt.corners.max(axis=1)
    # Only predicted surfels in the ground-truth box grown by the reach can be within tolerance.
    near_lo, near_hi = gt_lo - reach, gt_hi + reach
    pred_near = np.flatnonzero(np.all((pred.corners >= near_lo[:, None]) & (pred.corners <= near_hi[:, None]), axis=0))
    pred_within = np.zeros(pred.size, dtype=bool)
    if pred_near.size == 0:
        return np.zeros(gt.size, dtype=bool), pred_within
    near_pred = Surface(pred.corners[:, pred_near], pred.areas_mm[pred_near])
    # Counting box: everything reached by the stencil from any queried corner.
    pad = 2 * reach
    lo = gt_lo - pad
    shape = tuple(int(v) for v in (gt_hi + pad - lo + 1))
    corners_in_box = int(np.prod(shape, dtype=np.int64))
    surfels = gt.size + pred_near.size
    if len(offsets) > DENSE_MAX_ROWS or corners_in_box > DENSE_MAX_CORNERS or (
        corners_in_box > DENSE_ALWAYS_CORNERS and corners_in_box > DENSE_CORNERS_PER_SURFEL * surfels
    ):
        gt_within = _within_by_tree(gt, near_pred, spacing_mm=spacing_mm, tolerance_mm=tolerance_mm)
        pred_within[pred_near] = _within_by_tree(near_pred, gt, spacing_mm=spacing_mm, tolerance_mm=tolerance_mm)
        return gt_within, pred_within
    pred_counts = _RowCounts(near_pred, lo, shape)
    gt_within = pred_counts.any_within(gt.corners, offsets=offsets, half_widths=half_widths)
    del pred_counts
    gt_counts = _RowCounts(gt, lo, shape)
    pred_within[pred_near] = gt_counts.any_within(near_pred.corners, offsets=offsets, half_widths=half_widths)
    return gt_within, pred_within
