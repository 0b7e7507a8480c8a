"""Validate a prediction against its reference grid, and turn it into benchmark ids.

Grand-Challenge itself never compares an output's grid to its input's: a prediction with a
flipped direction or shifted origin scores as silently wrong overlap. Here every prediction must
match the ground truth's grid (size, spacing, origin, direction within a small tolerance), hold
integers only, no negatives, and only ids its label map declares; anything else fails the case
with a message that names the case, the file and what was wrong.

A prediction is untrusted bytes: `read_prediction` reads its header only (our own parse for
MetaImage, `ImageFileReader.ReadImageInformation` for every format), checks grid and pixel type,
and only then reads the voxels, once. A .nii.gz is inflated by :mod:`harness.scoring.nifti_gz`
(its voxel offset bounded before anything reads it, the stream required to end where the checked
grid's voxels do); a .nii has its length checked against its header.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from harness.errors import CaseFailed, FailureKind
from harness.imageio import PIXEL_DTYPES, Geometry, LabelVolume, image_suffix, read_header_approximating, read_image_approximating
from harness.nifti_direction import is_nifti, is_orthonormal_error
from harness.labelmap import LabelMapping
from harness.runner.protocols import metaimage
from harness.runner.protocols.metaimage import MetaHeader
from harness.scoring import nifti_gz

_INTEGER_PIXEL_TYPES = {
    sitk.sitkUInt8, sitk.sitkInt8, sitk.sitkUInt16, sitk.sitkInt16, sitk.sitkUInt32, sitk.sitkInt32,
    sitk.sitkUInt64, sitk.sitkInt64,
}


#: The one ITK reader each prediction suffix is read with.
_IMAGE_IO = {".mha": "MetaImageIO", ".mhd": "MetaImageIO", ".nii.gz": "NiftiImageIO", ".nii": "NiftiImageIO",
             ".tif": "TIFFImageIO", ".tiff": "TIFFImageIO", ".nrrd": "NrrdImageIO"}


def _pixel_type(info) -> str:
    return sitk.GetPixelIDValueAsString(info.GetPixelID())


def read_prediction(path: Path, *, case_id: str, reference: Geometry | None = None,
                    gc_output: bool = False) -> LabelVolume:
    """Read a prediction header first, check it against `reference`, and only then its pixels, once.

    A 1 MB file can claim 1024^3 voxels or inflate to gigabytes: before any voxel is read the
    header must match the reference grid (size, spacing, origin, direction), hold one integer
    component (uint8/int8 for Grand-Challenge outputs), and the bytes to inflate are bounded by
    what that grid needs. MetaImage headers are parsed by us first (no host file, LIST or pattern).
    """
    path = Path(path)
    if not path.is_file():
        raise CaseFailed(FailureKind.MISSING_PREDICTION, f"case {case_id}: prediction {path} does not exist")
    suffix = image_suffix(path)
    header = _check_metaimage(path, case_id=case_id) if suffix in (".mha", ".mhd") else None
    nifti_header = nifti_gz.check_voxel_offset(path, case_id=case_id) if suffix == ".nii.gz" else None
    if suffix == ".nii":
        nifti_gz.check_uncompressed_length(path, case_id=case_id, role=nifti_gz.PREDICTION)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    if suffix in _IMAGE_IO:  # the suffix decides the format: no reader may claim the file by its content
        reader.SetImageIO(_IMAGE_IO[suffix])
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        if is_nifti(path) and is_orthonormal_error(exc):
            return _read_approximated(path, case_id=case_id, reference=reference, gc_output=gc_output)
        raise CaseFailed(FailureKind.UNREADABLE_PREDICTION, f"case {case_id}: cannot read prediction {path}: "
                                                  f"{_reason(exc)}") from None
    _check_shape(reader.GetNumberOfComponents(), reader.GetDimension(), case_id=case_id, path=path)
    if gc_output:
        check_gc_pixel_type(reader, case_id=case_id, path=path)
    if reference is not None:
        check_geometry(reader, reference, case_id=case_id, path=path)
    if reader.GetPixelID() not in _INTEGER_PIXEL_TYPES:
        raise CaseFailed(FailureKind.NON_INTEGER_LABELS, f"case {case_id}: prediction {path} has {_pixel_type(reader)} voxels; "
                                               "a segmentation must hold integer label ids (uint8 preferred)")
    voxel_bytes = math.prod(reader.GetSize()) * PIXEL_DTYPES[reader.GetPixelID()].itemsize
    if header is not None and header.expected_bytes != voxel_bytes:
        raise CaseFailed(FailureKind.UNREADABLE_PREDICTION, f"case {case_id}: prediction {path}: the MetaImage header "
                         f"describes {header.expected_bytes} bytes of voxels, the reader {voxel_bytes}")
    if nifti_header is not None:  # inflated by us, strictly: ITK would pass a truncated stream
        volume = nifti_gz.read_checked(path, nifti_header, reader, case_id=case_id, role=nifti_gz.PREDICTION)
        if volume is not None:
            return volume
    return LabelVolume.of(_execute(reader, path=path, case_id=case_id))


def _execute(reader: sitk.ImageFileReader, *, path: Path, case_id: str) -> sitk.Image:
    try:
        return reader.Execute()
    except RuntimeError as exc:
        raise CaseFailed(FailureKind.UNREADABLE_PREDICTION, f"case {case_id}: cannot read prediction {path}: "
                                                  f"{_reason(exc)}") from None


def _check_shape(components: int, dimension: int, *, case_id: str, path: Path) -> None:
    if components != 1:
        raise CaseFailed(FailureKind.UNREADABLE_PREDICTION, f"case {case_id}: prediction {path} has "
                         f"{components} components per voxel; a label image must have one")
    if dimension != 3:  # readable, but not on the input's 3-D grid
        raise CaseFailed(FailureKind.GEOMETRY_MISMATCH, f"case {case_id}: prediction {path} is {dimension}-D; "
                                                        "expected 3-D on the input's grid (copy the input image's geometry)")


def _read_approximated(path: Path, *, case_id: str, reference: Geometry | None,
                       gc_output: bool) -> LabelVolume:
    """A NIfTI prediction whose direction cosines ITK refuses (as TotalSegmentator's own files are):
    the same header-first checks through the image-reading layer's one fallback, then one read."""
    try:
        info = read_header_approximating(path)
    except RuntimeError as exc:
        raise CaseFailed(FailureKind.UNREADABLE_PREDICTION, f"case {case_id}: cannot read prediction {path}: "
                                                            f"{_reason(exc)}") from None
    _check_shape(info.components, info.dimension, case_id=case_id, path=path)
    if reference is not None:
        problems = reference.differences(info.geometry)
        if problems:
            raise CaseFailed(FailureKind.GEOMETRY_MISMATCH, f"case {case_id}: prediction {path} does not match "
                                                            f"the input's grid: {'; '.join(problems)}")
    try:
        image, _ = read_image_approximating(path)
    except RuntimeError as exc:
        raise CaseFailed(FailureKind.UNREADABLE_PREDICTION, f"case {case_id}: cannot read prediction {path}: "
                                                            f"{_reason(exc)}") from None
    if gc_output:
        check_gc_pixel_type(image, case_id=case_id, path=path)
    return LabelVolume.of(image)


def _reason(exc: RuntimeError) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1] if text else "unknown reader error"


def _check_metaimage(path: Path, *, case_id: str) -> MetaHeader:
    """Our own parse of a MetaImage header: pixels LOCAL or in one regular file beside it."""
    header = metaimage.read_header(path, case_id=case_id)
    if not header.local:
        folder_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.close(metaimage.open_data_file(header, case_id=case_id, header_name=path.name, dir_fd=folder_fd))
        finally:
            os.close(folder_fd)
    return header


def check_geometry(prediction: sitk.Image, reference: Geometry, *, case_id: str, path: Path) -> None:
    problems = reference.differences(Geometry.of(prediction))
    if problems:
        raise CaseFailed(FailureKind.GEOMETRY_MISMATCH,
                         f"case {case_id}: prediction {path} does not match the input's grid: {'; '.join(problems)}")


def prediction_in_benchmark_ids(prediction: LabelVolume, mapping: LabelMapping, *, case_id: str,
                                path: Path) -> np.ndarray:
    """Voxel array (z, y, x) in benchmark ids; CaseFailed for float, negative or undeclared labels."""
    if not np.issubdtype(prediction.voxels.dtype, np.integer):
        raise CaseFailed(FailureKind.NON_INTEGER_LABELS,
                         f"case {case_id}: prediction {path} has {prediction.pixel_type} voxels; "
                         "a segmentation must hold integer label ids (uint8 preferred)")
    return mapping.apply(prediction.voxels, case_id=case_id, source=f"prediction {path}")


def check_gc_pixel_type(prediction: sitk.Image, *, case_id: str, path: Path) -> None:
    """Grand-Challenge rejects segmentations that are not single-channel uint8/int8: so do we."""
    if prediction.GetPixelID() in (sitk.sitkUInt8, sitk.sitkInt8):
        return
    kind = (FailureKind.NON_INTEGER_LABELS if prediction.GetPixelID() not in _INTEGER_PIXEL_TYPES
            else FailureKind.UNSUPPORTED_PIXEL_TYPE)
    raise CaseFailed(kind, f"case {case_id}: prediction {path.name} has {_pixel_type(prediction)} voxels; "
                           "a Grand-Challenge segmentation must be uint8 or int8 label ids")
