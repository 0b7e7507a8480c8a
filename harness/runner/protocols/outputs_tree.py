"""Safe reading of a folder a container wrote: from directory descriptors, never following a link.

Everything in a container's output folder is hostile until checked: a symlink to a host path
(/etc/shadow, the ground truth) hoping the harness reads through it, a fifo or device that blocks
a read forever, 1,500 nested folders (a recursive walk dies of RecursionError), a path longer than
the OS limit (OSError on any path-based call), or 300,000 empty files. So the folder is opened
with O_NOFOLLOW, walked iteratively from directory descriptors (never by building host paths),
with caps on depth, path length and entries, and files are copied out through descriptors opened
with O_NOFOLLOW and checked to be regular. Every refusal is a CaseFailed naming the case and file.
The output socket path itself (an image label or a flag) is checked here too, once, before any
container runs.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import CaseFailed, FailureKind, HarnessError
from harness.runner.sandbox import SandboxPolicy
from harness.text import printable

#: Deepest folder nesting accepted in an output folder (a prediction needs two or three levels).
MAX_DEPTH = 32
#: Most entries (files and folders) accepted in an output folder: the sandbox policy's default.
MAX_ENTRIES = SandboxPolicy.output_max_files
#: Longest path accepted inside an output folder, in bytes (well under PATH_MAX).
MAX_PATH_BYTES = 1024

_PATH_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@dataclass
class OutputTree:
    """What an audited output folder holds: regular files (relative path -> bytes)."""

    files: dict[str, int] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return sum(self.files.values())


def _shown(relative: str) -> str:
    return relative if len(relative) <= 160 else relative[:80] + "..." + relative[-60:]


def check_output_relative_path(text: str, *, source: str = "output relative path") -> str:
    """The one check of an output socket path (image label, --output-relative-path, gc-evaluate).

    It names a folder inside the container's /output: plain components of letters, digits, '.', '_'
    and '-' only; never absolute, never '.' or '..', no other characters. A label of '../../x'
    once made the harness collect another run's prediction from the host.
    """
    value = text[:-1] if text.endswith("/") else text
    parts = value.split("/")
    if (not value or value.startswith("/") or len(value) > 255 or len(parts) > 8
            or any(part in (".", "..") or not _PATH_PART.match(part) for part in parts)):
        raise HarnessError(f"{source} {printable(text[:120])!r} is not a relative path inside /output: use plain "
                           "folder names of letters, digits, '.', '_' and '-' joined by '/' (e.g. "
                           "images/abdominal-organ-segmentation), no '..', no leading '/'")
    return value


def open_folder(root: Path, *, case_id: str) -> int:
    """A descriptor of the output folder itself, refusing a link in its place."""
    try:
        return os.open(root, _DIR_FLAGS)
    except OSError as exc:
        raise CaseFailed(FailureKind.NO_OUTPUT, f"case {case_id}: cannot open the output folder: {exc.strerror}") from None


def open_subfolder(root_fd: int, relative: str, *, case_id: str) -> int | None:
    """A descriptor of `relative` inside `root_fd`, one component at a time without following links.

    None when it does not exist; CaseFailed when a component is a link or not a folder.
    """
    fd = os.dup(root_fd)
    try:
        for part in relative.split("/"):
            if part in ("", ".", ".."):
                raise CaseFailed(FailureKind.UNSAFE_OUTPUT_PATH, f"case {case_id}: output path '{relative}' is not a plain "
                                                       "relative path")
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                os.close(fd)
                return None
            except OSError as exc:  # ELOOP: a link; ENOTDIR: a file in the way
                raise CaseFailed(FailureKind.UNSAFE_OUTPUT_PATH, f"case {case_id}: output '{relative}' is not a folder "
                                                       f"({exc.strerror})") from None
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise


def _open_chain(root_fd: int, parts: tuple[str, ...]) -> int:
    fd = os.dup(root_fd)
    for part in parts:
        try:
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
        finally:
            os.close(fd)
        fd = child
    return fd


def audit_tree(root: Path, *, case_id: str, max_bytes: int, max_depth: int = MAX_DEPTH,
               max_entries: int = MAX_ENTRIES, max_path_bytes: int = MAX_PATH_BYTES) -> OutputTree:
    """The regular files under `root`; CaseFailed on a link, a special file, or past any cap.

    Iterative (no recursion), one chain of directory descriptors open at a time.
    """
    tree = OutputTree()
    entries = 0
    root_fd = open_folder(root, case_id=case_id)
    pending: list[tuple[str, ...]] = [()]
    try:
        while pending:
            parts = pending.pop()
            try:
                fd = _open_chain(root_fd, parts)
            except OSError as exc:
                raise CaseFailed(FailureKind.UNSAFE_OUTPUT_PATH, f"case {case_id}: cannot open output folder "
                                 f"'{_shown('/'.join(parts))}': {exc.strerror}") from None
            try:
                with os.scandir(fd) as listing:
                    for entry in listing:
                        entries += 1
                        relative = "/".join((*parts, entry.name))
                        if entries > max_entries:
                            raise CaseFailed(FailureKind.OUTPUT_TOO_MANY_FILES, f"case {case_id}: outputs hold more than "
                                             f"{max_entries} files and folders; write only the prediction(s)")
                        if len(os.fsencode(relative)) > max_path_bytes:
                            raise CaseFailed(FailureKind.OUTPUT_PATH_TOO_LONG, f"case {case_id}: output path "
                                             f"'{_shown(relative)}' is longer than {max_path_bytes} bytes")
                        info = entry.stat(follow_symlinks=False)
                        if stat.S_ISLNK(info.st_mode):
                            target = os.readlink(entry.name, dir_fd=fd)
                            raise CaseFailed(FailureKind.SYMLINK_IN_OUTPUT, f"case {case_id}: output '{_shown(relative)}' is a "
                                             f"symbolic link (to {_shown(target)}); links are refused, write real files")
                        if stat.S_ISDIR(info.st_mode):
                            if len(parts) + 1 > max_depth:
                                raise CaseFailed(FailureKind.OUTPUT_TOO_DEEP, f"case {case_id}: output folders nest deeper "
                                                 f"than {max_depth} levels (at '{_shown(relative)}')")
                            pending.append((*parts, entry.name))
                        elif stat.S_ISREG(info.st_mode):
                            tree.files[relative] = info.st_size
                            if tree.total_bytes > max_bytes:
                                raise CaseFailed(FailureKind.OUTPUT_TOO_LARGE, f"case {case_id}: outputs exceed the cap of "
                                                 f"{max_bytes / 1024**2:.0f} MiB")
                        else:
                            raise CaseFailed(FailureKind.SPECIAL_FILE_IN_OUTPUT, f"case {case_id}: output '{_shown(relative)}' "
                                             "is not a regular file (devices, fifos and sockets are refused)")
            finally:
                os.close(fd)
    finally:
        os.close(root_fd)
    return tree


def open_regular(dir_fd: int, name: str, *, case_id: str, relative: str) -> int:
    """A read-only descriptor of regular file `name` in `dir_fd`, opened without following a link."""
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        raise CaseFailed(FailureKind.UNSAFE_OUTPUT_PATH, f"case {case_id}: cannot open output '{_shown(relative)}': "
                                               f"{exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise CaseFailed(FailureKind.SPECIAL_FILE_IN_OUTPUT, f"case {case_id}: output '{_shown(relative)}' is not a regular file")
    os.set_blocking(fd, True)
    return fd


def copy_out(dir_fd: int, name: str, target: Path, *, case_id: str, relative: str) -> Path:
    """Copy regular file `name` of `dir_fd` to `target` (a harness path), through descriptors only."""
    fd = open_regular(dir_fd, name, case_id=case_id, relative=relative)
    try:
        with open(target, "wb") as out:
            while chunk := os.read(fd, 1 << 20):
                out.write(chunk)
    finally:
        os.close(fd)
    return target


def remove_tree(root: Path) -> None:
    """Remove `root` and everything in it: iterative, never following links, any depth or path length.

    Descends by descriptor and climbs back with "..", so neither recursion nor path length limits
    it (shutil.rmtree recurses once per level on this Python and dies on a deep container tree).
    Best effort: what cannot be removed is left, never raised.
    """
    try:
        fd = os.open(root, _DIR_FLAGS)
    except OSError:
        return
    names: list[str] = []
    try:
        while True:
            descended = False
            for name in os.listdir(fd):
                try:
                    info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    if stat.S_ISDIR(info.st_mode):
                        child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                        os.close(fd)
                        fd, descended = child, True
                        names.append(name)
                        break
                    os.unlink(name, dir_fd=fd)
                except OSError:
                    continue
            if descended:
                continue
            if not names:
                break
            parent = os.open("..", _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = parent
            try:
                os.rmdir(names.pop(), dir_fd=fd)
            except OSError:
                return  # something in it could not go: stop rather than loop
    finally:
        os.close(fd)
    try:
        os.rmdir(root)
    except OSError:
        pass
