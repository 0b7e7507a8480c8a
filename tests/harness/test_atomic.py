"""harness.atomic: the one atomic writer (whole file or old file, permissions, no temporary left)."""

from __future__ import annotations

import stat

import pytest

from harness.atomic import atomic_path, atomic_write, write_text_atomic


def test_write_replaces_whole_file_with_readable_permissions(tmp_path):
    target = tmp_path / "sub" / "results.json"
    write_text_atomic(target, "old\n")
    write_text_atomic(target, "new\n")
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in target.parent.iterdir()) == ["results.json"]


def test_error_in_block_keeps_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "image.tar"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(target, "wb") as handle:
            handle.write(b"half of the new")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["image.tar"]


def test_temporary_path_keeps_the_suffix_and_folder(tmp_path):
    target = tmp_path / "case_0001.nii.gz"
    with atomic_path(target, permissions=0o600) as temporary:
        assert temporary.parent == tmp_path and temporary.name.endswith(".nii.gz") and temporary != target
        assert not target.exists()
        temporary.write_bytes(b"voxels")
    assert target.read_bytes() == b"voxels"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
