"""Image metadata is untrusted: label-map files, label-map sizes and image tarballs are capped cheaply."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import tracemalloc

import pytest

from harness.errors import HarnessError, LabelMapError
from harness.labelmap import MAX_LABEL_MAP_IDS, LabelMap, resolve_label_map
from harness.runner.images import check_tarball, declared_label_map, inspect_image, load_tarball
from tests.runner.test_sandbox_limits import build_script_image


def _huge_map(ids: int) -> dict:
    return {"name": "huge", "labels": {str(i): f"organ {i}" for i in range(1, ids + 1)}}


def test_a_200000_id_label_map_is_refused_before_schema_validation():
    document = _huge_map(200_000)
    tracemalloc.start()
    with pytest.raises(LabelMapError, match=f"lists 200000 ids; at most {MAX_LABEL_MAP_IDS}"):
        LabelMap.from_document(document, where="image x")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1024 * 1024  # refusing allocates next to nothing (validating built ~500 MB)


def test_schema_validation_stops_at_the_first_error():
    document = {"name": "bad", "labels": {str(i): "" for i in range(1, MAX_LABEL_MAP_IDS + 1)}}  # all invalid
    with pytest.raises(HarnessError, match="invalid label_map document") as caught:
        LabelMap.from_document(document, where="image x")
    assert "more problems" not in str(caught.value)


def test_an_oversized_inline_or_file_label_map_is_refused(tmp_path):
    with pytest.raises(LabelMapError, match="at most 1048576 are accepted"):
        resolve_label_map("{" + " " * (2 * 1024 * 1024) + "}")
    path = tmp_path / "big.json"
    path.write_text(json.dumps(_huge_map(100_000)))
    with pytest.raises(LabelMapError, match="is .* bytes; at most 1048576 are accepted"):
        resolve_label_map(str(path))


@pytest.mark.docker
@pytest.mark.parametrize("inside,message", [("/", "is a folder, not a regular file"),
                                            ("/opt/fifo", "is a special file, not a regular file"),
                                            ("/opt/big.json", "the cap is 1048576 bytes"),
                                            ("/opt/link.json", "is a link to /etc/passwd, not a regular file")])
def test_label_map_file_must_be_a_small_regular_file(docker_client, inside, message):
    extra = ('USER root\nRUN head -c 3000000 /dev/zero > /opt/big.json && ln -s /etc/passwd /opt/link.json && mkfifo /opt/fifo\n'
             'USER 1000\n')
    tag = build_script_image(docker_client, "label-map-file", "true", extra=extra)
    image = inspect_image(docker_client, tag)
    image.labels.pop("org.a-eval.label-map")
    image.labels["org.a-eval.label-map-file"] = inside
    with pytest.raises(HarnessError, match=message):
        declared_label_map(docker_client, image)
    assert not docker_client.containers.list(all=True, filters={"label": "org.a-eval.harness=inspect",
                                                                "ancestor": tag})


def _docker_save_like(layer_files: dict[str, int], *, architecture="amd64") -> bytes:
    """A docker-save tarball (legacy layout) whose one layer holds zero-filled files of the given sizes."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as archive:
        for name, size in layer_files.items():
            member = tarfile.TarInfo(name)
            member.size = size
            archive.addfile(member, _Zeros(size))
    config = json.dumps({"architecture": architecture, "os": "linux", "rootfs": {"type": "layers"}}).encode()
    manifest = json.dumps([{"Config": "config.json", "RepoTags": ["x:y"], "Layers": ["l/layer.tar"]}]).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for name, data in (("l/layer.tar", layer.getvalue()), ("config.json", config), ("manifest.json", manifest)):
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return out.getvalue()


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return bytes(n)


def test_an_oversized_image_in_a_small_gzip_is_refused_from_its_headers(tmp_path):
    """A ~1 MB gzip holding a 1 GiB zero layer: refused by the size cap, nothing inflated to disk."""
    path = tmp_path / "bomb.tar.gz"
    with gzip.open(path, "wb", compresslevel=9) as handle:
        handle.write(_docker_save_like({"zeros": 1024**3}))
    assert path.stat().st_size < 4 * 1024 * 1024
    tracemalloc.start()
    with pytest.raises(HarnessError, match="exceed 256m .*refused before loading anything"):
        check_tarball(path, max_bytes=256 * 1024**2)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 64 * 1024 * 1024


def test_an_image_under_the_cap_is_summed_from_its_layer_headers(tmp_path):
    path = tmp_path / "ok.tar"
    path.write_bytes(_docker_save_like({"a": 1000, "b": 5000}))
    info = check_tarball(path, max_bytes=1024**2)
    assert info.unpacked_bytes == 6000 and info.architecture == "amd64" and info.repo_tags == ["x:y"]


@pytest.mark.docker
def test_a_tarball_is_streamed_to_the_engine_not_copied_to_tmpdir(docker_client, tmp_path, monkeypatch):
    import subprocess

    tag = build_script_image(docker_client, "streamed", "true")
    saved = subprocess.run(["docker", "save", tag], check=True, capture_output=True).stdout
    path = tmp_path / "image.tar.gz"
    path.write_bytes(gzip.compress(saved, compresslevel=1))
    spool = tmp_path / "tmpdir"
    spool.mkdir()
    monkeypatch.setenv("TMPDIR", str(spool))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    info = load_tarball(docker_client, path)
    assert info.image_id == docker_client.images.get(tag).id
    assert not any(spool.iterdir())
