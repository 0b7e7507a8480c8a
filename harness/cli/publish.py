"""The publishing subcommands of `harness`: `leaderboard` and `gc-evaluate`. Parsing only.

`register(subparsers)` adds both to the top-level parser; `run_leaderboard(args)` and
`run_gc_evaluate(args)` call the library and return the exit code (0 done; problems that stop the
whole command raise `HarnessError`, which the top-level `main` prints and turns into exit code 2).
Nothing heavy is imported at module level: `harness --help` and the evaluation container's start
stay fast, and the evaluation image needs no plotting library.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.argtypes import non_negative_int, positive_int

DEFAULT_OUTPUT_RELATIVE_PATH = "images/abdominal-organ-segmentation"


def _relative_path(text: str) -> str:
    parts = [p for p in text.strip("/").split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not a relative path inside the job's output")
    return "/".join(parts)


def _resamples(text: str) -> int:
    """--bootstrap: 0 (no intervals) or at least the minimum; an interval from a few draws is refused."""
    from harness.publish.bootstrap import MIN_RESAMPLES

    value = non_negative_int(text)
    if 0 < value < MIN_RESAMPLES:
        raise argparse.ArgumentTypeError(f"{value} resamples give no trustworthy 95% interval: use 0 for none, or "
                                         f"at least {MIN_RESAMPLES}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `leaderboard` and `gc-evaluate` to the `harness` subcommands."""
    board = subparsers.add_parser(
        "leaderboard", help="merge several results.json into one leaderboard (JSON, CSV, Markdown, HTML)",
        description="Merge results.json files of one benchmark into a leaderboard: the paper's tables (Dice, NSD, "
                    "CT/MR/All means), three rankings (one official, two as robustness checks), a paired bootstrap "
                    "of scores and ranks (95% intervals, rank distributions, Kendall's tau), pairwise significance "
                    "tests, and a static HTML report. Refuses to rank results of different case lists.")
    board.add_argument("results", nargs="+", metavar="RESULTS.json",
                       help="results.json of each submission (or a Grand-Challenge metrics.json, with "
                            "--gc-ground-truth); LABEL=path shows it under LABEL")
    board.add_argument("--gc-ground-truth", type=Path, default=None, metavar="DIR",
                       help="the phase's extracted ground-truth folder, to read Grand-Challenge metrics.json files "
                            "of `harness gc-evaluate` given among the results (their cases are opaque references)")
    board.add_argument("--out", required=True, type=Path,
                       help="output folder (created): leaderboard.{json,md,html} and CSVs")
    board.add_argument("--metric", choices=["dice", "nsd"], default="dice",
                       help="metric the rankings use (default dice)")
    board.add_argument("--ranking", choices=["mean", "rank-then-aggregate", "test-based"], default="mean",
                       help="the official ranking, stated on the page (the others are shown as robustness checks): "
                            "mean = All mean; rank-then-aggregate = mean of per-test-set ranks; test-based = number "
                            "of submissions beaten in Holm-adjusted one-sided Wilcoxon tests (default mean)")
    board.add_argument("--bootstrap", type=_resamples, default=1000, metavar="N",
                       help="paired bootstrap resamples for the 95%% score and rank intervals: 0 for none, else at "
                            "least 1000 (fewer are refused) (default 1000)")
    board.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    board.add_argument("-q", "--quiet", action="store_true", help="print only the written files")
    board.set_defaults(publish_command=run_leaderboard)

    gc = subparsers.add_parser(
        "gc-evaluate", help="Grand-Challenge evaluation: score /input/predictions.json jobs into /output/metrics.json",
        description="Evaluation-container mode: match each algorithm job of predictions.json to its ground truth by "
                    "input image name, score it, and write metrics.json (results per case, aggregates at stable "
                    "dotted paths, no NaN; per-case results keyed by job pk and an opaque case reference). A job "
                    "that cannot be matched, read or scored scores 0 and is listed; a phase where no job matches "
                    "the ground truth, or no job's output is found, exits 2 and writes no metrics.json.")
    gc.add_argument("--input", type=Path, default=Path("/input"),
                    help="folder with predictions.json and <job pk>/output/")
    gc.add_argument("--ground-truth", type=Path, default=Path("/opt/ml/input/data/ground_truth"),
                    help="extracted ground-truth tarball: ground_truth.json + label files (see containers/evaluation)")
    gc.add_argument("--output", type=Path, default=Path("/output"), help="folder for metrics.json")
    gc.add_argument("--benchmark", default=None,
                    help="refuse a ground truth whose index names another benchmark (default: accept its own)")
    gc.add_argument("--label-map", default="a-eval",
                    help="label map of the algorithm's output ids: shipped name, JSON file or inline JSON "
                         "(default a-eval)")
    gc.add_argument("--output-relative-path", type=_relative_path, default=DEFAULT_OUTPUT_RELATIVE_PATH,
                    help="the segmentation output socket's path for jobs that declare no image output, and the "
                         f"choice among several declared ones (default {DEFAULT_OUTPUT_RELATIVE_PATH})")
    gc.add_argument("--empty-policy", choices=["aeval", "nnunet"], default="aeval",
                    help="organ absent from both GT and prediction: aeval scores 1 (default), nnunet null")
    gc.add_argument("--metrics", default="dice,nsd,hd95,assd", help="metrics to compute (default dice,nsd,hd95,assd)")
    gc.add_argument("--workers", type=positive_int, default=None, help="scoring processes (default: cores, max 4)")
    gc.add_argument("--bootstrap", type=_resamples, default=1000, metavar="N",
                    help="bootstrap resamples for the headline intervals: 0 for none, else at least 1000 "
                         "(default 1000)")
    gc.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    gc.add_argument("-q", "--quiet", action="store_true", help="print only the final line, not each failed case and unmatched job")
    gc.set_defaults(publish_command=run_gc_evaluate)


def run_leaderboard(args: argparse.Namespace) -> int:
    from harness.publish.leaderboard import build_leaderboard, load_submissions, write_leaderboard

    submissions = load_submissions(args.results, gc_ground_truth=args.gc_ground_truth)
    document = build_leaderboard(submissions, metric=args.metric, resamples=args.bootstrap, seed=args.seed,
                                 ranking_scheme=args.ranking)
    written = write_leaderboard(document, args.out)
    if not args.quiet:
        from harness.publish.tables import markdown

        print(markdown(document))
    for path in written:
        print(path)
    return 0


def run_gc_evaluate(args: argparse.Namespace) -> int:
    from metrics import EmptyPolicy

    from harness.errors import HarnessError
    from harness.labelmap import build_mapping, resolve_label_map
    from harness.publish.gc_evaluate import evaluate_predictions
    from harness.results import METRIC_NAMES
    from harness.scoring.case import ScoreSettings
    from harness.scoring.pool import default_workers

    wanted = [m.strip() for m in args.metrics.split(",") if m.strip()]
    unknown = [m for m in wanted if m not in METRIC_NAMES]
    if unknown or not wanted:
        raise HarnessError(f"--metrics: unknown metric(s) {', '.join(unknown) or '(none given)'}; "
                           f"choose from {', '.join(METRIC_NAMES)}")
    for needed in ("dice", "nsd"):  # the aggregates and the leaderboard rank on these two
        if needed not in wanted:
            wanted.append(needed)
    settings = ScoreSettings(empty_policy=EmptyPolicy(args.empty_policy),
                             metrics=tuple(m for m in METRIC_NAMES if m in wanted))
    metrics = evaluate_predictions(
        input_dir=args.input, ground_truth_dir=args.ground_truth, output_dir=args.output,
        pred_mapping=build_mapping(resolve_label_map(args.label_map)), settings=settings,
        output_relative_path=args.output_relative_path, benchmark=args.benchmark,
        workers=args.workers or default_workers(), resamples=args.bootstrap, seed=args.seed,
        log=None if args.quiet else (lambda line: print(line, file=sys.stderr)))
    aggregates = metrics["aggregates"]
    print(f"gc-evaluate: {aggregates['n_cases']} cases, {aggregates['n_failed']} failed, "
          f"{len(metrics['unmatched_jobs'])} unmatched jobs; Dice {_pct(aggregates['dice']['mean'])}, "
          f"NSD {_pct(aggregates['nsd']['mean'])}; wrote {args.output / 'metrics.json'}")
    return 0


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"
