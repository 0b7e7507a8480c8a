"""`harness run`: a participant image against the test sets, in the sandbox, scored as it goes.

Per test set and case (Grand-Challenge protocol) or per test set (FLARE protocol): stage the
inputs in a scratch folder, run the container under the sandbox policy, turn any failure into a
failed case with a precise message, keep the prediction under OUT/predictions/, and hand it to the
scoring pool while the next container runs. Results are written after every case; a rerun with
the same image id skips finished cases. Scratch folders and containers never outlive a case, also
on Ctrl-C.

The container step of a case (`run_gc_case`) and of a FLARE test set (`run_flare_set`) are plain
functions of picklable values (image id, policy, paths) returning a `ContainerResult`: this runner
calls them in a loop, and `harness.distributed` calls the very same functions as Dask tasks on
other machines, so a distributed run has exactly the sandbox, limits and outputs of a local one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from harness.errors import CaseFailed, HarnessError
from harness.jsonio import write_text_atomic
from harness.labelmap import LabelMapping, build_mapping, resolve_label_map
from harness.manifest import InputSocket, Manifest, case_file, load_benchmark
from harness.results import ResultsStore, failed_record, summary_csv
from harness.runner import engine
from harness.runner.failures import classify
from harness.runner.images import (DEFAULT_FLARE_COMMAND, DEFAULT_OUTPUT_RELATIVE_PATH, LABEL_FLARE_COMMAND,
                                   LABEL_OUTPUT_PATH, PROTOCOLS, ImageInfo, declared_label_map, inspect_image,
                                   load_tarball)
from harness.runner import scratch as scratch_folders
from harness.runner.metering import GpuSampler, nvml_available
from harness.runner.outputfs import CappedOutputFolder
from harness.runner.protocols import flare, gc
from harness.runner.sandbox import LOG_TAIL_BYTES, LOG_TAIL_LINES, SandboxPolicy
from harness.scoring import CaseJob, ScoreSettings
from harness.scoring_pool import ScoringPool
from harness.taxonomy import load_taxonomy


@dataclass(frozen=True)
class RunRequest:
    image: str | None
    image_tar: Path | None
    out_dir: Path
    data_root: Path
    benchmark: str
    datasets: list[str] | None = None
    cases_limit: int | None = None
    protocol: str | None = None
    label_map: str | None = None
    output_relative_path: str | None = None
    model_dir: Path | None = None
    policy: SandboxPolicy = SandboxPolicy()
    settings: ScoreSettings = ScoreSettings()
    workers: int = 2
    retry_failed: bool = False


@dataclass(frozen=True)
class ResolvedSubmission:
    image: ImageInfo
    protocol: str
    mapping: LabelMapping
    output_relative_path: str
    flare_command: str


def resolve_submission(client, request: RunRequest) -> ResolvedSubmission:
    """Image, protocol, label map and output socket, from the image's labels with flags winning."""
    if (request.image is None) == (request.image_tar is None):
        raise HarnessError("give exactly one of --image or --image-tar")
    image = (load_tarball(client, request.image_tar, max_bytes=request.policy.image_max_bytes) if request.image_tar
             else inspect_image(client, request.image))
    if image.runs_as_root and not request.policy.allow_root:
        raise HarnessError(f"image {image.reference} runs as root (user '{image.user or '(unset)'}'); Grand-Challenge "
                           "refuses such images: add a non-root USER to the Dockerfile, or pass --allow-root")
    protocol = request.protocol or (image.declared_protocols[0] if image.declared_protocols else "gc")
    if protocol not in PROTOCOLS:
        raise HarnessError(f"unknown protocol '{protocol}' (image label or --protocol); use one of {', '.join(PROTOCOLS)}")
    label_map = resolve_label_map(request.label_map) if request.label_map else declared_label_map(client, image)
    if label_map is None:
        raise HarnessError(f"image {image.reference} declares no label map: set the image label org.a-eval.label-map "
                           "(or org.a-eval.label-map-file), or pass --label-map (a-eval if it writes benchmark ids)")
    if request.policy.gpus and not engine.has_gpu_runtime(client):
        raise HarnessError("--gpus was given but the Docker engine has no NVIDIA runtime: install the NVIDIA "
                           "Container Toolkit and restart dockerd, or run without --gpus")
    output_path = request.output_relative_path or image.labels.get(LABEL_OUTPUT_PATH, DEFAULT_OUTPUT_RELATIVE_PATH)
    return ResolvedSubmission(image=image, protocol=protocol, mapping=build_mapping(label_map),
                              output_relative_path=output_path.strip("/"),
                              flare_command=image.labels.get(LABEL_FLARE_COMMAND, DEFAULT_FLARE_COMMAND))


# -- the container step, as plain functions (local loop and Dask tasks alike) ------------------------

@dataclass(frozen=True)
class ContainerResult:
    """What the container step gave for one case: the kept prediction, or why there is none.

    Plain values only (no exception object), so it pickles across processes and machines.
    """

    case_id: str
    prediction: Path | None
    runtime: dict | None = None
    failure_kind: str | None = None
    failure_message: str | None = None

    @classmethod
    def failed(cls, case_id: str, failure: CaseFailed, runtime: dict | None) -> "ContainerResult":
        return cls(case_id=case_id, prediction=None, runtime=runtime, failure_kind=failure.kind,
                   failure_message=failure.message)

    @property
    def failure(self) -> CaseFailed | None:
        return None if self.prediction is not None else CaseFailed(self.failure_kind or "crash",
                                                                   self.failure_message or "no prediction")


def failed_case_record(result: ContainerResult, settings: ScoreSettings) -> dict:
    failure = result.failure
    return failed_record(result.case_id, kind=failure.kind, message=failure.message,
                         organs=list(load_taxonomy().organ_names), metrics=list(settings.metrics),
                         runtime=result.runtime)


def score_job(*, case_id: str, gt_path: Path, prediction: Path, runtime: dict | None, gt_mapping: LabelMapping,
              pred_mapping: LabelMapping, settings: ScoreSettings, protocol: str) -> CaseJob:
    return CaseJob(case_id=case_id, gt_path=gt_path, pred_path=prediction, gt_mapping=gt_mapping,
                   pred_mapping=pred_mapping, settings=settings, runtime=runtime, gc_output=protocol == "gc")


def write_log(path: Path, outcome: engine.RunOutcome) -> None:
    """The container's stdout and stderr tails, written atomically (a retried task may write it again)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    kept = f"last {LOG_TAIL_LINES} lines, at most {LOG_TAIL_BYTES // 1024} KiB"
    write_text_atomic(path, f"# stdout ({kept})\n" + "\n".join(outcome.stdout_tail) +
                      f"\n# stderr ({kept})\n" + "\n".join(outcome.stderr_tail) + "\n")


def publish(produced: Path, folder: Path) -> Path:
    """Copy a kept output into `folder` under its own name, atomically (temp name, then rename).

    OUT may be shared storage written by several machines: a reader never sees half a file, and a
    task that runs twice (a worker presumed dead) replaces the file whole with the same content.
    """
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / produced.name
    temporary = folder / f".{produced.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        shutil.copyfile(produced, temporary, follow_symlinks=False)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target


def model_mounts(model_dir: Path | None) -> list[engine.Mount]:
    if model_dir is None:
        return []
    if not model_dir.is_dir():
        raise HarnessError(f"--model-dir {model_dir} is not a folder")
    return [engine.Mount(model_dir.resolve(), "/opt/ml/model", read_only=True)]


def _run(client, image_id: str, policy: SandboxPolicy, mounts: list[engine.Mount], command: list[str] | None,
         gpu_metering: bool, output: CappedOutputFolder) -> engine.RunOutcome:
    return engine.run_container(client, image_id, policy=policy, mounts=mounts, command=command,
                                gpu_sampler_factory=GpuSampler if gpu_metering else None,
                                output_exceeded=output.exceeded)


def _capped(folder: Path, policy: SandboxPolicy) -> CappedOutputFolder:
    """The container's output folder, capped in size and entries while it runs (see `outputfs`)."""
    return CappedOutputFolder(folder, max_bytes=policy.output_max_bytes, max_files=policy.output_max_files)


def run_gc_case(*, image_id: str, policy: SandboxPolicy, case_id: str, image_path: Path, socket: InputSocket,
                output_relative_path: str, predictions_dir: Path, log_path: Path,
                extra_mounts: Sequence[engine.Mount] = (), gpu_metering: bool = False, client=None,
                scratch_dir: Path | None = None) -> ContainerResult:
    """One case, Grand-Challenge protocol: stage, run in the sandbox, classify, keep the prediction.

    The prediction lands in `predictions_dir` as `<case_id>.<suffix>`; a container failure comes
    back as a failed ContainerResult. Problems of the harness or engine (HarnessError) propagate.
    """
    client = client or engine.connect()
    scratch = Path(tempfile.mkdtemp(prefix="aeval-job-", dir=scratch_dir or scratch_folders.owner_dir()))
    runtime = None
    try:
        job = gc.stage_case(image_path=image_path, socket=socket, scratch=scratch / "job")
        with _capped(job.output_dir, policy) as output:
            outcome = _run(client, image_id, policy, job.mounts() + list(extra_mounts), None, gpu_metering, output)
            runtime = outcome.runtime()
            write_log(log_path, outcome)
            failure = classify(outcome, policy, subject=f"case {case_id}")
            if failure:
                raise failure
            kept = gc.collect_output(job, relative_path=output_relative_path, case_id=case_id,
                                     max_bytes=policy.output_max_bytes, keep_as=scratch / "kept" / case_id)
        return ContainerResult(case_id=case_id, prediction=publish(kept, predictions_dir), runtime=runtime)
    except CaseFailed as failure:
        return ContainerResult.failed(case_id, failure, runtime)
    finally:
        scratch_folders.remove_tree(scratch)


def run_flare_set(*, image_id: str, policy: SandboxPolicy, key: str, command: str, images: dict[str, Path],
                  predictions_dir: Path, log_path: Path, extra_mounts: Sequence[engine.Mount] = (),
                  gpu_metering: bool = False, client=None, scratch_dir: Path | None = None) -> list[ContainerResult]:
    """One test set, FLARE protocol: one container run over `images` (case id -> file), per-case results."""
    client = client or engine.connect()
    scratch = Path(tempfile.mkdtemp(prefix="aeval-set-", dir=scratch_dir or scratch_folders.owner_dir()))
    try:
        job = flare.stage_set(images=images, scratch=scratch / "job")
        with _capped(job.output_dir, policy) as output:
            outcome = _run(client, image_id, policy, job.mounts() + list(extra_mounts), ["sh", "-c", command],
                           gpu_metering, output)
            write_log(log_path, outcome)
            runtime = {**outcome.runtime(), "scope": "test set run", "cases_in_run": len(images)}
            failure = classify(outcome, policy, subject=f"test set {key} (FLARE run)")
            kept = flare.collect_outputs(job, max_bytes=policy.output_max_bytes, keep_dir=scratch / "kept")
        results = []
        for case_id in images:
            result = kept[case_id]
            if isinstance(result, CaseFailed):
                results.append(ContainerResult.failed(case_id, failure or result, runtime))
            else:
                results.append(ContainerResult(case_id=case_id, prediction=publish(result, predictions_dir),
                                               runtime=runtime))
        return results
    finally:
        scratch_folders.remove_tree(scratch)


# -- the local runner ---------------------------------------------------------------------------------

class SubmissionRun:
    def __init__(self, request: RunRequest, *, progress: Callable[[str, int, int], None] | None = None,
                 client=None) -> None:
        self.request = request
        self.client = client or engine.connect()
        engine.remove_leftovers(self.client)
        self.submission = resolve_submission(self.client, request)
        self.manifests = load_benchmark(request.benchmark, keys=request.datasets)
        for manifest in self.manifests:
            manifest.check_complete()
        self._progress = progress
        self._gpu = request.policy.gpus is not None and nvml_available()
        self.store = open_store(request, self.submission, self.manifests)

    def mounts_extra(self) -> list[engine.Mount]:
        return model_mounts(self.request.model_dir)

    def todo(self, manifest: Manifest):
        return select_cases(manifest, self.store, self.request)

    def execute(self) -> dict:
        with ScoringPool(workers=self.request.workers, on_record=self._record) as pool:
            self._pool = pool
            for manifest in self.manifests:
                selected, todo = self.todo(manifest)
                self._counts = {"done": len(selected) - len(todo), "total": len(selected)}
                self._tick(manifest.key, 0)
                if not todo:
                    continue
                if self.submission.protocol == "gc":
                    for case in todo:
                        self._run_gc_case(manifest, case)
                else:
                    self._run_flare_set(manifest, todo)
                pool.collect(block=True)
        return finish(self.store, self.request.out_dir)

    # -- bookkeeping ---------------------------------------------------------------------------------
    def _record(self, key: str, record: dict) -> None:
        self.store.add(key, record)
        self._tick(key, 1)

    def _tick(self, key: str, step: int) -> None:
        self._counts["done"] += step
        if self._progress:
            self._progress(key, self._counts["done"], self._counts["total"])

    def _handle(self, manifest: Manifest, result: ContainerResult) -> None:
        if result.prediction is None:
            self._record(manifest.key, failed_case_record(result, self.request.settings))
            return
        case = manifest.case(result.case_id)
        self._pool.submit(manifest.key, score_job(
            case_id=result.case_id, gt_path=case_file(self.request.data_root, case.label),
            prediction=result.prediction, runtime=result.runtime, gt_mapping=manifest.gt_mapping,
            pred_mapping=self.submission.mapping, settings=self.request.settings, protocol=self.submission.protocol))

    # -- protocols -----------------------------------------------------------------------------------
    def _run_gc_case(self, manifest: Manifest, case) -> None:
        out = self.request.out_dir
        self._handle(manifest, run_gc_case(
            image_id=self.submission.image.image_id, policy=self.request.policy, case_id=case.case_id,
            image_path=case_file(self.request.data_root, case.image), socket=manifest.input_socket,
            output_relative_path=self.submission.output_relative_path,
            predictions_dir=out / "predictions" / manifest.key, log_path=out / "logs" / manifest.key / f"{case.case_id}.log",
            extra_mounts=self.mounts_extra(), gpu_metering=self._gpu, client=self.client))

    def _run_flare_set(self, manifest: Manifest, cases) -> None:
        out = self.request.out_dir
        results = run_flare_set(
            image_id=self.submission.image.image_id, policy=self.request.policy, key=manifest.key,
            command=self.submission.flare_command,
            images={c.case_id: case_file(self.request.data_root, c.image) for c in cases},
            predictions_dir=out / "predictions" / manifest.key, log_path=out / "logs" / manifest.key / "flare-run.log",
            extra_mounts=self.mounts_extra(), gpu_metering=self._gpu, client=self.client)
        for result in results:
            self._handle(manifest, result)


# -- shared by the local and the distributed runner ---------------------------------------------------

def open_store(request: RunRequest, submission: ResolvedSubmission, manifests: list[Manifest]) -> ResultsStore:
    """The run's results file (resumed when it exists and is of the same benchmark, settings and image)."""
    store = ResultsStore.open(
        request.out_dir / "results.json", benchmark=request.benchmark, settings=request.settings.to_document(),
        organs=list(load_taxonomy().organ_names), manifests=manifests,
        submission={"name": submission.image.reference, "image": request.image or str(request.image_tar),
                    "image_id": submission.image.image_id, "protocol": submission.protocol,
                    "label_map": submission.mapping.label_map.name, "sandbox": request.policy.describe()})
    for note in submission.mapping.notes():
        store.add_note(f"image: {note}")
    return store


def select_cases(manifest: Manifest, store: ResultsStore, request: RunRequest):
    """(the cases this run covers, those of them still to run)."""
    cases = list(manifest.cases[: request.cases_limit] if request.cases_limit else manifest.cases)
    done = store.finished(manifest.key, include_failed=not request.retry_failed)
    return cases, [c for c in cases if c.case_id not in done]


def finish(store: ResultsStore, out_dir: Path) -> dict:
    document = store.write()
    write_text_atomic(out_dir / "summary.csv", summary_csv(document))
    return document
