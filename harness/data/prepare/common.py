"""What every source adapter shares: the case record, reading and checking source files, atomic writes.

Source files are only ever opened for reading (SimpleITK readers, `open(..., "rb")` copies); every
output goes through `harness.atomic` (a temporary file in the destination folder, then a rename), so an interrupted
run leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import re
import shutil
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from harness.atomic import atomic_path
from harness.errors import CaseFailed, FailureKind, HarnessError
from harness.imageio import (Geometry, HeaderInfo, read_header_approximating, read_image_approximating,
                             write_image_atomic)
from harness.labelmap import shipped_mapping

#: Where prepared files go, relative to the data root: one folder per test set.
IMAGES_DIR = "images"
LABELS_DIR = "labels"
#: Prepared ground truth is stored in benchmark ids (ground_truth_manifests/label_maps/a-eval.json).
PREPARED_LABEL_MAP = "a-eval"

#: Label headers that differ from their image by no more than this are float noise of the NIfTI
#: header (float32 qform/sform); the label is then written on the image's grid, with a note.
#: Anything larger is a real mismatch and fails the case.
LENIENT_SPACING_RTOL = 1e-3
LENIENT_ORIGIN_ATOL_MM = 0.05
LENIENT_DIRECTION_ATOL = 1e-3


def output_paths(key: str, case_id: str) -> tuple[str, str]:
    """(image, label) paths of a prepared case, relative to the data root."""
    return f"{key}/{IMAGES_DIR}/{case_id}.nii.gz", f"{key}/{LABELS_DIR}/{case_id}.nii.gz"


@dataclass(frozen=True)
class SourceCase:
    """One test case as the dataset publishes it: an image and either one label map or per-structure files."""

    case_id: str
    image: Path
    label: Path | None = None
    #: TotalSegmentator: needed structure name -> its binary file, only for files that exist.
    structures: Mapping[str, Path] | None = None
    #: TotalSegmentator: needed structure names whose file is missing (organ absent from the GT).
    missing_structures: tuple[str, ...] = ()


@dataclass
class Discovery:
    """What a source folder holds for one test set: usable cases, broken ones, and remarks."""

    cases: list[SourceCase] = field(default_factory=list)
    #: case id -> why it cannot be prepared (counted as found: the source has it, but broken)
    broken: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def found(self) -> int:
        return len(self.cases) + len(self.broken)

    def case_ids(self) -> list[str]:
        return sorted([c.case_id for c in self.cases] + list(self.broken))


@dataclass(frozen=True)
class ConvertedLabel:
    """Ground truth of one case in benchmark ids (uint8, array order z, y, x) and what was decided."""

    array: np.ndarray
    notes: tuple[str, ...] = ()


class SourceAdapter(ABC):
    """One dataset's published layout and conventions, for one test set key."""

    key: str
    #: the dataset as a person names it
    dataset: str
    #: one sentence describing where the test cases lie in the download, shown when nothing is found
    layout: str

    #: whether the dataset publishes test labels apart from the images, so that `--labels DIR` applies
    takes_labels_dir: bool = False

    @abstractmethod
    def discover(self, source: Path, *, labels: Path | None = None) -> Discovery:
        """The test cases under `source` (labels under `labels` where given), without reading any voxel."""

    @abstractmethod
    def convert(self, case: SourceCase, geometry: Geometry, *, image_path: Path) -> ConvertedLabel:
        """The case's ground truth in benchmark ids on the image grid `geometry`; CaseFailed if impossible."""


# ---------------------------------------------------------------- finding files


def find_dataset_root(source: Path, marker: str, *, depth: int = 2) -> Path | None:
    """The folder at or below `source` (at most `depth` levels) that contains `marker` (a relative path).

    Downloads are unpacked with or without their top folder (amos22/, WORD-V0.1.0/, RawData/,
    Totalsegmentator_dataset_v201/), so the source given may be that folder or its parent.
    Two candidates are ambiguous: the user must point at one.
    """
    level = [source]
    for _ in range(depth + 1):
        hits = [folder for folder in level if (folder / marker).exists()]
        if len(hits) > 1:
            raise HarnessError(f"{source} holds several datasets with {marker}: "
                               f"{', '.join(str(h) for h in hits)}; pass one of them as --source")
        if hits:
            return hits[0]
        level = [child for folder in level for child in _subfolders(folder)]
    return None


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


def scan(folder: Path, pattern: str, *, recursive: bool = False) -> dict[str, list[Path]]:
    """Files of `folder` whose name fully matches `pattern`, grouped by the pattern's first group."""
    regex = re.compile(pattern)
    found: dict[str, list[Path]] = {}
    if not folder.is_dir():
        return found
    candidates: Iterable[Path] = folder.rglob("*") if recursive else folder.iterdir()
    for path in candidates:
        match = regex.fullmatch(path.name)
        if match and path.is_file():
            found.setdefault(match.group(1), []).append(path)
    return found


def pair_cases(images: dict[str, list[Path]], labels: dict[str, list[Path]], *, case_id: Callable[[str], str],
               discovery: Discovery) -> None:
    """Pair image and label files by their id; every incomplete or ambiguous pair is a broken case."""
    for source_id in sorted(set(images) | set(labels)):
        cid = case_id(source_id)
        image_files, label_files = images.get(source_id, []), labels.get(source_id, [])
        if len(image_files) > 1 or len(label_files) > 1:
            listed = ", ".join(str(p) for p in sorted(image_files + label_files))
            discovery.broken[cid] = f"several files claim this case: {listed}; keep one of each"
        elif not image_files:
            discovery.broken[cid] = f"label {label_files[0]} has no image"
        elif not label_files:
            discovery.broken[cid] = f"image {image_files[0]} has no label file"
        else:
            discovery.cases.append(SourceCase(case_id=cid, image=image_files[0], label=label_files[0]))


# ---------------------------------------------------------------- reading source files


def read_header(path: Path, *, case_id: str, role: str) -> HeaderInfo:
    """The voxel grid of a 3-D scalar image file, from its header only (no voxel is read).

    A NIfTI header with slightly non-orthonormal direction cosines (TotalSegmentator) is read with
    the nearest rotation; `approximation` then says by how much (harness.imageio decides this).
    """
    try:
        info = read_header_approximating(path)
    except RuntimeError as exc:
        raise CaseFailed(FailureKind.UNREADABLE_SOURCE, f"case {case_id}: cannot read {role} {path}: {_reason(exc)}") from exc
    if info.dimension != 3 or info.components != 1:
        raise CaseFailed(FailureKind.UNREADABLE_SOURCE, f"case {case_id}: {role} {path} is {info.dimension}-D with "
                                              f"{info.components} components; expected 3-D scalar")
    return info


def read_array(path: Path, *, case_id: str, role: str) -> tuple[np.ndarray, Geometry]:
    """Voxels (z, y, x) and grid of a 3-D scalar image (non-orthonormal NIfTI directions approximated)."""
    try:
        image, _ = read_image_approximating(path)
    except RuntimeError as exc:
        raise CaseFailed(FailureKind.UNREADABLE_SOURCE, f"case {case_id}: cannot read {role} {path}: {_reason(exc)}") from exc
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise CaseFailed(FailureKind.UNREADABLE_SOURCE, f"case {case_id}: {role} {path} is not a 3-D scalar image")
    return sitk.GetArrayFromImage(image), Geometry.of(image)


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1] if text else "unknown reader error"


def read_label_on(path: Path, reference: Geometry, *, case_id: str, role: str) -> tuple[np.ndarray, list[str]]:
    """A source label volume, checked to lie on the image grid `reference`, as integers."""
    array, geometry = read_array(path, case_id=case_id, role=role)
    notes = check_same_grid(reference, geometry, case_id=case_id, role=role, path=path)
    array, more = integer_labels(array, case_id=case_id, role=role, path=path)
    return array, notes + more


def check_same_grid(reference: Geometry, other: Geometry, *, case_id: str, role: str, path: Path) -> list[str]:
    """Raise CaseFailed unless `other` is the image grid; header float noise passes with a note."""
    strict = reference.differences(other)
    if not strict:
        return []
    lenient = reference.differences(other, spacing_rtol=LENIENT_SPACING_RTOL, origin_atol_mm=LENIENT_ORIGIN_ATOL_MM,
                                    direction_atol=LENIENT_DIRECTION_ATOL)
    if lenient:
        raise CaseFailed(FailureKind.GEOMETRY_MISMATCH, f"case {case_id}: {role} {path} is not on the image's grid: "
                                              f"{'; '.join(lenient)}; check that this file belongs to this image")
    return [f"{role} header differs from the image's by float noise ({'; '.join(strict)}); "
            "written on the image's grid"]


def integer_labels(array: np.ndarray, *, case_id: str, role: str, path: Path) -> tuple[np.ndarray, list[str]]:
    """Label voxels as integers; float files holding only whole numbers (it happens) are cast, with a note."""
    if np.issubdtype(array.dtype, np.integer):
        return array, []
    if np.issubdtype(array.dtype, np.floating) and np.isfinite(array).all() and (array == np.round(array)).all():
        if array.size and (array.min() < 0 or array.max() > np.iinfo(np.int32).max):
            raise CaseFailed(FailureKind.UNKNOWN_LABELS, f"case {case_id}: {role} {path} holds values outside label range")
        return array.astype(np.int32), [f"{role} stored as {array.dtype}; its whole-number values were cast"]
    raise CaseFailed(FailureKind.NON_INTEGER_LABELS, f"case {case_id}: {role} {path} holds non-integer {array.dtype} values")


def to_benchmark_ids(map_name: str, native: np.ndarray, *, case_id: str, path: Path) -> np.ndarray:
    """Native ids -> benchmark ids through the shipped label map's lookup table (one pass)."""
    return shipped_mapping(map_name).apply(native, case_id=case_id, source=f"label {path}").astype(np.uint8, copy=False)


# ---------------------------------------------------------------- writing outputs


def copy_image_atomic(source: Path, destination: Path, *, clean_header: bool = False) -> None:
    """The image as published: NIfTI-gz is copied byte for byte, anything else is converted to .nii.gz.

    `clean_header`: the source header is one ITK refuses (non-orthonormal direction cosines); the
    image is then written anew on its orthonormalised grid, so no participant container ever reads
    the broken header. The voxels are unchanged.
    """
    with atomic_path(destination) as tmp:
        if source.name.lower().endswith(".nii.gz") and not clean_header:
            shutil.copyfile(source, tmp)
        else:
            image, _ = read_image_approximating(source)
            for key in image.GetMetaDataKeys():  # the source header's fields are not carried over
                image.EraseMetaData(key)
            sitk.WriteImage(image, str(tmp), useCompression=True)


def write_label_atomic(array: np.ndarray, geometry: Geometry, destination: Path) -> None:
    write_image_atomic(array, geometry, destination)
