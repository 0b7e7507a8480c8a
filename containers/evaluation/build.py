"""Build the evaluation image with any Docker engine (no BuildKit, no registry needed).

    python containers/evaluation/build.py                      # tag aeval/evaluation:latest
    python containers/evaluation/build.py --tag team/eval:1 --base python:3.11-slim-bookworm

This script assembles the build context the Dockerfile needs (pyproject.toml, README.md,
harness/, metrics/, ground_truth_manifests/) in a temporary folder, so the image depends on those
sources only, whatever else lies in the working tree and whichever builder the engine has.
The base image is --base, else $AEVAL_PYTHON_BASE, else aeval/python-sci:bookworm when the local
engine has it (containers/base/build_bases.sh), else the public python:3.11-slim-bookworm.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TAG = "aeval/evaluation:latest"
LOCAL_BASE = "aeval/python-sci:bookworm"
PUBLIC_BASE = "python:3.11-slim-bookworm"
CONTEXT_FILES = ("pyproject.toml", "README.md")
CONTEXT_DIRS = ("harness", "metrics", "ground_truth_manifests")


def base_image(client) -> str:
    import docker.errors

    if os.environ.get("AEVAL_PYTHON_BASE"):
        return os.environ["AEVAL_PYTHON_BASE"]
    try:
        client.images.get(LOCAL_BASE)
        return LOCAL_BASE
    except docker.errors.ImageNotFound:
        return PUBLIC_BASE


def assemble_context(target: Path) -> Path:
    """Copy what the Dockerfile COPYs (and the Dockerfile) into `target`; returns it."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in CONTEXT_FILES:
        shutil.copy2(REPO / name, target / name)
    for name in CONTEXT_DIRS:
        shutil.copytree(REPO / name, target / name, ignore=ignore)
    shutil.copy2(HERE / "Dockerfile", target / "Dockerfile")
    return target


def build(client, *, tag: str = TAG, base: str | None = None) -> str:
    """Build the image; returns its id. Raises RuntimeError with the build log's tail on failure."""
    import docker.errors

    with tempfile.TemporaryDirectory(prefix="aeval-eval-build-") as scratch:
        context = assemble_context(Path(scratch))
        try:
            image, _ = client.images.build(path=str(context), tag=tag, rm=True, network_mode="host",
                                           buildargs={"BASE_IMAGE": base or base_image(client)})
        except docker.errors.BuildError as exc:
            log = "".join(chunk.get("stream", "") + chunk.get("error", "") for chunk in exc.build_log)
            raise RuntimeError(f"building {tag} failed:\n{log[-3000:]}") from None
    return image.id


def main(argv: list[str] | None = None) -> int:
    import docker

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", default=TAG)
    parser.add_argument("--base", default=None, help="base image (default: see the module docstring)")
    args = parser.parse_args(argv)
    client = docker.from_env()
    try:
        image_id = build(client, tag=args.tag, base=args.base)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{args.tag} {image_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
