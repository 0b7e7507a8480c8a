"""The only module that talks to the Docker engine (through the Docker SDK for Python).

Everything above it deals in image ids, policies and outcomes; everything about the engine's API,
its errors and its cgroups is here, so a newcomer looking for "how is the container started" finds
one file.
"""

from __future__ import annotations

import io
import os
import socket
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import requests.exceptions

from harness.errors import DockerUnavailable, HarnessError
from harness.runner.sandbox import SandboxPolicy

#: Labels put on every container the harness starts, so that leftovers of a killed harness can be
#: found and removed, without touching the containers of another harness still running.
HARNESS_LABEL = "org.a-eval.harness"
OWNER_PID_LABEL = "org.a-eval.owner-pid"
OWNER_HOST_LABEL = "org.a-eval.owner-host"


def _owner_labels(kind: str) -> dict[str, str]:
    return {HARNESS_LABEL: kind, OWNER_PID_LABEL: str(os.getpid()), OWNER_HOST_LABEL: socket.gethostname()}
STDERR_TAIL_LINES = 500


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool


@dataclass
class RunOutcome:
    exit_code: int | None
    oom_killed: bool
    timed_out: bool
    wall_s: float
    peak_memory_bytes: int | None
    memory_source: str
    stderr_tail: list[str] = field(default_factory=list)
    stdout_tail: list[str] = field(default_factory=list)
    gpu: dict | None = None

    def runtime(self) -> dict:
        return {"wall_s": round(self.wall_s, 3), "exit_code": self.exit_code, "oom_killed": self.oom_killed,
                "timed_out": self.timed_out, "peak_memory_bytes": self.peak_memory_bytes,
                "peak_memory_source": self.memory_source, "gpu": self.gpu}


def connect() -> docker.DockerClient:
    """A client for the engine of DOCKER_HOST (or the local socket); one clear line if none answers."""
    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
        reason = str(exc).splitlines()[0][:200]
        raise DockerUnavailable(f"cannot reach a Docker engine at {where} ({reason}); start one "
                                "(e.g. `bash scripts/ensure_docker.sh`) or set DOCKER_HOST") from None
    return client


def has_gpu_runtime(client: docker.DockerClient) -> bool:
    info = client.info()
    runtimes = info.get("Runtimes") or {}
    return "nvidia" in runtimes or bool(info.get("CDISpecDirs")) and os.path.exists("/etc/cdi/nvidia.yaml")


def read_file_from_image(client: docker.DockerClient, image_id: str, path: str, *, max_bytes: int = 1 << 20) -> bytes:
    """Read one file out of an image without running any of its code (create, copy out, remove)."""
    container = client.containers.create(image_id, command=["/nonexistent"], network_mode="none",
                                         labels=_owner_labels("inspect"))
    try:
        stream, stat = container.get_archive(path)
        if stat["size"] > max_bytes:
            raise HarnessError(f"{path} in image {image_id[:19]} is {stat['size']} bytes; too large for a label map")
        data = b"".join(stream)
    except docker.errors.NotFound:
        raise HarnessError(f"image {image_id[:19]} has no file {path}") from None
    finally:
        container.remove(force=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        member = archive.next()
        if member is None or not member.isfile():
            raise HarnessError(f"{path} in image {image_id[:19]} is not a regular file")
        return archive.extractfile(member).read()


class _MemorySampler(threading.Thread):
    """Polls the container's cgroup for its peak memory (v1 max_usage_in_bytes or v2 memory.peak)."""

    def __init__(self, container_id: str, interval_s: float = 0.1) -> None:
        super().__init__(daemon=True)
        self._id, self._interval = container_id, interval_s
        self._halt = threading.Event()
        self.peak: int | None = None
        self.source = "unavailable"

    def _candidates(self) -> list[tuple[Path, str]]:
        cid = self._id
        return [
            (Path(f"/sys/fs/cgroup/memory/docker/{cid}/memory.max_usage_in_bytes"), "cgroup v1 max_usage_in_bytes"),
            (Path(f"/sys/fs/cgroup/memory/system.slice/docker-{cid}.scope/memory.max_usage_in_bytes"),
             "cgroup v1 max_usage_in_bytes"),
            (Path(f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/memory.peak"), "cgroup v2 memory.peak"),
            (Path(f"/sys/fs/cgroup/docker/{cid}/memory.peak"), "cgroup v2 memory.peak"),
            (Path(f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/memory.current"), "cgroup v2 memory.current sampled"),
            (Path(f"/sys/fs/cgroup/docker/{cid}/memory.current"), "cgroup v2 memory.current sampled"),
        ]

    def run(self) -> None:
        found: tuple[Path, str] | None = None
        while not self._halt.is_set():
            if found is None:
                found = next(((p, s) for p, s in self._candidates() if p.exists()), None)
            if found is not None:
                try:
                    value = int(found[0].read_text().strip())
                    self.peak = max(self.peak or 0, value)
                    self.source = found[1]
                except (OSError, ValueError):
                    pass
            self._halt.wait(self._interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=2)


def run_container(client: docker.DockerClient, image_id: str, *, policy: SandboxPolicy, mounts: list[Mount],
                  command: list[str] | None = None, environment: dict[str, str] | None = None,
                  user: str | None = None, gpu_sampler_factory=None) -> RunOutcome:
    """Run one container under `policy` to completion or its time limit; always removes it."""
    volumes = {str(m.source): {"bind": m.target, "mode": "ro" if m.read_only else "rw"} for m in mounts}
    try:
        container = client.containers.create(image_id, command=command, volumes=volumes, environment=environment or {},
                                             user=user, labels=_owner_labels("job"), detach=True,
                                             **policy.engine_kwargs())
    except docker.errors.APIError as exc:
        raise HarnessError(f"the engine refused to create the container: {exc.explanation or exc}") from None
    sampler = _MemorySampler(container.id)
    gpu_sampler = gpu_sampler_factory(container) if gpu_sampler_factory else None
    timed_out = False
    try:
        started = time.monotonic()
        container.start()
        sampler.start()
        if gpu_sampler:
            gpu_sampler.start()
        try:
            result = container.wait(timeout=policy.time_limit_s)
            exit_code = result.get("StatusCode")
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
            timed_out = True
            _kill(container)
            exit_code = None
        wall_s = time.monotonic() - started
        sampler.stop()
        gpu = gpu_sampler.stop() if gpu_sampler else None
        container.reload()
        state = container.attrs.get("State", {})
        if exit_code is None and not timed_out:
            exit_code = state.get("ExitCode")
        stderr = container.logs(stdout=False, stderr=True, tail=STDERR_TAIL_LINES).decode("utf-8", "replace")
        stdout = container.logs(stdout=True, stderr=False, tail=STDERR_TAIL_LINES).decode("utf-8", "replace")
        return RunOutcome(exit_code=exit_code, oom_killed=bool(state.get("OOMKilled")), timed_out=timed_out,
                          wall_s=wall_s, peak_memory_bytes=sampler.peak, memory_source=sampler.source,
                          stderr_tail=stderr.splitlines(), stdout_tail=stdout.splitlines(), gpu=gpu)
    finally:
        sampler.stop()
        _remove(container)


def _kill(container) -> None:
    try:
        container.kill()
    except docker.errors.APIError:
        pass


def _remove(container) -> None:
    for _ in range(3):
        try:
            container.remove(force=True)
            return
        except docker.errors.NotFound:
            return
        except docker.errors.APIError:
            time.sleep(0.5)


def remove_leftovers(client: docker.DockerClient) -> int:
    """Remove containers that a harness on this host left behind when it was killed (its pid is gone)."""
    removed = 0
    for container in client.containers.list(all=True, filters={"label": HARNESS_LABEL}):
        labels = container.labels
        if labels.get(OWNER_HOST_LABEL) != socket.gethostname():
            continue
        pid = int(labels.get(OWNER_PID_LABEL, "0") or 0)
        if pid and _alive(pid):
            continue
        _remove(container)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
