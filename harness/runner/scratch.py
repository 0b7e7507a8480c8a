"""Scratch folders the harness owns, in one folder per owning process so that leftovers can be found.

A case stages its inputs and receives its outputs in a scratch folder; a harness killed with
`kill -9` cannot remove it. Every scratch folder therefore lives under
`<tmp>/aeval-scratch/<host>-<pid>-<start time>/`, and a harness starting on the same host removes
the folders of owners that are no longer alive (the start time tells a reused pid from its
owner), exactly as it removes their containers. An output folder may still be a mount point (see
`outputfs`): removal unmounts first, so nothing is left mounted either.
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import tempfile
from pathlib import Path

from harness.processes import pid_alive

ROOT_NAME = "aeval-scratch"


def process_start_time(pid: int) -> str:
    """The kernel's start time of `pid` (clock ticks since boot; "" where /proc cannot tell)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]  # field 22: starttime (fields after the command name)


def owner_alive(host: str, pid: int, start_time: str = "") -> bool:
    """Whether the owner `pid` on `host` still runs (True for another host: it cannot be checked from here)."""
    if host != socket.gethostname():
        return True
    if not pid_alive(pid):
        return False
    return not start_time or process_start_time(pid) in ("", start_time)


def owner_name(pid: int | None = None) -> str:
    pid = pid or os.getpid()
    return f"{socket.gethostname()}-{pid}-{process_start_time(pid)}"


def scratch_root(base: Path | None = None) -> Path:
    return Path(base or tempfile.gettempdir()) / ROOT_NAME


_registered: set[Path] = set()


def owner_dir(base: Path | None = None) -> Path:
    """This process's scratch folder (created on first use); cases make their own folders inside it.

    It is removed when the process exits (normally or on Ctrl-C); after `kill -9` the watchdog or
    the next harness removes it.
    """
    folder = scratch_root(base) / owner_name()
    folder.mkdir(parents=True, exist_ok=True)
    if folder not in _registered:
        _registered.add(folder)
        atexit.register(_remove_at_exit, folder, os.getpid())
    return folder


def _remove_at_exit(folder: Path, pid: int) -> None:
    if os.getpid() == pid:  # not in a forked child that inherited the handler
        remove_tree(folder)
        remove_root_if_empty(folder.parent)


def remove_root_if_empty(root: Path) -> None:
    try:
        root.rmdir()
    except OSError:
        pass


def _parse_owner(name: str) -> tuple[str, int, str] | None:
    host, _, rest = name.rpartition("-")  # host names may hold dashes: pid and start time are the last two
    host, _, pid = host.rpartition("-")
    try:
        return host, int(pid), rest
    except ValueError:
        return None


def remove_dead_owners(base: Path | None = None) -> int:
    """Remove the scratch folders of this host's owners that are gone; the number removed."""
    root = scratch_root(base)
    if not root.is_dir():
        return 0
    removed = 0
    for folder in root.iterdir():
        owner = _parse_owner(folder.name)
        if owner is None or owner[0] != socket.gethostname() or owner_alive(*owner):
            continue
        remove_tree(folder)
        removed += 1
    return removed


def mounts_under(folder: Path) -> list[Path]:
    """Mount points at or below `folder`, deepest first (from /proc/self/mountinfo)."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    prefix = str(folder.resolve())
    points = []
    for line in lines:
        point = line.split()[4].encode().decode("unicode_escape")  # octal escapes such as \040
        if point == prefix or point.startswith(prefix + "/"):
            points.append(Path(point))
    return sorted(points, key=lambda p: len(p.parts), reverse=True)


def unmount(point: Path) -> None:
    """Detach a mount (lazily: a container that still holds it keeps it until it ends)."""
    subprocess.run(["umount", "-l", str(point)], check=False, capture_output=True)


def remove_tree(folder: Path) -> None:
    """Remove a scratch folder: unmount what is mounted inside it, then delete it."""
    from harness.runner.protocols.outputs_tree import remove_tree as remove_any_depth

    for point in mounts_under(folder):
        unmount(point)
    remove_any_depth(folder)  # a container may leave a tree too deep for shutil.rmtree
