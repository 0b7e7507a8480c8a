"""This container's STU-Net inference against nnU-Net v2's own predictor: same weights, same volume, one run.

What is compared (each side in a fresh process, so times and peak memory are its own):

- **nnU-Net v2** (``nnUNetPredictor``, installed in its own environment by
  ``benchmarks/setup_nnunet_env.sh``, torch pinned to the container's) with the STU-Net
  TotalSegmentator plan written as a v2 plans dict: 1.5 mm, z-score, 128^3 tiles, step 0.5,
  Gaussian weights, no TTA. The network object is the container's STU-Net class (nnU-Net has
  none), loaded with the ``state_dict`` of the official-format ``.model`` file by nnU-Net's
  own ``load_state_dict`` call. The image is brought to the closest canonical (RAS) orientation
  with nibabel and back, as TotalSegmentator does around nnU-Net.
- **this container** (``stunet.inference.segment_image``, loader ``stunet.checkpoint``), in
  both pipelines: ``nnunet-v2`` (what nnU-Net v2 does: logits) and ``nnunet-v1`` (the default,
  what nnU-Net v1 did with the official checkpoints: softmax).
- **the allocator**: the container run twice, without and with the image's malloc settings
  (the ``MALLOC_*`` variables of ``containers/stunet/Dockerfile``, read from it), with
  user/system CPU time and page faults.

Voxel agreement is printed overall and by nnU-Net's top-2 logit margin at each voxel (the
margin is ``log p1 - log p2`` of its resampled probabilities): random weights give thin margins,
and only where the margin is thin may float rounding legitimately flip a label.

Usage (from the repository root, after ``benchmarks/setup_nnunet_env.sh``):
    .venv/bin/python benchmarks/stunet_vs_nnunet.py                                 # 96x96x40, quick
    .venv/bin/python benchmarks/stunet_vs_nnunet.py --shape 256,256,60               # mid-size
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE_ROOT = REPO_ROOT / "containers" / "stunet"
sys.path.insert(0, str(PACKAGE_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

DEFAULT_NNUNET_PYTHON = "/work/nnunet-venv/bin/python"
DOCKERFILE = PACKAGE_ROOT / "Dockerfile"
#: A rotation that is not the identity: permutes x and y and flips two axes (det +1).
DEFAULT_DIRECTION = (0.0, -1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
MARGIN_BINS = (0.0, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, float("inf"))
ALLOCATOR_VARIABLES = ("LD_PRELOAD", "MALLOC_CONF", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")


def image_malloc_settings() -> dict[str, str]:
    """The ``MALLOC_*_`` variables the image sets (its Dockerfile is the one source of them)."""
    import re

    text = DOCKERFILE.read_text().replace("\\\n", " ")
    settings = dict(re.findall(r"\b(MALLOC_[A-Z_]+_)=(\S+)", " ".join(line for line in text.splitlines() if line.startswith("ENV"))))
    if not settings:
        raise SystemExit(f"no MALLOC_* settings found in {DOCKERFILE}")
    return settings


def _triple(text: str, kind: type) -> tuple:
    items = tuple(kind(v) for v in text.split(","))
    if len(items) != 3:
        raise argparse.ArgumentTypeError(f"expected three comma-separated values, got {text!r}")
    return items


def _usage() -> dict:
    """CPU times, page faults and peak RSS of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "user_s": usage.ru_utime,
        "system_s": usage.ru_stime,
        "minor_faults": usage.ru_minflt,
        "peak_rss_gib": usage.ru_maxrss / 2**20,
    }


# --------------------------------------------------------------------------- inputs


def write_inputs(folder: Path, *, shape, spacing, direction, seed: int) -> tuple[Path, Path]:
    """The CT-like volume (NIfTI) and random STU-Net-small weights in the nnU-Net v1 ``.model`` layout."""
    import numpy as np
    import SimpleITK as sitk
    import torch

    from stunet.checkpoint import random_stunet
    from stunet_inference import synthetic_ct

    image = synthetic_ct(size_xyz=shape, spacing_xyz=spacing)
    image.SetDirection(direction)
    image.SetOrigin((-120.0, 80.0, 400.0))
    image_path = folder / "case_0000.nii.gz"
    sitk.WriteImage(image, str(image_path))
    model = random_stunet(size="small", seed=seed)
    checkpoint = folder / "small_ep4k.model"
    torch.save(
        {
            "epoch": 4000,
            "state_dict": model.state_dict(),
            "optimizer_state_dict": None,
            "lr_scheduler_state_dict": None,
            "plot_stuff": ([np.float32(1.0)], [np.float32(1.0)], [np.float32(1.0)], [np.float64(0.5)]),
            "best_stuff": None,
            "amp_grad_scaler": None,
        },
        checkpoint,
    )
    return image_path, checkpoint


# --------------------------------------------------------------------------- nnU-Net side


def nnunet_plans(*, patch: int, num_classes: int) -> tuple[dict, dict]:
    """The STU-Net TotalSegmentator plan (nnU-Net v1 Task101) as nnU-Net v2 plans and dataset dicts."""
    resampling = {
        "resampling_fn_data": "resample_data_or_seg_to_shape",
        "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
        "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
        "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None},
    }
    plans = {
        "dataset_name": "Dataset101_TotalSegmentator",
        "plans_name": "nnUNetPlansv2.1",
        "original_median_spacing_after_transp": [1.5, 1.5, 1.5],
        "original_median_shape_after_transp": [256, 256, 256],
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {
            "3d_fullres": {
                "data_identifier": "stunet_3d_fullres",
                "preprocessor_name": "DefaultPreprocessor",
                "batch_size": 2,
                "patch_size": [patch] * 3,
                "median_image_size_in_voxels": [256, 256, 256],
                "spacing": [1.5, 1.5, 1.5],
                "normalization_schemes": ["ZScoreNormalization"],
                "use_mask_for_norm": [False],
                "architecture": {
                    "network_class_name": "stunet.model.STUNet",
                    "arch_kwargs": {},
                    "_kw_requires_import": [],
                },
                "batch_dice": True,
                **resampling,
            }
        },
        "experiment_planner_used": "ExperimentPlanner",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {
            "0": {"max": 3000.0, "mean": 0.0, "median": 0.0, "min": -1024.0, "percentile_00_5": -1000.0, "percentile_99_5": 1000.0, "std": 1.0}
        },
    }
    dataset = {
        "channel_names": {"0": "zscore"},
        "labels": {"background": 0, **{f"class_{i:03d}": i for i in range(1, num_classes)}},
        "numTraining": 1,
        "file_ending": ".nii.gz",
    }
    return plans, dataset


def run_nnunet(args: argparse.Namespace) -> dict:
    """Worker (nnU-Net's environment): canonical orientation, nnU-Net v2 preprocessing, prediction, export."""
    import nibabel as nib
    import numpy as np
    import SimpleITK as sitk
    import torch
    from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from stunet.model import build_stunet, size_config

    work = Path(args.work_dir)
    state_dict = torch.load(work / "small_ep4k.model", map_location="cpu", weights_only=False)["state_dict"]
    num_classes = int(state_dict["seg_outputs.4.weight"].shape[0])
    network = build_stunet(size_config("small", num_classes=num_classes))
    plans, dataset = nnunet_plans(patch=args.patch, num_classes=num_classes)
    plans_manager = PlansManager(plans)
    configuration = plans_manager.get_configuration("3d_fullres")
    predictor = nnUNetPredictor(
        tile_step_size=args.step, use_gaussian=True, use_mirroring=False, perform_everything_on_device=False,
        device=torch.device("cpu"), verbose=False, verbose_preprocessing=False, allow_tqdm=False,
    )
    predictor.manual_initialization(network, plans_manager, configuration, [state_dict], dataset, "STUNetTrainer_small", None)

    started = time.perf_counter()
    original = nib.load(str(work / "case_0000.nii.gz"))
    canonical = nib.as_closest_canonical(original)
    canonical_path = work / "canonical_0000.nii.gz"
    nib.save(canonical, str(canonical_path))
    image = sitk.ReadImage(str(canonical_path))  # nnU-Net's SimpleITKIO reads the same way
    data = sitk.GetArrayFromImage(image)[None].astype(np.float32)
    properties = {"spacing": list(reversed(image.GetSpacing()))}
    preprocessor = configuration.preprocessor_class(verbose=False)
    data, _, properties = preprocessor.run_case_npy(data, None, properties, plans_manager, configuration, dataset)
    logits = predictor.predict_logits_from_preprocessed_data(torch.from_numpy(data)).cpu()
    segmentation = convert_predicted_logits_to_segmentation_with_correct_shape(
        logits, plans_manager, configuration, predictor.label_manager, properties
    )
    seconds = time.perf_counter() - started
    usage = _usage()

    # Margins (not timed): the same resampling of the logits, then top-2 per voxel.
    resampled = configuration.resampling_fn_probabilities(
        logits, properties["shape_after_cropping_and_before_resampling"], configuration.spacing, properties["spacing"]
    )
    resampled = torch.from_numpy(np.asarray(resampled))
    margin = np.full(properties["shape_before_cropping"], np.inf, dtype=np.float32)
    box = tuple(slice(lo, hi) for lo, hi in properties["bbox_used_for_cropping"])
    inside = np.empty(resampled.shape[1:], dtype=np.float32)
    for z in range(0, resampled.shape[1], 8):
        top = torch.topk(resampled[:, z : z + 8].float(), k=2, dim=0).values
        inside[z : z + 8] = (top[0] - top[1]).numpy()
    margin[box] = inside

    def back_to_original(array_zyx: np.ndarray) -> np.ndarray:
        """Undo the canonical reorientation (nibabel arrays are x, y, z)."""
        transform = nib.orientations.ornt_transform(
            nib.orientations.io_orientation(canonical.affine), nib.orientations.io_orientation(original.affine)
        )
        return np.ascontiguousarray(nib.orientations.apply_orientation(array_zyx.transpose(2, 1, 0), transform).transpose(2, 1, 0))

    np.save(work / "nnunet_labels.npy", back_to_original(np.asarray(segmentation)).astype(np.uint8))
    np.save(work / "nnunet_margin.npy", back_to_original(margin))
    return {"side": "nnU-Net v2 predictor", "seconds": seconds, "threads": torch.get_num_threads(), **usage}


# --------------------------------------------------------------------------- this container's side


def run_ours(args: argparse.Namespace) -> dict:
    """Worker: this container's loader and inference on the same file."""
    import numpy as np
    import SimpleITK as sitk
    import torch

    from stunet.checkpoint import load_stunet
    from stunet.inference import InferenceSettings, segment_image

    work = Path(args.work_dir)
    model = load_stunet(work / "small_ep4k.model").model
    settings = InferenceSettings(
        patch_size=(args.patch,) * 3, step_fraction=args.step, device="cpu", pipeline=args.pipeline,
    )
    started = time.perf_counter()
    image = sitk.ReadImage(str(work / "case_0000.nii.gz"))
    labels = sitk.GetArrayFromImage(segment_image(image, model=model, settings=settings))
    seconds = time.perf_counter() - started
    np.save(work / f"ours_{args.tag}.npy", labels)
    return {"side": f"container ({args.pipeline})", "seconds": seconds, "threads": torch.get_num_threads(), **_usage()}


# --------------------------------------------------------------------------- driver


def _worker(python: str, args: argparse.Namespace, role: str, env: dict[str, str], extra: list[str]) -> dict:
    command = [
        python, __file__, "--worker", role, "--work-dir", args.work_dir, "--patch", str(args.patch), "--step", str(args.step), *extra,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"{role} worker failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _agreement(ours, reference, margin) -> list[tuple[str, int, float]]:
    import numpy as np

    same = ours == reference
    rows = [("all voxels", int(same.size), float(same.mean()))]
    for lo, hi in zip(MARGIN_BINS[:-1], MARGIN_BINS[1:]):
        mask = (margin >= lo) & (margin < hi)
        if mask.any():
            rows.append((f"margin [{lo}, {hi})", int(mask.sum()), float(same[mask].mean())))
    above = margin > 0.25
    rows.append(("margin > 0.25", int(above.sum()), float(same[above].mean()) if above.any() else float("nan")))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", type=lambda t: _triple(t, int), default=(96, 96, 40), help="x,y,z voxels (96,96,40)")
    parser.add_argument("--spacing", type=lambda t: _triple(t, float), default=(0.8, 0.8, 2.5), help="x,y,z mm (0.8,0.8,2.5)")
    parser.add_argument("--direction", type=lambda t: tuple(float(v) for v in t.split(",")), default=DEFAULT_DIRECTION)
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--step", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nnunet-python", default=DEFAULT_NNUNET_PYTHON, help="python of the nnU-Net v2 environment")
    parser.add_argument("--skip-v1", action="store_true", help="do not run the container's nnunet-v1 pipeline")
    parser.add_argument("--work-dir", help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--pipeline", default="nnunet-v2", help=argparse.SUPPRESS)
    parser.add_argument("--tag", default="run", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        record = run_nnunet(args) if args.worker == "nnunet" else run_ours(args)
        print(json.dumps(record))
        return 0

    import numpy as np

    plain_env = {k: v for k, v in os.environ.items() if k not in ALLOCATOR_VARIABLES}
    plain_env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_ROOT), plain_env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    malloc = image_malloc_settings()
    tuned_env = {**plain_env, **malloc}
    with tempfile.TemporaryDirectory(prefix="stunet_vs_nnunet_") as folder:
        args.work_dir = folder
        write_inputs(Path(folder), shape=args.shape, spacing=args.spacing, direction=args.direction, seed=args.seed)
        print(f"volume {args.shape} voxels (x,y,z) at {args.spacing} mm, direction {args.direction}, "
              f"STU-Net small (random weights, official .model layout), patch {args.patch}^3, step {args.step}, no TTA", flush=True)
        print(f"image malloc settings: {' '.join(f'{k}={v}' for k, v in malloc.items())}", flush=True)
        runs = []
        runs.append(("nnunet", _worker(args.nnunet_python, args, "nnunet", plain_env, [])))
        print(json.dumps(runs[-1][1]), flush=True)
        runs.append(("v2-glibc", _worker(sys.executable, args, "ours", plain_env, ["--pipeline", "nnunet-v2", "--tag", "v2-glibc"])))
        print(json.dumps(runs[-1][1]), flush=True)
        runs.append(("v2-tuned", _worker(sys.executable, args, "ours", tuned_env, ["--pipeline", "nnunet-v2", "--tag", "v2-tuned"])))
        print(json.dumps(runs[-1][1]), flush=True)
        if not args.skip_v1:
            runs.append(("v1-tuned", _worker(sys.executable, args, "ours", tuned_env, ["--pipeline", "nnunet-v1", "--tag", "v1-tuned"])))
            print(json.dumps(runs[-1][1]), flush=True)

        reference = np.load(Path(folder) / "nnunet_labels.npy")
        margin = np.load(Path(folder) / "nnunet_margin.npy")
        print("\nagreement with nnU-Net v2's labels (voxels, fraction equal)")
        for tag, _ in runs[1:]:
            ours = np.load(Path(folder) / f"ours_{tag}.npy")
            if ours.shape != reference.shape:
                raise SystemExit(f"{tag}: shape {ours.shape} differs from nnU-Net's {reference.shape}")
            print(f"  container {tag}:")
            for name, count, fraction in _agreement(ours, reference, margin):
                print(f"    {name:<22} {count:>10} voxels  {100 * fraction:8.3f} %")

    header = f"{'run':<14} {'seconds':>8} {'user s':>8} {'system s':>9} {'system %':>8} {'minor faults':>13} {'peak RSS GiB':>12}"
    print("\n" + header + "\n" + "-" * len(header))
    for tag, r in runs:
        cpu = r["user_s"] + r["system_s"]
        print(f"{tag:<14} {r['seconds']:>8.1f} {r['user_s']:>8.1f} {r['system_s']:>9.1f} {100 * r['system_s'] / cpu:>7.1f}% "
              f"{r['minor_faults']:>13} {r['peak_rss_gib']:>12.2f}")
    by_tag = dict(runs)
    before, after, nnunet = by_tag["v2-glibc"], by_tag["v2-tuned"], by_tag["nnunet"]
    print(f"\nallocator: default glibc -> image settings: {before['seconds']:.1f} s -> {after['seconds']:.1f} s "
          f"(ratio {before['seconds'] / after['seconds']:.2f}), system time {before['system_s']:.1f} s -> {after['system_s']:.1f} s "
          f"(ratio {before['system_s'] / max(after['system_s'], 1e-3):.1f}), page faults {before['minor_faults']} -> {after['minor_faults']}")
    print(f"container (image settings, v2) vs nnU-Net v2: {after['seconds']:.1f} s vs {nnunet['seconds']:.1f} s "
          f"(ratio {nnunet['seconds'] / after['seconds']:.2f}), peak RSS {after['peak_rss_gib']:.2f} vs {nnunet['peak_rss_gib']:.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
