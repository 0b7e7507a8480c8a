#!/usr/bin/env bash
# Run the whole test suite (sets up first if needed: venv, Docker engine, base images).
# Container tests run real images on a real engine; GPU tests skip cleanly without a GPU.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
# The leaderboard report is checked in a real headless browser (Debian's chromium).
if ! command -v chromium >/dev/null 2>&1; then
    echo "[test] installing chromium for the report's browser test" >&2
    if [ "$(id -u)" -eq 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null;
    else sudo -n apt-get update -qq && sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi
fi
exec .venv/bin/python -m pytest "$@"
