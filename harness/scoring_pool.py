"""Score cases in worker processes while the caller goes on (next container, next file).

Scoring is CPU-bound numpy work; a pool of processes keeps it off the thread that drives Docker
and lets several cases score at once. Each finished record is handed to `on_record` in the
calling thread, which writes the results file, so results are saved after every case.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Callable

from harness.scoring import CaseJob, score_files


def default_workers() -> int:
    return max(1, min(4, (os.cpu_count() or 1)))


class ScoringPool:
    def __init__(self, *, workers: int, on_record: Callable[[str, dict], None]) -> None:
        self._on_record = on_record
        self._pending: dict[Future, str] = {}
        self._executor = (ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))
                          if workers > 1 else None)

    def submit(self, key: str, job: CaseJob) -> None:
        if self._executor is None:
            self._on_record(key, score_files(job))
            return
        self._pending[self._executor.submit(score_files, job)] = key
        self.collect(block=False)

    def collect(self, *, block: bool) -> None:
        """Hand over finished records; with block=True wait for all pending ones."""
        while self._pending:
            done, _ = wait(list(self._pending), timeout=None if block else 0, return_when=FIRST_COMPLETED)
            if not done:
                return
            for future in done:
                key = self._pending.pop(future)
                self._on_record(key, future.result())

    def pending(self) -> int:
        return len(self._pending)

    def close(self) -> None:
        try:
            self.collect(block=True)
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "ScoringPool":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        elif self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
