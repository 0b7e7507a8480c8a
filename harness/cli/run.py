"""`harness run`: a participant image on the test sets in the sandbox, locally or on Dask, then scored."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.argtypes import csv_list, positive_int
from harness.cli.flags import (add_batch_flags, add_data_flags, add_distributed_flags, add_image_flags,
                               add_output_flags, add_sandbox_flags, add_scoring_flags, default_benchmark,
                               sandbox_policy, say, score_settings, show_progress)


def register(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser("run", help="run a participant image on the test sets in the sandbox, and score it")
    add_image_flags(run)
    run.add_argument("--out", required=True, type=Path, help="output folder: results.json, CSVs, predictions/, logs/")
    add_data_flags(run)
    run.add_argument("--datasets", type=csv_list, default=None, help="only these test sets (default: all seven)")
    run.add_argument("--cases", type=positive_int, default=None, help="only the first N cases of each test set")
    add_sandbox_flags(run)
    add_batch_flags(run)
    add_scoring_flags(run)
    add_output_flags(run)
    add_distributed_flags(run)
    run.set_defaults(func=cmd_run)


def run_request(args: argparse.Namespace):
    """The RunRequest of `harness run`'s flags."""
    from harness.manifest import resolve_data_root
    from harness.runner.run import RunRequest
    from harness.scoring.workers import default_workers

    data_root = resolve_data_root(args.data_root)
    return RunRequest(image=args.image, image_tar=args.image_tar, out_dir=args.out,
                      data_root=data_root, benchmark=args.benchmark or default_benchmark(data_root),
                      datasets=args.datasets, cases_limit=args.cases, protocol=args.protocol,
                      label_map=args.label_map, output_relative_path=args.output_relative_path,
                      model_dir=args.model_dir, policy=sandbox_policy(args), settings=score_settings(args),
                      workers=args.workers or default_workers(), retry_failed=args.retry_failed)


def wants_distributed(args: argparse.Namespace) -> bool:
    """--scheduler or --cluster: the cases run on Dask workers."""
    return getattr(args, "scheduler", None) is not None or getattr(args, "cluster", None) is not None


def cmd_run(args: argparse.Namespace) -> int:
    from harness.progress import RunProgress
    from harness.scoring.workers import start_early
    from harness.summary import results_table

    request = run_request(args)
    if not wants_distributed(args):
        start_early(request.workers)
    args.out.mkdir(parents=True, exist_ok=True)
    progress = RunProgress(enabled=show_progress(args))
    try:
        if wants_distributed(args):
            document = _run_on_dask(args, request, progress)
        else:
            document = _run(args, request, None, progress)
    finally:
        progress.close()
    say(args, results_table(document, metric="dice"))
    say(args, results_table(document, metric="nsd"))
    failed = sum(d["n_failed"] for d in document["datasets"].values())
    total = sum(d["n_cases"] for d in document["datasets"].values())
    print(f"{total} cases, {failed} failed; results in {args.out / 'results.json'}")
    return 1 if failed else 0


def _run(args: argparse.Namespace, request, executor, progress) -> dict:
    from harness.runner.driver import SubmissionRun

    runner = SubmissionRun(request, executor=executor, progress=progress)
    sub = runner.submission
    say(args, f"image {sub.image.reference} ({sub.image.image_id[:19]}), protocol {sub.protocol}, "
              f"label map {sub.mapping.label_map.name}, output socket {sub.output_relative_path}")
    return runner.execute()


def _run_on_dask(args: argparse.Namespace, request, progress) -> dict:
    from harness.distributed.cluster import dask_client
    from harness.distributed.runner import DaskExecutor

    def say_err(text: str) -> None:
        if not args.quiet:
            print(text, file=sys.stderr)

    with dask_client(scheduler=args.scheduler, cluster=args.cluster, gpus=request.policy.gpus is not None) as client:
        workers = len(client.scheduler_info(n_workers=-1)["workers"])
        say_err(f"Dask: {args.scheduler or f'a local cluster of {args.cluster} workers'} ({workers} workers now)")
        return _run(args, request, DaskExecutor(request, client, say=say_err), progress)
