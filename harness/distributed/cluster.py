"""Where the Dask workers come from: an existing scheduler (`--scheduler`), or a local cluster (`--cluster local:N`).

A local cluster is N worker processes (with nannies) on this machine, on 127.0.0.1 only, each
offering one container slot (`CONTAINER=1`) and, on GPU runs, one GPU (`GPU=1`, pinned with
CUDA_VISIBLE_DEVICES=i), with two threads: one runs the container, the other scores. It is
what `dask scheduler` plus N times `dask worker --resources ...` gives on a server, started and
stopped by the harness.
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import Iterator

from harness.errors import ClusterError, EnvironmentProblem, HarnessError


def parse_cluster(text: str) -> int:
    """'local:N' -> N."""
    match = re.fullmatch(r"\s*local:(\d+)\s*", text or "")
    if not match or int(match.group(1)) < 1:
        raise ValueError(f"--cluster takes local:N with N >= 1 workers (e.g. local:4), not '{text}'")
    return int(match.group(1))


def local_cluster(workers: int, *, gpus: bool, threads_per_worker: int = 2):
    from distributed import Nanny, Scheduler, SpecCluster

    specs = {}
    for index in range(workers):
        resources = {"CONTAINER": 1, **({"GPU": 1} if gpus else {})}
        env = {"CUDA_VISIBLE_DEVICES": str(index)} if gpus else {}
        specs[f"aeval-local-{index}"] = {"cls": Nanny, "options": {
            "host": "127.0.0.1", "nthreads": threads_per_worker, "resources": resources, "env": env,
            "memory_limit": 0, "dashboard": False, "silence_logs": logging.WARNING}}  # memory: as a local run
    return SpecCluster(scheduler={"cls": Scheduler, "options": {"host": "127.0.0.1", "dashboard": False}},
                       workers=specs, silence_logs=logging.WARNING, name=f"aeval-local-{workers}")


@contextlib.contextmanager
def dask_client(*, scheduler: str | None = None, cluster: int | None = None, gpus: bool = False,
                timeout_s: float = 60) -> Iterator[object]:
    """A connected distributed.Client (the default client of this process), closed on exit."""
    try:
        from distributed import Client
    except ImportError:
        raise EnvironmentProblem("--scheduler/--cluster need Dask's distributed scheduler: "
                           "pip install 'aeval-harness[distributed]'") from None
    if (scheduler is None) == (cluster is None):
        raise HarnessError("give exactly one of --scheduler ADDRESS or --cluster local:N")
    local = None
    try:
        if cluster is not None:
            local = local_cluster(cluster, gpus=gpus)
            client = Client(local, timeout=timeout_s)
        else:
            try:
                client = Client(scheduler, timeout=timeout_s)
            except (OSError, TimeoutError) as exc:
                raise ClusterError(f"cannot reach the Dask scheduler at {scheduler} ({exc}): start it with "
                                   "`dask scheduler` and pass the address it prints (tcp://HOST:8786)") from None
        try:
            yield client
        finally:
            client.close()
    finally:
        if local is not None:
            local.close()
