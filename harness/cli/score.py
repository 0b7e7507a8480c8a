"""`harness score`: one prediction file against one ground-truth file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.cli.flags import add_label_map_flag, add_output_flags, add_scoring_flags, score_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    score = subparsers.add_parser("score", help="score one prediction file against one ground-truth file")
    score.add_argument("gt", type=Path, help="ground-truth label image (NIfTI, MHA, ...)")
    score.add_argument("pred", type=Path, help="predicted label image on the same grid")
    score.add_argument("--gt-label-map", default="a-eval", help="label map of GT: shipped name, JSON file or inline JSON")
    add_label_map_flag(score, default="a-eval", help="label map of the prediction (default: benchmark ids)")
    score.add_argument("--json", action="store_true", help="print the scores as JSON")
    add_scoring_flags(score)
    add_output_flags(score)
    score.set_defaults(func=cmd_score)


def cmd_score(args: argparse.Namespace) -> int:
    from harness.labelmap import build_mapping, resolve_label_map
    from harness.scoring.case import CaseJob, score_files
    from harness.summary import case_table

    job = CaseJob(case_id=args.pred.name, gt_path=args.gt, pred_path=args.pred,
                  gt_mapping=build_mapping(resolve_label_map(args.gt_label_map)),
                  pred_mapping=build_mapping(resolve_label_map(args.label_map)), settings=score_settings(args))
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
