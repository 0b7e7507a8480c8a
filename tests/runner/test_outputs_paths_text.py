"""The output socket path is checked in one place, and untrusted text is made printable in one place."""

from __future__ import annotations

import json

import pytest
import SimpleITK as sitk

from harness.errors import CaseFailed, HarnessError
from harness.cli.publish import _relative_path
from harness.results import failed_record
from harness.runner.failures import classify
from harness.runner.engine import RunOutcome
from harness.runner.protocols.gc import collect_output
from harness.runner.protocols.outputs_tree import check_output_relative_path
from harness.runner.sandbox import SandboxPolicy
from harness.text import printable
from harness.validate import Check, _output_socket_check
from tests.runner.outputs_helpers import RELATIVE, gc_job, labels

FORGED = "boom\x1b[2K\r\x1b[32mPASS  dry run CT   all good\x1b[0m\x1b]0;owned\x07\n\x9b2J\u202etxt.exe"


@pytest.mark.parametrize("good", ["images/abdominal-organ-segmentation", "images/liver_v2.1", "out", "images/x/"])
def test_plain_relative_paths_pass(good):
    assert check_output_relative_path(good) == good.rstrip("/")


@pytest.mark.parametrize("bad", ["..", "../../other-run/output/images/x", "images/../../x", "/etc", "/images/x",
                                 "", ".", "images//x", "images/x y", "images/x\nPASS", "images/\x1b[2Kx", "a\\b",
                                 "images/" + "x" * 300, "/".join("a" * 10)])
def test_climbing_absolute_or_odd_paths_are_refused(bad):
    with pytest.raises(HarnessError) as caught:
        check_output_relative_path(bad, source="image label org.a-eval.output-relative-path")
    assert "image label org.a-eval.output-relative-path" in str(caught.value)
    assert "\x1b" not in str(caught.value) and "\n" not in str(caught.value)


def test_gc_evaluate_and_validate_use_the_same_check():
    assert _relative_path("images/x") == "images/x"
    with pytest.raises(Exception, match="not a relative path inside /output"):
        _relative_path("../x")
    check = _output_socket_check("../../x")
    assert not check.passed and "not a relative path inside /output" in check.message
    assert _output_socket_check("images/abdominal-organ-segmentation").passed


def test_printable_escapes_every_control_character():
    text = printable(FORGED)
    assert text.isprintable() and text.isascii()
    assert "\\x1b[2K" in text and "\\x0d" in text and "\\x0a" in text and "\\x9b" in text and "\\u202e" in text
    assert printable("Dice 0.93 on lëver, 肝臓") == "Dice 0.93 on lëver, 肝臓"


def test_case_failed_and_records_never_carry_raw_escapes():
    failure = CaseFailed("crash", f"case img0001: the container exited with code 1: {FORGED}")
    assert failure.message.isprintable() and str(failure).isprintable()
    record = failed_record("img0001", kind="crash", message=FORGED, organs=["liver"], metrics=["dice"])
    assert record["error"].isprintable()
    assert "\\u001b" not in json.dumps(record) and "\\n" not in json.dumps(record)


def test_a_forged_stderr_line_stays_one_visible_line():
    outcome = RunOutcome(exit_code=1, timed_out=False, oom_killed=False, wall_s=1.0, peak_memory_bytes=None,
                         memory_source="cgroup",
                         stdout_tail=[], stderr_tail=["Traceback", FORGED])
    failure = classify(outcome, SandboxPolicy(), subject="case img0001")
    line = Check("dry run CT", False, failure.message).line()
    assert line.startswith("FAIL") and line.isprintable() and "\\x1b[32mPASS" in line


def test_output_names_with_escapes_are_quoted_printably(tmp_path):
    job, folder = gc_job(tmp_path)
    sitk.WriteImage(labels(), str(folder / "out.mha"))
    (folder / "notes\n\x1b[2KPASS.txt").write_text("x")
    with pytest.raises(CaseFailed) as caught:
        collect_output(job, relative_path=RELATIVE, case_id="c", max_bytes=10**8, keep_as=tmp_path / "k" / "c")
    assert caught.value.kind == "unsupported_output"
    assert "notes\\x0a\\x1b[2KPASS.txt" in caught.value.message and caught.value.message.isprintable()
