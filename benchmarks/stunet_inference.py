"""Seconds per case and peak memory of STU-Net inference, per size, on a synthetic abdominal CT.

Why synthetic and random: the figures that matter for sizing a sandbox (time and
memory limits) depend on the volume's shape, the network's size and the device,
not on the weights' values. Each size runs in a fresh process, so its peak
resident memory is its own.

Usage (from the repository root):
    .venv/bin/python benchmarks/stunet_inference.py                 # CPU: small; GPU: all sizes, fp16
    .venv/bin/python benchmarks/stunet_inference.py --sizes small base --shape 256,256,120
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "containers" / "stunet"))


def _triple(text: str, kind: type) -> tuple:
    items = tuple(kind(v) for v in text.split(","))
    if len(items) != 3:
        raise argparse.ArgumentTypeError(f"expected three comma-separated values, got {text!r}")
    return items


def synthetic_ct(*, size_xyz: tuple[int, int, int], spacing_xyz: tuple[float, float, float]):
    """An int16 CT-like volume: air, a body cylinder of soft tissue, an organ-like blob, noise."""
    import numpy as np
    import SimpleITK as sitk

    nx, ny, nz = size_xyz
    rng = np.random.default_rng(0)
    y, x = np.mgrid[-1 : 1 : ny * 1j, -1 : 1 : nx * 1j]
    body = (x / 0.85) ** 2 + (y / 0.65) ** 2 < 1
    organ = ((x - 0.3) / 0.3) ** 2 + ((y + 0.1) / 0.25) ** 2 < 1
    plane = np.where(body, 40, -1000).astype(np.int16)
    plane[organ] = 120
    array = np.broadcast_to(plane, (nz, ny, nx)).copy()
    array += rng.integers(-20, 20, size=array.shape, dtype=np.int16)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing_xyz)
    return image


def run_one(args: argparse.Namespace) -> dict:
    """Worker: build one size with random weights, segment the volume, report time and memory."""
    import torch

    from stunet.inference import InferenceSettings, segment_image
    from stunet.model import build_stunet, init_he_, parameter_count, size_config

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    image = synthetic_ct(size_xyz=args.shape, spacing_xyz=args.spacing)
    torch.manual_seed(0)
    model = init_he_(build_stunet(size_config(args.worker), device=device)).eval()
    settings = InferenceSettings(
        patch_size=(args.patch,) * 3, step_fraction=args.step, mirror_tta=args.tta, device=str(device), mixed_precision=not args.fp32
    )
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    seconds = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        labels = segment_image(image, model=model, settings=settings)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - started)
    record = {
        "size": args.worker,
        "params_m": round(parameter_count(model) / 1e6, 2),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "precision": "fp16 autocast" if device.type == "cuda" and not args.fp32 else "fp32",
        "seconds_per_case": min(seconds),
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "rss_before_inference_gib": rss_before,
        "labels_size": labels.GetSize(),
    }
    if device.type == "cuda":
        record["peak_gpu_allocated_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        record["peak_gpu_reserved_gib"] = torch.cuda.max_memory_reserved(device) / 2**30
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", choices=["small", "base", "large", "huge"], help="default: small on CPU, all on GPU")
    parser.add_argument("--shape", type=lambda t: _triple(t, int), default=(512, 512, 300), help="x,y,z voxels (512,512,300)")
    parser.add_argument("--spacing", type=lambda t: _triple(t, float), default=(0.8, 0.8, 2.5), help="x,y,z mm (0.8,0.8,2.5)")
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--step", type=float, default=0.5)
    parser.add_argument("--tta", action="store_true", help="mirror TTA (8 passes per tile)")
    parser.add_argument("--fp32", action="store_true", help="no autocast on GPU")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(run_one(args)))
        return 0

    import torch

    on_gpu = (args.device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
    sizes = args.sizes or (["small", "base", "large", "huge"] if on_gpu else ["small"])
    passthrough = [
        "--shape", ",".join(map(str, args.shape)), "--spacing", ",".join(map(str, args.spacing)),
        "--patch", str(args.patch), "--step", str(args.step), "--repeats", str(args.repeats),
        *(["--tta"] if args.tta else []), *(["--fp32"] if args.fp32 else []), *(["--device", args.device] if args.device else []),
    ]  # fmt: skip
    print(f"volume {args.shape[0]}x{args.shape[1]}x{args.shape[2]} voxels (x,y,z) at {args.spacing} mm, "
          f"patch {args.patch}^3, step {args.step}, TTA {'on' if args.tta else 'off'}, random weights", flush=True)
    rows = []
    for size in sizes:
        result = subprocess.run([sys.executable, __file__, *passthrough, "--worker", size], capture_output=True, text=True)
        if result.returncode != 0:
            tail = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.returncode}"
            print(f"{size}: failed ({tail})", flush=True)
            continue
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)

    header = f"{'size':<6} {'params':>9} {'device':<28} {'precision':<14} {'s/case':>8} {'peak RSS GiB':>12} {'peak GPU GiB':>12}"
    print("\n" + header + "\n" + "-" * len(header))
    for r in rows:
        gpu = f"{r['peak_gpu_allocated_gib']:.2f}" if "peak_gpu_allocated_gib" in r else "-"
        print(f"{r['size']:<6} {r['params_m']:>8.2f}M {r['device'][:28]:<28} {r['precision']:<14} "
              f"{r['seconds_per_case']:>8.1f} {r['peak_rss_gib']:>12.2f} {gpu:>12}")
    return 0 if len(rows) == len(sizes) else 1


if __name__ == "__main__":
    sys.exit(main())
