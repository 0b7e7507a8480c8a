"""The prepare subcommand as the harness CLI will call it: flags, exit codes, report lines."""

from __future__ import annotations

import pytest

from harness.cli import build_parser
from harness.errors import HarnessError

from tests.data import sources as src


def run_cli(*argv: str) -> int:
    """`harness data ARGV --no-progress` as the command dispatches it (a HarnessError propagates)."""
    args = build_parser().parse_args(["data", *argv, "--no-progress"])
    return args.func(args)


def test_prepare_then_verify_exit_zero(tmp_path, capsys):
    source = src.make_totalseg(tmp_path / "TS", {"s0002": "test", "s0003": "train"}, missing={"s0002": ("stomach",)})
    root = tmp_path / "new" / "root"  # created by prepare
    assert run_cli("prepare", "totalseg_ct", "--source", str(source), "--data-root", str(root),
                   "--allow-count-mismatch") == 0
    out = capsys.readouterr().out
    assert "totalseg_ct: 1 test case(s) found" in out and "overridden by --allow-count-mismatch" in out
    assert "(benchmark contract: 89 from TotalSegmentator CT dataset v2.0.1" in out
    assert "s0002: no structure file for stomach" in out
    assert "totalseg_ct: 1 prepared, 0 already prepared, 0 failed" in out
    assert run_cli("verify", "--data-root", str(root)) == 0
    assert run_cli("prepare", "totalseg_ct", "--source", str(source), "--data-root", str(root),
                   "--allow-count-mismatch", "-q") == 0
    assert "0 prepared, 1 already prepared" in capsys.readouterr().out


def test_failed_case_exits_one_and_names_it(tmp_path, capsys):
    source = src.make_btcv(tmp_path / "btcv", numbers=(1, 2))
    (source / "Abdomen" / "RawData" / "Training" / "label" / "label0002.nii.gz").write_bytes(b"not nifti")
    assert run_cli("prepare", "btcv", "--source", str(source), "--data-root", str(tmp_path / "root"),
                   "--allow-count-mismatch") == 1
    out = capsys.readouterr().out
    assert "FAILED case img0002: cannot read label" in out and "1 prepared, 0 already prepared, 1 failed" in out


def test_usage_errors_raise(tmp_path, monkeypatch):
    monkeypatch.delenv("AEVAL_DATA_ROOT", raising=False)
    source = src.make_btcv(tmp_path / "btcv", numbers=(1,))
    with pytest.raises(HarnessError, match="no test set 'btcv2'.*flare22, amos_ct"):
        run_cli("prepare", "btcv2", "--source", str(source), "--data-root", str(tmp_path / "r"))
    with pytest.raises(HarnessError, match="no data root"):
        run_cli("prepare", "btcv", "--source", str(source))
    with pytest.raises(HarnessError, match="expects 30"):
        run_cli("prepare", "btcv", "--source", str(source), "--data-root", str(tmp_path / "r"))
    with pytest.raises(HarnessError, match="is not a folder"):
        run_cli("prepare", "btcv", "--source", str(tmp_path / "nowhere"), "--data-root", str(tmp_path / "r"))


def test_case_list_file(tmp_path, capsys):
    source = src.make_amos(tmp_path / "download", ct=(8, 13, 22))
    listing = tmp_path / "amos_ct_cases.txt"
    listing.write_text("# the benchmark's cases\namos_0013\n\namos_0022  # second\n")
    assert run_cli("prepare", "amos_ct", "--source", str(source), "--data-root", str(tmp_path / "root"),
                   "--cases", str(listing), "--allow-count-mismatch") == 0
    assert "2 prepared" in capsys.readouterr().out
