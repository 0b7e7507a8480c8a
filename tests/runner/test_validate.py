"""`harness validate`: static checks and a dry run through the same sandbox as `harness run`."""

from __future__ import annotations

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


def test_wrong_geometry_fails_the_dry_run_with_the_reason(example_images, capsys):
    assert _validate("--image", example_images.hostile_tag("wrong_geometry")) == 1
    out = capsys.readouterr().out
    assert "FAIL  dry run CT" in out and "does not match the input's grid: direction" in out
    assert "FAIL  dry run MR" in out


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
