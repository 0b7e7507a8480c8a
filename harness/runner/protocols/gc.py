"""Grand-Challenge's algorithm-job layout: one container run per case.

Input: the case image converted to `.mha` at /input/<relative_path>/<uuid>.mha plus
/input/inputs.json as the platform writes it. Output: exactly one `.mha`/`.mhd`/`.tif` image in
/output/<output relative_path>/, with the platform's own failure messages otherwise. The image's
name in inputs.json is `<uuid>.mha`: the case id and source dataset are not revealed to the
container, so an algorithm cannot special-case a test set.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import SimpleITK as sitk

from harness.errors import CaseFailed, FailureKind
from harness.gc_interface import OUTPUT_COMPANION_SUFFIXES, is_output_image, one_image_message
from harness.imageio import read_image_approximating
from harness.manifest import InputSocket
from harness.runner.engine import Mount
from harness.runner.protocols import metaimage
from harness.runner.protocols.outputs_tree import MAX_ENTRIES, audit_tree, copy_out, open_folder, open_subfolder

@dataclass(frozen=True)
class GcJob:
    input_dir: Path
    output_dir: Path
    image_uuid: str

    def mounts(self) -> list[Mount]:
        return [Mount(self.input_dir, "/input", read_only=True), Mount(self.output_dir, "/output", read_only=False)]


def inputs_json(socket: InputSocket, image_uuid: str) -> list[dict]:
    """inputs.json as Grand-Challenge writes it: one entry per input socket."""
    return [{
        "pk": 1,
        "interface": {"title": socket.title, "description": "", "slug": socket.slug, "kind": "Image",
                      "pk": 1, "default_value": None, "super_kind": "Image", "relative_path": socket.relative_path,
                      "overlay_segments": [], "look_up_table": None},
        "value": None, "file": None,
        "image": {"pk": image_uuid, "name": f"{image_uuid}.mha"},
    }]


def stage_case(*, image_path: Path, socket: InputSocket, scratch: Path) -> GcJob:
    image_uuid = str(uuid.uuid4())
    input_dir, output_dir = scratch / "input", scratch / "output"
    (input_dir / socket.relative_path).mkdir(parents=True)
    output_dir.mkdir()
    output_dir.chmod(0o777)  # the container's own (non-root) user must be able to write
    target = input_dir / socket.relative_path / f"{image_uuid}.mha"
    if image_path.name.lower().endswith(".mha"):
        shutil.copyfile(image_path, target)
    else:
        image, _ = read_image_approximating(image_path)  # harness.imageio: one rule for odd NIfTI headers
        for key in image.GetMetaDataKeys():  # NIfTI header fields MetaImage cannot hold (and would warn about)
            image.EraseMetaData(key)
        sitk.WriteImage(image, str(target), useCompression=False)
    (input_dir / "inputs.json").write_text(json.dumps(inputs_json(socket, image_uuid), indent=2))
    for path in [input_dir, *input_dir.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o444)
    return GcJob(input_dir=input_dir, output_dir=output_dir, image_uuid=image_uuid)


def collect_output(job: GcJob, *, relative_path: str, case_id: str, max_bytes: int, keep_as: Path,
                   max_entries: int = MAX_ENTRIES) -> Path:
    """Find the one output image, check it is safe to read, and copy it to `keep_as` (suffix added).

    Everything is read through descriptors of the output folder (no link followed, no path outside
    it). An .mha must hold its pixels; an .mhd and its one data file are joined into one .mha by
    copying bytes, so the prediction is decompressed once, when it is scored.
    """
    tree = audit_tree(job.output_dir, case_id=case_id, max_bytes=max_bytes, max_entries=max_entries)
    root_fd = open_folder(job.output_dir, case_id=case_id)
    try:
        folder_fd = open_subfolder(root_fd, relative_path, case_id=case_id)
    finally:
        os.close(root_fd)
    try:
        entries = sorted(os.listdir(folder_fd)) if folder_fd is not None else []
        if not entries:
            produced = sorted(tree.files)
            hint = f" (it wrote: {', '.join(produced[:5])})" if produced else ""
            raise CaseFailed(FailureKind.NO_OUTPUT, f"case {case_id}: Output directory '{relative_path}' is empty{hint}")
        images = [name for name in entries if is_output_image(Path(name))]
        others = [name for name in entries if name not in images and not name.lower().endswith(OUTPUT_COMPANION_SUFFIXES)]
        if others:
            raise CaseFailed(FailureKind.UNSUPPORTED_OUTPUT, f"case {case_id}: output directory '{relative_path}' holds "
                             f"{', '.join(others[:5])}: only .mha, .mhd(+.raw/.zraw) or .tif images "
                             "are accepted (Grand-Challenge does not accept NIfTI outputs)")
        if len(images) != 1:
            raise CaseFailed(FailureKind.TOO_MANY_OUTPUTS, f"case {case_id}: "
                             f"{one_image_message([Path(n) for n in images], relative_path=relative_path)}")
        return _keep(folder_fd, images[0], case_id=case_id, relative=f"{relative_path}/{images[0]}", keep_as=keep_as)
    finally:
        if folder_fd is not None:
            os.close(folder_fd)


def _keep(folder_fd: int, name: str, *, case_id: str, relative: str, keep_as: Path) -> Path:
    keep_as.parent.mkdir(parents=True, exist_ok=True)
    suffix = name[name.rfind("."):].lower()
    if suffix == ".tiff":
        suffix = ".tif"
    if suffix not in (".mha", ".mhd"):
        return copy_out(folder_fd, name, keep_as.with_name(keep_as.name + suffix), case_id=case_id, relative=relative)
    header = metaimage.read_header(Path(name), case_id=case_id, dir_fd=folder_fd)
    target = keep_as.with_name(keep_as.name + ".mha")
    if header.local:
        return copy_out(folder_fd, name, target, case_id=case_id, relative=relative)
    data_fd = metaimage.open_data_file(header, case_id=case_id, header_name=name, dir_fd=folder_fd)
    try:
        return metaimage.to_local_mha(header, data_fd, target, case_id=case_id, header_name=name)
    finally:
        os.close(data_fd)
