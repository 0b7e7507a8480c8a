"""The Dask executor of a run: one Dask task per container step, scoring as CPU tasks.

The driver loop (`harness.runner.driver.SubmissionRun`) is the same as a local run's; this
executor resolves the submission on a worker, submits one container task per case
(Grand-Challenge protocol; one per test set for FLARE) with a worker resource (`GPU` on GPU runs,
`CONTAINER` otherwise, so a worker runs one container per GPU or at a time), and for each
prediction a scoring task that needs no resource (a CPU task). Workers write predictions and logs
to OUT (shared storage, `OutLayout`); case records come back to the driver, which alone writes
results.json. Per-worker state (engine client, loaded images, GPU slots, scratch) lives in the
`WorkerState` plugin registered here.

Failures of the infrastructure, not of the submission:
- a worker dies mid-task: Dask reruns the task on another worker (up to
  `distributed.scheduler.allowed-failures` times; after that the case is reported as not run);
- a worker cannot run tasks (no Docker engine, other data, another image): its task is submitted
  again, restricted to the other workers, and that worker gets no more tasks of this run;
- a worker cannot read the image tarball: the client ships it there, in chunks, and retries;
- the scheduler or the client dies: finished cases are in results.json; rerun to resume.
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from harness.atomic import atomic_write
from harness.distributed import tasks
from harness.distributed.datacheck import DataExpectation, build_expectation
from harness.distributed.tasks import FlareSetTask, GcCaseTask, ImageSource, ResolveTask, ScoreTask
from harness.errors import ClusterError, DockerUnavailable, HarnessError, ImageNotAvailable, WorkerError
from harness.manifest import Manifest
from harness.runner import engine
from harness.runner.executor import CaseStep, Completed, ContainerStep
from harness.runner.images import check_tarball, inspect_image
from harness.runner.layout import OutLayout
from harness.runner.run import ResolvedSubmission, RunRequest
from harness.runner.sandbox import SandboxPolicy
from harness.scoring.case import CaseJob

CONTAINER_RESOURCE = "CONTAINER"
GPU_RESOURCE = "GPU"
SHIP_CHUNK_BYTES = 64 * 1024**2
#: How long the client waits for a worker offering the run's resource before giving up (seconds).
WORKER_WAIT_ENV = "AEVAL_WORKER_WAIT"


def container_resources(policy: SandboxPolicy) -> dict[str, int]:
    """Worker resources one container task holds: its GPUs on GPU runs, one container slot otherwise."""
    if policy.gpus is None:
        return {CONTAINER_RESOURCE: 1}
    return {GPU_RESOURCE: 1 if policy.gpus == "all" else int(policy.gpus)}


def prepare_image(request: RunRequest) -> ImageSource:
    """The tarball workers load: --image-tar as given, or `docker save` of --image into OUT/images/ once."""
    if request.image_tar is not None:
        path = Path(request.image_tar).resolve()
        info = check_tarball(path)
        return ImageSource(config_digest=info.config_digest, tar_path=path, tar_size=path.stat().st_size)
    try:
        client = engine.connect()
    except DockerUnavailable as exc:
        raise HarnessError(f"--image {request.image} with --scheduler/--cluster: the client saves the image from its "
                           f"own Docker engine, and none answers ({exc}); pass --image-tar FILE instead") from None
    image = inspect_image(client, request.image)
    folder = OutLayout(request.out_dir).images
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{image.image_id.split(':')[-1]}.tar"
    if not target.is_file():
        with atomic_write(target, "wb") as handle:
            for chunk in client.images.get(image.image_id).save(named=False):
                handle.write(chunk)
    info = check_tarball(target)
    return ImageSource(config_digest=info.config_digest, tar_path=target, tar_size=target.stat().st_size,
                       image_id=image.image_id)


@dataclass
class _Task:
    kind: str  # "resolve", "case", "set" or "score"
    fn: Callable
    arg: Any
    key: str = ""  # test set
    label: str = ""  # case id, or "set"
    attempt: int = 0
    workers: list[str] | None = None  # the workers it was restricted to, if any


class DaskExecutor:
    """The executor of `harness run --scheduler/--cluster` (see the module docstring)."""

    def __init__(self, request: RunRequest, dask_client, *, say: Callable[[str], None] | None = None) -> None:
        self.request = request
        self.layout = OutLayout(request.out_dir)
        self.dask = dask_client
        self._say = say or (lambda text: None)
        self.resources = container_resources(request.policy)
        self._session = uuid.uuid4().hex[:8]
        self._excluded: dict[str, str] = {}  # worker address -> why it gets no task of this run
        self._ships: dict[str, int] = {}
        self._pending: dict[Any, _Task] = {}
        self._lost: list[str] = []
        self._data: dict[str, DataExpectation] = {}
        self._idle_since = time.monotonic()
        self.submission: ResolvedSubmission | None = None
        tasks.register_state(dask_client)

    # -- workers -------------------------------------------------------------------------------------
    def _workers(self) -> dict[str, dict]:
        return self.dask.scheduler_info(n_workers=-1)["workers"]

    def _offers(self, info: dict) -> bool:
        resources = info.get("resources") or {}
        return all(resources.get(name, 0) >= amount for name, amount in self.resources.items())

    def container_workers(self) -> list[str]:
        return [address for address, info in self._workers().items()
                if self._offers(info) and address not in self._excluded]

    def wait_for_workers(self) -> list[str]:
        """The workers that can run container tasks, waiting (AEVAL_WORKER_WAIT s, default 120) for one."""
        deadline = time.monotonic() + float(os.environ.get(WORKER_WAIT_ENV, "120"))
        while not (workers := self.container_workers()):
            if time.monotonic() > deadline:
                raise ClusterError(self._no_worker_message())
            time.sleep(0.5)
        return workers

    def _no_worker_message(self) -> str:
        wanted = ",".join(f"{k}={v}" for k, v in self.resources.items())
        text = (f"no Dask worker offers the resource {wanted} that this run's container tasks need: start workers "
                f"with `dask worker SCHEDULER --resources {wanted}` (GPU runs: one worker per GPU, GPU=1)")
        if self._excluded:
            text += "; workers left out of this run: " + "; ".join(f"{a}: {why}" for a, why in self._excluded.items())
        return text

    def _exclude(self, worker: str, why: str) -> None:
        if worker not in self._excluded:
            self._excluded[worker] = why
            self._say(f"worker {worker} gets no more tasks of this run: {why}")

    # -- submission ----------------------------------------------------------------------------------
    def _submit(self, task: _Task):
        kwargs: dict[str, Any] = {"key": f"aeval-{task.kind}-{self._session}-{task.key}-{task.label}-{task.attempt}",
                                  "pure": False}
        if task.kind == "score":
            kwargs["priority"] = 10  # scoring first: records reach results.json as soon as possible
            if self._excluded:
                kwargs["workers"] = [a for a in self._workers() if a not in self._excluded] or None
        else:
            kwargs["resources"] = self.resources
            if self._excluded:
                kwargs["workers"] = self.wait_for_workers()
        if kwargs.get("workers"):
            kwargs["allow_other_workers"] = False
        task.workers = kwargs.get("workers")
        future = self.dask.submit(task.fn, task.arg, **kwargs)
        self._pending[future] = task
        return future

    def _recover(self, error: WorkerError, task: _Task) -> None:
        """Make the task runnable again: ship the image, or leave the worker out. Raises if neither helps."""
        if not error.worker:
            raise error
        if isinstance(error, ImageNotAvailable) and self._ships.get(error.worker, 0) < 2:
            self._ships[error.worker] = self._ships.get(error.worker, 0) + 1
            try:
                self._ship(error.worker)
            except Exception as exc:  # the worker died or cannot take it: the others will
                self._exclude(error.worker, f"could not ship the image tarball to it ({exc})")
        else:
            self._exclude(error.worker, str(error))
        task.attempt += 1

    def _ship(self, worker: str) -> None:
        """Send the tarball to one worker in chunks (no registry, no shared path), then load it there."""
        source = self.source
        self._say(f"shipping the image tarball ({source.tar_size / 1024**2:.0f} MiB) to worker {worker}")
        pinned = {"workers": [worker], "allow_other_workers": False, "pure": False}
        offset = 0
        with open(source.tar_path, "rb") as handle:
            while chunk := handle.read(SHIP_CHUNK_BYTES):
                [data] = self.dask.scatter([chunk], workers=[worker], hash=False)
                offset = self.dask.submit(tasks.receive_chunk, source, offset, data, **pinned).result(timeout=600)
                del data
        self.dask.submit(tasks.load_received, source, **pinned).result(timeout=1800)

    def resolve(self, request: RunRequest) -> ResolvedSubmission:
        """Save or check the image tarball, wait for a worker, and read the image there."""
        self.source = prepare_image(request)
        self.wait_for_workers()
        task = _Task("resolve", tasks.resolve, ResolveTask(self.source, request), key="image", label="resolve")
        while True:
            future = self._submit(task)
            try:
                submission = future.result()
            except WorkerError as error:
                self._pending.pop(future, None)
                self._recover(error, task)
                continue
            self._pending.pop(future, None)
            break
        reference = request.image or f"{Path(request.image_tar).name} ({self.source.config_digest[:19]})"
        self.submission = dataclasses.replace(
            submission, image=dataclasses.replace(submission.image, reference=reference))
        self.source = dataclasses.replace(self.source, image_id=self.submission.image.image_id)
        self._idle_since = time.monotonic()
        return self.submission

    # -- the executor interface ----------------------------------------------------------------------
    def begin_set(self, manifest: Manifest, cases) -> None:
        self._data[manifest.key] = build_expectation(self.request.data_root, manifest, cases)

    def submit_container(self, step: ContainerStep) -> None:
        sub, request, data = self.submission, self.request, self._data[step.key]
        if isinstance(step, CaseStep):
            self._submit(_Task("case", tasks.run_case, GcCaseTask(
                image=self.source, policy=request.policy, key=step.key, case_id=step.case_id,
                image_relative=step.image_relative, socket=step.socket, output_relative_path=sub.output_relative_path,
                layout=self.layout, model_dir=request.model_dir, data=data), key=step.key, label=step.label))
        else:
            self._submit(_Task("set", tasks.run_set, FlareSetTask(
                image=self.source, policy=request.policy, key=step.key, command=sub.flare_command, cases=step.cases,
                layout=self.layout, model_dir=request.model_dir, data=data), key=step.key, label=step.label))

    def submit_scoring(self, key: str, job: CaseJob) -> None:
        self._submit(_Task("score", tasks.score, ScoreTask(key=key, job=job, data=self._data[key]), key=key,
                           label=job.case_id))

    def busy(self) -> bool:
        return bool(self._pending)

    def collect(self, timeout: float) -> list[Completed]:
        from distributed import wait

        try:
            done = wait(list(self._pending), timeout=timeout, return_when="FIRST_COMPLETED").done
        except TimeoutError:
            done = set()
        except Exception:  # distributed's FuturesCancelledError: the scheduler went away
            raise self._lost_scheduler() from None
        completed = [c for future in done if (c := self._handle(future)) is not None]
        if done:
            self._idle_since = time.monotonic()
        elif time.monotonic() - self._idle_since > 10:
            self._check_workers(self._idle_since)
        return completed

    def stop(self) -> None:
        if self._pending:  # stop the tasks not started; finished cases are saved
            try:
                self.dask.cancel(list(self._pending))
            except Exception:  # the scheduler is gone: nothing to cancel
                pass

    def close(self) -> None:
        pass

    def not_run(self) -> list[str]:
        return list(self._lost)

    def _handle(self, future) -> Completed | None:
        from distributed.scheduler import KilledWorker

        task = self._pending.pop(future)
        if future.status == "finished":
            try:
                result = future.result()  # gathered from the scheduler now: it may have gone since the wait
            except OSError:  # distributed's CommClosedError; a finished task's own errors are not raised here
                raise self._lost_scheduler() from None
            if task.kind == "score":
                return Completed(task.key, record=result)
            return Completed(task.key, containers=(result,) if task.kind == "case" else tuple(result))
        if future.status == "cancelled":
            raise self._lost_scheduler()
        try:
            error = future.exception()
        except OSError:
            raise self._lost_scheduler() from None
        if isinstance(error, KilledWorker):
            self._lost.append(f"{task.key}/{task.label}: {error}")
            return None
        if isinstance(error, WorkerError):
            self._recover(error, task)
            self._submit(task)
            return None
        future.result()  # anything else stops the run, as in a local run (the remote traceback is shown)
        return None

    def _check_workers(self, idle_since: float) -> None:
        """Nothing finished for a while: fine while a worker can run the tasks, an error once none can.

        A task restricted to workers (away from an unfit one) whose workers are all gone is
        submitted again, restricted to the workers there are now (joined since, for instance).
        """
        alive = set(self._workers())
        stranded = [(f, t) for f, t in self._pending.items() if t.workers and not alive.intersection(t.workers)]
        if stranded:
            self._say(f"{len(stranded)} task(s) were restricted to workers that are gone: submitted again to the "
                      "workers there are now")
        for future, task in stranded:
            self._pending.pop(future)
            self.dask.cancel([future])
            task.attempt += 1
            self._submit(task)
        if any(t.kind != "score" for t in self._pending.values()) and not self.container_workers():
            if time.monotonic() - idle_since > float(os.environ.get(WORKER_WAIT_ENV, "120")):
                raise ClusterError(self._no_worker_message() + "; finished cases are saved, rerun to resume")

    def _lost_scheduler(self) -> ClusterError:
        return ClusterError(f"lost the connection to the Dask scheduler {self.dask.scheduler.address}; finished cases "
                            f"are saved in {self.layout.results}: restart the scheduler (and its "
                            "workers) and rerun the same command to resume")
