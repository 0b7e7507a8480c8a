"""The publishing subcommands of `harness`: `leaderboard`, `gc-evaluate` and `gc-ground-truth`. Parsing only.

`register(subparsers)` adds them to the top-level parser; `run_leaderboard(args)`,
`run_gc_evaluate(args)` and `run_gc_ground_truth(args)` call the library and return the exit code (0 done; problems that stop the
whole command raise `HarnessError`, which the top-level `main` prints and turns into exit code 2).
Nothing heavy is imported at module level: `harness --help` and the evaluation container's start
stay fast, and the evaluation image needs no plotting library.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.argtypes import csv_list, non_negative_int, positive_int
from harness.cli.flags import add_data_flags, add_label_map_flag, add_output_flags, add_scoring_flags, score_settings
from harness.errors import HarnessError
from harness.gc_interface import DEFAULT_OUTPUT_RELATIVE_PATH
from harness.runner.protocols.outputs_tree import check_output_relative_path


def _add_bootstrap_flags(parser: argparse.ArgumentParser, *, what: str) -> None:
    """--bootstrap (0 for none, else at least the refused-below minimum) and --seed, as leaderboard and gc-evaluate share."""
    parser.add_argument("--bootstrap", type=_resamples, default=1000, metavar="N",
                        help=f"{what}: 0 for none, else at least 1000 (fewer are refused) (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")


def _relative_path(text: str) -> str:
    try:
        return check_output_relative_path(text, source="--output-relative-path")
    except HarnessError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _resamples(text: str) -> int:
    """--bootstrap: 0 (no intervals) or at least the minimum; an interval from a few draws is refused."""
    from harness.publish.bootstrap import MIN_RESAMPLES

    value = non_negative_int(text)
    if 0 < value < MIN_RESAMPLES:
        raise argparse.ArgumentTypeError(f"{value} resamples give no trustworthy 95% interval: use 0 for none, or "
                                         f"at least {MIN_RESAMPLES}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `leaderboard`, `gc-evaluate` and `gc-ground-truth` to the `harness` subcommands."""
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
    board.add_argument("--metric", default=None,
                       help="metric the rankings use: one the aggregates hold (default: the first, Dice)")
    board.add_argument("--ranking", choices=["mean", "rank-then-aggregate", "test-based"], default="mean",
                       help="the official ranking, stated on the page (the others are shown as robustness checks): "
                            "mean = All mean; rank-then-aggregate = mean of per-test-set ranks; test-based = number "
                            "of submissions beaten in Holm-adjusted one-sided Wilcoxon tests (default mean)")
    _add_bootstrap_flags(board, what="paired bootstrap resamples for the 95%% score and rank intervals")
    add_output_flags(board, quiet_help="print only the written files")
    board.set_defaults(func=run_leaderboard)

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
    add_label_map_flag(gc, default="a-eval",
                            help="label map of the algorithm's output ids: shipped name, JSON file or inline JSON "
                                 "(default a-eval)")
    gc.add_argument("--output-relative-path", type=_relative_path, default=DEFAULT_OUTPUT_RELATIVE_PATH,
                    help="the segmentation output socket's path for jobs that declare no image output, and the "
                         f"choice among several declared ones (default {DEFAULT_OUTPUT_RELATIVE_PATH})")
    add_scoring_flags(gc, metrics_help="metrics to compute; dice and nsd are always added (default: all the "
                                        "scoring library computes)")
    gc.add_argument("--workers", type=positive_int, default=None, help="scoring processes (default: cores, max 4)")
    _add_bootstrap_flags(gc, what="bootstrap resamples for the headline intervals")
    add_output_flags(gc, quiet_help="print only the final line, not each failed case and unmatched job")
    gc.set_defaults(func=run_gc_evaluate)

    truth = subparsers.add_parser(
        "gc-ground-truth", help="build the Grand-Challenge ground-truth tarball's folder and the archive images",
        description="Write OUT/ground_truth/ (ground_truth.json + label files, to tar as the phase's ground truth) "
                    "and OUT/archive_images/ (the test images under opaque names, to upload to the phase's archive) "
                    "from a benchmark's manifests and data root.")
    add_data_flags(truth)
    truth.add_argument("--datasets", type=csv_list, default=None, help="only these test sets (comma-separated)")
    truth.add_argument("--out", required=True, type=Path, help="writes OUT/ground_truth/ and OUT/archive_images/")
    add_output_flags(truth, quiet_help="print only the final line")
    truth.set_defaults(func=run_gc_ground_truth)


def run_leaderboard(args: argparse.Namespace) -> int:
    from harness.publish.leaderboard import build_leaderboard, load_submissions, write_leaderboard
    from harness.results import RANKED_METRICS

    submissions = load_submissions(args.results, gc_ground_truth=args.gc_ground_truth)
    document = build_leaderboard(submissions, metric=args.metric or RANKED_METRICS[0], resamples=args.bootstrap,
                                 seed=args.seed, ranking_scheme=args.ranking)
    written = write_leaderboard(document, args.out)
    if not args.quiet:
        from harness.publish.tables import markdown

        print(markdown(document))
    for path in written:
        print(path)
    return 0


def run_gc_evaluate(args: argparse.Namespace) -> int:
    from harness.labelmap import build_mapping, resolve_label_map
    from harness.publish.gc_evaluate import evaluate_predictions
    from harness.results import RANKED_METRICS
    from harness.scoring.workers import default_workers

    settings = score_settings(args, required=RANKED_METRICS)  # the aggregates and the leaderboard rank on these
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


def run_gc_ground_truth(args: argparse.Namespace) -> int:
    from harness.manifest import default_benchmark, load_benchmark, resolve_data_root
    from harness.publish.gc_ground_truth import build_ground_truth

    data_root = resolve_data_root(args.data_root)
    benchmark = args.benchmark or default_benchmark(data_root)
    index = build_ground_truth(manifests=load_benchmark(benchmark, keys=args.datasets),
                               data_root=data_root, benchmark=benchmark, out=args.out)
    if args.quiet:
        print(f"{len(index['cases'])} cases written to {args.out}")
    else:
        print(f"{len(index['cases'])} cases: upload {args.out / 'archive_images'} to the phase's archive; "
              f"tar the contents of {args.out / 'ground_truth'} as the ground truth "
              f"(tar -C {args.out / 'ground_truth'} -czf ground_truth.tar.gz .)")
    return 0


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"
