"""WORD: the official test set (30 CT scans), with its single adrenal label split into right and left.

Published layout (HiLab-git/WORD; the `WORD-V0.1.0` archive as public nnU-Net and loader scripts
use it): `imagesTr|imagesVal|imagesTs/word_<nnnn>.nii.gz` with `labelsTr|labelsVal/`. Only
imagesTs is taken; its labels are a separate archive, `WORD_V0.1.0_labelsTs.zip` -> `labelsTs/`, found
inside `WORD-V0.1.0/`, beside it, or where `--labels DIR` says. Native ids: label_maps/word.json (1 liver, 2 spleen, 3 kidney left,
4 kidney right, ..., 12 adrenal for BOTH glands, ..., 16 femur head right).

The adrenal split (BENCHMARK.md section 3): label 12 is cut into 26-connected components, and each
component goes to the patient side of its centroid in physical LPS coordinates (x grows towards the
patient's LEFT), computed from the header's origin, spacing and direction cosines, never from array
order, so a file stored right-to-left or left-to-right splits the same. The midline is:
1. the midpoint of the two kidneys' centroids (WORD labels both; the adrenals sit on top of them),
   the rule in nearly every case; a right kidney lying left of the left kidney is a broken case
   (sides or header wrong), never silently split;
2. else (a kidney missing from the scan) the centroid of the body (CT voxels above -500 HU);
3. else the centre of the field of view.
Components go wholesale to one side (a gland is never cut in two); the right side becomes native
id 17 and the left keeps 12, as in label_maps/word_split.json, through which the ids then map to
benchmark ids. Each case's note records the midline, its rule and the voxels per side.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from harness.data.prepare.common import (ConvertedLabel, Discovery, SourceAdapter, SourceCase, find_dataset_root,
                                         pair_cases, read_array, read_label_on, scan, to_benchmark_ids)
from harness.errors import CaseFailed, FailureKind, HarnessError
from harness.imageio import Geometry
from harness.labelmap import load_shipped_label_map

#: CT voxels above this (HU) count as body for the fallback midline.
BODY_HU = -500.0
#: A component whose centroid lies closer than this to the midline is reported (its side is doubtful).
NEAR_MIDLINE_MM = 5.0


@dataclass(frozen=True)
class _WordIds:
    adrenal: int
    kidney_left: int
    kidney_right: int
    adrenal_left: int   # after the split
    adrenal_right: int  # after the split (a new id)


@functools.cache
def _ids() -> _WordIds:
    """The ids involved, read from the shipped label maps (their one source of truth)."""
    raw = {name: i for i, name in load_shipped_label_map("word").labels.items()}
    split = {name: i for i, name in load_shipped_label_map("word_split").labels.items()}
    return _WordIds(adrenal=raw["adrenal"], kidney_left=raw["kidney_left"], kidney_right=raw["kidney_right"],
                    adrenal_left=split["adrenal_gland_left"], adrenal_right=split["adrenal_gland_right"])


#: The test labels' own archive, published apart from the images (it unpacks to labelsTs/).
LABELS_ARCHIVE = "WORD_V0.1.0_labelsTs.zip"
LABELS_FOLDER = "labelsTs"
WHERE_LABELS_ARE = (f"WORD publishes the test labels as a separate archive, {LABELS_ARCHIVE} (download links in the "
                    f"README of github.com/HiLab-git/WORD); unpack it inside WORD-V0.1.0/ (giving {LABELS_FOLDER}/) "
                    "or pass its folder with --labels DIR")


class Word(SourceAdapter):
    key = "word"
    dataset = "WORD"
    layout = (f"WORD (WORD-V0.1.0/) imagesTs/word_<nnnn>.nii.gz with {LABELS_FOLDER}/word_<nnnn>.nii.gz (from "
              f"{LABELS_ARCHIVE}, inside WORD-V0.1.0/, beside it, or given with --labels DIR)")
    split_map = "word_split"
    takes_labels_dir = True

    def discover(self, source: Path, *, labels: Path | None = None) -> Discovery:
        discovery = Discovery()
        root = find_dataset_root(source, "imagesTs")
        if root is None:
            return discovery
        folder = labels or _find_labels(source, root)
        if folder is None:
            raise HarnessError(f"word: {root / 'imagesTs'} has no {LABELS_FOLDER}/ beside it (looked in {root} and "
                               f"{root.parent}): {WHERE_LABELS_ARE}")
        if folder != root / LABELS_FOLDER:
            discovery.notes.append(f"test labels taken from {folder}")
        images = scan(root / "imagesTs", r"word_(\d+)\.nii(?:\.gz)?")
        found = scan(folder, r"word_(\d+)\.nii(?:\.gz)?")
        pair_cases(images, found, case_id=lambda n: f"word_{n}", discovery=discovery)
        for case_id, why in discovery.broken.items():
            if why.endswith("has no label file"):
                discovery.broken[case_id] = f"{why} in {folder}: {WHERE_LABELS_ARE}"
        return discovery

    def convert(self, case: SourceCase, geometry: Geometry, *, image_path: Path) -> ConvertedLabel:
        native, notes = read_label_on(case.label, geometry, case_id=case.case_id, role="label")
        split, split_notes = split_adrenal(native, geometry, image_path=image_path, case_id=case.case_id)
        return ConvertedLabel(to_benchmark_ids(self.split_map, split, case_id=case.case_id, path=case.label),
                              tuple(notes + split_notes))


def _find_labels(source: Path, root: Path) -> Path | None:
    """labelsTs/ inside WORD-V0.1.0/, else beside it (the archive unpacked next to the images), else in the source."""
    for candidate in (root / LABELS_FOLDER, root.parent / LABELS_FOLDER, source / LABELS_FOLDER):
        if candidate.is_dir():
            return candidate
    return None


def physical_x(geometry: Geometry, index_zyx) -> float:
    """Physical LPS x (mm) of a (possibly fractional) array index (z, y, x)."""
    ijk = np.asarray(index_zyx, dtype=float)[::-1]
    direction = np.asarray(geometry.direction, dtype=float).reshape(3, 3)
    point = np.asarray(geometry.origin_xyz) + direction @ (np.asarray(geometry.spacing_xyz) * ijk)
    return float(point[0])


def split_adrenal(native: np.ndarray, geometry: Geometry, *, image_path: Path,
                  case_id: str) -> tuple[np.ndarray, list[str]]:
    """WORD native ids with adrenal components on the patient's right relabelled to the new right id."""
    ids = _ids()
    if (native == ids.adrenal_right).any():
        raise CaseFailed(FailureKind.UNKNOWN_LABELS, f"case {case_id}: the WORD label already holds id {ids.adrenal_right}, "
                                           "which WORD does not define (a file split before?); give the original")
    boxes = ndimage.find_objects(native, max_label=max(ids.adrenal, ids.kidney_left, ids.kidney_right))
    box = boxes[ids.adrenal - 1]
    if box is None:
        return native, ["no adrenal in this label (nothing to split)"]
    glands = native[box] == ids.adrenal
    components, count = ndimage.label(glands, structure=np.ones((3, 3, 3)))
    labels = list(range(1, count + 1))
    offset = np.array([s.start for s in box], dtype=float)
    centroids = [physical_x(geometry, np.add(c, offset)) for c in ndimage.center_of_mass(glands, components, labels)]
    sizes = ndimage.sum_labels(glands, components, labels)
    midline, rule = _midline(native, boxes, geometry, image_path=image_path, case_id=case_id)

    is_right = np.zeros(count + 1, dtype=bool)
    for label, x in zip(labels, centroids):
        is_right[label] = x < midline  # LPS: the patient's right has the smaller x
    out = native.copy()
    region = out[box]
    region[is_right[components]] = ids.adrenal_right
    right_voxels = int(sum(s for label, s in zip(labels, sizes) if is_right[label]))
    left_voxels = int(sum(sizes)) - right_voxels
    notes = [f"adrenal split at midline x={midline:.1f} mm ({rule}): {count} component(s), "
             f"right {right_voxels} voxels, left {left_voxels} voxels"]
    doubtful = [x for x in centroids if abs(x - midline) < NEAR_MIDLINE_MM]
    if doubtful:
        notes.append(f"{len(doubtful)} adrenal component(s) within {NEAR_MIDLINE_MM:g} mm of the midline "
                     "(side doubtful; check the case)")
    return out, notes


def _midline(native: np.ndarray, boxes: list, geometry: Geometry, *, image_path: Path,
             case_id: str) -> tuple[float, str]:
    """Physical x of the patient's midline, with the rule that gave it (see the module docstring)."""
    ids = _ids()
    kidneys: dict[str, float] = {}
    for name, label in (("right", ids.kidney_right), ("left", ids.kidney_left)):
        box = boxes[label - 1]
        if box is not None:
            offset = np.array([s.start for s in box], dtype=float)
            kidneys[name] = physical_x(geometry, np.add(ndimage.center_of_mass(native[box] == label), offset))
    if len(kidneys) == 2:
        if kidneys["right"] >= kidneys["left"]:
            raise CaseFailed(FailureKind.INCONSISTENT_SIDES,
                             f"case {case_id}: the right kidney (WORD id {ids.kidney_right}) lies at x="
                             f"{kidneys['right']:.1f} mm, not on the patient's right of the left kidney (x="
                             f"{kidneys['left']:.1f} mm) in physical LPS coordinates: the label's sides or the "
                             "image header are wrong; fix the source rather than split the adrenal by it")
        return (kidneys["right"] + kidneys["left"]) / 2, "midpoint of the kidneys"
    image, _ = read_array(image_path, case_id=case_id, role="image")
    body = image > BODY_HU
    if body.any():
        return physical_x(geometry, ndimage.center_of_mass(body)), "body centroid; kidneys not both labelled"
    centre = (np.asarray(geometry.shape_array, dtype=float) - 1) / 2
    return physical_x(geometry, centre), "centre of the field of view; no kidneys, no body found"
