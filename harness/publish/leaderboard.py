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
from harness.errors import LeaderboardError, ManifestError
from harness.atomic import write_text_atomic
from harness.jsonio import read_json, write_json_atomic
from harness.manifest import CANONICAL_ORDER, load_benchmark
from harness.publish import bootstrap, ranking
from harness.results import RANKED_METRICS, case_mean

GROUPS = ("ct", "mr", "all")
CONFIDENCE = 0.95


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


def default_name(document: dict, path: Path) -> str:
    """The name a submission is shown under when no LABEL= is given: its image, else its results folder.

    `harness run` records the image reference (tag, or digest for an untagged image) as the name; a
    results.json without an image (`harness evaluate` of a predictions folder) is named after the
    folder holding it, never after the predictions folder it was scored from.
    """
    submission = document.get("submission") or {}
    if submission.get("image_id") or submission.get("image"):
        reference = submission.get("name") or submission.get("image")
        if reference:
            return reference
        return submission["image_id"].split(":")[-1][:12]
    folder = path.resolve().parent.name
    return folder or path.stem


def read_submission(path: Path, *, gc_ground_truth: Path | None = None) -> dict:
    """A results.json (validated), or a Grand-Challenge metrics.json converted with the organizer's ground truth."""
    from harness.publish.gc_results import is_gc_metrics, results_from_gc_metrics

    document = read_json(path)
    if not is_gc_metrics(document):
        return read_json(path, "results")
    if gc_ground_truth is None:
        raise LeaderboardError(f"{path} is a Grand-Challenge metrics.json: its cases are opaque references, so "
                               "give the phase's ground truth with --gc-ground-truth DIR to map them back")
    from harness.publish.gc_ground_truth import load_ground_truth

    return results_from_gc_metrics(document, load_ground_truth(gc_ground_truth), where=str(path))


def load_submissions(specs: Sequence[str], *, gc_ground_truth: Path | None = None) -> list[Submission]:
    """Read and validate every results.json (or GC metrics.json); labels default to the image or the
    results folder, made unique."""
    if not specs:
        raise LeaderboardError("no results.json given")
    loaded = []
    for spec in specs:
        label, path = parse_source(spec)
        if not path.is_file():
            raise LeaderboardError(f"{path}: no such results file")
        document = read_submission(path, gc_ground_truth=gc_ground_truth)
        name = label or default_name(document, path)
        loaded.append((name, label is not None, path, document))
    names = [name for name, *_ in loaded]
    submissions = []
    for name, explicit, path, document in loaded:
        if names.count(name) > 1 and not explicit:
            name = f"{name} [{path.resolve().parent.name or path.stem}]"
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
    check_same_cases(submissions)


def check_same_cases(submissions: Sequence[Submission]) -> None:
    """Refuse to rank submissions whose test sets were scored on different case lists.

    Each results.json records, per test set, a digest of the manifest's case list (and the manifest
    file's checksum). Two different digests for one test set mean two different test sets under one
    name (another manifest version, other cases, other files): their scores are not comparable.
    Results written before fingerprints existed carry none and are compared as they are.
    """
    seen: dict[str, tuple[str, dict, Path]] = {}
    for sub in submissions:
        for key, dataset in sub.document["datasets"].items():
            fingerprint = dataset.get("fingerprint")
            if not fingerprint:
                continue
            if key not in seen:
                seen[key] = (sub.label, fingerprint, sub.source)
                continue
            label, first, source = seen[key]
            if first["cases_sha256"] != fingerprint["cases_sha256"]:
                raise LeaderboardError(
                    f"test set {key} was scored on different cases: {label!r} ({source}) on case list "
                    f"{first['cases_sha256'][:12]} ({first.get('n_listed', '?')} cases, manifest "
                    f"{(first.get('manifest_sha256') or 'unknown')[:12]}), {sub.label!r} ({sub.source}) on "
                    f"{fingerprint['cases_sha256'][:12]} ({fingerprint.get('n_listed', '?')} cases, manifest "
                    f"{(fingerprint.get('manifest_sha256') or 'unknown')[:12]}); rescore both on one manifest "
                    "version before ranking them together")


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


def _interval(score: float | None, samples: np.ndarray | None) -> dict:
    if score is None or samples is None:
        return {"score": score, "ci_low": None, "ci_high": None}
    low, high = bootstrap.percentile_interval(samples, confidence=CONFIDENCE)
    return {"score": score, "ci_low": low, "ci_high": high}


def _test_set_entry(dataset: dict | None, *, expected: int, organs: list[str],
                    replicates: dict[str, np.ndarray | None]) -> dict:
    """A submission's entry for one test set; `replicates` are its scores on the shared resamples."""
    if dataset is None:
        empty = {"score": None, "ci_low": None, "ci_high": None}
        return {"status": "missing", "n_cases": 0, "expected_case_count": expected, "n_failed": 0,
                **{m: dict(empty) for m in RANKED_METRICS}, "organs": {}, "cases": []}
    complete = dataset["n_cases"] >= expected and dataset["n_cases"] > 0
    return {"status": "complete" if complete else "incomplete", "n_cases": dataset["n_cases"],
            "expected_case_count": expected, "n_failed": dataset["n_failed"],
            **{m: _interval(dataset[m], replicates[m]) for m in RANKED_METRICS},
            "organs": {o: {m: dataset["organs"].get(o, {}).get(m) for m in RANKED_METRICS} for o in organs},
            "cases": [{"case_id": c["case_id"], "status": c["status"],
                       **{m: case_mean(c, m) for m in RANKED_METRICS}} for c in dataset["cases"]]}


def _group_entry(sets: dict[str, dict], replicates: dict[str, dict[str, np.ndarray | None]], keys: list[str]) -> dict:
    """CT/MR/All: the mean of the test-set scores, defined only if every test set it needs is complete."""
    unavailable = [k for k in keys if sets[k]["status"] != "complete"]
    entry: dict = {"test_sets": keys, "missing": unavailable}
    for metric in RANKED_METRICS:
        scores = [sets[k][metric]["score"] for k in keys]
        if unavailable or not keys or any(s is None for s in scores):
            entry[metric] = {"score": None, "ci_low": None, "ci_high": None}
            continue
        reps = [replicates[k][metric] for k in keys]
        samples = None if any(r is None for r in reps) else bootstrap.group_replicates(reps)
        entry[metric] = _interval(float(np.mean(scores)), samples)
    return entry


def competition_ranks(values: dict[str, float | None], *, higher_is_better: bool) -> dict[str, int | None]:
    """Standard competition ranking ("1224"): ties share the best rank; None stays unranked."""
    defined = {k: round(v, 10) for k, v in values.items() if v is not None}
    ranks: dict[str, int | None] = {k: None for k in values}
    for key, value in defined.items():
        better = sum(1 for other in defined.values() if (other > value if higher_is_better else other < value))
        ranks[key] = better + 1
    return ranks


def _place(value: float | None, among: list[float]) -> int | None:
    """Where a score would stand among the ranked submissions' scores, without displacing any of them."""
    if value is None:
        return None
    return 1 + sum(1 for other in among if round(other, 10) > round(value, 10))


def is_ranked(entry: dict) -> bool:
    """Ranked = every test set complete: only then is the All mean, and every ranking, defined."""
    return all(s["status"] == "complete" for s in entry["test_sets"].values()) and bool(entry["test_sets"])


def metric_ranks(entries: list[dict], *, metric: str, keys: list[str]) -> dict[str, dict]:
    """Per submission: rank by All mean, rank-then-aggregate, mean rank, and per-test-set ranks of `metric`.

    Only ranked submissions enter the per-test-set ranks (an unranked CT-only entry must not reorder
    two complete ones); an unranked submission's per-test-set rank is the place it would take among
    the ranked ones, shown for information and counted nowhere.
    """
    ranked = [e for e in entries if is_ranked(e)]
    by_mean = competition_ranks({e["name"]: e["groups"]["all"][metric]["score"] for e in ranked},
                                higher_is_better=True)
    per_set: dict[str, dict[str, int | None]] = {}
    for key in keys:
        scores = {e["name"]: e["test_sets"][key][metric]["score"] for e in ranked}
        per_set[key] = competition_ranks(scores, higher_is_better=True)
        among = [v for v in scores.values() if v is not None]
        for e in entries:
            if e["name"] not in per_set[key]:
                cell = e["test_sets"][key]
                per_set[key][e["name"]] = _place(cell[metric]["score"], among) if cell["status"] != "missing" else None
    mean_rank = {e["name"]: float(np.mean([per_set[k][e["name"]] for k in keys])) for e in ranked if keys}
    by_rank = competition_ranks(mean_rank, higher_is_better=False)
    return {e["name"]: {"mean_score": by_mean.get(e["name"]), "rank_then_aggregate": by_rank.get(e["name"]),
                        "mean_rank": mean_rank.get(e["name"]),
                        "per_test_set": {k: per_set[k][e["name"]] for k in keys}} for e in entries}


def unranked_reason(entry: dict) -> str | None:
    """Why a submission has no rank, in one line for the ranking table (None when it is ranked)."""
    if is_ranked(entry):
        return None
    missing = [k for k, s in entry["test_sets"].items() if s["status"] == "missing"]
    partial = [f"{k} ({s['n_cases']}/{s['expected_case_count']} cases)" for k, s in entry["test_sets"].items()
               if s["status"] == "incomplete"]
    parts = (([f"missing {', '.join(missing)}"] if missing else [])
             + ([f"partial {', '.join(partial)}"] if partial else []))
    return "unranked: " + "; ".join(parts)


def runtime_summary(document: dict) -> dict:
    """Time and memory a submission took, from its case records' runtime (FLARE set runs counted once)."""
    walls, peaks, seen_sets = [], [], set()
    for key, dataset in document["datasets"].items():
        for case in dataset["cases"]:
            runtime = case.get("runtime") or {}
            if runtime.get("scope") == "test set run":
                if key in seen_sets:
                    continue
                seen_sets.add(key)
            if isinstance(runtime.get("wall_s"), (int, float)):
                walls.append(float(runtime["wall_s"]))
            if isinstance(runtime.get("peak_memory_bytes"), int):
                peaks.append(runtime["peak_memory_bytes"])
    return {"wall_s_total": round(sum(walls), 3) if walls else None, "n_timed": len(walls),
            "peak_memory_bytes": max(peaks) if peaks else None}


def _paired_replicates(submissions: Sequence[Submission], key: str, *, organs: list[str], resamples: int,
                       seed: int) -> tuple[dict[str, dict[str, np.ndarray | None]], dict[str, ranking.TestSetData]]:
    """Every submission's dataset scores on one shared draw of this test set's cases, per metric.

    The draw is fixed by the seed and the test set only (paired bootstrap), so a submission's
    interval does not depend on its name, on the other submissions, or on the order of the files.
    """
    cases = [sub.document["datasets"].get(key, {}).get("cases") for sub in submissions]
    data = {m: ranking.paired_test_set(key, cases, organs=organs, metric=m) for m in RANKED_METRICS}
    out: dict[str, dict[str, np.ndarray | None]] = {sub.label: {m: None for m in RANKED_METRICS} for sub in submissions}
    n_cases = len(data[RANKED_METRICS[0]].case_ids)
    if resamples and n_cases:
        counts = ranking.counts_from_indices(ranking.draw_indices(n_cases, resamples=resamples, seed=seed, key=key),
                                             n_cases)
        for metric in RANKED_METRICS:
            reps = ranking.dataset_replicates(data[metric], counts)
            for s, sub in enumerate(submissions):
                if cases[s]:
                    out[sub.label][metric] = reps[s]
    return out, data


def check_resamples(resamples: int) -> None:
    """0 (no intervals) or at least bootstrap.MIN_RESAMPLES: an interval from a few draws is not an interval."""
    if resamples < 0 or 0 < resamples < bootstrap.MIN_RESAMPLES:
        raise LeaderboardError(f"--bootstrap {resamples}: use 0 for no intervals, or at least "
                               f"{bootstrap.MIN_RESAMPLES} resamples (the ends of a 95% interval are the 2.5th and "
                               "97.5th percentiles: fewer draws put them on a handful of samples)")


def build_leaderboard(submissions: Sequence[Submission], *, metric: str = RANKED_METRICS[0], resamples: int = 1000,
                      seed: int = 0, ranking_scheme: str = "mean") -> dict:
    """The leaderboard document (leaderboard.schema.json), submissions sorted by the official rank."""
    if metric not in RANKED_METRICS:
        raise LeaderboardError(f"cannot rank by {metric!r}: choose {' or '.join(RANKED_METRICS)}")
    if ranking_scheme not in ranking.SCHEMES:
        raise LeaderboardError(f"unknown ranking {ranking_scheme!r}: choose {', '.join(ranking.SCHEMES)}")
    check_resamples(resamples)
    check_compatible(submissions)
    columns = test_sets(submissions)
    keys = [t["key"] for t in columns]
    groups = {"ct": [t["key"] for t in columns if t["modality"] == "CT"],
              "mr": [t["key"] for t in columns if t["modality"] == "MR"], "all": keys}
    organs = _organs(submissions)
    replicates: dict[str, dict[str, dict]] = {sub.label: {} for sub in submissions}
    paired: dict[str, ranking.TestSetData] = {}
    for column in columns:
        reps, data = _paired_replicates(submissions, column["key"], organs=organs, resamples=resamples, seed=seed)
        paired[column["key"]] = data[metric]
        column["fingerprint"] = next((sub.document["datasets"][column["key"]].get("fingerprint") for sub in submissions
                                      if sub.document["datasets"].get(column["key"], {}).get("fingerprint")), None)
        for label, per_metric in reps.items():
            replicates[label][column["key"]] = per_metric
    entries = []
    for sub in submissions:
        sets = {c["key"]: _test_set_entry(sub.document["datasets"].get(c["key"]), expected=c["expected_case_count"],
                                          organs=organs, replicates=replicates[sub.label][c["key"]]) for c in columns}
        submission = sub.document.get("submission") or {}
        entries.append({"name": sub.label, "source": str(sub.source), "image": submission.get("image"),
                        "image_id": submission.get("image_id"), "created": sub.document["created"],
                        "harness_version": sub.document["harness_version"], "test_sets": sets,
                        "groups": {g: _group_entry(sets, replicates[sub.label], groups[g]) for g in GROUPS},
                        "runtime": runtime_summary(sub.document), "notes": _notes(sets)})
    by_metric = {m: metric_ranks(entries, metric=m, keys=keys) for m in RANKED_METRICS}
    ranked_names = sorted(e["name"] for e in entries if is_ranked(e))
    index = {sub.label: i for i, sub in enumerate(submissions)}
    inputs = ranking.RankingInputs(
        names=ranked_names,
        sets=[ranking.TestSetData(key=k, case_ids=paired[k].case_ids,
                                  matrices=paired[k].matrices[[index[n] for n in ranked_names]]) for k in keys])
    section = ranking.rank(inputs, official=ranking_scheme, resamples=resamples, seed=seed)
    for e in entries:
        name = e["name"]
        intervals = (section["bootstrap"] or {}).get("rank_interval", {})
        e["ranks"] = {**by_metric[metric][name],
                      "test_based": section["schemes"]["test-based"].get(name),
                      "official": section["schemes"][ranking_scheme].get(name),
                      "rank_interval": intervals.get(name), "unranked_reason": unranked_reason(e)}
        e["ranks_by_metric"] = {m: {k: v for k, v in by_metric[m][name].items() if k != "per_test_set"}
                                for m in RANKED_METRICS}
    entries.sort(key=lambda e: (e["ranks"]["official"] is None, e["ranks"]["official"] or 0,
                                e["ranks"]["mean_score"] or 0, e["name"]))
    first = submissions[0].document
    return {"schema_version": 1, "harness_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "benchmark": first["benchmark"], "empty_policy": first["settings"]["empty_policy"],
            "ranking_metric": metric,
            "bootstrap": {"resamples": resamples, "seed": seed, "confidence": CONFIDENCE,
                          "method": "percentile; paired: per test set one draw of its cases with replacement, the "
                                    "same for every submission, fixed by the seed and the test set; CT/MR/All "
                                    "combine the per-test-set draws"},
            "ranking": section, "test_sets": columns, "groups": groups, "organs": organs, "submissions": entries}


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
