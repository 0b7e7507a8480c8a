"""The `harness` command: parse flags, call the API, show progress. No logic lives here.

One module per command group, each with `register(subparsers)` that adds its commands and sets
`func` (the handler: args -> exit code): score, evaluate, run, validate, data (synth, list, prepare,
verify), publish (leaderboard, gc-evaluate, gc-ground-truth), label_maps. Flags several commands
share are `harness.cli.flags`.

Exit codes: `harness.errors.ExitCode` (0 success, 1 some case or check failed, 2 usage or input error,
3 environment error such as no Docker engine, 4 Dask scheduler unreachable or lost, 130 interrupted);
a `HarnessError` carries its own code.
"""

from __future__ import annotations

import argparse
import signal
import sys

from harness import __version__
from harness.cli import data, evaluate, label_maps, publish, run, score, validate
from harness.errors import ExitCode, HarnessError

DESCRIPTION = """\
Evaluate abdominal organ segmentation on the A-Eval benchmark: run a participant's Docker image on
the seven test sets in a sandbox (as Grand-Challenge does), score its predictions (Dice, NSD, HD95,
ASSD per organ) and write results you can resume, compare and publish."""

EPILOG = """\
first steps:
  harness data synth --out data/            the miniature synthetic benchmark (no download)
  harness run --image team/model:tag --data-root data/ --out results/
  harness evaluate --dataset btcv --predictions preds/ --out btcv.json --data-root data/
  harness validate --image team/model:tag   check an image before submitting it

`harness COMMAND --help` lists a command's options. Exit codes: 0 success, 1 some case (or check)
failed, 2 usage or input error (bad flags, no data, bad manifest), 3 environment error (no Docker
engine, no NVIDIA runtime), 4 Dask scheduler unreachable or lost, 130 interrupted."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for group in (score, evaluate, run, validate, data, publish, label_maps):
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return args.func(args)
    except HarnessError as error:
        print(f"harness: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("harness: interrupted; finished cases are saved, rerun the same command to resume", file=sys.stderr)
        return ExitCode.INTERRUPTED


def _raise_interrupt(signum, frame) -> None:
    """SIGTERM (docker stop, CI cancel) cleans up like Ctrl-C: containers and scratch folders go."""
    raise KeyboardInterrupt
