"""Reorientation to canonical RAS agrees with SimpleITK's DICOMOrient and inverts exactly."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import SimpleITK as sitk

from stunet.orientation import to_ras


def _signed_permutations() -> list[tuple[float, ...]]:
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            matrix = np.zeros((3, 3))
            for j, (w, s) in enumerate(zip(perm, signs)):
                matrix[w, j] = s
            out.append(tuple(matrix.ravel()))
    return out


@pytest.mark.parametrize("direction", _signed_permutations())
def test_matches_dicomorient_ras_and_round_trips(direction: tuple[float, ...]) -> None:
    array = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.5, 1.0, 2.0))
    image.SetDirection(direction)
    reference = sitk.DICOMOrient(image, "RAS")
    transform = to_ras(direction)
    canonical = transform.apply(array)
    assert np.array_equal(canonical, sitk.GetArrayFromImage(reference))
    assert transform.spacing((2.0, 1.0, 0.5)) == tuple(reversed(reference.GetSpacing()))
    assert np.array_equal(transform.invert(canonical), array)


def test_identity_direction_of_lps_images_flips_x_and_y() -> None:
    transform = to_ras((1, 0, 0, 0, 1, 0, 0, 0, 1))
    assert transform.order == (0, 1, 2) and transform.flips == (1, 2)
    assert to_ras((-1, 0, 0, 0, -1, 0, 0, 0, 1)).is_identity


def test_oblique_direction_uses_the_closest_axes() -> None:
    c, s = np.cos(0.3), np.sin(0.3)
    oblique = (-c, -s, 0, s, -c, 0, 0, 0, 1)
    assert to_ras(oblique).is_identity
    with pytest.raises(ValueError, match="not a valid rotation"):
        to_ras((1, 0, 0, 1, 0, 0, 0, 0, 1))
