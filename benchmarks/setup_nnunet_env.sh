#!/usr/bin/env bash
# A separate virtual environment with nnU-Net v2, for benchmarks/stunet_vs_nnunet.py only.
#
# nnU-Net is not a dependency of the harness or of the STU-Net container: it is the
# peer the container's predictions are compared with. torch is installed FIRST and
# pinned (2.13.0, the CPU wheel the base image uses), then nnunetv2 with the same
# pin as a constraint, so that pip never swaps torch for a multi-GB CUDA build.
#
# Usage: benchmarks/setup_nnunet_env.sh [VENV_DIR]     (default /work/nnunet-venv)
# Environment: PYTHON (default python3.11), NNUNET_VERSION (default: newest nnunetv2),
#              TORCH_VERSION (default 2.13.0).
set -euo pipefail

VENV="${1:-/work/nnunet-venv}"
PYTHON="${PYTHON:-python3.11}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
NNUNET_SPEC="nnunetv2${NNUNET_VERSION:+==$NNUNET_VERSION}"

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install "torch==${TORCH_VERSION}"
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
echo "torch==${TORCH_VERSION}" >"$constraints"
"$VENV/bin/python" -m pip install -c "$constraints" "$NNUNET_SPEC"
"$VENV/bin/python" -c "import torch, nnunetv2; from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor; print('torch', torch.__version__, 'nnunetv2 ok')"
