"""What runs on a Dask worker: the container and scoring tasks, and the worker's state (a WorkerPlugin).

Every task is a plain function of one frozen, picklable task value. Before a container task runs
anything, its worker (once per process, rechecked cheaply on every task) makes sure that:
- its node's Docker engine answers (else `DockerMissingOnWorker`: the client moves the task);
- the image is loaded from the tarball (`load_tarball`, tags stripped, once per image per
  process) and its id is the one the client resolved (else `ImageMismatch`); a worker that cannot
  read the tarball raises `ImageNotAvailable` and the client ships it the tarball;
- the data root holds the test set's files as the manifest says (`datacheck`, once per node).
Then the container step is exactly the local runner's (`harness.runner.run.run_gc_case` /
`run_flare_set`), under the run's sandbox policy, pinned to the GPU(s) the worker was given.

What a worker keeps between tasks (its engine client, the images it loaded, whether its engine has
the GPU runtime, its scratch folder, its GPU slots) is a `WorkerState`, a Dask WorkerPlugin the
client registers for the run (`register_state`): set up on every worker, also those joining later,
and dropped with the worker. Outside a worker (a test, a benchmark warming a node) the functions
use one state of the process.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

from harness.atomic import commit
from harness.distributed.datacheck import DataExpectation, node_cache_dir, verify_on_node
from harness.errors import (DockerMissingOnWorker, DockerUnavailable, HarnessError, ImageMismatch, ImageNotAvailable,
                            WorkerUnfit)
from harness.manifest import InputSocket, case_file
from harness.runner import engine
from harness.runner.images import load_tarball
from harness.runner.metering import nvml_available
from harness.runner.layout import OutLayout
from harness.runner.run import (ContainerResult, ResolvedSubmission, RunRequest, model_mounts, resolve_submission,
                                run_flare_set, run_gc_case)
from harness.runner.scratch import remove_tree
from harness.runner.sandbox import SandboxPolicy
from harness.scoring.case import CaseJob, score_files

#: Worker setting: "0" when this node must not read image tarballs at the client's path (the client ships them).
SHARED_IMAGES_ENV = "AEVAL_WORKER_SHARED_IMAGES"
#: Worker setting: the GPU ids this worker may use, e.g. "3" or "0,1" (default: CUDA_VISIBLE_DEVICES).
GPU_IDS_ENV = "AEVAL_GPU_IDS"


@dataclass(frozen=True)
class ImageSource:
    """The submission image as workers get it: a `docker save` tarball, checked by id after loading."""

    config_digest: str  # sha256 of the image config, read from the tarball without an engine
    tar_path: Path  # where the client keeps it; workers that can read it (shared storage) load it from there
    tar_size: int
    image_id: str | None = None  # the engine's id, once known (set by the client before any container task)


@dataclass(frozen=True)
class ResolveTask:
    image: ImageSource
    request: RunRequest


@dataclass(frozen=True)
class GcCaseTask:
    image: ImageSource
    policy: SandboxPolicy
    key: str
    case_id: str
    image_relative: str
    socket: InputSocket
    output_relative_path: str
    layout: OutLayout
    model_dir: Path | None
    data: DataExpectation


@dataclass(frozen=True)
class FlareSetTask:
    image: ImageSource
    policy: SandboxPolicy
    key: str
    command: str
    cases: tuple[tuple[str, str], ...]  # (case id, image path relative to the data root)
    layout: OutLayout
    model_dir: Path | None
    data: DataExpectation


@dataclass(frozen=True)
class ScoreTask:
    key: str
    job: CaseJob
    data: DataExpectation


# -- the worker's state ----------------------------------------------------------------------------------

try:
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError:  # without the 'distributed' extra nothing here runs on a worker
    WorkerPlugin = object


class WorkerState(WorkerPlugin):
    """What one worker keeps between tasks, as a Dask WorkerPlugin.

    Pickled to the workers when registered, so everything that does not pickle (locks, the engine
    client) is made in `setup`, on the worker.
    """

    name = "aeval-worker-state"
    idempotent = True  # a client that reconnects (a rerun) keeps what workers loaded

    def __init__(self) -> None:
        self.setup(None)

    def setup(self, worker) -> None:
        self.lock = threading.RLock()
        self.docker = None
        self.images: dict[str, str] = {}  # config digest -> engine image id, loaded and checked here
        self.gpu_runtime: bool | None = None
        self.scratch: Path | None = None
        self.gpus = _GpuSlots()

    def teardown(self, worker) -> None:
        if self.docker is not None:
            self.docker.close()
            self.docker = None

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.setup(None)


_process_state: WorkerState | None = None


def register_state(dask_client) -> None:
    """Client side: every worker of the run (also those joining later) gets a WorkerState."""
    dask_client.register_plugin(WorkerState(), name=WorkerState.name)


def state() -> WorkerState:
    """This worker's state; outside a worker (or before the plugin reached it), the process's own."""
    global _process_state
    try:
        from distributed import get_worker

        plugin = get_worker().plugins.get(WorkerState.name)
        if plugin is not None:
            return plugin
    except (ImportError, ValueError):
        pass
    if _process_state is None:
        _process_state = WorkerState()
    return _process_state


def worker_address() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return ""


def _where() -> str:
    address = worker_address()
    return f"worker {address} on node {socket.gethostname()}" if address else f"node {socket.gethostname()}"


def docker_client():
    """This node's engine (connected once per process, pinged on every task); DockerMissingOnWorker if none.

    Every task also removes what a worker killed on this node left behind (its containers, which
    may still hold a GPU, and its scratch folder), as a local run does when it starts.
    """
    mine = state()
    with mine.lock:
        try:
            if mine.docker is None:
                mine.docker = engine.connect()
            else:
                mine.docker.ping()
            engine.remove_leftovers(mine.docker)
        except DockerUnavailable as exc:
            raise DockerMissingOnWorker(f"{_where()}: {exc}", worker_address()) from None
        except Exception as exc:  # a cached client whose engine went away
            mine.docker = None
            raise DockerMissingOnWorker(f"{_where()}: the Docker engine stopped answering ({exc})",
                                        worker_address()) from None
        mine.scratch = _sweep_scratch()
        return mine.docker


def _sweep_scratch() -> Path:
    """This process's node-local scratch folder; those of dead processes on this node are removed."""
    root = node_cache_dir()
    mine = root / f"scratch-{os.getpid()}"
    for old in root.glob("scratch-*"):
        if old == mine:
            continue
        try:
            os.kill(int(old.name.split("-", 1)[1]), 0)
        except ProcessLookupError:
            remove_tree(old)  # unmounts a capped output folder first
        except (ValueError, PermissionError):
            continue
    mine.mkdir(exist_ok=True)
    return mine


def _engine_has(client, image_id: str) -> bool:
    try:
        client.images.get(image_id)
        return True
    except Exception:
        return False


def shipped_path(source: ImageSource) -> Path:
    return node_cache_dir() / "images" / f"{source.config_digest.split(':')[-1]}.tar"


def _readable_tarball(source: ImageSource) -> Path | None:
    shipped = shipped_path(source)
    if shipped.is_file() and shipped.stat().st_size == source.tar_size:
        return shipped
    if os.environ.get(SHARED_IMAGES_ENV, "1") != "0":
        try:
            if source.tar_path.is_file() and source.tar_path.stat().st_size == source.tar_size:
                return source.tar_path
        except OSError:
            pass
    return None


def ensure_image(client, source: ImageSource) -> str:
    """Load the image once per process and check its id; return the engine's image id."""
    mine = state()
    with mine.lock:
        known = mine.images.get(source.config_digest)
        if known and _engine_has(client, known):
            return _checked(known, source)
        path = _readable_tarball(source)
        if path is None:
            raise ImageNotAvailable(f"{_where()}: cannot read the image tarball {source.tar_path} "
                                    f"({source.tar_size} bytes)", worker_address())
        try:
            info = load_tarball(client, path)
        except HarnessError as exc:
            raise ImageMismatch(f"{_where()}: {exc}", worker_address()) from None
        mine.images[source.config_digest] = info.image_id
        return _checked(info.image_id, source)


def _checked(image_id: str, source: ImageSource) -> str:
    if source.image_id is not None and image_id != source.image_id:
        raise ImageMismatch(f"{_where()}: the tarball {source.tar_path} loads as image {image_id[:19]}, not the "
                            f"submission's {source.image_id[:19]}: the file changed after the run started",
                            worker_address())
    return image_id


def receive_chunk(source: ImageSource, offset: int, data: bytes) -> int:
    """Ship mode: append one chunk of the tarball to this node's partial copy (chunks come in order)."""
    partial = shipped_path(source).with_suffix(f".part-{os.getpid()}")
    partial.parent.mkdir(parents=True, exist_ok=True)
    with open(partial, "r+b" if offset else "wb") as handle:
        handle.seek(offset)
        handle.write(data)
        handle.truncate()
    return offset + len(data)


def load_received(source: ImageSource) -> str:
    """Ship mode: the whole tarball is here; keep it for the node's other workers, load and check it."""
    partial = shipped_path(source).with_suffix(f".part-{os.getpid()}")
    if not partial.is_file() or partial.stat().st_size != source.tar_size:
        raise ImageNotAvailable(f"{_where()}: the shipped tarball is incomplete", worker_address())
    commit(partial, shipped_path(source))
    return ensure_image(docker_client(), source)


# -- GPUs ------------------------------------------------------------------------------------------------

def gpu_ids() -> list[str]:
    value = os.environ.get(GPU_IDS_ENV) or os.environ.get("CUDA_VISIBLE_DEVICES") or ""
    return [item.strip() for item in value.split(",") if item.strip()]


class _GpuSlots:
    """The worker's GPU ids, handed to concurrent container tasks without overlap."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._known: list[str] | None = None
        self._free: list[str] = []

    def acquire(self, count: int | None) -> list[str]:
        """`count` ids (None: all of them), waiting while other tasks hold them; [] when none are known."""
        with self._condition:
            if self._known is None:
                self._known = gpu_ids()
                self._free = list(self._known)
            if not self._known:
                return []  # no ids known: the engine picks (one worker per node, or a single GPU)
            wanted = min(count or len(self._known), len(self._known))
            self._condition.wait_for(lambda: len(self._free) >= wanted)
            taken, self._free = self._free[:wanted], self._free[wanted:]
            return taken

    def release(self, ids: list[str]) -> None:
        with self._condition:
            self._free = self._free + ids
            self._condition.notify_all()




def _check_gpu_runtime(client, policy: SandboxPolicy) -> None:
    if policy.gpus is None:
        return
    mine = state()
    if mine.gpu_runtime is None:
        mine.gpu_runtime = engine.has_gpu_runtime(client)
    if not mine.gpu_runtime:
        raise WorkerUnfit(f"{_where()}: the run asks for GPUs but this node's Docker engine has no NVIDIA runtime",
                          worker_address())


def _model_mounts(model_dir: Path | None) -> list[engine.Mount]:
    try:
        return model_mounts(model_dir)
    except HarnessError:
        raise WorkerUnfit(f"{_where()}: --model-dir {model_dir} is not a folder on this node (mount it on every "
                          "node at the same path)", worker_address()) from None


def _with_worker(result: ContainerResult, ids: list[str]) -> ContainerResult:
    if result.runtime is None:
        return result
    where = {"host": socket.gethostname(), "address": worker_address(), "gpu_devices": ids or None}
    return dataclasses.replace(result, runtime={**result.runtime, "worker": where})


# -- tasks -----------------------------------------------------------------------------------------------

def resolve(task: ResolveTask) -> ResolvedSubmission:
    """Load the image on this worker and read what it declares (labels, label map), as a local run does."""
    client = docker_client()
    image_id = ensure_image(client, task.image)
    _check_gpu_runtime(client, task.request.policy)  # a node without it is left out, not the run stopped
    return resolve_submission(client, dataclasses.replace(task.request, image=image_id, image_tar=None))


def _ready_node(task: GcCaseTask | FlareSetTask):
    """What a container task checks and takes on this node first: data, image, GPU runtime, mounts, GPU ids.

    The GPU ids are acquired here; the caller releases them (`state().gpus.release`) when its container is done.
    """
    client = docker_client()
    verify_on_node(task.data, worker=worker_address())
    image_id = ensure_image(client, task.image)
    _check_gpu_runtime(client, task.policy)
    mounts = _model_mounts(task.model_dir)
    gpus = state().gpus
    ids = gpus.acquire(None if task.policy.gpus == "all" else int(task.policy.gpus)) if task.policy.gpus else []
    return client, image_id, mounts, ids


def run_case(task: GcCaseTask) -> ContainerResult:
    client, image_id, mounts, ids = _ready_node(task)
    try:
        result = run_gc_case(
            image_id=image_id, policy=task.policy.pinned_to(ids), case_id=task.case_id,
            image_path=case_file(task.data.data_root, task.image_relative), socket=task.socket,
            output_relative_path=task.output_relative_path, predictions_dir=task.layout.predictions(task.key),
            log_path=task.layout.case_log(task.key, task.case_id), extra_mounts=mounts,
            gpu_metering=task.policy.gpus is not None and nvml_available(), client=client, scratch_dir=state().scratch)
    finally:
        state().gpus.release(ids)
    return _with_worker(result, ids)


def run_set(task: FlareSetTask) -> list[ContainerResult]:
    client, image_id, mounts, ids = _ready_node(task)
    try:
        results = run_flare_set(
            image_id=image_id, policy=task.policy.pinned_to(ids), key=task.key, command=task.command,
            images={case_id: case_file(task.data.data_root, relative) for case_id, relative in task.cases},
            predictions_dir=task.layout.predictions(task.key), log_path=task.layout.set_log(task.key),
            extra_mounts=mounts, gpu_metering=task.policy.gpus is not None and nvml_available(), client=client,
            scratch_dir=state().scratch)
    finally:
        state().gpus.release(ids)
    return [_with_worker(r, ids) for r in results]


def score(task: ScoreTask) -> dict:
    """A CPU task: the case record, exactly as the local scoring pool makes it."""
    verify_on_node(task.data, worker=worker_address())
    return score_files(task.job)
