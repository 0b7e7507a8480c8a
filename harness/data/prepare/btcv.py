"""BTCV (Multi-Atlas Labeling Beyond the Cranial Vault, abdomen): its 30 *training* scans are the test set.

Published layout (Synapse syn3193805, `Abdomen/RawData.zip`; the layout MONAI's and many public
scripts use): `RawData/Training/img/img<nnnn>.nii.gz` with `RawData/Training/label/label<nnnn>.nii.gz`
(ids 0001-0010 and 0021-0040); `RawData/Testing/` has no labels and is never taken. The source may
be the RawData folder or a folder above it. Native ids follow label_maps/btcv.json.
"""

from __future__ import annotations

from pathlib import Path

from harness.data.prepare.common import (ConvertedLabel, Discovery, SourceAdapter, SourceCase, find_dataset_root,
                                         pair_cases, read_label_on, scan, to_benchmark_ids)
from harness.imageio import Geometry


class Btcv(SourceAdapter):
    key = "btcv"
    dataset = "BTCV"
    layout = "BTCV RawData/Training/img/img<nnnn>.nii.gz with RawData/Training/label/label<nnnn>.nii.gz"
    native_map = "btcv"

    def discover(self, source: Path, *, labels: Path | None = None) -> Discovery:
        discovery = Discovery()
        root = find_dataset_root(source, "Training/img", depth=3)
        if root is None:
            return discovery
        images = scan(root / "Training" / "img", r"img(\d+)\.nii(?:\.gz)?")
        labels = scan(root / "Training" / "label", r"label(\d+)\.nii(?:\.gz)?")
        pair_cases(images, labels, case_id=lambda n: f"img{n}", discovery=discovery)
        return discovery

    def convert(self, case: SourceCase, geometry: Geometry, *, image_path: Path) -> ConvertedLabel:
        native, notes = read_label_on(case.label, geometry, case_id=case.case_id, role="label")
        return ConvertedLabel(to_benchmark_ids(self.native_map, native, case_id=case.case_id, path=case.label),
                              tuple(notes))
