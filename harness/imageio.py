"""Reading label and intensity images, and the geometry facts the harness needs from them.

SimpleITK reports size/spacing/origin in (x, y, z) order while `GetArrayFromImage` returns arrays in
(z, y, x) order: the classic spacing-order bug. Everything here converts explicitly and says which
order a value is in (`*_xyz` vs `*_array`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from harness.atomic import atomic_path
from harness.errors import CaseFailed, DirectionNotRepairable, FailureKind
from harness.nifti_direction import (DirectionApproximation, is_nifti, is_orthonormal_error,
                                     read_header_grid)
from harness.nifti_direction import read_image as read_nifti

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".tif", ".tiff")


def image_suffix(path: Path | str) -> str | None:
    name = str(path).lower()
    for suffix in IMAGE_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return None


@dataclass(frozen=True)
class Geometry:
    """Voxel grid of an image, in SimpleITK's (x, y, z) order."""

    size_xyz: tuple[int, ...]
    spacing_xyz: tuple[float, ...]
    origin_xyz: tuple[float, ...]
    direction: tuple[float, ...]  # row-major D, column i = physical direction of index axis i

    @classmethod
    def of(cls, image: sitk.Image) -> "Geometry":
        return cls(size_xyz=tuple(image.GetSize()), spacing_xyz=tuple(image.GetSpacing()),
                   origin_xyz=tuple(image.GetOrigin()), direction=tuple(image.GetDirection()))

    @property
    def spacing_array(self) -> tuple[float, ...]:
        """Spacing in numpy array axis order (z, y, x)."""
        return tuple(reversed(self.spacing_xyz))

    @property
    def shape_array(self) -> tuple[int, ...]:
        return tuple(reversed(self.size_xyz))

    def si_array_axis(self) -> int:
        """The array axis that runs along the patient's superior-inferior axis.

        Decided from the direction cosines (the index axis whose direction has the largest component
        along physical z, which is S-I in both LPS and RAS), never from the array index, so that a
        coronal or oblique acquisition crops the esophagus along the right axis.
        """
        dim = len(self.size_xyz)
        matrix = np.asarray(self.direction, dtype=float).reshape(dim, dim)
        index_axis = int(np.argmax(np.abs(matrix[dim - 1, :])))
        return dim - 1 - index_axis

    def differences(self, other: "Geometry", *, spacing_rtol: float = 1e-4, origin_atol_mm: float = 1e-3,
                    direction_atol: float = 1e-4) -> list[str]:
        """Human-readable list of how `other` differs from this (the reference) grid."""
        problems: list[str] = []
        if other.size_xyz != self.size_xyz:
            problems.append(f"size {other.size_xyz} != {self.size_xyz} (x,y,z)")
            return problems
        if not np.allclose(other.spacing_xyz, self.spacing_xyz, rtol=spacing_rtol, atol=0):
            problems.append(f"spacing {_fmt(other.spacing_xyz)} != {_fmt(self.spacing_xyz)} mm (x,y,z)")
        if not np.allclose(other.origin_xyz, self.origin_xyz, rtol=0, atol=origin_atol_mm):
            problems.append(f"origin {_fmt(other.origin_xyz)} != {_fmt(self.origin_xyz)} mm")
        if not np.allclose(other.direction, self.direction, rtol=0, atol=direction_atol):
            problems.append(f"direction {_fmt(other.direction)} != {_fmt(self.direction)}")
        return problems


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


_MISSING = {FailureKind.UNREADABLE_PREDICTION: FailureKind.MISSING_PREDICTION,
            FailureKind.UNREADABLE_GROUND_TRUTH: FailureKind.MISSING_GROUND_TRUTH}


def read_image(path: Path, *, case_id: str, role: str, kind: FailureKind) -> sitk.Image:
    """Read an image; an unreadable file becomes CaseFailed(kind) naming the case, role and file."""
    path = Path(path)
    if not path.is_file():
        raise CaseFailed(_MISSING.get(kind, kind), f"case {case_id}: {role} {path} does not exist")
    try:
        image, _ = read_image_approximating(path)
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown reader error"
        raise CaseFailed(kind, f"case {case_id}: cannot read {role} {path}: {reason}") from exc
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise CaseFailed(kind, f"case {case_id}: {role} {path} has {image.GetNumberOfComponentsPerPixel()} "
                               "components per voxel; a label image must have one")
    if image.GetDimension() != 3:  # readable, but not on a 3-D grid: a geometry error for a prediction
        raise CaseFailed(FailureKind.GEOMETRY_MISMATCH if role == "prediction" else kind,
                         f"case {case_id}: {role} {path} is {image.GetDimension()}-D; expected 3-D"
                         + (" on the input's grid (copy the input image's geometry)" if role == "prediction" else ""))
    return image


# ---------------------------------------------------------------- non-orthonormal NIfTI headers
# One decision for every reader of the harness (prepare, verify, run's staging, evaluate): a NIfTI
# file that ITK refuses only because its direction cosines are slightly non-orthonormal is read
# with the nearest rotation (harness.nifti_direction), and the caller learns by how much.


@dataclass(frozen=True)
class HeaderInfo:
    """What an image header says, without reading a voxel."""

    geometry: Geometry
    dimension: int
    components: int
    #: set when the header's direction was not orthonormal and was approximated
    approximation: DirectionApproximation | None = None


def read_image_approximating(path: Path | str) -> tuple[sitk.Image, DirectionApproximation | None]:
    """sitk.ReadImage, except that a NIfTI with non-orthonormal direction cosines is read with the nearest
    rotation (and the approximation returned); every failure is a RuntimeError, as from SimpleITK."""
    try:
        return sitk.ReadImage(str(path)), None
    except RuntimeError as exc:
        if not _approximable(path, exc):
            raise
        try:
            return read_nifti(Path(path))
        except DirectionNotRepairable as refused:
            raise RuntimeError(f"ITK only supports orthonormal direction cosines, and {refused}") from exc


def read_header_approximating(path: Path | str) -> HeaderInfo:
    """The header's grid (no voxels read), with the same fallback as read_image_approximating."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        if not _approximable(path, exc):
            raise
        try:
            grid = read_header_grid(Path(path))
        except DirectionNotRepairable as refused:
            raise RuntimeError(f"ITK only supports orthonormal direction cosines, and {refused}") from exc
        return HeaderInfo(Geometry(grid.size_xyz, grid.spacing_xyz, grid.origin_xyz, grid.direction),
                          grid.dimension, grid.components, grid.approximation)
    return HeaderInfo(Geometry(size_xyz=tuple(reader.GetSize()), spacing_xyz=tuple(reader.GetSpacing()),
                               origin_xyz=tuple(reader.GetOrigin()), direction=tuple(reader.GetDirection())),
                      reader.GetDimension(), reader.GetNumberOfComponents())


def _approximable(path: Path | str, error: RuntimeError) -> bool:
    return is_nifti(path) and is_orthonormal_error(error)


#: The numpy type of each scalar pixel type a label image may have (ITK's pixel id -> numpy).
PIXEL_DTYPES = {
    sitk.sitkUInt8: np.dtype(np.uint8), sitk.sitkInt8: np.dtype(np.int8), sitk.sitkUInt16: np.dtype(np.uint16),
    sitk.sitkInt16: np.dtype(np.int16), sitk.sitkUInt32: np.dtype(np.uint32), sitk.sitkInt32: np.dtype(np.int32),
    sitk.sitkUInt64: np.dtype(np.uint64), sitk.sitkInt64: np.dtype(np.int64), sitk.sitkFloat32: np.dtype(np.float32),
    sitk.sitkFloat64: np.dtype(np.float64),
}


@dataclass(frozen=True)
class LabelVolume:
    """A label image as read once: its voxels (z, y, x), grid and pixel type.

    `image` is the ITK image the voxels are a view of, kept so that its buffer lives as long as
    they do (None when the voxels were inflated straight into a numpy buffer).
    """

    voxels: np.ndarray
    geometry: Geometry
    pixel_type: str  # SimpleITK's name, for messages
    image: sitk.Image | None = None

    @classmethod
    def of(cls, image: sitk.Image) -> "LabelVolume":
        return cls(voxels=label_array(image), geometry=Geometry.of(image),
                   pixel_type=image.GetPixelIDTypeAsString(), image=image)


def label_array(image: sitk.Image) -> np.ndarray:
    """The voxel array (z, y, x), as a view where SimpleITK allows it (no copy of large volumes)."""
    return sitk.GetArrayViewFromImage(image)


def write_image(array: np.ndarray, geometry: Geometry, path: Path) -> None:
    """Write an array (z, y, x) with a given geometry; the format follows the suffix."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(geometry.spacing_xyz)
    image.SetOrigin(geometry.origin_xyz)
    image.SetDirection(geometry.direction)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), useCompression=True)


def write_image_atomic(array: np.ndarray, geometry: Geometry, path: Path) -> None:
    """write_image through a temporary file beside `path` and a rename: readers never see half a volume."""
    with atomic_path(path) as temporary:  # same suffix: SimpleITK picks the format by it
        write_image(array, geometry, temporary)
