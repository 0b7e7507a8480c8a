"""Fixtures for tests that run real containers on a real Docker engine.

Without an engine these tests skip with a clear reason on a developer's machine, but FAIL under CI
(CI=true), whose .ci/run installs and starts the engine: a container suite must never pass by
silently skipping.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def docker_client():
    from harness.errors import DockerUnavailable
    from harness.runner.engine import connect

    try:
        return connect()
    except DockerUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide a Docker engine: {exc}")
        pytest.skip(f"no Docker engine: {exc}")


def _load_build_module():
    spec = importlib.util.spec_from_file_location("example_build", REPO / "containers" / "examples" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def example_images(docker_client):
    """Builds (or reuses from the build cache) the example and hostile images once per session."""
    build = _load_build_module()
    build.build_all(docker_client)
    return build


@pytest.fixture
def run_harness(synthetic_root, tmp_path):
    """Run `harness run` in-process on the synthetic benchmark; returns (exit code, results dict, out dir)."""
    import json

    from harness.cli import main

    def _run(*flags: str, datasets: str = "btcv", cases: int = 1, out: Path | None = None):
        out = out or tmp_path / "out"
        code = main(["run", "--benchmark", "synthetic", "--data-root", str(synthetic_root), "--out", str(out),
                     "--datasets", datasets, "--cases", str(cases), "--no-progress", "-q", "--memory", "512m",
                     "--time-limit", "60", *flags])
        results = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else None
        return code, results, out

    return _run
