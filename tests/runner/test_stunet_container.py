"""The STU-Net reference image as a real submission: built, run by `harness run`, output mapped and scored.

Small model with random weights from a mounted v2 checkpoint (the way an organizer provides the
official weights), CPU, one synthetic case per protocol. Speed knobs go in through a derived image
(ENV), because the harness never passes environment variables into a participant container.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]
pytest.importorskip("torch")  # the test checkpoint is written with the host's torch

REPO = Path(__file__).resolve().parents[2]
STUNET_TAG = "aeval/stunet:cpu"
FAST_TAG = "aeval-test/stunet-fast:latest"


@pytest.fixture(scope="module")
def stunet_image(docker_client):
    try:
        docker_client.images.get("aeval/torch-cpu:2.13.0")
    except Exception:
        pytest.fail("base image aeval/torch-cpu:2.13.0 missing: run containers/base/build_bases.sh")
    subprocess.run(["docker", "build", "-q", "-f", "containers/stunet/Dockerfile", "--build-arg",
                    "BASE_IMAGE=aeval/torch-cpu:2.13.0", "-t", STUNET_TAG, "."], cwd=REPO, check=True,
                   capture_output=True, env={"DOCKER_BUILDKIT": "0", "PATH": "/usr/local/bin:/usr/bin:/bin"})
    dockerfile = (f"FROM {STUNET_TAG}\nENV STUNET_TARGET_SPACING_MM=6 STUNET_PATCH_SIZE=32 STUNET_STEP=0.5 "
                  "STUNET_TTA=0 OMP_NUM_THREADS=1\n")
    docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=FAST_TAG, rm=True)
    return FAST_TAG


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A nnU-Net v2 style checkpoint of the small model with random weights, made by the package itself."""
    folder = tmp_path_factory.mktemp("model")
    code = ("import sys, torch; sys.path.insert(0, 'containers/stunet');"
            "from stunet.checkpoint import random_stunet;"
            "m = random_stunet(size='small', seed=0);"
            f"torch.save({{'network_weights': m.state_dict(), 'trainer_name': 'STUNetTrainer_small'}}, "
            f"'{folder}/checkpoint_final.pth')")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
    folder.chmod(0o755)
    (folder / "checkpoint_final.pth").chmod(0o644)
    return folder


@pytest.mark.parametrize("protocol", ["gc", "flare"])
def test_stunet_runs_through_the_harness(stunet_image, model_dir, run_harness, protocol):
    code, results, out = run_harness("--image", stunet_image, "--model-dir", str(model_dir), "--protocol", protocol,
                                     "--memory", "6g", "--time-limit", "600", datasets="amos_mr", cases=1)
    assert results is not None
    case = results["datasets"]["amos_mr"]["cases"][0]
    assert case["status"] == "ok", case["error"]
    assert results["submission"]["label_map"] == "stunet_totalseg_v1"
    assert case["runtime"]["exit_code"] == 0 and case["runtime"]["peak_memory_bytes"] > 0
    # Random weights: any score is fine, but every organ was scored on a valid, mapped prediction.
    assert set(case["metrics"]) == {"spleen", "kidney_right", "kidney_left", "gallbladder", "liver", "stomach",
                                    "pancreas", "adrenal_gland_right", "adrenal_gland_left", "esophagus"}
    assert all(0.0 <= m["dice"] <= 1.0 for m in case["metrics"].values())
