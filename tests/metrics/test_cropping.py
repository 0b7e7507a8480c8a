"""Bounding boxes of labels (one pass) and the split of sparse masks into clusters."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from metrics import cropping
from metrics.cropping import box_slices, intersect_boxes, label_boxes, split_clusters


def _reference_boxes(volume: np.ndarray, labels) -> dict:
    found = ndimage.find_objects(np.where(volume > 0, volume, 0), max_label=max(labels))
    return {
        label: tuple((s.start, s.stop) for s in found[label - 1])
        for label in labels
        if found[label - 1] is not None
    }


@settings(max_examples=60, deadline=None)
@given(
    ndim=st.sampled_from([2, 3]),
    depth=st.integers(1, 40),  # more than CHUNK_SLICES, so boxes merge across chunks
    side=st.integers(1, 9),
    seed=st.integers(0, 2**32 - 1),
    dtype=st.sampled_from([np.uint8, np.int16, np.int32, np.uint16, np.int64]),
)
def test_label_boxes_match_find_objects_on_the_whole_volume(ndim, depth, side, seed, dtype):
    rng = np.random.default_rng(seed)
    shape = (depth,) + (side,) * (ndim - 1)
    volume = np.where(rng.random(shape) < rng.uniform(0, 0.1), rng.integers(1, 8, shape), 0).astype(dtype)
    if np.issubdtype(dtype, np.signedinteger):
        volume[rng.random(shape) < 0.05] = -3  # negative values are not organs
    labels = [1, 2, 5, 7]
    assert label_boxes(volume, labels=labels) == _reference_boxes(volume, labels)


def test_label_boxes_ignores_unrequested_and_larger_labels():
    volume = np.zeros((40, 6, 6), dtype=np.uint8)
    volume[3, 1, 1] = 2
    volume[30:33, 2:4, 1:5] = 2
    volume[0, 0, 0] = 9  # larger than every requested label
    volume[39, 5, 5] = 1  # not requested
    assert label_boxes(volume, labels=[2, 3]) == {2: ((3, 33), (1, 4), (1, 5))}
    assert label_boxes(np.zeros((3, 3), np.uint8), labels=[1]) == {}
    assert label_boxes(volume, labels=[]) == {}


def test_intersect_boxes():
    assert intersect_boxes(((0, 5), (2, 8)), ((3, 9), (0, 4))) == ((3, 5), (2, 4))
    assert intersect_boxes(((0, 5), (2, 8)), ((5, 9), (0, 4))) is None


def _check_pieces(mask: np.ndarray, pieces) -> None:
    rebuilt = np.zeros_like(mask)
    for origin, piece in pieces:
        box = tuple((o, o + n) for o, n in zip(origin, piece.shape))
        assert piece.any()
        # tight along every axis
        for axis in range(mask.ndim):
            profile = piece.any(axis=tuple(k for k in range(mask.ndim) if k != axis))
            assert profile[0] and profile[-1]
        # the piece is exactly the mask in its box, and the mask is empty in the 1-voxel halo
        halo = tuple(slice(max(lo - 1, 0), hi + 1) for lo, hi in box)
        assert np.array_equal(mask[box_slices(box)], piece)
        assert np.count_nonzero(mask[halo]) == np.count_nonzero(piece)
        assert not rebuilt[box_slices(box)].any()
        rebuilt[box_slices(box)] = piece
    assert np.array_equal(rebuilt, mask)


@settings(max_examples=60, deadline=None)
@given(ndim=st.sampled_from([2, 3]), side=st.integers(1, 16), seed=st.integers(0, 2**32 - 1))
def test_split_clusters_partitions_the_mask_into_separated_tight_pieces(ndim, side, seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((side,) * ndim) < rng.uniform(0, 0.3)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cropping, "SPLIT_BELOW_FILL", 1.1)  # always try to split, whatever the fill
        patch.setattr(cropping, "SPLIT_MIN_VOXELS", 0)  # and whatever the size
        _check_pieces(mask, split_clusters(mask, origin=(0,) * ndim))


def test_stray_voxels_in_opposite_corners_become_their_own_pieces(monkeypatch):
    monkeypatch.setattr(cropping, "SPLIT_MIN_VOXELS", 0)  # a small volume, split as a large one would be
    mask = np.zeros((60, 50, 40), dtype=bool)
    mask[20:30, 10:20, 15:25] = True
    mask[0, 0, 0] = mask[-1, -1, -1] = True
    pieces = split_clusters(mask, origin=(100, 200, 300))
    _check_pieces(np.pad(mask, ((100, 0), (200, 0), (300, 0))), pieces)
    assert sorted((origin, piece.shape) for origin, piece in pieces) == [
        ((100, 200, 300), (1, 1, 1)),
        ((120, 210, 315), (10, 10, 10)),
        ((159, 249, 339), (1, 1, 1)),
    ]


def test_dense_masks_are_not_split():
    mask = np.zeros((10, 10), dtype=bool)
    mask[:, :3] = mask[:, 5:] = True  # two clusters, but they fill the box well
    assert len(split_clusters(mask, origin=(0, 0))) == 1
    assert split_clusters(np.zeros((4, 4), dtype=bool), origin=(0, 0)) == []


def test_piece_count_is_capped(monkeypatch):
    monkeypatch.setattr(cropping, "MAX_CLUSTERS", 5)
    monkeypatch.setattr(cropping, "SPLIT_MIN_VOXELS", 0)
    mask = np.zeros((1, 41), dtype=bool)
    mask[0, ::2] = True  # 21 separate voxels
    pieces = split_clusters(mask, origin=(0, 0))
    assert len(pieces) <= 5 + 1
    rebuilt = np.zeros_like(mask)
    for (row, column), piece in pieces:
        rebuilt[row : row + piece.shape[0], column : column + piece.shape[1]] |= piece
    assert np.array_equal(rebuilt, mask)


def test_small_pieces_are_kept_whole(monkeypatch):
    """Speckle in a small box stays one piece (one surfel pass); the same mask is split when the limit is lower."""
    rng = np.random.default_rng(3)
    mask = np.zeros((40, 40, 40), dtype=bool)
    mask[::4, ::4, ::4] = rng.random((10, 10, 10)) < 0.5
    assert len(split_clusters(mask, origin=(0, 0, 0))) == 1
    monkeypatch.setattr(cropping, "SPLIT_MIN_VOXELS", 0)
    pieces = split_clusters(mask, origin=(0, 0, 0))
    assert len(pieces) > 100
    _check_pieces(mask, pieces)
