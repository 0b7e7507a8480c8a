"""NIfTI files whose direction cosines ITK refuses: read them anyway, with the nearest rotation.

About one TotalSegmentator subject in nine (CT v2 and MRI) has a slightly non-orthonormal sform and
qform_code 0. ITK (SimpleITK >= 2.1) then raises "ITK only supports orthonormal direction cosines"
and there is no qform to fall back on. An image grid in ITK (and in every participant's toolkit
that builds on it) is origin + spacing + a ROTATION, so such a file is read here with nibabel, and
its direction is replaced by the nearest orthonormal matrix (the polar factor of the normalised
sform columns, from an SVD). How far that moved the axes is measured and returned, so the caller
can record it; a matrix that is far from a rotation (a real shear, e.g. an uncorrected gantry tilt,
rather than float noise) is refused instead of silently rotated.

Conventions follow ITK's NIfTI reader: spacing from pixdim, origin and direction from the sform
(qform when there is no sform), RAS turned into LPS; voxels (x, y, z) on disk become a (z, y, x)
array. Scaled voxels (scl_slope/scl_inter) are applied, as ITK applies them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from harness.errors import DirectionNotRepairable

#: ITK's message for such a header; the fallback is taken only for this error.
ITK_ORTHONORMAL_ERROR = "orthonormal direction cosines"
#: Largest angle (degrees) between a header axis and its orthonormalised axis that is still
#: "slightly non-orthonormal". Metrics use voxel grids and pixdim spacing, so a small approximation
#: cannot change a score; anything larger is a sheared volume that needs resampling, not this.
MAX_APPROXIMATION_DEGREES = 5.0
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class DirectionApproximation:
    """How much the header's direction (unit-length sform columns, LPS) was changed to make it orthonormal."""

    max_abs_deviation: float  # largest |entry| of (header direction - orthonormal direction)
    max_angle_degrees: float  # largest angle between a header axis and the axis used

    def record(self) -> dict[str, float]:
        """The manifest's per-case record (schema: cases[].direction_approximated)."""
        return {"max_abs_deviation": float(f"{self.max_abs_deviation:.3g}"),
                "max_angle_degrees": float(f"{self.max_angle_degrees:.3g}")}

    def describe(self) -> str:
        return (f"non-orthonormal direction cosines in the header (no usable qform) approximated by the nearest "
                f"rotation: max deviation {self.max_abs_deviation:.2g}, axes moved by at most "
                f"{self.max_angle_degrees:.2g} degrees")


@dataclass(frozen=True)
class NiftiHeaderGrid:
    size_xyz: tuple[int, ...]
    spacing_xyz: tuple[float, ...]
    origin_xyz: tuple[float, ...]
    direction: tuple[float, ...]  # row-major, orthonormal
    dimension: int
    components: int
    approximation: DirectionApproximation


def is_orthonormal_error(error: BaseException) -> bool:
    return ITK_ORTHONORMAL_ERROR in str(error)


def is_nifti(path: Path | str) -> bool:
    name = str(path).lower()
    return name.endswith(".nii") or name.endswith(".nii.gz")


def nearest_orthonormal(matrix: np.ndarray) -> np.ndarray:
    """The orthonormal matrix closest to `matrix` in the Frobenius norm (polar decomposition via SVD)."""
    u, _, vt = np.linalg.svd(matrix)
    return u @ vt


def approximate_direction(columns: np.ndarray) -> tuple[np.ndarray, DirectionApproximation]:
    """(orthonormal direction, how far it is) for a 3x3 matrix whose columns are the voxel axes."""
    norms = np.linalg.norm(columns, axis=0)
    if not np.all(np.isfinite(columns)) or np.any(norms <= 0) or abs(np.linalg.det(columns)) < 1e-12:
        raise DirectionNotRepairable("the header's sform is singular or not finite")
    unit = columns / norms
    rotation = nearest_orthonormal(unit)
    cosines = np.clip(np.sum(unit * rotation, axis=0), -1.0, 1.0)
    approximation = DirectionApproximation(max_abs_deviation=float(np.max(np.abs(unit - rotation))),
                                           max_angle_degrees=float(np.degrees(np.max(np.arccos(cosines)))))
    if approximation.max_angle_degrees > MAX_APPROXIMATION_DEGREES:
        raise DirectionNotRepairable(
            f"its direction cosines are {approximation.max_angle_degrees:.2f} degrees from the nearest rotation "
            f"(more than the {MAX_APPROXIMATION_DEGREES:g} degrees taken as header noise): the volume is sheared "
            "and must be resampled onto a rectilinear grid before use")
    return rotation, approximation


def _load(path: Path):
    import nibabel as nib  # imported here: only the rare broken file needs it

    try:
        image = nib.load(str(path))
    except Exception as exc:  # nibabel raises many types for a bad file; all mean "unreadable"
        raise DirectionNotRepairable(f"nibabel cannot read it either: {exc}") from exc
    if not isinstance(image, (nib.Nifti1Image, nib.Nifti2Image)):
        raise DirectionNotRepairable("not a NIfTI image")
    return image


def read_header_grid(path: Path) -> NiftiHeaderGrid:
    """The grid of a NIfTI file from its header alone, its direction orthonormalised (no voxel read)."""
    image = _load(path)
    header = image.header
    shape = tuple(int(n) for n in header.get_data_shape())
    dtype = header.get_data_dtype()
    # NIfTI: dim 4 is time, dim 5 holds vector components; RGB types are components too.
    components = (shape[4] if len(shape) > 4 else 1) * (len(dtype.names) if dtype.names else 1)
    dimension = min(len(shape), 3) + (1 if len(shape) > 3 and shape[3] > 1 else 0)
    affine = np.asarray(image.affine, dtype=float)  # the sform if coded, else the qform (nibabel's rule)
    lps = _RAS_TO_LPS @ affine[:3, :3]
    rotation, approximation = approximate_direction(lps)
    origin = _RAS_TO_LPS @ affine[:3, 3]
    spacing = tuple(float(z) for z in header.get_zooms()[:3])
    return NiftiHeaderGrid(size_xyz=shape[:3], spacing_xyz=spacing, origin_xyz=tuple(float(o) for o in origin),
                           direction=tuple(float(d) for d in rotation.ravel()), dimension=dimension,
                           components=components, approximation=approximation)


def read_image(path: Path) -> tuple[sitk.Image, DirectionApproximation]:
    """The NIfTI volume as a SimpleITK image on its orthonormalised grid (3-D scalar files only)."""
    grid = read_header_grid(path)
    if grid.dimension != 3 or grid.components != 1:
        raise DirectionNotRepairable(f"it is {grid.dimension}-D with {grid.components} components; expected 3-D")
    image = _load(path)
    data = np.asanyarray(image.dataobj)  # scl_slope/scl_inter applied; raw dtype when they are identity
    data = data.reshape(data.shape[:3])
    if data.dtype == np.float64 and image.header.get_data_dtype() != np.float64:
        data = _compact_scaled(data)
    result = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(2, 1, 0)))
    result.SetSpacing(grid.spacing_xyz)
    result.SetOrigin(grid.origin_xyz)
    result.SetDirection(grid.direction)
    return result, grid.approximation


def _compact_scaled(data: np.ndarray) -> np.ndarray:
    """Scaled voxels as the smallest faithful type: whole numbers in int16/int32 range stay integers."""
    if np.all(np.isfinite(data)) and np.array_equal(data, np.round(data)):
        for kind in (np.int16, np.int32):
            info = np.iinfo(kind)
            if data.size == 0 or (data.min() >= info.min and data.max() <= info.max):
                return data.astype(kind)
    return data.astype(np.float32)
