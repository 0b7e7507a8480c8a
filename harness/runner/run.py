"""`harness run`'s request, the submission it resolves to, and the container steps.

The container step of a case (`run_gc_case`, Grand-Challenge protocol) and of a test set
(`run_flare_set`, FLARE protocol): stage the inputs in a scratch folder, run the container under
the sandbox policy, turn any failure into a failed case with a precise message, and keep the
prediction under OUT/predictions/. Scratch folders and containers never outlive a step, also on
Ctrl-C. Both are plain functions of picklable values (image id, policy, paths) returning
`ContainerResult`s: the local executor calls them in threads, and Dask workers call the very same
functions, so a distributed run has exactly the sandbox, limits and outputs of a local one. The
run itself (which cases, scoring, results, progress) is `harness.runner.driver`.
"""

from __future__ import annotations

import shutil
import tempfile
from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from harness.errors import CaseFailed, EnvironmentProblem, FailureKind, HarnessError
from harness.atomic import atomic_path, write_text_atomic
from harness.labelmap import LabelMapping, build_mapping, resolve_label_map
from harness.manifest import InputSocket
from harness.results import failed_record
from harness.runner import engine
from harness.runner.failures import classify, unexpected_failure
from harness.gc_interface import DEFAULT_OUTPUT_RELATIVE_PATH
from harness.runner.images import (DEFAULT_FLARE_COMMAND, LABEL_FLARE_COMMAND,
                                   LABEL_OUTPUT_PATH, PROTOCOLS, ImageInfo, declared_label_map, inspect_image,
                                   load_tarball)
from harness.runner import scratch as scratch_folders
from harness.runner.metering import GpuSampler
from harness.runner.outputfs import CappedOutputFolder
from harness.runner.protocols import flare, gc
from harness.runner.protocols.outputs_tree import audit_tree, check_output_relative_path
from harness.runner.sandbox import LOG_TAIL_BYTES, LOG_TAIL_LINES, SandboxPolicy
from harness.scoring.case import CaseJob, ScoreSettings
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
        raise EnvironmentProblem("--gpus was given but the Docker engine has no NVIDIA runtime: install the NVIDIA "
                           "Container Toolkit and restart dockerd, or run without --gpus")
    output_path = check_output_relative_path(
        request.output_relative_path or image.labels.get(LABEL_OUTPUT_PATH, DEFAULT_OUTPUT_RELATIVE_PATH),
        source="--output-relative-path" if request.output_relative_path else f"image label {LABEL_OUTPUT_PATH}")
    return ResolvedSubmission(image=image, protocol=protocol, mapping=build_mapping(label_map),
                              output_relative_path=output_path,
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
        return None if self.prediction is not None else CaseFailed(self.failure_kind or FailureKind.CRASH,
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


def keep_prediction(produced: Path, folder: Path) -> Path:
    """Copy a collected prediction into `folder` (OUT/predictions/<set>) under its own name, atomically.

    OUT may be shared storage written by several machines: a reader never sees half a file, and a
    task that runs twice (a worker presumed dead) replaces the file whole with the same content.
    """
    target = folder / produced.name
    with atomic_path(target) as temporary:
        shutil.copyfile(produced, temporary, follow_symlinks=False)
    return target


def model_mounts(model_dir: Path | None) -> list[engine.Mount]:
    if model_dir is None:
        return []
    if not model_dir.is_dir():
        raise HarnessError(f"--model-dir {model_dir} is not a folder")
    return [engine.Mount(model_dir.resolve(), "/opt/ml/model", read_only=True)]


#: Held while a container runs, when set (the local executor): its other thread stages the next case and
#: collects the last one meanwhile, and the next container starts as soon as this one is gone.
ENGINE_SLOT: ContextVar[AbstractContextManager | None] = ContextVar("aeval_engine_slot", default=None)


def _run(client, image_id: str, policy: SandboxPolicy, mounts: list[engine.Mount], command: list[str] | None,
         gpu_metering: bool, output: CappedOutputFolder) -> engine.RunOutcome:
    with ENGINE_SLOT.get() or nullcontext():
        return engine.run_container(client, image_id, policy=policy, mounts=mounts, command=command,
                                    gpu_sampler_factory=GpuSampler if gpu_metering else None,
                                    output_exceeded=output.exceeded)


def _capped(folder: Path, policy: SandboxPolicy) -> CappedOutputFolder:
    """The container's output folder, capped in size and entries while it runs (see `outputfs`)."""
    return CappedOutputFolder(folder, max_bytes=policy.output_max_bytes, max_files=policy.output_max_files)


def _named_cap(failure: CaseFailed, output_dir: Path, policy: SandboxPolicy, *, case_id: str) -> CaseFailed:
    """A container stopped at its output cap: the tree walk says which cap (files, depth, path length), so
    the record carries that kind, with the runner's words on when it was stopped."""
    if failure.kind != FailureKind.OUTPUT_TOO_LARGE:
        return failure
    try:
        audit_tree(output_dir, case_id=case_id, max_bytes=policy.output_max_bytes,
                   max_entries=policy.output_max_files)
    except CaseFailed as walked:
        if walked.kind != FailureKind.OUTPUT_TOO_LARGE:
            reason = walked.message.removeprefix(f"case {case_id}: ")
            return CaseFailed(walked.kind, f"{failure.message} [{reason}]")
    return failure


def run_gc_case(*, image_id: str, policy: SandboxPolicy, case_id: str, image_path: Path, socket: InputSocket,
                output_relative_path: str, predictions_dir: Path, log_path: Path,
                extra_mounts: Sequence[engine.Mount] = (), gpu_metering: bool = False, client=None,
                scratch_dir: Path | None = None) -> ContainerResult:
    """One case, Grand-Challenge protocol: stage, run in the sandbox, classify, keep the prediction.

    The prediction lands in `predictions_dir` as `<case_id>.<suffix>`; a container failure, and any
    other exception while handling this case's output, comes back as a failed ContainerResult.
    Problems of the harness or engine as a whole (HarnessError) propagate. The scratch always goes.
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
                raise _named_cap(failure, job.output_dir, policy, case_id=case_id)
            kept = gc.collect_output(job, relative_path=output_relative_path, case_id=case_id,
                                     max_bytes=policy.output_max_bytes, keep_as=scratch / "kept" / case_id,
                                     max_entries=policy.output_max_files)
        return ContainerResult(case_id=case_id, prediction=keep_prediction(kept, predictions_dir), runtime=runtime)
    except CaseFailed as failure:
        return ContainerResult.failed(case_id, failure, runtime)
    except HarnessError:
        raise
    except Exception as exc:  # noqa: BLE001 - hostile output must never crash the run: the case fails
        return ContainerResult.failed(case_id, unexpected_failure(f"case {case_id}", exc), runtime)
    finally:
        scratch_folders.remove_tree(scratch)


def run_flare_set(*, image_id: str, policy: SandboxPolicy, key: str, command: str, images: dict[str, Path],
                  predictions_dir: Path, log_path: Path, extra_mounts: Sequence[engine.Mount] = (),
                  gpu_metering: bool = False, client=None, scratch_dir: Path | None = None) -> list[ContainerResult]:
    """One test set, FLARE protocol: one container run over `images` (case id -> file), per-case results."""
    client = client or engine.connect()
    scratch = Path(tempfile.mkdtemp(prefix="aeval-set-", dir=scratch_dir or scratch_folders.owner_dir()))
    runtime = None
    try:
        job = flare.stage_set(images=images, scratch=scratch / "job")
        with _capped(job.output_dir, policy) as output:
            outcome = _run(client, image_id, policy, job.mounts() + list(extra_mounts), ["sh", "-c", command],
                           gpu_metering, output)
            write_log(log_path, outcome)
            runtime = {**outcome.runtime(), "scope": "test set run", "cases_in_run": len(images)}
            failure = classify(outcome, policy, subject=f"test set {key} (FLARE run)")
            kept = flare.collect_outputs(job, max_bytes=policy.output_max_bytes, keep_dir=scratch / "kept",
                                         max_entries=policy.output_max_files)
        results = []
        for case_id in images:
            result = kept[case_id]
            if isinstance(result, CaseFailed):
                results.append(ContainerResult.failed(case_id, failure or result, runtime))
            else:
                results.append(ContainerResult(case_id=case_id, prediction=keep_prediction(result, predictions_dir),
                                               runtime=runtime))
        return results
    except HarnessError:
        raise
    except Exception as exc:  # noqa: BLE001 - every case of the set fails with the reason, the run goes on
        failure = unexpected_failure(f"test set {key} (FLARE run)", exc)
        return [ContainerResult.failed(case_id, failure, runtime) for case_id in images]
    finally:
        scratch_folders.remove_tree(scratch)
