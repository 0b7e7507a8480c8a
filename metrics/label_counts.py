"""Voxel counts and bounding boxes of every organ of a ground-truth / prediction pair, in one pass.

Why: Dice needs, per organ, the voxels of each volume and of their overlap; later steps need each
organ's box. One parallel pass over both volumes gives all of them (a joint histogram of organ
slots, plus per-plane extents), instead of one mask per organ and volume.

Slots and limits are those of :mod:`metrics.surfel_scan`: ``slot_lut[v]`` is the slot (1..n) of
value ``v``, 0 for anything else; a predicted voxel of a limited slot counts only inside its
limits along ``limit_axis`` (the ground truth is never limited).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np

from metrics.parallel import run_parallel
from metrics.surfel_scan import limit_arrays


@dataclass(frozen=True)
class LabelCounts:
    """Joint voxel counts and boxes of the organ slots.

    Attributes:
        joint: int64 (n_slots + 1, n_slots + 1): ``joint[g, p]`` voxels with ground-truth slot g and
            predicted slot p (0: no organ).
        gt_boxes, pred_boxes: int64 (n_slots + 1, 2, 3): per slot the lowest and highest voxel
            index per axis (inclusive); ``lo > hi`` for a slot without voxels. Row 0 is unused.
        gt_plane_voxels, pred_plane_voxels: int64 (n0,): organ voxels (any slot) in each plane
            along axis 0 (what bounds the surfels a plane can have).
        gt_plane_boxes, pred_plane_boxes: int64 (n0, 4): per plane along axis 0, the lowest and
            highest row, then lowest and highest column, holding an organ voxel (any slot); lo > hi
            for a plane without one (what a surfel scan of the plane must read).
    """

    joint: np.ndarray
    gt_boxes: np.ndarray
    pred_boxes: np.ndarray
    gt_plane_voxels: np.ndarray
    pred_plane_voxels: np.ndarray
    gt_plane_boxes: np.ndarray
    pred_plane_boxes: np.ndarray

    def gt_voxels(self, slot: int) -> int:
        return int(self.joint[slot].sum())

    def pred_voxels(self, slot: int) -> int:
        return int(self.joint[:, slot].sum())

    def overlap(self, slot: int) -> int:
        return int(self.joint[slot, slot])


@numba.njit(cache=True, inline="always")
def _slot_of(value, slot_lut):
    if value < 0 or value >= slot_lut.size:
        return 0
    return slot_lut[value]


@numba.njit(cache=True, inline="always")
def _tally_voxel(i, j, k, g_value, p_value, slot_lut, limit_lo, limit_hi, limit_axis, joint, low, high):
    g = _slot_of(g_value, slot_lut)
    p = _slot_of(p_value, slot_lut)
    if p != 0:
        coord = i if limit_axis == 0 else (j if limit_axis == 1 else k)
        if coord < limit_lo[p] or coord > limit_hi[p]:
            p = 0
    joint[i, g, p] += 1
    if g != 0:
        if j < low[i, 0, g, 0]: low[i, 0, g, 0] = j
        if j > high[i, 0, g, 0]: high[i, 0, g, 0] = j
        if k < low[i, 0, g, 1]: low[i, 0, g, 1] = k
        if k > high[i, 0, g, 1]: high[i, 0, g, 1] = k
    if p != 0:
        if j < low[i, 1, p, 0]: low[i, 1, p, 0] = j
        if j > high[i, 1, p, 0]: high[i, 1, p, 0] = j
        if k < low[i, 1, p, 1]: low[i, 1, p, 1] = k
        if k > high[i, 1, p, 1]: high[i, 1, p, 1] = k


@numba.njit(cache=True, parallel=True, nogil=True)
def _tally(gt, pred, slot_lut, n_slots, limit_lo, limit_hi, limit_axis):
    """The joint histogram per plane along axis 0 and the slots' row/column extents per plane.

    Most voxels are background in both volumes: eight at a time are recognised as such by one
    OR of two words (the flat volumes read as uint64) and counted at once; only words holding an
    organ voxel are walked voxel by voxel. Needs ``slot_lut[0] == 0``.
    """
    n0, n1, n2 = gt.shape
    plane = n1 * n2
    big = np.iinfo(np.int64).max
    joint = np.zeros((n0, n_slots + 1, n_slots + 1), np.int64)
    # per plane: lowest/highest row and column of each slot, ground truth (0) and prediction (1)
    low = np.full((n0, 2, n_slots + 1, 2), big, np.int64)
    high = np.full((n0, 2, n_slots + 1, 2), -1, np.int64)
    gt_flat = gt.reshape(-1)
    pred_flat = pred.reshape(-1)
    words = gt_flat.size // 8
    gt_words = gt_flat[:words * 8].view(np.uint64)
    pred_words = pred_flat[:words * 8].view(np.uint64)
    for i in numba.prange(n0):
        start = i * plane
        end = start + plane
        first_word, last_word = (start + 7) // 8, end // 8  # the words wholly inside the plane
        head_end = min(first_word * 8, end)
        tail_start = max(last_word * 8, head_end)
        for f in range(start, head_end):
            _tally_voxel(i, (f - start) // n2, (f - start) % n2, gt_flat[f], pred_flat[f], slot_lut, limit_lo,
                         limit_hi, limit_axis, joint, low, high)
        background = 0
        for w in range(first_word, last_word):
            if (gt_words[w] | pred_words[w]) == 0:
                background += 8
                continue
            for f in range(w * 8, w * 8 + 8):
                _tally_voxel(i, (f - start) // n2, (f - start) % n2, gt_flat[f], pred_flat[f], slot_lut, limit_lo,
                             limit_hi, limit_axis, joint, low, high)
        joint[i, 0, 0] += background
        for f in range(tail_start, end):
            _tally_voxel(i, (f - start) // n2, (f - start) % n2, gt_flat[f], pred_flat[f], slot_lut, limit_lo,
                         limit_hi, limit_axis, joint, low, high)
    boxes = np.empty((2, n_slots + 1, 2, 3), np.int64)
    for v in range(2):
        for s in range(n_slots + 1):
            boxes[v, s, 0, :] = big
            boxes[v, s, 1, :] = -1
            for i in range(n0):
                if high[i, v, s, 0] < 0:
                    continue
                boxes[v, s, 0, 0] = min(boxes[v, s, 0, 0], i)
                boxes[v, s, 1, 0] = max(boxes[v, s, 1, 0], i)
                boxes[v, s, 0, 1] = min(boxes[v, s, 0, 1], low[i, v, s, 0])
                boxes[v, s, 1, 1] = max(boxes[v, s, 1, 1], high[i, v, s, 0])
                boxes[v, s, 0, 2] = min(boxes[v, s, 0, 2], low[i, v, s, 1])
                boxes[v, s, 1, 2] = max(boxes[v, s, 1, 2], high[i, v, s, 1])
    planes = np.zeros((2, n0), np.int64)
    for i in range(n0):
        for g in range(n_slots + 1):
            for p in range(n_slots + 1):
                if g != 0:
                    planes[0, i] += joint[i, g, p]
                if p != 0:
                    planes[1, i] += joint[i, g, p]
    plane_boxes = np.empty((2, n0, 4), np.int64)  # rows lo, hi, columns lo, hi of all slots
    for v in range(2):
        for i in range(n0):
            plane_boxes[v, i, 0] = big
            plane_boxes[v, i, 1] = -1
            plane_boxes[v, i, 2] = big
            plane_boxes[v, i, 3] = -1
            for s in range(1, n_slots + 1):
                plane_boxes[v, i, 0] = min(plane_boxes[v, i, 0], low[i, v, s, 0])
                plane_boxes[v, i, 1] = max(plane_boxes[v, i, 1], high[i, v, s, 0])
                plane_boxes[v, i, 2] = min(plane_boxes[v, i, 2], low[i, v, s, 1])
                plane_boxes[v, i, 3] = max(plane_boxes[v, i, 3], high[i, v, s, 1])
    return joint.sum(axis=0), boxes, planes, plane_boxes


@numba.njit(cache=True, nogil=True)
def _extents(volume, wanted, axis):
    """Lowest and highest index along ``axis`` of each value ``v`` with ``wanted[v] >= 0`` (row
    ``wanted[v]`` of the result; ``lo > hi`` when absent). Background is skipped eight voxels at a time."""
    n0, n1, n2 = volume.shape
    flat = volume.reshape(-1)
    count = 0
    for v in range(wanted.size):
        if wanted[v] >= 0:
            count += 1
    extents = np.empty((count, 2), np.int64)
    extents[:, 0] = np.iinfo(np.int64).max
    extents[:, 1] = -1
    words = flat.size // 8
    source = flat[:words * 8].view(np.uint64)
    for w in range(words + 1):
        if w < words and source[w] == 0:
            continue
        for f in range(w * 8, min(w * 8 + 8, flat.size)):
            v = flat[f]
            if v >= wanted.size or wanted[v] < 0:
                continue
            coord = f // (n1 * n2) if axis == 0 else ((f // n2) % n1 if axis == 1 else f % n2)
            row = wanted[v]
            if coord < extents[row, 0]:
                extents[row, 0] = coord
            if coord > extents[row, 1]:
                extents[row, 1] = coord
    return extents


def label_extents(volume: np.ndarray, labels: Sequence[int], axis: int) -> dict[int, tuple[int, int]]:
    """``{label: (first, last)}`` index along ``axis`` of each of ``labels`` the volume holds.

    One pass over a uint8 C-contiguous 3-D volume (what the esophagus rule needs: the ground
    truth's slab of slices), without a mask per label.
    """
    if volume.ndim != 3 or volume.dtype != np.uint8 or not volume.flags.c_contiguous:
        raise ValueError(f"label_extents needs a C-contiguous 3-D uint8 volume, got {volume.dtype} {volume.shape}")
    possible = [int(label) for label in labels if 0 <= label < 256]  # no other value is in a uint8 volume
    wanted = np.full(256, -1, np.int64)
    wanted[possible] = np.arange(len(possible))
    extents = _extents(volume, wanted, axis)
    return {label: (int(extents[row, 0]), int(extents[row, 1])) for row, label in enumerate(possible)
            if extents[row, 0] <= extents[row, 1]}


def count_labels(
    gt: np.ndarray,
    pred: np.ndarray,
    *,
    slot_lut: np.ndarray,
    n_slots: int,
    limits: dict[int, tuple[int, int]] | None = None,
    limit_axis: int = 0,
) -> LabelCounts:
    """Joint counts and boxes of the organ slots of two uint8 C-contiguous 3-D volumes of one shape.

    (One type only, so that the kernel is compiled once; :mod:`metrics.volume_scoring` converts.)
    """
    for volume in (gt, pred):
        if volume.ndim != 3 or volume.dtype != np.uint8 or not volume.flags.c_contiguous:
            raise ValueError(f"count_labels needs C-contiguous 3-D uint8 volumes, got {volume.dtype} {volume.shape}")
    if slot_lut[0] != 0:
        raise ValueError("value 0 is background: slot_lut[0] must be 0")
    limit_lo, limit_hi = limit_arrays(limits, n_slots)
    joint, boxes, planes, plane_boxes = run_parallel(_tally, gt, pred, np.ascontiguousarray(slot_lut, dtype=np.uint8), n_slots,
                                        limit_lo, limit_hi, limit_axis)
    return LabelCounts(joint=joint, gt_boxes=boxes[0], pred_boxes=boxes[1], gt_plane_voxels=planes[0],
                       pred_plane_voxels=planes[1], gt_plane_boxes=plane_boxes[0], pred_plane_boxes=plane_boxes[1])
