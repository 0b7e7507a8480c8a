"""Score cases in worker processes while the caller goes on (next container, next file).

Scoring is CPU-bound numpy work; a pool of processes keeps it off the thread that drives Docker
and lets several cases score at once. Each finished record is handed to `on_record` in the
calling thread, which writes the results file, so results are saved after every case.

Three rules keep a run alive and the machine clean whatever a prediction does to a worker:
- workers start from a `forkserver` (a small single-threaded process), never by forking the
  harness, which runs threads (Docker's HTTP pool, the memory sampler): forking a threaded process
  can copy a lock held by another thread and hang the child;
- a worker that dies (the OOM killer, a crash in a C library) breaks the executor: the pool starts
  a new one, and the jobs that were in flight are scored again one at a time, so the one that kills
  its worker alone becomes a failed case (`scoring_error`) and the others are scored as usual;
- workers die with the harness (even after `kill -9`): each watches the harness's pid from its
  first moment (`die_with`), and the forkserver exits once they are gone.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Callable

from harness.processes import pid_alive
from harness.results import failed_record
from harness.scoring.case import CaseJob, score_files
from harness.scoring.worker_memory import keep_freed_memory
from harness.scoring.workers import worker_context
from harness.taxonomy import load_taxonomy

#: prctl(2) option: the signal this process gets when its parent dies (linux/prctl.h).
PR_SET_PDEATHSIG = 1


def die_with(harness_pid: int) -> None:
    """Worker initializer: this process ends as soon as the harness process `harness_pid` does.

    Two guards, because a forkserver worker's parent is the forkserver, not the harness:
    PR_SET_PDEATHSIG (SIGKILL when the parent dies; Linux), and a daemon thread that waits on a
    pidfd of the harness (no polling) and kills this process when the harness is gone, even by
    `kill -9`. The forkserver itself exits once the harness and all workers are gone.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    try:
        pidfd = os.pidfd_open(harness_pid)
    except ProcessLookupError:
        os._exit(1)  # the harness died before this worker started
    except (AttributeError, OSError):
        pidfd = None
    threading.Thread(target=_watch, args=(harness_pid, pidfd), name="aeval-harness-watch", daemon=True).start()


def start_worker(harness_pid: int, workers: int) -> None:
    """Worker initializer: die with the harness, use this worker's share of the cores for the
    scoring kernels' threads (workers x threads = cores), and keep freed memory for the next case."""
    from metrics.parallel import share_cores  # numba: imported in workers only, never by the driver

    die_with(harness_pid)
    share_cores(workers)
    keep_freed_memory()


def _watch(harness_pid: int, pidfd: int | None) -> None:
    if pidfd is not None:
        select.select([pidfd], [], [])  # readable once the process has exited
    else:
        while pid_alive(harness_pid):
            time.sleep(1)
    os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class _Job:
    key: str
    job: CaseJob
    alone: bool = False  # in flight when a worker died: run with no other job, to find the one that kills


def worker_death_record(job: CaseJob) -> dict:
    """The failed record of a case whose scoring killed its worker process (on its own, so it is this case)."""
    return failed_record(job.case_id, kind="scoring_error",
                         message=f"case {job.case_id}: the scoring worker process died while scoring this case "
                                 "(killed by the system, e.g. out of memory, or crashed); the prediction "
                                 f"{job.pred_path.name if job.pred_path else '(none)'} was not scored",
                         organs=list(load_taxonomy().organ_names), metrics=job.settings.metrics, runtime=job.runtime)


class ScoringPool:
    """`submit(key, job)` jobs, records come back through `on_record(key, record)` in this thread.

    `workers=1` scores in this process (no worker to lose, nothing to start). `score` is the
    function run per job (a module-level, picklable function; `score_files` for every real use).
    """

    def __init__(self, *, workers: int, on_record: Callable[[str, dict], None],
                 score: Callable[[CaseJob], dict] = score_files) -> None:
        self._on_record = on_record
        self._score = score
        self._workers = workers
        self._queue: deque[_Job] = deque()  # not handed to the executor yet
        self._running: dict[Future, _Job] = {}  # at most `workers`: a dead worker takes only those with it
        self._executor = self._new_executor() if workers > 1 else None

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self._workers, mp_context=worker_context(), initializer=start_worker,
                                   initargs=(os.getpid(), self._workers))

    def submit(self, key: str, job: CaseJob) -> None:
        if self._executor is None:
            self._on_record(key, self._score(job))
            return
        self._queue.append(_Job(key, job))
        self.collect(block=False)

    def idle(self) -> bool:
        """No job waits or runs."""
        return not (self._queue or self._running)

    def futures(self) -> list[Future]:
        """The jobs running now, for a caller that waits on them with its own futures."""
        return list(self._running)

    def _pump(self) -> None:
        """Hand queued jobs to the executor: one per worker; a job under suspicion runs alone."""
        while self._queue and len(self._running) < self._workers:
            head = self._queue[0]
            if self._running and (head.alone or any(j.alone for j in self._running.values())):
                return
            self._queue.popleft()
            self._running[self._executor.submit(self._score, head.job)] = head

    def collect(self, *, block: bool) -> None:
        """Hand over finished records; with block=True wait for every job submitted so far."""
        while self._queue or self._running:
            self._pump()
            done, _ = wait(list(self._running), timeout=None if block else 0, return_when=FIRST_COMPLETED)
            if not done:
                return
            lost = self._finish(done)
            if lost:
                wait(list(self._running))  # a broken executor fails every future it holds, at once
                lost += self._finish(list(self._running))
                self._replace_executor(lost)

    def _finish(self, futures) -> list[_Job]:
        """Records of the finished futures to on_record; the jobs whose worker died are returned."""
        lost = []
        for future in futures:
            job = self._running.pop(future)
            try:
                record = future.result()
            except BrokenProcessPool:
                lost.append(job)
                continue
            self._on_record(job.key, record)
        return lost

    def _replace_executor(self, lost: list[_Job]) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._executor = self._new_executor()
        if len(lost) == 1:  # it was the only job in flight: it killed its worker
            self._on_record(lost[0].key, worker_death_record(lost[0].job))
            return
        self._queue.extendleft(_Job(j.key, j.job, alone=True) for j in reversed(lost))

    def close(self) -> None:
        try:
            self.collect(block=True)
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True, cancel_futures=True)

    def cancel(self) -> None:
        """An error or Ctrl-C: drop what waits, do not wait for what runs (its record would go nowhere)."""
        self._queue.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> "ScoringPool":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.cancel()
