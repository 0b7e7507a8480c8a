"""`harness run --scheduler ADDRESS` / `--cluster local:N`: the command-line side of distributed runs.

`add_flags(run_parser)` adds the two flags to `harness run`; `run_distributed(args, request)`
runs the request on Dask and returns the results document (what `SubmissionRun.execute()`
returns for a local run). This module imports nothing of Dask until a distributed run starts, so
`harness` keeps starting fast and works without the `distributed` extra.

Until harness/commands.py calls them, `python -m harness.distributed.cli run ...` is `harness run`
with the two flags.
"""

from __future__ import annotations

import argparse
import sys

from harness.errors import HarnessError


def _cluster(text: str) -> int:
    from harness.distributed.cluster import parse_cluster

    try:
        return parse_cluster(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_flags(run_parser: argparse.ArgumentParser) -> None:
    group = run_parser.add_argument_group("distributed runs (Dask; needs the 'distributed' extra)")
    where = group.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", default=None,
                       help="run the cases on the workers of this Dask scheduler (tcp://HOST:8786): one task per "
                            "case, on workers started with --resources CONTAINER=1 (CPU runs) or GPU=1 (--gpus); "
                            "OUT and the data root must be on storage every node mounts at the same path")
    where.add_argument("--cluster", metavar="local:N", type=_cluster, default=None,
                       help="start a Dask cluster of N worker processes on this machine for this run")


def wants_distributed(args: argparse.Namespace) -> bool:
    return getattr(args, "scheduler", None) is not None or getattr(args, "cluster", None) is not None


def run_distributed(args: argparse.Namespace, request) -> dict:
    """Run `request` on Dask (per args.scheduler / args.cluster); progress bars as `harness run`; the results document."""
    from harness.distributed.cluster import dask_client
    from harness.distributed.runner import DistributedRun
    from harness.progress import ProgressBars

    quiet = getattr(args, "quiet", False)
    progress = ProgressBars(enabled=not (getattr(args, "no_progress", False) or quiet))

    def say(text: str) -> None:
        if not quiet:
            print(text, file=sys.stderr)

    request.out_dir.mkdir(parents=True, exist_ok=True)
    with dask_client(scheduler=args.scheduler, cluster=args.cluster, gpus=request.policy.gpus is not None) as client:
        workers = len(client.scheduler_info(n_workers=-1)["workers"])
        where = args.scheduler or f"a local cluster of {args.cluster} workers"
        say(f"Dask: {where} ({workers} workers now)")
        runner = DistributedRun(request, client, progress=progress, say=say)
        sub = runner.submission
        if not quiet:
            print(f"image {sub.image.reference} ({sub.image.image_id[:19]}), protocol {sub.protocol}, "
                  f"label map {sub.mapping.label_map.name}, output socket {sub.output_relative_path}")
        try:
            return runner.execute()
        finally:
            progress.close()


def request_from_args(args: argparse.Namespace):
    """The RunRequest `harness run` builds from its flags."""
    from harness.commands import run_request

    return run_request(args)


def build_parser() -> argparse.ArgumentParser:
    from harness.cli import build_parser as harness_parser

    parser = harness_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    run_parser = subparsers.choices["run"]
    if not any("--scheduler" in a.option_strings for a in run_parser._actions):  # not yet wired into harness.cli
        add_flags(run_parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """`harness run` with --scheduler/--cluster, before harness/commands.py calls run_distributed itself."""
    import signal

    from harness.cli import _raise_interrupt
    from harness.cli import main as harness_main

    args = build_parser().parse_args(argv)
    if args.command != "run" or not wants_distributed(args):
        return harness_main(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        from harness.summary import results_table

        document = run_distributed(args, request_from_args(args))
    except HarnessError as error:
        print(f"harness: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("harness: interrupted; finished cases are saved, rerun the same command to resume", file=sys.stderr)
        return 130
    if not args.quiet:
        print(results_table(document, metric="dice"))
        print(results_table(document, metric="nsd"))
    failed = sum(d["n_failed"] for d in document["datasets"].values())
    total = sum(d["n_cases"] for d in document["datasets"].values())
    print(f"{total} cases, {failed} failed; results in {args.out / 'results.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
