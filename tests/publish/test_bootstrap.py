import math

import numpy as np
import pytest

from harness.manifest import load_benchmark
from harness.publish import bootstrap
from harness.results import failed_record, ok_record, summarize_dataset

ORGANS = ["liver", "spleen", "pancreas"]


def _case(case_id, liver, spleen, pancreas):
    return ok_record(case_id, {"liver": {"dice": liver, "nsd": liver}, "spleen": {"dice": spleen, "nsd": spleen},
                               "pancreas": {"dice": pancreas, "nsd": pancreas}})


CASES = [_case("img0001", 0.9, 0.8, 0.5), _case("img0002", 0.7, math.nan, 0.4),
         failed_record("img0003", kind="crash", message="x", organs=ORGANS, metrics=["dice", "nsd"]),
         _case("img0004", math.nan, math.nan, math.nan)]


def test_dataset_score_is_the_results_module_score_with_nulls_left_out():
    manifest = load_benchmark("synthetic", keys=["btcv"])[0]
    expected = summarize_dataset(manifest, CASES, organs=ORGANS, metrics=["dice", "nsd"])["dice"]
    matrix = bootstrap.case_matrix(CASES, organs=ORGANS, metric="dice")
    assert matrix.shape == (4, 3)
    assert np.isnan(matrix[1, 1]) and matrix[2, 0] == 0.0
    # by hand: liver (0.9+0.7+0)/3, spleen (0.8+0)/2, pancreas (0.5+0.4+0)/3
    assert bootstrap.dataset_score(matrix) == pytest.approx(((1.6 / 3) + 0.4 + 0.3) / 3)
    assert bootstrap.dataset_score(matrix) == pytest.approx(expected)


def test_vectorized_resamples_equal_a_plain_loop_over_drawn_cases():
    rng = np.random.default_rng(5)
    matrix = rng.uniform(size=(9, 4))
    matrix[2, 1] = np.nan
    samples = bootstrap.replicates(matrix, resamples=50, rng=np.random.default_rng(11))
    draws = np.random.default_rng(11).integers(0, 9, size=(50, 9))
    for sample, drawn in zip(samples, draws):
        organ_means = [np.nanmean(matrix[drawn, j]) if not np.isnan(matrix[drawn, j]).all() else np.nan
                       for j in range(4)]
        assert sample == pytest.approx(np.nanmean(organ_means))


def test_resamples_are_deterministic_and_the_interval_holds_the_score():
    matrix = np.random.default_rng(0).uniform(0.6, 1.0, size=(30, 10))
    first = bootstrap.replicates(matrix, resamples=1000, rng=bootstrap.seeded_rng(0, "team", "btcv"))
    again = bootstrap.replicates(matrix, resamples=1000, rng=bootstrap.seeded_rng(0, "team", "btcv"))
    other = bootstrap.replicates(matrix, resamples=1000, rng=bootstrap.seeded_rng(1, "team", "btcv"))
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    low, high = bootstrap.percentile_interval(first)
    assert low < bootstrap.dataset_score(matrix) < high
    assert 0 < high - low < 0.1


def test_chunks_do_not_change_the_result(monkeypatch):
    matrix = np.random.default_rng(1).uniform(size=(12, 3))
    whole = bootstrap.replicates(matrix, resamples=300, rng=np.random.default_rng(4))
    monkeypatch.setattr(bootstrap, "_CHUNK", 300)
    assert np.array_equal(whole, bootstrap.replicates(matrix, resamples=300, rng=np.random.default_rng(4)))


def test_constant_scores_give_a_zero_width_interval_and_empty_sets_none():
    assert bootstrap.percentile_interval(bootstrap.replicates(np.ones((5, 2)), resamples=100,
                                                              rng=np.random.default_rng(0))) == (1.0, 1.0)
    assert bootstrap.percentile_interval(bootstrap.replicates(np.ones((0, 2)), resamples=100,
                                                              rng=np.random.default_rng(0))) == (None, None)
    assert bootstrap.dataset_score(np.full((3, 2), np.nan)) is None


def test_group_replicates_average_independent_test_set_resamples():
    a, b = np.array([0.8, 0.9, 1.0]), np.array([0.2, 0.4, 0.6])
    assert np.allclose(bootstrap.group_replicates([a, b]), [0.5, 0.65, 0.8])
