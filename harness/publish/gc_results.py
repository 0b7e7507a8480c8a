"""Grand-Challenge metrics.json back into a results document, on the organizer's side.

metrics.json keys its per-case results by job pk and an opaque case reference (see
`GroundTruth.case_ref`), so that a phase publishing all metrics does not tell participants which
hidden image is which case. The organizer holds the ground truth, which is the key: with it each
reference maps back to its test set and case, and the cases are summarized by the very functions
`harness run` uses (summarize_dataset, aggregate). The result is an ordinary results.json document,
so `harness leaderboard METRICS.json --gc-ground-truth DIR` gives platform submissions the same
report, intervals and rankings as local runs.
"""

from __future__ import annotations

from harness.errors import HarnessError
from harness.jsonio import validate
from harness.publish.gc_ground_truth import GroundTruth
from harness.results import aggregate, summarize_dataset
from harness.taxonomy import load_taxonomy


def is_gc_metrics(document: object) -> bool:
    """A Grand-Challenge metrics.json of `harness gc-evaluate` (not a results.json)."""
    return isinstance(document, dict) and "unmatched_jobs" in document and isinstance(document.get("results"), list)


def results_from_gc_metrics(metrics: dict, ground_truth: GroundTruth, *, where: str) -> dict:
    """The results document (results.schema.json) of one platform submission's metrics.json."""
    validate(metrics, "gc_metrics", where=where)
    if metrics["benchmark"] != ground_truth.benchmark:
        raise HarnessError(f"{where} was scored against benchmark {metrics['benchmark']!r}, but the ground truth "
                           f"given is {ground_truth.benchmark!r}")
    by_ref = ground_truth.cases_by_ref()
    unknown = [e["case_ref"] for e in metrics["results"] if e["case_ref"] not in by_ref]
    if unknown:
        raise HarnessError(f"{where}: {len(unknown)} case reference(s) (e.g. {unknown[0]}) are not cases of the ground "
                           f"truth in {ground_truth.root}: give the ground truth this phase was evaluated with")
    cases: dict[str, list[dict]] = {}
    for entry in metrics["results"]:
        case = by_ref[entry["case_ref"]]
        failed = entry["status"] == "failed"
        cases.setdefault(case.test_set, []).append({
            "case_id": case.case_id, "status": entry["status"], "error": entry["error"],
            "error_kind": entry["error_kind"], "flags": ["case_failed"] if failed else [],
            "metrics": entry["metrics"], "runtime": None})
    organs = list(load_taxonomy().organ_names)
    datasets = {m.key: summarize_dataset(m, cases[m.key], organs=organs, metrics=metrics["settings"]["metrics"])
                for m in ground_truth.manifests if m.key in cases}
    document = {"schema_version": 1, "harness_version": metrics["harness_version"],
                "created": metrics.get("created") or "", "benchmark": metrics["benchmark"],
                "submission": None, "settings": metrics["settings"],
                "notes": [*metrics["notes"], f"converted from Grand-Challenge metrics {where}"],
                "datasets": datasets, "aggregates": aggregate(datasets)}
    validate(document, "results", where=f"{where} (as results)")
    return document
