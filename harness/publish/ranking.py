"""Rankings and their uncertainty, as challengeR computes them (Wiesenfarth et al., Sci Rep 2021).

A leaderboard's order is itself an estimate: with 20-89 cases per test set, two submissions a point
apart may swap places on another draw of cases. This module gives the order under three schemes and
how stable it is:
- `mean`: the All mean (mean of the test-set scores, BENCHMARK.md section 4), higher is better;
- `rank-then-aggregate`: rank on every test set, then the mean of those ranks, lower is better;
- `test-based`: one-sided Wilcoxon signed-rank tests on paired case scores (each case's mean over
  organs, paired by test set and case id, all test sets pooled) for every ordered pair of
  submissions, Holm-adjusted over all pairs; a submission's score is the number of submissions it
  beats significantly, ranked from most wins down.
Ranks are standard competition ranks ("1224"). The bootstrap is paired: per test set, one draw of
cases (with replacement) is applied to every submission, and the generator is fixed by the seed and
the test set only, so renaming, adding or reordering submissions never changes another's draws.
Every scheme is recomputed on each resample: the rank distribution, its 95% interval and Kendall's
tau between each resample's ranking and the published one say how much of the order is luck.

Only ranked submissions (every test set complete) enter here; the leaderboard decides who that is.
"""

from __future__ import annotations

import warnings
import zlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.stats import kendalltau, wilcoxon

from harness.publish import bootstrap

SCHEMES = ("mean", "rank-then-aggregate", "test-based")
ALPHA = 0.05
TEST_METHOD = ("one-sided Wilcoxon signed-rank test on paired case scores (each case's mean over organs; all test "
               "sets pooled) for every ordered pair, Holm-adjusted over all pairs")


@dataclass(frozen=True)
class TestSetData:
    """One test set's paired data: the union of case ids, and per submission a (cases, organs) matrix."""

    key: str
    case_ids: list[str]
    matrices: np.ndarray  # (submissions, cases, organs); NaN where undefined or not scored

    def case_means(self) -> np.ndarray:
        """(submissions, cases): each case's mean over its defined organs (NaN if none)."""
        defined = ~np.isnan(self.matrices)
        totals = np.where(defined, self.matrices, 0.0).sum(axis=2)
        counts = defined.sum(axis=2)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, totals / np.maximum(counts, 1), np.nan)


def paired_test_set(key: str, cases_by_submission: Sequence[Sequence[dict] | None], *, organs: Sequence[str],
                    metric: str) -> TestSetData:
    """Align every submission's case records of one test set on the sorted union of their case ids."""
    case_ids = sorted({c["case_id"] for cases in cases_by_submission if cases for c in cases})
    index = {cid: i for i, cid in enumerate(case_ids)}
    matrices = np.full((len(cases_by_submission), len(case_ids), len(organs)), np.nan)
    for s, cases in enumerate(cases_by_submission):
        if not cases:
            continue
        rows = bootstrap.case_matrix(cases, organs=organs, metric=metric)
        matrices[s, [index[c["case_id"]] for c in cases]] = rows
    return TestSetData(key=key, case_ids=case_ids, matrices=matrices)


def draw_indices(n_cases: int, *, resamples: int, seed: int, key: str) -> np.ndarray:
    """(resamples, n_cases) case indices drawn with replacement; fixed by the seed and the test set only."""
    rng = np.random.default_rng([seed, zlib.crc32(key.encode("utf-8"))])
    return rng.integers(0, n_cases, size=(resamples, n_cases)) if n_cases else np.zeros((resamples, 0), int)


def counts_from_indices(indices: np.ndarray, n_cases: int) -> np.ndarray:
    """How often each case was drawn, per resample: (resamples, n_cases) floats."""
    resamples = indices.shape[0]
    offsets = (np.arange(resamples) * n_cases)[:, None]
    flat = np.bincount((indices + offsets).ravel(), minlength=resamples * n_cases)
    return flat.reshape(resamples, n_cases).astype(float)


def dataset_replicates(data: TestSetData, counts: np.ndarray) -> np.ndarray:
    """(submissions, resamples) dataset scores on the shared resamples (NaN where undefined)."""
    return np.stack([bootstrap.scores_from_counts(counts, data.matrices[s]) for s in range(data.matrices.shape[0])])


# -- ranks -----------------------------------------------------------------------------------------

def competition_rank_columns(values: np.ndarray, *, higher_is_better: bool) -> np.ndarray:
    """Competition ranks of each column of a (submissions, replicates) array; NaN ranks last."""
    v = np.where(np.isnan(values), -np.inf if higher_is_better else np.inf, values)
    v = np.round(v, 10)
    if higher_is_better:
        better = (v[None, :, :] > v[:, None, :]).sum(axis=1)
    else:
        better = (v[None, :, :] < v[:, None, :]).sum(axis=1)
    return better + 1


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values along the last axis (NaN stays NaN and counts as untested)."""
    p = np.asarray(pvalues, dtype=float)
    filled = np.where(np.isnan(p), np.inf, p)
    order = np.argsort(filled, axis=-1, kind="stable")
    ranked = np.take_along_axis(filled, order, axis=-1)
    m = (~np.isnan(p)).sum(axis=-1, keepdims=True)
    factors = m - np.arange(p.shape[-1])
    with np.errstate(invalid="ignore"):  # untested pairs sort last as inf; inf x 0 is NaN, set back to inf
        scaled = np.where(np.isinf(ranked), np.inf, ranked * factors)
    adjusted = np.minimum(np.maximum.accumulate(scaled, axis=-1), 1.0)
    out = np.empty_like(adjusted)
    np.put_along_axis(out, order, adjusted, axis=-1)
    return np.where(np.isnan(p), np.nan, out)


def one_sided_pvalues(case_scores: np.ndarray) -> np.ndarray:
    """p[..., i, j]: Wilcoxon signed-rank test that submission i scores higher than j on paired cases.

    `case_scores` is (submissions, ..., cases); leading batch axes (bootstrap replicates) are kept.
    Pairs whose differences are all zero have no test (NaN), which never counts as a win.
    """
    n = case_scores.shape[0]
    batch = case_scores.shape[1:-1]
    p = np.full((*batch, n, n), np.nan)
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            diff = case_scores[i] - case_scores[j]
            if diff.shape[-1] == 0:
                continue
            with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-zero differences: NaN, handled above
                p[..., i, j] = wilcoxon(diff, alternative="greater", axis=-1).pvalue
    return p


def significance(case_scores: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values over all ordered pairs, (..., submissions, submissions)."""
    p = one_sided_pvalues(case_scores)
    n = p.shape[-1]
    flat = p.reshape(*p.shape[:-2], n * n)
    return holm(flat).reshape(p.shape)


def wins(adjusted: np.ndarray, *, alpha: float = ALPHA) -> np.ndarray:
    """Number of submissions each one beats significantly: (..., submissions)."""
    return (np.nan_to_num(adjusted, nan=1.0) < alpha).sum(axis=-1)


def scheme_ranks(set_scores: np.ndarray, case_scores: np.ndarray | None, scheme: str) -> np.ndarray:
    """Ranks (submissions, replicates) under `scheme` from per-set scores (sets, submissions, replicates)
    and pooled paired case scores (submissions, replicates, cases)."""
    if scheme == "mean":
        return competition_rank_columns(set_scores.mean(axis=0), higher_is_better=True)
    if scheme == "rank-then-aggregate":
        per_set = np.stack([competition_rank_columns(s, higher_is_better=True) for s in set_scores])
        return competition_rank_columns(per_set.mean(axis=0), higher_is_better=False)
    if scheme == "test-based":
        beaten = wins(significance(case_scores))  # (replicates, submissions)
        return competition_rank_columns(np.moveaxis(beaten, -1, 0).astype(float), higher_is_better=True)
    raise ValueError(f"unknown ranking scheme {scheme!r}")


@dataclass(frozen=True)
class RankingInputs:
    """Everything the rankings need about the ranked submissions of one leaderboard."""

    names: list[str]
    sets: list[TestSetData]  # one per test set, submissions in `names` order

    def set_scores(self) -> np.ndarray:
        """(sets, submissions, 1): the published dataset scores."""
        return np.stack([dataset_replicates(d, np.ones((1, len(d.case_ids)))) for d in self.sets])

    def pooled_case_scores(self) -> tuple[np.ndarray, int]:
        """(submissions, cases) case means over all test sets, and how many cases were dropped because
        some ranked submission has no defined score for them (nnU-Net policy: all organs undefined)."""
        pooled = np.concatenate([d.case_means() for d in self.sets], axis=1) if self.sets else np.zeros((0, 0))
        keep = ~np.isnan(pooled).any(axis=0)
        return pooled[:, keep], int((~keep).sum())


def rank(inputs: RankingInputs, *, official: str, resamples: int, seed: int, alpha: float = ALPHA) -> dict:
    """The `ranking` section of the leaderboard document (see leaderboard.schema.json)."""
    names = inputs.names
    n = len(names)
    if n == 0 or not inputs.sets:
        return {"official": official, "alpha": alpha, "submissions": names, "schemes": {s: {} for s in SCHEMES},
                "agreement": {s: None for s in SCHEMES}, "bootstrap": None,
                "tests": {"method": TEST_METHOD, "n_cases": 0, "n_cases_dropped": 0, "wins": {}, "p_adjusted": []}}
    set_scores = inputs.set_scores()
    pooled, dropped = inputs.pooled_case_scores()
    schemes = {}
    adjusted = significance(pooled[:, None, :])[0] if n else np.zeros((0, 0))
    for scheme in SCHEMES:
        ranks = scheme_ranks(set_scores, pooled[:, None, :], scheme)[:, 0] if n else np.zeros(0, int)
        schemes[scheme] = {name: int(r) for name, r in zip(names, ranks)}
    published = np.array([schemes[official][name] for name in names])
    section = {
        "official": official, "alpha": alpha, "submissions": names,
        "schemes": schemes,
        "agreement": {s: _tau(published, np.array([schemes[s][nm] for nm in names])) for s in SCHEMES},
        "tests": {"method": TEST_METHOD,
                  "n_cases": int(pooled.shape[1]), "n_cases_dropped": dropped,
                  "wins": {name: int(w) for name, w in zip(names, wins(adjusted, alpha=alpha))},
                  "p_adjusted": [[None if np.isnan(v) else float(v) for v in row] for row in adjusted]},
        "bootstrap": None,
    }
    if resamples and n:
        section["bootstrap"] = _bootstrap(inputs, official=official, published=published, resamples=resamples,
                                          seed=seed, none_dropped=dropped == 0)
    return section


def _bootstrap(inputs: RankingInputs, *, official: str, published: np.ndarray, resamples: int, seed: int,
               none_dropped: bool) -> dict:
    names = inputs.names
    set_reps, case_parts = [], []
    for data in inputs.sets:
        indices = draw_indices(len(data.case_ids), resamples=resamples, seed=seed, key=data.key)
        set_reps.append(dataset_replicates(data, counts_from_indices(indices, len(data.case_ids))))
        if official == "test-based":
            case_parts.append(np.take(data.case_means(), indices, axis=1))  # (submissions, resamples, cases)
    case_scores = None
    if official == "test-based":
        case_scores = np.concatenate(case_parts, axis=2)
        if not none_dropped:
            # a case some submission has no defined score for is dropped, as in the point test: equal
            # scores give zero differences, which the signed-rank test ("wilcox" zero method) leaves out
            case_scores = np.where(np.isnan(case_scores).any(axis=0, keepdims=True), 0.0, case_scores)
    ranks = scheme_ranks(np.stack(set_reps), case_scores, official)  # (submissions, resamples)
    n = len(names)
    taus = np.array([_tau(published, ranks[:, b]) for b in range(resamples)], dtype=float)
    defined = taus[~np.isnan(taus)]
    return {
        "resamples": resamples, "seed": seed, "scheme": official,
        "rank_counts": {name: np.bincount(ranks[s], minlength=n + 1)[1:].tolist() for s, name in enumerate(names)},
        "rank_interval": {name: [int(np.percentile(ranks[s], 2.5, method="lower")),
                                 int(np.percentile(ranks[s], 97.5, method="higher"))] for s, name in enumerate(names)},
        "median_rank": {name: float(np.median(ranks[s])) for s, name in enumerate(names)},
        "kendall_tau": {"median": float(np.median(defined)) if defined.size else None,
                        "q025": float(np.percentile(defined, 2.5)) if defined.size else None,
                        "q975": float(np.percentile(defined, 97.5)) if defined.size else None},
    }


def _tau(a: np.ndarray, b: np.ndarray) -> float | None:
    """Kendall's tau-b between two rankings; 1.0 for identical ones, None when undefined (constant)."""
    if len(a) < 2:
        return None
    if np.array_equal(a, b):
        return 1.0
    value = kendalltau(a, b).statistic
    return None if np.isnan(value) else float(value)
