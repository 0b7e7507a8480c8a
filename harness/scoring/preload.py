"""What the scoring pool's forkserver loads once, before it forks any worker.

Every worker is forked from the forkserver and inherits what it holds. Besides the scoring code,
one run of a compiled kernel loads numba's shared machinery (its type registries: 0.2 s here)
into the forkserver, where it used to be paid again by every worker on its first case. Only a
kernel without ``parallel=True`` is run here: a parallel one would start numba's OpenMP threads,
and a process that has started them must not fork.

The forkserver's preloading is the start-up's critical path (the first case waits for it), so:
- the cyclic garbage collector is off while it imports: numba and its registries create a few
  hundred thousand objects, and each collection pass walks them all again;
- what it holds is then frozen (``gc.freeze``): a worker's collections never walk the inherited
  objects, so they neither cost it time nor copy the forkserver's pages into it (copy-on-write);
- the taxonomy every record names its organs from is loaded (and schema-checked) once, here;
- numba's BLAS probe is skipped: at the machinery's first load numba imports scipy.linalg (0.2-0.3
  s, scipy's array-API layer with it) only to choose how np.correlate and np.convolve take inner
  products (BLAS or a loop); np.dot and np.linalg import scipy themselves when a kernel that calls
  them is compiled, and no scoring kernel calls any of them.
"""

from __future__ import annotations

import gc
import sys

_collecting = gc.isenabled()
gc.disable()

import nibabel  # noqa: E402,F401  (the NIfTI header parser of every .nii.gz read; the driver never needs it)
import numpy as np  # noqa: E402

import metrics.case as metric_code  # noqa: E402
from harness import label_lookup  # noqa: E402
from harness.scoring import case as scoring_code  # noqa: E402
from harness.taxonomy import load_taxonomy  # noqa: E402

__all__ = ["metric_code", "scoring_code", "load_compiled_machinery"]

#: The module whose import is numba's BLAS probe (numba.np.arraymath imports it to set _HAVE_BLAS).
BLAS_PROBE_MODULE = "scipy.linalg.cython_blas"


def load_compiled_machinery() -> None:
    """Load numba's machinery by running one small non-parallel kernel, without its BLAS probe."""
    probed = BLAS_PROBE_MODULE in sys.modules
    if not probed:
        sys.modules[BLAS_PROBE_MODULE] = None  # the probe's import fails at once: "no BLAS"
    try:
        background = np.zeros(64, np.uint8)
        label_lookup.lookup_bytes(background, np.zeros(256, np.uint8), 255, np.empty_like(background))
    finally:
        if not probed and sys.modules.get(BLAS_PROBE_MODULE, 0) is None:
            del sys.modules[BLAS_PROBE_MODULE]  # a later import of scipy.linalg works as usual


load_compiled_machinery()
load_taxonomy()  # read and validated once here, not again in every worker's first case
gc.freeze()
if _collecting:
    gc.enable()
