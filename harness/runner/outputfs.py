"""An output folder whose own filesystem is the output cap, so a container cannot fill the host.

A container writes its outputs into a host folder bind-mounted at /output (/workspace/outputs for
FLARE). Checking their size after the container exits is too late: 1.5 GiB written under a 256 MiB
cap has already reached the host's disk. Where the harness may mount (it runs as root, and
`mkfs.ext4` and loop devices exist), the folder becomes a loop-mounted ext4 image of the cap's
size with an inode count of the file cap: writing past either fails inside the container with "No
space left on device", and the image, a sparse file in the scratch folder, never holds more than
the cap. Elsewhere the folder stays a plain folder and `exceeded` walks it while the container
runs, so the engine kills the container once the cap is passed (later, by up to half a second of
writing). Either way `exceeded` says whether the cap was reached, which makes the case fail as
`output_too_large`; the tree audit after the run still checks the exact cap.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import threading
import time
from pathlib import Path

from harness.runner.scratch import unmount

#: Room for the filesystem's own metadata on top of the cap, so that a cap-sized output fits.
_METADATA_SLACK_BYTES = 16 * 1024**2
_MOUNT_ATTEMPTS = 4
_lock = threading.Lock()
_mount_works: bool | None = None  # decided by the first attempt in this process


def can_mount() -> bool:
    return os.name == "posix" and os.geteuid() == 0 and shutil.which("mkfs.ext4") is not None \
        and shutil.which("mount") is not None and _mount_works is not False


class CappedOutputFolder:
    """Context manager: `folder` (existing, empty) is size- and file-capped until exit, then unmounted."""

    def __init__(self, folder: Path, *, max_bytes: int, max_files: int) -> None:
        self.folder, self.max_bytes, self.max_files = folder, max_bytes, max_files
        self.image = folder.parent / f".{folder.name}.ext4"
        self.mounted = False
        self.mount_error = ""  # why the folder could not be mounted (the watcher applies then)
        self._baseline = 0

    def __enter__(self) -> "CappedOutputFolder":
        global _mount_works
        if can_mount():
            with _lock:
                self.mounted = self._mount()
                if _mount_works is None:
                    _mount_works = self.mounted
        return self

    def _mount(self) -> bool:
        mode = stat.S_IMODE(os.stat(self.folder).st_mode)
        size = self.max_bytes + self.max_bytes // 16 + _METADATA_SLACK_BYTES
        try:
            with open(self.image, "wb") as handle:
                handle.truncate(size)  # sparse: disk is used only as the container writes
            subprocess.run(["mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-m", "0", "-N",
                            str(self.max_files + 16), "-E", "root_owner=0:0", str(self.image)],
                           check=True, capture_output=True, timeout=120)
            for attempt in range(_MOUNT_ATTEMPTS):  # two mounts may race for the same free loop device
                done = subprocess.run(["mount", "-o", "loop,nosuid,nodev", str(self.image), str(self.folder)],
                                      capture_output=True, text=True, timeout=120)
                if done.returncode == 0:
                    break
                self.mount_error = done.stderr.strip()[:300]
                time.sleep(0.2 * (attempt + 1))
            else:
                raise OSError(self.mount_error)
        except (OSError, subprocess.SubprocessError) as exc:
            self.mount_error = self.mount_error or str(exc)[:300]
            self.image.unlink(missing_ok=True)
            return False
        (self.folder / "lost+found").rmdir()
        os.chmod(self.folder, mode)
        self._baseline = self._used()
        return True

    def _used(self) -> int:
        info = os.statvfs(self.folder)
        return (info.f_blocks - info.f_bfree) * info.f_frsize

    def exceeded(self) -> bool:
        """Whether the outputs reached the cap (size or number of entries)."""
        if self.mounted:  # blocks used include folders' and extents' own: allow half the slack for them
            info = os.statvfs(self.folder)
            return self._used() - self._baseline > self.max_bytes + _METADATA_SLACK_BYTES // 2 or info.f_ffree == 0
        return _walk_exceeds(self.folder, self.max_bytes, self.max_files)

    def __exit__(self, *exc_info) -> None:
        if self.mounted:
            unmount(self.folder)
            self.mounted = False
        self.image.unlink(missing_ok=True)


def _walk_exceeds(root: Path, max_bytes: int, max_files: int) -> bool:
    """The fallback check: iterative, never follows links, stops as soon as either cap is passed."""
    total, entries, stack = 0, 0, [str(root)]
    while stack:
        try:
            with os.scandir(stack.pop()) as listing:
                for entry in listing:
                    entries += 1
                    if entries > max_files:
                        return True
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if stat.S_ISDIR(info.st_mode):
                        stack.append(entry.path)
                    elif stat.S_ISREG(info.st_mode):
                        total += info.st_size
                        if total > max_bytes:
                            return True
        except OSError:
            continue
    return False
