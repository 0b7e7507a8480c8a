"""The `harness data` commands: synth, list, prepare and verify. Flags, progress, report lines.

`register(subparsers)` adds `data` and its four subcommands; each sets `func`, which returns the exit
code: 0 done / all verified, 1 some case failed or some problem found, else a raised HarnessError
with its own `exit_code` (2 for a wrong case count or a missing source).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from harness.argtypes import csv_list
from harness.cli.flags import add_data_flags, add_output_flags, default_benchmark, show_progress
from harness.errors import ExitCode, HarnessError

EXIT_OK, EXIT_PROBLEMS = ExitCode.OK, ExitCode.FAILED_CASES


def register(subparsers: "argparse._SubParsersAction") -> None:
    """Add `data` and its subcommands to the `harness` subcommands (imports stay light: parsing only)."""
    from harness.manifest import CANONICAL_ORDER

    data = subparsers.add_parser("data", help="test data: synthesize the embedded benchmark, list test sets, "
                                              "prepare and verify real ones")
    data_subparsers = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    synth = data_subparsers.add_parser("synth", help="generate the embedded synthetic benchmark (no download)")
    synth.add_argument("--out", required=True, type=Path, help="data root to write")
    synth.add_argument("--datasets", type=csv_list, default=None, help="only these test sets")
    synth.add_argument("--force", action="store_true", help="regenerate cases that already exist")
    synth.add_argument("--scale", choices=("mini", "full"), default="mini",
                       help="mini (default): the small embedded benchmark; full: each source's real grid "
                            "(~40-50 M voxels per CT), with its manifests written to OUT/manifests")
    synth.add_argument("--cases", type=int, default=None,
                       help="with --scale full: cases per test set (default 4, the miniature's count)")
    add_output_flags(synth)
    synth.set_defaults(func=_run_synth)

    listing = data_subparsers.add_parser("list", help="list the test sets of a benchmark")
    listing.add_argument("--benchmark", default=None)
    listing.add_argument("--data-root", default=None, help="a prepared data root: list its manifests")
    add_output_flags(listing)
    listing.set_defaults(func=_run_list)

    prepare = data_subparsers.add_parser(
        "prepare", help="prepare one real test set from its public download (images + benchmark-id labels + manifest)",
        description="Find the benchmark's test cases in a dataset's own published layout, write each image and its "
                    "ground truth in benchmark ids under the data root, and the filled manifest to "
                    "<data root>/manifests/KEY.json. The source folder is only read. Reruns skip finished cases.")
    prepare.add_argument("key", metavar="KEY", help=f"test set: {', '.join(CANONICAL_ORDER)}")
    prepare.add_argument("--source", required=True, type=Path, help="the unpacked download (read only)")
    prepare.add_argument("--data-root", default=None, help="where to write (else $AEVAL_DATA_ROOT); created if missing")
    prepare.add_argument("--force", action="store_true", help="prepare again cases that are already prepared")
    prepare.add_argument("--manifest-out", type=Path, default=None,
                         help="where the filled manifest goes: a KEY.json file or a folder "
                              "(default <data root>/manifests/KEY.json)")
    prepare.add_argument("--allow-count-mismatch", action="store_true",
                         help="organizer override: accept a case count other than the benchmark's "
                              "(the manifest then records the count found)")
    prepare.add_argument("--cases", type=Path, default=None, dest="case_list", metavar="FILE",
                         help="take only these case ids (one per line, '#' comments), e.g. the benchmark's 40 AMOS CTs "
                              "(default: the benchmark's published list where there is one, else every test case "
                              "of the release)")
    prepare.add_argument("--labels", type=Path, default=None, metavar="DIR",
                         help="the test labels' folder where they are published apart from the images "
                              "(word: the unpacked WORD_V0.1.0_labelsTs.zip; flare22: the validation labels); "
                              "read only")
    _add_output_flags(prepare)
    prepare.set_defaults(func=_run_prepare)

    verify = data_subparsers.add_parser(
        "verify", help="check a data root against its manifests (files, sha256, counts, grids, label values)")
    verify.add_argument("keys", nargs="*", metavar="KEY", help="test sets to check (default: all of the benchmark)")
    add_data_flags(verify)
    _add_output_flags(verify)
    verify.set_defaults(func=_run_verify)


def _add_output_flags(parser: argparse.ArgumentParser) -> None:
    add_output_flags(parser, quiet_help="print only problems and the final line")


def _run_synth(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from harness.data.synth import synthesize
    from harness.manifest import load_benchmark

    per_set = args.cases if args.scale == "full" and args.cases else None
    total = sum(per_set or len(m.cases) for m in load_benchmark("synthetic", keys=args.datasets))
    bar = tqdm(total=total, desc="synthesizing", unit="case", disable=not show_progress(args))
    written = synthesize(args.out, keys=args.datasets, force=args.force, progress=lambda k, c: bar.update(1),
                         scale=args.scale, cases=args.cases)
    bar.close()
    where = f" (manifests in {args.out / 'manifests'})" if args.scale == "full" else ""
    print(f"synthetic benchmark ({args.scale}) in {args.out}{where}: {len(written) // 2} cases written, "
          f"{total - len(written) // 2} already there")
    return 0


def _run_list(args: argparse.Namespace) -> int:
    from harness.manifest import load_benchmark

    benchmark = args.benchmark or default_benchmark(args.data_root)
    for m in load_benchmark(benchmark):
        print(f"{m.key:<12} {m.modality}  {m.dataset:<22} {len(m.cases):>3}/{m.expected_case_count:<3} cases  "
              f"GT labels: {m.gt_label_map}")
    return 0


def _run_prepare(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from harness.data.prepare.pipeline import prepare
    from harness.manifest import DATA_ROOT_ENV, resolve_data_root

    data_root = args.data_root or os.environ.get(DATA_ROOT_ENV)
    if not data_root:
        resolve_data_root(None)  # raises the harness's one "no data root" message
    only = _read_case_list(args.case_list) if args.case_list else None
    bar = tqdm(desc=f"preparing {args.key}", unit="case", disable=not show_progress(args))
    try:
        report = prepare(args.key, source=args.source, data_root=Path(data_root), force=args.force,
                         manifest_out=args.manifest_out, allow_count_mismatch=args.allow_count_mismatch,
                         only_cases=only, labels=args.labels, progress=lambda case_id, status: bar.update(1))
    finally:
        bar.close()
    contract = f"benchmark contract: {report.contract_count}"
    if report.release:
        contract += f" from {report.release}"
    if report.count_overridden:
        contract += ", overridden by --allow-count-mismatch"
    lines = [f"{report.key}: {report.found} test case(s) found under {report.source} ({contract})"]
    lines += [f"  note: {note}" for note in report.notes]
    for outcome in report.outcomes:
        lines += [f"  {outcome.case_id}: {note}" for note in outcome.notes]
    if not args.quiet:
        print("\n".join(lines))
    for outcome in report.with_status("failed"):
        print(f"  FAILED {outcome.problem}")
    print(f"{report.key}: {len(report.with_status('prepared'))} prepared, {len(report.with_status('skipped'))} "
          f"already prepared, {len(report.with_status('failed'))} failed; manifest {report.manifest_path}")
    if not args.quiet:
        print(f"use it with --benchmark {report.manifest_path.parent} --data-root {report.data_root}; "
              f"check it with `harness data verify {report.key} --data-root {report.data_root}`")
    return EXIT_OK if report.ok else EXIT_PROBLEMS


def _read_case_list(path: Path) -> list[str]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise HarnessError(f"--cases {path}: cannot read: {exc.strerror or exc}") from exc
    ids = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    ids = [i for i in ids if i]
    if not ids:
        raise HarnessError(f"--cases {path} lists no case ids")
    return ids


def _run_verify(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from harness.data.verify import verify
    from harness.manifest import default_benchmark, resolve_data_root

    data_root = resolve_data_root(args.data_root)
    benchmark = args.benchmark or default_benchmark(data_root)
    bar = tqdm(desc="verifying", unit="case", disable=not show_progress(args))
    try:
        report = verify(benchmark, data_root, keys=args.keys or None, progress=lambda key, case_id: bar.update(1))
    finally:
        bar.close()
    for problem in report.problems:
        print(problem.line())
    if not args.quiet:
        for s in report.summaries:
            unchecked = "" if s.checksums else ", no sha256 recorded (not checked)"
            print(f"{s.key}: {s.cases}/{s.expected} cases, {s.problems} problem(s){unchecked}")
    total = len(report.problems)
    print(f"verify ({benchmark}): " + ("all good" if report.ok else f"{total} problem(s)"))
    return EXIT_OK if report.ok else EXIT_PROBLEMS
