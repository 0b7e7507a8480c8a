"""The scoring pool: workers from a forkserver, a dead worker is one failed case, workers die with the harness."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness.jsonio import validate
from harness.labelmap import build_mapping, resolve_label_map
from harness.manifest import case_file, load_benchmark
from harness.scoring.case import CaseJob, score_files
from harness.scoring.pool import ScoringPool

REPO = Path(__file__).resolve().parents[2]


def score_or_die(job: CaseJob) -> dict:
    """Scores as the harness does, except that a case named 'kill-*' is SIGKILLed mid-scoring (the OOM killer's way)."""
    if job.case_id.startswith("kill-"):
        os.kill(os.getpid(), signal.SIGKILL)
    if job.case_id.startswith("exit-"):
        os._exit(3)
    return score_files(job)


def sleep_forever(job: CaseJob) -> dict:
    """Writes this worker's pid next to the prediction path, then blocks: a long scoring job."""
    Path(f"{job.pred_path}.{os.getpid()}.pid").write_text(str(os.getpid()))
    time.sleep(600)
    return {}


def _jobs(root: Path, names: list[str]) -> list[CaseJob]:
    manifest = load_benchmark("synthetic", keys=["btcv"])[0]
    mapping = build_mapping(resolve_label_map("btcv"))
    jobs = []
    for index, name in enumerate(names):
        case = manifest.cases[index % len(manifest.cases)]
        label = case_file(root, case.label)  # the ground truth as prediction: a perfect case
        jobs.append(CaseJob(case_id=name or case.case_id, gt_path=label, pred_path=label, gt_mapping=manifest.gt_mapping,
                            pred_mapping=mapping))
    return jobs


@pytest.mark.parametrize("victim", ["kill-me", "exit-me"])
def test_a_dead_worker_is_a_failed_case_and_the_others_are_scored(synthetic_root, victim):
    records: dict[str, dict] = {}
    jobs = _jobs(synthetic_root, ["a", victim, "b", "c", "d"])
    with ScoringPool(workers=2, on_record=lambda key, record: records.__setitem__(record["case_id"], record),
                     score=score_or_die) as pool:
        for job in jobs:
            pool.submit("btcv", job)
    assert set(records) == {"a", victim, "b", "c", "d"}
    for name in ("a", "b", "c", "d"):
        assert records[name]["status"] == "ok" and records[name]["metrics"]["liver"]["dice"] == 1.0
    dead = records[victim]
    assert dead["status"] == "failed" and dead["error_kind"] == "scoring_error"
    assert f"case {victim}: the scoring worker process died" in dead["error"]
    validate(dead, "results", where="dead worker record", definition="case")


def test_pool_keeps_working_after_two_deaths_in_a_row(synthetic_root):
    records: dict[str, dict] = {}
    with ScoringPool(workers=2, on_record=lambda key, record: records.__setitem__(record["case_id"], record),
                     score=score_or_die) as pool:
        for job in _jobs(synthetic_root, ["kill-1", "kill-2", "a"]):
            pool.submit("btcv", job)
    assert {k: r["status"] for k, r in records.items()} == {"kill-1": "failed", "kill-2": "failed", "a": "ok"}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as handle:
            return "\nState:\tZ" not in handle.read()
    except FileNotFoundError:
        return False


def test_scoring_workers_die_with_a_harness_killed_by_sigkill(synthetic_root, tmp_path):
    """kill -9 of the process that owns the pool: no scoring worker survives it."""
    jobs = _jobs(synthetic_root, ["a", "b"])
    pids = tmp_path / "pids"
    pids.mkdir()
    script = textwrap.dedent(f"""
        import dataclasses, pathlib, time
        from harness.scoring.pool import ScoringPool
        from harness.labelmap import build_mapping, resolve_label_map
        from harness.manifest import load_benchmark
        from harness.scoring.case import CaseJob
        from tests.harness.test_scoring_pool import sleep_forever
        manifest = load_benchmark("synthetic", keys=["btcv"])[0]
        pool = ScoringPool(workers=2, on_record=print, score=sleep_forever)
        for name in ("a", "b"):
            pool.submit("btcv", CaseJob(case_id=name, gt_path=pathlib.Path({str(jobs[0].gt_path)!r}),
                                        pred_path=pathlib.Path({str(pids)!r}) / name, gt_mapping=manifest.gt_mapping,
                                        pred_mapping=build_mapping(resolve_label_map("btcv"))))
        time.sleep(600)
    """)
    harness = subprocess.Popen([sys.executable, "-c", script], cwd=REPO,
                               env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.monotonic() + 120
        while len(list(pids.glob("*.pid"))) < 2:
            assert time.monotonic() < deadline and harness.poll() is None, "the workers never started"
            time.sleep(0.1)
        workers = [int(p.read_text()) for p in pids.glob("*.pid")]
        assert all(_alive(pid) for pid in workers)
    finally:
        harness.send_signal(signal.SIGKILL)
        harness.wait()
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [pid for pid in workers if _alive(pid)]
    for pid in survivors:  # do not leave them behind even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"scoring workers {survivors} outlived their harness"
