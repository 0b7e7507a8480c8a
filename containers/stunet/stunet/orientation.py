"""Axis permutation and flips between an image's array and the network's training orientation.

Why: TotalSegmentator (whose data STU-Net was pre-trained on) feeds its nnU-Net
images in the closest canonical RAS orientation, and the network tells left from
right by position. An input stored in another voxel order (e.g. LPS, the DICOM
default) is therefore turned into that order by permuting and flipping axes only
(no interpolation, so exactly invertible), predicted, and turned back: the output
keeps the input's grid.

Orientation facts: a SimpleITK direction matrix is row-major, its column ``j`` is
the LPS world direction of index axis ``j`` (x, y, z); arrays are ``(z, y, x)``,
so array axis ``a`` is index axis ``2 - a``. Canonical RAS (nibabel) means index
x points to patient Right (-L), y to Anterior (-P), z to Superior (+S).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations
from collections.abc import Sequence

import numpy as np

#: Sign of the LPS world axis each canonical index axis (x, y, z) must point along.
RAS_SIGNS_IN_LPS = (-1.0, -1.0, 1.0)


@dataclass(frozen=True, kw_only=True)
class AxisTransform:
    """``canonical = flip(array.transpose(order), flips)``; :meth:`invert` undoes it exactly."""

    order: tuple[int, int, int]
    flips: tuple[int, ...]

    def apply(self, array: np.ndarray) -> np.ndarray:
        """The array in canonical voxel order (a view where possible)."""
        out = array.transpose(self.order)
        return np.flip(out, self.flips) if self.flips else out

    def invert(self, array: np.ndarray) -> np.ndarray:
        """Back from canonical order to the original array's voxel order."""
        out = np.flip(array, self.flips) if self.flips else array
        return out.transpose(np.argsort(self.order))

    def spacing(self, spacing_zyx: Sequence[float]) -> tuple[float, float, float]:
        """The spacing of the canonical array, in its axis order."""
        return tuple(float(spacing_zyx[a]) for a in self.order)  # type: ignore[return-value]

    @property
    def is_identity(self) -> bool:
        return self.order == (0, 1, 2) and not self.flips


def to_ras(direction: Sequence[float]) -> AxisTransform:
    """The transform that brings an array with this direction matrix to canonical RAS order.

    For oblique directions the closest axis assignment is used (the permutation
    that maximises the summed absolute cosines), as nibabel's closest canonical does.
    """
    matrix = np.asarray(direction, dtype=float).reshape(3, 3)
    if not np.all(np.isfinite(matrix)) or abs(np.linalg.det(matrix)) < 1e-6:
        raise ValueError(f"direction matrix {tuple(direction)} is not a valid rotation")
    # world_of[j]: the LPS world axis index axis j is closest to.
    world_of = max(permutations(range(3)), key=lambda p: sum(abs(matrix[p[j], j]) for j in range(3)))
    index_of_world = {w: j for j, w in enumerate(world_of)}
    order, flips = [], []
    for b in range(3):  # new array axis b holds canonical index axis 2 - b (= world axis 2 - b)
        world = 2 - b
        j = index_of_world[world]
        order.append(2 - j)
        if np.sign(matrix[world, j]) != RAS_SIGNS_IN_LPS[world]:
            flips.append(b)
    return AxisTransform(order=tuple(order), flips=tuple(flips))  # type: ignore[arg-type]
