"""`harness gc-evaluate`: the harness as a Grand-Challenge evaluation container.

The platform runs it once per submission with:
- /input/predictions.json: one entry per algorithm job, in no particular order
  (`{"pk": <uuid>, "inputs": [{"interface": {...}, "image": {"pk", "name"}}, ...], "outputs": [...],
  "status": "Succeeded", ...}`), and each job's files under /input/<job pk>/output/<relative path>/;
- the ground-truth tarball extracted to /opt/ml/input/data/ground_truth/ (see gc_ground_truth.py).
It writes /output/metrics.json (gc_metrics.schema.json): `results` (one entry per ground-truth case)
and `aggregates` with every leaderboard number at a stable dotted path: aggregates.dice.mean and
aggregates.nsd.mean (the All mean of the paper's tables), aggregates.ct.dice, aggregates.mr.nsd,
aggregates.<test set>.dice, aggregates.<test set>.organs.<organ>.dice, aggregates.organs.<organ>.nsd.

One bad job never stops the evaluation: a case whose job is missing, failed, unreadable, on the
wrong grid or of the wrong pixel type scores 0 for every organ and is listed with the reason, and a
job that matches no ground truth is listed under `unmatched_jobs`. The numbers are computed by the
same code as `harness run` (score_files, summarize_dataset, aggregate), so a submission scores the
same locally and on the platform. Only a broken ground truth, an unreadable predictions.json, or a
phase set up wrong (no job matches the ground truth, or no job's output is found) stops it (exit 2,
no metrics.json): then no score would mean anything, and 0.00 for everyone would look like one.
Per-case results are keyed by job pk and an opaque case reference (GroundTruth.case_ref), so that
metrics.json never pairs a hidden input image with its test set and case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness import __version__
from harness.errors import EvaluationSetupError, FailureKind, HarnessError, PredictionsError
from harness.gc_interface import is_output_image, one_image_message
from harness.jsonio import read_json, validate, write_json_atomic
from harness.labelmap import LabelMapping
from harness.publish import bootstrap
from harness.publish.bootstrap import MIN_RESAMPLES
from harness.publish.gc_ground_truth import INDEX_NAME, GroundTruth, GroundTruthCase, load_ground_truth
from harness.results import RANKED_METRICS, Results, case_mean, failed_record, mean_or_none
from harness.scoring.case import CaseJob, ScoreSettings
from harness.scoring.pool import ScoringPool
from harness.taxonomy import load_taxonomy

PREDICTIONS_NAME = "predictions.json"
METRICS_NAME = "metrics.json"
#: Image files Grand-Challenge stores for an image output (.mhd comes with its .raw/.zraw).
_SAFE_PK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: The job statuses predictions.json carries: the platform's job serializer (grand-challenge.org,
#: algorithms/serializers.py JobSerializer: pk, inputs, outputs, status, rendered_result_text, started_at,
#: completed_at, ...) gives `status` as its display text ("Succeeded", "Failed", "Cancelled", ...) and no
#: error text, so a failure is read from `status` alone.
SUCCEEDED = "Succeeded"


@dataclass(frozen=True)
class Assignment:
    """What the evaluation knows about one ground-truth case before scoring it."""

    case: GroundTruthCase
    pk: str | None = None
    prediction: Path | None = None
    failure: tuple[str, str] | None = None  # (kind, message) when there is nothing to score


def read_predictions(input_dir: Path) -> list[dict]:
    path = Path(input_dir) / PREDICTIONS_NAME
    if not path.is_file():
        raise PredictionsError(f"{path} does not exist: the platform writes it; locally, lay out the input as "
                               "containers/evaluation/README.md shows")
    jobs = read_json(path)
    if not isinstance(jobs, list) or not all(isinstance(j, dict) for j in jobs):
        raise PredictionsError(f"{path}: expected a JSON list of job objects, got {type(jobs).__name__}")
    return jobs


def input_image_names(job: dict) -> list[str]:
    """The original names of a job's input images (`inputs[].image.name`)."""
    names = []
    for entry in job.get("inputs") or []:
        image = entry.get("image") if isinstance(entry, dict) else None
        if isinstance(image, dict) and isinstance(image.get("name"), str):
            names.append(image["name"])
    return names


def _socket(entry: object) -> dict:
    """The socket an input/output entry names: `socket` in newer files, `interface` in older ones."""
    if not isinstance(entry, dict):
        return {}
    for field in ("socket", "interface"):
        if isinstance(entry.get(field), dict):
            return entry[field]
    return {}


def declared_outputs(job: dict) -> list[str]:
    """The relative paths of the image outputs a job declares (`outputs[].socket|interface.relative_path`)."""
    paths = []
    for entry in job.get("outputs") or []:
        path = _socket(entry).get("relative_path")
        if isinstance(path, str) and path.startswith("images/") and _is_safe_relative(path):
            paths.append(path.strip("/"))
    return paths


def _is_safe_relative(path: str) -> bool:
    parts = [p for p in path.strip("/").split("/") if p]
    return bool(parts) and not any(p in (".", "..") or not _SAFE_PART.match(p) for p in parts)


def output_path(job: dict, *, fallback: str) -> tuple[str | None, str | None]:
    """Where this job's segmentation lies, from the job's own declared outputs.

    The flag's path is the fallback when the job declares no image output, and the tie-break when it
    declares several. Returns (relative path, None) or (None, why not).
    """
    declared = declared_outputs(job)
    if not declared or fallback in declared:
        return fallback, None
    if len(declared) == 1:
        return declared[0], None
    return None, (f"it declares several image outputs ({', '.join(declared)}) and none is "
                  f"{fallback}: pass --output-relative-path with the segmentation's")


def find_output(*, input_dir: Path, job: dict, pk: str, relative_path: str,
                case_id: str) -> tuple[Path | None, tuple[str, str] | None]:
    """The job's one output image under /input/<pk>/output/<relative_path>/, or why there is none."""
    folder = Path(input_dir) / pk / "output" / relative_path
    entries = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
    images = [p for p in entries if is_output_image(p)]
    if not images:
        declared = declared_outputs(job)
        hint = f" (the job declares outputs {', '.join(declared)})" if declared else ""
        found = f"; it holds {', '.join(p.name for p in entries[:5])}" if entries else ""
        return None, (FailureKind.MISSING_PREDICTION, f"case {case_id}: job {pk}: no .mha/.tif image in "
                                            f"{pk}/output/{relative_path}{found}{hint}")
    if len(images) > 1:
        return None, (FailureKind.TOO_MANY_OUTPUTS, f"case {case_id}: job {pk}: {one_image_message(images, relative_path=relative_path)}")
    return images[0], None


def assign_jobs(jobs: list[dict], *, ground_truth: GroundTruth, input_dir: Path,
                relative_path: str) -> tuple[dict[tuple[str, str], Assignment], list[dict]]:
    """Map every ground-truth case to its job (or to why it has none); list jobs that match no case.

    Jobs are taken in pk order, so which of two jobs for the same image counts never depends on the
    order of predictions.json.
    """
    assigned: dict[tuple[str, str], Assignment] = {}
    unmatched: list[dict] = []
    for job in sorted(jobs, key=lambda j: str(j.get("pk"))):
        pk, names = str(job.get("pk")), input_image_names(job)
        matches = ground_truth.match(names)
        if not matches:
            unmatched.append({"pk": pk, "image_names": names,
                              "reason": "no input image name is in the ground truth index" if names
                              else "the job has no input image"})
            continue
        if len(matches) > 1:
            unmatched.append({"pk": pk, "image_names": names,
                              "reason": f"its input images match {len(matches)} ground-truth cases"})
            continue
        case = matches[0]
        key = (case.test_set, case.case_id)
        if key in assigned:
            unmatched.append({"pk": pk, "image_names": names,
                              "reason": f"its case is already scored from job {assigned[key].pk}"})
            continue
        assigned[key] = _assignment(job, pk=pk, case=case, input_dir=input_dir, relative_path=relative_path)
    for case in ground_truth.cases:
        assigned.setdefault((case.test_set, case.case_id), Assignment(case=case, failure=(
            FailureKind.MISSING_PREDICTION, f"case {case.case_id}: no algorithm job has input image {case.image_name}")))
    return assigned, unmatched


def _assignment(job: dict, *, pk: str, case: GroundTruthCase, input_dir: Path, relative_path: str) -> Assignment:
    status = job.get("status")
    if status != SUCCEEDED:
        shown = repr(status) if isinstance(status, str) else "missing"
        return Assignment(case=case, pk=pk, failure=(
            FailureKind.JOB_FAILED, f"case {case.case_id}: job {pk} did not succeed (status {shown}); its logs are on the "
                          "platform's job page"))
    if not _SAFE_PK.match(pk):
        return Assignment(case=case, pk=pk, failure=(FailureKind.INVALID_JOB, f"case {case.case_id}: job pk {pk!r} is not a "
                                                                    "plain identifier; its files are not read"))
    path, problem = output_path(job, fallback=relative_path)
    if path is None:
        return Assignment(case=case, pk=pk, failure=(FailureKind.MISSING_PREDICTION, f"case {case.case_id}: job {pk}: {problem}"))
    prediction, failure = find_output(input_dir=input_dir, job=job, pk=pk, relative_path=path, case_id=case.case_id)
    return Assignment(case=case, pk=pk, prediction=prediction, failure=failure)


def check_anything_to_score(assigned: dict[tuple[str, str], Assignment], *, n_jobs: int, unmatched: list[dict],
                            relative_path: str) -> None:
    """Stop (no metrics.json) when the phase is misconfigured rather than the submission bad.

    No job matching any ground-truth image, or no matched job with an output where it should be,
    would otherwise post 0.00 for every submission as a valid score.
    """
    matched = [a for a in assigned.values() if a.pk is not None]
    if not matched:
        seen = sorted({n for job in unmatched for n in job["image_names"]})[:3]
        raise EvaluationSetupError(
            f"none of the {n_jobs} algorithm jobs matches the ground truth: no job's input image name is in "
            f"{INDEX_NAME}" + (f" (jobs have e.g. {', '.join(seen)})" if seen else "")
            + "; check that the phase's archive is the one the ground truth was built for")
    if not any(a.prediction is not None for a in matched):
        first = next((a.failure[1] for a in matched if a.failure), "")
        raise EvaluationSetupError(
            f"no output of any of the {len(matched)} matched jobs was found (default output path "
            f"{relative_path}); e.g. {first}. Check the phase's output socket and --output-relative-path")


def score_assignments(assigned: dict[tuple[str, str], Assignment], *, ground_truth: GroundTruth,
                      pred_mapping: LabelMapping, settings: ScoreSettings, workers: int) -> Results:
    """Score every assignment with a prediction; failures become failed records (0 for every organ)."""
    organs = list(load_taxonomy().organ_names)
    store = Results(benchmark=ground_truth.benchmark, settings=settings.to_document(), organs=organs,
                    manifests={m.key: m for m in ground_truth.manifests})
    for note in pred_mapping.notes():
        store.add_note(f"predictions: {note}")
    with ScoringPool(workers=workers, on_record=store.add) as pool:
        for (key, case_id), assignment in sorted(assigned.items()):
            if assignment.failure is not None:
                kind, message = assignment.failure
                store.add(key, failed_record(case_id, kind=kind, message=message, organs=organs,
                                             metrics=settings.metrics))
                continue
            pool.submit(key, CaseJob(case_id=case_id, gt_path=assignment.case.label, pred_path=assignment.prediction,
                                     gt_mapping=ground_truth.mappings[key], pred_mapping=pred_mapping,
                                     settings=settings, gc_output=True))
    return store


def redact(message: str | None, case: GroundTruthCase, ground_truth: GroundTruth) -> str | None:
    """A failure message fit for metrics.json: the case's id, test set, image name and files removed."""
    if message is None:
        return None
    replacements = [(str(case.label), "<ground truth>"), (str(ground_truth.root), "<ground truth>"),
                    (case.image_name, "<input image>"), (f"{case.test_set}/{case.case_id}", "<case>"),
                    (case.case_id, "<case>"), (f"labels/{case.test_set}/", "labels/")]
    for old, new in sorted(replacements, key=lambda r: len(r[0]), reverse=True):
        if old:
            message = message.replace(old, new)
    return message


def metrics_document(results: dict, *, assigned: dict[tuple[str, str], Assignment], unmatched: list[dict],
                     n_jobs: int, label_map: str, relative_path: str, resamples: int, seed: int,
                     ground_truth: GroundTruth) -> dict:
    """Grand-Challenge's metrics.json from a results document: per-case results, dotted aggregates.

    Per-case results are keyed by the platform's job pk and an opaque case reference
    (`GroundTruth.case_ref`), never by test set, case id or input image name: a phase that publishes
    all metrics must not tell participants which hidden image belongs to which test set and case.
    """
    datasets, groups = results["datasets"], results["aggregates"]
    entries, replicates = [], {m: [] for m in RANKED_METRICS}
    organs = list(load_taxonomy().organ_names)
    aggregates: dict = {}
    for key, dataset in datasets.items():
        for record in dataset["cases"]:
            assignment = assigned[(key, record["case_id"])]
            entries.append({"pk": assignment.pk, "case_ref": ground_truth.case_ref(assignment.case),
                            "status": record["status"], "error_kind": record["error_kind"],
                            "error": redact(record["error"], assignment.case, ground_truth),
                            **{m: case_mean(record, m) for m in RANKED_METRICS}, "metrics": record["metrics"]})
        for metric in RANKED_METRICS:
            matrix = bootstrap.case_matrix(dataset["cases"], organs=organs, metric=metric)
            replicates[metric].append(bootstrap.replicates(matrix, resamples=resamples,
                                                           rng=bootstrap.seeded_rng(seed, "gc", key, metric)))
        aggregates[key] = {"dataset": dataset["dataset"], "modality": dataset["modality"],
                           "dice": dataset["dice"], "nsd": dataset["nsd"], "n_cases": dataset["n_cases"],
                           "n_failed": dataset["n_failed"],
                           "organs": {o: {m: v.get(m) for m in RANKED_METRICS} for o, v in dataset["organs"].items()}}
    entries.sort(key=lambda e: e["case_ref"])  # no order that would hint at test sets
    for metric in RANKED_METRICS:
        low, high = (bootstrap.percentile_interval(bootstrap.group_replicates(replicates[metric]))
                     if resamples else (None, None))
        aggregates[metric] = {"mean": groups["all"][metric], "ci_low": low, "ci_high": high}
    for group in ("ct", "mr", "all"):
        aggregates[group] = {"dice": groups[group]["dice"], "nsd": groups[group]["nsd"],
                             "test_sets": groups[group]["datasets"]}
    aggregates["organs"] = {o: {m: mean_or_none([d["organs"][o][m] for d in datasets.values()])
                                for m in RANKED_METRICS} for o in organs}
    aggregates.update({"n_cases": len(entries), "n_failed": sum(1 for e in entries if e["status"] == "failed"),
                       "n_jobs": n_jobs, "n_unmatched_jobs": len(unmatched)})
    return {"schema_version": 1, "harness_version": __version__, "benchmark": results["benchmark"],
            "settings": results["settings"], "label_map": label_map, "output_relative_path": relative_path,
            "bootstrap": {"resamples": resamples, "seed": seed, "confidence": 0.95},
            "notes": results["notes"], "results": entries, "aggregates": aggregates, "unmatched_jobs": unmatched}


def evaluate_predictions(*, input_dir: Path, ground_truth_dir: Path, output_dir: Path, pred_mapping: LabelMapping,
                         settings: ScoreSettings, output_relative_path: str, benchmark: str | None = None,
                         workers: int = 1, resamples: int = 1000, seed: int = 0,
                         log: Callable[[str], None] | None = None) -> dict:
    """Evaluate one submission; writes output_dir/metrics.json (validated, atomic) and returns it."""
    if 0 < resamples < MIN_RESAMPLES:
        raise HarnessError(f"bootstrap resamples {resamples}: use 0 for none, or at least {MIN_RESAMPLES}")
    ground_truth = load_ground_truth(ground_truth_dir, benchmark=benchmark)
    jobs = read_predictions(input_dir)
    assigned, unmatched = assign_jobs(jobs, ground_truth=ground_truth, input_dir=Path(input_dir),
                                      relative_path=output_relative_path)
    check_anything_to_score(assigned, n_jobs=len(jobs), unmatched=unmatched, relative_path=output_relative_path)
    store = score_assignments(assigned, ground_truth=ground_truth, pred_mapping=pred_mapping, settings=settings,
                              workers=workers)
    results = store.document()
    validate(results, "results", where="gc-evaluate results")
    metrics = metrics_document(results, assigned=assigned, unmatched=unmatched, n_jobs=len(jobs),
                               label_map=pred_mapping.label_map.name, relative_path=output_relative_path,
                               resamples=resamples, seed=seed, ground_truth=ground_truth)
    path = Path(output_dir) / METRICS_NAME
    write_json_atomic(path, metrics, "gc_metrics")
    path.chmod(0o644)  # atomic writes create 0600 files; the platform (or the host user) reads it as another uid
    if log is not None:  # the evaluation's log is the organizer's: it names cases in full
        for (key, case_id), assignment in sorted(assigned.items()):
            record = store.cases[key][case_id]
            if record["status"] == "failed":
                log(f"failed: {key}/{case_id} (job {assignment.pk}, {record['error_kind']}): {record['error']}")
        for job in unmatched:
            log(f"unmatched job {job['pk']} ({', '.join(job['image_names']) or 'no image'}): {job['reason']}")
    return metrics
