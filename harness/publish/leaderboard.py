"""Merge several submissions' results.json into one leaderboard document.

The leaderboard is what organizers publish: for every submission, the score of every test set and
of the CT, MR and All groups (as in the paper's tables), bootstrap intervals, and two rankings.
It never re-scores anything: test-set scores are the ones each results.json holds, and the
bootstrap resamples the case records those scores were computed from.

Rules that keep a leaderboard honest:
- every results.json is validated on read; all must come from the same benchmark and the same
  empty-organ policy (A-Eval's 1.0 for "absent from both" and nnU-Net's NaN give different numbers
  for the same predictions, so mixing them would rank conventions, not models);
- a submission missing a test set, or with fewer cases than the test set's contract, gets no mean
  for any group that needs that test set (CT, MR, All), and is unranked where the ranking needs it;
  its missing test sets are listed so the page can say why a cell is empty.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from harness import __version__
from harness.errors import HarnessError, ManifestError
from harness.jsonio import read_json, write_json_atomic, write_text_atomic
from harness.manifest import CANONICAL_ORDER, load_benchmark
from harness.publish import bootstrap
from harness.results import RANKED_METRICS

GROUPS = ("ct", "mr", "all")
CONFIDENCE = 0.95


class LeaderboardError(HarnessError):
    """The given results cannot be merged into one leaderboard (the message says which and why)."""


@dataclass(frozen=True)
class Submission:
    """One results.json and the name it is shown under."""

    label: str
    source: Path
    document: dict


def parse_source(spec: str) -> tuple[str | None, Path]:
    """`results.json` or `LABEL=results.json` (a label overrides the submission's own name)."""
    if "=" in spec and not Path(spec).exists():
        label, _, path = spec.partition("=")
        if label and "/" not in label:
            return label, Path(path)
    return None, Path(spec)


def load_submissions(specs: Sequence[str]) -> list[Submission]:
    """Read and validate every results.json; labels default to the submission's name, made unique."""
    if not specs:
        raise LeaderboardError("no results.json given")
    loaded = []
    for spec in specs:
        label, path = parse_source(spec)
        if not path.is_file():
            raise LeaderboardError(f"{path}: no such results file")
        document = read_json(path, "results")
        name = label or (document.get("submission") or {}).get("name") or path.parent.name or path.stem
        loaded.append((name, label is not None, path, document))
    names = [name for name, *_ in loaded]
    submissions = []
    for name, explicit, path, document in loaded:
        if names.count(name) > 1 and not explicit:
            name = f"{name} [{path.parent.name or path.stem}]"
        submissions.append(Submission(label=name, source=path, document=document))
    labels = [s.label for s in submissions]
    duplicates = sorted({lab for lab in labels if labels.count(lab) > 1})
    if duplicates:
        raise LeaderboardError(f"two submissions would be shown as {', '.join(map(repr, duplicates))}: "
                               "name them with LABEL=path/to/results.json")
    return submissions


def check_compatible(submissions: Sequence[Submission]) -> None:
    """Refuse to rank results of different benchmarks or empty-organ policies side by side."""
    for field, read in (("benchmark", lambda d: d["benchmark"]),
                        ("empty-organ policy", lambda d: d["settings"]["empty_policy"])):
        values: dict[str, list[str]] = {}
        for sub in submissions:
            values.setdefault(read(sub.document), []).append(str(sub.source))
        if len(values) > 1:
            listing = "; ".join(f"{value!r}: {', '.join(paths)}" for value, paths in values.items())
            raise LeaderboardError(f"the results mix {field}s ({listing}); a leaderboard compares one "
                                   f"{field} only: make one leaderboard per {field}")


def test_sets(submissions: Sequence[Submission]) -> list[dict]:
    """The columns: the benchmark's test sets when its manifests are known here, plus any others seen.

    Taking them from the manifests means a test set that no submission ran still has its column
    (and still makes the group means that need it empty), instead of silently vanishing.
    """
    found: dict[str, dict] = {}
    try:
        for manifest in load_benchmark(submissions[0].document["benchmark"]):
            found[manifest.key] = {"key": manifest.key, "dataset": manifest.dataset, "modality": manifest.modality,
                                   "expected_case_count": manifest.expected_case_count}
    except ManifestError:
        pass  # a benchmark folder from another machine: the results themselves say what there is
    for sub in submissions:
        for key, dataset in sub.document["datasets"].items():
            entry = found.setdefault(key, {"key": key, "dataset": dataset["dataset"], "modality": dataset["modality"],
                                           "expected_case_count": dataset["expected_case_count"]})
            if entry["modality"] != dataset["modality"]:
                raise LeaderboardError(f"test set {key} is {entry['modality']} elsewhere but {dataset['modality']} "
                                       f"in {sub.source}")
    order = {key: i for i, key in enumerate(CANONICAL_ORDER)}
    return sorted(found.values(), key=lambda t: (t["modality"] != "CT", order.get(t["key"], len(order)), t["key"]))


def _organs(submissions: Sequence[Submission]) -> list[str]:
    organs: list[str] = []
    for sub in submissions:
        for dataset in sub.document["datasets"].values():
            for organ in dataset["organs"]:
                if organ not in organs:
                    organs.append(organ)
    return organs


def _case_score(case: dict, metric: str) -> float | None:
    values = [v[metric] for v in case["metrics"].values() if v.get(metric) is not None]
    return float(np.mean(values)) if values else None


def _test_set_entry(dataset: dict | None, *, key: str, expected: int, organs: list[str], label: str,
                    resamples: int, seed: int) -> tuple[dict, dict[str, np.ndarray]]:
    """A submission's entry for one test set, and its bootstrap replicates per metric."""
    if dataset is None:
        empty = {"score": None, "ci_low": None, "ci_high": None}
        return ({"status": "missing", "n_cases": 0, "expected_case_count": expected, "n_failed": 0,
                 **{m: dict(empty) for m in RANKED_METRICS}, "organs": {}, "cases": []}, {})
    complete = dataset["n_cases"] >= expected and dataset["n_cases"] > 0
    entry = {"status": "complete" if complete else "incomplete", "n_cases": dataset["n_cases"],
             "expected_case_count": expected, "n_failed": dataset["n_failed"],
             "organs": {o: {m: dataset["organs"].get(o, {}).get(m) for m in RANKED_METRICS} for o in organs},
             "cases": [{"case_id": c["case_id"], "status": c["status"],
                        **{m: _case_score(c, m) for m in RANKED_METRICS}} for c in dataset["cases"]]}
    reps = {}
    for metric in RANKED_METRICS:
        matrix = bootstrap.case_matrix(dataset["cases"], organs=organs, metric=metric)
        samples = bootstrap.replicates(matrix, resamples=resamples,
                                       rng=bootstrap.seeded_rng(seed, label, key, metric))
        low, high = bootstrap.percentile_interval(samples, confidence=CONFIDENCE) if resamples else (None, None)
        entry[metric] = {"score": dataset[metric], "ci_low": low, "ci_high": high}
        reps[metric] = samples
    return entry, reps


def _group_entry(sets: dict[str, dict], replicates: dict[str, dict[str, np.ndarray]], keys: list[str],
                 resamples: int) -> dict:
    """CT/MR/All: the mean of the test-set scores, defined only if every test set it needs is complete."""
    unavailable = [k for k in keys if sets[k]["status"] != "complete"]
    entry: dict = {"test_sets": keys, "missing": unavailable}
    for metric in RANKED_METRICS:
        scores = [sets[k][metric]["score"] for k in keys]
        if unavailable or not keys or any(s is None for s in scores):
            entry[metric] = {"score": None, "ci_low": None, "ci_high": None}
            continue
        low = high = None
        if resamples:
            low, high = bootstrap.percentile_interval(
                bootstrap.group_replicates([replicates[k][metric] for k in keys]), confidence=CONFIDENCE)
        entry[metric] = {"score": float(np.mean(scores)), "ci_low": low, "ci_high": high}
    return entry


def competition_ranks(values: dict[str, float | None], *, higher_is_better: bool) -> dict[str, int | None]:
    """Standard competition ranking ("1224"): ties share the best rank; None stays unranked."""
    defined = {k: round(v, 10) for k, v in values.items() if v is not None}
    ranks: dict[str, int | None] = {k: None for k in values}
    for key, value in defined.items():
        better = sum(1 for other in defined.values() if (other > value if higher_is_better else other < value))
        ranks[key] = better + 1
    return ranks


def _rankings(entries: list[dict], *, metric: str, keys: list[str]) -> None:
    """Fill each entry's ranks: by All mean, and rank-then-aggregate (mean of per-test-set ranks)."""
    by_mean = competition_ranks({e["name"]: e["groups"]["all"][metric]["score"] for e in entries},
                                higher_is_better=True)
    per_set = {key: competition_ranks({e["name"]: (e["test_sets"][key][metric]["score"]
                                                   if e["test_sets"][key]["status"] == "complete" else None)
                                       for e in entries}, higher_is_better=True) for key in keys}
    mean_rank = {}
    for e in entries:
        ranks = [per_set[k][e["name"]] for k in keys]
        mean_rank[e["name"]] = float(np.mean(ranks)) if keys and all(r is not None for r in ranks) else None
    by_rank = competition_ranks(mean_rank, higher_is_better=False)
    for e in entries:
        e["ranks"] = {"mean_score": by_mean[e["name"]], "rank_then_aggregate": by_rank[e["name"]],
                      "mean_rank": mean_rank[e["name"]], "per_test_set": {k: per_set[k][e["name"]] for k in keys}}


def build_leaderboard(submissions: Sequence[Submission], *, metric: str = "dice", resamples: int = 1000,
                      seed: int = 0) -> dict:
    """The leaderboard document (leaderboard.schema.json), submissions sorted by rank."""
    if metric not in RANKED_METRICS:
        raise LeaderboardError(f"cannot rank by {metric!r}: choose {' or '.join(RANKED_METRICS)}")
    if resamples < 0:
        raise LeaderboardError("--bootstrap must be 0 (no intervals) or a positive number of resamples")
    check_compatible(submissions)
    columns = test_sets(submissions)
    keys = [t["key"] for t in columns]
    groups = {"ct": [t["key"] for t in columns if t["modality"] == "CT"],
              "mr": [t["key"] for t in columns if t["modality"] == "MR"], "all": keys}
    organs = _organs(submissions)
    entries = []
    for sub in submissions:
        sets, reps = {}, {}
        for column in columns:
            sets[column["key"]], reps[column["key"]] = _test_set_entry(
                sub.document["datasets"].get(column["key"]), key=column["key"],
                expected=column["expected_case_count"], organs=organs, label=sub.label, resamples=resamples, seed=seed)
        submission = sub.document.get("submission") or {}
        entries.append({"name": sub.label, "source": str(sub.source), "image": submission.get("image"),
                        "image_id": submission.get("image_id"), "created": sub.document["created"],
                        "harness_version": sub.document["harness_version"], "test_sets": sets,
                        "groups": {g: _group_entry(sets, reps, groups[g], resamples) for g in GROUPS},
                        "notes": _notes(sets)})
    _rankings(entries, metric=metric, keys=keys)
    entries.sort(key=lambda e: (e["ranks"]["mean_score"] is None, e["ranks"]["mean_score"] or 0, e["name"]))
    first = submissions[0].document
    return {"schema_version": 1, "harness_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "benchmark": first["benchmark"], "empty_policy": first["settings"]["empty_policy"],
            "ranking_metric": metric,
            "bootstrap": {"resamples": resamples, "seed": seed, "confidence": CONFIDENCE,
                          "method": "percentile; cases resampled with replacement within each test set; "
                                    "CT/MR/All combine independent per-test-set resamples"},
            "test_sets": columns, "groups": groups, "organs": organs, "submissions": entries}


def _notes(sets: dict[str, dict]) -> list[str]:
    notes = []
    missing = [k for k, s in sets.items() if s["status"] == "missing"]
    if missing:
        notes.append(f"missing test sets: {', '.join(missing)} (no mean for groups that need them)")
    for key, entry in sets.items():
        if entry["status"] == "incomplete":
            notes.append(f"{key}: only {entry['n_cases']} of {entry['expected_case_count']} cases "
                         "(score shown, left out of group means and rankings)")
        if entry["n_failed"]:
            notes.append(f"{key}: {entry['n_failed']} failed case(s) scored 0")
    return notes


def write_leaderboard(document: dict, out_dir: Path) -> list[Path]:
    """Write the JSON (validated, atomic), CSV and Markdown tables and the HTML report into `out_dir`."""
    from harness.publish import html, tables

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "leaderboard.json"]
    write_json_atomic(written[0], document, "leaderboard")
    for metric in RANKED_METRICS:
        path = out_dir / f"leaderboard_{metric}.csv"
        write_text_atomic(path, tables.score_csv(document, metric=metric))
        written.append(path)
    extra = {"leaderboard_ci.csv": tables.interval_csv(document), "leaderboard.md": tables.markdown(document),
             "leaderboard.html": html.report(document)}
    for name, text in extra.items():
        write_text_atomic(out_dir / name, text)
        written.append(out_dir / name)
    for path in written:
        path.chmod(0o644)  # published as is (web server, archive): atomic writes create them 0600
    return written
