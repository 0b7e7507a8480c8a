"""Running the package's numba kernels on the machine's cores, safely from any thread.

Why: numba's default threading layer (workqueue) aborts the process when two threads launch
parallel kernels at once, and the harness scores from threads as well as processes. Kernels are
therefore launched under one process-wide lock; parallelism comes from inside each kernel.
Scoring pools that run several processes call :func:`share_cores` so that processes times threads
stays at the number of cores.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import numba

_LAUNCH = threading.Lock()


def run_parallel(kernel: Callable[..., Any], *args: Any) -> Any:
    """Call a ``parallel=True`` kernel; calls from several threads run one after another."""
    with _LAUNCH:
        return kernel(*args)


def share_cores(processes: int) -> int:
    """Give this process its share of the cores for kernel threads; returns the thread count."""
    threads = max(1, (os.cpu_count() or 1) // max(1, processes))
    threads = min(threads, numba.config.NUMBA_NUM_THREADS)
    numba.set_num_threads(threads)
    return threads
