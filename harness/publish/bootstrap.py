"""Bootstrap confidence intervals of a test set's score, resampling its cases.

Why: a test set of 20-89 cases makes a gap of a point or two between submissions easy to over-read.
A percentile interval over cases shows how much of a gap is the luck of which cases were drawn.
The statistic resampled is the benchmark's own dataset score (BENCHMARK.md section 4: organ means
over the cases, then the mean of the organ means), so the interval belongs to exactly the number
printed in the table. Group scores (CT, MR, All) are means of dataset scores; their intervals
combine independent per-test-set resamples (a stratified bootstrap: each test set keeps its size).

All of it is vectorized: a resample is a row of case counts, and organ sums over a resample are one
matrix product, so 1000 resamples of an 89-case test set cost a few milliseconds. Undefined values
(nnU-Net's empty-organ convention, stored as null) are left out of the organ means exactly as
`harness.results` leaves them out.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np

#: Resamples drawn per chunk: bounds memory at chunk x cases counts whatever --bootstrap is.
_CHUNK = 2000
#: Fewer resamples than this put the ends of a 95% interval on a handful of draws: refused, not warned about.
MIN_RESAMPLES = 1000


@dataclass(frozen=True)
class Interval:
    """A point estimate and its percentile bootstrap interval (None where undefined)."""

    score: float | None
    low: float | None
    high: float | None

    def to_document(self) -> dict:
        return {"score": self.score, "ci_low": self.low, "ci_high": self.high}


def case_matrix(cases: Sequence[dict], *, organs: Sequence[str], metric: str) -> np.ndarray:
    """Scores of `metric` as a (cases, organs) float array; null and absent values become NaN."""
    matrix = np.full((len(cases), len(organs)), np.nan)
    for i, case in enumerate(cases):
        per_organ = case["metrics"]
        for j, organ in enumerate(organs):
            value = per_organ.get(organ, {}).get(metric)
            if value is not None:
                matrix[i, j] = value
    return matrix


def dataset_score(matrix: np.ndarray) -> float | None:
    """Mean of the organ means over cases, skipping undefined values; None if nothing is defined."""
    replicate = scores_from_counts(np.ones((1, matrix.shape[0])), matrix)[0]
    return None if np.isnan(replicate) else float(replicate)


def replicates(matrix: np.ndarray, *, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """`resamples` dataset scores, each over cases drawn with replacement (NaN where undefined).

    Each resample is stored as counts per case (how often a case was drawn), which turns the
    organ sums over a resample into one matrix product instead of a (resamples, cases, organs) gather.
    """
    n_cases = matrix.shape[0]
    if n_cases == 0 or resamples <= 0:
        return np.full(max(resamples, 0), np.nan)
    out = np.empty(resamples)
    for start in range(0, resamples, _CHUNK):
        size = min(_CHUNK, resamples - start)
        drawn = rng.integers(0, n_cases, size=(size, n_cases))
        offsets = (np.arange(size) * n_cases)[:, None]
        counts = np.bincount((drawn + offsets).ravel(), minlength=size * n_cases).reshape(size, n_cases)
        out[start:start + size] = scores_from_counts(counts.astype(float), matrix)
    return out


def scores_from_counts(counts: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Dataset scores for rows of case weights: per organ, weighted mean over defined values."""
    defined = ~np.isnan(matrix)
    sums = counts @ np.where(defined, matrix, 0.0)
    weights = counts @ defined.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        organ_means = sums / weights  # NaN where an organ has no defined value in the resample
    n_defined = (~np.isnan(organ_means)).sum(axis=1)
    totals = np.nansum(organ_means, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_defined > 0, totals / np.maximum(n_defined, 1), np.nan)


def percentile_interval(samples: np.ndarray, *, confidence: float = 0.95) -> tuple[float | None, float | None]:
    """The central `confidence` percentile interval of the defined samples, or (None, None)."""
    defined = samples[~np.isnan(samples)]
    if defined.size == 0:
        return None, None
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(defined, [tail, 100 - tail])
    return float(low), float(high)


def group_replicates(per_set: Sequence[np.ndarray]) -> np.ndarray:
    """Replicates of a mean of dataset scores (CT, MR, All) from independent per-set replicates."""
    if not per_set:
        return np.array([])
    return np.mean(np.vstack(per_set), axis=0)


def seeded_rng(seed: int, *names: str) -> np.random.Generator:
    """A generator fixed by the seed and the names (submission, test set), not by loop order.

    Adding or removing a submission, or listing files in another order, leaves every other
    submission's intervals unchanged.
    """
    return np.random.default_rng([seed, *(zlib.crc32(name.encode("utf-8")) for name in names)])
