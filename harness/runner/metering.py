"""What a container used, sampled while it runs: peak memory from its cgroup, GPU memory from NVML.

Memory: the cgroup's own peak counter (v1 max_usage_in_bytes, v2 memory.peak), else memory.current
sampled. GPU: NVML sampled every 0.1 s as FLARE does (peak and area under the curve), per container
process where the driver lists processes (the container's pids come from its cgroup), device-wide
(total - free, which counts other processes too) otherwise; the result says which. Without an
NVIDIA driver or the `nvidia-ml-py` package GPU metering is simply absent (None).

Samplers are threads that may be stopped whether or not they were started (a container that never
starts has nothing to sample, and stopping must not fail then).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path


def nvml_available() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml.nvmlDeviceGetCount() > 0
    except Exception:  # no package, no driver, no device: all mean "no GPU metering"
        return False


class _Sampler(threading.Thread):
    """A polling thread that can be stopped before it was started."""

    def __init__(self, interval_s: float) -> None:
        super().__init__(daemon=True)
        self._interval = interval_s
        self._halt = threading.Event()

    def halt(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(timeout=2)


class MemorySampler(_Sampler):
    """Polls the container's cgroup for its peak memory (v1 max_usage_in_bytes or v2 memory.peak)."""

    def __init__(self, container_id: str, interval_s: float = 0.1) -> None:
        super().__init__(interval_s)
        self._id = container_id
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
        self.halt()


class GpuSampler(_Sampler):
    def __init__(self, container, interval_s: float = 0.1) -> None:
        super().__init__(interval_s)
        self._container = container
        self.samples: list[tuple[float, int]] = []
        self.scope = "device"

    def _container_pids(self) -> set[int]:
        for path in (Path(f"/sys/fs/cgroup/pids/docker/{self._container.id}/cgroup.procs"),
                     Path(f"/sys/fs/cgroup/system.slice/docker-{self._container.id}.scope/cgroup.procs"),
                     Path(f"/sys/fs/cgroup/docker/{self._container.id}/cgroup.procs")):
            try:
                return {int(x) for x in path.read_text().split()}
            except OSError:
                continue
        return set()

    def run(self) -> None:
        import pynvml

        pynvml.nvmlInit()
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        start = time.monotonic()
        while not self._halt.is_set():
            used = 0
            pids = self._container_pids()
            per_process = None
            try:
                per_process = sum(p.usedGpuMemory or 0 for h in handles
                                  for p in pynvml.nvmlDeviceGetComputeRunningProcesses(h) if p.pid in pids)
            except pynvml.NVMLError:
                per_process = None
            if per_process is not None and pids:
                used, self.scope = per_process, "container processes"
            else:
                used = sum(pynvml.nvmlDeviceGetMemoryInfo(h).used for h in handles)
                self.scope = "device-wide (total - free; counts other processes)"
            self.samples.append((time.monotonic() - start, used))
            self._halt.wait(self._interval)

    def stop(self) -> dict | None:
        self.halt()
        return summarize_samples(self.samples, interval_s=self._interval, scope=self.scope)


def summarize_samples(samples: list[tuple[float, int]], *, interval_s: float, scope: str) -> dict | None:
    """Peak (MiB) and area under the memory-time curve (MiB*s, left Riemann sum), as FLARE reports."""
    if not samples:
        return None
    peak = max(used for _, used in samples)
    area = sum((t2 - t1) * u1 for (t1, u1), (t2, _) in zip(samples, samples[1:])) / 1024**2
    return {"peak_memory_mib": round(peak / 1024**2, 1), "memory_area_mib_s": round(area, 1),
            "interval_s": interval_s, "samples": len(samples), "scope": scope}
