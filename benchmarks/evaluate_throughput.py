"""Seconds per case of `harness evaluate` on full-size cases, against the floor of decompressing the two files.

    .venv/bin/python benchmarks/evaluate_throughput.py [--data-root R] [--dataset flare22] [--cases 20]
                                                      [--workers N] [--repeats 3] [--profile]

Data: the full-size synthetic benchmark (`harness data synth --scale full`), generated into
``--data-root`` when its manifest lacks cases (reused otherwise). Predictions: a plausible noisy
segmentation per case, written once beside the data as ``.nii.gz`` in benchmark ids: the ground
truth shifted by a voxel or two, with a speckle of wrong labels scattered around each organ (what a
mediocre network writes), so every metric has real work.

Floor (the peer): what any evaluator must pay at least, reading (decompressing) the ground truth and
the prediction of each case with SimpleITK, one case after the other, in a warm process. Ours: the
whole `harness evaluate` command as a user runs it (a fresh process: start-up and imports, manifest,
reading, geometry checks, label mapping, Dice/NSD/HD95/ASSD of ten organs, results JSON/CSV written
atomically after every case), with ``--workers`` scoring processes (default: the harness's own
default, the machine's cores up to 4). Floor and ours are measured ``--repeats`` times, one after
the other (this shared machine's speed drifts by tens of percent); both best times and the ratio of
the best times are printed, with every pair. Target <= 2x. ``--profile`` adds a cProfile of scoring
one case in this process (where the time goes beyond reading).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from harness.data.synth import synthesize  # noqa: E402
from harness.imageio import Geometry, write_image_atomic  # noqa: E402
from harness.manifest import Manifest, load_benchmark, load_manifest_file  # noqa: E402
from harness.scoring.workers import default_workers  # noqa: E402


def ensure_data(root: Path, dataset: str, cases: int) -> Manifest:
    """The full-size set in `root` (generated if needed), timing the generation per case."""
    manifest_path = root / "manifests" / f"{dataset}.json"
    if manifest_path.is_file():
        (manifest,) = load_benchmark(str(root / "manifests"), keys=[dataset])
        if len(manifest.cases) >= cases:
            return manifest
    start = time.perf_counter()
    written = synthesize(root, keys=[dataset], scale="full", cases=cases)
    seconds = time.perf_counter() - start
    if written:
        print(f"generated {len(written) // 2} full-size {dataset} case(s) in {seconds:.1f} s "
              f"({seconds / (len(written) // 2):.1f} s per case, files written)")
    load_manifest_file.cache_clear()  # the manifest file was just rewritten
    (manifest,) = load_benchmark(str(root / "manifests"), keys=[dataset])
    return manifest


def noisy_prediction(gt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Benchmark-id ground truth, shifted by up to two voxels per axis, with wrong-label speckle near organs."""
    pred = np.roll(gt, tuple(int(s) for s in rng.integers(-2, 3, size=gt.ndim)), axis=tuple(range(gt.ndim)))
    organs = np.flatnonzero(np.bincount(gt.ravel(), minlength=11)[1:]) + 1
    for label in organs:
        where = np.argwhere(gt == label)
        lo, hi = where.min(axis=0), where.max(axis=0) + 1
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        flips = rng.random(pred[box].shape) < 0.002
        pred[box][flips] = rng.choice(organs, size=int(flips.sum())).astype(pred.dtype)
    return pred


def ensure_predictions(manifest: Manifest, root: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index, case in enumerate(manifest.cases):
        target = folder / f"{case.case_id}.nii.gz"
        if target.is_file():
            continue
        image = sitk.ReadImage(str(root / case.label))
        gt = manifest.gt_mapping.apply(sitk.GetArrayFromImage(image)).astype(np.uint8)
        write_image_atomic(noisy_prediction(gt, np.random.default_rng(index)), Geometry.of(image), target)


def floor_seconds(cases: list, root: Path, predictions: Path) -> float:
    """Total seconds to decompress the ground truth and the prediction of every case, one after the other."""
    start = time.perf_counter()
    for case in cases:
        sitk.GetArrayViewFromImage(sitk.ReadImage(str(root / case.label)))
        sitk.GetArrayViewFromImage(sitk.ReadImage(str(predictions / f"{case.case_id}.nii.gz")))
    return time.perf_counter() - start


def subset_benchmark(root: Path, dataset: str, cases: int) -> Path:
    """A manifest folder holding the test set's first `cases` cases (what `harness evaluate` then scores)."""
    document = json.loads((root / "manifests" / f"{dataset}.json").read_text())
    document["cases"] = document["cases"][:cases]
    document["expected_case_count"] = cases
    folder = root / f"manifests-first-{cases}"
    folder.mkdir(exist_ok=True)
    (folder / f"{dataset}.json").write_text(json.dumps(document, indent=1))
    return folder


def evaluate_seconds(manifest: Manifest, root: Path, benchmark: Path, predictions: Path, out: Path,
                     workers: int | None) -> float:
    out.unlink(missing_ok=True)
    command = [sys.executable, "-c", "import sys; from harness.cli import main; sys.exit(main(sys.argv[1:]))",
               "evaluate", "--dataset", manifest.key, "--predictions", str(predictions), "--out", str(out),
               "--data-root", str(root), "--benchmark", str(benchmark), "--no-progress", "--quiet"]
    if workers is not None:
        command += ["--workers", str(workers)]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("AEVAL_BENCHMARK", None)  # the data root's own manifests, as a user gets them
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0 and not (done.returncode == 1 and "failed; results in" in done.stdout):
        raise SystemExit(f"harness evaluate failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return seconds


def profile_one(manifest: Manifest, root: Path, predictions: Path) -> str:
    from harness.labelmap import build_mapping, resolve_label_map
    from harness.scoring.case import CaseJob, score_files

    case = manifest.cases[0]
    job = CaseJob(case_id=case.case_id, gt_path=root / case.label, pred_path=predictions / f"{case.case_id}.nii.gz",
                  gt_mapping=manifest.gt_mapping, pred_mapping=build_mapping(resolve_label_map("a-eval")))
    score_files(job)  # a first case loads the compiled kernels from numba's cache: profile a later one
    profiler = cProfile.Profile()
    profiler.enable()
    score_files(job)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(18)
    return text.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=Path(tempfile.gettempdir()) / "aeval-bench-full",
                        help="full-size data root (generated there if missing, reused after; default "
                             "$TMPDIR/aeval-bench-full)")
    parser.add_argument("--dataset", default="flare22", help="test set to evaluate (default flare22: 512x512, 2.5 mm)")
    parser.add_argument("--cases", type=int, default=20, help="cases (default 20)")
    parser.add_argument("--workers", type=int, default=None,
                        help="scoring processes of harness evaluate (default: the harness's default, as a user gets)")
    parser.add_argument("--repeats", type=int, default=3, help="measurements of floor and ours, best taken (default 3)")
    parser.add_argument("--profile", action="store_true", help="also profile scoring one case")
    args = parser.parse_args(argv)

    root = args.data_root.resolve()
    manifest = ensure_data(root, args.dataset, args.cases)
    cases = manifest.cases[: args.cases]
    if len(cases) < args.cases:
        raise SystemExit(f"only {len(cases)} cases in {root}")
    predictions = root / "predictions" / args.dataset
    ensure_predictions(manifest, root, predictions)
    geometry = sitk.ReadImage(str(root / cases[0].label))
    print(f"{args.dataset}: {len(cases)} full-size cases, e.g. {geometry.GetSize()} voxels (x, y, z) at "
          f"{tuple(round(s, 3) for s in geometry.GetSpacing())} mm; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")

    workers = args.workers if args.workers is not None else default_workers()
    benchmark = subset_benchmark(root, args.dataset, len(cases))
    nothing = root / "predictions-none"  # every case missing: the command's own start-up and bookkeeping
    nothing.mkdir(exist_ok=True)
    results = root / "results" / f"{args.dataset}.json"
    floors, ours, idle = [], [], []
    for repeat in range(args.repeats):
        floors.append(floor_seconds(cases, root, predictions) / len(cases))
        ours.append(evaluate_seconds(manifest, root, benchmark, predictions, results, args.workers) / len(cases))
        idle.append(evaluate_seconds(manifest, root, benchmark, nothing, results, args.workers))
        print(f"  run {repeat + 1}: floor {floors[-1]:.3f} s per case, harness evaluate {ours[-1]:.3f} s per case "
              f"({ours[-1] / floors[-1]:.2f}x); with no predictions {idle[-1]:.2f} s in all")
    floor, best, startup = min(floors), min(ours), min(idle)
    print(f"  floor (decompress GT + prediction, SimpleITK, one process): best {floor:.3f} s per case")
    print(f"  harness evaluate, {workers} scoring workers (all four metrics, start-up included): best {best:.3f} s "
          f"per case")
    print(f"  ratio: {best / floor:.2f}x the floor (target <= 2x); median of the runs' ratios "
          f"{float(np.median(np.array(ours) / np.array(floors))):.2f}x")
    beyond = best - startup / len(cases)
    print(f"  of which start-up (the command with every prediction missing): {startup:.2f} s, {startup / len(cases):.3f} "
          f"s per case; the rest {beyond:.3f} s per case = {beyond / floor:.2f}x the floor")
    if args.profile:
        print(profile_one(manifest, root, predictions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
