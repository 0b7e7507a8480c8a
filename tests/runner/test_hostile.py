"""Hostile and broken submissions: each is contained and reported precisely, nothing else is lost."""

from __future__ import annotations

import hashlib
import json

import pytest

pytestmark = pytest.mark.docker


def _only_case(results, key="btcv"):
    cases = results["datasets"][key]["cases"]
    assert len(cases) == 1
    return cases[0]


def test_writing_into_input_is_refused_and_the_data_untouched(run_harness, example_images, synthetic_root):
    image = synthetic_root / "RawData/Training/img/img0001.nii.gz"
    before = hashlib.sha256(image.read_bytes()).hexdigest()
    code, results, _ = run_harness("--image", example_images.hostile_tag("write_input"))
    case = _only_case(results)
    assert code == 1 and case["status"] == "failed" and case["error_kind"] == "crash"
    assert "Read-only file system" in case["error"] or "Permission denied" in case["error"]
    assert hashlib.sha256(image.read_bytes()).hexdigest() == before


def test_fork_bomb_hits_the_pids_limit(run_harness, example_images):
    code, results, _ = run_harness("--image", example_images.hostile_tag("fork_bomb"), "--pids-limit", "64",
                                   "--time-limit", "30")
    case = _only_case(results)
    assert case["status"] == "failed" and case["error_kind"] in ("crash", "time_limit")
    if case["error_kind"] == "crash":
        processes = int(case["error"].split("fork failed after ")[1].split()[0])
        assert processes < 64


def test_memory_hog_is_killed_and_reported_with_the_limit(run_harness, example_images):
    code, results, _ = run_harness("--image", example_images.hostile_tag("memory_hog"), "--memory", "256m")
    case = _only_case(results)
    assert case["error_kind"] == "memory_limit", case["error"]
    assert "exceeded its memory limit of 256 MiB" in case["error"]
    assert case["runtime"]["oom_killed"] or case["runtime"]["exit_code"] == 137


def test_never_exiting_container_is_killed_at_the_time_limit(run_harness, example_images, docker_client):
    code, results, _ = run_harness("--image", example_images.hostile_tag("never_exit"), "--time-limit", "4")
    case = _only_case(results)
    assert case["error_kind"] == "time_limit" and "Time limit exceeded (4 s)" in case["error"]
    assert 4 <= case["runtime"]["wall_s"] < 30
    assert not docker_client.containers.list(all=True, filters={"label": "org.a-eval.harness=job"})


def test_no_output_uses_the_platform_message(run_harness, example_images):
    _, results, _ = run_harness("--image", example_images.hostile_tag("write_nothing"))
    case = _only_case(results)
    assert case["error_kind"] == "no_output"
    assert "Output directory 'images/abdominal-organ-segmentation' is empty" in case["error"]


def test_float_output_is_refused(run_harness, example_images):
    _, results, _ = run_harness("--image", example_images.hostile_tag("float_output"))
    case = _only_case(results)
    assert case["error_kind"] == "non_integer_labels" and "32-bit float" in case["error"]


def test_wrong_geometry_is_refused(run_harness, example_images):
    _, results, _ = run_harness("--image", example_images.hostile_tag("wrong_geometry"))
    case = _only_case(results)
    assert case["error_kind"] == "geometry_mismatch" and "direction" in case["error"]
    assert all(m["dice"] == 0.0 and "case_failed" in m["flags"] for m in case["metrics"].values())


def test_symlink_to_a_host_path_is_never_followed(run_harness, example_images):
    _, results, out = run_harness("--image", example_images.hostile_tag("symlink_out"))
    case = _only_case(results)
    assert case["error_kind"] == "symlink_in_output" and "/etc/passwd" in case["error"]
    assert not list((out / "predictions").rglob("*")) or not any(p.is_symlink() for p in (out / "predictions").rglob("*"))


def test_two_outputs_use_the_platform_message(run_harness, example_images):
    _, results, _ = run_harness("--image", example_images.hostile_tag("two_outputs"))
    assert "Only 1 image should be produced" in _only_case(results)["error"]


def test_crash_reports_the_last_stderr_line(run_harness, example_images):
    _, results, out = run_harness("--image", example_images.hostile_tag("crash"))
    case = _only_case(results)
    assert case["error_kind"] == "crash"
    assert case["error"].endswith("RuntimeError: CUDA error: no kernel image is available for execution on the device")
    assert "loading model" in (out / "logs" / "btcv" / "img0001.log").read_text()


def test_only_loopback_exists_inside(run_harness, example_images):
    code, results, out = run_harness("--image", example_images.hostile_tag("list_network"))
    assert code == 0 and _only_case(results)["status"] == "ok"
    log = (out / "logs" / "btcv" / "img0001.log").read_text()
    line = next(l for l in log.splitlines() if l.startswith("INTERFACES="))
    assert json.loads(line.split("=", 1)[1]) == ["lo"]


def test_root_image_is_refused_unless_allowed(run_harness, example_images, capsys):
    code, results, _ = run_harness("--image", example_images.HOSTILE_ROOT)
    assert code == 2 and results is None
    assert "runs as root" in capsys.readouterr().err
    code, results, _ = run_harness("--image", example_images.HOSTILE_ROOT, "--allow-root")
    assert code == 0 and _only_case(results)["status"] == "ok"


def test_a_broken_case_does_not_stop_the_others(run_harness, example_images, tmp_path):
    """Failures are per case: the other test set still runs and scores."""
    code, results, _ = run_harness("--image", example_images.hostile_tag("crash"), datasets="btcv,amos_mr", cases=2)
    assert code == 1
    assert [len(results["datasets"][k]["cases"]) for k in ("btcv", "amos_mr")] == [2, 2]
    assert results["aggregates"]["all"]["dice"] == 0.0
