"""Fixtures for distributed runs: a real `dask scheduler` and real `dask worker` processes on 127.0.0.1.

Each worker is its own process (no nanny, so SIGKILL kills it for good), with its own resources
and environment (a worker without a Docker engine is a worker whose DOCKER_HOST points nowhere).
Workers share this machine's Docker engine, as GPU servers' workers share their node's engine.
The node cache (verification markers, shipped images, scratch) is per test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.runner.conftest import docker_client, example_images  # noqa: F401  (the runner tests' fixtures)

pytest.importorskip("distributed", reason="the 'distributed' extra is not installed")

CASES = 3
DATASET = "btcv"


def _dask(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("dask")), *args]


class LocalDask:
    """A scheduler and worker processes for one test; everything is stopped at teardown."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder, self.env = folder, env
        self.processes: list[subprocess.Popen] = []
        self.workers: dict[str, subprocess.Popen] = {}
        self.address = self._start_scheduler()

    def _spawn(self, command: list[str], name: str, env: dict[str, str]) -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "w")
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(process)
        return process

    def _start_scheduler(self) -> str:
        info = self.folder / "scheduler.json"
        self._spawn(_dask("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                          "--scheduler-file", str(info)), "scheduler", self.env)
        deadline = time.monotonic() + 60
        while not info.is_file():
            assert time.monotonic() < deadline, (self.folder / "scheduler.log").read_text()
            time.sleep(0.1)
        return json.loads(info.read_text())["address"]

    def start_worker(self, name: str, *, resources: str = "CONTAINER=1", env: dict[str, str] | None = None,
                     wait: bool = True) -> subprocess.Popen:
        process = self._spawn(_dask("worker", self.address, "--host", "127.0.0.1", "--nthreads", "2", "--no-nanny",
                                    "--no-dashboard", "--name", name, "--resources", resources,
                                    "--memory-limit", "0", "--death-timeout", "60"),
                              name, {**self.env, **(env or {})})
        self.workers[name] = process
        if wait:
            self.wait_for(name)
        return process

    def worker_addresses(self) -> dict[str, str]:
        """name -> address of the workers the scheduler knows now."""
        from distributed import Client

        with Client(self.address, timeout=30, set_as_default=False) as client:
            return {info["name"]: address for address, info in client.scheduler_info(n_workers=-1)["workers"].items()}

    def wait_for(self, name: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            addresses = self.worker_addresses()
            if name in addresses:
                return addresses[name]
            assert time.monotonic() < deadline, (self.folder / f"{name}.log").read_text()
            time.sleep(0.2)

    def close(self) -> None:
        """Workers first, then the scheduler (SIGTERM: they close cleanly; SIGKILL after 10 s)."""
        for group in (self.processes[1:], self.processes[:1]):
            for process in group:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in group:
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@pytest.fixture
def node_env(tmp_path, monkeypatch) -> dict[str, str]:
    """Environment of every process of the test: a node cache of its own."""
    cache = tmp_path / "node-cache"
    cache.mkdir()
    monkeypatch.setenv("AEVAL_NODE_CACHE", str(cache))
    monkeypatch.setenv("AEVAL_WORKER_WAIT", "60")
    return {**os.environ}


@pytest.fixture
def local_dask(tmp_path, node_env, docker_client):
    folder = tmp_path / "dask"
    folder.mkdir()
    cluster = LocalDask(folder, node_env)
    yield cluster
    cluster.close()
    import docker.errors

    from harness.runner.engine import remove_leftovers

    for attempt in range(3):  # containers of a worker the test killed
        try:
            remove_leftovers(docker_client)
            break
        except docker.errors.NotFound:  # another harness on this shared engine removed one of its own meanwhile
            continue


@pytest.fixture(scope="session")
def image_tarball(tmp_path_factory, example_images) -> Path:
    """`docker save` of the example image, as a participant sends it (once per session)."""
    path = tmp_path_factory.mktemp("image") / "threshold.tar"
    subprocess.run(["docker", "save", "-o", str(path), example_images.THRESHOLD], check=True)
    return path


@pytest.fixture(scope="session")
def local_reference(synthetic_root, example_images, tmp_path_factory) -> dict:
    """The results of a local `harness run` of the same cases: what every distributed run must equal."""
    from harness.cli import main

    out = tmp_path_factory.mktemp("local-reference")
    code = main(["run", "--image", example_images.THRESHOLD, "--benchmark", "synthetic", "--data-root",
                 str(synthetic_root), "--out", str(out), "--datasets", DATASET, "--cases", str(CASES), "--no-progress",
                 "-q", "--memory", "512m", "--time-limit", "60", "--workers", "1"])
    assert code == 0
    return json.loads((out / "results.json").read_text())


def run_args(synthetic_root: Path, out: Path, *flags: str, cases: int = CASES) -> list[str]:
    return ["run", "--benchmark", "synthetic", "--data-root", str(synthetic_root), "--out", str(out),
            "--datasets", DATASET, "--cases", str(cases), "--no-progress", "--memory", "512m", "--time-limit", "60",
            *flags]


def case_metrics(results: dict) -> dict[str, tuple]:
    """Per case: status, error kind and every organ's metrics (runtime differs from run to run)."""
    return {c["case_id"]: (c["status"], c["error_kind"], c["metrics"])
            for c in results["datasets"][DATASET]["cases"]}


def assert_same_as_local(results: dict, reference: dict, cases: int = CASES) -> None:
    assert case_metrics(results) == {k: v for k, v in case_metrics(reference).items()
                                     if k in list(case_metrics(reference))[:cases]}
    assert results["datasets"][DATASET]["n_cases"] == cases
    for field in ("image_id", "protocol", "label_map", "sandbox"):
        assert results["submission"][field] == reference["submission"][field]
    assert results["aggregates"] == reference["aggregates"]
