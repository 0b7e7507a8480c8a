"""`harness run`: the one driver loop of a run, local or distributed.

    resolve the submission -> for each test set: the cases still to do -> container steps
    -> each container result: a failed record, or a scoring step -> each record: results.json

The loop submits every container step up front and then only collects: the executor decides
where and how many run at once (`LocalExecutor`: one container at a time, the next case staged
and the last one scored meanwhile; `DaskExecutor`: one task per step on a cluster). Results are
written after every case, by this loop alone; a rerun with the same image id skips finished cases;
a case is added once, whatever ran twice (a Dask task rerun after a worker was presumed dead).
"""

from __future__ import annotations

from typing import Protocol

from harness.errors import ClusterError
from harness.jsonio import write_text_atomic
from harness.manifest import Manifest, case_file, load_benchmark
from harness.results import ResultsStore, summary_csv
from harness.runner.executor import Completed, Executor, steps_for
from harness.runner.layout import OutLayout
from harness.runner.run import ContainerResult, ResolvedSubmission, RunRequest, failed_case_record, score_job
from harness.taxonomy import load_taxonomy

#: How long one wait for finished steps lasts (seconds); the Dask executor checks its workers in between.
COLLECT_TIMEOUT_S = 2.0


class Progress(Protocol):
    def start_set(self, key: str, done: int, total: int) -> None: ...

    def case_done(self, key: str, record: dict) -> None: ...


class _Silent:
    def start_set(self, key: str, done: int, total: int) -> None:
        pass

    def case_done(self, key: str, record: dict) -> None:
        pass


class SubmissionRun:
    """A run of `request` on `executor` (default: this machine's engine, `LocalExecutor`)."""

    def __init__(self, request: RunRequest, *, executor: Executor | None = None, progress: Progress | None = None,
                 client=None) -> None:
        self.request = request
        self.layout = OutLayout(request.out_dir)
        self.manifests = load_benchmark(request.benchmark, keys=request.datasets)
        for manifest in self.manifests:
            manifest.check_complete()
        if executor is None:
            from harness.runner.local import LocalExecutor

            executor = LocalExecutor(request, client=client)
        self.executor = executor
        self.progress = progress or _Silent()
        self.submission: ResolvedSubmission = executor.resolve(request)
        self.store = open_store(request, self.submission, self.manifests, self.layout)
        self._recorded: set[tuple[str, str]] = set()

    def execute(self) -> dict:
        try:
            for manifest in self.manifests:
                selected, todo = select_cases(manifest, self.store, self.request)
                self.progress.start_set(manifest.key, len(selected) - len(todo), len(selected))
                if todo:
                    self.executor.begin_set(manifest, todo)
                    for step in steps_for(manifest, todo, self.submission.protocol):
                        self.executor.submit_container(step)
            while self.executor.busy():
                for completed in self.executor.collect(COLLECT_TIMEOUT_S):
                    self._handle(completed)
        except BaseException:  # an error or Ctrl-C: finished cases are saved, containers and scratch go
            self.executor.stop()
            raise
        self.executor.close()
        document = finish(self.store, self.layout)
        not_run = self.executor.not_run()
        if not_run:
            raise ClusterError(f"{len(not_run)} case(s) were not run because their task killed workers repeatedly "
                               f"({'; '.join(not_run[:3])}); finished cases are saved in {self.layout.results}: "
                               "rerun the same command to retry them")
        return document

    def _handle(self, completed: Completed) -> None:
        if completed.record is not None:
            self._add(completed.key, completed.record)
        for result in completed.containers:
            self._container_done(completed.key, result)

    def _container_done(self, key: str, result: ContainerResult) -> None:
        if result.prediction is None:
            self._add(key, failed_case_record(result, self.request.settings))
            return
        manifest = self._manifest(key)
        self.executor.submit_scoring(key, score_job(
            case_id=result.case_id, gt_path=case_file(self.request.data_root, manifest.case(result.case_id).label),
            prediction=result.prediction, runtime=result.runtime, gt_mapping=manifest.gt_mapping,
            pred_mapping=self.submission.mapping, settings=self.request.settings, protocol=self.submission.protocol))

    def _manifest(self, key: str) -> Manifest:
        return next(m for m in self.manifests if m.key == key)

    def _add(self, key: str, record: dict) -> None:
        """The one place results are written: each case once per run, whatever ran twice."""
        if (key, record["case_id"]) in self._recorded:
            return
        self._recorded.add((key, record["case_id"]))
        self.store.add(key, record)
        self.progress.case_done(key, record)


def open_store(request: RunRequest, submission: ResolvedSubmission, manifests: list[Manifest],
               layout: OutLayout) -> ResultsStore:
    """The run's results file (resumed when it exists and is of the same benchmark, settings and image)."""
    store = ResultsStore.open(
        layout.results, benchmark=request.benchmark, settings=request.settings.to_document(),
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


def finish(store: ResultsStore, layout: OutLayout) -> dict:
    document = store.write()
    write_text_atomic(layout.summary_csv, summary_csv(document))
    return document
