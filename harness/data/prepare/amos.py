"""AMOS 2022: its validation scans, CT (ids below 500) for amos_ct and MR (ids 500 and above) for amos_mr.

Published layout (zenodo record 7262581, `amos22.zip`; see also neuro-ml/amid `amos/dataset.py`):
`amos22/imagesTr|imagesVa|imagesTs/amos_<nnnn>.nii.gz`, labels in `labelsTr|labelsVa/`, and a
dataset.json. CT and MR share the folders and the label ids (label_maps/amos.json); the modality is
told by the id alone, so one validation folder feeds both test sets and each takes only its own ids.
Note: imagesVa holds 100 validation CTs while the benchmark's contract says 40 (the 2023 version used
all 100); pin the 40 with `--cases FILE`, or accept another count with `--allow-count-mismatch`.
"""

from __future__ import annotations

from pathlib import Path

from harness.data.prepare.common import (ConvertedLabel, Discovery, SourceAdapter, SourceCase, find_dataset_root,
                                         pair_cases, read_label_on, scan, to_benchmark_ids)
from harness.imageio import Geometry

#: AMOS numbers its MR scans from 500 (amos_0500..); CT scans are below.
FIRST_MR_ID = 500


class Amos(SourceAdapter):
    dataset = "AMOS 2022"
    native_map = "amos"

    def __init__(self, *, modality: str) -> None:
        if modality not in ("CT", "MR"):
            raise ValueError(modality)
        self.modality = modality
        self.key = "amos_ct" if modality == "CT" else "amos_mr"
        which = "below 500" if modality == "CT" else "500 and above"
        self.layout = (f"AMOS 2022 (amos22/) imagesVa/amos_<nnnn>.nii.gz with labelsVa/amos_<nnnn>.nii.gz, "
                       f"{modality} ids {which}")

    def _wanted(self, number: str) -> bool:
        return (int(number) >= FIRST_MR_ID) == (self.modality == "MR")

    def discover(self, source: Path, *, labels: Path | None = None) -> Discovery:
        discovery = Discovery()
        root = find_dataset_root(source, "imagesVa")
        if root is None:
            return discovery
        images = scan(root / "imagesVa", r"amos_(\d+)\.nii(?:\.gz)?")
        labels = scan(root / "labelsVa", r"amos_(\d+)\.nii(?:\.gz)?")
        other = sorted({n for n in set(images) | set(labels) if not self._wanted(n)})
        if other:
            other_modality = "MR" if self.modality == "CT" else "CT"
            discovery.notes.append(f"left out {len(other)} {other_modality} validation case(s) of {root / 'imagesVa'} "
                                   f"(they belong to {'amos_mr' if other_modality == 'MR' else 'amos_ct'})")
        pair_cases({n: p for n, p in images.items() if self._wanted(n)},
                   {n: p for n, p in labels.items() if self._wanted(n)},
                   case_id=lambda n: f"amos_{n}", discovery=discovery)
        return discovery

    def convert(self, case: SourceCase, geometry: Geometry, *, image_path: Path) -> ConvertedLabel:
        native, notes = read_label_on(case.label, geometry, case_id=case.case_id, role="label")
        return ConvertedLabel(to_benchmark_ids(self.native_map, native, case_id=case.case_id, path=case.label),
                              tuple(notes))
