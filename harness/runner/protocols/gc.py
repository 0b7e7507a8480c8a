"""Grand-Challenge's algorithm-job layout: one container run per case.

Input: the case image converted to `.mha` at /input/<relative_path>/<uuid>.mha plus
/input/inputs.json as the platform writes it. Output: exactly one `.mha`/`.mhd`/`.tif` image in
/output/<output relative_path>/, with the platform's own failure messages otherwise. The image's
name in inputs.json is `<uuid>.mha`: the case id and source dataset are not revealed to the
container, so an algorithm cannot special-case a test set.
"""

from __future__ import annotations

import json
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
from harness.runner.protocols.outputs_tree import audit_tree, check_mhd_header

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


def collect_output(job: GcJob, *, relative_path: str, case_id: str, max_bytes: int, keep_as: Path) -> Path:
    """Find the one output image, check it is safe to read, and move it to `keep_as` (suffix added)."""
    audit_tree(job.output_dir, case_id=case_id, max_bytes=max_bytes)
    folder = job.output_dir / relative_path
    entries = sorted(folder.iterdir()) if folder.is_dir() else []
    if not entries:
        produced = sorted(str(p.relative_to(job.output_dir)) for p in job.output_dir.rglob("*") if p.is_file())
        hint = f" (it wrote: {', '.join(produced[:5])})" if produced else ""
        raise CaseFailed(FailureKind.NO_OUTPUT, f"case {case_id}: Output directory '{relative_path}' is empty{hint}")
    images = [p for p in entries if is_output_image(p)]
    others = [p for p in entries if p not in images and not p.name.lower().endswith(OUTPUT_COMPANION_SUFFIXES)]
    if others:
        raise CaseFailed(FailureKind.UNSUPPORTED_OUTPUT, f"case {case_id}: output directory '{relative_path}' holds "
                         f"{', '.join(p.name for p in others[:5])}: only .mha, .mhd(+.raw/.zraw) or .tif images "
                         "are accepted (Grand-Challenge does not accept NIfTI outputs)")
    if len(images) != 1:
        raise CaseFailed(FailureKind.TOO_MANY_OUTPUTS, f"case {case_id}: {one_image_message(images, relative_path=relative_path)}")
    image = images[0]
    keep_as.parent.mkdir(parents=True, exist_ok=True)
    if image.suffix.lower() == ".mhd":
        check_mhd_header(image, case_id=case_id)
        target = keep_as.with_name(keep_as.name + ".mha")
        try:
            sitk.WriteImage(sitk.ReadImage(str(image)), str(target), useCompression=True)
        except RuntimeError as exc:
            raise CaseFailed(FailureKind.UNREADABLE_PREDICTION, f"case {case_id}: cannot read {image.name}: {exc}") from None
        return target
    target = keep_as.with_name(keep_as.name + image.suffix.lower())
    shutil.copyfile(image, target, follow_symlinks=False)
    return target
