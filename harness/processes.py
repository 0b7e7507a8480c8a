"""Whether a process still lives: the one check behind every "die with the harness" and "dead owner" rule."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True while `pid` exists on this host (also when it belongs to another user and cannot be signalled)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True
