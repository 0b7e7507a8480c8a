"""Scale-out throughput: the local runner vs Dask local clusters of 1, 2 and 4 workers, same cases, same image.

    .venv/bin/python benchmarks/scale_out.py [--image aeval-example/threshold:latest] [--cases 4] [--workers 1,2,4]

The synthetic benchmark (3 test sets, --cases each) with a trivial image (the threshold example,
about 1.3 s of container time per case). Peer: `harness run` on this machine (the local runner:
one container at a time, scoring in 2 processes beside it). Each Dask configuration is a
`--cluster local:N` cluster (N worker processes, one container slot and 2 threads each), timed in
two parts:
- startup: starting the cluster and loading the image tarball into every worker (once per
  cluster and submission; the image is ~500 MB, so this is mostly `docker load`);
- run: the run itself (resolve on a worker, every case's container and scoring task, results).
cases/s is cases / run time; speed-up is against the local runner; efficiency = speed-up / N.
On a machine with few cores the containers, scoring and Dask's own processes share them: expect
near-linear scaling only while N stays below the core count (on 2 cores: poor beyond 2).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.data.synth import synthesize  # noqa: E402
from harness.runner.driver import SubmissionRun  # noqa: E402
from harness.runner.run import RunRequest  # noqa: E402
from harness.runner.sandbox import SandboxPolicy  # noqa: E402

DATASETS = ["btcv", "word", "amos_mr"]


def request(*, image: str | None, image_tar: Path | None, root: Path, out: Path, cases: int) -> RunRequest:
    return RunRequest(image=image, image_tar=image_tar, out_dir=out, data_root=root, benchmark="synthetic",
                      datasets=DATASETS, cases_limit=cases, policy=SandboxPolicy(memory_bytes=1024**3), workers=2)


def local_runner(image: str, root: Path, out: Path, cases: int) -> tuple[float, int]:
    runner = SubmissionRun(request(image=image, image_tar=None, root=root, out=out, cases=cases))
    started = time.perf_counter()
    document = runner.execute()
    return time.perf_counter() - started, _count(document)


def _warm(source) -> str:
    """On one worker: connect to its engine and load the image (what its first task would do)."""
    from harness.distributed import worker

    return worker.ensure_image(worker.docker_client(), source)


def dask_cluster(workers: int, tarball: Path, root: Path, out: Path, cases: int) -> tuple[float, float, int]:
    from harness.distributed.cluster import dask_client
    from harness.distributed.runner import DaskExecutor, prepare_image
    from harness.distributed.tasks import register_state

    run_request = request(image=None, image_tar=tarball, root=root, out=out, cases=cases)
    started = time.perf_counter()
    with dask_client(cluster=workers) as client:
        source = prepare_image(run_request)
        register_state(client)  # the workers' state (loaded images) that the run's tasks will use
        addresses = list(client.scheduler_info(n_workers=-1)["workers"])
        client.gather([client.submit(_warm, source, workers=[a], pure=False, resources={"CONTAINER": 1})
                       for a in addresses])
        ready = time.perf_counter()
        document = SubmissionRun(run_request, executor=DaskExecutor(run_request, client)).execute()
        finished = time.perf_counter()
    return ready - started, finished - ready, _count(document)


def _count(document: dict) -> int:
    failed = sum(d["n_failed"] for d in document["datasets"].values())
    if failed:
        raise SystemExit(f"{failed} case(s) failed: the benchmark needs a correct image")
    return sum(d["n_cases"] for d in document["datasets"].values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="aeval-example/threshold:latest")
    parser.add_argument("--cases", type=int, default=4, help="cases per test set (3 test sets)")
    parser.add_argument("--workers", default="1,2,4", help="Dask local cluster sizes to time")
    parser.add_argument("--data-root", type=Path, default=None, help="synthetic data root to (re)use (default: made in a temporary folder)")
    args = parser.parse_args()
    logging.getLogger("distributed").setLevel(logging.ERROR)
    sizes = [int(n) for n in args.workers.split(",")]
    with tempfile.TemporaryDirectory(prefix="aeval-scale-") as scratch_name:
        scratch = Path(scratch_name)
        os.environ.setdefault("AEVAL_NODE_CACHE", str(scratch / "node-cache"))
        root = (args.data_root or scratch / "data").resolve()
        synthesize(root, keys=DATASETS)  # skips the cases already there
        tarball = scratch / "image.tar"
        subprocess.run(["docker", "save", "-o", str(tarball), args.image], check=True)
        subprocess.run(["docker", "run", "--rm", "--network", "none", args.image, "true"], capture_output=True)  # warm
        local_s, n_local = local_runner(args.image, root, scratch / "local", args.cases)
        rows = []
        for size in sizes:
            startup_s, run_s, n = dask_cluster(size, tarball, root, scratch / f"dask-{size}", args.cases)
            rows.append((size, startup_s, run_s, n))
    local_rate = n_local / local_s
    print(f"cases: {n_local} ({', '.join(DATASETS)}, {args.cases} each), image {args.image}, "
          f"{os.cpu_count()} CPU cores on this machine")
    print(f"{'runner':<16} {'workers':>7} {'startup s':>10} {'run s':>8} {'cases/s':>8} {'speed-up':>9} {'efficiency':>11}")
    print(f"{'local runner':<16} {'-':>7} {'-':>10} {local_s:8.2f} {local_rate:8.3f} {1.0:9.2f} {'(peer)':>11}")
    for size, startup_s, run_s, n in rows:
        rate = n / run_s
        speedup = rate / local_rate
        print(f"{f'dask local:{size}':<16} {size:>7} {startup_s:10.2f} {run_s:8.2f} {rate:8.3f} {speedup:9.2f} "
              f"{100 * speedup / size:10.0f}%")
    cores = os.cpu_count() or 1
    if any(size > cores for size in sizes):
        print(f"note: {cores} cores here: beyond {cores} workers the containers and scoring only share them, so "
              "speed-up stalls; on real clusters each worker has its own GPU and cores")


if __name__ == "__main__":
    main()
