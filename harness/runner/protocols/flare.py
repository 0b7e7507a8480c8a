"""The FLARE challenge's folder layout: one container run for a whole test set.

/workspace/inputs/<name>_0000.nii.gz -> /workspace/outputs/<name>.nii.gz, started with
`sh predict.sh` (or the image's declared command). Case names are anonymized (`case_<hex>`) so the
container cannot tell which test set, or which case, it is looking at.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import SimpleITK as sitk

from harness.errors import CaseFailed, FailureKind
from harness.imageio import read_image_approximating
from harness.runner.engine import Mount
from harness.runner.protocols.outputs_tree import MAX_ENTRIES, audit_tree, copy_out, open_folder


@dataclass(frozen=True)
class FlareJob:
    input_dir: Path
    output_dir: Path
    names: dict[str, str] = field(default_factory=dict)  # case id -> anonymous name

    def mounts(self) -> list[Mount]:
        return [Mount(self.input_dir, "/workspace/inputs", read_only=True),
                Mount(self.output_dir, "/workspace/outputs", read_only=False)]


def stage_set(*, images: dict[str, Path], scratch: Path) -> FlareJob:
    """Copy (or convert) every case image to <anonymous name>_0000.nii.gz."""
    input_dir, output_dir = scratch / "inputs", scratch / "outputs"
    input_dir.mkdir(parents=True)
    output_dir.mkdir()
    output_dir.chmod(0o777)
    names: dict[str, str] = {}
    for case_id, path in images.items():
        name = f"case_{secrets.token_hex(4)}"
        names[case_id] = name
        target = input_dir / f"{name}_0000.nii.gz"
        if path.name.lower().endswith(".nii.gz"):
            shutil.copyfile(path, target)
        else:
            sitk.WriteImage(read_image_approximating(path)[0], str(target), useCompression=True)
        target.chmod(0o444)
    input_dir.chmod(0o755)
    return FlareJob(input_dir=input_dir, output_dir=output_dir, names=names)


def collect_outputs(job: FlareJob, *, max_bytes: int, keep_dir: Path,
                    max_entries: int = MAX_ENTRIES) -> dict[str, Path | CaseFailed]:
    """Per case: the kept prediction file, or the CaseFailed saying why there is none.

    Files are read through a descriptor of the output folder, never following a link.
    """
    try:
        audit_tree(job.output_dir, case_id="(test set run)", max_bytes=max_bytes, max_entries=max_entries)
    except CaseFailed as failure:  # one bad entry taints the whole folder: every case fails with it
        return {case_id: failure for case_id in job.names}
    keep_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Path | CaseFailed] = {}
    folder_fd = open_folder(job.output_dir, case_id="(test set run)")
    try:
        present = set(os.listdir(folder_fd))
        for case_id, name in job.names.items():
            produced = f"{name}.nii.gz"
            if produced not in present:
                results[case_id] = CaseFailed(FailureKind.NO_OUTPUT, f"case {case_id}: the container wrote no "
                                              f"/workspace/outputs/{produced} (input {name}_0000.nii.gz)")
                continue
            try:
                results[case_id] = copy_out(folder_fd, produced, keep_dir / f"{case_id}.nii.gz", case_id=case_id,
                                            relative=produced)
            except CaseFailed as failure:  # e.g. a folder of that name
                results[case_id] = failure
    finally:
        os.close(folder_fd)
    return results
