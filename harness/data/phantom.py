"""A deterministic abdominal phantom in patient (LPS, millimetre) coordinates.

The organs are deformed ellipsoids and tubes placed where they sit in a real abdomen (liver on the
patient's right, spleen and stomach on the left, kidneys posterior, adrenals on top of the kidneys,
esophagus running up into the chest). Shapes are defined in physical space and then sampled on an
image grid, so the same anatomy comes out right whatever the grid's orientation: a left-right flip
in array order never changes which kidney is the right one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: Marker for the aorta in the benchmark-id volume (not a benchmark organ; the native map may name it).
AORTA = 100


@dataclass(frozen=True)
class Ellipsoid:
    label: int
    center: tuple[float, float, float]
    radii: tuple[float, float, float]
    yaw_deg: float = 0.0


@dataclass(frozen=True)
class Tube:
    """A vertical tube between z_low and z_high, its axis drifting linearly from xy_low to xy_high."""

    label: int
    xy_low: tuple[float, float]
    xy_high: tuple[float, float]
    z_low: float
    z_high: float
    radius: float


# Benchmark ids: 1 spleen, 2 kidney_right, 3 kidney_left, 4 gallbladder, 5 liver, 6 stomach,
# 7 pancreas, 8 adrenal_gland_right, 9 adrenal_gland_left, 10 esophagus.
# LPS: +x = patient left, +y = posterior, +z = superior.
_BASE_SHAPES = (
    Tube(AORTA, (8, 45), (10, 40), -90, 140, 11),
    Ellipsoid(5, (-65, 0, 45), (75, 80, 60), 10),
    Ellipsoid(6, (55, -35, 55), (40, 32, 45), -25),
    Ellipsoid(1, (90, 35, 55), (28, 42, 48), 20),
    Ellipsoid(2, (-62, 62, -5), (26, 30, 50), -15),
    Ellipsoid(3, (62, 62, 5), (26, 30, 50), 15),
    Ellipsoid(7, (15, 15, 15), (62, 13, 14), -20),
    Ellipsoid(4, (-48, -50, 5), (15, 16, 30), 0),
    Ellipsoid(8, (-38, 50, 58), (9, 13, 19), 30),
    Ellipsoid(9, (40, 48, 52), (9, 13, 19), -30),
    Tube(10, (20, 30), (5, 45), 62, 160, 9),
)

BODY_RADII_MM = (165.0, 125.0)  # lateral, anterior-posterior half axes of the trunk


#: Largest random jitter of a shape, in mm (per-case shift + per-shape centre jitter / tube start).
_MAX_SHIFT_MM = 6.0 + 4.0
#: Largest growth of a shape beyond its nominal radii: size jitter (1.1) times the boundary wobble
#: (level <= 1.18, so radius x sqrt(1.18) < 1.09).
_MAX_GROWTH = 1.1 * 1.09


PointsInBox = Callable[[tuple[tuple[int, int], ...]], tuple[np.ndarray, np.ndarray, np.ndarray]]


def shape_bounds_mm(shape: Ellipsoid | Tube) -> tuple[np.ndarray, np.ndarray]:
    """A physical (x, y, z) box that holds the shape whatever the case's random jitter.

    Conservative on purpose: painting evaluates a shape only inside (the index box of) this box, so
    it must never cut a shape; being generous only costs a few voxels of work.
    """
    if isinstance(shape, Ellipsoid):
        reach = max(shape.radii) * _MAX_GROWTH + _MAX_SHIFT_MM
        center = np.asarray(shape.center, dtype=float)
        return center - reach, center + reach
    reach = shape.radius * 1.1 * 1.1 + _MAX_SHIFT_MM
    xy = np.array([shape.xy_low, shape.xy_high], dtype=float)
    lo = np.array([xy[:, 0].min() - reach, xy[:, 1].min() - reach, shape.z_low - _MAX_SHIFT_MM])
    hi = np.array([xy[:, 0].max() + reach, xy[:, 1].max() + reach, shape.z_high + _MAX_SHIFT_MM])
    return lo, hi


def paint_boxes(points_in: PointsInBox, shape: tuple[int, ...],
                index_box: Callable[[np.ndarray, np.ndarray], tuple[tuple[int, int], ...]],
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sample the phantom on a grid of `shape`, evaluating each organ only inside its own index box.

    Returns (labels in benchmark ids with AORTA as a marker, body mask). Later shapes overwrite
    earlier ones, so small organs stay whole where they touch big ones. Each case jitters position,
    size and a smooth surface deformation from `rng`.

    Why: a full-size CT has ~50 M voxels; evaluating eleven shapes on every voxel would take
    gigabytes and many seconds, while each organ covers a small part of the grid. `index_box(lo, hi)`
    turns a physical (x, y, z) box into a box of array indices (half-open, clipped, possibly empty);
    `points_in(box)` gives the physical (x, y, z) coordinates of that box (broadcastable arrays).
    The random draws happen in the same order whatever the boxes, so a case is the same phantom
    as one evaluated on every voxel.
    """
    labels = np.zeros(shape, dtype=np.uint8)
    body = np.zeros(shape, dtype=bool)
    slab = 16  # slices at a time: the body test needs full-size coordinate arrays
    for start in range(0, shape[0], slab):
        box = ((start, min(start + slab, shape[0])),) + tuple((0, n) for n in shape[1:])
        x, y, _ = points_in(box)
        body[start:box[0][1]] = _body(x, y)
    shift = rng.uniform(-6, 6, size=3)
    for organ in _BASE_SHAPES:
        box = index_box(*shape_bounds_mm(organ))
        x, y, z = points_in(box)
        if isinstance(organ, Ellipsoid):
            mask = _ellipsoid(x, y, z, organ, shift, rng)
        else:
            mask = _tube(x, y, z, organ, shift, rng)
        where = tuple(slice(lo, hi) for lo, hi in box)
        mask = np.broadcast_to(mask, labels[where].shape) & body[where]
        labels[where][mask] = organ.label
    return labels, body


def _body(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x / BODY_RADII_MM[0]) ** 2 + ((y - 10) / BODY_RADII_MM[1]) ** 2 <= 1.0


def _ellipsoid(x, y, z, shape: Ellipsoid, shift: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    cx, cy, cz = np.asarray(shape.center) + shift + rng.uniform(-3, 3, size=3)
    scale = rng.uniform(0.9, 1.1, size=3)
    rx, ry, rz = np.asarray(shape.radii) * scale
    yaw = np.deg2rad(shape.yaw_deg + rng.uniform(-5, 5))
    dx, dy, dz = x - cx, y - cy, z - cz
    u = np.cos(yaw) * dx + np.sin(yaw) * dy
    v = -np.sin(yaw) * dx + np.cos(yaw) * dy
    level = (u / rx) ** 2 + (v / ry) ** 2 + (dz / rz) ** 2
    return level <= 1.0 + _wobble(x, y, z, rng, amplitude=0.18, wavelength_mm=max(rx, ry, rz))


def _tube(x, y, z, shape: Tube, shift: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    z_low = shape.z_low + shift[2] + rng.uniform(-4, 4)
    z_high = shape.z_high + shift[2]
    t = np.clip((z - z_low) / (z_high - z_low), 0.0, 1.0)
    ax = shape.xy_low[0] + t * (shape.xy_high[0] - shape.xy_low[0]) + shift[0]
    ay = shape.xy_low[1] + t * (shape.xy_high[1] - shape.xy_low[1]) + shift[1]
    radius = shape.radius * rng.uniform(0.9, 1.1)
    inside = (x - ax) ** 2 + (y - ay) ** 2 <= (radius * (1 + _wobble(x, y, z, rng, 0.1, 40.0))) ** 2
    return inside & (z >= z_low) & (z <= z_high)


def _wobble(x, y, z, rng: np.random.Generator, amplitude: float, wavelength_mm: float) -> np.ndarray:
    """A smooth random surface deformation: two plane waves of about the organ's size."""
    total = np.zeros(np.broadcast_shapes(x.shape, y.shape, z.shape))
    for _ in range(2):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        k = 2 * np.pi / (wavelength_mm * rng.uniform(0.8, 1.6))
        phase = rng.uniform(0, 2 * np.pi)
        total += np.sin(k * (direction[0] * x + direction[1] * y + direction[2] * z) + phase)
    return amplitude * total / 2
