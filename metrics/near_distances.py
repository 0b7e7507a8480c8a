"""Exact distances from compact queries to targets that are mostly close by: a lattice walk first,
lower envelopes for the rest.

Why: the ground truth's surfels against a prediction. Almost every ground-truth surfel of a
plausible prediction has a predicted surfel within a voxel or two, yet the envelopes of
:mod:`metrics.corner_distances` cost the whole box of the targets around the queries (for a
512x512 liver, 3 M corners per call, 65 ms, whatever the distances). Here:

1. the targets around the queries are marked in a bitmap, and each query tries the lattice
   offsets within ``reach = LOCAL_STEPS x the largest spacing`` (at most MAX_WALK_OFFSETS), in
   order of increasing distance: the first marked one is the nearest target (every offset nearer
   than it was tried before it, so no target outside the list can be nearer), and its distance is
   computed from the integer offset with the formula of
   :func:`metrics.corner_distances._offset_distance` (hence scipy's);
2. queries with no target within the reach go to the envelopes over a box grown four-fold until
   every answer is proven (any target outside a box grown by ``m_a`` corners per axis is farther
   than ``min_a(m_a * s_a)``).

Equal distances in two offsets' order are exact ties; either gives the same value.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numba
import numpy as np

from metrics.corner_distances import Segments, _decode, _offset_distance, corner_box, nearest_distances, segment_positions
from metrics.parallel import run_parallel

#: First reach (mm) of the envelopes around the queries the lattice walk left (grown four-fold).
NEAR_REACH_MM = 8.0
#: The lattice walk's reach, in steps of the largest spacing. Two steps answered nearly every
#: ground-truth surfel of the full-size benchmark's noisy predictions (0.09 -> 0.03-0.045 s per
#: 512x512 case); a query with no target that near pays the whole walk before the envelopes:
#: 317 offsets at 0.8 x 0.8 x 2.5 mm, 589 at 0.7 x 0.7 x 3 mm, 33 at isotropic spacing.
LOCAL_STEPS = 2.0
#: The most offsets one query walks, whatever the spacing: a 10 x 0.3 x 0.3 mm grid has 37,000
#: offsets within two steps of 10 mm, and a ground truth far from every predicted surfel would
#: pay them all per surfel. Any nearest-first prefix of the offsets is still exact up to its last.
MAX_WALK_OFFSETS = 1024
#: Every this many queries are walked first, as a sample; the others are walked only if at least
#: WALK_MIN_HIT_SHARE of the sample found a target. A ground truth far from every predicted surfel
#: otherwise paid the whole walk per surfel before the envelopes (0.15-0.5 s for a large organ).
WALK_SAMPLE_STRIDE = 64
WALK_MIN_HIT_SHARE = 0.5


@lru_cache(maxsize=32)
def lattice_offsets(spacing: tuple[float, float, float], reach_mm: float) -> np.ndarray:
    """int64 (m, 3): every lattice offset no farther than ``reach_mm``, nearest first (the distance
    computed as the reference computes it, so that the order is that of the values written)."""
    steps = [int(np.floor(reach_mm / s)) for s in spacing]
    grid = np.stack(np.meshgrid(*[np.arange(-n, n + 1) for n in steps], indexing="ij"), axis=-1).reshape(-1, 3)
    o = grid * np.asarray(spacing)
    distance = np.sqrt((o[:, 0] * o[:, 0] + o[:, 1] * o[:, 1]) + o[:, 2] * o[:, 2])
    keep = distance <= reach_mm
    order = np.argsort(distance[keep], kind="stable")
    offsets = np.ascontiguousarray(grid[keep][order], dtype=np.int64)
    offsets.setflags(write=False)
    return offsets


def walk_offsets(spacing: tuple[float, float, float], steps: float) -> np.ndarray:
    """The offsets a query walks: those within ``steps`` x the largest spacing, nearest first, at
    most MAX_WALK_OFFSETS of them (a prefix, so a first hit is still the nearest target)."""
    return lattice_offsets(spacing, float(steps * max(spacing)))[:MAX_WALK_OFFSETS]


@numba.njit(cache=True, nogil=True, inline="always")
def _first_hit(z, y, x, bitmap, offsets, s0, s1, s2):
    """Distance to the first marked corner among ``offsets`` around (z, y, x), or -1.0."""
    n0, n1, n2 = bitmap.shape
    for o in range(offsets.shape[0]):
        a = z + offsets[o, 0]
        b = y + offsets[o, 1]
        c = x + offsets[o, 2]
        if a < 0 or a >= n0 or b < 0 or b >= n1 or c < 0 or c >= n2:
            continue
        if bitmap[a, b, c]:
            return _offset_distance(offsets[o, 0], offsets[o, 1], offsets[o, 2], s0, s1, s2)
    return -1.0


@numba.njit(cache=True, parallel=True, nogil=True)
def _walk(targets, t_starts, t_counts, t_plane0, queries, q_starts, q_counts, q_offsets, c1, c2,
          lo0, lo1, lo2, n0, n1, n2, offsets, s0, s1, s2, sample_stride, min_hit_share, out):
    """out[compact] = distance to the nearest target within the offsets, or -1.0 where none is.

    Every ``sample_stride``-th query is walked first; when fewer than ``min_hit_share`` of them
    find a target, nothing is written and False is returned (the walk would mostly be paid in
    vain: a prediction far from the ground truth).
    """
    bitmap = np.zeros((n0, n1, n2), np.uint8)
    p_first = max(lo0 - t_plane0, 0)
    p_stop = min(lo0 + n0 - t_plane0, t_starts.size)
    for p in numba.prange(p_first, p_stop):  # one bitmap plane per target plane: no two write one byte
        for t in range(t_starts[p], t_starts[p] + t_counts[p]):
            z, y, x = _decode(targets[t], c1, c2)
            y -= lo1
            x -= lo2
            if 0 <= y < n1 and 0 <= x < n2:
                bitmap[z - lo0, y, x] = 1
    tried = 0
    hits = 0
    for p in range(q_starts.size):
        first = q_starts[p] + (-q_offsets[p]) % sample_stride  # compact indices divisible by the stride
        for t in range(first, q_starts[p] + q_counts[p], sample_stride):
            z, y, x = _decode(queries[t], c1, c2)
            tried += 1
            if _first_hit(z - lo0, y - lo1, x - lo2, bitmap, offsets, s0, s1, s2) >= 0:
                hits += 1
    if hits < min_hit_share * tried:
        return False
    for p in numba.prange(q_starts.size):
        compact = q_offsets[p] - q_starts[p]
        for t in range(q_starts[p], q_starts[p] + q_counts[p]):
            z, y, x = _decode(queries[t], c1, c2)
            out[compact + t] = _first_hit(z - lo0, y - lo1, x - lo2, bitmap, offsets, s0, s1, s2)
    return True


def _subset(queries: Segments, compact: np.ndarray) -> Segments:
    """The queries at the given compact indices (ascending), as dense plane segments."""
    positions = segment_positions(queries.starts, queries.counts, 0, queries.counts.size)
    plane_of = np.repeat(np.arange(queries.counts.size), queries.counts)[compact]
    counts = np.bincount(plane_of, minlength=queries.counts.size).astype(np.int64)
    starts = np.cumsum(counts) - counts
    return Segments(queries.corners[positions[compact]], starts, counts, queries.first_plane, starts.copy())


def _grown_box(box: tuple[np.ndarray, np.ndarray], grow: np.ndarray, dims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The corner box grown by ``grow`` corners per axis, inside the grid."""
    return np.maximum(box[0] - grow, 0), np.minimum(box[1] + grow, dims - 1)


def _envelopes_growing(queries: Segments, targets: Segments, out: np.ndarray, dims: np.ndarray,
                       spacing: np.ndarray, reach_mm: float) -> None:
    box = corner_box(queries, dims)
    while True:
        grow = np.ceil(reach_mm / spacing).astype(np.int64)
        lo, hi = _grown_box(box, grow, dims)
        nearest_distances(queries, targets, out, corner_dims=dims, spacing_mm=spacing, region=(lo, hi))
        if (np.all(lo == 0) and np.all(hi == dims - 1)) or out[: queries.size].max() <= float(np.min(grow * spacing)):
            return
        reach_mm *= 4


def _walk_first(queries: Segments, targets: Segments, out: np.ndarray, dims: np.ndarray, spacing: np.ndarray,
                local_steps: float) -> bool:
    """The lattice walk of every query into ``out`` (-1.0 where it found nothing); False, with
    nothing written, when its sample said the walk would mostly be in vain."""
    offsets = walk_offsets(tuple(float(s) for s in spacing), local_steps)
    lo, hi = _grown_box(corner_box(queries, dims), np.abs(offsets).max(axis=0), dims)
    n = hi - lo + 1
    return run_parallel(_walk, targets.corners, targets.starts, targets.counts, targets.first_plane, queries.corners,
                        queries.starts, queries.counts, queries.offsets, int(dims[1]), int(dims[2]), int(lo[0]),
                        int(lo[1]), int(lo[2]), int(n[0]), int(n[1]), int(n[2]), offsets, float(spacing[0]),
                        float(spacing[1]), float(spacing[2]), WALK_SAMPLE_STRIDE, WALK_MIN_HIT_SHARE, out)


def nearest_distances_near(
    queries: Segments,
    targets: Segments,
    out: np.ndarray,
    *,
    corner_dims: Sequence[int],
    spacing_mm: Sequence[float],
    reach_mm: float = NEAR_REACH_MM,
    local_steps: float = LOCAL_STEPS,
) -> None:
    """:func:`metrics.corner_distances.nearest_distances` (no region) for compact queries among
    targets that may spread far beyond them; ``out`` as there (``+inf`` when there is no target).

    ``reach_mm`` is the envelopes' first reach; ``local_steps`` the lattice walk's (0: no walk).
    """
    if queries.size == 0:
        return
    dims = np.array([int(n) for n in corner_dims], dtype=np.int64)
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    if local_steps > 0 and _walk_first(queries, targets, out, dims, spacing, local_steps):
        unresolved = np.flatnonzero(out[: queries.size] < 0)
        if unresolved.size:
            rest = np.empty(unresolved.size)
            _envelopes_growing(_subset(queries, unresolved), targets, rest, dims, spacing, reach_mm)
            out[unresolved] = rest
        return
    _envelopes_growing(queries, targets, out, dims, spacing, reach_mm)
