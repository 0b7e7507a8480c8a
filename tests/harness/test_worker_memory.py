"""Scoring workers take large blocks from their heap and keep what they free (glibc's mallinfo2 tells)."""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.scoring.case import CaseJob
from harness.scoring.pool import ScoringPool

REPO = Path(__file__).resolve().parents[2]


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def _mallinfo2() -> dict[str, int]:
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2()
    return {name: getattr(info, name) for name, _ in _MallInfo2._fields_}


try:
    _mallinfo2()
except (OSError, AttributeError):
    pytest.skip("needs glibc's mallinfo2 (glibc >= 2.33)", allow_module_level=True)

def large_block_figures() -> dict[str, dict[str, int]]:
    """The heap figures before, during and after a 64 MiB array is allocated, touched and freed here."""
    import numpy as np

    before = _mallinfo2()
    block = np.ones(64 * 1024**2, np.uint8)
    during = _mallinfo2()
    del block
    return {"before": before, "during": during, "after": _mallinfo2()}


#: A fresh process's figures, with its freed memory kept (argument "keep") or glibc's defaults.
PROBE = textwrap.dedent("""
    import json, sys
    from tests.harness.test_worker_memory import large_block_figures
    from harness.scoring.worker_memory import keep_freed_memory
    if sys.argv[1] == "keep":
        assert keep_freed_memory()
    print(json.dumps(large_block_figures()))
""")


def _probe(mode: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_kept_memory_comes_from_the_heap_and_stays_there():
    _assert_kept(_probe("keep"))
    default = _probe("default")  # the contrast: glibc maps such a block and unmaps it at free
    assert _grown(default, "during", "hblkhd") >= 64 * 1024**2
    assert _grown(default, "after", "hblkhd") == 0


def _assert_kept(figures: dict) -> None:
    assert _grown(figures, "during", "hblkhd") == 0  # the block got no mapping of its own: the heap grew
    assert _grown(figures, "during", "arena") >= 32 * 1024**2  # (what the heap had free served the rest)
    assert figures["after"]["arena"] == figures["during"]["arena"]  # freed, not trimmed: the next case reuses it


def _grown(figures: dict, when: str, field: str) -> int:
    return figures[when][field] - figures["before"][field]


def heap_after_a_large_block(job: CaseJob) -> dict:
    """Run in a pool worker as its scoring function: the worker's large-block figures."""
    return {"case_id": job.case_id, **large_block_figures()}


def test_pool_workers_keep_freed_memory(tmp_path):
    seen: list[dict] = []
    job = CaseJob(case_id="probe", gt_path=tmp_path / "gt.nii.gz", pred_path=tmp_path / "pred.nii.gz",
                  gt_mapping=None, pred_mapping=None)
    with ScoringPool(workers=2, on_record=lambda key, record: seen.append(record),
                     score=heap_after_a_large_block) as pool:
        pool.submit("probe", job)
    [record] = seen
    _assert_kept(record)
