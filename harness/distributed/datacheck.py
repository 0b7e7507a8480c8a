"""Verify, once per node, that the data root a worker sees is the one the manifests describe.

In a cluster every node mounts the data root (NFS, Lustre, ...) under the same path. A node with a
stale cache, a half-synced copy or another mount at that path would score against other ground
truth without anyone noticing. So the client sends, per test set, what each file of the run must
be (its size as the client sees it, and the manifest's sha256 where the manifest has one), and the
first task of that test set on each node checks every file: existence, size, then sha256. The
node remembers what it verified (file sizes and modification times) in a marker under its node
cache, so later tasks and other worker processes on the node only stat the files; a file changed
since is hashed again.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from harness.atomic import write_text_atomic
from harness.errors import DataRootMismatch
from harness.manifest import Manifest, case_file, sha256_file

NODE_CACHE_ENV = "AEVAL_NODE_CACHE"


def node_cache_dir() -> Path:
    """A folder on the node's own disk (not shared): verification markers and shipped images."""
    folder = Path(os.environ.get(NODE_CACHE_ENV) or Path(tempfile.gettempdir()) / "aeval-node-cache")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass(frozen=True)
class FileExpectation:
    relative: str
    size: int
    sha256: str | None = None


@dataclass(frozen=True)
class DataExpectation:
    """What the files of one test set's cases in this run must be, under `data_root`."""

    data_root: Path
    key: str
    files: tuple[FileExpectation, ...]

    @property
    def digest(self) -> str:
        text = json.dumps([str(self.data_root), self.key, [(f.relative, f.size, f.sha256) for f in self.files]])
        return hashlib.sha256(text.encode()).hexdigest()


def build_expectation(data_root: Path, manifest: Manifest, cases) -> DataExpectation:
    """Client side: sizes as the client sees the shared data root, sha256 from the manifest where given."""
    files = []
    for case in cases:
        for relative, digest in ((case.image, case.image_sha256), (case.label, case.label_sha256)):
            path = case_file(data_root, relative)
            try:
                size = path.stat().st_size
            except OSError as exc:
                raise DataRootMismatch(f"test set {manifest.key}: {relative} is not readable under the data root "
                                       f"{data_root} on the client ({exc.strerror})") from None
            files.append(FileExpectation(relative, size, digest))
    return DataExpectation(data_root=data_root, key=manifest.key, files=tuple(files))


_verified: set[str] = set()
_lock = threading.Lock()


def verify_on_node(expectation: DataExpectation, *, worker: str = "") -> None:
    """Raise DataRootMismatch unless every file is there with its size and checksum; cheap after the first time."""
    if expectation.digest in _verified:
        return
    with _lock:
        if expectation.digest in _verified:
            return
        marker = node_cache_dir() / f"verified-{expectation.digest}.json"
        with open(marker.with_suffix(".lock"), "w") as lock_handle:
            fcntl.flock(lock_handle, fcntl.LOCK_EX)  # one process per node hashes; the others wait, then stat
            try:
                seen = json.loads(marker.read_text()) if marker.is_file() else {}
            except (OSError, json.JSONDecodeError):
                seen = {}
            current = _check(expectation, seen, worker=worker)
            write_text_atomic(marker, json.dumps(current))
        _verified.add(expectation.digest)


def _check(expectation: DataExpectation, seen: dict, *, worker: str) -> dict:
    host = socket.gethostname()
    where = f"on node {host}" + (f" (worker {worker})" if worker else "")
    current: dict[str, list[int]] = {}
    for item in expectation.files:
        path = expectation.data_root / item.relative
        try:
            stat = path.stat()
        except OSError:
            raise DataRootMismatch(f"{where}: test set {expectation.key}: {path} does not exist; every node must "
                                   f"mount the data root at {expectation.data_root}", worker) from None
        if stat.st_size != item.size:
            raise DataRootMismatch(f"{where}: test set {expectation.key}: {path} has {stat.st_size} bytes, the "
                                   f"client sees {item.size}: this node's copy of the data root differs", worker)
        signature = [stat.st_size, stat.st_mtime_ns]
        if item.sha256 and seen.get(item.relative) != signature:
            found = sha256_file(path)
            if found != item.sha256:
                raise DataRootMismatch(f"{where}: test set {expectation.key}: {path} has sha256 {found[:16]}..., "
                                       f"the manifest says {item.sha256[:16]}...: corrupt or another file", worker)
        current[item.relative] = signature
    return current
