"""The local executor: container steps on this machine's engine, scoring in a process pool.

Container steps run in two threads that share one engine slot (`run.ENGINE_SLOT`): while one
thread's container runs case N, the other stages case N+1 (reads the NIfTI, writes the .mha) and
waits for the slot, so the next container starts as soon as the last one exits; the thread whose
container exited collects and keeps its output meanwhile. Predictions go to the scoring pool, so
case N-1 scores while case N runs: the one driver loop keeps the container busy.

On an error or Ctrl-C (`stop`), nothing new takes the slot, queued steps are dropped, this
harness's running containers are killed, and the threads are waited for, so every step's scratch
folder and container is gone when the command returns.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from harness.errors import RunStopped
from harness.manifest import case_file
from harness.runner import engine
from harness.runner.executor import CaseStep, Completed, ContainerStep
from harness.runner.layout import OutLayout
from harness.runner.metering import nvml_available
from harness.runner.run import (ENGINE_SLOT, ResolvedSubmission, RunRequest, model_mounts, resolve_submission,
                                run_flare_set, run_gc_case)
from harness.scoring.case import CaseJob
from harness.scoring.pool import ScoringPool

#: Container steps in flight: one runs, one stages (more would only hold more staged inputs on disk).
CONTAINER_THREADS = 2


class EngineSlot:
    """One container at a time on this engine; refuses new holders once the run stops."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.stopped = threading.Event()

    def __enter__(self) -> "EngineSlot":
        while not self._lock.acquire(timeout=0.2):
            if self.stopped.is_set():
                raise RunStopped("the run is stopping")
        if self.stopped.is_set():
            self._lock.release()
            raise RunStopped("the run is stopping")
        return self

    def __exit__(self, *exc) -> None:
        self._lock.release()


class LocalExecutor:
    def __init__(self, request: RunRequest, *, client=None) -> None:
        self.request = request
        self.layout = OutLayout(request.out_dir)
        self.client = client or engine.connect()
        engine.remove_leftovers(self.client)
        self._mounts = model_mounts(request.model_dir)
        self._gpu = request.policy.gpus is not None and nvml_available()
        self._slot = EngineSlot()
        self._threads = ThreadPoolExecutor(max_workers=CONTAINER_THREADS, thread_name_prefix="aeval-container")
        self._containers: dict[Future, str] = {}
        self._records: list[Completed] = []
        self._scoring = ScoringPool(workers=request.workers,
                                    on_record=lambda key, record: self._records.append(Completed(key, record=record)))
        self.submission: ResolvedSubmission | None = None

    def resolve(self, request: RunRequest) -> ResolvedSubmission:
        self.submission = resolve_submission(self.client, request)
        return self.submission

    def begin_set(self, manifest, cases) -> None:
        pass

    def submit_container(self, step: ContainerStep) -> None:
        self._containers[self._threads.submit(self._run_step, step)] = step.key

    def _run_step(self, step: ContainerStep) -> tuple:
        token = ENGINE_SLOT.set(self._slot)
        try:
            return tuple(self._container_step(step))
        finally:
            ENGINE_SLOT.reset(token)

    def _container_step(self, step: ContainerStep) -> list:
        request, sub, layout = self.request, self.submission, self.layout
        common = dict(image_id=sub.image.image_id, policy=request.policy, predictions_dir=layout.predictions(step.key),
                      extra_mounts=self._mounts, gpu_metering=self._gpu, client=self.client)
        if isinstance(step, CaseStep):
            return [run_gc_case(case_id=step.case_id, image_path=case_file(request.data_root, step.image_relative),
                                socket=step.socket, output_relative_path=sub.output_relative_path,
                                log_path=layout.case_log(step.key, step.case_id), **common)]
        return run_flare_set(key=step.key, command=sub.flare_command,
                             images={case_id: case_file(request.data_root, relative) for case_id, relative in step.cases},
                             log_path=layout.set_log(step.key), **common)

    def submit_scoring(self, key: str, job: CaseJob) -> None:
        self._scoring.submit(key, job)

    def busy(self) -> bool:
        return bool(self._containers or self._records or not self._scoring.idle())

    def collect(self, timeout: float) -> list[Completed]:
        self._scoring.collect(block=False)
        if not self._records and not any(f.done() for f in self._containers):
            wait([*self._containers, *self._scoring.futures()], timeout=timeout, return_when=FIRST_COMPLETED)
            self._scoring.collect(block=False)
        done = [Completed(self._containers.pop(f), containers=f.result())
                for f in [f for f in self._containers if f.done()]]
        done, self._records = self._records + done, []
        return done

    def stop(self) -> None:
        self._slot.stopped.set()
        for future in self._containers:
            future.cancel()
        running = [f for f in self._containers if not f.cancelled()]
        while running:
            self._kill_own_containers()
            _, pending = wait(running, timeout=0.5)
            running = list(pending)
        self._threads.shutdown(wait=True, cancel_futures=True)
        self._scoring.cancel()

    def _kill_own_containers(self) -> None:
        mine = {"label": [f"{engine.OWNER_PID_LABEL}={os.getpid()}"]}
        try:
            for container in self.client.containers.list(filters=mine):
                try:
                    container.kill()
                except Exception:  # already gone
                    pass
        except Exception:  # the engine is gone: nothing of ours runs there
            pass

    def close(self) -> None:
        self._threads.shutdown(wait=True)
        self._scoring.close()

    def not_run(self) -> list[str]:
        return []
