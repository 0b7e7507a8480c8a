#!/usr/bin/env bash
# The newcomer's first command: set everything up, generate the embedded synthetic benchmark and run
# the example submission image on all seven (miniature) test sets, in the sandbox, scored.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
.venv/bin/harness data synth --out data/synthetic
.venv/bin/harness run --image aeval-example/threshold:latest --benchmark synthetic --data-root data/synthetic \
    --out out/threshold --memory 2g --time-limit 300
