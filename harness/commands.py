"""What each CLI command does, on top of the library modules; cli.py only parses."""

from __future__ import annotations

import argparse
import json
import sys

from harness.errors import HarnessError
from harness.progress import ProgressBars


def _settings(args: argparse.Namespace):
    from metrics import EmptyPolicy

    from harness.results import METRIC_NAMES
    from harness.scoring import ScoreSettings

    unknown = [m for m in args.metrics if m not in METRIC_NAMES]
    if unknown:
        raise HarnessError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(METRIC_NAMES)}")
    ordered = tuple(m for m in METRIC_NAMES if m in args.metrics)
    return ScoreSettings(empty_policy=EmptyPolicy(args.empty_policy), metrics=ordered)


def _say(args: argparse.Namespace, text: str) -> None:
    if not getattr(args, "quiet", False):
        print(text)


def cmd_score(args: argparse.Namespace) -> int:
    from harness.labelmap import build_mapping, resolve_label_map
    from harness.scoring import CaseJob, score_files
    from harness.summary import case_table

    job = CaseJob(case_id=args.pred.name, gt_path=args.gt, pred_path=args.pred,
                  gt_mapping=build_mapping(resolve_label_map(args.gt_label_map)),
                  pred_mapping=build_mapping(resolve_label_map(args.pred_label_map)), settings=_settings(args))
    record = score_files(job)
    if args.json:
        print(json.dumps({"status": record["status"], "error": record["error"], "error_kind": record["error_kind"],
                          "empty_policy": args.empty_policy, "organs": record["metrics"]}, indent=2, allow_nan=False))
    elif record["status"] == "ok":
        print(case_table(record["metrics"]))
    if record["status"] != "ok":
        print(f"harness: case failed: {record['error']}", file=sys.stderr)
        return 1
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from harness.evaluate import evaluate_folder
    from harness.labelmap import build_mapping, resolve_label_map
    from harness.manifest import load_benchmark, resolve_data_root
    from harness.results import ResultsStore
    from harness.scoring_pool import default_workers
    from harness.summary import results_table
    from harness.taxonomy import load_taxonomy

    data_root = resolve_data_root(args.data_root)
    benchmark = args.benchmark or _default_benchmark(data_root)
    manifests = load_benchmark(benchmark)
    manifest = next((m for m in manifests if m.key == args.dataset), None)
    if manifest is None:
        raise HarnessError(f"unknown test set '{args.dataset}' in benchmark {benchmark} "
                           f"(available: {', '.join(m.key for m in manifests)})")
    manifest.check_complete()
    if not args.predictions.is_dir():
        raise HarnessError(f"predictions folder {args.predictions} does not exist")
    settings = _settings(args)
    pred_mapping = build_mapping(resolve_label_map(args.pred_label_map))
    store = ResultsStore.open(args.out, benchmark=benchmark, settings=settings.to_document(),
                              organs=list(load_taxonomy().organ_names), manifests=manifests,
                              submission={"name": str(args.predictions), "label_map": pred_mapping.label_map.name})
    bar = tqdm(total=len(manifest.cases), desc=manifest.key, disable=args.no_progress or args.quiet, unit="case",
               initial=len(store.finished(manifest.key, include_failed=not args.retry_failed)))
    document = evaluate_folder(manifest=manifest, predictions=args.predictions, pred_mapping=pred_mapping,
                               data_root=data_root, store=store, settings=settings,
                               workers=args.workers or default_workers(), retry_failed=args.retry_failed,
                               progress=lambda done, total: bar.update(1))
    bar.close()
    _say(args, results_table(document))
    failed = document["datasets"][manifest.key]["n_failed"]
    print(f"{manifest.key}: {document['datasets'][manifest.key]['n_cases']} cases, {failed} failed; "
          f"results in {args.out}")
    return 1 if failed else 0


def _default_benchmark(data_root=None) -> str:
    from harness.manifest import default_benchmark

    return default_benchmark(data_root)


def cmd_data(args: argparse.Namespace) -> int:
    if args.data_command in ("prepare", "verify"):
        from harness.data.prepare.cli import run as run_prepare

        return run_prepare(args)
    if args.data_command == "synth":
        from tqdm import tqdm

        from harness.data.synth import synthesize
        from harness.manifest import load_benchmark

        total = sum(len(m.cases) for m in load_benchmark("synthetic", keys=args.datasets))
        bar = tqdm(total=total, desc="synthesizing", unit="case", disable=args.no_progress or args.quiet)
        written = synthesize(args.out, keys=args.datasets, force=args.force, progress=lambda k, c: bar.update(1))
        bar.close()
        print(f"synthetic benchmark in {args.out}: {len(written) // 2} cases written, "
              f"{total - len(written) // 2} already there")
        return 0
    if args.data_command == "list":
        from harness.manifest import load_benchmark

        benchmark = args.benchmark or _default_benchmark(args.data_root)
        for m in load_benchmark(benchmark):
            print(f"{m.key:<12} {m.modality}  {m.dataset:<22} {len(m.cases):>3}/{m.expected_case_count:<3} cases  "
                  f"GT labels: {m.gt_label_map}")
        return 0
    raise HarnessError(f"unknown data command {args.data_command}")


def cmd_label_maps(args: argparse.Namespace) -> int:
    from harness.labelmap import build_mapping, resolve_label_map, shipped_label_map_names
    from harness.taxonomy import load_taxonomy

    if not args.name:
        for name in shipped_label_map_names():
            print(name)
        return 0
    mapping = build_mapping(resolve_label_map(args.name))
    names = {o.id: o.name for o in load_taxonomy().organs}
    for native, benchmark in sorted(mapping.native_to_benchmark.items()):
        print(f"{native:>4} {mapping.label_map.labels[native]:<28} -> {benchmark:>2} {names[benchmark]}")
    for note in mapping.notes():
        print(note)
    return 0


def _policy(args: argparse.Namespace):
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


def cmd_validate(args: argparse.Namespace) -> int:
    from harness.validate import ValidateRequest, validate_submission, write_report

    policy = _policy(args)
    request = ValidateRequest(image=args.image, image_tar=args.image_tar, policy=policy, protocol=args.protocol,
                              label_map=args.label_map, output_relative_path=args.output_relative_path,
                              model_dir=args.model_dir, max_image_bytes=policy.image_max_bytes,
                              dry_run=not args.static_only)
    checks = validate_submission(request)
    for check in checks:
        print(check.line())
    if args.report:
        write_report(args.report, checks, request)
    passed = all(c.passed for c in checks)
    print(f"{'PASSED' if passed else 'FAILED'}: {sum(c.passed for c in checks)}/{len(checks)} checks passed")
    return 0 if passed else 1


def run_request(args: argparse.Namespace):
    """The RunRequest of `harness run`'s flags (shared with the distributed runner)."""
    from harness.manifest import resolve_data_root
    from harness.runner.run import RunRequest
    from harness.scoring_pool import default_workers

    data_root = resolve_data_root(args.data_root)
    return RunRequest(image=args.image, image_tar=args.image_tar, out_dir=args.out,
                      data_root=data_root, benchmark=args.benchmark or _default_benchmark(data_root),
                      datasets=args.datasets, cases_limit=args.cases, protocol=args.protocol,
                      label_map=args.label_map, output_relative_path=args.output_relative_path,
                      model_dir=args.model_dir, policy=_policy(args), settings=_settings(args),
                      workers=args.workers or default_workers(), retry_failed=args.retry_failed)


def cmd_run(args: argparse.Namespace) -> int:
    from harness.distributed.cli import run_distributed, wants_distributed
    from harness.runner.run import SubmissionRun
    from harness.summary import results_table

    request = run_request(args)
    args.out.mkdir(parents=True, exist_ok=True)
    if wants_distributed(args):  # --scheduler / --cluster: the cases run on Dask workers
        document = run_distributed(args, request)
    else:
        progress = ProgressBars(enabled=not (args.no_progress or args.quiet))
        runner = SubmissionRun(request, progress=progress)
        sub = runner.submission
        _say(args, f"image {sub.image.reference} ({sub.image.image_id[:19]}), protocol {sub.protocol}, "
                   f"label map {sub.mapping.label_map.name}, output socket {sub.output_relative_path}")
        try:
            document = runner.execute()
        finally:
            progress.close()
    _say(args, results_table(document, metric="dice"))
    _say(args, results_table(document, metric="nsd"))
    failed = sum(d["n_failed"] for d in document["datasets"].values())
    total = sum(d["n_cases"] for d in document["datasets"].values())
    print(f"{total} cases, {failed} failed; results in {args.out / 'results.json'}")
    return 1 if failed else 0
