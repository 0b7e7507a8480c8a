"""`harness validate`: check a submission image before sending it (static checks, then a dry run)."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.flags import add_image_flags, add_output_flags, add_sandbox_flags, sandbox_policy


def register(subparsers: argparse._SubParsersAction) -> None:
    validate = subparsers.add_parser("validate", help="check a submission image before sending it (static checks + dry run)")
    add_image_flags(validate)
    add_sandbox_flags(validate)
    validate.add_argument("--report", type=Path, default=None, help="write the checks as JSON here")
    validate.add_argument("--static-only", action="store_true", help="skip the dry run (nothing is started)")
    add_output_flags(validate, quiet_help="print only the failed checks and the final line")
    validate.set_defaults(func=cmd_validate)


def cmd_validate(args: argparse.Namespace) -> int:
    from harness.validate import ValidateRequest, validate_submission, write_report

    policy = sandbox_policy(args)
    request = ValidateRequest(image=args.image, image_tar=args.image_tar, policy=policy,
                              protocol=args.protocol, label_map=args.label_map,
                              output_relative_path=args.output_relative_path, model_dir=args.model_dir,
                              max_image_bytes=policy.image_max_bytes, dry_run=not args.static_only)
    checks = validate_submission(request)
    for check in checks:
        if not check.passed or not args.quiet:
            print(check.line())
    if args.report:
        write_report(args.report, checks, request)
    passed = all(c.passed for c in checks)
    print(f"{'PASSED' if passed else 'FAILED'}: {sum(c.passed for c in checks)}/{len(checks)} checks passed")
    return 0 if passed else 1
