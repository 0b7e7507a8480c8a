"""How many scoring worker processes, and how they are started: light enough to import first.

The workers' forkserver takes about a second to preload the scoring code and numba's machinery
(:mod:`harness.scoring.preload`). A command starts it with :func:`start_early` before it imports
anything heavy itself, so that the preloading runs beside the command's own start-up (imports,
manifests, label maps, the results file) instead of holding up the first case.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os

__all__ = ["default_workers", "start_early", "worker_context"]


def default_workers() -> int:
    return max(1, min(4, (os.cpu_count() or 1)))


def worker_context() -> multiprocessing.context.BaseContext:
    """forkserver (preloaded with the scoring code and numba's machinery, so a new worker starts in
    milliseconds), else spawn."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["harness.scoring.preload"])
    return context


def start_early(workers: int) -> None:
    """Start the workers' forkserver now, if there will be workers (more than one)."""
    if workers > 1 and worker_context().get_start_method() == "forkserver":
        multiprocessing.forkserver.ensure_running()
