"""`harness run`: a participant image against the test sets, in the sandbox, scored as it goes.

Per test set and case (Grand-Challenge protocol) or per test set (FLARE protocol): stage the
inputs in a scratch folder, run the container under the sandbox policy, turn any failure into a
failed case with a precise message, keep the prediction under OUT/predictions/, and hand it to the
scoring pool while the next container runs. Results are written after every case; a rerun with
the same image id skips finished cases. Scratch folders and containers never outlive a case, also
on Ctrl-C.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.errors import CaseFailed, HarnessError
from harness.jsonio import write_text_atomic
from harness.labelmap import LabelMapping, build_mapping, resolve_label_map
from harness.manifest import Manifest, case_file, load_benchmark
from harness.results import ResultsStore, failed_record, summary_csv
from harness.runner import engine
from harness.runner.failures import classify
from harness.runner.images import (DEFAULT_FLARE_COMMAND, DEFAULT_OUTPUT_RELATIVE_PATH, LABEL_FLARE_COMMAND,
                                   LABEL_OUTPUT_PATH, PROTOCOLS, ImageInfo, declared_label_map, inspect_image,
                                   load_tarball)
from harness.runner.metering import GpuSampler, nvml_available
from harness.runner.protocols import flare, gc
from harness.runner.sandbox import SandboxPolicy
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
    image = load_tarball(client, request.image_tar) if request.image_tar else inspect_image(client, request.image)
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
        sub = self.submission
        self.store = ResultsStore.open(
            request.out_dir / "results.json", benchmark=request.benchmark, settings=request.settings.to_document(),
            organs=list(load_taxonomy().organ_names), manifests=self.manifests,
            submission={"name": sub.image.reference, "image": request.image or str(request.image_tar),
                        "image_id": sub.image.image_id, "protocol": sub.protocol,
                        "label_map": sub.mapping.label_map.name, "sandbox": request.policy.describe()})
        for note in sub.mapping.notes():
            self.store.add_note(f"image: {note}")

    def mounts_extra(self) -> list[engine.Mount]:
        model_dir = self.request.model_dir
        if model_dir is None:
            return []
        if not model_dir.is_dir():
            raise HarnessError(f"--model-dir {model_dir} is not a folder")
        return [engine.Mount(model_dir.resolve(), "/opt/ml/model", read_only=True)]

    def todo(self, manifest: Manifest):
        cases = list(manifest.cases[: self.request.cases_limit] if self.request.cases_limit else manifest.cases)
        done = self.store.finished(manifest.key, include_failed=not self.request.retry_failed)
        return cases, [c for c in cases if c.case_id not in done]

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
        document = self.store.write()
        write_text_atomic(self.request.out_dir / "summary.csv", summary_csv(document))
        return document

    # -- bookkeeping ---------------------------------------------------------------------------------
    def _record(self, key: str, record: dict) -> None:
        self.store.add(key, record)
        self._tick(key, 1)

    def _tick(self, key: str, step: int) -> None:
        self._counts["done"] += step
        if self._progress:
            self._progress(key, self._counts["done"], self._counts["total"])

    def _fail(self, key: str, case_id: str, failure: CaseFailed, runtime: dict | None) -> None:
        self._record(key, failed_record(case_id, kind=failure.kind, message=failure.message,
                                        organs=list(load_taxonomy().organ_names),
                                        metrics=list(self.request.settings.metrics), runtime=runtime))

    def _score(self, manifest: Manifest, case_id: str, prediction: Path, runtime: dict | None) -> None:
        case = manifest.case(case_id)
        self._pool.submit(manifest.key, CaseJob(
            case_id=case_id, gt_path=case_file(self.request.data_root, case.label), pred_path=prediction,
            gt_mapping=manifest.gt_mapping, pred_mapping=self.submission.mapping, settings=self.request.settings,
            runtime=runtime, gc_output=self.submission.protocol == "gc"))

    def _write_log(self, key: str, name: str, outcome: engine.RunOutcome) -> None:
        log = self.request.out_dir / "logs" / key / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("# stdout (last 500 lines)\n" + "\n".join(outcome.stdout_tail) +
                       "\n# stderr (last 500 lines)\n" + "\n".join(outcome.stderr_tail) + "\n")

    def _run(self, mounts: list[engine.Mount], command: list[str] | None) -> engine.RunOutcome:
        return engine.run_container(self.client, self.submission.image.image_id, policy=self.request.policy,
                                    mounts=mounts + self.mounts_extra(), command=command,
                                    gpu_sampler_factory=GpuSampler if self._gpu else None)

    # -- protocols -----------------------------------------------------------------------------------
    def _run_gc_case(self, manifest: Manifest, case) -> None:
        scratch = Path(tempfile.mkdtemp(prefix="aeval-job-"))
        runtime = None
        try:
            job = gc.stage_case(image_path=case_file(self.request.data_root, case.image),
                                socket=manifest.input_socket, scratch=scratch)
            outcome = self._run(job.mounts(), None)
            runtime = outcome.runtime()
            self._write_log(manifest.key, case.case_id, outcome)
            failure = classify(outcome, self.request.policy, subject=f"case {case.case_id}")
            if failure:
                raise failure
            kept = gc.collect_output(job, relative_path=self.submission.output_relative_path, case_id=case.case_id,
                                     max_bytes=self.request.policy.output_max_bytes,
                                     keep_as=self.request.out_dir / "predictions" / manifest.key / case.case_id)
        except CaseFailed as failure:
            self._fail(manifest.key, case.case_id, failure, runtime)
            return
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        self._score(manifest, case.case_id, kept, runtime)

    def _run_flare_set(self, manifest: Manifest, cases) -> None:
        scratch = Path(tempfile.mkdtemp(prefix="aeval-set-"))
        try:
            job = flare.stage_set(images={c.case_id: case_file(self.request.data_root, c.image) for c in cases},
                                  scratch=scratch)
            outcome = self._run(job.mounts(), ["sh", "-c", self.submission.flare_command])
            self._write_log(manifest.key, "flare-run", outcome)
            runtime = {**outcome.runtime(), "scope": "test set run", "cases_in_run": len(cases)}
            failure = classify(outcome, self.request.policy, subject=f"test set {manifest.key} (FLARE run)")
            kept = flare.collect_outputs(job, max_bytes=self.request.policy.output_max_bytes,
                                         keep_dir=self.request.out_dir / "predictions" / manifest.key)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        for case in cases:
            result = kept[case.case_id]
            if isinstance(result, CaseFailed):
                self._fail(manifest.key, case.case_id, failure or result, runtime)
            else:
                self._score(manifest, case.case_id, result, runtime)
