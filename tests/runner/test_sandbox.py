"""The sandbox policy as a value: inspected without running any container."""

import pytest

from harness.errors import HarnessError
from harness.runner.sandbox import SandboxPolicy, format_bytes, parse_bytes, parse_duration


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


def test_gpu_request_is_pinned_to_the_workers_devices_other_limits_unchanged():
    policy = SandboxPolicy(gpus="1", memory_bytes=2 * 1024**3)
    pinned = policy.pinned_to(["3"])
    assert pinned.gpu_device_ids == ("3",) and pinned.describe() == policy.describe()
    request = pinned.engine_kwargs()["device_requests"][0]
    assert request["DeviceIDs"] == ["3"] and request["Count"] in (None, 0)
    base, ours = policy.engine_kwargs(), pinned.engine_kwargs()
    assert {k: v for k, v in base.items() if k not in ("device_requests", "log_config")} == \
        {k: v for k, v in ours.items() if k not in ("device_requests", "log_config")}
    assert SandboxPolicy().pinned_to(["3"]) == SandboxPolicy()  # CPU runs: nothing to pin
    assert policy.pinned_to([]) is policy  # no ids known: the engine picks
    assert SandboxPolicy(gpus="all").pinned_to(["0", "1"]).engine_kwargs()["device_requests"][0]["DeviceIDs"] == \
        ["0", "1"]
    with pytest.raises(HarnessError, match="device ids were given for a policy without GPUs"):
        SandboxPolicy(gpu_device_ids=("0",))


def test_root_filesystem_is_read_only_with_a_sized_tmp():
    kwargs = SandboxPolicy.create(tmp_bytes=parse_bytes("64m")).engine_kwargs()
    assert kwargs["read_only"] is True
    assert f"size={64 * 1024**2}" in kwargs["tmpfs"]["/tmp"]


def test_command_line_defaults_come_from_the_policy():
    """No sandbox flag has a default of its own: not given, the policy's default applies and is shown."""
    from harness.cli import build_parser
    from harness.cli.flags import sandbox_policy as _policy

    parser = build_parser()
    args = parser.parse_args(["run", "--image", "x", "--out", "o"])
    assert _policy(args) == SandboxPolicy()
    args = parser.parse_args(["run", "--image", "x", "--out", "o", "--memory", "2g", "--time-limit", "10m",
                              "--output-limit", "256m", "--output-files", "50", "--tmp-size", "1g"])
    policy = _policy(args)
    assert (policy.memory_bytes, policy.time_limit_s, policy.output_max_bytes, policy.output_max_files,
            policy.tmp_bytes) == (2 * 1024**3, 600.0, 256 * 1024**2, 50, 1024**3)
    run_parser = parser._subparsers._group_actions[0].choices["run"]
    helps = {a.dest: a.help for a in run_parser._actions}
    assert helps["memory"].endswith(f"(default {format_bytes(SandboxPolicy().memory_bytes)})")
    assert helps["time_limit"].endswith(f"(default {SandboxPolicy().time_limit_s:g} s)")
    assert helps["output_limit"].endswith(f"(default {format_bytes(SandboxPolicy().output_max_bytes)})")
