#!/usr/bin/env bash
# Set up everything the harness needs, idempotently (fast when already done):
#   a Python venv in .venv with the harness and its test/STU-Net extras,
#   a running Docker engine (installed and started if missing: scripts/ensure_docker.sh),
#   the locally built base images (containers/base/build_bases.sh; no registry needed),
#   the example submission image aeval-example/threshold:latest,
#   the harness byte-compiled, the scoring kernels compiled into numba's cache (python -m metrics.warm_up,
#   beside the Docker steps).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '[setup] %s\n' "$*" >&2; }
PYTHON="${PYTHON:-python3}"

if [ ! -x .venv/bin/python ]; then
    log "creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
# torch is pinned in the [stunet] extra (an unpinned torch pulls a multi-GB CUDA build).
log "installing the harness into .venv"
.venv/bin/pip install --quiet --disable-pip-version-check -e ".[test,stunet]"

# An editable install is not byte-compiled by pip, and where PYTHONDONTWRITEBYTECODE is set (as on CI
# machines) every process would compile the harness's sources again: ~0.2 s per command and worker.
.venv/bin/python -m compileall -q harness metrics >/dev/null
log "compiling the scoring kernels (in the background)"
.venv/bin/python -m metrics.warm_up >&2 &
warm_up=$!

bash scripts/ensure_docker.sh
bash containers/base/build_bases.sh
log "building the example submission image"
.venv/bin/python containers/examples/build.py threshold
wait "$warm_up"
log "ready"
