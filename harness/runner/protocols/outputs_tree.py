"""Safe reading of a folder a container wrote: no symlink is ever followed out of it.

A hostile container can leave a symlink to a host path (/etc/shadow, the ground truth) in its
output folder, hoping the harness reads or copies through it, or a header (.mhd) whose data file
is an absolute host path. Everything here uses lstat and refuses such entries with a message that
names the file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from harness.errors import CaseFailed, FailureKind


def audit_tree(root: Path, *, case_id: str, max_bytes: int) -> int:
    """Total bytes under `root`; CaseFailed on a symlink, a special file, or more than `max_bytes`."""
    total = 0
    for directory, subdirs, files in os.walk(root, followlinks=False):
        for name in subdirs + files:
            path = Path(directory) / name
            info = os.lstat(path)
            relative = path.relative_to(root)
            if stat.S_ISLNK(info.st_mode):
                raise CaseFailed(FailureKind.SYMLINK_IN_OUTPUT, f"case {case_id}: output '{relative}' is a symbolic link "
                                 f"(to {os.readlink(path)}); links are refused, write real files")
            if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
                raise CaseFailed(FailureKind.SPECIAL_FILE_IN_OUTPUT, f"case {case_id}: output '{relative}' is not a regular file")
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
                if total > max_bytes:
                    raise CaseFailed(FailureKind.OUTPUT_TOO_LARGE, f"case {case_id}: outputs exceed the cap of "
                                     f"{max_bytes / 1024**2:.0f} MiB")
    return total


def check_mhd_header(path: Path, *, case_id: str) -> None:
    """An .mhd header may only point at a data file beside it (never an absolute or climbing path)."""
    for line in path.read_text(errors="replace").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "ElementDataFile":
            target = value.strip()
            if target in ("LOCAL",) or (target and "/" not in target and target not in (".", "..")):
                return
            raise CaseFailed(FailureKind.UNREADABLE_PREDICTION, f"case {case_id}: {path.name} points at data file "
                             f"'{target}'; only a file in the same folder is accepted")
    raise CaseFailed(FailureKind.UNREADABLE_PREDICTION, f"case {case_id}: {path.name} has no ElementDataFile")
