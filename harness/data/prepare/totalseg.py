"""TotalSegmentator v2 (CT) and TotalSegmentator MRI: the official test split, merged from per-structure files.

Published layout (zenodo records 10047292 `Totalsegmentator_dataset_v201.zip` and 11367005/14710732
`TotalsegmentatorMRI_dataset_v*.zip`; wasserth/TotalSegmentator `resources/convert_dataset_to_nnunet.py`
reads it the same way): one folder per subject `s<nnnn>/` holding `ct.nii.gz` (MRI: `mri.nii.gz`)
and `segmentations/<structure>.nii.gz`, one binary file per structure; `meta.csv` beside the
subject folders, ';'-separated, whose `image_id` and `split` (train / val / test) columns give the
official split. Only `split == test` subjects are taken. The benchmark's counts are those of CT
v2.0.1 and MRI v1.0.0 (later releases split differently): the manifest's `release` names them.

About one subject in nine has a slightly non-orthonormal sform and no qform (ITK refuses it); the
image-reading layer reads such files with the nearest rotation, the same for the image and its
structure files (they share the header), and the pipeline writes the image with a clean header.

Ground truth: the ten benchmark organs' files are merged into one volume of the native ids of the
shipped label map (totalseg_ct_v2 or totalseg_mr: the structure file names are the map's names),
then mapped to benchmark ids through it. Decisions:
- a needed structure file that is missing means the organ is absent from the ground truth (noted;
  the dataset omits files, and partial fields of view are common, above all in MRI);
- every structure file must lie on the image's grid (header float noise aside), else the case fails;
- overlaps (rare; annotation borders) go to the SMALLER structure of the case (fewest voxels; ties
  to the lower native id), so that a small organ (adrenal, gallbladder, esophagus) is never eaten
  by a large neighbour (liver, stomach) and its Dice stays meaningful; overwritten voxels are noted.
"""

from __future__ import annotations

import csv
import functools
from pathlib import Path

import numpy as np

from harness.data.prepare.common import (ConvertedLabel, Discovery, SourceAdapter, SourceCase, check_same_grid,
                                         find_dataset_root, read_array, to_benchmark_ids)
from harness.errors import HarnessError
from harness.imageio import Geometry
from harness.labelmap import shipped_mapping

META_FILE = "meta.csv"
TEST_SPLIT = "test"


class TotalSegmentator(SourceAdapter):
    def __init__(self, *, modality: str) -> None:
        if modality not in ("CT", "MR"):
            raise ValueError(modality)
        self.modality = modality
        self.key = "totalseg_ct" if modality == "CT" else "totalseg_mr"
        self.dataset = "TotalSegmentator v2" if modality == "CT" else "TotalSegmentator MRI"
        self.image_name = "ct.nii.gz" if modality == "CT" else "mri.nii.gz"
        self.native_map = "totalseg_ct_v2" if modality == "CT" else "totalseg_mr"
        self.layout = (f"{self.dataset}: {META_FILE} (';'-separated, columns image_id and split) beside subject "
                       f"folders s<nnnn>/{self.image_name} and s<nnnn>/segmentations/<structure>.nii.gz")

    @functools.cached_property
    def structures(self) -> dict[str, int]:
        """Structure file name -> native id, for the structures that are benchmark organs."""
        mapping = shipped_mapping(self.native_map)
        return {mapping.label_map.labels[native]: native for native in sorted(mapping.native_to_benchmark)}

    def discover(self, source: Path, *, labels: Path | None = None) -> Discovery:
        discovery = Discovery()
        root = find_dataset_root(source, META_FILE)
        if root is None:
            return discovery
        splits = read_split(root / META_FILE)
        counts = {name: sum(1 for s in splits.values() if s == name) for name in sorted(set(splits.values()))}
        discovery.notes.append(f"{root / META_FILE}: " + ", ".join(f"{n} {name}" for name, n in counts.items())
                               + f"; taking the {TEST_SPLIT} split")
        for subject in sorted(s for s, split in splits.items() if split == TEST_SPLIT):
            folder = root / subject
            image = folder / self.image_name
            segmentations = folder / "segmentations"
            if not image.is_file():
                discovery.broken[subject] = f"{image} does not exist (listed as {TEST_SPLIT} in {META_FILE})"
                continue
            if not segmentations.is_dir():
                discovery.broken[subject] = f"{segmentations} does not exist: no ground truth for this subject"
                continue
            present = {name: segmentations / f"{name}.nii.gz" for name in self.structures
                       if (segmentations / f"{name}.nii.gz").is_file()}
            missing = tuple(name for name in self.structures if name not in present)
            discovery.cases.append(SourceCase(case_id=subject, image=image, structures=present,
                                              missing_structures=missing))
        return discovery

    def convert(self, case: SourceCase, geometry: Geometry, *, image_path: Path) -> ConvertedLabel:
        notes: list[str] = []
        if case.missing_structures:
            notes.append(f"no structure file for {', '.join(case.missing_structures)}: organ(s) absent from the GT")
        voxels: dict[str, np.ndarray] = {}
        for name, path in (case.structures or {}).items():
            array, grid = read_array(path, case_id=case.case_id, role=f"structure file {name}")
            notes += check_same_grid(geometry, grid, case_id=case.case_id, role=f"structure file {name}", path=path)
            voxels[name] = np.flatnonzero(array)
        native = np.zeros(geometry.shape_array, dtype=np.uint8)
        flat = native.reshape(-1)
        overwritten: list[str] = []
        # Larger structures first, so that smaller ones, painted later, win the overlaps.
        for name in sorted(voxels, key=lambda n: (-len(voxels[n]), -self.structures[n])):
            indices = voxels[name]
            taken = flat[indices]
            if (clash := np.count_nonzero(taken)):
                losers = sorted({self._name_of(int(v)) for v in np.unique(taken[taken > 0])})
                overwritten.append(f"{name} over {'/'.join(losers)} ({clash} voxels)")
            flat[indices] = self.structures[name]
        if overwritten:
            notes.append("overlapping structures, the smaller wins: " + "; ".join(overwritten))
        path = case.image.parent / "segmentations"
        return ConvertedLabel(to_benchmark_ids(self.native_map, native, case_id=case.case_id, path=path), tuple(notes))

    def _name_of(self, native: int) -> str:
        return next(name for name, i in self.structures.items() if i == native)


def read_split(path: Path) -> dict[str, str]:
    """image_id -> split from a TotalSegmentator meta.csv (';' as published; ',' tolerated)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise HarnessError(f"cannot read {path}: {exc.strerror or exc}") from exc
    lines = text.splitlines()
    header = lines[0] if lines else ""
    delimiter = ";" if header.count(";") >= header.count(",") else ","
    rows = [[cell.strip() for cell in row] for row in csv.reader(lines, delimiter=delimiter)]
    columns = rows[0] if rows else []
    if "image_id" not in columns or "split" not in columns:
        raise HarnessError(f"{path} has no image_id and split columns (columns: {', '.join(columns) or 'none'}); "
                           "it should be the meta.csv of the TotalSegmentator download")
    at_id, at_split = columns.index("image_id"), columns.index("split")
    return {row[at_id]: row[at_split].lower() for row in rows[1:] if len(row) > max(at_id, at_split) and row[at_id]}
