"""Properties of the marching-cubes derivation behind the lookup tables."""

from __future__ import annotations

import math

import pytest

from metrics import table_generation


@pytest.fixture(scope="module")
def table():
    return table_generation.generate_surfel_area_vectors_3d()


def _unit_area(vectors) -> float:
    return sum(math.hypot(*v) for v in vectors) / 8


def test_shape_of_the_table(table):
    assert len(table) == 256
    assert table[0] == () and table[255] == ()
    assert all(1 <= len(entry) <= 4 for entry in table[1:255])
    assert all(isinstance(c, int) for entry in table for v in entry for c in v)


def test_complement_has_the_same_surface_up_to_orientation(table):
    def magnitudes(entry):
        return sorted(tuple(abs(c) for c in v) for v in entry)

    assert all(magnitudes(table[code]) == magnitudes(table[255 - code]) for code in range(256))


def test_unit_spacing_areas_worked_by_hand(table):
    assert _unit_area(table[1]) == pytest.approx(math.sqrt(3) / 8)  # corner triangle
    assert _unit_area(table[3]) == pytest.approx(math.sqrt(2) / 2)  # edge: 1 x sqrt(2)/2 rectangle
    assert _unit_area(table[0b00001111]) == pytest.approx(1.0)  # half the cell: a unit square
    assert _unit_area(table[0b10000001]) == pytest.approx(2 * math.sqrt(3) / 8)  # opposite corners


def test_2d_segments():
    segments = table_generation.generate_contour_segment_vectors_2d()
    assert len(segments) == 16 and segments[0] == segments[15] == ()
    assert segments[0b0011] == ((0, 2),)  # lower row occupied: a horizontal segment, 1 pixel long
    assert len(segments[0b0110]) == len(segments[0b1001]) == 2  # ambiguous: two corner cuts
