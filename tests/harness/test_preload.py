"""The scoring workers' forkserver preload: what it holds and what it skips (and that skipping it loses nothing)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

STATE = """
import gc, json, sys
import harness.scoring.preload as preload
from harness.taxonomy import load_taxonomy
import numba.np.arraymath
probe_hidden = sys.modules.get(preload.BLAS_PROBE_MODULE, 0) is None
state = {"gc_enabled": gc.isenabled(), "frozen": gc.get_freeze_count(), "probe_hidden": probe_hidden,
         "scipy_linalg": "scipy.linalg" in sys.modules, "have_blas": numba.np.arraymath._HAVE_BLAS,
         "taxonomy_cached": load_taxonomy.cache_info().currsize}
import scipy.linalg.cython_blas  # a later import of scipy.linalg works as usual
print(json.dumps(state))
"""


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[-1]


def test_preload_holds_the_scoring_code_frozen_without_numbas_blas_probe():
    state = json.loads(_run(STATE))
    assert state["gc_enabled"]  # collection is back on for what the workers allocate
    assert state["frozen"] > 100_000  # numba's objects: never walked by a worker's collections
    assert not state["probe_hidden"]  # the probe's stand-in is gone again
    assert not state["scipy_linalg"] and not state["have_blas"]
    assert state["taxonomy_cached"] == 1


def test_blas_still_compiles_after_the_skipped_probe():
    """The skip only changes how np.correlate takes inner products: a kernel calling np.dot still compiles
    (numba imports scipy's BLAS then) and computes."""
    out = _run("import harness.scoring.preload, numba, numpy as np\n"
               "dot = numba.njit(lambda a, b: np.dot(a, b))\n"
               "print(dot(np.arange(3.0), np.arange(3.0)))")
    assert float(out) == 5.0
