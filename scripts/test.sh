#!/usr/bin/env bash
# Run the whole test suite (sets up first if needed: venv, Docker engine, base images).
# Container tests run real images on a real engine; GPU tests skip cleanly without a GPU.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
