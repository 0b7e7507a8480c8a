"""The neighbourhood-code tables: regenerated literals, and areas equal to surface-distance's."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from surface_distance import lookup_tables as reference_tables

from metrics import lookup_tables, table_generation

spacings_3d = st.tuples(*[st.floats(0.05, 20.0, allow_nan=False)] * 3)
spacings_2d = st.tuples(*[st.floats(0.05, 20.0, allow_nan=False)] * 2)


def test_literals_are_exactly_what_the_generator_produces():
    assert lookup_tables.SURFEL_AREA_VECTORS_X8_3D == table_generation.generate_surfel_area_vectors_3d()
    assert lookup_tables.CONTOUR_SEGMENT_VECTORS_X2_2D == table_generation.generate_contour_segment_vectors_2d()


def test_format_literals_round_trips():
    namespace: dict = {}
    exec(table_generation.format_literals(), namespace)  # noqa: S102 - our own generated source
    assert namespace["SURFEL_AREA_VECTORS_X8_3D"] == lookup_tables.SURFEL_AREA_VECTORS_X8_3D
    assert namespace["CONTOUR_SEGMENT_VECTORS_X2_2D"] == lookup_tables.CONTOUR_SEGMENT_VECTORS_X2_2D


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.5, 0.8, 0.8), (0.8, 0.8, 2.5), (0.3, 5.0, 1.7)])
def test_surface_areas_equal_reference_at_typical_spacings(spacing):
    ours = lookup_tables.neighbour_code_to_surface_area_mm2(spacing)
    theirs = reference_tables.create_table_neighbour_code_to_surface_area(spacing)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=0)


@settings(max_examples=60, deadline=None)
@given(spacings_3d)
def test_surface_areas_equal_reference_at_random_spacings(spacing):
    ours = lookup_tables.neighbour_code_to_surface_area_mm2(spacing)
    theirs = reference_tables.create_table_neighbour_code_to_surface_area(spacing)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-300)


@settings(max_examples=40, deadline=None)
@given(spacings_2d)
def test_contour_lengths_equal_reference_at_random_spacings(spacing):
    ours = lookup_tables.neighbour_code_to_contour_length_mm(spacing)
    theirs = reference_tables.create_table_neighbour_code_to_contour_length(spacing)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=0)


def test_single_corner_area_worked_by_hand():
    # code 1: one occupied voxel cuts a corner triangle with vertices at the three edge
    # midpoints, i.e. (s0/2, 0, 0), (0, s1/2, 0), (0, 0, s2/2) relative to the corner: its area
    # is |(s1*s2, s0*s2, s0*s1)| / 8.
    s0, s1, s2 = 2.0, 3.0, 5.0
    expected = np.sqrt((s1 * s2) ** 2 + (s0 * s2) ** 2 + (s0 * s1) ** 2) / 8
    table = lookup_tables.neighbour_code_to_surface_area_mm2((s0, s1, s2))
    assert table[1] == pytest.approx(expected, rel=1e-15)
    assert table[0] == 0.0 and table[255] == 0.0


def test_two_voxels_along_last_axis_make_a_rectangle():
    # code 3 = voxels (1,1,0) and (1,1,1): a rectangle of length s2 and width |(s0/2, s1/2)|,
    # lying across axes 0 and 1.
    s0, s1, s2 = 2.0, 3.0, 5.0
    table = lookup_tables.neighbour_code_to_surface_area_mm2((s0, s1, s2))
    assert table[3] == pytest.approx(s2 * np.hypot(s0 / 2, s1 / 2), rel=1e-15)


def test_complementary_codes_have_equal_areas():
    table = lookup_tables.neighbour_code_to_surface_area_mm2((0.7, 1.9, 3.1))
    np.testing.assert_allclose(table, table[::-1], rtol=1e-14)


def test_2d_lengths_worked_by_hand():
    s0, s1 = 2.0, 0.5
    table = lookup_tables.neighbour_code_to_contour_length_mm((s0, s1))
    diagonal = 0.5 * np.hypot(s0, s1)
    assert table[0b0001] == pytest.approx(diagonal)
    assert table[0b0011] == pytest.approx(s1)  # lower row occupied: a horizontal segment
    assert table[0b0101] == pytest.approx(s0)  # right column occupied: a vertical segment
    assert table[0b0110] == pytest.approx(2 * diagonal)  # ambiguous: two corner cuts
    assert table[0b1111] == 0.0


def test_measure_dispatches_on_dimension_and_rejects_others():
    assert lookup_tables.neighbour_code_to_measure((1.0, 1.0)).shape == (16,)
    assert lookup_tables.neighbour_code_to_measure((1.0, 1.0, 1.0)).shape == (256,)
    with pytest.raises(ValueError, match="2 or 3"):
        lookup_tables.neighbour_code_to_measure((1.0,))
