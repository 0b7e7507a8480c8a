"""Validate a prediction against its reference grid, and turn it into benchmark ids.

Grand-Challenge itself never compares an output's grid to its input's: a prediction with a
flipped direction or shifted origin scores as silently wrong overlap. Here every prediction must
match the ground truth's grid (size, spacing, origin, direction within a small tolerance), hold
integers only, no negatives, and only ids its label map declares; anything else fails the case
with a message that names the case, the file and what was wrong.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from harness.errors import CaseFailed
from harness.imageio import Geometry, label_array, read_image
from harness.labelmap import LabelMapping

_INTEGER_PIXEL_TYPES = {
    sitk.sitkUInt8, sitk.sitkInt8, sitk.sitkUInt16, sitk.sitkInt16, sitk.sitkUInt32, sitk.sitkInt32,
    sitk.sitkUInt64, sitk.sitkInt64,
}


def read_prediction(path: Path, *, case_id: str) -> sitk.Image:
    return read_image(path, case_id=case_id, role="prediction", kind="unreadable_prediction")


def check_geometry(prediction: sitk.Image, reference: Geometry, *, case_id: str, path: Path) -> None:
    problems = reference.differences(Geometry.of(prediction))
    if problems:
        raise CaseFailed("geometry_mismatch",
                         f"case {case_id}: prediction {path} does not match the input's grid: {'; '.join(problems)}")


def prediction_in_benchmark_ids(prediction: sitk.Image, mapping: LabelMapping, *, case_id: str,
                                path: Path) -> np.ndarray:
    """Voxel array (z, y, x) in benchmark ids; CaseFailed for float, negative or undeclared labels."""
    if prediction.GetPixelID() not in _INTEGER_PIXEL_TYPES:
        raise CaseFailed("non_integer_labels",
                         f"case {case_id}: prediction {path} has {prediction.GetPixelIDTypeAsString()} voxels; "
                         "a segmentation must hold integer label ids (uint8 preferred)")
    return mapping.apply(label_array(prediction), case_id=case_id, source=f"prediction {path}")


def check_gc_pixel_type(prediction: sitk.Image, *, case_id: str, path: Path) -> None:
    """Grand-Challenge rejects segmentations that are not single-channel uint8/int8: so do we."""
    if prediction.GetPixelID() in (sitk.sitkUInt8, sitk.sitkInt8):
        return
    kind = "non_integer_labels" if prediction.GetPixelID() not in _INTEGER_PIXEL_TYPES else "unsupported_pixel_type"
    raise CaseFailed(kind, f"case {case_id}: prediction {path.name} has {prediction.GetPixelIDTypeAsString()} voxels; "
                           "a Grand-Challenge segmentation must be uint8 or int8 label ids")
