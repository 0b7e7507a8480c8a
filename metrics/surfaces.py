"""Surface elements (surfels) of binary masks: where they are and how large.

Why: NSD, HD95 and ASSD are all defined on the surfels of DeepMind's ``surface-distance``: each
corner of the voxel lattice whose 2x2x2 neighbourhood holds both foreground and background is a
surfel, located at that corner, with the area (2-D: contour length) that the marching-cubes
surface of its neighbourhood code has at the given spacing. This module finds them, crop by crop,
so that the cost scales with the organ and not with the volume.

Coordinates: a corner index ``c`` along an axis lies between voxels ``c - 1`` and ``c``, so a
volume of shape ``(n0, n1, n2)`` has corners ``0..n0`` x ``0..n1`` x ``0..n2``. Corners are kept as
integer indices in array axis order; distances multiply index differences by the spacing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from metrics.cropping import split_clusters
from metrics.lookup_tables import neighbour_code_to_measure


@dataclass(frozen=True)
class Surface:
    """The surfels of one mask.

    Attributes:
        corners: int64 array of shape (ndim, n): corner indices of the surfels, array axis order.
        areas_mm: float64 array of shape (n,): surfel area in mm^2 (3-D) or length in mm (2-D).
    """

    corners: np.ndarray
    areas_mm: np.ndarray

    @property
    def size(self) -> int:
        """Number of surfels."""
        return int(self.areas_mm.size)

    @property
    def total_area_mm(self) -> float:
        """Total surface area in mm^2 (3-D) or contour length in mm (2-D)."""
        return float(self.areas_mm.sum())

    @staticmethod
    def empty(ndim: int) -> "Surface":
        """A surface without surfels (the surface of an empty mask)."""
        return Surface(np.zeros((ndim, 0), dtype=np.int64), np.zeros(0, dtype=np.float64))


def neighbourhood_codes(mask: np.ndarray) -> np.ndarray:
    """Neighbourhood code of every corner around a mask padded with background.

    Args:
        mask: bool array of shape ``(n0, n1[, n2])``.

    Returns:
        uint8 array of shape ``(n0 + 1, n1 + 1[, n2 + 1])``; entry ``k`` is the code of the corner
        between voxels ``k - 1`` and ``k`` along each axis (bits as in
        :mod:`metrics.lookup_tables`). Computed with one pairing pass per axis: bits of the lower
        voxel along an axis are shifted above those of the higher one.
    """
    ndim = mask.ndim
    codes = np.zeros(tuple(n + 2 for n in mask.shape), dtype=np.uint8)
    codes[(slice(1, -1),) * ndim] = mask
    for axis in reversed(range(ndim)):
        lower = [slice(None)] * ndim
        upper = [slice(None)] * ndim
        lower[axis] = slice(None, -1)
        upper[axis] = slice(1, None)
        paired = np.left_shift(codes[tuple(lower)], 1 << (ndim - 1 - axis))
        np.bitwise_or(paired, codes[tuple(upper)], out=paired)
        codes = paired
    return codes


def _piece_surfels(
    piece: np.ndarray, origin: tuple[int, ...], measure: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    return _code_surfels(neighbourhood_codes(piece), origin, measure)


def _code_surfels(codes: np.ndarray, origin: tuple[int, ...], measure: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # surfels: codes other than 0 (all background) and 255/15 (all foreground)
    full = np.uint8(measure.size - 1)
    flat_codes = codes.reshape(-1)
    border = np.flatnonzero((flat_codes - np.uint8(1)) < full - np.uint8(1))
    corners = np.array(np.unravel_index(border, codes.shape), dtype=np.int64)
    corners += np.asarray(origin, dtype=np.int64)[:, None]
    return corners, measure[flat_codes[border]]


def surface_of_pieces(
    pieces: Iterable[tuple[tuple[int, ...], np.ndarray]], *, spacing_mm: Sequence[float], ndim: int
) -> Surface:
    """Surfels of a mask given as pieces whose neighbourhoods do not overlap.

    Args:
        pieces: ``(origin, bool array)`` pairs as returned by
            :func:`metrics.cropping.split_clusters`: ``origin`` is the volume index of the
            piece's first voxel; no foreground voxel of the mask lies outside the pieces or
            within one voxel of a piece without belonging to it.
        spacing_mm: voxel size in mm, array axis order.
        ndim: 2 or 3.

    Returns:
        The Surface, corners in volume corner indices.
    """
    measure = neighbour_code_to_measure(spacing_mm)
    corner_parts, area_parts = [], []
    for origin, piece in pieces:
        corners, areas = _piece_surfels(piece, origin, measure)
        corner_parts.append(corners)
        area_parts.append(areas)
    if not corner_parts:
        return Surface.empty(ndim)
    if len(corner_parts) == 1:
        return Surface(corner_parts[0], area_parts[0])
    return Surface(np.concatenate(corner_parts, axis=1), np.concatenate(area_parts))


def mask_surface(
    mask: np.ndarray, *, origin: tuple[int, ...], spacing_mm: Sequence[float], count: int | None = None
) -> Surface:
    """Surfels of a cropped mask whose foreground lies entirely inside the crop.

    Args:
        mask: bool array (2-D or 3-D); voxels outside it count as background.
        origin: volume index of ``mask[0, 0, ...]`` (corners are reported in volume indices).
        spacing_mm: voxel size in mm, array axis order.
        count: number of True voxels of ``mask`` if already known (saves a pass).

    Returns:
        The Surface (empty if the mask is).
    """
    pieces = split_clusters(mask, origin=origin, count=count)
    return surface_of_pieces(pieces, spacing_mm=spacing_mm, ndim=mask.ndim)


def mask_surface_near(
    mask: np.ndarray,
    *,
    origin: tuple[int, ...],
    spacing_mm: Sequence[float],
    lo: np.ndarray,
    hi: np.ndarray,
    count: int | None = None,
) -> tuple[Surface, float]:
    """The surfels of a cropped mask inside a corner box, and the total area of all its surfels.

    Why: NSD needs each surfel only near the other surface (elsewhere a surfel is "not within" and
    only its area counts). A speckled prediction has tens of millions of surfels; listing them all
    costs gigabytes, while the total area is one histogram of the neighbourhood codes.

    Args:
        mask, origin, spacing_mm, count: as for :func:`mask_surface`.
        lo, hi: int arrays (ndim,), the corner box in volume corner indices, both ends included.

    Returns:
        ``(surface, total_area)``: the Surface of the surfels whose corner lies in the box, and the
        area (mm^2; 2-D: length in mm) of all surfels of the mask, inside the box or not.
    """
    measure = neighbour_code_to_measure(spacing_mm)
    total = 0.0
    corner_parts, area_parts = [], []
    for start, piece in split_clusters(mask, origin=origin, count=count):
        codes = neighbourhood_codes(piece)
        flat = codes.reshape(-1)
        # histogram of the codes (code 0 has no area; leaving it out spares bincount most of its work)
        total += float(np.bincount(flat[flat != 0], minlength=measure.size) @ measure)
        first = np.maximum(np.asarray(lo) - np.asarray(start), 0)
        last = np.minimum(np.asarray(hi) - np.asarray(start) + 1, codes.shape)
        if np.any(first >= last):
            continue
        window = codes[tuple(slice(int(a), int(b)) for a, b in zip(first, last))]
        corners, areas = _code_surfels(window, tuple(int(s + f) for s, f in zip(start, first)), measure)
        corner_parts.append(corners)
        area_parts.append(areas)
    if not corner_parts:
        return Surface.empty(mask.ndim), total
    return Surface(np.concatenate(corner_parts, axis=1), np.concatenate(area_parts)), total
