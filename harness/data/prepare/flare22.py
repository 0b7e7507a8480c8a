"""FLARE22: the official validation set (50 CT scans; the challenge's test labels are not public).

Published layout (flare22.grand-challenge.org; file names as in the challenge's release and in
public loaders such as neuro-ml/amid `flare2022.py`): validation images `FLARETs_<nnnn>_0000.nii.gz`
(in `Validation/`), their labels `FLARETs_<nnnn>.nii.gz` released later in a folder of their own
(its name varies between mirrors, e.g. `Validation-Public-Labels`). The search is therefore
recursive under the source and pairs files by case number; training files (`FLARE22_Tr_*`) and the
unlabeled cases never match. Packages that also carry the challenge's `Testing/` images (same
prefix, no public labels) have those left out, with a note; labels kept in a folder apart from the
download are found with `--labels DIR`. Native ids follow ground_truth_manifests/label_maps/flare22.json.
"""

from __future__ import annotations

from pathlib import Path

from harness.data.prepare.common import (ConvertedLabel, Discovery, SourceAdapter, SourceCase, pair_cases,
                                         read_label_on, scan, to_benchmark_ids)
from harness.imageio import Geometry


#: Folders (case-insensitive) holding the challenge's test images, whose labels are not public.
TESTING_FOLDERS = ("testing", "test")


class Flare22(SourceAdapter):
    key = "flare22"
    dataset = "FLARE22"
    layout = ("FLARE22 validation images FLARETs_<nnnn>_0000.nii.gz (e.g. in Validation/) and their labels "
              "FLARETs_<nnnn>.nii.gz, anywhere under the source folder (or under --labels DIR)")
    native_map = "flare22"
    takes_labels_dir = True

    def discover(self, source: Path, *, labels: Path | None = None) -> Discovery:
        discovery = Discovery()
        images = scan(source, r"FLARETs_(\d+)_0000\.nii(?:\.gz)?", recursive=True)
        testing = {n: [p for p in paths if _in_testing_folder(p, source)] for n, paths in images.items()}
        left_out = sorted(str(p) for paths in testing.values() for p in paths)
        if left_out:
            images = {n: kept for n, paths in images.items() if (kept := [p for p in paths if p not in testing[n]])}
            folders = sorted({str(Path(p).parent) for p in left_out})
            discovery.notes.append(
                f"left out {len(left_out)} image(s) under {', '.join(folders[:3])}: FLARE22's Testing cases, whose "
                "labels are not public; the benchmark takes the 50 validation cases (if these ARE the validation "
                "images, pass that folder as --source and the labels folder as --labels)")
        labels_found = scan(labels or source, r"FLARETs_(\d+)\.nii(?:\.gz)?", recursive=True)
        pair_cases(images, labels_found, case_id=lambda n: f"FLARETs_{n}", discovery=discovery)
        for case_id, why in discovery.broken.items():
            if why.endswith("has no label file"):
                discovery.broken[case_id] = (f"{why} under {labels or source}: FLARE22's validation labels were "
                                             "published after the images (Tuning/labels, or validation/"
                                             "Validation-Public-Labels in the FLARE24/25 re-hosting); put them "
                                             "under the source or pass their folder with --labels DIR")
        return discovery

    def convert(self, case: SourceCase, geometry: Geometry, *, image_path: Path) -> ConvertedLabel:
        native, notes = read_label_on(case.label, geometry, case_id=case.case_id, role="label")
        return ConvertedLabel(to_benchmark_ids(self.native_map, native, case_id=case.case_id, path=case.label),
                              tuple(notes))


def _in_testing_folder(path: Path, source: Path) -> bool:
    """Whether a file lies in a Testing/ folder below the source (the source itself may be one)."""
    return any(part.lower() in TESTING_FOLDERS for part in path.relative_to(source).parts[:-1])
