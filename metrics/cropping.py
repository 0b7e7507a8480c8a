"""Bounding boxes of organs and their split into separate clusters.

Why: every metric only needs the voxels of one organ, so scoring works on crops. One pass over
each label volume finds the box of every organ (:func:`label_boxes`). A box can still be huge
when a prediction has a stray voxel far from the organ; :func:`split_clusters` then cuts the box
at empty slabs into tight boxes around each cluster, so later steps never touch the empty space
in between.

A box is a tuple with one ``(lo, hi)`` pair of voxel indices (half-open) per array axis.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

Box = tuple[tuple[int, int], ...]

#: Splitting a box is tried only when the organ fills less than this fraction of it.
SPLIT_BELOW_FILL = 0.1
#: Safety cap on the number of clusters of one mask (pathological speckle noise).
MAX_CLUSTERS = 4096
#: A piece of at most this many voxels is not split further: one surfel pass over it costs less
#: than the bookkeeping of the many tiny pieces a speckled prediction would be cut into.
SPLIT_MIN_VOXELS = 1 << 20


def box_slices(box: Box) -> tuple[slice, ...]:
    """The box as a tuple of slices for indexing an array."""
    return tuple(slice(lo, hi) for lo, hi in box)


def intersect_boxes(a: Box, b: Box) -> Box | None:
    """The intersection of two boxes, or None when it is empty."""
    out = tuple((max(la, lb), min(ha, hb)) for (la, ha), (lb, hb) in zip(a, b))
    if any(lo >= hi for lo, hi in out):
        return None
    return out


def _true_range(flags: np.ndarray) -> tuple[int, int] | None:
    idx = np.flatnonzero(flags)
    if idx.size == 0:
        return None
    return int(idx[0]), int(idx[-1]) + 1


#: Slices per chunk when looking for the foreground along axis 0 (see :func:`label_boxes`).
CHUNK_SLICES = 16


def _max_over_trailing_axes(array: np.ndarray) -> np.ndarray:
    """Maximum over all axes but the first (as one contiguous reduction when possible)."""
    if array.flags.c_contiguous:
        return array.reshape(array.shape[0], -1).max(axis=1)
    return array.max(axis=tuple(range(1, array.ndim)))


def _foreground_chunks(volume: np.ndarray) -> list[Box]:
    """Boxes of the voxels with a label > 0, one per chunk of CHUNK_SLICES slices along axis 0.

    Cheap max projections (vectorised passes) so that the slower per-voxel labelling pass only
    visits each chunk's own foreground box, not the box of the whole foreground.
    """
    if volume.size == 0:
        return []
    present = _max_over_trailing_axes(volume) > 0
    boxes: list[Box] = []
    for start in range(0, volume.shape[0], CHUNK_SLICES):
        flags = present[start : start + CHUNK_SLICES]
        first = _true_range(flags)
        if first is None:
            continue
        z0, z1 = start + first[0], start + first[1]
        plane = volume[z0:z1].max(axis=0) > 0  # projection onto axes 1..ndim-1
        ranges = [(z0, z1)]
        for axis in range(plane.ndim):
            others = tuple(k for k in range(plane.ndim) if k != axis)
            found = _true_range(plane.any(axis=others) if others else plane)
            if found is None:  # cannot happen: the chunk has a foreground voxel
                raise RuntimeError("inconsistent foreground projection")
            ranges.append(found)
        boxes.append(tuple(ranges))
    return boxes


def label_boxes(volume: np.ndarray, *, labels: Iterable[int]) -> dict[int, Box]:
    """Bounding box of each requested label, in one pass over the volume.

    Finds the foreground (labels > 0) chunk by chunk along axis 0 with max projections, then
    runs ``scipy.ndimage.find_objects`` on each chunk's foreground box only and merges.

    Args:
        volume: integer label array (2-D or 3-D), any axis order.
        labels: the labels (>= 1) whose boxes are wanted; others are ignored.

    Returns:
        ``{label: box}`` for the requested labels present in the volume (absent labels are left
        out), with boxes in voxel indices of ``volume``.
    """
    from scipy import ndimage  # on first use: the 3-D scoring path never needs it (0.3 s of a process's start)

    wanted = sorted({int(label) for label in labels})
    if not wanted:
        return {}
    lows: dict[int, list[int]] = {}
    highs: dict[int, list[int]] = {}
    for chunk in _foreground_chunks(volume):
        found = ndimage.find_objects(volume[box_slices(chunk)], max_label=wanted[-1])
        for label in wanted:
            slices = found[label - 1]
            if slices is None:
                continue
            lo = [c_lo + s.start for (c_lo, _), s in zip(chunk, slices)]
            hi = [c_lo + s.stop for (c_lo, _), s in zip(chunk, slices)]
            if label in lows:
                lows[label] = [min(a, b) for a, b in zip(lows[label], lo)]
                highs[label] = [max(a, b) for a, b in zip(highs[label], hi)]
            else:
                lows[label], highs[label] = lo, hi
    return {label: tuple(zip(lows[label], highs[label])) for label in wanted if label in lows}


def _pieces(flags: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of True in a 1-D bool array, as half-open index pairs."""
    padded = np.concatenate(([False], flags, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(a), int(b)) for a, b in zip(edges[0::2], edges[1::2])]


def split_clusters(
    mask: np.ndarray, *, origin: tuple[int, ...], count: int | None = None
) -> list[tuple[tuple[int, ...], np.ndarray]]:
    """Cut a mask into tight boxes separated by empty slabs.

    Each returned piece is a view of ``mask`` whose box is tight around its voxels, and every
    voxel of ``mask`` lies in exactly one piece. Neighbouring pieces are separated by at least
    one empty slice, so the 2x2(x2) neighbourhoods of different pieces never share a voxel and
    each piece's surface can be computed on its own with zero padding.

    Splitting is only attempted when the mask fills less than ``SPLIT_BELOW_FILL`` of its box
    (otherwise the box is already a good crop): it cuts along the axis with the most empty
    slices, recursively, at most ``MAX_CLUSTERS`` pieces, and never a piece of at most
    ``SPLIT_MIN_VOXELS`` voxels (such a piece is kept whole, as it is, not made tight).

    Args:
        mask: bool array (2-D or 3-D), the organ inside some box.
        origin: index in the full volume of ``mask[0, 0, ...]``.
        count: number of True voxels in ``mask`` if already known.

    Returns:
        List of ``(origin, piece)`` pairs; empty if the mask is empty.
    """
    if count is None:
        count = int(np.count_nonzero(mask))
    if count == 0:
        return []
    if count >= SPLIT_BELOW_FILL * mask.size:
        return [(tuple(origin), mask)]
    done: list[tuple[tuple[int, ...], np.ndarray]] = []
    todo: list[tuple[tuple[int, ...], np.ndarray]] = [(tuple(origin), mask)]
    while todo:
        start, piece = todo.pop()
        if len(done) + len(todo) >= MAX_CLUSTERS or piece.size <= SPLIT_MIN_VOXELS:
            done.append((start, piece))
            continue
        cut = _cut(piece)
        if cut is None:  # empty piece (cannot happen for pieces cut at empty slabs)
            continue
        tight, axis, runs = cut
        piece = piece[tight]
        start = tuple(s + (t.start or 0) for s, t in zip(start, tight))
        if axis is None:
            done.append((start, piece))
            continue
        for lo, hi in runs:
            index = [slice(None)] * piece.ndim
            index[axis] = slice(lo, hi)
            child_start = list(start)
            child_start[axis] += lo
            todo.append((tuple(child_start), piece[tuple(index)]))
    return done


def _cut(piece: np.ndarray) -> tuple[tuple[slice, ...], int | None, list[tuple[int, int]]] | None:
    """Tight slices of a piece, and the axis and runs to cut it into (axis None: no empty slab).

    Looks at axis 0 first (one cheap contiguous reduction); only when it has no empty slab is the
    projection onto the other axes computed (one more pass).
    """
    first = _max_over_trailing_axes(piece)
    first_range = _true_range(first)
    if first_range is None:
        return None
    runs = _pieces(first[first_range[0] : first_range[1]])
    if len(runs) > 1:
        tight = (slice(*first_range),) + (slice(None),) * (piece.ndim - 1)
        return tight, 0, runs
    plane = piece[first_range[0] : first_range[1]].any(axis=0)
    ranges, profiles = [first_range], [None]
    for axis in range(plane.ndim):
        others = tuple(k for k in range(plane.ndim) if k != axis)
        profile = plane.any(axis=others) if others else plane
        ranges.append(_true_range(profile))
        profiles.append(profile)
    tight = tuple(slice(lo, hi) for lo, hi in ranges)  # type: ignore[misc]
    best_axis, best_runs, best_gap = None, [], 0
    for axis in range(1, piece.ndim):
        profile = profiles[axis][tight[axis]]  # type: ignore[index]
        gap = int(profile.size - np.count_nonzero(profile))
        if gap > best_gap:
            best_axis, best_runs, best_gap = axis, _pieces(profile), gap
    return tight, best_axis, best_runs
