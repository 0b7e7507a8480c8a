"""`harness run --scheduler/--cluster` on a real Dask scheduler and real worker processes, real containers.

Every run is compared with a local `harness run` of the same cases: identical per-case metrics,
aggregates and submission identity (only runtime figures differ).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.distributed.conftest import CASES, DATASET, assert_same_as_local, run_args

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _distributed(*argv: str) -> int:
    """`harness run --scheduler/--cluster ...`, in-process, as a user types it."""
    from harness.cli import main

    return main(list(argv))


def _results(out) -> dict:
    return json.loads((out / "results.json").read_text())


def _workers_used(results: dict) -> set[str]:
    return {c["runtime"]["worker"]["address"] for c in results["datasets"][DATASET]["cases"]}


def test_local_cluster_runs_like_a_local_run(synthetic_root, example_images, local_reference, tmp_path, node_env):
    """--cluster local:2 with --image: the client saves the image, two workers load it, results equal."""
    out = tmp_path / "out"
    assert _distributed(*run_args(synthetic_root, out, "--image", example_images.THRESHOLD, "--cluster", "local:2",
                                  "-q")) == 0
    results = _results(out)
    assert_same_as_local(results, local_reference)
    assert results["submission"]["name"] == example_images.THRESHOLD
    assert len(list((out / "predictions" / DATASET).iterdir())) == CASES
    assert not [p for p in (out / "predictions" / DATASET).iterdir() if p.name.startswith(".")]  # no temp file left
    for case in results["datasets"][DATASET]["cases"]:
        assert case["runtime"]["exit_code"] == 0 and case["runtime"]["worker"]["address"].startswith("tcp://127.0.0.1:")


def test_worker_killed_mid_run_its_task_is_retried_elsewhere(synthetic_root, image_tarball, local_reference, tmp_path,
                                                           local_dask, docker_client, capsys):
    """The victim is the only worker until its first container starts, so it surely runs one; it is then
    killed and the survivor joins: the killed task (and all the others) finish there."""
    victim = local_dask.start_worker("victim")
    killed = threading.Event()
    # subscribed before the run starts (the engine's start event, not a poll: a short container on a
    # loaded machine slips between polls, and a subscription made late misses the start)
    started = docker_client.events(decode=True, until=int(time.time()) + 120,
                                   filters={"type": "container", "event": "start",
                                            "label": f"org.a-eval.owner-pid={victim.pid}"})

    def kill_victim_once_its_container_runs():
        for _ in started:
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait()  # reaped, as its parent (a nanny, a shell, the batch system) would
            killed.set()
            local_dask.start_worker("survivor", wait=False)
            started.close()
            return

    watcher = threading.Thread(target=kill_victim_once_its_container_runs, daemon=True)
    watcher.start()
    out = tmp_path / "out"
    code = _distributed(*run_args(synthetic_root, out, "--image-tar", str(image_tarball), "--scheduler",
                                  local_dask.address, "-q"))
    watcher.join(timeout=5)
    assert killed.is_set(), "the victim worker never ran a container"
    assert code == 0
    results = _results(out)
    assert_same_as_local(results, local_reference)
    assert _workers_used(results) == {local_dask.wait_for("survivor")}
    # the killed worker's container does not outlive it: the survivor's next task removed it
    assert not docker_client.containers.list(all=True, filters={"label": f"org.a-eval.owner-pid={victim.pid}"})


def test_client_killed_and_restarted_resumes_without_rerunning_finished_cases(synthetic_root, image_tarball,
                                                                               local_reference, tmp_path, local_dask):
    local_dask.start_worker("w1")
    local_dask.start_worker("w2")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "harness.cli",
               *run_args(synthetic_root, out, "--image-tar", str(image_tarball), "--scheduler", local_dask.address)]
    driver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    finished_before: dict = {}
    while time.monotonic() < deadline and driver.poll() is None:
        try:
            finished_before = {c["case_id"]: c for c in _results(out)["datasets"][DATASET]["cases"]}
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            finished_before = {}
        if finished_before:
            driver.kill()  # SIGKILL: no cleanup, no final write
            break
        time.sleep(0.05)
    driver.wait(timeout=30)
    assert driver.returncode == -signal.SIGKILL, driver.stdout.read()
    saved = {c["case_id"]: c for c in _results(out)["datasets"][DATASET]["cases"]}
    assert 1 <= len(saved) < CASES, "the client was killed too late to test a resume"

    again = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stdout + again.stderr
    results = _results(out)
    assert_same_as_local(results, local_reference)
    after = {c["case_id"]: c for c in results["datasets"][DATASET]["cases"]}
    for case_id, record in saved.items():  # finished cases were neither run nor scored again
        assert after[case_id] == record


def test_worker_without_docker_engine_is_left_out_with_a_clear_error(synthetic_root, image_tarball, local_reference,
                                                                     tmp_path, local_dask, docker_client, capsys):
    """The only worker at first has no Docker engine: the resolve task fails there, a good worker joins later
    and the tasks are restricted to it; when it dies too, they go to a worker that joined after that."""
    local_dask.start_worker("no-docker", env={"DOCKER_HOST": f"unix://{tmp_path}/no-such-docker.sock"})
    threading.Timer(3.0, lambda: local_dask.start_worker("good", wait=False)).start()

    def replace_good_worker_once_its_container_runs():
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            good = local_dask.workers.get("good")
            if good and docker_client.containers.list(filters={"label": f"org.a-eval.owner-pid={good.pid}"}):
                good.kill()
                good.wait()
                local_dask.start_worker("late", wait=False)
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=replace_good_worker_once_its_container_runs, daemon=True)
    watcher.start()
    out = tmp_path / "out"
    code = _distributed(*run_args(synthetic_root, out, "--image-tar", str(image_tarball), "--scheduler",
                                  local_dask.address))
    stderr = capsys.readouterr().err
    watcher.join(timeout=5)
    assert code == 0, stderr
    addresses = local_dask.worker_addresses()
    assert set(addresses) == {"no-docker", "late"}  # "good" was killed
    assert f"worker {addresses['no-docker']} gets no more tasks of this run" in stderr
    assert "cannot reach a Docker engine" in stderr and "no-such-docker.sock" in stderr
    assert "restricted to workers that are gone: submitted again" in stderr
    results = _results(out)
    assert_same_as_local(results, local_reference)
    assert _workers_used(results) == {addresses["late"]}


def test_image_is_shipped_to_a_worker_that_cannot_read_the_tarball(synthetic_root, image_tarball, local_reference,
                                                                   tmp_path, local_dask, capsys):
    local_dask.start_worker("no-shared-storage", env={"AEVAL_WORKER_SHARED_IMAGES": "0"})
    out = tmp_path / "out"
    code = _distributed(*run_args(synthetic_root, out, "--image-tar", str(image_tarball), "--scheduler",
                                  local_dask.address, "--protocol", "flare"))
    stderr = capsys.readouterr().err
    assert code == 0, stderr
    assert "shipping the image tarball" in stderr
    shipped = list((tmp_path / "node-cache" / "images").glob("*.tar"))
    assert len(shipped) == 1 and shipped[0].stat().st_size == image_tarball.stat().st_size
    results = _results(out)
    assert results["submission"]["protocol"] == "flare"
    assert {c["case_id"]: c["metrics"] for c in results["datasets"][DATASET]["cases"]} == \
        {c["case_id"]: c["metrics"] for c in local_reference["datasets"][DATASET]["cases"]}
    for case in results["datasets"][DATASET]["cases"]:
        assert case["runtime"]["scope"] == "test set run" and case["runtime"]["cases_in_run"] == CASES


def test_no_worker_with_the_resource_is_a_clear_error(synthetic_root, image_tarball, tmp_path, local_dask, capsys,
                                                      monkeypatch):
    monkeypatch.setenv("AEVAL_WORKER_WAIT", "2")
    local_dask.start_worker("gpu-only", resources="GPU=1")
    code = _distributed(*run_args(synthetic_root, tmp_path / "out", "--image-tar", str(image_tarball), "--scheduler",
                                  local_dask.address))
    assert code == 4  # ExitCode.CLUSTER: not a usage error
    assert "no Dask worker offers the resource CONTAINER=1" in capsys.readouterr().err


def test_scheduler_killed_the_client_stops_clearly_and_a_rerun_on_a_new_scheduler_resumes(
        synthetic_root, image_tarball, local_reference, tmp_path, local_dask, node_env):
    from tests.distributed.conftest import LocalDask

    local_dask.start_worker("w1")
    out = tmp_path / "out"
    flags = ("--image-tar", str(image_tarball))
    driver = subprocess.Popen([sys.executable, "-m", "harness.cli",
                               *run_args(synthetic_root, out, *flags, "--scheduler", local_dask.address)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and driver.poll() is None:
        try:
            if _results(out)["datasets"][DATASET]["cases"]:
                break
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            pass
        time.sleep(0.05)
    scheduler = local_dask.processes[0]
    scheduler.kill()
    scheduler.wait()
    output, _ = driver.communicate(timeout=60)
    assert driver.returncode == 4 and "lost the connection to the Dask scheduler" in output, output
    saved = {c["case_id"]: c for c in _results(out)["datasets"][DATASET]["cases"]}
    assert 1 <= len(saved) < CASES

    folder = tmp_path / "second"
    folder.mkdir()
    second = LocalDask(folder, node_env)
    try:
        second.start_worker("w2")
        assert _distributed(*run_args(synthetic_root, out, *flags, "--scheduler", second.address, "-q")) == 0
    finally:
        second.close()
    results = _results(out)
    assert_same_as_local(results, local_reference)
    after = {c["case_id"]: c for c in results["datasets"][DATASET]["cases"]}
    assert all(after[case_id] == record for case_id, record in saved.items())


def test_every_worker_gets_the_state_plugin_also_one_that_joins_later(local_dask):
    from distributed import Client

    from harness.distributed.tasks import WorkerState, register_state

    local_dask.start_worker("early")
    with Client(local_dask.address, timeout=30, set_as_default=False) as client:
        register_state(client)
        local_dask.start_worker("late")
        has_state = client.run(lambda dask_worker: type(dask_worker.plugins.get(WorkerState.name)).__name__)
    assert sorted(has_state.values()) == ["WorkerState", "WorkerState"]
