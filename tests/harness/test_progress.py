"""Progress of `harness run`: plain lines off a terminal, per-set bars that stop when their set is done."""

from __future__ import annotations

import io

from harness.progress import RunProgress


def _record(case_id: str, status: str = "ok") -> dict:
    return {"case_id": case_id, "status": status, "error_kind": None if status == "ok" else "crash"}


def test_plain_lines_when_not_a_terminal_with_counts_and_eta():
    stream = io.StringIO()  # not a TTY: a log file, CI
    progress = RunProgress(enabled=True, stream=stream)
    progress.start_set("btcv", 1, 3)  # one case resumed from an earlier run
    progress.start_set("word", 0, 2)
    progress.case_done("btcv", _record("img0002"))
    progress.case_done("word", _record("word_0001", "failed"))
    progress.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and "\x1b" not in stream.getvalue() and "\r" not in stream.getvalue()
    assert lines[0].startswith("btcv img0002: ok") and "[btcv 2/3, all 2/5," in lines[0] and "ETA " in lines[0]
    assert lines[1].startswith("word word_0001: failed (crash)") and "[word 1/2, all 3/5," in lines[1]


def test_disabled_progress_prints_nothing():
    stream = io.StringIO()
    progress = RunProgress(enabled=False, stream=stream)
    progress.start_set("btcv", 0, 1)
    progress.case_done("btcv", _record("img0001"))
    progress.close()
    assert stream.getvalue() == ""


def test_a_finished_sets_bar_is_closed_at_once_and_the_overall_bar_counts_every_case():
    stream = io.StringIO()
    progress = RunProgress(enabled=True, stream=stream, bars=True)
    progress.start_set("btcv", 0, 1)
    progress.start_set("word", 0, 2)
    progress.start_set("flare22", 2, 2)  # resumed and complete: closed from the start
    bars = progress._set_bars
    assert bars["flare22"].disable  # tqdm's closed state: no more refreshes, its clock is frozen on screen
    progress.case_done("btcv", _record("img0001"))
    assert bars["btcv"].disable and not bars["word"].disable
    progress.case_done("word", _record("word_0001"))
    assert progress._overall.n == 4 and progress._overall.total == 5
    progress.close()
    assert "btcv" in stream.getvalue() and "all" in stream.getvalue()
