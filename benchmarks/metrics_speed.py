"""Speed and memory of metrics.score_case against DeepMind's surface-distance, used organ by organ.

Builds a CT-like case (array order z, y, x = 300 x 512 x 512; spacing 0.8 x 0.8 x 2.5 mm in x, y, z,
i.e. (2.5, 0.8, 0.8) in array order) with the ten A-Eval organs as plausible smooth blobs (liver
large, adrenals small, esophagus a tube) and a prediction that perturbs each organ (shifted,
grown/shrunk, reshaped, one small false-positive island). Then:

1. times this package's ``score_case`` for Dice + NSD of the ten organs (best of several runs)
   and the peer as the original benchmark used it (per organ: full-volume binary masks,
   ``compute_surface_distances`` then ``compute_surface_dice_at_tolerance``, plus a Dice), and
   prints both times, their ratio and the largest absolute difference in Dice/NSD values;
2. adds two stray voxels of one organ in opposite corners of the prediction and measures time and
   peak memory (growth of the resident-set high-water mark, in a fresh subprocess that only
   loads the two volumes and scores) of this package, and of the peer unless
   ``--skip-peer-stray``;
3. the poor prediction (``--poor``, or ``--poor-only`` for this part alone): what a threshold
   segmentation writes on a noisy CT, a speckle of every organ label scattered across the volume
   (mean Dice ~3 %). Times all four metrics (Dice, NSD, HD95, ASSD) and Dice + NSD alone of this
   package, and the peer organ by organ in the same run, with both figures, the ratio and the
   largest difference of values.

Usage: ``.venv/bin/python benchmarks/metrics_speed.py [--skip-peer-stray] [--repeats N] [--poor | --poor-only]``.
Needs the ``surface-distance`` package (test extra) for the peer.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from metrics import OrganSpec, score_case  # noqa: E402

SHAPE_ZYX = (300, 512, 512)
SPACING_ZYX_MM = (2.5, 0.8, 0.8)  # array order; SimpleITK (x, y, z) spacing is (0.8, 0.8, 2.5)
SI_AXIS = 0
STRAY_LABEL = 1  # spleen

# Hard-coded copy of the A-Eval taxonomy (the harness reads ground_truth_manifests/taxonomy.json):
# id, name, NSD tolerance in mm; the esophagus is scored on the ground truth's slab of slices.
ORGANS = (
    OrganSpec(1, "spleen", 3.0),
    OrganSpec(2, "kidney_right", 3.0),
    OrganSpec(3, "kidney_left", 3.0),
    OrganSpec(4, "gallbladder", 2.0),
    OrganSpec(5, "liver", 5.0),
    OrganSpec(6, "stomach", 5.0),
    OrganSpec(7, "pancreas", 5.0),
    OrganSpec(8, "adrenal_gland_right", 2.0),
    OrganSpec(9, "adrenal_gland_left", 2.0),
    OrganSpec(10, "esophagus", 3.0, restrict_to_gt_extent=True),
)


@dataclass(frozen=True)
class Lobe:
    """An ellipsoid with a smooth wavy boundary, in mm (array order z, y, x)."""

    center: tuple[float, float, float]
    radii: tuple[float, float, float]
    wobble: float = 0.08  # relative amplitude of the boundary perturbation
    phase: float = 0.0


# Organ anatomy in mm (array order z, y, x); volume extent is 750 x 409.6 x 409.6 mm.
ANATOMY: dict[int, tuple[Lobe, ...]] = {
    5: (Lobe((380, 190, 130), (75, 80, 95), phase=0.3), Lobe((365, 170, 200), (50, 50, 60), phase=1.1)),
    1: (Lobe((395, 255, 305), (50, 40, 30), phase=2.0),),
    2: (Lobe((300, 275, 125), (55, 30, 28), phase=0.7),),
    3: (Lobe((310, 275, 290), (55, 30, 28), phase=1.7),),
    4: (Lobe((320, 140, 165), (35, 16, 16), phase=2.5),),
    6: (Lobe((410, 165, 270), (60, 45, 45), phase=0.2), Lobe((370, 150, 300), (35, 35, 40), phase=0.9)),
    7: tuple(
        Lobe((330 + 4 * k, 222 + 2 * k, 170 + 24 * k), (13, 12, 20), wobble=0.12, phase=0.4 * k) for k in range(6)
    ),
    8: (Lobe((372, 262, 158), (20, 10, 6), wobble=0.15, phase=1.3),),
    9: (Lobe((378, 262, 262), (20, 10, 6), wobble=0.15, phase=2.9),),
}


def _lobe_mask(lobe: Lobe, shift_mm: np.ndarray, scale: float, phase_jitter: float) -> tuple[tuple[slice, ...], np.ndarray]:
    spacing = np.array(SPACING_ZYX_MM)
    center = np.array(lobe.center) + shift_mm
    radii = np.array(lobe.radii) * scale
    reach = radii * (1 + lobe.wobble) + spacing
    lo = np.maximum(np.floor((center - reach) / spacing).astype(int), 0)
    hi = np.minimum(np.ceil((center + reach) / spacing).astype(int) + 1, SHAPE_ZYX)
    z, y, x = (np.arange(a, b) * s - c for a, b, s, c in zip(lo, hi, spacing, center))
    z, y, x = z[:, None, None], y[None, :, None], x[None, None, :]
    phase = lobe.phase + phase_jitter
    wave = 1 + lobe.wobble * (np.sin(z / 23 + phase) * np.cos(y / 17 - phase) + np.sin(x / 19 + 2 * phase))
    inside = (z / radii[0]) ** 2 + (y / radii[1]) ** 2 + (x / radii[2]) ** 2 < (wave / 1.2) ** 2
    return tuple(slice(a, b) for a, b in zip(lo, hi)), inside


def _paint_tube(volume: np.ndarray, label: int, *, shift_mm: np.ndarray, radius_mm: float) -> None:
    """Esophagus: a tube along z from the stomach's top up to z = 700 mm, gently curving."""
    spacing = np.array(SPACING_ZYX_MM)
    for zi in range(int(440 / spacing[0]), int(700 / spacing[0])):
        z = zi * spacing[0] + shift_mm[0]
        cy = 230 + 10 * np.sin(z / 60) + shift_mm[1]
        cx = 215 + 12 * np.cos(z / 80) + shift_mm[2]
        y0, y1 = int((cy - radius_mm) / spacing[1]) - 1, int((cy + radius_mm) / spacing[1]) + 2
        x0, x1 = int((cx - radius_mm) / spacing[2]) - 1, int((cx + radius_mm) / spacing[2]) + 2
        y = np.arange(y0, y1)[:, None] * spacing[1] - cy
        x = np.arange(x0, x1)[None, :] * spacing[2] - cx
        disc = y**2 + x**2 < radius_mm**2
        volume[zi, y0:y1, x0:x1][disc] = label


def build_case(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth and a perturbed prediction, uint8 label volumes of shape SHAPE_ZYX."""
    rng = np.random.default_rng(seed)
    gt = np.zeros(SHAPE_ZYX, dtype=np.uint8)
    pred = np.zeros(SHAPE_ZYX, dtype=np.uint8)
    for label, lobes in ANATOMY.items():
        shift = rng.uniform(-3, 3, 3) * np.array([1.0, 1.0, 1.0])
        scale = rng.uniform(0.94, 1.06)
        jitter = rng.uniform(-0.3, 0.3)
        for lobe in lobes:
            where, inside = _lobe_mask(lobe, np.zeros(3), 1.0, 0.0)
            gt[where][inside] = label
            where, inside = _lobe_mask(lobe, shift, scale, jitter)
            pred[where][inside] = label
    _paint_tube(gt, 10, shift_mm=np.zeros(3), radius_mm=8.0)
    # predicted esophagus: shifted, thinner, and starting/ending at other slices than the GT
    _paint_tube(pred, 10, shift_mm=np.array([-12.0, 1.5, -1.0]), radius_mm=7.0)
    # a small false-positive liver island
    where, inside = _lobe_mask(Lobe((250, 200, 90), (8, 8, 8)), np.zeros(3), 1.0, 0.0)
    pred[where][inside] = 5
    return gt, pred


#: Poor prediction: HU of each organ (the synthetic benchmark's appearance) plus Gaussian noise of this
#: standard deviation, then thresholded at +-BAND_HU around each organ's value, as a naive threshold
#: algorithm does. 70 HU gives a speckle of every label over the whole volume and a mean Dice ~3 %.
POOR_NOISE_HU = 70.0
BAND_HU = 4.0
BACKGROUND_HU = -80.0


def build_poor_prediction(gt: np.ndarray, seed: int = 1) -> np.ndarray:
    """A threshold segmentation of a noisy CT made from ``gt``: label speckle everywhere (uint8)."""
    from harness.data.synth import appearance

    organs_hu = appearance()["CT"]["organs"]
    lut = np.full(256, BACKGROUND_HU, dtype=np.float32)
    for organ in ORGANS:
        lut[organ.label] = organs_hu[organ.name]
    rng = np.random.default_rng(seed)
    image = lut[gt]
    image += rng.normal(0.0, POOR_NOISE_HU, size=gt.shape).astype(np.float32)
    pred = np.zeros(gt.shape, dtype=np.uint8)
    for organ in ORGANS:
        value = organs_hu[organ.name]
        pred[(image >= value - BAND_HU) & (image <= value + BAND_HU)] = organ.label
    return pred


ALL_METRICS = ("dice", "nsd", "hd95", "assd")


def _peer_surfaces(gt: np.ndarray, pred: np.ndarray):
    """surface-distance's surfaces per organ: (organ, gt mask, pred mask, surface distances); the esophagus
    on the ground truth's slab of slices (both ends included), as ours."""
    import surface_distance

    for organ in ORGANS:
        g, p = gt, pred
        if organ.restrict_to_gt_extent:
            zs = np.flatnonzero((gt == organ.label).any(axis=(1, 2)))
            if zs.size:
                g, p = gt[zs[0] : zs[-1] + 1], pred[zs[0] : zs[-1] + 1]
        gm, pm = g == organ.label, p == organ.label
        yield organ, gm, pm, surface_distance.compute_surface_distances(gm, pm, SPACING_ZYX_MM)


def peer_all(gt: np.ndarray, pred: np.ndarray) -> dict[str, dict[str, float]]:
    """surface-distance organ by organ (full-volume masks), all four metrics; esophagus on its GT slab."""
    import surface_distance

    out = {}
    for organ, gm, pm, sd in _peer_surfaces(gt, pred):
        d_g, d_p = sd["distances_gt_to_pred"], sd["distances_pred_to_gt"]
        a_g, a_p = sd["surfel_areas_gt"], sd["surfel_areas_pred"]
        out[organ.name] = {
            "dice": float(surface_distance.compute_dice_coefficient(gm, pm)),
            "nsd": float(surface_distance.compute_surface_dice_at_tolerance(sd, organ.tolerance_mm)),
            "hd95": float(surface_distance.compute_robust_hausdorff(sd, 95)),
            "assd": float((d_g @ a_g + d_p @ a_p) / (a_g.sum() + a_p.sum())),
        }
    return out


def poor_case(repeats: int) -> None:
    """Part 3: the speckled prediction, ours (all four; Dice + NSD) against the peer in the same run."""
    gt, _ = build_case()
    start = time.perf_counter()
    pred = build_poor_prediction(gt)
    print(f"\n[poor case] threshold speckle (noise {POOR_NOISE_HU:g} HU, bands +-{BAND_HU:g} HU), built in "
          f"{time.perf_counter() - start:.1f} s; {np.count_nonzero(pred) / pred.size:.1%} of voxels labelled")
    timings: dict[tuple[str, ...], tuple[float, float]] = {}
    results = {}
    for metrics in (("dice", "nsd"), ALL_METRICS):
        best = None
        for _ in range(max(repeats, 1)):
            begin, cpu = time.perf_counter(), time.process_time()
            results[metrics] = score_case(gt, pred, spacing_mm=SPACING_ZYX_MM, organs=ORGANS, si_axis=SI_AXIS,
                                          metrics=metrics)
            wall, cpu = time.perf_counter() - begin, time.process_time() - cpu
            best = (wall, cpu) if best is None or wall < best[0] else best
        timings[metrics] = best
    begin, cpu = time.perf_counter(), time.process_time()
    theirs = peer_all(gt, pred)
    peer_wall, peer_cpu = time.perf_counter() - begin, time.process_time() - cpu
    mine = results[ALL_METRICS]
    worst, where = 0.0, ""
    for organ in ORGANS:
        for metric in ALL_METRICS:
            diff = abs(mine[organ.name][metric] - theirs[organ.name][metric])
            if diff >= worst:
                worst, where = diff, f"{organ.name}.{metric}"
    dice_nsd_diff = max(abs(results[("dice", "nsd")][o.name][m] - theirs[o.name][m]) for o in ORGANS for m in ("dice", "nsd"))
    load = os.getloadavg()[0]
    print(f"  machine load average now {load:.1f} on {os.cpu_count()} cores (wall times grow with it; CPU times less)")
    wall4, cpu4 = timings[ALL_METRICS]
    wall2, cpu2 = timings[("dice", "nsd")]
    print(f"  ours, Dice+NSD+HD95+ASSD: {wall4:.2f} s wall, {cpu4:.2f} s CPU (best of {max(repeats, 1)})")
    print(f"  ours, Dice+NSD          : {wall2:.2f} s wall, {cpu2:.2f} s CPU (best of {max(repeats, 1)})")
    print(f"  peer, all four, organ by organ: {peer_wall:.2f} s wall, {peer_cpu:.2f} s CPU")
    print(f"  speed-up (all four): {peer_wall / wall4:.1f}x wall, {peer_cpu / cpu4:.1f}x CPU")
    print(f"  largest |difference| all four: {worst:.3g} ({where}); Dice+NSD run: {dice_nsd_diff:.3g}")
    for organ in ORGANS:
        m, t = mine[organ.name], theirs[organ.name]
        print(f"    {organ.name:20s} dice {m['dice']:.4f}/{t['dice']:.4f} nsd {m['nsd']:.4f}/{t['nsd']:.4f} "
              f"hd95 {m['hd95']:.3f}/{t['hd95']:.3f} assd {m['assd']:.3f}/{t['assd']:.3f}")
    print(f"  mean Dice {np.mean([m['dice'] for m in mine.values()]):.3f}")


def add_stray_voxels(pred: np.ndarray) -> np.ndarray:
    """Copy of ``pred`` with one voxel of STRAY_LABEL in each of two opposite corners."""
    out = pred.copy()
    out[(0,) * out.ndim] = STRAY_LABEL
    out[tuple(n - 1 for n in out.shape)] = STRAY_LABEL
    return out


def ours(gt: np.ndarray, pred: np.ndarray) -> dict[str, dict[str, float]]:
    """This package: Dice + NSD of the ten organs in one call."""
    return score_case(gt, pred, spacing_mm=SPACING_ZYX_MM, organs=ORGANS, si_axis=SI_AXIS, metrics=("dice", "nsd"))


def peer(gt: np.ndarray, pred: np.ndarray) -> dict[str, dict[str, float]]:
    """surface-distance organ by organ on full-volume masks, as the original benchmark did.

    The esophagus is cropped to the ground truth's slab of slices (both ends included), the
    same definition as ours, so that values are comparable.
    """
    import surface_distance

    out = {}
    for organ, gm, pm, sd in _peer_surfaces(gt, pred):
        out[organ.name] = {
            "dice": float(surface_distance.compute_dice_coefficient(gm, pm)),
            "nsd": float(surface_distance.compute_surface_dice_at_tolerance(sd, organ.tolerance_mm)),
        }
    return out


def _memory_kib(field: str) -> int | None:
    """A VmRSS/VmHWM value of this process from /proc (Linux), in KiB."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _child(which: str, gt_path: str, pred_path: str) -> None:
    """Subprocess body: load volumes, then score once; print time and peak memory growth.

    Peak growth is the resident-set high-water mark during scoring minus the resident set before
    it (the loaded volumes). ru_maxrss cannot be used as is: Linux carries the parent's peak
    over fork+exec. Resetting the high-water mark via /proc/self/clear_refs gives a clean start;
    where /proc is missing, the ru_maxrss delta is reported instead.
    """
    import resource

    gt, pred = np.load(gt_path), np.load(pred_path)
    func = {"ours": ours, "peer": peer}[which]
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # reset the peak resident set (VmHWM) to the current one
        before = _memory_kib("VmRSS")
    except OSError:
        before = None
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start, cpu_start = time.perf_counter(), time.process_time()
    result = func(gt, pred)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    peak = _memory_kib("VmHWM") if before is not None else None
    if before is not None and peak is not None:
        growth_kib, how = peak - before, "VmHWM - VmRSS"
    else:
        growth_kib, how = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - maxrss_before, "ru_maxrss delta"
    print(json.dumps({
        "seconds": seconds, "cpu_seconds": cpu_seconds, "peak_growth_mib": growth_kib / 1024, "how": how, "result": result,
    }))


def _in_subprocess(which: str, gt: np.ndarray, pred: np.ndarray) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        gt_path, pred_path = os.path.join(tmp, "gt.npy"), os.path.join(tmp, "pred.npy")
        np.save(gt_path, gt)
        np.save(pred_path, pred)
        done = subprocess.run(
            [sys.executable, __file__, "--child", which, gt_path, pred_path],
            check=True, capture_output=True, text=True,
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _max_difference(a: dict, b: dict) -> tuple[float, str]:
    worst, where = 0.0, ""
    for organ, values in a.items():
        for metric in ("dice", "nsd"):
            diff = abs(values[metric] - b[organ][metric])
            if diff >= worst:
                worst, where = diff, f"{organ}.{metric}"
    return worst, where


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-peer-stray", action="store_true", help="do not run the (slow, ~5 GB) peer on the stray-voxel case")
    parser.add_argument("--repeats", type=int, default=5, help="runs of ours on the normal case (best is reported)")
    parser.add_argument("--poor", action="store_true", help="also time the poor (speckled) prediction (part 3)")
    parser.add_argument("--poor-only", action="store_true", help="only part 3, the poor prediction")
    parser.add_argument("--poor-repeats", type=int, default=1, help="runs of ours on the poor case (best is reported)")
    parser.add_argument("--child", nargs=3, metavar=("WHICH", "GT", "PRED"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(*args.child)
        return 0
    if args.poor_only:
        poor_case(args.poor_repeats)
        return 0

    start = time.perf_counter()
    gt, pred = build_case()
    print(f"case: shape {gt.shape} (z, y, x), spacing {SPACING_ZYX_MM} mm (array order), built in {time.perf_counter() - start:.1f} s")
    for organ in ORGANS:
        print(f"  {organ.name:20s} gt {int(np.count_nonzero(gt == organ.label)):8d} voxels, pred {int(np.count_nonzero(pred == organ.label)):8d}")

    times, cpu_times = [], []
    for _ in range(max(args.repeats, 1)):
        start, cpu_start = time.perf_counter(), time.process_time()
        mine = ours(gt, pred)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    start, cpu_start = time.perf_counter(), time.process_time()
    theirs = peer(gt, pred)
    peer_seconds, peer_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    worst, where = _max_difference(mine, theirs)
    ours_seconds = min(times)
    print(f"\n[normal case] Dice + NSD, ten organs (machine load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    print(
        f"  ours : {ours_seconds:.3f} s wall, {min(cpu_times):.3f} s CPU (best of {len(times)}; "
        f"wall of all runs: {', '.join(f'{t:.3f}' for t in times)})"
    )
    print(f"  peer : {peer_seconds:.3f} s wall, {peer_cpu:.3f} s CPU")
    print(f"  speed-up: {peer_seconds / ours_seconds:.1f}x wall, {peer_cpu / min(cpu_times):.1f}x CPU")
    print(f"  largest |difference|: {worst:.3g} ({where})")
    for organ in ORGANS:
        m, t = mine[organ.name], theirs[organ.name]
        print(f"    {organ.name:20s} dice {m['dice']:.6f} / {t['dice']:.6f}   nsd {m['nsd']:.6f} / {t['nsd']:.6f}")

    stray = add_stray_voxels(pred)
    print(f"\n[stray case] + 2 voxels of label {STRAY_LABEL} at {(0,) * 3} and {tuple(n - 1 for n in SHAPE_ZYX)}; fresh subprocess each")
    ours_stray = _in_subprocess("ours", gt, stray)
    print(f"  ours : {ours_stray['seconds']:.3f} s wall, {ours_stray['cpu_seconds']:.3f} s CPU, peak memory growth {ours_stray['peak_growth_mib']:.0f} MiB ({ours_stray['how']})")
    if args.skip_peer_stray:
        print("  peer : skipped (--skip-peer-stray)")
    else:
        peer_stray = _in_subprocess("peer", gt, stray)
        worst, where = _max_difference(ours_stray["result"], peer_stray["result"])
        print(f"  peer : {peer_stray['seconds']:.3f} s wall, {peer_stray['cpu_seconds']:.3f} s CPU, peak memory growth {peer_stray['peak_growth_mib']:.0f} MiB ({peer_stray['how']})")
        print(f"  largest |difference|: {worst:.3g} ({where})")
    if args.poor:
        poor_case(args.poor_repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
