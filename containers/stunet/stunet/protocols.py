"""Where inputs are and where outputs go, for the two container protocols the harness speaks.

- ``gc`` (Grand-Challenge, one job = one case): ``<in>/inputs.json`` plus exactly one
  image under ``<in>/images/<socket>/``; one ``.mha`` written to
  ``<out>/<relative path>/<uuid>.mha`` (Grand-Challenge takes no NIfTI outputs).
- ``flare`` (one run = a folder): every ``<in>/*_0000.nii.gz`` -> ``<out>/<case>.nii.gz``.

This module knows file layouts only; it never reads pixels.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError

log = logging.getLogger(__name__)

GC_IMAGE_SUFFIXES = (".mha", ".mhd", ".tif", ".tiff")
FLARE_SUFFIX = "_0000.nii.gz"


@dataclass(frozen=True, kw_only=True)
class Job:
    """One image to segment and the file its labels go to."""

    case_id: str
    input_path: Path
    output_path: Path


def _image_sockets(inputs_json: Path) -> list[str]:
    """Relative paths of the image sockets listed in ``inputs.json`` (empty if it lists none)."""
    try:
        entries = json.loads(inputs_json.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"cannot read {inputs_json}: {error}") from None
    if not isinstance(entries, list):
        raise InputError(f"{inputs_json} must hold a JSON list of socket entries, found {type(entries).__name__}")
    sockets = []
    for entry in entries:
        interface = entry.get("interface", {}) if isinstance(entry, dict) else {}
        if "Image" in (interface.get("kind"), interface.get("super_kind")) and interface.get("relative_path"):
            sockets.append(str(interface["relative_path"]).strip("/"))
    return sockets


def gc_jobs(*, input_dir: Path, output_dir: Path, output_relative_path: str) -> list[Job]:
    """The single Grand-Challenge job: exactly one input image, one uuid-named ``.mha`` output.

    Image folders come from ``inputs.json`` when it lists image sockets, else every
    ``images/*`` folder is searched; any socket name is accepted.
    """
    inputs_json = input_dir / "inputs.json"
    if inputs_json.is_file():
        sockets = _image_sockets(inputs_json)
    else:
        log.warning("%s is missing; searching %s/images/* for the input image", inputs_json, input_dir)
        sockets = []
    folders = [input_dir / s for s in sockets] if sockets else sorted((input_dir / "images").glob("*"))
    images = sorted(
        p for folder in folders if folder.is_dir() for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(GC_IMAGE_SUFFIXES)
    )
    if len(images) != 1:
        found = ", ".join(str(p.relative_to(input_dir)) for p in images) or "none"
        searched = ", ".join(str(f.relative_to(input_dir)) for f in folders) or f"{input_dir / 'images'}/*"
        raise InputError(f"expected exactly one input image ({'/'.join(GC_IMAGE_SUFFIXES)}) in {searched}; found {found}")
    image = images[0]
    out = output_dir / output_relative_path / f"{uuid.uuid4()}.mha"
    return [Job(case_id=image.name.split(".")[0], input_path=image, output_path=out)]


def flare_jobs(*, input_dir: Path, output_dir: Path) -> list[Job]:
    """One job per ``*_0000.nii.gz`` (the FLARE single-modality naming), sorted by case id."""
    if not input_dir.is_dir():
        raise InputError(f"input folder {input_dir} does not exist")
    images = sorted(p for p in input_dir.iterdir() if p.is_file() and p.name.endswith(FLARE_SUFFIX))
    if not images:
        raise InputError(f"no *{FLARE_SUFFIX} files in {input_dir}")
    return [
        Job(case_id=p.name[: -len(FLARE_SUFFIX)], input_path=p, output_path=output_dir / f"{p.name[: -len(FLARE_SUFFIX)]}.nii.gz")
        for p in images
    ]
