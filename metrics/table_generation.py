"""Derivation of the neighbourhood-code lookup tables in :mod:`metrics.lookup_tables`.

Not used at scoring time: ``lookup_tables.py`` holds the generated literals so that importing
:mod:`metrics` stays cheap, and ``tests/metrics/test_lookup_tables.py`` regenerates the tables
with this module and checks that (a) the literals are exactly what this module produces and
(b) the resulting areas equal those of DeepMind's ``surface-distance`` package for random
anisotropic spacings. ``python -m metrics.table_generation`` prints the literals.

Geometry (3-D). A *corner* of the voxel lattice sees the 2x2x2 voxels around it; their
occupancy is an 8-bit *neighbourhood code*. Local voxel offsets ``(a, b, c)`` (0 = the voxel at
the lower index, 1 = the higher one, along array axes 0, 1, 2) map to bit ``7 - (4a + 2b + c)``,
so the voxel at the highest indices is bit 0 (value 1) and the one at the lowest is bit 7 (128),
the same encoding as surface-distance's ``ENCODE_NEIGHBOURHOOD_3D_KERNEL``.

For every code the surface inside the 2x2x2 cell of voxel centres is built like marching cubes
with vertices at edge midpoints:

1. on each of the 6 faces, every edge whose two end corners differ is crossed; 2 crossings give
   one segment; 4 crossings (an ambiguous face, diagonal corners alike) give two segments that
   cut off the two corners of the *minority* class of the whole cell (occupied corners when at
   most 4 are occupied, empty corners otherwise), so a code and its complement share a surface;
2. the segments chain into closed loops (every crossed edge belongs to exactly two faces);
3. each loop is triangulated by the triangulation of largest total area at unit spacing (the
   first in enumeration order on ties: tied triangulations have equal areas at every spacing).
   Planar loops have the same area whatever the triangulation; for the non-planar pentagons and
   hexagons this rule is what reproduces the published table.

Each triangle is stored as its *area vector* (half the cross product of two edges, so its norm is
the area and its direction the normal) multiplied by 8, which makes every component an integer.
Under a spacing ``(s0, s1, s2)`` an area vector ``n`` becomes ``(n0*s1*s2, n1*s0*s2, n2*s0*s1)``
and the surfel area of a code is the sum of the norms of its triangles' transformed vectors.

Geometry (2-D): marching squares on the 2x2 pixels around a corner, bit ``3 - (2a + b)``
(surface-distance's ``ENCODE_NEIGHBOURHOOD_2D_KERNEL``); each segment joins two edge midpoints and
is stored as its displacement vector multiplied by 2. The two ambiguous codes give two segments
whichever way they are paired.
"""

from __future__ import annotations

import itertools
import math

Vertex = tuple[int, ...]  # an edge midpoint, coordinates multiplied by 2
Triangle = tuple[Vertex, Vertex, Vertex]

_CORNERS_3D: tuple[tuple[int, int, int], ...] = tuple(itertools.product((0, 1), repeat=3))


def _occupied(code: int, corner: tuple[int, ...]) -> bool:
    """Whether ``corner`` (local offsets, 0 or 1 per axis) is set in ``code``."""
    ndim = len(corner)
    bit = (2**ndim - 1) - sum(offset << (ndim - 1 - axis) for axis, offset in enumerate(corner))
    return bool((code >> bit) & 1)


def _midpoint_x2(p: tuple[int, ...], q: tuple[int, ...]) -> Vertex:
    return tuple(a + b for a, b in zip(p, q))


def _faces_3d() -> list[list[tuple[int, int, int]]]:
    """The 6 faces of the unit cube, each as its 4 corners in cyclic order."""
    faces = []
    for axis in range(3):
        others = [k for k in range(3) if k != axis]
        for value in (0, 1):
            face = []
            for u, w in ((0, 0), (1, 0), (1, 1), (0, 1)):
                corner = [0, 0, 0]
                corner[axis], corner[others[0]], corner[others[1]] = value, u, w
                face.append(tuple(corner))
            faces.append(face)
    return faces


def _face_segments(code: int) -> list[tuple[Vertex, Vertex]]:
    separate_occupied = bin(code).count("1") <= 4
    segments: list[tuple[Vertex, Vertex]] = []
    for face in _faces_3d():
        inside = [_occupied(code, c) for c in face]
        # crossing i lies on the edge from face[i] to face[i + 1]
        crossed = [i for i in range(4) if inside[i] != inside[(i + 1) % 4]]
        mids = {i: _midpoint_x2(face[i], face[(i + 1) % 4]) for i in crossed}
        if len(crossed) == 2:
            segments.append((mids[crossed[0]], mids[crossed[1]]))
        elif len(crossed) == 4:
            # corners 1 and 3 form one diagonal class, corners 0 and 2 the other
            if inside[1] == separate_occupied:  # cut off corners 1 and 3
                segments += [(mids[0], mids[1]), (mids[2], mids[3])]
            else:  # cut off corners 0 and 2
                segments += [(mids[3], mids[0]), (mids[1], mids[2])]
    return segments


def _loops(segments: list[tuple[Vertex, Vertex]]) -> list[list[Vertex]]:
    neighbours: dict[Vertex, list[Vertex]] = {}
    for a, b in segments:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    seen: set[Vertex] = set()
    loops = []
    for start in sorted(neighbours):
        if start in seen:
            continue
        loop, previous, current = [start], None, start
        seen.add(start)
        while True:
            following = [v for v in neighbours[current] if v != previous and v not in seen]
            if not following:
                break
            previous, current = current, following[0]
            loop.append(current)
            seen.add(current)
        loops.append(loop)
    return loops


def _triangulations(polygon: list[Vertex]) -> list[list[Triangle]]:
    """All triangulations of a polygon given as its vertices in cyclic order."""
    n = len(polygon)
    if n == 3:
        return [[(polygon[0], polygon[1], polygon[2])]]
    result = []
    for apex in range(1, n - 1):  # the triangle on edge (0, n-1) has its apex at `apex`
        left = _triangulations(polygon[: apex + 1]) if apex >= 2 else [[]]
        right = _triangulations(polygon[apex:]) if n - 1 - apex >= 2 else [[]]
        for lt, rt in itertools.product(left, right):
            result.append(lt + rt + [(polygon[0], polygon[apex], polygon[n - 1])])
    return result


def _area_vector_x8(triangle: Triangle) -> tuple[int, int, int]:
    a, b, c = triangle
    u = [b[i] - a[i] for i in range(3)]
    v = [c[i] - a[i] for i in range(3)]
    # vertices are doubled, so cross(u, v) is 4x the cross product, i.e. 8x the area vector
    return (u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0])


def _canonical_sign(vector: tuple[int, ...]) -> tuple[int, ...]:
    """Orientation is irrelevant for areas: make the first non-zero component positive."""
    for component in vector:
        if component != 0:
            return vector if component > 0 else tuple(-x for x in vector)
    return vector


def generate_surfel_area_vectors_3d() -> tuple[tuple[tuple[int, int, int], ...], ...]:
    """For each of the 256 codes, the area vectors (x8) of its surface triangles.

    Returns:
        A 256-tuple; entry ``code`` is a tuple of integer 3-vectors (possibly empty for codes 0
        and 255), one per triangle, in array axis order.
    """
    table = []
    for code in range(256):
        vectors: list[tuple[int, int, int]] = []
        for loop in _loops(_face_segments(code)):
            best = max(
                _triangulations(loop),
                key=lambda tris: round(sum(math.hypot(*_area_vector_x8(t)) for t in tris), 9),
            )
            vectors += [_canonical_sign(_area_vector_x8(t)) for t in best]
        table.append(tuple(sorted(vectors)))
    return tuple(table)


def generate_contour_segment_vectors_2d() -> tuple[tuple[tuple[int, int], ...], ...]:
    """For each of the 16 codes, the displacement vectors (x2) of its contour segments.

    Returns:
        A 16-tuple; entry ``code`` is a tuple of integer 2-vectors in array axis order.
    """
    square = [(0, 0), (0, 1), (1, 1), (1, 0)]  # cyclic order
    table = []
    for code in range(16):
        inside = [_occupied(code, c) for c in square]
        crossed = [i for i in range(4) if inside[i] != inside[(i + 1) % 4]]
        mids = [_midpoint_x2(square[i], square[(i + 1) % 4]) for i in crossed]
        if len(mids) == 2:
            pairs = [(mids[0], mids[1])]
        elif len(mids) == 4:  # ambiguous: both pairings give two corner-cutting segments
            pairs = [(mids[0], mids[1]), (mids[2], mids[3])]
        else:
            pairs = []
        vectors = [_canonical_sign((q[0] - p[0], q[1] - p[1])) for p, q in pairs]
        table.append(tuple(sorted(vectors)))
    return tuple(table)


def format_literals() -> str:
    """The Python source of the two literals stored in :mod:`metrics.lookup_tables`."""
    lines = ["SURFEL_AREA_VECTORS_X8_3D = ("]
    for code, vectors in enumerate(generate_surfel_area_vectors_3d()):
        lines.append(f"    {vectors!r},  # {code}")
    lines.append(")")
    lines.append("CONTOUR_SEGMENT_VECTORS_X2_2D = (")
    for code, vectors in enumerate(generate_contour_segment_vectors_2d()):
        lines.append(f"    {vectors!r},  # {code}")
    lines.append(")")
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_literals())
