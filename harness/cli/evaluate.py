"""`harness evaluate`: score a folder of predictions against one test set (resumable results)."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.flags import (add_batch_flags, add_data_flags, add_label_map_flag, add_output_flags,
                               add_scoring_flags, default_benchmark, say, score_settings, show_progress)
from harness.errors import HarnessError


def register(subparsers: argparse._SubParsersAction) -> None:
    evaluate = subparsers.add_parser("evaluate", help="score a folder of predictions against a test set")
    evaluate.add_argument("--dataset", required=True, help="test set key, e.g. flare22 (see `harness data list`)")
    evaluate.add_argument("--predictions", required=True, type=Path, help="folder with one <case_id>.nii.gz/.mha per case")
    add_label_map_flag(evaluate, default="a-eval", help="label map of the predictions (default: benchmark ids)")
    evaluate.add_argument("--out", required=True, type=Path, help="results JSON (resumed if it exists); CSVs beside it")
    add_data_flags(evaluate)
    add_batch_flags(evaluate)
    add_scoring_flags(evaluate)
    add_output_flags(evaluate)
    evaluate.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from harness.scoring.workers import default_workers, start_early

    workers = args.workers or default_workers()
    start_early(workers)  # before the imports below: the workers' preloading runs beside them

    from tqdm import tqdm

    from harness.labelmap import build_mapping, resolve_label_map
    from harness.manifest import load_benchmark, resolve_data_root
    from harness.results import ResultsStore
    from harness.scoring.evaluate import evaluate_folder
    from harness.summary import results_table
    from harness.taxonomy import load_taxonomy

    data_root = resolve_data_root(args.data_root)
    benchmark = args.benchmark or default_benchmark(data_root)
    manifests = load_benchmark(benchmark)
    manifest = next((m for m in manifests if m.key == args.dataset), None)
    if manifest is None:
        raise HarnessError(f"unknown test set '{args.dataset}' in benchmark {benchmark} "
                           f"(available: {', '.join(m.key for m in manifests)})")
    manifest.check_complete()
    if not args.predictions.is_dir():
        raise HarnessError(f"predictions folder {args.predictions} does not exist")
    settings = score_settings(args)
    pred_mapping = build_mapping(resolve_label_map(args.label_map))
    store = ResultsStore.open(args.out, benchmark=benchmark, settings=settings.to_document(),
                              organs=list(load_taxonomy().organ_names), manifests=manifests,
                              submission={"name": str(args.predictions), "label_map": pred_mapping.label_map.name})
    bar = tqdm(total=len(manifest.cases), desc=manifest.key, disable=not show_progress(args), unit="case",
               initial=len(store.finished(manifest.key, include_failed=not args.retry_failed)))
    document = evaluate_folder(manifest=manifest, predictions=args.predictions, pred_mapping=pred_mapping,
                               data_root=data_root, store=store, settings=settings,
                               workers=workers, retry_failed=args.retry_failed,
                               progress=lambda done, total: bar.update(1))
    bar.close()
    say(args, results_table(document))
    failed = document["datasets"][manifest.key]["n_failed"]
    print(f"{manifest.key}: {document['datasets'][manifest.key]['n_cases']} cases, {failed} failed; "
          f"results in {args.out}")
    return 1 if failed else 0
