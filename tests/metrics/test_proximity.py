"""Distances between surfels: the exact formula, the tolerance stencil and both NSD paths."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from metrics import proximity
from metrics.proximity import exact_distance_mm, nearest_distances, row_stencil, within_tolerance
from metrics.surfaces import Surface

spacings = st.lists(st.floats(0.2, 4.0, allow_nan=False), min_size=3, max_size=3)


def _random_surface(rng: np.random.Generator, ndim: int, n: int, side: int, offset: int = 0) -> Surface:
    corners = rng.integers(0, side, size=(ndim, n)) + offset
    corners = np.unique(corners, axis=1)
    return Surface(corners.astype(np.int64), rng.uniform(0.1, 1.0, corners.shape[1]))


def _brute_force(query: Surface, target: Surface, spacing) -> np.ndarray:
    offsets = query.corners[:, :, None] - target.corners[:, None, :]
    return exact_distance_mm(offsets, spacing).min(axis=1)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), spacing=spacings, ndim=st.sampled_from([2, 3]))
def test_exact_distance_is_bit_identical_to_scipy_edt(seed, spacing, ndim):
    rng = np.random.default_rng(seed)
    spacing = spacing[:ndim]
    features = rng.random((7,) * ndim) < 0.05
    features.flat[0] = True
    edt, nearest = ndimage.distance_transform_edt(~features, sampling=spacing, return_indices=True)
    offsets = nearest - np.indices(features.shape)
    assert np.array_equal(exact_distance_mm(offsets, spacing), edt)


@settings(max_examples=40, deadline=None)
@given(spacing=spacings, tolerance=st.floats(0.1, 8.0), ndim=st.sampled_from([2, 3]))
def test_row_stencil_is_exactly_the_tolerance_ellipsoid(spacing, tolerance, ndim):
    spacing = spacing[:ndim]
    offsets, half_widths = row_stencil(spacing_mm=spacing, tolerance_mm=tolerance)
    stencil = {tuple(row) + (t,) for row, w in zip(offsets.tolist(), half_widths.tolist()) for t in range(-w, w + 1)}
    reach = [int(tolerance / s) + 2 for s in spacing]
    grid = np.stack(np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij")).reshape(ndim, -1)
    inside = exact_distance_mm(grid, spacing) <= tolerance
    assert stencil == {tuple(p) for p in grid[:, inside].T.tolist()}
    distances = exact_distance_mm(np.vstack([offsets.T, np.zeros(len(offsets), np.int64)]), spacing)
    assert np.all(np.diff(distances) >= 0)  # nearest rows first


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), spacing=spacings, tolerance=st.floats(0.2, 6.0), ndim=st.sampled_from([2, 3]))
def test_nearest_and_within_equal_brute_force(seed, spacing, tolerance, ndim):
    rng = np.random.default_rng(seed)
    spacing = spacing[:ndim]
    gt = _random_surface(rng, ndim, int(rng.integers(1, 60)), 12)
    pred = _random_surface(rng, ndim, int(rng.integers(1, 60)), 16, offset=int(rng.integers(-4, 4)))
    d_gt, d_pred = _brute_force(gt, pred, spacing), _brute_force(pred, gt, spacing)
    # equal up to the last bit of equidistant candidates summed in another order
    np.testing.assert_allclose(nearest_distances(gt, pred, spacing_mm=spacing), d_gt, rtol=1e-14)
    np.testing.assert_allclose(nearest_distances(pred, gt, spacing_mm=spacing), d_pred, rtol=1e-14)
    dense = within_tolerance(gt, pred, spacing_mm=spacing, tolerance_mm=tolerance)
    with pytest.MonkeyPatch.context() as patch:  # force the KD-tree path
        patch.setattr(proximity, "DENSE_ALWAYS_CORNERS", 0)
        patch.setattr(proximity, "DENSE_CORNERS_PER_SURFEL", 0)
        tree = within_tolerance(gt, pred, spacing_mm=spacing, tolerance_mm=tolerance)
    for got in (dense, tree):
        assert np.array_equal(got[0], d_gt <= tolerance)
        assert np.array_equal(got[1], d_pred <= tolerance)


@pytest.mark.parametrize("force_tree", [False, True])
def test_distance_equal_to_the_tolerance_counts_as_within(force_tree, monkeypatch):
    if force_tree:
        monkeypatch.setattr(proximity, "DENSE_ALWAYS_CORNERS", 0)
        monkeypatch.setattr(proximity, "DENSE_CORNERS_PER_SURFEL", 0)
    spacing = (2.5, 0.8, 0.8)
    gt = Surface(np.array([[0], [0], [0]]), np.ones(1))
    pred = Surface(np.array([[2, 0], [0, 0], [0, 7]]), np.ones(2))  # 5.0 mm and 5.6 mm away
    gt_within, pred_within = within_tolerance(gt, pred, spacing_mm=spacing, tolerance_mm=5.0)
    assert gt_within.tolist() == [True]
    assert pred_within.tolist() == [True, False]
    # 3-4-5 triangle at 0.6 mm spacing: exactly 3.0 mm
    gt_within, _ = within_tolerance(
        Surface(np.array([[0], [0]]), np.ones(1)), Surface(np.array([[3], [4]]), np.ones(1)),
        spacing_mm=(0.6, 0.6), tolerance_mm=3.0,
    )
    assert gt_within.tolist() == [exact_distance_mm(np.array([[3], [4]]), (0.6, 0.6))[0] <= 3.0]


def test_far_predicted_surfels_are_not_within_and_cost_nothing():
    gt = Surface(np.array([[10, 10], [10, 11], [10, 10]]), np.ones(2))
    pred = Surface(np.array([[10, 10_000], [12, 10_000], [10, 10_000]]), np.ones(2))
    gt_within, pred_within = within_tolerance(gt, pred, spacing_mm=(1, 1, 1), tolerance_mm=2.0)
    assert gt_within.tolist() == [True, True]
    assert pred_within.tolist() == [True, False]


def test_empty_surfaces():
    empty, one = Surface.empty(3), Surface(np.zeros((3, 1), np.int64), np.ones(1))
    assert nearest_distances(empty, one, spacing_mm=(1, 1, 1)).shape == (0,)
    assert nearest_distances(one, empty, spacing_mm=(1, 1, 1)).tolist() == [np.inf]
    gt_within, pred_within = within_tolerance(one, empty, spacing_mm=(1, 1, 1), tolerance_mm=1.0)
    assert gt_within.tolist() == [False] and pred_within.shape == (0,)


# --- the three ways of nearest_distances (KD-tree, feature transform, local tree) agree exactly


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), spacing=spacings, ndim=st.sampled_from([2, 3]),
       reach=st.floats(0.3, 20.0))
def test_every_way_of_nearest_distances_equals_brute_force(seed, spacing, ndim, reach):
    """Scattered targets around a compact query and the reverse; tiny reaches force several local rounds.

    Equal to the last bits but for ties: two corners at the same distance in exact arithmetic can differ
    by one rounding step, and any of them may be picked."""
    rng = np.random.default_rng(seed)
    spacing = np.asarray(spacing[:ndim])
    compact = _random_surface(rng, ndim, int(rng.integers(1, 40)), 5, offset=int(rng.integers(0, 20)))
    scattered = _random_surface(rng, ndim, int(rng.integers(1, 400)), 30)

    def assert_same(actual, expected):
        np.testing.assert_allclose(actual, expected, rtol=1e-13, atol=0)

    for query, target in ((compact, scattered), (scattered, compact), (scattered, scattered)):
        expected = _brute_force(query, target, spacing)
        lo = np.minimum(query.corners.min(axis=1), target.corners.min(axis=1))
        hi = np.maximum(query.corners.max(axis=1), target.corners.max(axis=1))
        assert_same(proximity._nearest_by_tree(query, target, spacing), expected)
        assert_same(proximity._nearest_by_feature_transform(query, target, spacing, lo=lo, hi=hi), expected)
        assert_same(proximity._nearest_by_local_tree(query, target, spacing, reach_mm=reach), expected)
        assert_same(nearest_distances(query, target, spacing_mm=spacing), expected)


def _spy(monkeypatch, name: str) -> list:
    calls: list = []
    original = getattr(proximity, name)

    def wrapped(*args, **kwargs):
        calls.append(args[0].size)
        return original(*args, **kwargs)

    monkeypatch.setattr(proximity, name, wrapped)
    return calls


def test_cost_model_picks_the_feature_transform_for_speckle_and_the_tree_when_compact(monkeypatch):
    """Speckle over the volume vs a compact organ: the dense transform one way, the local tree the other;
    a compact surface far from another (a huge box, few queries): the KD-tree."""
    rng = np.random.default_rng(1)
    grid = np.indices((40, 80, 80)).reshape(3, -1)
    corners = grid[:, rng.random(grid.shape[1]) < 0.2].astype(np.int64)
    speckle = Surface(corners, np.ones(corners.shape[1]))
    organ = _random_surface(rng, 3, 3000, 15, offset=10)
    spacing = (2.5, 0.8, 0.8)
    transform, local, tree = (_spy(monkeypatch, n) for n in
                              ("_nearest_by_feature_transform", "_nearest_by_local_tree", "_nearest_by_tree"))
    nearest_distances(speckle, organ, spacing_mm=spacing)
    nearest_distances(organ, speckle, spacing_mm=spacing)
    nearest_distances(organ, _random_surface(rng, 3, 3000, 15, offset=500), spacing_mm=spacing)
    assert transform == [speckle.size] and local == [organ.size] and tree == [organ.size]


def test_feature_transform_is_never_used_beyond_its_memory_cap(monkeypatch):
    rng = np.random.default_rng(2)
    grid = np.indices((20, 40, 40)).reshape(3, -1)
    corners = grid[:, rng.random(grid.shape[1]) < 0.2].astype(np.int64)
    speckle = Surface(corners, np.ones(corners.shape[1]))
    organ = _random_surface(rng, 3, 2000, 10, offset=5)
    transform, tree = _spy(monkeypatch, "_nearest_by_feature_transform"), _spy(monkeypatch, "_nearest_by_tree")
    expected = nearest_distances(speckle, organ, spacing_mm=(2.5, 0.8, 0.8))
    monkeypatch.setattr(proximity, "FEATURE_TRANSFORM_MAX_CORNERS", 1000)
    capped = nearest_distances(speckle, organ, spacing_mm=(2.5, 0.8, 0.8))
    assert transform == [speckle.size] and tree == [speckle.size]
    np.testing.assert_allclose(capped, expected, rtol=1e-13, atol=0)
