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

import bz2
import gzip
import hashlib
import io
import json
import lzma
import os
import tarfile
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from harness.errors import HarnessError
from harness.labelmap import MAX_LABEL_MAP_BYTES, LabelMap, LabelMapError, resolve_label_map
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
    unpacked_bytes: int = 0  # the files of all layers, as their tar headers state them


#: Members of a docker-save tarball kept in memory while it streams by (manifest, configs, index):
#: each at most this size, all together at most the total (the layers only stream through).
_SMALL_MEMBER_BYTES = 1 << 20
_SMALL_MEMBERS_TOTAL = 16 << 20


def check_tarball(path: Path, *, max_bytes: int | None = None) -> TarballImage:
    """Read a `docker save` tarball (gzip or not) in one streaming pass and check what Grand-Challenge checks.

    The layers are summed from their tar headers (each layer is itself a tar) while they stream by,
    and an image whose files exceed `max_bytes` (default: the sandbox policy's image cap) is refused
    at that point: nothing is written anywhere, and a 1 GiB zero layer in a 1 MB gzip is refused
    after reading headers, not after inflating it to disk.
    """
    from harness.runner.sandbox import SandboxPolicy, format_bytes

    max_bytes = SandboxPolicy().image_max_bytes if max_bytes is None else max_bytes
    if not path.is_file():
        raise HarnessError(f"image tarball {path} does not exist")
    small: dict[str, bytes] = {}
    stored = unpacked = 0

    def over(size: int, what: str) -> HarnessError:
        return HarnessError(f"{path}: the image's {what} exceed {format_bytes(max_bytes)} (the image size cap); "
                            f"refused before loading anything (at least {size / 1024**3:.2f} GiB)")

    try:
        with open(path, "rb") as raw, _tar_stream(raw) as archive:
            for member in archive:
                if not member.isfile():
                    continue
                stored += member.size
                if stored > max_bytes:
                    raise over(stored, "stored files")
                handle = archive.extractfile(member)
                if member.size <= _SMALL_MEMBER_BYTES and sum(map(len, small.values())) < _SMALL_MEMBERS_TOTAL:
                    data = handle.read()
                    small[member.name] = data
                    handle = io.BytesIO(data)
                unpacked += _layer_files_bytes(handle, budget=max_bytes - unpacked)
                if unpacked > max_bytes:
                    raise over(unpacked, "layers' files")
    except (tarfile.TarError, OSError, EOFError, gzip.BadGzipFile, zlib.error, lzma.LZMAError) as exc:
        raise HarnessError(f"{path}: not a readable docker-save tarball ({exc})") from None
    manifest = _json_member(small, "manifest.json", path)
    if not isinstance(manifest, list) or len(manifest) != 1:
        count = len(manifest) if isinstance(manifest, list) else "no"
        raise HarnessError(f"{path}: the tarball must hold exactly one image; its manifest.json lists {count}")
    entry = manifest[0]
    if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
        raise HarnessError(f"{path}: manifest.json names no image config")
    config_bytes = _member_bytes(small, entry["Config"], path)
    try:
        config = json.loads(config_bytes)
    except json.JSONDecodeError as exc:
        raise HarnessError(f"{path}: the image config is not valid JSON ({exc})") from None
    info = TarballImage(config_digest="sha256:" + hashlib.sha256(config_bytes).hexdigest(),
                        architecture=config.get("architecture", ""), os=config.get("os", ""),
                        repo_tags=list(entry.get("RepoTags") or []), unpacked_bytes=unpacked)
    if info.architecture != "amd64" or info.os != "linux":
        raise HarnessError(f"{path}: the image is {info.os}/{info.architecture}; only linux/amd64 images are accepted")
    return info


_STREAM_BUFFER = 1 << 20
_MAGIC = ((b"\x1f\x8b", lambda f: gzip.GzipFile(fileobj=f, mode="rb")), (b"BZh", bz2.BZ2File),
          (b"\xfd7zXZ\x00", lzma.LZMAFile))


class _Prefixed(io.RawIOBase):
    """A read-once stream with its first bytes (already read to sniff the compression) put back in front."""

    def __init__(self, prefix: bytes, rest) -> None:
        self._prefix, self._rest = prefix, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._prefix:
            count = min(len(buffer), len(self._prefix))
            buffer[:count], self._prefix = self._prefix[:count], self._prefix[count:]
            return count
        data = self._rest.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def _tar_stream(handle) -> tarfile.TarFile:
    """A tar read forward once from `handle`, plain or gzip/bzip2/xz compressed.

    Decompression goes through the compression modules' own file objects, which hand out bounded
    chunks: tarfile's built-in stream decompression ("r|*") re-slices a whole inflated chunk for
    every 10 KiB record, which makes a highly compressible layer (1 GiB of zeros) take minutes.
    """
    head = handle.read(6)
    stream = io.BufferedReader(_Prefixed(head, handle), buffer_size=_STREAM_BUFFER)
    for magic, opener in _MAGIC:
        if head.startswith(magic):
            stream = opener(stream)
            break
    return tarfile.open(fileobj=stream, mode="r|", bufsize=_STREAM_BUFFER)


def _layer_files_bytes(handle, *, budget: int) -> int:
    """The total size of the files in a layer (a tar, maybe compressed), from its headers; 0 if not a tar.

    Reading stops once `budget` is passed (the caller refuses the image then).
    """
    total = 0
    try:
        with _tar_stream(handle) as layer:
            for member in layer:
                if member.isfile():
                    total += member.size
                    if total > budget:
                        break
    except (tarfile.TarError, OSError, EOFError, gzip.BadGzipFile, zlib.error, lzma.LZMAError):
        pass  # a config or other non-tar member; the outer stream skips what was not read
    return total


def _member_bytes(small: dict[str, bytes], name: str, path: Path) -> bytes:
    if name not in small:
        raise HarnessError(f"{path}: no {name} in the tarball (or larger than {_SMALL_MEMBER_BYTES} bytes): "
                           "is it `docker save` output?")
    return small[name]


def _json_member(small: dict[str, bytes], name: str, path: Path):
    try:
        return json.loads(_member_bytes(small, name, path))
    except json.JSONDecodeError as exc:
        raise HarnessError(f"{path}: {name} is not valid JSON ({exc})") from None


def load_tarball(client: docker.DockerClient, path: Path, *, max_bytes: int | None = None) -> ImageInfo:
    """Load a checked tarball with every tag stripped, streamed to the engine; return the image by its id."""
    info = check_tarball(path, max_bytes=max_bytes)
    try:
        for status in client.api.load_image(_untagged_stream(path)):
            if isinstance(status, dict) and status.get("error"):
                raise HarnessError(f"{path}: the engine could not load the image: {status['error']}")
    except docker.errors.APIError as exc:
        raise HarnessError(f"{path}: the engine could not load the image: {exc.explanation or exc}") from None
    image = inspect_image(client, info.config_digest)
    return ImageInfo(**{**image.__dict__, "reference": f"{path.name} ({info.config_digest[:19]})"})


def _untagged_stream(source: Path, chunk_bytes: int = 1 << 20):
    """The tarball as `docker load` should see it, rewritten on the fly without the names it would apply as tags.

    A thread writes the rewritten tar into a pipe, and the engine reads the other end: nothing is
    written to disk, and memory holds one chunk.
    """
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def write() -> None:
        try:
            with os.fdopen(write_fd, "wb") as sink:
                _strip_tags(source, sink)
        except BaseException as exc:  # reported by the reading side
            failure.append(exc)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        with os.fdopen(read_fd, "rb") as pipe:
            while chunk := pipe.read(chunk_bytes):
                yield chunk
    finally:
        writer.join()
    if failure:
        raise HarnessError(f"{source}: cannot stream the image to the engine ({failure[0]})")


def _strip_tags(source: Path, sink) -> None:
    """Copy a docker-save tarball as a stream without the names that `docker load` would apply as tags."""
    with open(source, "rb") as raw, _tar_stream(raw) as archive, \
            tarfile.open(fileobj=sink, mode="w|", bufsize=_STREAM_BUFFER) as out:
        for member in archive:
            if member.name == "repositories":
                continue
            handle = archive.extractfile(member) if member.isfile() else None
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
        try:
            data = read_file_from_image(client, image.image_id, inside, max_bytes=MAX_LABEL_MAP_BYTES)
            return LabelMap.from_document(json.loads(data), where=f"{image.reference}:{inside}")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise HarnessError(f"image {image.reference}: {inside} is not valid JSON ({exc})") from None
        except (LabelMapError, HarnessError) as exc:
            raise HarnessError(f"image {image.reference}: label {LABEL_LABEL_MAP_FILE}: {exc}") from None
    return None

