"""Participant images: resolve a reference or a `docker save` tarball, inspect what it declares.

A tarball is checked before anything is loaded (exactly one image, linux/amd64, as Grand-Challenge
requires) and is loaded with its tags stripped, then referred to by image id: a tarball can never
re-point an existing tag (say, a base image the harness relies on) to other content.

Image labels a participant sets to declare how to run it (CLI flags win over them):
  org.a-eval.protocol             "gc" (default), "flare", or "gc,flare" (both supported)
  org.a-eval.output-relative-path Grand-Challenge output socket path (default: harness.gc_interface's)
  org.a-eval.label-map            inline label-map JSON, or the name of a shipped map (e.g. stunet_totalseg_v1)
  org.a-eval.label-map-file       path of a label-map JSON file inside the image (read without running it)
  org.a-eval.flare-command        shell command of the FLARE protocol (default "sh predict.sh")
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from harness.errors import HarnessError
from harness.gc_interface import DEFAULT_OUTPUT_RELATIVE_PATH  # noqa: F401 (read with the image labels)
from harness.labelmap import LabelMap, LabelMapError, resolve_label_map
from harness.runner.engine import read_file_from_image

LABEL_PROTOCOL = "org.a-eval.protocol"
LABEL_OUTPUT_PATH = "org.a-eval.output-relative-path"
LABEL_LABEL_MAP = "org.a-eval.label-map"
LABEL_LABEL_MAP_FILE = "org.a-eval.label-map-file"
LABEL_FLARE_COMMAND = "org.a-eval.flare-command"
DEFAULT_FLARE_COMMAND = "sh predict.sh"
PROTOCOLS = ("gc", "flare")


@dataclass(frozen=True)
class ImageInfo:
    image_id: str
    reference: str
    user: str
    labels: dict[str, str]
    architecture: str
    os: str
    size_bytes: int
    entrypoint: list[str] | None
    cmd: list[str] | None

    @property
    def runs_as_root(self) -> bool:
        user = self.user.strip()
        return user in ("", "root", "0") or user.startswith(("0:", "root:"))

    @property
    def declared_protocols(self) -> tuple[str, ...]:
        value = self.labels.get(LABEL_PROTOCOL, "gc")
        return tuple(p.strip() for p in value.split(",") if p.strip())


def inspect_image(client: docker.DockerClient, reference: str) -> ImageInfo:
    try:
        image = client.images.get(reference)
    except docker.errors.ImageNotFound:
        raise HarnessError(f"no image '{reference}' in the local engine: build it, `docker load` it, or pass "
                           "--image-tar FILE (this harness never pulls)") from None
    attrs = image.attrs
    config = attrs.get("Config") or {}
    return ImageInfo(image_id=image.id, reference=reference, user=config.get("User") or "",
                     labels=dict(config.get("Labels") or {}), architecture=attrs.get("Architecture", ""),
                     os=attrs.get("Os", ""), size_bytes=int(attrs.get("Size") or 0),
                     entrypoint=config.get("Entrypoint"), cmd=config.get("Cmd"))


@dataclass(frozen=True)
class TarballImage:
    config_digest: str  # "sha256:<hex>", the id the engine gives the loaded image
    architecture: str
    os: str
    repo_tags: list[str]


def check_tarball(path: Path) -> TarballImage:
    """Read a `docker save` tarball (gzip or not) and check what Grand-Challenge checks."""
    if not path.is_file():
        raise HarnessError(f"image tarball {path} does not exist")
    try:
        with tarfile.open(path, "r:*") as archive:
            manifest = _json_member(archive, "manifest.json", path)
            if not isinstance(manifest, list) or len(manifest) != 1:
                count = len(manifest) if isinstance(manifest, list) else "no"
                raise HarnessError(f"{path}: the tarball must hold exactly one image; its manifest.json lists {count}")
            entry = manifest[0]
            config_bytes = _member_bytes(archive, entry["Config"], path)
    except (tarfile.TarError, OSError, EOFError, gzip.BadGzipFile) as exc:
        raise HarnessError(f"{path}: not a readable docker-save tarball ({exc})") from None
    config = json.loads(config_bytes)
    info = TarballImage(config_digest="sha256:" + hashlib.sha256(config_bytes).hexdigest(),
                        architecture=config.get("architecture", ""), os=config.get("os", ""),
                        repo_tags=list(entry.get("RepoTags") or []))
    if info.architecture != "amd64" or info.os != "linux":
        raise HarnessError(f"{path}: the image is {info.os}/{info.architecture}; only linux/amd64 images are accepted")
    return info


def _member_bytes(archive: tarfile.TarFile, name: str, path: Path) -> bytes:
    try:
        member = archive.getmember(name)
    except KeyError:
        raise HarnessError(f"{path}: no {name} in the tarball: is it `docker save` output?") from None
    handle = archive.extractfile(member)
    if handle is None:
        raise HarnessError(f"{path}: {name} is not a regular file")
    return handle.read()


def _json_member(archive: tarfile.TarFile, name: str, path: Path):
    try:
        return json.loads(_member_bytes(archive, name, path))
    except json.JSONDecodeError as exc:
        raise HarnessError(f"{path}: {name} is not valid JSON ({exc})") from None


def load_tarball(client: docker.DockerClient, path: Path) -> ImageInfo:
    """Load a checked tarball with every tag stripped; return the image by its id."""
    info = check_tarball(path)
    with tempfile.TemporaryDirectory(prefix="aeval-load-") as scratch:
        untagged = Path(scratch) / "image.tar"
        _strip_tags(path, untagged)
        with open(untagged, "rb") as handle:
            try:
                client.images.load(handle)
            except docker.errors.APIError as exc:
                raise HarnessError(f"{path}: the engine could not load the image: {exc.explanation or exc}") from None
    image = inspect_image(client, info.config_digest)
    return ImageInfo(**{**image.__dict__, "reference": f"{path.name} ({info.config_digest[:19]})"})


def _strip_tags(source: Path, target: Path) -> None:
    """Copy a docker-save tarball without the names that `docker load` would apply as tags."""
    with tarfile.open(source, "r:*") as archive, tarfile.open(target, "w") as out:
        for member in archive:
            handle = archive.extractfile(member) if member.isfile() else None
            if member.name == "repositories":
                continue
            if member.name in ("manifest.json", "index.json") and handle is not None:
                document = json.loads(handle.read())
                if member.name == "manifest.json":
                    for entry in document:
                        entry["RepoTags"] = None
                else:
                    for entry in document.get("manifests", []):
                        entry.pop("annotations", None)
                data = json.dumps(document).encode()
                member = tarfile.TarInfo(member.name)
                member.size = len(data)
                out.addfile(member, io.BytesIO(data))
                continue
            out.addfile(member, handle)


def declared_label_map(client: docker.DockerClient, image: ImageInfo) -> LabelMap | None:
    """The label map an image declares through its labels, or None if it declares none."""
    if image.labels.get(LABEL_LABEL_MAP, "").strip():
        try:
            return resolve_label_map(image.labels[LABEL_LABEL_MAP])
        except (LabelMapError, HarnessError) as exc:
            raise HarnessError(f"image {image.reference}: label {LABEL_LABEL_MAP}: {exc}") from None
    if image.labels.get(LABEL_LABEL_MAP_FILE, "").strip():
        inside = image.labels[LABEL_LABEL_MAP_FILE]
        data = read_file_from_image(client, image.image_id, inside)
        try:
            return LabelMap.from_document(json.loads(data), where=f"{image.reference}:{inside}")
        except json.JSONDecodeError as exc:
            raise HarnessError(f"image {image.reference}: {inside} is not valid JSON ({exc})") from None
    return None

