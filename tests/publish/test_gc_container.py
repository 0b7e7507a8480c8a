"""The evaluation image on the real Docker engine, run as Grand-Challenge runs it.

Builds containers/evaluation/Dockerfile (base: aeval/python-sci:bookworm when the engine has it),
then runs it with /input, the ground truth and /output mounted, no network, and compares its
metrics.json with the in-process evaluation of the same input. Without an engine the tests skip;
under CI (CI=true) they fail instead.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from harness.jsonio import read_json
from harness.labelmap import shipped_mapping
from harness.publish.gc_evaluate import evaluate_predictions
from harness.scoring.case import ScoreSettings
from tests.publish.gc_layout import RELATIVE_PATH, make_gc_layout

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
TAG = "aeval-test/evaluation:latest"


@pytest.fixture(scope="module")
def docker_client():
    from harness.errors import DockerUnavailable
    from harness.runner.engine import connect

    try:
        return connect()
    except DockerUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide a Docker engine: {exc}")
        pytest.skip(f"no Docker engine: {exc}")


@pytest.fixture(scope="module")
def evaluation_image(docker_client):
    spec = importlib.util.spec_from_file_location("evaluation_build", REPO / "containers" / "evaluation" / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    try:
        build.build(docker_client, tag=TAG)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    return docker_client.images.get(TAG)


def test_image_follows_the_platform_rules(evaluation_image):
    config = evaluation_image.attrs["Config"]
    assert config["User"] not in ("", "0", "root")
    assert config["Entrypoint"] == ["harness", "gc-evaluate"]
    assert evaluation_image.attrs["Architecture"] == "amd64"


def test_container_evaluates_like_the_platform_and_like_in_process(docker_client, evaluation_image, tmp_path):
    layout = make_gc_layout(tmp_path / "case")
    container = docker_client.containers.run(
        TAG, detach=True, network_mode="none", mem_limit="1g",
        volumes={str(layout.input_dir): {"bind": "/input", "mode": "ro"},
                 str(layout.ground_truth_dir): {"bind": "/opt/ml/input/data/ground_truth", "mode": "ro"},
                 str(layout.output_dir): {"bind": "/output", "mode": "rw"}})
    try:
        status = container.wait(timeout=300)["StatusCode"]
        logs = container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)
    assert status == 0, logs
    assert "7 cases, 4 failed, 1 unmatched jobs" in logs
    assert "unmatched job" in logs and "geometry_mismatch" in logs  # problems are reported, not fatal
    metrics = read_json(layout.output_dir / "metrics.json", "gc_metrics")
    local = evaluate_predictions(input_dir=layout.input_dir, ground_truth_dir=layout.ground_truth_dir,
                                 output_dir=tmp_path / "local", pred_mapping=shipped_mapping("a-eval"),
                                 settings=ScoreSettings(), output_relative_path=RELATIVE_PATH)
    assert metrics["aggregates"] == local["aggregates"]
    assert [(r["case_ref"], r["pk"], r["status"], r["error_kind"]) for r in metrics["results"]] == \
        [(r["case_ref"], r["pk"], r["status"], r["error_kind"]) for r in local["results"]]
    assert metrics["aggregates"]["dice"]["mean"] == pytest.approx(((9 * 0.5 + 0.25) / 10 + 1 / 3) / 2)
