"""The sandbox policy: the one place that turns limits into Docker engine settings.

Participant code is untrusted. Every container the harness starts gets this policy: no network,
every capability dropped, no-new-privileges, a pids limit (fork bombs), a memory limit with swap
equal to it (so the limit is real), a CPU quota, a sized /dev/shm (nnU-Net-style loaders die with
Docker's 64 MB default; Grand-Challenge gives half the memory), a read-only root filesystem with a
size-limited tmpfs /tmp as the only scratch (as Grand-Challenge allows), a wall-clock limit, capped
logs, and a cap on the size and number of outputs (enforced by the output folder's own filesystem,
see `outputfs`). It is a frozen value: tests inspect it without running anything, the command
line's defaults and help texts are read from it, and nothing else in the harness decides a limit.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields, replace

from harness.errors import HarnessError

_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2, "g": 1024**3, "gb": 1024**3,
          "t": 1024**4, "tb": 1024**4}


def parse_bytes(text: str | int) -> int:
    """'8g', '512m', '1.5G', 1048576 -> bytes (binary units, as the Docker CLI reads them)."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", str(text))
    if not match or match.group(2).lower() not in _UNITS:
        raise HarnessError(f"cannot read size '{text}': use e.g. 512m, 8g")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def parse_duration(text: str | float) -> float:
    """'3600', '300s', '10m', '1h' -> seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(s|m|h|)\s*", str(text))
    if not match:
        raise HarnessError(f"cannot read duration '{text}': use e.g. 300, 300s, 10m, 1h")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


#: How much of a container's stdout and stderr the harness keeps per run (each stream): the last
#: lines, and never more than this many bytes of them (a 64 MiB line without a newline is one "line").
LOG_TAIL_LINES = 500
LOG_TAIL_BYTES = 64 * 1024


def format_bytes(value: int) -> str:
    """Bytes as the flags take them back: 8g, 512m, 100k (exact binary units when they divide)."""
    for unit, size in (("t", 1024**4), ("g", 1024**3), ("m", 1024**2), ("k", 1024)):
        if value >= size and value % size == 0:
            return f"{value // size}{unit}"
    return str(value)


@dataclass(frozen=True)
class SandboxPolicy:
    """Limits of one participant container. Defaults follow Grand-Challenge's algorithm jobs."""

    memory_bytes: int = 8 * 1024**3
    cpus: float = float(min(4, os.cpu_count() or 1))
    pids_limit: int = 512
    shm_bytes: int | None = None  # None: half the memory limit, as Grand-Challenge does
    tmp_bytes: int = 2 * 1024**3
    time_limit_s: float = 3600.0
    log_max_bytes: int = 10 * 1024**2
    output_max_bytes: int = 2 * 1024**3
    output_max_files: int = 10_000
    image_max_bytes: int = 20 * 1024**3  # the files of all layers of a submission image (a tarball is checked first)
    gpus: str | None = None  # None, "all" or a count such as "1"
    gpu_device_ids: tuple[str, ...] = ()  # the devices to use (a distributed worker's own); () lets the engine pick
    allow_root: bool = False
    read_only_root: bool = True

    def __post_init__(self) -> None:
        if self.memory_bytes < 32 * 1024**2:
            raise HarnessError(f"memory limit {self.memory_bytes} bytes is below Docker's minimum (6 MB) and useless")
        if self.cpus <= 0 or self.pids_limit < 8 or self.time_limit_s <= 0:
            raise HarnessError("cpus, pids limit and time limit must be positive (pids limit at least 8)")
        if self.gpus is not None and self.gpus != "all" and not (self.gpus.isdigit() and int(self.gpus) > 0):
            raise HarnessError(f"--gpus takes 'all' or a positive count, not '{self.gpus}'")
        if self.gpu_device_ids and self.gpus is None:
            raise HarnessError("GPU device ids were given for a policy without GPUs")
        if self.output_max_bytes <= 0 or self.output_max_files < 1 or self.tmp_bytes <= 0:
            raise HarnessError("output limit, output file limit and /tmp size must be positive")

    @classmethod
    def create(cls, **overrides) -> "SandboxPolicy":
        """Build a policy from keyword overrides; unknown names are rejected by name (no silent typos)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"unknown sandbox setting(s): {', '.join(unknown)}")
        return cls(**{k: v for k, v in overrides.items() if v is not None})

    def pinned_to(self, device_ids: list[str] | tuple[str, ...]) -> "SandboxPolicy":
        """This policy with its GPU request naming `device_ids` (a worker's own GPUs); unchanged without GPUs.

        `--gpus 1` alone lets the engine pick a device, and every worker of a node would get the same
        one. With "all" the request names every given id; with a count it becomes the ids' count.
        """
        if self.gpus is None or not device_ids:
            return self
        gpus = self.gpus if self.gpus == "all" else str(len(device_ids))
        return replace(self, gpus=gpus, gpu_device_ids=tuple(device_ids))

    @classmethod
    def default_text(cls, name: str) -> str:
        """A field's default as a help text shows it (the one place the command line learns defaults)."""
        default = cls.__dataclass_fields__[name].default
        if name == "shm_bytes":
            return "half the memory limit"
        if name == "cpus":
            return f"the machine's cores, at most 4 (here {default:g})"
        if name.endswith("_bytes"):
            return format_bytes(default)
        if name == "time_limit_s":
            return f"{default:g} s"
        return str(default)

    @property
    def effective_shm_bytes(self) -> int:
        return self.shm_bytes if self.shm_bytes is not None else self.memory_bytes // 2

    def engine_kwargs(self) -> dict:
        """Keyword arguments for docker-py's `containers.create` (host config part)."""
        import docker.types

        kwargs = {
            "network_mode": "none",
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges:true"],
            "pids_limit": self.pids_limit,
            "mem_limit": self.memory_bytes,
            "memswap_limit": self.memory_bytes,
            "nano_cpus": int(self.cpus * 1e9),
            "shm_size": self.effective_shm_bytes,
            "read_only": self.read_only_root,
            "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={self.tmp_bytes},mode=1777"},
            "log_config": docker.types.LogConfig(type="json-file", config={"max-size": str(self.log_max_bytes),
                                                                           "max-file": "1"}),
            "ipc_mode": "private",
            "privileged": False,
        }
        if self.gpu_device_ids:
            kwargs["device_requests"] = [docker.types.DeviceRequest(device_ids=list(self.gpu_device_ids),
                                                                    capabilities=[["gpu"]])]
        elif self.gpus is not None:
            count = -1 if self.gpus == "all" else int(self.gpus)
            kwargs["device_requests"] = [docker.types.DeviceRequest(count=count, capabilities=[["gpu"]])]
        return kwargs

    def describe(self) -> dict:
        """The limits as plain numbers, recorded in results so a score says under what it was made."""
        return {"memory_bytes": self.memory_bytes, "cpus": self.cpus, "pids_limit": self.pids_limit,
                "shm_bytes": self.effective_shm_bytes, "tmp_bytes": self.tmp_bytes, "time_limit_s": self.time_limit_s,
                "output_max_bytes": self.output_max_bytes, "output_max_files": self.output_max_files,
                "read_only_root": self.read_only_root, "gpus": self.gpus, "network": "none"}
