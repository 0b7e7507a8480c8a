"""The sandbox policy as a value: inspected without running any container."""

import pytest

from harness.errors import HarnessError
from harness.runner.sandbox import SandboxPolicy, parse_bytes, parse_duration


def test_engine_settings_lock_the_container_down():
    kwargs = SandboxPolicy.create(memory_bytes=parse_bytes("4g"), cpus=2, pids_limit=128).engine_kwargs()
    assert kwargs["network_mode"] == "none"
    assert kwargs["cap_drop"] == ["ALL"]
    assert kwargs["security_opt"] == ["no-new-privileges:true"]
    assert kwargs["pids_limit"] == 128
    assert kwargs["mem_limit"] == kwargs["memswap_limit"] == 4 * 1024**3  # no swap beyond the limit
    assert kwargs["nano_cpus"] == 2_000_000_000
    assert kwargs["shm_size"] == 2 * 1024**3  # half the memory, as Grand-Challenge
    assert kwargs["tmpfs"]["/tmp"].startswith("rw,nosuid,nodev,size=")
    assert kwargs["log_config"]["Config"]["max-size"] == str(10 * 1024**2)
    assert kwargs["privileged"] is False and "device_requests" not in kwargs


def test_gpus_become_a_device_request():
    request = SandboxPolicy.create(gpus="all").engine_kwargs()["device_requests"][0]
    assert request["Count"] == -1 and request["Capabilities"] == [["gpu"]]
    assert SandboxPolicy.create(gpus="2").engine_kwargs()["device_requests"][0]["Count"] == 2
    with pytest.raises(HarnessError, match="--gpus takes 'all' or a positive count"):
        SandboxPolicy.create(gpus="device=0")


def test_unknown_settings_are_rejected_by_name():
    with pytest.raises(TypeError, match="unknown sandbox setting\\(s\\): memroy"):
        SandboxPolicy.create(memroy=1)


def test_explicit_shm_wins_and_policy_is_frozen():
    policy = SandboxPolicy.create(shm_bytes=parse_bytes("1g"))
    assert policy.effective_shm_bytes == 1024**3
    with pytest.raises(Exception):
        policy.memory_bytes = 1


@pytest.mark.parametrize("text,expected", [("512m", 512 * 1024**2), ("8g", 8 * 1024**3), ("1.5G", int(1.5 * 1024**3)),
                                           ("100", 100)])
def test_parse_bytes(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text,expected", [("300", 300.0), ("300s", 300.0), ("10m", 600.0), ("1h", 3600.0)])
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


def test_bad_values_are_clear_errors():
    with pytest.raises(HarnessError, match="cannot read size 'lots'"):
        parse_bytes("lots")
    with pytest.raises(HarnessError, match="below Docker's minimum"):
        SandboxPolicy.create(memory_bytes=1024)
