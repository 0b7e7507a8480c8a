"""Container entry point: ``python -m stunet.predict`` (Grand-Challenge) or ``sh predict.sh`` (FLARE).

Only parses, loads the network once and loops over the protocol's jobs. Labels are
the network's native ids (alphabetical TotalSegmentator v1 order, see the label
map at ``/opt/app/label_map.json``); mapping them to the benchmark taxonomy is the
harness's job.

Exit status: 0 all cases written, 1 a case or the setup failed (the last stderr
line says why), 2 bad flags.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import SimpleITK as sitk

from .checkpoint import find_checkpoint, load_stunet, random_stunet
from .config import PROTOCOLS, RunConfig, resolve
from .errors import CheckpointError, InputError, StunetError
from .inference import segment_image
from .model import STUNet
from .protocols import Job, flare_jobs, gc_jobs

log = logging.getLogger("stunet")
RANDOM_WEIGHTS_SEED = 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stunet-predict",
        description="Segment abdominal CT with STU-Net (TotalSegmentator v1 label ids). "
        "Every flag can also be set by the environment variable named in its help.",
    )
    parser.add_argument("--protocol", choices=PROTOCOLS, help="AEVAL_PROTOCOL (default: gc if inputs.json exists)")
    parser.add_argument("--input-dir", help="AEVAL_INPUT_DIR (default /input or /workspace/inputs)")
    parser.add_argument("--output-dir", help="AEVAL_OUTPUT_DIR (default /output or /workspace/outputs)")
    parser.add_argument("--output-relative-path", help="AEVAL_OUTPUT_RELATIVE_PATH (gc only)")
    parser.add_argument("--model-dir", help="STUNET_MODEL_DIR (default /opt/ml/model)")
    parser.add_argument("--checkpoint", help="STUNET_CHECKPOINT: file in the model dir, if it holds several")
    parser.add_argument("--size", help="STUNET_SIZE: require this size (default: read off the weights)")
    parser.add_argument("--patch-size", help="STUNET_PATCH_SIZE: 128 or z,y,x")
    parser.add_argument("--step", help="STUNET_STEP: sliding-window step as a fraction of the patch (0.5)")
    parser.add_argument("--tta", help="STUNET_TTA: 1 for mirror test-time augmentation (default 0)")
    parser.add_argument("--device", help="STUNET_DEVICE: cpu or cuda (default: cuda when available)")
    parser.add_argument("--pipeline", help="STUNET_PIPELINE: nnunet-v1 (default: softmax averaged and resampled) or nnunet-v2 (logits)")
    parser.add_argument("--random-weights", help=argparse.SUPPRESS)
    return parser


def load_network(config: RunConfig) -> STUNet:
    """The checkpoint's network; seeded random ``small`` weights only if asked for and none exists."""
    try:
        path = find_checkpoint(config.model_dir, name=config.checkpoint)
    except CheckpointError:
        if not config.random_weights or config.checkpoint:
            raise
        log.warning("no checkpoint in %s: using RANDOM small weights (STUNET_RANDOM_WEIGHTS=1, tests only)", config.model_dir)
        return random_stunet(size=config.size or "small", seed=RANDOM_WEIGHTS_SEED)
    started = time.perf_counter()
    loaded = load_stunet(path, size=config.size)
    log.info(
        "loaded %s (%s format, size %s, %d classes) in %.1f s",
        path, loaded.format, loaded.size or "custom", loaded.model.config.num_classes, time.perf_counter() - started,
    )
    return loaded.model


def jobs_for(config: RunConfig) -> list[Job]:
    if config.protocol == "gc":
        return gc_jobs(input_dir=config.input_dir, output_dir=config.output_dir, output_relative_path=config.output_relative_path)
    return flare_jobs(input_dir=config.input_dir, output_dir=config.output_dir)


def run_job(job: Job, *, model: STUNet, config: RunConfig) -> None:
    """Read, segment, write one case (the output folder is created as needed)."""
    started = time.perf_counter()
    try:
        image = sitk.ReadImage(str(job.input_path))
    except RuntimeError as error:
        raise InputError(f"cannot read {job.input_path}: {str(error).strip().splitlines()[-1]}") from None
    labels = segment_image(image, model=model, settings=config.settings)
    job.output_path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(labels, str(job.output_path), useCompression=True)
    log.info("%s -> %s in %.1f s", job.input_path.name, job.output_path, time.perf_counter() - started)


def run(config: RunConfig) -> int:
    """All jobs of the run; a failed FLARE case does not stop the others."""
    jobs = jobs_for(config)
    model = load_network(config)
    log.info("protocol %s: %d case(s) on %s", config.protocol, len(jobs), config.settings.resolve_device())
    failed = []
    for job in jobs:
        try:
            run_job(job, model=model, config=config)
        except StunetError as error:
            log.error("case %s failed: %s", job.case_id, error)
            failed.append(job.case_id)
    if failed:
        raise StunetError(f"{len(failed)} of {len(jobs)} case(s) failed: {', '.join(failed)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s stunet %(levelname)s %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    try:
        config = resolve(vars(args), os.environ)
        return run(config)
    except StunetError as error:
        print(str(error), file=sys.stderr)
        # Grand-Challenge reports the last stderr line: make it a one-line summary.
        print(f"stunet failed: {str(error).strip().splitlines()[0]}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
