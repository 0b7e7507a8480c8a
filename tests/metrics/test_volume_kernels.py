"""The one-pass kernels behind 3-D scoring, each against a plain reference.

surfel_scan against per-organ neighbourhood codes (metrics.surfaces), corner_distances against a
KD-tree over all targets, surfel_stats against the reference's sorted percentile, and
score_case's two paths (NSD alone, all metrics) against each other and surface-distance.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import cKDTree

from metrics import OrganSpec, score_case
from metrics.corner_distances import Segments, nearest_distances
from metrics.near_distances import MAX_WALK_OFFSETS, lattice_offsets, nearest_distances_near, walk_offsets
from metrics.label_counts import count_labels, label_extents
from metrics.surface_metrics import sorted_area_percentile
from metrics.surfaces import neighbourhood_codes
from metrics.surfel_scan import scan_surfels
from metrics.surfel_stats import EXACT_BELOW, area_percentile, area_sums
from tests.metrics.helpers import reference

TOLERANCE = 1e-6


def _expected_surfels(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    codes = neighbourhood_codes(mask).reshape(-1)
    border = np.flatnonzero((codes != 0) & (codes != 255))
    return border, codes[border], np.bincount(codes[border], minlength=256)


def _plane_boxes(volume: np.ndarray, labels: int) -> np.ndarray:
    """Per plane along axis 0: rows lo, hi and columns lo, hi of its organ voxels (lo > hi: none)."""
    big = np.iinfo(np.int64).max
    boxes = np.tile(np.array([big, -1, big, -1], np.int64), (volume.shape[0], 1))
    for i, plane in enumerate(volume):
        rows, columns = np.nonzero((plane >= 1) & (plane <= labels))
        if rows.size:
            boxes[i] = rows.min(), rows.max(), columns.min(), columns.max()
    return boxes


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), labels=st.integers(1, 9), limit_axis=st.integers(0, 2),
       boxed=st.booleans(), plane_boxed=st.booleans())
def test_scan_lists_every_organs_surfels_like_per_organ_codes(seed, labels, limit_axis, boxed, plane_boxed):
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(3, 13, 3))
    volume = rng.integers(0, labels + 2, shape).astype(np.uint8)  # the top value is no organ
    if plane_boxed:  # sparse organs, so that each plane's box is smaller than the volume's
        volume[rng.random(shape) < 0.85] = 0
    slot_lut = np.zeros(labels + 2, np.uint8)
    slot_lut[1: labels + 1] = np.arange(1, labels + 1)
    limited = 1
    lo, hi = sorted(int(v) for v in rng.integers(0, shape[limit_axis], 2))
    box = None
    inside = np.ones(shape, bool)
    if boxed:
        a = [int(rng.integers(0, n)) for n in shape]
        b = [int(rng.integers(x, n)) for x, n in zip(a, shape)]
        box = (np.array(a), np.array(b))
        inside[:] = False
        inside[tuple(slice(x, y + 1) for x, y in zip(a, b))] = True
    surfels = scan_surfels(volume, slot_lut=slot_lut, n_slots=labels, box=box, limits={limited: (lo, hi)},
                           limit_axis=limit_axis, plane_boxes=_plane_boxes(volume, labels) if plane_boxed else None)
    for slot in range(1, labels + 1):
        mask = (volume == slot) & inside
        if slot == limited:
            keep = np.zeros(shape[limit_axis], bool)
            keep[lo: hi + 1] = True
            mask &= keep.reshape([-1 if axis == limit_axis else 1 for axis in range(3)])
        corners, codes, histogram = _expected_surfels(mask)
        got_corners, got_codes = surfels.listed(slot)
        np.testing.assert_array_equal(got_corners, corners)
        np.testing.assert_array_equal(got_codes, codes)
        np.testing.assert_array_equal(surfels.code_counts[slot - 1, 1:255], histogram[1:255])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), labels=st.integers(1, 6), limit_axis=st.integers(0, 2),
       sparsity=st.sampled_from([0.0, 0.9, 0.99]))
def test_counts_and_boxes_equal_numpys_in_any_shape(seed, labels, limit_axis, sparsity):
    """Odd plane sizes put the planes' edges inside eight-voxel words: every voxel counts once."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(1, 15, 3))
    gt, pred = (np.where(rng.random(shape) < sparsity, 0, rng.integers(0, labels + 2, shape)).astype(np.uint8)
                for _ in range(2))
    slot_lut = np.zeros(labels + 2, np.uint8)
    slot_lut[1: labels + 1] = np.arange(1, labels + 1)
    lo, hi = sorted(int(v) for v in rng.integers(0, shape[limit_axis], 2))
    counts = count_labels(gt, pred, slot_lut=slot_lut, n_slots=labels, limits={1: (lo, hi)}, limit_axis=limit_axis)
    coords = np.indices(shape)[limit_axis]
    gt_slots = slot_lut[gt]
    pred_slots = np.where((pred == 1) & ((coords < lo) | (coords > hi)), 0, slot_lut[pred])
    joint = np.zeros((labels + 1, labels + 1), np.int64)
    np.add.at(joint, (gt_slots.ravel(), pred_slots.ravel()), 1)
    np.testing.assert_array_equal(counts.joint, joint)
    for slots, boxes, plane_voxels, plane_boxes in ((gt_slots, counts.gt_boxes, counts.gt_plane_voxels,
                                                     counts.gt_plane_boxes),
                                                    (pred_slots, counts.pred_boxes, counts.pred_plane_voxels,
                                                     counts.pred_plane_boxes)):
        np.testing.assert_array_equal(plane_voxels, (slots > 0).sum(axis=(1, 2)))
        np.testing.assert_array_equal(plane_boxes, _plane_boxes(slots, labels))
        for slot in range(1, labels + 1):
            where = np.argwhere(slots == slot)
            if where.size:
                np.testing.assert_array_equal(boxes[slot], [where.min(axis=0), where.max(axis=0)])
            else:
                assert (boxes[slot, 0] > boxes[slot, 1]).all()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), axis=st.integers(0, 2), sparsity=st.sampled_from([0.0, 0.95, 0.999]))
def test_label_extents_equal_numpys_along_any_axis(seed, axis, sparsity):
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(1, 15, 3))
    volume = np.where(rng.random(shape) < sparsity, 0, rng.integers(0, 6, shape)).astype(np.uint8)
    labels = [1, 3, 5, 300]  # 300 cannot be in a uint8 volume
    got = label_extents(volume, labels, axis)
    other = tuple(a for a in range(3) if a != axis)
    expected = {}
    for label in labels[:3]:
        present = np.flatnonzero((volume == label).any(axis=other))
        if present.size:
            expected[label] = (int(present[0]), int(present[-1]))
    assert got == expected


def test_scan_rescans_when_many_organs_meet_at_every_corner():
    """A 2x2x2 tiling of eight organs puts 8 surfels at most corners: more than the first room."""
    shape = (8, 10, 12)
    index = np.indices(shape)
    volume = (1 + (index[0] % 2) * 4 + (index[1] % 2) * 2 + index[2] % 2).astype(np.uint8)
    slot_lut = np.arange(9, dtype=np.uint8)
    surfels = scan_surfels(volume, slot_lut=slot_lut, n_slots=8)
    assert sum(surfels.size(slot) for slot in range(1, 9)) > 2 * np.prod([n + 1 for n in shape])
    for slot in range(1, 9):
        corners, codes, _ = _expected_surfels(volume == slot)
        got_corners, got_codes = surfels.listed(slot)
        np.testing.assert_array_equal(got_corners, corners)
        np.testing.assert_array_equal(got_codes, codes)


def test_scan_lists_only_inside_emission_boxes_but_counts_every_code():
    rng = np.random.default_rng(3)
    volume = (rng.random((9, 11, 13)) < 0.3).astype(np.uint8)
    emit = np.array([[[2, 3, 4], [5, 6, 9]]])
    surfels = scan_surfels(volume, slot_lut=np.array([0, 1], np.uint8), n_slots=1, emit_boxes=emit)
    corners, codes, histogram = _expected_surfels(volume == 1)
    where = np.array(np.unravel_index(corners, [n + 1 for n in volume.shape]))
    keep = np.all((where >= emit[0, 0][:, None]) & (where <= emit[0, 1][:, None]), axis=0)
    np.testing.assert_array_equal(surfels.listed(1)[0], corners[keep])
    np.testing.assert_array_equal(surfels.code_counts[0, 1:255], histogram[1:255])


def test_scan_refuses_what_its_kernel_is_not_compiled_for():
    with pytest.raises(ValueError, match="uint8"):
        scan_surfels(np.zeros((3, 3, 3), np.int16), slot_lut=np.array([0, 1], np.uint8), n_slots=1)
    with pytest.raises(ValueError, match="C-contiguous"):
        count_labels(np.zeros((3, 3, 3), np.uint8), np.zeros((3, 3, 3), np.uint8).T.copy(order="F"),
                     slot_lut=np.array([0, 1], np.uint8), n_slots=1)


def _as_segments(flat: np.ndarray, dims: tuple[int, int, int]) -> Segments:
    """Sorted flat corners as plane segments of a buffer laid out like a scan's (with gaps)."""
    flat = np.unique(flat)
    plane_of = flat // (dims[1] * dims[2])
    planes = dims[0]
    counts = np.bincount(plane_of, minlength=planes).astype(np.int64)
    starts = np.arange(planes, dtype=np.int64) * (counts.max() + 3)  # gaps between planes
    buffer = np.full(int(starts[-1] + counts.max() + 3), -1, np.int64)
    for p in range(planes):
        buffer[starts[p]: starts[p] + counts[p]] = flat[plane_of == p]
    return Segments(buffer, starts, counts, 0, np.cumsum(counts) - counts)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), compact_targets=st.booleans(), regional=st.booleans())
def test_nearest_distances_equal_a_kd_tree(seed, compact_targets, regional):
    rng = np.random.default_rng(seed)
    dims = tuple(int(n) for n in rng.integers(2, 24, 3))
    spacing = tuple(float(s) for s in rng.uniform(0.3, 3.0, 3))
    size = int(np.prod(dims))
    if compact_targets:
        lo = [int(rng.integers(0, n)) for n in dims]
        extent = [int(rng.integers(1, 6)) for _ in dims]
        points = np.stack([rng.integers(a, min(a + e, n), 40) for a, e, n in zip(lo, extent, dims)])
        target_flat = np.ravel_multi_index(tuple(points), dims)
    else:
        target_flat = rng.choice(size, int(rng.integers(1, 60)), replace=True)
    query_flat = np.unique(rng.choice(size, int(rng.integers(1, 400)), replace=True))
    queries, targets = _as_segments(query_flat, dims), _as_segments(target_flat, dims)
    q_points = np.array(np.unravel_index(query_flat, dims)).T
    t_points = np.array(np.unravel_index(np.unique(target_flat), dims)).T
    region = None
    if regional:
        region = (q_points.min(axis=0), q_points.max(axis=0))
        t_points = t_points[np.all((t_points >= region[0]) & (t_points <= region[1]), axis=1)]
    out = np.full(queries.size + 3, -7.0)
    nearest_distances(queries, targets, out, corner_dims=dims, spacing_mm=spacing, region=region)
    assert np.all(out[queries.size:] == -7.0)  # nothing written past the queries, with or without targets
    if len(t_points) == 0:
        assert np.all(np.isinf(out[: queries.size]))
        return
    expected, _ = cKDTree(t_points * np.array(spacing)).query(q_points * np.array(spacing))
    np.testing.assert_allclose(out[: queries.size], expected, rtol=0, atol=1e-9)


def test_near_distances_grow_their_reach_until_every_answer_is_proven():
    dims = (30, 40, 50)
    queries = _as_segments(np.ravel_multi_index(([2, 3], [2, 2], [2, 4]), dims), dims)
    far = _as_segments(np.ravel_multi_index(([29, 28], [39, 1], [49, 0]), dims), dims)
    out = np.empty(2)
    nearest_distances_near(queries, far, out, corner_dims=dims, spacing_mm=(1.0, 1.0, 1.0), reach_mm=1.0)
    expected, _ = cKDTree(np.array([[29, 39, 49], [28, 1, 0]])).query(np.array([[2, 2, 2], [3, 2, 4]]))
    np.testing.assert_allclose(out, expected)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), local_steps=st.sampled_from([0.0, 1.0, 2.0, 3.5, 6.0]), near_share=st.floats(0, 1))
def test_near_distances_walk_then_envelopes_equal_a_kd_tree(seed, local_steps, near_share):
    """Targets next to some queries (answered by the lattice walk) and far from the others (left to
    the envelopes): every distance is the KD-tree's, and nothing is written past the queries."""
    rng = np.random.default_rng(seed)
    dims = tuple(int(n) for n in rng.integers(3, 40, 3))
    spacing = tuple(float(s) for s in rng.uniform(0.3, 3.0, 3))
    size = int(np.prod(dims))
    query_flat = np.unique(rng.choice(size, int(rng.integers(1, 300)), replace=True))
    q_points = np.array(np.unravel_index(query_flat, dims)).T
    close = q_points[rng.random(len(q_points)) < near_share]
    close = np.clip(close + rng.integers(-2, 3, close.shape), 0, np.array(dims) - 1)
    far = np.array(np.unravel_index(rng.choice(size, int(rng.integers(0, 8))), dims)).T
    t_points = np.unique(np.concatenate([close, far]).reshape(-1, 3).astype(np.int64), axis=0)
    out = np.full(len(query_flat) + 3, -7.0)
    queries = _as_segments(query_flat, dims)
    if len(t_points) == 0:
        targets = Segments(np.empty(0, np.int64), np.zeros(dims[0], np.int64), np.zeros(dims[0], np.int64), 0,
                           np.zeros(dims[0], np.int64))
        nearest_distances_near(queries, targets, out, corner_dims=dims, spacing_mm=spacing, local_steps=local_steps)
        assert np.all(np.isinf(out[: len(query_flat)]))
    else:
        targets = _as_segments(np.ravel_multi_index(tuple(t_points.T), dims), dims)
        nearest_distances_near(queries, targets, out, corner_dims=dims, spacing_mm=spacing, local_steps=local_steps)
        expected, _ = cKDTree(t_points * np.array(spacing)).query(q_points * np.array(spacing))
        np.testing.assert_allclose(out[: len(query_flat)], expected, rtol=0, atol=1e-9)
    assert np.all(out[len(query_flat):] == -7.0)


@settings(max_examples=30, deadline=None)
@given(spacing=st.tuples(*[st.floats(0.3, 3.0)] * 3), steps=st.floats(0.5, 3.0))
def test_lattice_offsets_are_every_offset_within_the_reach_nearest_first(spacing, steps):
    reach = steps * max(spacing)
    offsets = lattice_offsets(spacing, reach)
    span = [int(np.ceil(reach / s)) + 1 for s in spacing]
    every = np.stack(np.meshgrid(*[np.arange(-n, n + 1) for n in span], indexing="ij"), axis=-1).reshape(-1, 3)
    distance = np.sqrt(((every * np.array(spacing)) ** 2).sum(axis=1))
    assert {tuple(o) for o in offsets} == {tuple(o) for o in every[distance <= reach * (1 - 1e-12)]} | (
        {tuple(o) for o in offsets} & {tuple(o) for o in every[np.abs(distance - reach) <= reach * 1e-12]})
    walked = np.sqrt(((offsets * np.array(spacing)) ** 2).sum(axis=1))
    assert np.all(np.diff(walked) >= -1e-12) and tuple(offsets[0]) == (0, 0, 0)


def test_a_walk_is_capped_whatever_the_spacing_and_stays_a_nearest_first_prefix():
    spacing = (10.0, 0.3, 0.3)
    assert len(lattice_offsets(spacing, 20.0)) > 30_000
    walked = walk_offsets(spacing, 2.0)
    assert len(walked) == MAX_WALK_OFFSETS
    every = lattice_offsets(spacing, 20.0)
    distance = np.sqrt(((every * np.array(spacing)) ** 2).sum(axis=1))
    last = np.sqrt(((walked[-1] * np.array(spacing)) ** 2).sum())
    nearer = {tuple(o) for o in every[distance < last - 1e-9]}
    assert nearer and nearer <= {tuple(o) for o in walked}  # nothing nearer than the last was left out


@pytest.mark.parametrize("near", [True, False])
def test_the_walk_is_skipped_when_its_sample_mostly_finds_nothing(near):
    """Far targets: the kernel writes nothing and says so (the envelopes answer); near ones: walked."""
    from metrics.near_distances import WALK_MIN_HIT_SHARE, WALK_SAMPLE_STRIDE, _walk

    dims = (20, 30, 30)
    query_flat = np.ravel_multi_index(np.nonzero(np.ones((3, 10, 10), bool)), dims) + 5 * 900 + 5 * 30 + 5
    target_flat = query_flat + 30 if near else np.array([np.ravel_multi_index((19, 29, 29), dims)])
    queries, targets = _as_segments(query_flat, dims), _as_segments(target_flat, dims)
    offsets = walk_offsets((1.0, 1.0, 1.0), 2.0)
    out = np.full(queries.size, -7.0)
    walked = _walk(targets.corners, targets.starts, targets.counts, 0, queries.corners, queries.starts, queries.counts,
                   queries.offsets, 30, 30, 3, 3, 3, 9, 16, 16, offsets, 1.0, 1.0, 1.0, WALK_SAMPLE_STRIDE,
                   WALK_MIN_HIT_SHARE, out)
    assert walked == near
    if near:  # rows 6-14 hold a target at the query itself, row 5 one row on
        expected, _ = cKDTree(np.array(np.unravel_index(target_flat, dims)).T).query(
            np.array(np.unravel_index(query_flat, dims)).T)
        np.testing.assert_array_equal(out, expected)
        assert set(np.unique(out)) == {0.0, 1.0}
    else:
        assert np.all(out == -7.0)


def test_nearest_distances_refuse_queries_outside_the_region():
    dims = (5, 5, 5)
    points = _as_segments(np.array([0, 124]), dims)
    with pytest.raises(ValueError, match="outside the region"):
        nearest_distances(points, points, np.empty(2), corner_dims=dims, spacing_mm=(1, 1, 1),
                          region=(np.array([0, 0, 0]), np.array([2, 4, 4])))


@pytest.mark.parametrize("n", [20, 40, EXACT_BELOW + 1, EXACT_BELOW + 5_000, 100_000])
def test_area_percentile_is_the_references_rule_even_on_exact_ties(n):
    """Equal areas: 19 of 20 surfels are exactly 95 % of the area, where only the reference's own
    summation decides; large surfaces take the histogram path."""
    rng = np.random.default_rng(n)
    distances = rng.integers(0, 7, n).astype(np.float64) * 0.5
    codes = np.ones(n, np.uint8) if n < 100 else rng.integers(1, 255, n).astype(np.uint8)
    areas = np.linspace(0.1, 2.0, 256)
    segments = Segments(np.arange(n), np.array([0]), np.array([n]), 0, np.array([0]))
    got = area_percentile(distances, codes, segments, areas, 0.95)
    order = np.lexsort((areas[codes], distances))
    assert got == sorted_area_percentile(distances[order], areas[codes][order], 95.0)
    total, within, weighted = area_sums(distances, codes, segments, areas, 1.0)
    assert total == pytest.approx(areas[codes].sum())
    assert within == pytest.approx(areas[codes][distances <= 1.0].sum())
    assert weighted == pytest.approx(distances @ areas[codes])


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), si_axis=st.integers(0, 2))
def test_nsd_alone_and_all_metrics_agree_with_the_reference_on_speckle(seed, si_axis):
    """Speckle of three organs (one limited to the ground truth's slab) over compact organs."""
    rng = np.random.default_rng(seed)
    shape, spacing = (14, 18, 22), tuple(float(s) for s in rng.uniform(0.5, 2.5, 3))
    gt = np.zeros(shape, np.uint8)
    gt[3:9, 4:12, 5:15] = 1
    gt[9:12, 2:7, 3:8] = 2
    gt[2:13, 13:16, 16:19] = 3
    noise = rng.random(shape)
    pred = np.select([noise < 0.05, noise < 0.1, noise < 0.15], [1, 2, 3], 0).astype(np.uint8)
    pred[gt == 1] = np.where(rng.random(int((gt == 1).sum())) < 0.8, 1, pred[gt == 1])
    organs = [OrganSpec(1, "a", 2.0), OrganSpec(2, "b", 1.0), OrganSpec(3, "c", 3.0, restrict_to_gt_extent=True)]
    full = score_case(gt, pred, spacing_mm=spacing, organs=organs, si_axis=si_axis)
    alone = score_case(gt, pred, spacing_mm=spacing, organs=organs, si_axis=si_axis, metrics=("dice", "nsd"))
    for organ in organs:
        g, p = gt == organ.label, pred == organ.label
        if organ.restrict_to_gt_extent:
            other = tuple(axis for axis in range(3) if axis != si_axis)
            present = np.flatnonzero(g.any(axis=other))
            keep = np.zeros(shape[si_axis], bool)
            keep[present[0]: present[-1] + 1] = True
            p = p & keep.reshape([-1 if axis == si_axis else 1 for axis in range(3)])
        expected = reference(g, p, spacing, organ.tolerance_mm)
        for metric, value in expected.items():
            assert full[organ.name][metric] == pytest.approx(value, abs=TOLERANCE), (organ.name, metric)
        assert alone[organ.name]["nsd"] == pytest.approx(expected["nsd"], abs=TOLERANCE)
        assert alone[organ.name]["dice"] == full[organ.name]["dice"]
