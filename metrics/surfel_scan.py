"""The surfels of every organ of a 3-D label volume, found in one pass over the volume.

Why: a poor prediction (a threshold speckle) puts every organ label all over the volume. One mask
and one neighbourhood-code volume per organ then costs ten full-volume passes; this module reads
each voxel row about twice for all organs together (numba, planes of corners in parallel), and
writes each surfel once, where later steps read it (no regrouping copies of tens of millions).

Definitions are those of :mod:`metrics.surfaces` (surface-distance's): a corner of the voxel
lattice is a surfel of an organ when its 2x2x2 neighbourhood holds both that organ and anything
else; its code sets bit ``7 - (4a + 2b + c)`` for the neighbour at offsets ``(a, b, c)``. Corners
are flat indices into the corner grid of the whole volume (shape ``n + 1`` per axis, C order);
areas come later from the codes.

Organs are addressed by *slot*: ``slot_lut[v]`` is the slot (1..n) of voxel value ``v`` and 0 for
anything that is not a scored organ (values outside the table are not organs either).

Layout of the result (:class:`OrganSurfels`): corner plane ``p`` of the scanned box owns a stretch
of one buffer, as long as the surfels it can hold at most (4 per organ voxel of its two voxel
planes, at most 2 per corner, none outside every emission box); in it the surfels of each slot
form one segment, in memory order. Only written entries ever touch memory (the buffer is
allocated, never filled), so unused room is address space, not resident memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from metrics.corner_distances import Segments, segment_positions
from metrics.parallel import run_parallel

#: Restriction bounds of a slot without one (every index along the axis is inside).
UNRESTRICTED = (np.iinfo(np.int64).min, np.iinfo(np.int64).max)
#: Entries reserved per corner of a plane at most; a plane whose surfels overflow this (many organs
#: meeting at most corners) makes the scan run again with room for the worst case (8 per corner).
ENTRIES_PER_CORNER = 2
MAX_ENTRIES_PER_CORNER = 8
#: A corner plane touches each voxel of its two voxel planes at 4 corners: at most 4 surfels per voxel.
SURFELS_PER_VOXEL = 4


def limit_arrays(limits: dict[int, tuple[int, int]] | None, n_slots: int) -> tuple[np.ndarray, np.ndarray]:
    """``{slot: (lo, hi)}`` as the kernels take it: lowest and highest index per slot (0..n_slots)."""
    limit_lo = np.full(n_slots + 1, UNRESTRICTED[0], dtype=np.int64)
    limit_hi = np.full(n_slots + 1, UNRESTRICTED[1], dtype=np.int64)
    for slot, (lo, hi) in (limits or {}).items():
        limit_lo[slot], limit_hi[slot] = lo, hi
    return limit_lo, limit_hi


@dataclass(frozen=True)
class OrganSurfels:
    """Surfels of each organ slot, in plane segments, and the code histogram of all of them.

    Attributes:
        corners: int64 buffer of flat corner indices (only the segments below are meaningful).
        codes: uint8 buffer of neighbourhood codes, aligned with ``corners``.
        starts: int64 (planes, n_slots): where slot ``s + 1``'s segment of plane ``p`` starts.
        counts: int64 (planes, n_slots): its length. Segments hold only surfels inside the slot's
            emission box (all when none was given), sorted ascending.
        first_plane: corner-grid index of plane 0 (planes are consecutive corner planes).
        code_counts: int64 (n_slots, 256), surfels of each code per slot, listed or not (the total
            area of a surface is ``code_counts @ areas``).
    """

    corners: np.ndarray
    codes: np.ndarray
    starts: np.ndarray
    counts: np.ndarray
    first_plane: int
    code_counts: np.ndarray

    def size(self, slot: int) -> int:
        """Number of listed surfels of a slot (1-based)."""
        return int(self.counts[:, slot - 1].sum())

    def segments(self, slot: int) -> Segments:
        """The listed surfels of a slot (1-based) as plane segments of the buffers."""
        counts = np.ascontiguousarray(self.counts[:, slot - 1])
        return Segments(self.corners, np.ascontiguousarray(self.starts[:, slot - 1]), counts, self.first_plane,
                        np.cumsum(counts) - counts)

    def listed(self, slot: int) -> tuple[np.ndarray, np.ndarray]:
        """``(corners, codes)`` of a slot as compact arrays, ascending (a copy; for tests and tools)."""
        segments = self.segments(slot)
        positions = segment_positions(segments.starts, segments.counts, 0, segments.starts.size)
        return self.corners[positions], self.codes[positions]


#: Position (0 = the neighbour of bit 7) of the highest bit not yet set in a code mask.
_FIRST_OPEN = np.array([7 - max(b for b in range(8) if not mask >> b & 1) if mask != 255 else 0
                        for mask in range(256)], dtype=np.int64)


@numba.njit(cache=True, inline="always")
def _slot_row(row, slot_lut, limit_lo, limit_hi, limit_axis, coord, k_from, k_to, base, out):
    """Slots of voxels ``k_from..k_to`` of a row into ``out[k - base]`` (limits applied).

    Returns the first and last position holding a slot (``(size, -1)`` for a row of background).
    """
    n_lut = slot_lut.size
    first = out.size
    last = -1
    for k in range(k_from, k_to + 1):
        v = row[k]
        s = slot_lut[v] if v < n_lut else 0
        if s != 0:
            c = k if limit_axis == 2 else coord
            if c < limit_lo[s] or c > limit_hi[s]:
                s = 0
            else:
                if first == out.size:
                    first = k - base
                last = k - base
        out[k - base] = s
    return first, last


@numba.njit(cache=True, inline="always")
def _fill_row(volume, v, j, plane_boxes, slot_lut, limit_lo, limit_hi, limit_axis, hi1, lo2, hi2, out, first, last):
    """Row ``j`` of voxel plane ``v`` as slots in ``out``, whose slots now lie in ``first..last``.

    Only the plane's box is read (``plane_boxes[v]``: rows lo, hi, columns lo, hi), within the
    scan's box (rows up to ``hi1``, columns ``lo2..hi2``); everything else is background. ``v = -1``
    is a plane outside the box. Returns the new first and last position of a slot.
    """
    if last >= first:
        out[first:last + 1] = 0
    if v < 0 or j > hi1 or j < plane_boxes[v, 0] or j > plane_boxes[v, 1]:
        return out.size, -1
    k_from = max(lo2, plane_boxes[v, 2])
    k_to = min(hi2, plane_boxes[v, 3])
    coord = v if limit_axis == 0 else j
    return _slot_row(volume[v, j], slot_lut, limit_lo, limit_hi, limit_axis, coord, k_from, k_to, lo2, out)


@numba.njit(cache=True, parallel=True, nogil=True)
def _scan_planes(volume, slot_lut, limit_lo, limit_hi, limit_axis, box_lo, box_hi, plane_boxes, n_slots,
                 emit_lo, emit_hi, plane_at, plane_room, corners, codes, starts, counts, code_counts,
                 scratch_corner, scratch_code, scratch_slot):
    """Surfels of the corner planes of the box (voxels outside it are background, never read).

    Plane ``p`` may write ``plane_room[p]`` entries from ``plane_at[p]``. Returns whether every
    plane had room enough.
    Each thread collects a plane in its row of the scratch arrays, then writes it slot by slot.
    """
    c1, c2 = volume.shape[1] + 1, volume.shape[2] + 1
    lo0, lo1, lo2 = box_lo[0], box_lo[1], box_lo[2]
    hi0, hi1, hi2 = box_hi[0], box_hi[1], box_hi[2]
    width = hi2 - lo2 + 1
    planes = hi0 - lo0 + 2
    overflow = np.zeros(planes, np.bool_)
    for p in numba.prange(planes):
        i = lo0 + p
        # slot rows of voxel planes i-1 (a) and i (b): previous row (j-1) and current row (j), one
        # spare zero at the end for the corner past the last voxel
        a_prev = np.zeros(width + 1, np.uint8)
        a_cur = np.zeros(width + 1, np.uint8)
        b_prev = np.zeros(width + 1, np.uint8)
        b_cur = np.zeros(width + 1, np.uint8)
        thread = numba.get_thread_id()
        plane_corner = scratch_corner[thread]
        plane_code = scratch_code[thread]
        plane_slot = scratch_slot[thread]
        per_slot = np.zeros(n_slots, np.int64)
        values = np.empty(8, np.uint8)
        capacity = plane_room[p]
        n = 0
        # first and last position holding a slot in each of the four rows (none: width + 1, -1)
        a_prev_first = a_cur_first = b_prev_first = b_cur_first = width + 1
        a_prev_last = a_cur_last = b_prev_last = b_cur_last = -1
        for j in range(lo1, hi1 + 2):
            # the buffers of two rows back become the current rows' (their slots lie in the ranges kept)
            a_prev, a_cur = a_cur, a_prev
            b_prev, b_cur = b_cur, b_prev
            a_stale_first, a_stale_last = a_prev_first, a_prev_last
            b_stale_first, b_stale_last = b_prev_first, b_prev_last
            a_prev_first, a_prev_last = a_cur_first, a_cur_last
            b_prev_first, b_prev_last = b_cur_first, b_cur_last
            a_cur_first, a_cur_last = _fill_row(volume, i - 1 if i > lo0 else -1, j, plane_boxes, slot_lut, limit_lo,
                                                limit_hi, limit_axis, hi1, lo2, hi2, a_cur, a_stale_first, a_stale_last)
            b_cur_first, b_cur_last = _fill_row(volume, i if i <= hi0 else -1, j, plane_boxes, slot_lut, limit_lo,
                                                limit_hi, limit_axis, hi1, lo2, hi2, b_cur, b_stale_first, b_stale_last)
            # corners left of every slot of the four rows, or right of them, see only background
            x_first = min(min(a_prev_first, a_cur_first), min(b_prev_first, b_cur_first))
            x_last = max(max(a_prev_last, a_cur_last), max(b_prev_last, b_cur_last)) + 1
            base = (i * c1 + j) * c2 + lo2
            w00 = 0; w01 = 0; w10 = 0; w11 = 0  # slots of the previous column (k - 1)
            for x in range(x_first, x_last + 1):
                e00 = a_prev[x]; e01 = a_cur[x]; e10 = b_prev[x]; e11 = b_cur[x]
                # neighbour (i-1+a, j-1+b, k-1+c) sets bit 7 - (4a + 2b + c)
                s7 = w00; s6 = e00; s5 = w01; s4 = e01; s3 = w10; s2 = e10; s1 = w11; s0 = e11
                w00 = e00; w01 = e01; w10 = e10; w11 = e11
                if s7 == s6 and s7 == s5 and s7 == s4 and s7 == s3 and s7 == s2 and s7 == s1 and s7 == s0:
                    continue
                values[0] = s7; values[1] = s6; values[2] = s5; values[3] = s4
                values[4] = s3; values[5] = s2; values[6] = s1; values[7] = s0
                # code bits already accounted for: the background's, then each organ's as it is met
                covered = (((s7 == 0) << 7) | ((s6 == 0) << 6) | ((s5 == 0) << 5) | ((s4 == 0) << 4)
                           | ((s3 == 0) << 3) | ((s2 == 0) << 2) | ((s1 == 0) << 1) | (s0 == 0))
                while covered != 255:
                    s = values[_FIRST_OPEN[covered]]
                    code = (((s7 == s) << 7) | ((s6 == s) << 6) | ((s5 == s) << 5) | ((s4 == s) << 4)
                            | ((s3 == s) << 3) | ((s2 == s) << 2) | ((s1 == s) << 1) | (s0 == s))
                    covered |= code
                    t = s - 1
                    code_counts[p, t, code] += 1
                    k = lo2 + x
                    if (emit_lo[t, 0] <= i <= emit_hi[t, 0] and emit_lo[t, 1] <= j <= emit_hi[t, 1]
                            and emit_lo[t, 2] <= k <= emit_hi[t, 2]):
                        if n < capacity:
                            plane_corner[n] = base + x
                            plane_code[n] = code
                            plane_slot[n] = t
                        n += 1
                        per_slot[t] += 1
        if n > capacity:
            overflow[p] = True
            continue
        # the plane's segments, slot by slot, each in memory order
        at = plane_at[p]
        position = np.empty(n_slots, np.int64)
        for t in range(n_slots):
            starts[p, t] = at
            counts[p, t] = per_slot[t]
            position[t] = at
            at += per_slot[t]
        for q in range(n):
            t = plane_slot[q]
            corners[position[t]] = plane_corner[q]
            codes[position[t]] = plane_code[q]
            position[t] += 1
    return not overflow.any()


def scan_surfels(
    volume: np.ndarray,
    *,
    slot_lut: np.ndarray,
    n_slots: int,
    box: tuple[np.ndarray, np.ndarray] | None = None,
    limits: dict[int, tuple[int, int]] | None = None,
    limit_axis: int = 0,
    emit_boxes: np.ndarray | None = None,
    plane_voxels: np.ndarray | None = None,
    plane_boxes: np.ndarray | None = None,
) -> OrganSurfels:
    """Surfels of every organ slot of a 3-D label volume.

    Args:
        volume: uint8 C-contiguous 3-D array (the kernels are compiled for this one type).
        slot_lut: uint8 array; ``slot_lut[v]`` is the slot of value ``v`` (0: not an organ).
        n_slots: number of slots (slots are 1..n_slots, at most 255).
        box: optional ``(lo, hi)`` voxel indices per axis (inclusive) holding every organ voxel of
            interest; voxels outside it count as background and are never read.
        limits: ``{slot: (lo, hi)}``: voxels of that slot count only when their index along
            ``limit_axis`` lies in ``lo..hi`` inclusive (the esophagus rule: an organ scored on
            the ground truth's slab of slices).
        limit_axis: the array axis the limits apply to.
        emit_boxes: optional int64 array (n_slots, 2, 3): per slot, the lowest and highest corner
            index (inclusive) of the surfels to list; others only enter ``code_counts``.
        plane_voxels: optional int64 array (volume.shape[0],): organ voxels per plane along axis 0
            (:class:`metrics.label_counts.LabelCounts`), which bounds the room a plane needs.
        plane_boxes: optional int64 array (volume.shape[0], 4): per plane along axis 0, the rows
            (lo, hi) and columns (lo, hi) holding its organ voxels (``LabelCounts``); only those
            are read. Default: the box, in every plane.

    Returns:
        An :class:`OrganSurfels`.
    """
    if volume.ndim != 3 or volume.dtype != np.uint8 or not volume.flags.c_contiguous:
        raise ValueError(f"scan_surfels needs a C-contiguous 3-D uint8 volume, got {volume.dtype} {volume.shape}")
    if not 1 <= n_slots <= 255:
        raise ValueError(f"n_slots must be 1..255, got {n_slots}")
    corner_dims = np.array([n + 1 for n in volume.shape], dtype=np.int64)
    box_lo, box_hi = ((np.zeros(3, np.int64), np.array(volume.shape, np.int64) - 1) if box is None
                      else (np.asarray(box[0], np.int64), np.asarray(box[1], np.int64)))
    limit_lo, limit_hi = limit_arrays(limits, n_slots)
    if emit_boxes is None:
        emit_lo = np.zeros((n_slots, 3), dtype=np.int64)
        emit_hi = np.tile(corner_dims - 1, (n_slots, 1))
    else:
        emit_lo = np.ascontiguousarray(emit_boxes[:, 0], dtype=np.int64)
        emit_hi = np.ascontiguousarray(emit_boxes[:, 1], dtype=np.int64)
    lut = np.ascontiguousarray(slot_lut, dtype=np.uint8)
    if plane_boxes is None:
        plane_boxes = np.tile(np.array([box_lo[1], box_hi[1], box_lo[2], box_hi[2]], np.int64), (volume.shape[0], 1))
    plane_boxes = np.ascontiguousarray(plane_boxes, dtype=np.int64)
    planes = int(box_hi[0] - box_lo[0]) + 2
    plane_corners = int(box_hi[1] - box_lo[1] + 2) * int(box_hi[2] - box_lo[2] + 2)
    bound = _room_bound(planes, int(box_lo[0]), volume.shape[0], plane_voxels, emit_lo, emit_hi, emit_boxes is not None)
    for per_corner in (ENTRIES_PER_CORNER, MAX_ENTRIES_PER_CORNER):
        room = np.minimum(bound, per_corner * plane_corners)
        plane_at = np.concatenate([[0], np.cumsum(room)[:-1]]).astype(np.int64)
        total = int(room.sum())
        corners = np.empty(total, np.int64)  # address space; only written pages are touched
        codes = np.empty(total, np.uint8)
        starts = np.zeros((planes, n_slots), np.int64)
        counts = np.zeros((planes, n_slots), np.int64)
        code_counts = np.zeros((planes, n_slots, 256), dtype=np.int32)
        threads = numba.get_num_threads()
        widest = int(room.max(initial=0))
        scratch = (np.empty((threads, widest), np.int64), np.empty((threads, widest), np.uint8),
                   np.empty((threads, widest), np.uint8))
        fitted = run_parallel(_scan_planes, volume, lut, limit_lo, limit_hi, limit_axis, box_lo, box_hi, plane_boxes, n_slots,
                              emit_lo, emit_hi, plane_at, room, corners, codes, starts, counts, code_counts, *scratch)
        if fitted:
            break
    return OrganSurfels(corners=corners, codes=codes, starts=starts, counts=counts, first_plane=int(box_lo[0]),
                        code_counts=code_counts.sum(axis=0, dtype=np.int64))


def _room_bound(planes: int, first: int, n0: int, plane_voxels: np.ndarray | None, emit_lo: np.ndarray,
                emit_hi: np.ndarray, emitting_in_boxes: bool) -> np.ndarray:
    """Most surfels each corner plane of the box can list (before the per-corner cap)."""
    bound = np.full(planes, np.iinfo(np.int64).max // 16, dtype=np.int64)
    corner_planes = np.arange(first, first + planes)
    if plane_voxels is not None:
        padded = np.concatenate([[0], np.asarray(plane_voxels, np.int64), [0]])  # voxel plane v at v + 1
        bound = SURFELS_PER_VOXEL * (padded[corner_planes] + padded[corner_planes + 1])
    if emitting_in_boxes:
        cross = np.prod(np.maximum(emit_hi[:, 1:] - emit_lo[:, 1:] + 1, 0), axis=1)
        inside = (corner_planes[:, None] >= emit_lo[None, :, 0]) & (corner_planes[:, None] <= emit_hi[None, :, 0])
        bound = np.minimum(bound, inside.astype(np.int64) @ cross)
    return bound
