"""Results documents of several submissions of different quality, built in-process (no Docker).

They go through the real `ResultsStore`, so they are exactly what `harness run` writes: validated
case records, the synthetic benchmark's manifests, aggregates by `harness.results`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.manifest import load_benchmark
from harness.results import ResultsStore, failed_record, ok_record
from harness.taxonomy import load_taxonomy

METRICS = ["dice", "nsd", "hd95", "assd"]


def organ_scores(rng: np.random.Generator, *, quality: float, spread: float = 0.06, nsd_shift: float = 0.02) -> dict:
    scores = {}
    for organ in load_taxonomy().organ_names:
        dice = float(np.clip(rng.normal(quality, spread), 0, 1))
        nsd = float(np.clip(dice + rng.normal(nsd_shift, 0.03), 0, 1))
        scores[organ] = {"dice": dice, "nsd": nsd, "hd95": 3.0, "assd": 1.0, "gt_voxels": 100, "pred_voxels": 90}
    return scores


def make_results(path: Path, *, name: str, quality: dict[str, float], seed: int, failed: tuple[str, ...] = (),
                 skip: tuple[str, ...] = (), only_cases: int | None = None, empty_policy: str = "aeval",
                 benchmark: str = "synthetic", manifests_dir: str = "synthetic", nsd_shift: float = 0.02,
                 submission: dict | None = None, runtime: dict | None = None) -> Path:
    """A results.json of submission `name`: per test set a mean quality, failed cases, missing test sets."""
    organs = list(load_taxonomy().organ_names)
    manifests = load_benchmark(manifests_dir)
    if submission is None:
        submission = {"name": name, "image": f"{name}:latest", "image_id": f"sha256:{seed:064x}"}
    store = ResultsStore.open(path, benchmark=benchmark, settings={"empty_policy": empty_policy, "metrics": METRICS},
                              organs=organs, manifests=manifests, submission=submission)
    rng = np.random.default_rng(seed)
    for manifest in manifests:
        if manifest.key in skip:
            continue
        for case in manifest.cases[:only_cases]:
            if case.case_id in failed:
                record = failed_record(case.case_id, kind="crash", message="exit code 1", organs=organs,
                                       metrics=METRICS)
            else:
                record = ok_record(case.case_id, organ_scores(rng, quality=quality.get(manifest.modality, 0.8),
                                                              nsd_shift=nsd_shift), runtime=runtime)
            store.add(manifest.key, record, write=False)
    store.write()
    return path


@pytest.fixture(scope="session")
def results_files(tmp_path_factory) -> dict[str, Path]:
    """Four submissions: strong, medium with a failed case, weak on MR, and one that skipped MR."""
    root = tmp_path_factory.mktemp("results")
    return {
        "strong": make_results(root / "strong" / "results.json", name="strong-net", seed=1,
                               quality={"CT": 0.92, "MR": 0.85}),
        "medium": make_results(root / "medium" / "results.json", name="medium-net", seed=2,
                               quality={"CT": 0.84, "MR": 0.78}, failed=("img0002",)),
        "ct_only_model": make_results(root / "ctmodel" / "results.json", name="ct-model", seed=3,
                                      quality={"CT": 0.90, "MR": 0.35}),
        "no_mr": make_results(root / "nomr" / "results.json", name="no-mr-run", seed=4,
                              quality={"CT": 0.88}, skip=("amos_mr", "totalseg_mr")),
    }


def publish_parser():
    """A top-level parser with only the publishing subcommands, as `harness` registers them."""
    import argparse

    from harness.cli.publish import register

    parser = argparse.ArgumentParser(prog="harness")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def run_cli(*argv: str) -> int:
    args = publish_parser().parse_args(list(argv))
    return args.func(args)


@pytest.fixture(scope="session")
def leaderboard_out(results_files, tmp_path_factory) -> Path:
    """`harness leaderboard` run once on the four submissions (the HTML report takes a few seconds)."""
    out = tmp_path_factory.mktemp("leaderboard")
    files = [str(results_files[k]) for k in ("no_mr", "medium", "strong", "ct_only_model")]
    assert run_cli("leaderboard", *files, "--out", str(out), "--bootstrap", "1000", "--seed", "0", "-q") == 0
    return out
