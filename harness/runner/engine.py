"""The only module that talks to the Docker engine (through the Docker SDK for Python).

Everything above it deals in image ids, policies and outcomes; everything about the engine's API,
its errors and its cgroups is here, so a newcomer looking for "how is the container started" finds
one file.
"""

from __future__ import annotations

import collections
import io
import os
import socket
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import docker
import docker.errors
import requests.exceptions

from harness.errors import DockerUnavailable, HarnessError
from harness.runner import reaper, scratch
from harness.runner.metering import MemorySampler
from harness.runner.sandbox import LOG_TAIL_BYTES, LOG_TAIL_LINES, SandboxPolicy

#: Labels put on every container the harness starts, so that leftovers of a killed harness can be
#: found and removed, without touching the containers of another harness still running.
HARNESS_LABEL = "org.a-eval.harness"
OWNER_PID_LABEL = "org.a-eval.owner-pid"
OWNER_HOST_LABEL = "org.a-eval.owner-host"
OWNER_START_LABEL = "org.a-eval.owner-start"  # the owner's process start time: a reused pid is not the owner
#: How often a running container's output folder is checked against its cap.
OUTPUT_WATCH_INTERVAL_S = 0.5


def _owner_labels(kind: str) -> dict[str, str]:
    return {HARNESS_LABEL: kind, OWNER_PID_LABEL: str(os.getpid()), OWNER_HOST_LABEL: socket.gethostname(),
            OWNER_START_LABEL: scratch.process_start_time(os.getpid())}


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
    start_error: str | None = None  # the engine's reason when the container could not start at all
    output_exceeded: bool = False  # the output folder passed its cap (the container was stopped there)

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


#: Go's os.ModeType bits, as the engine reports a path's mode (dir, symlink, pipe, socket, device, ...).
_GO_MODE_TYPE = (1 << 31) | (1 << 27) | (1 << 26) | (1 << 25) | (1 << 24) | (1 << 21) | (1 << 19)
_TAR_OVERHEAD_BYTES = 64 * 1024  # headers, long names and the end blocks around one file


def read_file_from_image(client: docker.DockerClient, image_id: str, path: str, *, max_bytes: int = 1 << 20) -> bytes:
    """Read one regular file out of an image without running any of its code (create, copy out, remove).

    The path is image metadata, so untrusted: anything but a regular file of at most `max_bytes`
    (a folder such as "/", a link, a device) is refused from the engine's stat, before a byte is
    copied, and the copy is streamed and cut off at the cap whatever the stat said.
    """
    where = f"{path} in image {image_id[:19]}"
    container = client.containers.create(image_id, command=["/nonexistent"], network_mode="none",
                                         labels=_owner_labels("inspect"))
    url = client.api._url("/containers/{0}/archive", container.id)
    try:
        head = client.api.head(url, params={"path": path})  # the path's stat only, no content
        if head.status_code == 404:
            raise HarnessError(f"image {image_id[:19]} has no file {path}")
        if not head.ok or "x-docker-container-path-stat" not in head.headers:
            raise HarnessError(f"{where}: cannot be read (engine answered {head.status_code})")
        stat = docker.utils.decode_json_header(head.headers["x-docker-container-path-stat"])
        mode = int(stat.get("mode", 0))
        if mode & _GO_MODE_TYPE:
            kind = "a folder" if mode & (1 << 31) else "a link" if mode & (1 << 27) else "a special file"
            target = f" to {stat.get('linkTarget')}" if stat.get("linkTarget") else ""
            raise HarnessError(f"{where} is {kind}{target}, not a regular file")
        if int(stat.get("size", 0)) > max_bytes:
            raise HarnessError(f"{where} is {stat['size']} bytes; the cap is {max_bytes} bytes")
        response = client.api._get(url, params={"path": path}, stream=True)
        try:
            client.api._raise_for_status(response)
            data = bytearray()
            for chunk in response.raw.stream(64 * 1024, decode_content=True):
                data += chunk
                if len(data) > max_bytes + _TAR_OVERHEAD_BYTES:  # the file grew since its stat: cut it off
                    raise HarnessError(f"{where} is larger than its cap of {max_bytes} bytes")
        finally:
            response.close()  # an unread rest is dropped, not left for the engine to push
    except docker.errors.APIError as exc:
        raise HarnessError(f"{where}: cannot be read ({exc.explanation or exc})") from None
    finally:
        container.remove(force=True)
    with tarfile.open(fileobj=io.BytesIO(bytes(data))) as archive:
        member = archive.next()
        if member is None or not member.isfile():
            raise HarnessError(f"{where} is not a regular file")
        if member.size > max_bytes:
            raise HarnessError(f"{where} is {member.size} bytes; the cap is {max_bytes} bytes")
        return archive.extractfile(member).read()


def log_tail(container, *, stdout: bool, stderr: bool, lines: int = LOG_TAIL_LINES,
             max_bytes: int = LOG_TAIL_BYTES) -> list[str]:
    """The last `lines` lines of a container's log, and never more than `max_bytes` bytes of them.

    The log is streamed and only its last `max_bytes` are kept, so a 64 MiB line without a newline
    costs the harness no more than a short one; a line cut at the front starts with "[...]".
    """
    kept: collections.deque[bytes] = collections.deque()
    size = 0
    for chunk in container.logs(stdout=stdout, stderr=stderr, tail=lines, stream=True, follow=False):
        kept.append(chunk)
        size += len(chunk)
        while size - len(kept[0]) >= max_bytes:
            size -= len(kept.popleft())
    data = b"".join(kept)
    cut = len(data) > max_bytes
    text = data[-max_bytes:].decode("utf-8", "replace").splitlines()[-lines:]
    if cut and text:
        text[0] = "[...]" + text[0]
    return text


class _OutputWatch(threading.Thread):
    """Kills the container once `exceeded()` says its outputs passed their cap (checked every half second)."""

    def __init__(self, container, exceeded: Callable[[], bool]) -> None:
        super().__init__(daemon=True)
        self._container, self._exceeded = container, exceeded
        self._halt = threading.Event()
        self.tripped = False

    def run(self) -> None:
        while not self._halt.wait(OUTPUT_WATCH_INTERVAL_S):
            if self._exceeded():
                self.tripped = True
                _kill(self._container)
                return

    def stop(self) -> bool:
        self._halt.set()
        if self.is_alive():
            self.join(timeout=5)
        return self.tripped


def run_container(client: docker.DockerClient, image_id: str, *, policy: SandboxPolicy, mounts: list[Mount],
                  command: list[str] | None = None, environment: dict[str, str] | None = None,
                  user: str | None = None, gpu_sampler_factory=None,
                  output_exceeded: Callable[[], bool] | None = None) -> RunOutcome:
    """Run one container under `policy` to completion or its time limit; always removes it.

    `output_exceeded`, when given, is polled while the container runs: once it says the outputs
    passed their cap the container is killed (the fallback where the output folder's filesystem
    cannot be the cap itself). A container that cannot start (no such entry point, say) is an
    outcome with `start_error`, not an exception.
    """
    reaper.ensure_watchdog(scratch.owner_dir())  # a killed harness takes its containers with it
    volumes = {str(m.source): {"bind": m.target, "mode": "ro" if m.read_only else "rw"} for m in mounts}
    try:
        container = client.containers.create(image_id, command=command, volumes=volumes, environment=environment or {},
                                             user=user, labels=_owner_labels("job"), detach=True,
                                             **policy.engine_kwargs())
    except docker.errors.APIError as exc:
        raise HarnessError(f"the engine refused to create the container: {exc.explanation or exc}") from None
    sampler = MemorySampler(container.id)
    gpu_sampler = gpu_sampler_factory(container) if gpu_sampler_factory else None
    watch = _OutputWatch(container, output_exceeded) if output_exceeded else None
    timed_out = False
    try:
        started = time.monotonic()
        try:
            container.start()
        except docker.errors.APIError as exc:
            return RunOutcome(exit_code=None, oom_killed=False, timed_out=False, wall_s=time.monotonic() - started,
                              peak_memory_bytes=None, memory_source="unavailable",
                              start_error=str(exc.explanation or exc)[:1000])
        for thread in (sampler, gpu_sampler, watch):
            if thread is not None:
                thread.start()
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
        exceeded = (watch.stop() or output_exceeded()) if watch else False
        container.reload()
        state = container.attrs.get("State", {})
        if exit_code is None and not timed_out:
            exit_code = state.get("ExitCode")
        return RunOutcome(exit_code=exit_code, oom_killed=bool(state.get("OOMKilled")), timed_out=timed_out,
                          wall_s=wall_s, peak_memory_bytes=sampler.peak, memory_source=sampler.source,
                          stderr_tail=log_tail(container, stdout=False, stderr=True),
                          stdout_tail=log_tail(container, stdout=True, stderr=False), gpu=gpu,
                          output_exceeded=exceeded)
    finally:
        sampler.stop()
        if gpu_sampler:
            gpu_sampler.halt()
        if watch:
            watch.stop()
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
    """Remove what a harness on this host left behind when it was killed: its containers and scratch."""
    removed = 0
    for container in client.containers.list(all=True, filters={"label": HARNESS_LABEL}):
        labels = container.labels
        if labels.get(OWNER_HOST_LABEL) != socket.gethostname():
            continue
        if scratch.owner_alive(socket.gethostname(), int(labels.get(OWNER_PID_LABEL, "0") or 0),
                               labels.get(OWNER_START_LABEL, "")):
            continue
        _remove(container)
        removed += 1
    scratch.remove_dead_owners()
    return removed


def remove_containers_of(client: docker.DockerClient, owner_pid: int, owner_start: str) -> int:
    """Kill and remove every container that process `owner_pid` (started at `owner_start`) started here."""
    removed = 0
    for container in client.containers.list(all=True, filters={"label": f"{OWNER_PID_LABEL}={owner_pid}"}):
        labels = container.labels
        if labels.get(OWNER_HOST_LABEL) != socket.gethostname() or labels.get(OWNER_START_LABEL, "") != owner_start:
            continue
        _remove(container)
        removed += 1
    return removed
