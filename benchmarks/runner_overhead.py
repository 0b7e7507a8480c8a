"""Per-case overhead of `harness run` over bare `docker run`, same image, same cases, one run.

    .venv/bin/python benchmarks/runner_overhead.py [--image aeval-example/threshold:latest] [--cases 4]

Peer: what a participant does by hand with Grand-Challenge's template script: inputs already staged
as .mha + inputs.json, then `docker run --rm --network none -v IN:/input:ro -v OUT:/output IMAGE`
per case (the docker CLI). The harness does more per case (stages the input, applies the whole
sandbox, meters memory, validates and keeps the output, scores it in a worker process while the next
container runs, writes results atomically); what it adds beyond the container's own time is the
overhead. Target: <= 0.5 s per case.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.data.synth import synthesize  # noqa: E402
from harness.manifest import load_benchmark  # noqa: E402
from harness.runner.protocols.gc import stage_case  # noqa: E402

DATASETS = ["btcv", "word", "amos_mr"]


def bare_docker(image: str, root: Path, cases: int, scratch: Path) -> tuple[float, int]:
    staged = []
    for manifest in load_benchmark("synthetic", keys=DATASETS):
        for case in manifest.cases[:cases]:
            staged.append(stage_case(image_path=root / case.image, socket=manifest.input_socket,
                                     scratch=Path(tempfile.mkdtemp(dir=scratch))))
    started = time.perf_counter()
    for job in staged:
        subprocess.run(["docker", "run", "--rm", "--network", "none", "-v", f"{job.input_dir}:/input:ro",
                        "-v", f"{job.output_dir}:/output", image], check=True, capture_output=True)
    return time.perf_counter() - started, len(staged)


def harness_run(image: str, root: Path, cases: int, out: Path) -> tuple[float, int]:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "harness.cli", "run", "--image", image, "--benchmark", "synthetic",
                    "--data-root", str(root), "--out", str(out), "--datasets", ",".join(DATASETS),
                    "--cases", str(cases), "--no-progress", "-q", "--memory", "2g"], check=True)
    return time.perf_counter() - started, cases * len(DATASETS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="aeval-example/threshold:latest")
    parser.add_argument("--cases", type=int, default=4, help="cases per test set (3 test sets)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aeval-bench-") as scratch_name:
        scratch = Path(scratch_name)
        synthesize(scratch / "data", keys=DATASETS)
        subprocess.run(["docker", "run", "--rm", "--network", "none", args.image, "true"], capture_output=True)  # warm
        bare_s, n_bare = bare_docker(args.image, scratch / "data", args.cases, scratch)
        harness_s, n_harness = harness_run(args.image, scratch / "data", args.cases, scratch / "out")
        shutil.rmtree(scratch / "out", ignore_errors=True)
    per_bare, per_harness = bare_s / n_bare, harness_s / n_harness
    print(f"cases: {n_harness} ({', '.join(DATASETS)}, {args.cases} each), image {args.image}")
    print(f"bare docker run : {bare_s:7.2f} s total, {per_bare:6.3f} s per case")
    print(f"harness run     : {harness_s:7.2f} s total, {per_harness:6.3f} s per case "
          "(staging, sandbox, metering, validation, scoring, results; CLI start-up included)")
    print(f"overhead        : {per_harness - per_bare:+6.3f} s per case  (ratio harness/bare {per_harness / per_bare:.2f}x); "
          f"target <= 0.5 s per case: {'met' if per_harness - per_bare <= 0.5 else 'NOT met'}")


if __name__ == "__main__":
    main()
