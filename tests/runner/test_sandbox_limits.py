"""Limits that hold while the container runs, with the real engine: disk, output, start, logs, a killed harness."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.runner import engine, outputfs, scratch
from harness.runner.sandbox import LOG_TAIL_BYTES

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
BASE = "aeval/debian-python:bookworm"
OUT_FOLDER = "/output/images/abdominal-organ-segmentation"

DOCKERFILE = """
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ARG SCRIPT
ENV SCRIPT=${SCRIPT}
USER 1000
LABEL org.a-eval.protocol="gc" org.a-eval.label-map="a-eval"
CMD ["sh", "-c", "eval \\"$SCRIPT\\""]
"""


def _base(client) -> str:
    try:
        client.images.get(BASE)
        return BASE
    except Exception:
        from tests.runner.conftest import _load_build_module

        return _load_build_module().base_image(client)


def build_script_image(client, name: str, script: str, *, extra: str = "") -> str:
    """A tiny image (tag unique to these tests) that runs `script` with sh as a non-root user."""
    tag = f"aeval-test/sandbox-limits-{name}:latest"
    dockerfile = DOCKERFILE + extra
    client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True,
                        buildargs={"BASE_IMAGE": _base(client), "SCRIPT": script})
    return tag


def _only_case(results, key="btcv"):
    cases = results["datasets"][key]["cases"]
    assert len(cases) == 1
    return cases[0]


def _jobs(client) -> list:
    return client.containers.list(all=True, filters={"label": f"{engine.OWNER_PID_LABEL}={os.getpid()}"})


def test_writing_to_the_root_filesystem_is_refused(docker_client, run_harness):
    image = build_script_image(docker_client, "fill-root",
                               "dd if=/dev/zero of=/big bs=1M count=2560 || exit 3; echo wrote 2.5 GiB")
    code, results, _ = run_harness("--image", image)
    case = _only_case(results)
    assert code == 1 and case["error_kind"] == "crash" and "exited with code 3" in case["error"], case["error"]
    assert "Read-only file system" in case["error"]


def test_tmp_is_writable_but_only_up_to_its_size(docker_client, run_harness):
    image = build_script_image(docker_client, "fill-tmp",
                               "dd if=/dev/zero of=/tmp/scratch bs=1M count=8 || exit 4; "
                               "dd if=/dev/zero of=/tmp/big bs=1M count=200 || exit 5")
    code, results, out = run_harness("--image", image, "--tmp-size", "64m")
    case = _only_case(results)
    assert case["error_kind"] == "crash" and "exited with code 5" in case["error"], case["error"]
    assert "No space left on device" in (out / "logs" / "btcv").joinpath(f"{case['case_id']}.log").read_text()


FILL_OUTPUT = f"mkdir -p {OUT_FOLDER} && dd if=/dev/zero of={OUT_FOLDER}/big.mha bs=1M count=1536; sleep 30"


@pytest.mark.parametrize("mode", ["filesystem", "watcher"])
def test_output_past_its_cap_fails_the_case_during_the_run(docker_client, run_harness, monkeypatch, mode):
    """1.5 GiB to /output under a 256 MiB cap: stopped while running, not found after exit."""
    if mode == "filesystem" and not outputfs.can_mount():
        pytest.skip("this harness may not mount filesystems (not root, or no mkfs.ext4): the watcher applies")
    if mode == "watcher":
        monkeypatch.setattr(outputfs, "can_mount", lambda: False)
    image = build_script_image(docker_client, "fill-output", FILL_OUTPUT)
    code, results, out = run_harness("--image", image, "--output-limit", "256m", "--time-limit", "120")
    case = _only_case(results)
    assert code == 1 and case["error_kind"] == "output_too_large", case
    assert "passed their cap of 256 MiB" in case["error"]
    assert case["runtime"]["wall_s"] < 60, case  # stopped at the cap, not by the time limit (120 s)
    if mode == "filesystem":  # the write itself failed: the filesystem is the cap
        log = (out / "logs" / "btcv").joinpath(f"{case['case_id']}.log").read_text()
        assert "No space left on device" in log, log
    assert not _jobs(docker_client)


def test_too_many_output_files_fail_the_case(docker_client, run_harness):
    image = build_script_image(docker_client, "many-files",
                               f"mkdir -p {OUT_FOLDER}; i=0; while [ $i -lt 3000 ]; do : > {OUT_FOLDER}/f$i || exit 6;"
                               " i=$((i+1)); done; sleep 30")
    code, results, _ = run_harness("--image", image, "--output-files", "200", "--time-limit", "120")
    case = _only_case(results)
    assert case["error_kind"] == "output_too_many_files", case["error"]  # the tree walk names the cap passed
    assert "200 files and folders" in case["error"] and "the container was stopped there" in case["error"]


def test_missing_entry_point_is_a_failed_case_and_leaves_no_container(docker_client, run_harness):
    image = build_script_image(docker_client, "no-entrypoint", "true", extra='ENTRYPOINT ["/nonexistent/predict"]\n')
    code, results, _ = run_harness("--image", image)
    case = _only_case(results)
    assert code == 1 and case["error_kind"] == "start_failed", case
    assert "could not start" in case["error"] and "/nonexistent/predict" in case["error"]
    assert not _jobs(docker_client)


def test_a_huge_log_line_is_kept_only_as_a_capped_tail(docker_client, run_harness):
    image = build_script_image(docker_client, "huge-line", "head -c 67108864 /dev/zero | tr -c x x >&2; exit 1")
    code, results, out = run_harness("--image", image)
    case = _only_case(results)
    assert case["error_kind"] == "crash" and "exited with code 1" in case["error"]
    log = out / "logs" / "btcv" / f"{case['case_id']}.log"
    assert 1024 < log.stat().st_size <= 2 * LOG_TAIL_BYTES + 1024  # the engine's log rotates at 10 MiB
    assert "xxxxxxxx" in log.read_text()
    assert len(json.dumps(case)) < 4 * 1024


def test_log_tail_keeps_the_end_of_a_long_line_within_its_byte_cap(docker_client):
    container = docker_client.containers.run(BASE, ["sh", "-c", "echo first >&2; head -c 3000000 /dev/zero | "
                                                    "tr -c x x >&2; echo >&2; echo last >&2"], detach=True)
    try:
        container.wait(timeout=60)
        tail = engine.log_tail(container, stdout=False, stderr=True)
    finally:
        container.remove(force=True)
    assert tail[-1] == "last" and tail[0].startswith("[...]xxx") and "first" not in tail
    assert LOG_TAIL_BYTES - 16 <= sum(len(line) + 1 for line in tail) <= LOG_TAIL_BYTES + 16


# -- a harness killed with kill -9 -------------------------------------------------------------------

def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _start_killable_harness(docker_client, synthetic_root: Path, out: Path):
    image = build_script_image(docker_client, "sleeper", "sleep 600")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", "--benchmark", "synthetic",
                                "--data-root", str(synthetic_root), "--out", str(out), "--datasets", "btcv",
                                "--cases", "1", "--no-progress", "-q", "--memory", "256m", "--time-limit", "300",
                                "--image", image], env=env, cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    filters = {"label": f"{engine.OWNER_PID_LABEL}={process.pid}"}
    for _ in range(600):  # up to 60 s for the harness to start its container
        running = docker_client.containers.list(filters=filters)
        if running:
            return process, running[0], filters
        assert process.poll() is None, "the harness ended before starting its container"
        time.sleep(0.1)
    process.kill()
    pytest.fail("the harness started no container within 60 s")


def _owner_scratch(pid: int) -> list[Path]:
    root = scratch.scratch_root()
    return [p for p in root.iterdir() if p.name.split("-")[-2:-1] == [str(pid)]] if root.is_dir() else []


def _wait_until(condition, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.25)
    return condition()


def test_kill_9_of_the_harness_takes_its_container_and_scratch_with_it(docker_client, synthetic_root, tmp_path):
    process, container, filters = _start_killable_harness(docker_client, synthetic_root, tmp_path / "out")
    assert _owner_scratch(process.pid), "the running harness has a scratch folder of its own"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    # the container's time limit is 300 s; the watchdog stops it well before (as soon as the harness is gone)
    assert _wait_until(lambda: not docker_client.containers.list(all=True, filters=filters), 60), \
        docker_client.containers.list(all=True, filters=filters)
    assert _wait_until(lambda: not _owner_scratch(process.pid), 30), _owner_scratch(process.pid)


def test_when_the_watchdog_dies_too_the_next_harness_cleans_up(docker_client, synthetic_root, tmp_path):
    process, container, filters = _start_killable_harness(docker_client, synthetic_root, tmp_path / "out")
    watchdogs = _children(process.pid)  # the watchdog (and nothing else of the harness) would survive kill -9
    assert watchdogs
    for child in watchdogs:
        os.kill(child, signal.SIGKILL)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert _owner_scratch(process.pid), "left behind, as before the watchdog"
    # (its container is left too, unless another harness on this shared engine started meanwhile and removed it)
    engine.remove_leftovers(docker_client)  # what every harness does at start-up
    assert not docker_client.containers.list(all=True, filters=filters)
    assert not _owner_scratch(process.pid)
