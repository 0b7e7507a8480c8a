"""Flags that several `harness` commands share, and what they turn into (settings, sandbox policy).

One definition per flag, so a flag reads the same on every command; `type=` validators are
`harness.argtypes`. Imports stay light (no Docker SDK, pandas or plotting at module level): the
evaluation container starts `harness gc-evaluate` through this package.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.argtypes import csv_list, positive_int
from harness.errors import HarnessError


def add_output_flags(parser: argparse.ArgumentParser, *,
                     quiet_help: str = "print only errors and the final line") -> None:
    """--quiet and --no-progress, on every command (a command without a bar accepts --no-progress too)."""
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (logs, CI)")
    parser.add_argument("-q", "--quiet", action="store_true", help=quiet_help)


class _DeprecatedAlias(argparse.Action):
    """A hidden old flag name: stores into the new flag's dest and says the new name on stderr."""

    def __init__(self, option_strings, dest, *, new_name: str, **kwargs):
        self.new_name = new_name
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"harness: warning: {option_string} is deprecated, use {self.new_name}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_label_map_flag(parser: argparse.ArgumentParser, *, default: str | None, help: str) -> None:
    """--label-map: the one name for the label map of predictions (the image's output ids) on every command.

    `--pred-label-map` (score, evaluate before) stays as a hidden, deprecated alias.
    """
    parser.add_argument("--label-map", default=default, help=help)
    parser.add_argument("--pred-label-map", dest="label_map", action=_DeprecatedAlias, new_name="--label-map",
                        default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def add_scoring_flags(parser: argparse.ArgumentParser, *,
                      metrics_help: str = "comma-separated metrics to compute (default: all the scoring library "
                                          "computes)") -> None:
    parser.add_argument("--empty-policy", choices=["aeval", "nnunet"], default="aeval",
                        help="organ absent from both GT and prediction: 'aeval' scores Dice=NSD=1 (the benchmark's "
                             "convention, default); 'nnunet' scores NaN (stored as null) and nan-means")
    parser.add_argument("--metrics", type=csv_list, default=None, help=metrics_help)


#: What --benchmark falls back to: the one rule of `harness.manifest.default_benchmark`.
BENCHMARK_HELP = ("manifest set: a folder or a shipped name such as synthetic (default: $AEVAL_BENCHMARK, else "
                  "<data root>/manifests if it exists, else a-eval)")
DATA_ROOT_HELP = "where the test data lies (else $AEVAL_DATA_ROOT)"


def add_data_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--benchmark", default=None, help=BENCHMARK_HELP)
    parser.add_argument("--data-root", default=None, help=DATA_ROOT_HELP)


def add_batch_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=positive_int, default=None, help="scoring processes (default: cores, max 4)")
    parser.add_argument("--retry-failed", action="store_true", help="on resume, do failed cases again")


def add_sandbox_flags(parser: argparse.ArgumentParser) -> None:
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


def add_image_flags(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", help="image reference in the local engine (never pulled), e.g. team/model:tag")
    source.add_argument("--image-tar", type=Path, help="`docker save` output (gzip or not), loaded by image id")
    parser.add_argument("--protocol", choices=["gc", "flare"], default=None,
                        help="gc: one run per case, Grand-Challenge layout; flare: one run per test set (default: "
                             "the image's org.a-eval.protocol label, else gc)")
    add_label_map_flag(parser, default=None, help="label map of the image's output ids (default: its label)")
    parser.add_argument("--output-relative-path", default=None, help="Grand-Challenge output socket path")
    parser.add_argument("--model-dir", type=Path, default=None, help="mounted read-only at /opt/ml/model")


def _cluster(text: str) -> int:
    from harness.distributed.cluster import parse_cluster

    try:
        return parse_cluster(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_distributed_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("distributed runs (Dask; needs the 'distributed' extra; docs/scale_out.md)")
    where = group.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", default=None,
                       help="run the cases on the workers of this Dask scheduler (tcp://HOST:8786): one task per "
                            "case, on workers started with --resources CONTAINER=1 (CPU runs) or GPU=1 (--gpus); "
                            "OUT and the data root must be on storage every node mounts at the same path")
    where.add_argument("--cluster", metavar="local:N", type=_cluster, default=None,
                       help="start a Dask cluster of N worker processes on this machine for this run")


def score_settings(args: argparse.Namespace, *, required: tuple[str, ...] = ()):
    """The ScoreSettings of --empty-policy/--metrics, metrics in the results' order; `required` are added."""
    from metrics import EmptyPolicy

    from harness.results import METRIC_NAMES
    from harness.scoring.case import ScoreSettings

    wanted = list(METRIC_NAMES if args.metrics is None else args.metrics)
    unknown = [m for m in wanted if m not in METRIC_NAMES]
    if unknown:
        raise HarnessError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(METRIC_NAMES)}")
    wanted += [m for m in required if m not in wanted]
    ordered = tuple(m for m in METRIC_NAMES if m in wanted)
    return ScoreSettings(empty_policy=EmptyPolicy(args.empty_policy), metrics=ordered)


def sandbox_policy(args: argparse.Namespace):
    """The sandbox policy of the flags; a flag not given (None) leaves SandboxPolicy's default."""
    from harness.runner.sandbox import SandboxPolicy, parse_bytes, parse_duration

    def optional(parse, value):
        return None if value is None else parse(value)

    return SandboxPolicy.create(
        memory_bytes=optional(parse_bytes, args.memory), cpus=args.cpus, pids_limit=args.pids_limit,
        shm_bytes=optional(parse_bytes, args.shm_size), tmp_bytes=optional(parse_bytes, args.tmp_size),
        time_limit_s=optional(parse_duration, args.time_limit),
        output_max_bytes=optional(parse_bytes, args.output_limit), output_max_files=args.output_files,
        image_max_bytes=optional(parse_bytes, args.max_image_size), gpus=args.gpus, allow_root=args.allow_root or None)


def default_benchmark(data_root=None) -> str:
    from harness.manifest import default_benchmark as rule

    return rule(data_root)


def show_progress(args: argparse.Namespace) -> bool:
    return not (getattr(args, "no_progress", False) or getattr(args, "quiet", False))


def say(args: argparse.Namespace, text: str) -> None:
    """Print unless --quiet."""
    if not getattr(args, "quiet", False):
        print(text)
