"""The watchdog that outlives a killed harness: its containers and scratch folder go with it.

`kill -9` of a harness leaves its containers running (no time limit stops them: the harness
enforces it by waiting) and its scratch folder on disk. The first container a harness process
starts also starts this watchdog, a separate process in its own session, so that killing the
harness (or its process group) does not kill the watchdog. It does nothing but check every
quarter second whether its parent still lives; once the parent is gone, for whatever reason, it
kills and removes every container that parent started (found by their owner labels) and removes
the parent's scratch folder, then exits. A harness that exits normally has already removed its
containers; the watchdog then only removes the scratch folder.

Nothing of this needs the participant's image to contain anything, and it works with any engine
version: a killed harness cannot collect a container's outputs, so its containers are stopped at
once rather than at their time limit. Should the watchdog die too, the next harness on the host
removes both at start-up (`engine.remove_leftovers`, `scratch.remove_dead_owners`).

    python -m harness.runner.reaper_process OWNER_PID OWNER_START_TIME SCRATCH_FOLDER
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

POLL_S = 0.25

_lock = threading.Lock()
_started_for: int | None = None  # the pid whose watchdog runs (a forked child needs its own)


def ensure_watchdog(scratch_folder: Path) -> None:
    """Start this process's watchdog once (again in a forked child, which is another owner)."""
    global _started_for
    from harness.runner.scratch import process_start_time

    with _lock:
        if _started_for == os.getpid():
            return
        package_root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root,
                                                                         os.environ.get("PYTHONPATH")]))}
        subprocess.Popen([sys.executable, "-m", "harness.runner.reaper_process", str(os.getpid()),
                          process_start_time(os.getpid()), str(scratch_folder)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True, close_fds=True, env=env)
        _started_for = os.getpid()
