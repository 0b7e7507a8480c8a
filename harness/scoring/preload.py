"""What the scoring pool's forkserver loads once, before it forks any worker.

Every worker is forked from the forkserver and inherits what it holds. Besides the scoring code,
one run of a compiled kernel loads numba's shared machinery (its type registries and BLAS check:
0.4-0.6 s here) into the forkserver, where it used to be paid again by every worker on its first
case. Only a kernel without ``parallel=True`` is run here: a parallel one would start numba's
OpenMP threads, and a process that has started them must not fork.
"""

from __future__ import annotations

import numpy as np

import metrics.case as metric_code
from harness import label_lookup
from harness.scoring import case as scoring_code

__all__ = ["metric_code", "scoring_code", "load_compiled_machinery"]


def load_compiled_machinery() -> None:
    background = np.zeros(64, np.uint8)
    label_lookup.lookup_bytes(background, np.zeros(256, np.uint8), 255, np.empty_like(background))


load_compiled_machinery()
