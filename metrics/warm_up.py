"""Compile the scoring kernels once, so that the first case a user scores does not wait for it.

numba compiles a kernel at its first call and caches the machine code beside the module (or in
``NUMBA_CACHE_DIR``); later processes load it in milliseconds. ``scripts/setup.sh`` runs this
module, which scores one small speckled case through every kernel (about half a minute).

    python -m metrics.warm_up
"""

from __future__ import annotations

import time

import numpy as np

from metrics.case import score_case
from metrics.options import OrganSpec
from metrics.surfel_stats import EXACT_BELOW


def warm_up() -> float:
    """Score a case that reaches every kernel (the percentile's large-surface path included); seconds."""
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    shape = (40, 120, 120)
    gt = np.zeros(shape, np.uint8)
    gt[10:30, 20:90, 30:100] = 1
    gt[5:35, 95:110, 40:60] = 2
    pred = np.where(rng.random(shape) < 0.2, 1, 0).astype(np.uint8)
    assert np.count_nonzero(pred) > EXACT_BELOW  # enough surfels for the histogram path
    organs = [OrganSpec(1, "one", 2.0), OrganSpec(2, "two", 3.0, restrict_to_gt_extent=True)]
    score_case(gt, pred, spacing_mm=(2.5, 0.8, 0.8), organs=organs, si_axis=0)
    score_case(gt, pred, spacing_mm=(2.5, 0.8, 0.8), organs=organs, si_axis=0, metrics=("dice", "nsd"))
    return time.perf_counter() - start


if __name__ == "__main__":
    print(f"scoring kernels compiled and cached in {warm_up():.1f} s")
