"""`harness validate`: static checks and a dry run through the same sandbox as `harness run`."""

from __future__ import annotations

import io
import json
import subprocess

import pytest

from harness.cli import main
from harness.jsonio import read_json

pytestmark = pytest.mark.docker


def _validate(*flags: str) -> int:
    return main(["validate", "--memory", "512m", "--time-limit", "60", *flags])


def test_a_good_submission_passes_with_usage_against_limits(example_images, tmp_path, capsys):
    code = _validate("--image", example_images.THRESHOLD, "--report", str(tmp_path / "report.json"))
    out = capsys.readouterr().out
    assert code == 0 and out.rstrip().endswith("checks passed") and "FAIL" not in out
    report = read_json(tmp_path / "report.json", "validation_report")
    names = [c["name"] for c in report["checks"]]
    assert report["passed"] and {"dry run CT", "dry run MR", "label map", "user"} <= set(names)
    ct = next(c for c in report["checks"] if c["name"] == "dry run CT")
    assert "memory" in ct["message"] and "of 512 MiB" in ct["message"] and ct["details"]["runtime"]["exit_code"] == 0


def test_root_image_fails_statically_and_is_not_run(example_images, capsys):
    assert _validate("--image", example_images.HOSTILE_ROOT) == 1
    out = capsys.readouterr().out
    assert "FAIL  user" in out and "Grand-Challenge refuses it" in out
    assert "FAIL  dry run                not run" in out


def test_wrong_geometry_fails_the_dry_run_with_the_reason(example_images, capsys, tmp_path):
    assert _validate("--image", example_images.hostile_tag("wrong_geometry"), "--report",
                     str(tmp_path / "report.json")) == 1
    out = capsys.readouterr().out
    assert "FAIL  dry run CT" in out and "does not match the input's grid: direction" in out
    assert "FAIL  dry run MR" in out
    # which tuple is whose, and how to fix it; no path of the (deleted) scratch folder
    assert "direction: your output has (" in out and ", the input image has (" in out
    assert "Fix: write the segmentation with the input image's geometry" in out and "CopyInformation" in out
    assert "aeval-validate-" not in out and "/tmp/" not in out
    report = read_json(tmp_path / "report.json", "validation_report")
    ct = next(c for c in report["checks"] if c["name"] == "dry run CT")
    assert ct["details"]["error_kind"] == "geometry_mismatch" and "aeval-validate-" not in ct["message"]
    assert isinstance(ct["details"]["log_tail"], list)


def test_report_keeps_the_log_tail(example_images, tmp_path, capsys):
    assert _validate("--image", example_images.hostile_tag("crash"), "--report", str(tmp_path / "report.json")) == 1
    report = read_json(tmp_path / "report.json", "validation_report")
    ct = next(c for c in report["checks"] if c["name"] == "dry run CT")
    assert not ct["passed"] and ct["details"]["log_tail"], ct
    assert "aeval-validate-" not in json.dumps(report)


def test_no_label_map_says_how_to_declare_one(docker_client, example_images, capsys):
    """An image with an empty label-map label declares none: the message names the flag and the labels."""
    image = docker_client.images.get(example_images.hostile_tag("crash"))
    dockerfile = f"FROM {image.id}\nLABEL org.a-eval.label-map=\"\"\n"
    docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag="aeval-test/publishing-nomap:latest")
    assert _validate("--image", "aeval-test/publishing-nomap:latest", "--static-only") == 1
    out = capsys.readouterr().out
    assert "FAIL  label map" in out and "declares no label map" in out
    assert "--label-map a-eval" in out and "org.a-eval.label-map-file" in out


def test_label_map_naming_no_organ_fails(example_images, capsys):
    code = _validate("--image", example_images.THRESHOLD, "--static-only",
                     "--label-map", json.dumps({"name": "brainy", "labels": {"1": "brain"}}))
    out = capsys.readouterr().out
    assert code == 1 and "FAIL  label map" in out and "names no benchmark organ" in out


def test_tarball_submission_is_checked_like_the_platform(docker_client, example_images, tmp_path, capsys):
    tarball = tmp_path / "submission.tar"
    tarball.write_bytes(subprocess.run(["docker", "save", example_images.THRESHOLD], check=True,
                                       capture_output=True).stdout)
    assert _validate("--image-tar", str(tarball), "--static-only") == 0
    assert "PASS  tarball                one linux/amd64 image" in capsys.readouterr().out


def test_missing_image_is_a_failed_check_not_a_crash(capsys):
    assert _validate("--image", "aeval-test/does-not-exist:never") == 1
    assert "FAIL  image" in capsys.readouterr().out
