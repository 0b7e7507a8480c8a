"""Pieces of the distributed runner that need no cluster: flags, resources, GPU pinning, data verification."""

from __future__ import annotations

import json
import shutil

import pytest

from harness.distributed import datacheck
from harness.cli import build_parser
from harness.cli.run import wants_distributed
from harness.distributed.cluster import parse_cluster
from harness.errors import DataRootMismatch, DockerMissingOnWorker
from harness.distributed.runner import container_resources
from harness.distributed.tasks import _GpuSlots
from harness.manifest import load_benchmark, load_manifest_file, sha256_file
from harness.runner.sandbox import SandboxPolicy


def test_flags_are_added_to_the_run_parser_and_exclusive():
    parser = build_parser()
    base = ["run", "--image", "team/model:tag", "--out", "out"]
    assert parser.parse_args([*base, "--cluster", "local:3"]).cluster == 3
    args = parser.parse_args([*base, "--scheduler", "tcp://127.0.0.1:8786"])
    assert args.scheduler == "tcp://127.0.0.1:8786" and wants_distributed(args)
    assert not wants_distributed(parser.parse_args(base))
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--scheduler", "tcp://127.0.0.1:8786", "--cluster", "local:2"])
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--cluster", "slurm"])
    with pytest.raises(ValueError, match="local:N"):
        parse_cluster("local:0")


def test_container_tasks_hold_one_gpu_or_one_container_slot():
    assert container_resources(SandboxPolicy()) == {"CONTAINER": 1}
    assert container_resources(SandboxPolicy(gpus="1")) == {"GPU": 1}
    assert container_resources(SandboxPolicy(gpus="2")) == {"GPU": 2}
    assert container_resources(SandboxPolicy(gpus="all")) == {"GPU": 1}


def test_gpu_slots_hand_out_distinct_devices(monkeypatch):
    monkeypatch.setenv("AEVAL_GPU_IDS", "0,1")
    slots = _GpuSlots()
    first, second = slots.acquire(1), slots.acquire(1)
    assert sorted(first + second) == ["0", "1"]
    slots.release(first)
    slots.release(second)
    assert sorted(slots.acquire(None)) == ["0", "1"]  # --gpus all: every device of the worker
    monkeypatch.setenv("AEVAL_GPU_IDS", "")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert _GpuSlots().acquire(1) == []


def test_worker_errors_survive_pickling_with_their_worker():
    import pickle

    error = pickle.loads(pickle.dumps(DockerMissingOnWorker("no engine", "tcp://127.0.0.1:1")))
    assert str(error) == "no engine" and error.worker == "tcp://127.0.0.1:1"


@pytest.fixture
def checksummed(synthetic_root, tmp_path, monkeypatch):
    """A copy of two btcv cases and a manifest that lists their sha256 (the synthetic one lists none)."""
    monkeypatch.setenv("AEVAL_NODE_CACHE", str(tmp_path / "node-cache"))
    monkeypatch.setattr(datacheck, "_verified", set())
    source = load_benchmark("synthetic", keys=["btcv"])[0]
    root = tmp_path / "data"
    document = json.loads(source.path.read_text())
    document["cases"] = document["cases"][:2]
    document["expected_case_count"] = 2
    for case in document["cases"]:
        for field in ("image", "label"):
            (root / case[field]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(synthetic_root / case[field], root / case[field])
            case[f"{field}_sha256"] = sha256_file(root / case[field])
    manifest_dir = tmp_path / "bench"
    manifest_dir.mkdir()
    (manifest_dir / "btcv.json").write_text(json.dumps(document))
    manifest = load_manifest_file(manifest_dir / "btcv.json")
    return root, manifest


def test_data_root_is_verified_by_checksum_once_per_node(checksummed, monkeypatch):
    root, manifest = checksummed
    expectation = datacheck.build_expectation(root, manifest, manifest.cases)
    assert all(f.sha256 for f in expectation.files) and len(expectation.files) == 4
    hashed = []
    real = datacheck.sha256_file
    monkeypatch.setattr(datacheck, "sha256_file", lambda path: hashed.append(path) or real(path))
    datacheck.verify_on_node(expectation)
    assert len(hashed) == 4
    datacheck.verify_on_node(expectation)  # same process: nothing checked again
    monkeypatch.setattr(datacheck, "_verified", set())  # another worker process on the node: marker, stat only
    datacheck.verify_on_node(expectation)
    assert len(hashed) == 4


def test_data_root_with_a_changed_file_of_the_same_size_is_refused(checksummed):
    root, manifest = checksummed
    expectation = datacheck.build_expectation(root, manifest, manifest.cases)
    label = root / manifest.cases[1].label
    data = bytearray(label.read_bytes())
    data[-1] ^= 0xFF
    label.write_bytes(bytes(data))
    with pytest.raises(DataRootMismatch, match="sha256 .* the manifest says"):
        datacheck.verify_on_node(expectation, worker="tcp://127.0.0.1:1")


def test_data_root_missing_file_or_other_size_is_refused_without_checksums(synthetic_root, tmp_path, monkeypatch):
    monkeypatch.setenv("AEVAL_NODE_CACHE", str(tmp_path / "node-cache"))
    monkeypatch.setattr(datacheck, "_verified", set())
    manifest = load_benchmark("synthetic", keys=["btcv"])[0]
    root = tmp_path / "data"
    case = manifest.cases[0]
    for relative in (case.image, case.label):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(synthetic_root / relative, root / relative)
    expectation = datacheck.build_expectation(root, manifest, [case])
    assert not any(f.sha256 for f in expectation.files)  # the synthetic manifests carry none
    datacheck.verify_on_node(expectation)
    monkeypatch.setattr(datacheck, "_verified", set())
    with open(root / case.image, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(DataRootMismatch, match="this node's copy of the data root differs"):
        datacheck.verify_on_node(expectation)
    (root / case.image).unlink()
    with pytest.raises(DataRootMismatch, match="does not exist; every node must mount the data root"):
        datacheck.verify_on_node(expectation)


def test_documented_slurm_launcher_renders_a_worker_job_with_gpu_resources_and_pinning():
    """The SLURMCluster arguments of docs/scale_out.md, on the installed dask-jobqueue (scheduler on 127.0.0.1)."""
    import re
    from pathlib import Path

    pytest.importorskip("dask_jobqueue")
    from dask_jobqueue import SLURMCluster

    doc = (Path(__file__).resolve().parents[2] / "docs" / "scale_out.md").read_text()
    call = re.search(r"cluster = SLURMCluster\((.*?)\n\)", doc, re.S).group(1)
    kwargs = eval(f"dict({call})")  # the documented arguments, as written
    kwargs["scheduler_options"] = {"host": "127.0.0.1", "port": 0, "dashboard_address": None}
    cluster = SLURMCluster(**kwargs)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH --gres=gpu:1" in script
    assert "export AEVAL_GPU_IDS=$SLURM_JOB_GPUS" in script
    assert "--resources GPU=1,CONTAINER=1" in script and "tcp://127.0.0.1:" in script


def test_worker_state_travels_empty_and_is_rebuilt_on_the_worker():
    import pickle

    from harness.distributed.tasks import WorkerState, state

    here = WorkerState()
    here.images["sha256:abc"] = "sha256:def"
    there = pickle.loads(pickle.dumps(here))
    assert there.images == {} and there.docker is None and there.gpu_runtime is None
    assert there.lock is not here.lock and isinstance(there.gpus, _GpuSlots)
    assert state() is state()  # outside a worker: one state of the process
