"""The watchdog process itself (`python -m harness.runner.reaper_process PID START SCRATCH`).

Started by `reaper.ensure_watchdog` in its own session, it outlives a killed harness: once its parent
is gone it removes that harness's containers and scratch. Kept apart from `reaper` so that the engine,
which starts the watchdog, and the watchdog, which uses the engine, import no cycle.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from harness.runner import engine, scratch
from harness.runner.reaper import POLL_S


def _reap(owner_pid: int, owner_start: str, scratch_folder: Path) -> None:
    try:
        client = engine.connect()
        engine.remove_containers_of(client, owner_pid, owner_start)
    except Exception:  # no engine: nothing of ours can run there
        pass
    scratch.remove_tree(scratch_folder)
    scratch.remove_root_if_empty(scratch_folder.parent)


def main(argv: list[str]) -> int:
    owner_pid, owner_start, scratch_folder = int(argv[0]), argv[1], Path(argv[2])
    while os.getppid() == owner_pid:
        time.sleep(POLL_S)
    _reap(owner_pid, owner_start, scratch_folder)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
