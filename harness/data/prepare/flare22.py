"""FLARE22: the official validation set (50 CT scans; the challenge's test labels are not public).

Published layout (flare22.grand-challenge.org; file names as in the challenge's release and in
public loaders such as neuro-ml/amid `flare2022.py`): validation images `FLARETs_<nnnn>_0000.nii.gz`
(in `Validation/`), their labels `FLARETs_<nnnn>.nii.gz` released later in a folder of their own
(its name varies between mirrors, e.g. `Validation-Public-Labels`). The search is therefore
recursive under the source and pairs files by case number; training files (`FLARE22_Tr_*`) and the
unlabeled cases never match. Native ids follow ground_truth_manifests/label_maps/flare22.json.
"""

from __future__ import annotations

from pathlib import Path

from harness.data.prepare.common import (ConvertedLabel, Discovery, SourceAdapter, SourceCase, pair_cases,
                                         read_label_on, scan, to_benchmark_ids)
from harness.imageio import Geometry


class Flare22(SourceAdapter):
    key = "flare22"
    dataset = "FLARE22"
    layout = ("FLARE22 validation images FLARETs_<nnnn>_0000.nii.gz (e.g. in Validation/) and their labels "
              "FLARETs_<nnnn>.nii.gz, anywhere under the source folder")
    native_map = "flare22"

    def discover(self, source: Path) -> Discovery:
        discovery = Discovery()
        images = scan(source, r"FLARETs_(\d+)_0000\.nii(?:\.gz)?", recursive=True)
        labels = scan(source, r"FLARETs_(\d+)\.nii(?:\.gz)?", recursive=True)
        pair_cases(images, labels, case_id=lambda n: f"FLARETs_{n}", discovery=discovery)
        return discovery

    def convert(self, case: SourceCase, geometry: Geometry, *, image_path: Path) -> ConvertedLabel:
        native, notes = read_label_on(case.label, geometry, case_id=case.case_id, role="label")
        return ConvertedLabel(to_benchmark_ids(self.native_map, native, case_id=case.case_id, path=case.label),
                              tuple(notes))
