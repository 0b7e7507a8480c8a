"""The driver's processes (the CLI, `harness evaluate`, `harness run`'s loop, the scoring pool)
never import the scoring kernels' compiler.

Why: numba (and the scipy it pulls in) costs a process 0.5-1 s of start-up and hundreds of MB of
address space; only scoring workers need it, and their forkserver preloads it once
(`harness.scoring.preload`). A top-level `from metrics import score_case` in a module the driver
imports brought it back once unnoticed; this test notices.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

DRIVER_MODULES = ["harness.cli", "harness.scoring.evaluate", "harness.scoring.pool", "harness.scoring.case",
                  "harness.runner.driver", "harness.runner.local"]
SCORING_ONLY = ["numba", "llvmlite", "scipy"]


def modules_loaded_by(imports: list[str]) -> set[str]:
    """Top-level packages in sys.modules of a fresh interpreter after importing `imports`."""
    code = "; ".join(f"import {name}" for name in imports) + "; import json, sys; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {name.partition(".")[0] for name in json.loads(done.stdout.splitlines()[-1])}


@pytest.mark.parametrize("module", DRIVER_MODULES)
def test_driver_module_does_not_import_the_kernel_compiler(module):
    assert not set(SCORING_ONLY) & modules_loaded_by([module])


def test_the_check_sees_the_compiler_where_it_is_imported():
    assert {"numba", "scipy"} <= modules_loaded_by(["harness.scoring.preload"])
