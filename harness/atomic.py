"""The one way the harness writes a file that others may read while it is written.

Results, manifests, prepared images, published predictions and image tarballs may sit on shared
storage read by other processes and machines: a reader must see either the old file or the whole
new one, never half of it. Every writer therefore writes a temporary file in the destination folder
(same file system, so the rename is atomic), flushes it to disk, sets its permissions and renames
it over the destination; on any error the temporary file is removed and the old file stays.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

DEFAULT_PERMISSIONS = 0o644  # readable by others (web servers, colleagues), as a plain write would make it


def temporary_name(path: Path) -> Path:
    """A unique hidden sibling of `path` ending in `path`'s own name, so readers that pick a format by
    the suffix (SimpleITK: .nii.gz, .mha) treat it as the destination."""
    return path.with_name(f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}-{path.name}")


def commit(temporary: Path, path: Path, *, permissions: int = DEFAULT_PERMISSIONS) -> None:
    """fsync `temporary`, give it `permissions` and rename it over `path` (same folder)."""
    with open(temporary, "rb") as handle:
        os.fsync(handle.fileno())
    os.chmod(temporary, permissions)
    os.replace(temporary, path)


@contextmanager
def atomic_path(path: Path, *, permissions: int = DEFAULT_PERMISSIONS) -> Iterator[Path]:
    """Yield a temporary path beside `path` for a writer that wants a file name (SimpleITK, copyfile);
    when the block ends without error the file becomes `path`; otherwise it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_name(path)
    try:
        yield temporary
        commit(temporary, path, permissions=permissions)
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def atomic_write(path: Path, mode: str = "wb", *, permissions: int = DEFAULT_PERMISSIONS,
                 encoding: str | None = None) -> Iterator[IO]:
    """Yield an open file whose content replaces `path` whole when the block ends without error."""
    if "b" not in mode and encoding is None:
        encoding = "utf-8"
    with atomic_path(path, permissions=permissions) as temporary:
        with open(temporary, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()


def write_text_atomic(path: Path, text: str, *, permissions: int = DEFAULT_PERMISSIONS) -> None:
    """Write text (UTF-8) to `path` atomically."""
    with atomic_write(path, "w", permissions=permissions) as handle:
        handle.write(text)
