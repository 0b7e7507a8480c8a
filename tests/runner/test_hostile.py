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


# -- outputs are untrusted bytes: headers, bombs, paths, trees, text ------------------------------------

@pytest.fixture
def scratch_root(tmp_path, monkeypatch):
    """The harness's scratch folders go here, so a test can see that none is left behind."""
    import tempfile

    from harness.runner.protocols.outputs_tree import remove_tree

    root = tmp_path / "scratch"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    yield root
    remove_tree(root)  # a leftover hostile tree must not break pytest's own (recursive) clean-up


@pytest.mark.parametrize("behaviour, fragment", [
    ("mha_host_file", "ElementDataFile = /etc/passwd: an .mha must hold its pixels"),
    ("mhd_list", "ElementDataFile = LIST 2D: lists and file-name patterns are refused"),
    ("mhd_device", "ElementDataFile = /dev/kmsg: only a plain file name in the same folder"),
])
def test_metaimage_headers_naming_host_files_are_refused(run_harness, example_images, behaviour, fragment):
    code, results, out = run_harness("--image", example_images.hostile_tag(behaviour))
    case = _only_case(results)
    assert code == 1 and case["error_kind"] == "unsafe_metaimage", case["error"]
    assert case["error"].startswith("case img0001: MetaImage header out.m") and fragment in case["error"]
    assert not list((out / "predictions").rglob("*.*"))


@pytest.mark.parametrize("behaviour", ["mha_huge", "mhd_huge"])
def test_a_small_output_claiming_a_huge_grid_is_refused_from_its_header(run_harness, example_images, behaviour):
    code, results, out = run_harness("--image", example_images.hostile_tag(behaviour))
    case = _only_case(results)
    assert case["error_kind"] == "geometry_mismatch" and "size (1024, 1024, 1024)" in case["error"], case["error"]
    kept = list((out / "predictions" / "btcv").iterdir())
    assert [p.suffix for p in kept] == [".mha"] and kept[0].stat().st_size < 4 * 1024**2  # bytes copied, not inflated


def test_a_flare_gzip_bomb_fails_its_cases_and_the_run_goes_on(run_harness, example_images):
    code, results, _ = run_harness("--image", example_images.HOSTILE_FLARE_BOMB, cases=2)
    cases = results["datasets"]["btcv"]["cases"]
    assert code == 1 and len(cases) == 2
    for case in cases:
        assert case["error_kind"] == "geometry_mismatch" and "size (1024, 1024, 1024)" in case["error"], case["error"]


def test_a_climbing_output_path_label_is_refused_where_the_image_is_resolved(run_harness, example_images, capsys):
    code, results, _ = run_harness("--image", example_images.HOSTILE_OUTPUT_CLIMB)
    assert code == 2 and results is None
    err = capsys.readouterr().err
    assert "image label org.a-eval.output-relative-path" in err and "no '..'" in err
    code, results, _ = run_harness("--image", example_images.hostile_tag("write_nothing"),
                                   "--output-relative-path", "/etc")
    assert code == 2 and results is None and "--output-relative-path '/etc'" in capsys.readouterr().err


@pytest.mark.parametrize("behaviour, kind, fragment", [
    ("deep_tree", "output_too_deep", "deeper than 32 levels"),
    ("long_path", "output_path_too_long", "longer than 1024 bytes"),
    ("many_files", "output_too_many_files", "more than 10000 files and folders"),
])
def test_hostile_trees_are_one_failed_case_and_leave_no_scratch(run_harness, example_images, scratch_root,
                                                                behaviour, kind, fragment):
    code, results, _ = run_harness("--image", example_images.hostile_tag(behaviour), "--time-limit", "120")
    case = _only_case(results)
    assert code == 1 and case["error_kind"] == kind and fragment in case["error"], case["error"]
    # This (still living) harness keeps its per-owner folder until it exits; no case folder may stay in it.
    leftovers = [case_dir for owner in scratch_root.glob("aeval-scratch/*") for case_dir in owner.iterdir()]
    assert [p for p in scratch_root.iterdir() if p.name != "aeval-scratch"] == [] and leftovers == []


def test_escapes_in_names_and_stderr_are_stored_and_printed_inert(run_harness, example_images):
    _, results, out = run_harness("--image", example_images.hostile_tag("escape_names"))
    case = _only_case(results)
    assert case["error_kind"] == "unsupported_output" and "notes\\x0a\\x1b[2K\\x0dPASS.txt" in case["error"]
    _, results, out = run_harness("--image", example_images.hostile_tag("ansi_crash"), out=out.parent / "out2")
    case = _only_case(results)
    assert case["error_kind"] == "crash" and case["error"].isprintable() and "\\x1b[32mPASS" in case["error"]
    raw = (out.parent / "out2" / "results.json").read_text()
    assert "\x1b" not in raw and "\\u001b" not in raw


def test_validate_prints_one_inert_line_per_check(example_images, capsys):
    from harness.cli import main

    code = main(["validate", "--image", example_images.hostile_tag("ansi_crash"), "--time-limit", "60",
                 "--memory", "512m"])
    printed = capsys.readouterr().out
    assert code != 0 and "\x1b" not in printed and "\r" not in printed
    dry = [line for line in printed.splitlines() if "dry run" in line]
    assert dry and all(line.startswith("FAIL") for line in dry), printed


def test_an_unforeseen_error_in_the_container_step_is_a_failed_case(docker_client, tmp_path):
    """Any exception while handling a case (here: an input SimpleITK cannot read) fails that case only."""
    from harness.manifest import InputSocket
    from harness.runner.run import run_gc_case
    from harness.runner.sandbox import SandboxPolicy

    broken = tmp_path / "img.nii.gz"
    broken.write_bytes(b"not an image")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    result = run_gc_case(image_id="unused", policy=SandboxPolicy(), case_id="img0009", image_path=broken,
                         socket=InputSocket(slug="ct-image", title="CT", relative_path="images/ct"),
                         output_relative_path="images/abdominal-organ-segmentation",
                         predictions_dir=tmp_path / "pred", log_path=tmp_path / "log", client=docker_client,
                         scratch_dir=scratch)
    assert result.prediction is None and result.failure_kind == "harness_error"
    assert result.failure_message.startswith("case img0009: the harness could not handle this output (RuntimeError")
    assert list(scratch.iterdir()) == []
