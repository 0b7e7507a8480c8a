"""Exact distances from lattice corners to the nearest corner of a set, by separable lower envelopes.

Why: HD95 and ASSD need, for every surfel of one surface, the exact distance to the other surface;
a speckled prediction has tens of millions of surfels spread over the whole volume. A KD-tree pays
tens of microseconds per far query, and a full-volume distance transform per organ seconds. Here
the squared distance is minimised one axis at a time (Felzenszwalb and Huttenlocher's lower
envelope of parabolas), touching only what can matter:

1. along axis 0, the nearest target in each column of the *targets'* box (columns elsewhere have
   none), for every plane of the region;
2. per plane holding queries, along axis 1: the envelope over the box's rows, read only at the
   rows holding queries;
3. per such row, along axis 2: the envelope over the box's columns, read at the queries (sorted,
   so one walk).

Cost: about ``planes x rows x box width`` plus the queries, never a KD-tree's far-query blow-up;
memory: one int32 per plane of the region and corner of the box's cross-section.

Exactness: the envelope only chooses the nearest corner; the distance is then recomputed from its
integer offsets as ``sqrt(((d0*s0)**2 + (d1*s1)**2) + (d2*s2)**2)``, the operations
scipy's ``distance_transform_edt`` (hence surface-distance) performs, so values agree bit for bit
but for exact ties between corners whose distances differ only by rounding.

Corners are flat indices into a corner grid of shape ``corner_dims`` (C order), given as the plane
segments of one organ in a :class:`metrics.surfel_scan.OrganSurfels` (:class:`Segments`): sorted
within each plane, planes in order. Distances come out compact, in that order (segment after
segment), so only as much memory is touched as there are queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numba
import numpy as np

from metrics.parallel import run_parallel

#: A row with at most this many queries compares each with every column instead of building the
#: row's envelope (whose divisions cost about as much as this many plain comparisons per column).
FEW_QUERIES_PER_ROW = 8


class Segments(NamedTuple):
    """One organ's surfels in plane segments (see :class:`metrics.surfel_scan.OrganSurfels`).

    ``corners[starts[p]: starts[p] + counts[p]]`` are the sorted flat corners of corner plane
    ``first_plane + p``; ``offsets[p]`` is where that segment begins in compact order (the sum of
    the counts before it).
    """

    corners: np.ndarray
    starts: np.ndarray
    counts: np.ndarray
    first_plane: int
    offsets: np.ndarray

    @property
    def size(self) -> int:
        return int(self.counts.sum())


@numba.njit(cache=True, nogil=True)
def _decode(flat, c1, c2):
    plane = c1 * c2
    z = flat // plane
    rest = flat - z * plane
    y = rest // c2
    return z, y, rest - y * c2


@numba.njit(cache=True, nogil=True)
def _segments_box(corners, starts, counts, c1, c2):
    lo = np.full(3, np.iinfo(np.int64).max, np.int64)
    hi = np.full(3, -1, np.int64)
    for p in range(starts.size):
        for t in range(starts[p], starts[p] + counts[p]):
            z, y, x = _decode(corners[t], c1, c2)
            if z < lo[0]: lo[0] = z
            if z > hi[0]: hi[0] = z
            if y < lo[1]: lo[1] = y
            if y > hi[1]: hi[1] = y
            if x < lo[2]: lo[2] = x
            if x > hi[2]: hi[2] = x
    return lo, hi


def corner_box(segments: Segments, corner_dims: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest corner index per axis of non-empty segments."""
    return _segments_box(segments.corners, segments.starts, segments.counts, int(corner_dims[1]), int(corner_dims[2]))


@numba.njit(cache=True, nogil=True, inline="always")
def _push_parabola(sites, heights, bounds, k, site, height, two_s_squared):
    """Add parabola ``height + ((x - site) * s)**2`` (sites increasing) to a lower envelope of
    ``k + 1`` parabolas; returns the new last index. ``height`` here is ``G = h + (site * s)**2``."""
    cut = 0.0
    while k >= 0:
        # the new parabola hides site k when they cross left of k's bound (no division)
        span = two_s_squared * (site - sites[k])
        if height - heights[k] <= bounds[k] * span:
            k -= 1
        else:
            cut = (height - heights[k]) / span
            break
    k += 1
    sites[k] = site
    heights[k] = height
    bounds[k] = -np.inf if k == 0 else cut
    bounds[k + 1] = np.inf
    return k


@numba.njit(cache=True, nogil=True, inline="always")
def _offset_distance(d0, d1, d2, s0, s1, s2):
    """The reference's distance for integer corner offsets: sqrt(((d0*s0)**2 + (d1*s1)**2) + (d2*s2)**2)."""
    o0 = d0 * s0
    o1 = d1 * s1
    o2 = d2 * s2
    return np.sqrt((o0 * o0 + o1 * o1) + o2 * o2)


@numba.njit(cache=True, parallel=True, nogil=True)
def _nearest(targets, t_starts, t_counts, t_plane0, queries, q_starts, q_counts, q_offsets, q_plane0,
             c1, c2, lo0, hi0, lo1, hi1, lo2, hi2, s0, s1, s2, out):
    inf = np.inf
    plane = c1 * c2
    t_p0 = max(lo0 - t_plane0, 0)
    t_p1 = min(hi0 - t_plane0 + 1, t_starts.size)
    # the targets' box (axes 1, 2) inside the region
    b_lo1 = hi1 + 1; b_hi1 = lo1 - 1; b_lo2 = hi2 + 1; b_hi2 = lo2 - 1
    found = 0
    target_positions = segment_positions(t_starts, t_counts, t_p0, t_p1)
    for t in target_positions:
        z, y, x = _decode(targets[t], c1, c2)
        if y < lo1 or y > hi1 or x < lo2 or x > hi2:
            continue
        found += 1
        b_lo1 = min(b_lo1, y); b_hi1 = max(b_hi1, y); b_lo2 = min(b_lo2, x); b_hi2 = max(b_hi2, x)
    if found == 0:
        out[: q_counts.sum()] = inf  # the queries' distances only: out may be a longer shared buffer
        return
    n_a = hi0 - lo0 + 1
    n_b = b_hi1 - b_lo1 + 1
    n_c = b_hi2 - b_lo2 + 1
    # 1. nearest target plane of each column (b, c), as a plane index of the region; -1: none
    near = np.full((n_a, n_c, n_b), -1, np.int32)
    for t in target_positions:
        z, y, x = _decode(targets[t], c1, c2)
        if y < lo1 or y > hi1 or x < lo2 or x > hi2:
            continue
        near[z - lo0, x - b_lo2, y - b_lo1] = z - lo0
    for c in numba.prange(n_c):
        for a in range(1, n_a):
            for b in range(n_b):
                if near[a, c, b] < 0:
                    near[a, c, b] = near[a - 1, c, b]
        ahead = np.full(n_b, -1, np.int32)
        for a in range(n_a - 1, -1, -1):
            for b in range(n_b):
                v = near[a, c, b]
                if v == a:
                    ahead[b] = a
                elif ahead[b] >= 0 and (v < 0 or ahead[b] - a < a - v):
                    near[a, c, b] = ahead[b]
    two_s1 = 2.0 * s1 * s1
    two_s2 = 2.0 * s2 * s2
    for a in numba.prange(n_a):
        z = lo0 + a
        qp = z - q_plane0
        if qp < 0 or qp >= q_starts.size or q_counts[qp] == 0:
            continue
        q0 = q_starts[qp]
        q1 = q0 + q_counts[qp]
        compact = q_offsets[qp] - q0  # out index of buffer position t: compact + t
        n_rows = 0
        previous = -1
        for t in range(q0, q1):
            y = (queries[t] - z * plane) // c2
            if y != previous:
                n_rows += 1
                previous = y
        rows = np.empty(n_rows, np.int64)
        row_start = np.empty(n_rows + 1, np.int64)
        r = -1
        previous = -1
        for t in range(q0, q1):
            y = (queries[t] - z * plane) // c2
            if y != previous:
                r += 1
                rows[r] = y
                row_start[r] = t
                previous = y
        row_start[n_rows] = q1
        # 2. per column c of the box: squared distance (and nearest row) at each query row
        h = np.empty((n_rows, n_c))
        h_row = np.empty((n_rows, n_c), np.int32)
        sites = np.empty(n_b, np.int64)
        bounds = np.empty(n_b + 1)
        heights = np.empty(n_b)
        for c in range(n_c):
            k = -1
            for b in range(n_b):
                nz = near[a, c, b]
                if nz < 0:
                    continue
                da = (a - nz) * s0
                k = _push_parabola(sites, heights, bounds, k, b, da * da + (b * s1) ** 2, two_s1)
            if k < 0:
                for r in range(n_rows):
                    h[r, c] = inf
                continue
            e = 0
            for r in range(n_rows):
                pos = rows[r] - b_lo1
                while bounds[e + 1] < pos:
                    e += 1
                b = sites[e]
                da = (a - near[a, c, b]) * s0
                db = (pos - b) * s1
                h[r, c] = da * da + db * db
                h_row[r, c] = b
        # 3. per query row, along axis 2: a row with few queries tries every column (no division);
        # otherwise the envelope, walked with the sorted queries
        c_sites = np.empty(n_c, np.int64)
        c_bounds = np.empty(n_c + 1)
        c_heights = np.empty(n_c)
        for r in range(n_rows):
            y = rows[r]
            row_base = z * plane + y * c2
            row_h = h[r]
            if row_start[r + 1] - row_start[r] <= FEW_QUERIES_PER_ROW:
                for t in range(row_start[r], row_start[r + 1]):
                    pos = queries[t] - row_base - b_lo2
                    best = inf
                    c = 0
                    for cc in range(n_c):
                        dc = (pos - cc) * s2
                        v = row_h[cc] + dc * dc
                        if v < best:
                            best = v
                            c = cc
                    b = h_row[r, c]
                    out[compact + t] = _offset_distance(a - near[a, c, b], y - b_lo1 - b, pos - c, s0, s1, s2)
                continue
            k = -1
            for c in range(n_c):
                f = row_h[c]
                if f != inf:
                    k = _push_parabola(c_sites, c_heights, c_bounds, k, c, f + (c * s2) ** 2, two_s2)
            e = 0
            for t in range(row_start[r], row_start[r + 1]):
                pos = queries[t] - row_base - b_lo2
                while c_bounds[e + 1] < pos:
                    e += 1
                c = c_sites[e]
                b = h_row[r, c]
                out[compact + t] = _offset_distance(a - near[a, c, b], y - b_lo1 - b, pos - c, s0, s1, s2)


@numba.njit(cache=True, nogil=True)
def segment_positions(starts, counts, first, stop):
    """Buffer positions of segments ``first..stop-1``, in order (the compact order)."""
    total = 0
    for p in range(first, stop):
        total += counts[p]
    positions = np.empty(total, np.int64)
    n = 0
    for p in range(first, stop):
        for t in range(starts[p], starts[p] + counts[p]):
            positions[n] = t
            n += 1
    return positions


def nearest_distances(
    queries: Segments,
    targets: Segments,
    out: np.ndarray,
    *,
    corner_dims: Sequence[int],
    spacing_mm: Sequence[float],
    region: tuple[np.ndarray, np.ndarray] | None = None,
) -> None:
    """Distance in mm from each query corner to the nearest target corner, written into ``out``.

    Args:
        queries: the query surfels.
        targets: the target surfels.
        out: float64 array of ``queries.size`` (or more): the distances, in compact order.
        corner_dims: the corner grid's shape (3 ints).
        spacing_mm: voxel size in mm, array axis order.
        region: optional ``(lo, hi)`` corner indices per axis (inclusive) holding every query;
            only targets inside it are considered. Default: the whole grid.

    Raises:
        ValueError: if a query plane lies outside the region (it would get no distance).

    ``+inf`` is written everywhere when no target is considered.
    """
    dims = [int(n) for n in corner_dims]
    if queries.size == 0:
        return
    lo, hi = (np.zeros(3, np.int64), np.array(dims, np.int64) - 1) if region is None else region
    occupied = np.flatnonzero(queries.counts) + queries.first_plane
    if occupied[0] < lo[0] or occupied[-1] > hi[0]:
        raise ValueError(f"query planes {occupied[0]}..{occupied[-1]} reach outside the region {lo[0]}..{hi[0]}")
    s0, s1, s2 = (float(s) for s in spacing_mm)
    run_parallel(_nearest, targets.corners, targets.starts, targets.counts, targets.first_plane,
                 queries.corners, queries.starts, queries.counts, queries.offsets, queries.first_plane, dims[1], dims[2],
                 int(lo[0]), int(hi[0]), int(lo[1]), int(hi[1]), int(lo[2]), int(hi[2]), s0, s1, s2, out)
