"""Per-case overhead of `harness run` over bare `docker run`, same image, same cases, one run.

    .venv/bin/python benchmarks/runner_overhead.py [--scale mini|full] [--data-root R] [--cases 4]
                                                   [--image aeval-example/threshold:latest]

Peer: what a participant does by hand with Grand-Challenge's template script: inputs already staged
as .mha + inputs.json, then `docker run --rm --network none -v IN:/input:ro -v OUT:/output IMAGE`
per case (the docker CLI). The harness does more per case (stages the input, applies the whole
sandbox, meters memory, validates and keeps the output, scores it in a worker process while the next
container runs, writes results atomically); what it adds beyond the containers' own time is the
overhead. Target: <= 1 s per case at full scale (issue 12), <= 0.5 s on the miniature benchmark.

Then the harness's per-case phases, each timed on its own on the very same cases and the bare run's
outputs (in series, as if nothing overlapped; in a run, staging and scoring overlap the containers):
staging, collection, validation, mapping, scoring, results write.

`--scale mini` (default) synthesizes the miniature benchmark in a scratch folder. `--scale full`
uses the full-size synthetic benchmark: `--data-root R` as written by
`harness data synth --scale full --cases N --out R` (manifests in R/manifests), or, without
--data-root, written here by `harness.data.synth.synthesize(..., scale="full", cases=N)`.
"""

from __future__ import annotations

import argparse
import inspect
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from metrics import score_case  # noqa: E402

from harness.data.synth import synthesize  # noqa: E402
from harness.imageio import Geometry, label_array, read_image  # noqa: E402
from harness.labelmap import build_mapping  # noqa: E402
from harness.manifest import case_file, load_benchmark  # noqa: E402
from harness.scoring.outputs import prediction_in_benchmark_ids, read_prediction  # noqa: E402
from harness.results import ResultsStore, ok_record  # noqa: E402
from harness.runner import engine  # noqa: E402
from harness.gc_interface import DEFAULT_OUTPUT_RELATIVE_PATH  # noqa: E402
from harness.runner.images import (LABEL_OUTPUT_PATH, declared_label_map,  # noqa: E402
                                   inspect_image)
from harness.runner.protocols.gc import collect_output, stage_case  # noqa: E402
from harness.scoring.case import ScoreSettings  # noqa: E402
from harness.taxonomy import load_taxonomy  # noqa: E402

DATASETS = ["btcv", "word", "amos_mr"]
PHASES = ["staging", "collection", "validation", "mapping", "scoring", "results write"]


def prepare_data(args, scratch: Path) -> tuple[Path, str]:
    """(data root, benchmark) of the chosen scale."""
    if args.data_root:
        root = args.data_root.resolve()
        return root, str(root / "manifests") if (root / "manifests").is_dir() else "synthetic"
    if args.scale == "mini":
        synthesize(scratch / "data", keys=DATASETS)
        return scratch / "data", "synthetic"
    if "scale" not in inspect.signature(synthesize).parameters:
        raise SystemExit("this checkout's harness.data.synth has no full scale yet: write the full-size benchmark "
                         "with `harness data synth --scale full --cases N --out R` and pass --data-root R")
    synthesize(scratch / "data", keys=DATASETS, scale="full", cases=args.cases)
    return scratch / "data", str(scratch / "data" / "manifests")


def selected_cases(benchmark: str, cases: int):
    return [(manifest, case) for manifest in load_benchmark(benchmark, keys=DATASETS) for case in manifest.cases[:cases]]


BENCH_LABEL = f"org.a-eval.benchmark-run={uuid.uuid4().hex[:12]}"


def gaps_between_containers(label: str, since: float, until: float) -> list[float]:
    """Seconds from each container's exit ('die') to the next one's 'start' (engine events of `label`)."""
    client = engine.connect()
    events = client.events(since=int(since), until=int(until) + 1, decode=True,
                           filters={"type": "container", "event": ["start", "die"], "label": [label]})
    moments = [(e["status"], e["timeNano"] / 1e9) for e in events]
    return [t2 - t1 for (s1, t1), (s2, t2) in zip(moments, moments[1:]) if s1 == "die" and s2 == "start"]


def bare_docker(image: str, root: Path, selected, scratch: Path) -> tuple[float, list]:
    staged = [(manifest, case, stage_case(image_path=case_file(root, case.image), socket=manifest.input_socket,
                                          scratch=Path(tempfile.mkdtemp(dir=scratch))))
              for manifest, case in selected]
    started = time.perf_counter()
    for _, _, job in staged:
        subprocess.run(["docker", "run", "--rm", "--network", "none", "--label", BENCH_LABEL,
                        "-v", f"{job.input_dir}:/input:ro",
                        "-v", f"{job.output_dir}:/output", image], check=True, capture_output=True)
    return time.perf_counter() - started, staged


def harness_run(image: str, root: Path, benchmark: str, cases: int, out: Path) -> tuple[float, int]:
    """(seconds, the harness process's pid: its containers carry it as a label)."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", "--image", image, "--benchmark", benchmark,
                                "--data-root", str(root), "--out", str(out), "--datasets", ",".join(DATASETS),
                                "--cases", str(cases), "--no-progress", "-q", "--memory", "4g"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output, _ = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"harness run failed ({process.returncode}):\n{output}")
    return time.perf_counter() - started, process.pid


def phases(image: str, root: Path, staged, scratch: Path, out: Path) -> dict[str, list[float]]:
    """Each harness phase of each case, timed alone, on the bare run's outputs."""
    client = engine.connect()
    info = inspect_image(client, image)
    relative = info.labels.get(LABEL_OUTPUT_PATH, DEFAULT_OUTPUT_RELATIVE_PATH).strip("/")
    pred_mapping = build_mapping(declared_label_map(client, info))
    taxonomy, settings = load_taxonomy(), ScoreSettings()
    manifests = [m for m, _, _ in staged]
    store = ResultsStore.open(out / "results.json", benchmark="bench", settings=settings.to_document(),
                              organs=list(taxonomy.organ_names), manifests=list({m.key: m for m in manifests}.values()))
    times: dict[str, list[float]] = {phase: [] for phase in PHASES}

    def timed(phase: str, fn):
        started = time.perf_counter()
        value = fn()
        times[phase].append(time.perf_counter() - started)
        return value

    for manifest, case, job in staged:
        timed("staging", lambda: stage_case(image_path=case_file(root, case.image), socket=manifest.input_socket,
                                            scratch=Path(tempfile.mkdtemp(dir=scratch))))
        kept = timed("collection", lambda: collect_output(job, relative_path=relative, case_id=case.case_id,
                                                          max_bytes=2 * 1024**3, keep_as=scratch / "kept" / case.case_id))

        def validate():
            gt_image = read_image(case_file(root, case.label), case_id=case.case_id, role="ground truth",
                                  kind="unreadable_ground_truth")
            prediction = read_prediction(kept, case_id=case.case_id, reference=Geometry.of(gt_image), gc_output=True)
            return gt_image, prediction

        gt_image, prediction = timed("validation", validate)
        gt, pred = timed("mapping", lambda: (
            manifest.gt_mapping.apply(label_array(gt_image), case_id=case.case_id, source="ground truth"),
            prediction_in_benchmark_ids(prediction, pred_mapping, case_id=case.case_id, path=kept)))
        geometry = Geometry.of(gt_image)
        scores = timed("scoring", lambda: score_case(gt, pred, spacing_mm=geometry.spacing_array,
                                                     organs=taxonomy.metric_specs(), si_axis=geometry.si_array_axis(),
                                                     empty_policy=settings.empty_policy, metrics=settings.metrics))
        timed("results write", lambda: store.add(manifest.key, ok_record(case.case_id, scores)))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="aeval-example/threshold:latest")
    parser.add_argument("--scale", choices=["mini", "full"], default="mini")
    parser.add_argument("--data-root", type=Path, default=None, help="an existing data root (full: R/manifests)")
    parser.add_argument("--cases", type=int, default=4, help="cases per test set (3 test sets)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aeval-bench-") as scratch_name:
        scratch = Path(scratch_name)
        root, benchmark = prepare_data(args, scratch)
        selected = selected_cases(benchmark, args.cases)
        subprocess.run(["docker", "run", "--rm", "--network", "none", args.image, "true"], capture_output=True)  # warm
        t0 = time.time()
        bare_s, staged = bare_docker(args.image, root, selected, scratch)
        t1 = time.time()
        harness_s, harness_pid = harness_run(args.image, root, benchmark, args.cases, scratch / "out")
        t2 = time.time()
        bare_gaps, harness_gaps = (gaps_between_containers(BENCH_LABEL, t0, t1),
                                   gaps_between_containers(f"{engine.OWNER_PID_LABEL}={harness_pid}", t1, t2))
        phase_s = phases(args.image, root, staged, scratch, scratch / "phases")
        shutil.rmtree(scratch / "out", ignore_errors=True)
    n = len(selected)
    per_bare, per_harness = bare_s / n, harness_s / n
    target = 1.0 if args.scale == "full" else 0.5
    print(f"scale {args.scale}, benchmark {benchmark}: {n} cases ({', '.join(DATASETS)}, {args.cases} each), "
          f"image {args.image}")
    print(f"bare docker run : {bare_s:7.2f} s total, {per_bare:6.3f} s per case")
    print(f"harness run     : {harness_s:7.2f} s total, {per_harness:6.3f} s per case "
          "(staging, sandbox, metering, validation, scoring, results; CLI start-up included)")
    print(f"overhead        : {per_harness - per_bare:+6.3f} s per case  (ratio harness/bare {per_harness / per_bare:.2f}x); "
          f"target <= {target} s per case: {'met' if per_harness - per_bare <= target else 'NOT met'}")
    if bare_gaps and harness_gaps:
        print(f"exit -> next start: bare {statistics.fmean(bare_gaps):.3f} s, harness "
              f"{statistics.fmean(harness_gaps):.3f} s (mean over {len(harness_gaps)} gaps; engine events)")
    print("harness phases per case, each timed alone (in a run, staging and scoring overlap the containers):")
    for phase in PHASES:
        values = phase_s[phase]
        print(f"  {phase:<14}: mean {statistics.fmean(values):6.3f} s, max {max(values):6.3f} s")
    print(f"  {'sum':<14}: mean {sum(statistics.fmean(v) for v in phase_s.values()):6.3f} s")


if __name__ == "__main__":
    main()
