"""Surfel extraction: neighbourhood codes, corner positions and areas."""

from __future__ import annotations

import numpy as np
import pytest
import surface_distance
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage
from surface_distance import lookup_tables as reference_tables

from metrics import cropping
from metrics.surfaces import Surface, mask_surface, neighbourhood_codes, surface_of_pieces
from tests.metrics.helpers import MASK_KINDS, random_mask

masks = st.builds(
    lambda ndim, sides, seed, kind: random_mask(np.random.default_rng(seed), tuple(sides[:ndim]), kind),
    st.sampled_from([2, 3]),
    st.lists(st.integers(1, 10), min_size=3, max_size=3),
    st.integers(0, 2**32 - 1),
    st.sampled_from(MASK_KINDS),
)


@settings(max_examples=50, deadline=None)
@given(masks)
def test_codes_equal_correlation_with_the_reference_kernel(mask):
    kernel = (
        reference_tables.ENCODE_NEIGHBOURHOOD_3D_KERNEL if mask.ndim == 3 else reference_tables.ENCODE_NEIGHBOURHOOD_2D_KERNEL
    )
    padded = np.pad(mask.astype(np.int64), [(0, 1)] * mask.ndim)  # as surface-distance crops
    expected = ndimage.correlate(padded, kernel, mode="constant", cval=0)
    assert np.array_equal(neighbourhood_codes(mask), expected)


def _as_set(surface: Surface) -> dict:
    return {tuple(c): a for c, a in zip(surface.corners.T.tolist(), surface.areas_mm.tolist())}


@settings(max_examples=50, deadline=None)
@given(masks, st.lists(st.floats(0.3, 4.0), min_size=3, max_size=3))
def test_surfel_areas_equal_the_reference(mask, spacing):
    spacing = tuple(spacing[: mask.ndim])
    ours = mask_surface(mask, origin=(0,) * mask.ndim, spacing_mm=spacing)
    theirs = surface_distance.compute_surface_distances(mask, mask, spacing)
    np.testing.assert_allclose(np.sort(ours.areas_mm), np.sort(theirs["surfel_areas_gt"]), rtol=1e-12)
    assert ours.total_area_mm == pytest.approx(theirs["surfel_areas_gt"].sum(), rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(masks)
def test_split_pieces_give_the_same_surfels_as_the_whole_box(mask):
    spacing = (0.7, 1.3, 2.9)[: mask.ndim]
    whole = surface_of_pieces([((3,) * mask.ndim, mask)], spacing_mm=spacing, ndim=mask.ndim)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cropping, "SPLIT_BELOW_FILL", 1.1)  # always split
        split = mask_surface(mask, origin=(3,) * mask.ndim, spacing_mm=spacing)
    assert _as_set(split) == _as_set(whole)


def test_single_voxel_worked_by_hand():
    s0, s1, s2 = 2.5, 0.8, 0.6
    mask = np.zeros((3, 3, 3), dtype=bool)
    mask[1, 2, 0] = True  # touches two array borders
    surface = mask_surface(mask, origin=(0, 0, 0), spacing_mm=(s0, s1, s2))
    corner_area = np.sqrt((s1 * s2) ** 2 + (s0 * s2) ** 2 + (s0 * s1) ** 2) / 8
    assert sorted(map(tuple, surface.corners.T.tolist())) == [
        (z, y, x) for z in (1, 2) for y in (2, 3) for x in (0, 1)
    ]
    np.testing.assert_allclose(surface.areas_mm, corner_area, rtol=1e-14)


def test_single_pixel_2d_worked_by_hand():
    s0, s1 = 3.0, 4.0
    surface = mask_surface(np.ones((1, 1), dtype=bool), origin=(5, 7), spacing_mm=(s0, s1))
    assert sorted(map(tuple, surface.corners.T.tolist())) == [(5, 7), (5, 8), (6, 7), (6, 8)]
    np.testing.assert_allclose(surface.areas_mm, 0.5 * 5.0)  # half the pixel diagonal each


def test_empty_mask_has_no_surfels():
    surface = mask_surface(np.zeros((4, 4, 4), dtype=bool), origin=(0, 0, 0), spacing_mm=(1, 1, 1))
    assert surface.size == 0 and surface.corners.shape == (3, 0) and surface.total_area_mm == 0.0


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), ndim=st.sampled_from([2, 3]), side=st.integers(1, 14))
def test_surface_near_is_the_surface_inside_the_box_and_the_whole_area(seed, ndim, side):
    from metrics.surfaces import mask_surface, mask_surface_near

    rng = np.random.default_rng(seed)
    mask = rng.random((side,) * ndim) < rng.uniform(0.01, 0.6)
    origin = tuple(int(v) for v in rng.integers(0, 5, ndim))
    spacing = tuple(rng.uniform(0.3, 3.0, ndim))
    lo = rng.integers(-3, side + 6, ndim)
    hi = lo + rng.integers(-1, side + 3, ndim)
    whole = mask_surface(mask, origin=origin, spacing_mm=spacing)
    near, total = mask_surface_near(mask, origin=origin, spacing_mm=spacing, lo=lo, hi=hi)
    inside = np.all((whole.corners >= lo[:, None]) & (whole.corners <= hi[:, None]), axis=0)
    expected = sorted(zip(map(tuple, whole.corners[:, inside].T.tolist()), whole.areas_mm[inside].tolist()))
    assert sorted(zip(map(tuple, near.corners.T.tolist()), near.areas_mm.tolist())) == expected
    assert total == pytest.approx(whole.total_area_mm, rel=1e-12, abs=1e-12)
