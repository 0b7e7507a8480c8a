"""The `harness` command: parse flags, call the API, show progress. No logic lives here.

Exit codes: 0 success, 1 the command ran but some case failed (or a validation check failed),
2 usage or environment error (bad flags, no data root, no Docker engine, invalid manifest).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from harness import __version__
from harness.argtypes import csv_list, positive_int
from harness.errors import HarnessError

EXIT_OK, EXIT_FAILED_CASES, EXIT_USAGE = 0, 1, 2


def _add_scoring_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--empty-policy", choices=["aeval", "nnunet"], default="aeval",
                        help="organ absent from both GT and prediction: 'aeval' scores Dice=NSD=1 (the benchmark's "
                             "convention, default); 'nnunet' scores NaN (stored as null) and nan-means")
    parser.add_argument("--metrics", type=csv_list, default=["dice", "nsd", "hd95", "assd"],
                        help="metrics to compute (default dice,nsd,hd95,assd)")


def _add_common_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (logs, CI)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only errors and the final line")


def _add_data_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--benchmark", default=None, help="manifest set: a-eval (default), synthetic, or a folder")
    parser.add_argument("--data-root", default=None, help="where the test data lies (else $AEVAL_DATA_ROOT)")


def _add_batch_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=positive_int, default=None, help="scoring processes (default: cores, max 4)")
    parser.add_argument("--retry-failed", action="store_true", help="on resume, do failed cases again")


def _add_sandbox_flags(parser: argparse.ArgumentParser) -> None:
    """The sandbox flags; each defaults to None so that SandboxPolicy's own default applies (and is shown)."""
    from harness.runner.sandbox import SandboxPolicy

    default = SandboxPolicy.default_text
    parser.add_argument("--gpus", default=None, help="'all' or a count, as `docker run --gpus` (default: no GPU)")
    parser.add_argument("--memory", default=None,
                        help=f"memory limit, swap equal to it (default {default('memory_bytes')})")
    parser.add_argument("--cpus", type=float, default=None, help=f"CPU limit (default {default('cpus')})")
    parser.add_argument("--pids-limit", type=positive_int, default=None,
                        help=f"process limit (default {default('pids_limit')})")
    parser.add_argument("--shm-size", default=None, help=f"/dev/shm size (default {default('shm_bytes')})")
    parser.add_argument("--tmp-size", default=None,
                        help=f"size of the container's /tmp, its only writable scratch (default {default('tmp_bytes')})")
    parser.add_argument("--time-limit", default=None,
                        help=f"wall-clock limit per container run, e.g. 600, 10m (default {default('time_limit_s')})")
    parser.add_argument("--output-limit", default=None,
                        help=f"cap on the total size of a run's outputs (default {default('output_max_bytes')})")
    parser.add_argument("--output-files", type=positive_int, default=None,
                        help=f"cap on the number of files and folders a run writes (default "
                             f"{default('output_max_files')})")
    parser.add_argument("--max-image-size", default=None,
                        help=f"largest accepted image, all layers' files (default {default('image_max_bytes')})")
    parser.add_argument("--allow-root", action="store_true",
                        help="run images whose user is root (Grand-Challenge refuses them)")


def _add_image_flags(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", help="image reference in the local engine (never pulled), e.g. team/model:tag")
    source.add_argument("--image-tar", type=Path, help="`docker save` output (gzip or not), loaded by image id")
    parser.add_argument("--protocol", choices=["gc", "flare"], default=None,
                        help="gc: one run per case, Grand-Challenge layout; flare: one run per test set (default: "
                             "the image's org.a-eval.protocol label, else gc)")
    parser.add_argument("--label-map", default=None, help="label map of the image's output ids (default: its label)")
    parser.add_argument("--output-relative-path", default=None, help="Grand-Challenge output socket path")
    parser.add_argument("--model-dir", type=Path, default=None, help="mounted read-only at /opt/ml/model")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    score = sub.add_parser("score", help="score one prediction file against one ground-truth file")
    score.add_argument("gt", type=Path, help="ground-truth label image (NIfTI, MHA, ...)")
    score.add_argument("pred", type=Path, help="predicted label image on the same grid")
    score.add_argument("--gt-label-map", default="a-eval", help="label map of GT: shipped name, JSON file or inline JSON")
    score.add_argument("--pred-label-map", default="a-eval", help="label map of the prediction (default: benchmark ids)")
    score.add_argument("--json", action="store_true", help="print the scores as JSON")
    _add_scoring_flags(score)

    evaluate = sub.add_parser("evaluate", help="score a folder of predictions against a test set")
    evaluate.add_argument("--dataset", required=True, help="test set key, e.g. flare22 (see `harness data list`)")
    evaluate.add_argument("--predictions", required=True, type=Path, help="folder with one <case_id>.nii.gz/.mha per case")
    evaluate.add_argument("--pred-label-map", default="a-eval", help="label map of the predictions (default: benchmark ids)")
    evaluate.add_argument("--out", required=True, type=Path, help="results JSON (resumed if it exists); CSVs beside it")
    _add_data_flags(evaluate)
    _add_batch_flags(evaluate)
    _add_scoring_flags(evaluate)
    _add_common_flags(evaluate)

    run = sub.add_parser("run", help="run a participant image on the test sets in the sandbox, and score it")
    _add_image_flags(run)
    run.add_argument("--out", required=True, type=Path, help="output folder: results.json, CSVs, predictions/, logs/")
    _add_data_flags(run)
    run.add_argument("--datasets", type=csv_list, default=None, help="only these test sets (default: all seven)")
    run.add_argument("--cases", type=positive_int, default=None, help="only the first N cases of each test set")
    _add_sandbox_flags(run)
    _add_batch_flags(run)
    _add_scoring_flags(run)
    _add_common_flags(run)
    from harness.distributed.cli import add_flags as add_distributed_flags

    add_distributed_flags(run)  # --scheduler ADDRESS / --cluster local:N (docs/scale_out.md)

    validate = sub.add_parser("validate", help="check a submission image before sending it (static checks + dry run)")
    _add_image_flags(validate)
    _add_sandbox_flags(validate)
    validate.add_argument("--report", type=Path, default=None, help="write the checks as JSON here")
    validate.add_argument("--static-only", action="store_true", help="skip the dry run (nothing is started)")

    data = sub.add_parser("data", help="test data: synthesize the embedded benchmark, list test sets")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    synth = data_sub.add_parser("synth", help="generate the embedded synthetic benchmark (no download)")
    synth.add_argument("--out", required=True, type=Path, help="data root to write")
    synth.add_argument("--datasets", type=csv_list, default=None, help="only these test sets")
    synth.add_argument("--force", action="store_true", help="regenerate cases that already exist")
    _add_common_flags(synth)
    listing = data_sub.add_parser("list", help="list the test sets of a benchmark")
    listing.add_argument("--benchmark", default=None)
    listing.add_argument("--data-root", default=None, help="a prepared data root: list its manifests")
    from harness.data.prepare.cli import register as register_prepare

    register_prepare(data_sub)

    from harness.publish.cli import register as register_publish

    register_publish(sub)

    maps = sub.add_parser("label-maps", help="list shipped label maps, or show how one maps to benchmark organs")
    maps.add_argument("name", nargs="?", help="a shipped name, JSON file or inline JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        if getattr(args, "publish_command", None) is not None:  # leaderboard, gc-evaluate
            return args.publish_command(args)
        from harness import commands

        return getattr(commands, f"cmd_{args.command.replace('-', '_')}")(args)
    except HarnessError as error:
        print(f"harness: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("harness: interrupted; finished cases are saved, rerun the same command to resume", file=sys.stderr)
        return 130


def _raise_interrupt(signum, frame) -> None:
    """SIGTERM (docker stop, CI cancel) cleans up like Ctrl-C: containers and scratch folders go."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
