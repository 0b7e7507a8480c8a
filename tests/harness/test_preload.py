"""The scoring workers' forkserver preload: what it holds, what it skips, and that scoring still works without it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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


def _run(code: str, **env: str) -> str:
    import os

    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **env})
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[-1]


def test_preload_holds_the_scoring_code_frozen_without_numbas_blas_probe():
    state = json.loads(_run(STATE))
    assert state["gc_enabled"]  # collection is back on for what the workers allocate
    assert state["frozen"] > 100_000  # numba's objects: never walked by a worker's collections
    assert not state["probe_hidden"]  # the probe's stand-in is gone again
    assert not state["scipy_linalg"] and not state["have_blas"]
    assert state["taxonomy_cached"] == 1


@pytest.mark.slow
def test_every_scoring_kernel_compiles_without_blas(tmp_path):
    """With the probe skipped numba cannot compile np.dot and its kind; compiling every kernel from an
    empty cache after the preload proves none of them needs it (about 50 s)."""
    out = _run("import harness.scoring.preload, numba.np.arraymath as a; assert not a._HAVE_BLAS\n"
               "from metrics.warm_up import warm_up; print(warm_up())", NUMBA_CACHE_DIR=str(tmp_path))
    assert float(out) > 0
    assert any(tmp_path.rglob("*.nbi"))  # it compiled (and cached) rather than loading the shared cache
