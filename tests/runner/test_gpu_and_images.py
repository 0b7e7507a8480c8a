"""GPU flags and metering (skipped cleanly without a GPU), tarball architecture, leftover cleanup."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile

import pytest

from harness.errors import ExitCode, HarnessError
from harness.runner import engine
from harness.runner.images import check_tarball
from harness.runner.metering import nvml_available, summarize_samples


def test_gpu_memory_summary_peak_and_area():
    mib = 1024**2
    samples = [(0.0, 100 * mib), (0.1, 300 * mib), (0.2, 200 * mib), (0.3, 0)]
    summary = summarize_samples(samples, interval_s=0.1, scope="container processes")
    assert summary["peak_memory_mib"] == 300.0
    assert summary["memory_area_mib_s"] == pytest.approx(0.1 * (100 + 300 + 200), abs=0.05)
    assert summarize_samples([], interval_s=0.1, scope="x") is None


@pytest.mark.docker
def test_gpus_without_nvidia_runtime_is_a_clear_error(docker_client, example_images, run_harness, capsys):
    if engine.has_gpu_runtime(docker_client):
        pytest.skip("this engine has an NVIDIA runtime")
    code, results, _ = run_harness("--image", example_images.THRESHOLD, "--gpus", "all")
    assert code == ExitCode.ENVIRONMENT and results is None  # this machine cannot run it: not a usage error
    assert "no NVIDIA runtime" in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.docker
def test_gpu_run_records_gpu_memory(docker_client, example_images, run_harness):
    if not (engine.has_gpu_runtime(docker_client) and nvml_available()):
        pytest.skip("needs an NVIDIA GPU, its container runtime and nvidia-ml-py")
    code, results, _ = run_harness("--image", example_images.THRESHOLD, "--gpus", "all")
    gpu = results["datasets"]["btcv"]["cases"][0]["runtime"]["gpu"]
    assert code == 0 and gpu["samples"] >= 1 and gpu["scope"]


@pytest.mark.docker
def test_tarball_of_another_architecture_is_refused(docker_client, example_images, tmp_path):
    saved = subprocess.run(["docker", "save", example_images.THRESHOLD], check=True, capture_output=True).stdout
    source = tarfile.open(fileobj=io.BytesIO(saved))
    config_name = json.loads(source.extractfile("manifest.json").read())[0]["Config"]
    out_path = tmp_path / "arm.tar"
    with tarfile.open(out_path, "w") as out:
        for member in source:
            data = source.extractfile(member) if member.isfile() else None
            if member.name == config_name:
                config = json.loads(data.read())
                config["architecture"] = "arm64"
                payload = json.dumps(config).encode()
                member.size = len(payload)
                data = io.BytesIO(payload)
            out.addfile(member, data)
    with pytest.raises(HarnessError, match="linux/arm64; only linux/amd64 images are accepted"):
        check_tarball(out_path)


@pytest.mark.docker
def test_leftovers_of_a_dead_harness_are_removed_but_live_ones_kept(docker_client, example_images):
    dead_pid = 2**22 - 3  # above the default pid_max of this kernel's namespaces: never alive
    labels = {**engine._owner_labels("job")}
    live = docker_client.containers.create(example_images.THRESHOLD, command=["true"], labels=labels)
    dead = docker_client.containers.create(example_images.THRESHOLD, command=["true"],
                                           labels={**labels, engine.OWNER_PID_LABEL: str(dead_pid)})
    try:
        assert engine.remove_leftovers(docker_client) >= 1
        names = {c.id for c in docker_client.containers.list(all=True)}
        assert dead.id not in names and live.id in names
    finally:
        for container in (live, dead):
            try:
                container.remove(force=True)
            except Exception:
                pass
