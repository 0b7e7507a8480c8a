"""Scratch folders per owner and the capped output folder, on temporary folders (no Docker needed)."""

from __future__ import annotations

import errno
import os
import socket

import pytest

from harness.runner import outputfs, scratch

DEAD_PID = 2**22 - 3  # above this kernel's pid_max: never alive


def test_a_dead_owners_scratch_is_removed_a_live_ones_kept(tmp_path):
    mine = scratch.owner_dir(tmp_path)
    (mine / "case").mkdir()
    dead = scratch.scratch_root(tmp_path) / f"{socket.gethostname()}-{DEAD_PID}-123"
    (dead / "aeval-job-x" / "job").mkdir(parents=True)
    reused = scratch.scratch_root(tmp_path) / f"{socket.gethostname()}-{os.getpid()}-1"  # our pid, not our start
    reused.mkdir()
    elsewhere = scratch.scratch_root(tmp_path) / f"other-host-{DEAD_PID}-1"
    elsewhere.mkdir()
    assert scratch.remove_dead_owners(tmp_path) == 2
    assert (mine / "case").is_dir() and elsewhere.is_dir()
    assert not dead.exists() and not reused.exists()


def test_owner_name_round_trips_host_names_with_dashes():
    assert scratch._parse_owner("node-a-7-1234-99") == ("node-a-7", 1234, "99")
    assert scratch._parse_owner("junk") is None


def test_the_fallback_walk_stops_at_either_cap(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_bytes(b"x" * 1000)
    assert not outputfs._walk_exceeds(tmp_path, 1000, 2)
    assert outputfs._walk_exceeds(tmp_path, 999, 2)
    (tmp_path / "g").write_bytes(b"")
    assert outputfs._walk_exceeds(tmp_path, 1000, 2)
    os.symlink("/etc/passwd", tmp_path / "link")  # never followed: its target's size does not count
    assert not outputfs._walk_exceeds(tmp_path, 1000, 10)


def test_without_mounting_the_folder_stays_plain_and_is_watched(tmp_path, monkeypatch):
    monkeypatch.setattr(outputfs, "can_mount", lambda: False)
    folder = tmp_path / "output"
    folder.mkdir()
    with outputfs.CappedOutputFolder(folder, max_bytes=100, max_files=5) as capped:
        assert not capped.mounted and not capped.exceeded()
        (folder / "big").write_bytes(b"x" * 101)
        assert capped.exceeded()


@pytest.mark.skipif(not outputfs.can_mount(), reason="needs root, mkfs.ext4 and loop devices")
def test_the_output_folder_is_its_own_filesystem_of_the_cap(tmp_path):
    folder = tmp_path / "output"
    folder.mkdir()
    folder.chmod(0o777)
    cap = 8 * 1024**2
    with outputfs.CappedOutputFolder(folder, max_bytes=cap, max_files=50) as capped:
        assert capped.mounted and os.path.ismount(folder) and list(folder.iterdir()) == []
        assert oct(folder.stat().st_mode & 0o777) == oct(0o777)
        (folder / "fits").write_bytes(b"x" * cap)
        assert not capped.exceeded()
        with pytest.raises(OSError) as caught:
            with open(folder / "too-much", "wb") as handle:
                for _ in range(64):
                    handle.write(b"x" * 1024**2)
                    handle.flush()
        assert caught.value.errno == errno.ENOSPC
        assert capped.exceeded()
        assert (tmp_path / ".output.ext4").stat().st_blocks * 512 < 2 * cap + 32 * 1024**2  # never the 64 MiB
    assert not os.path.ismount(folder) and not (tmp_path / ".output.ext4").exists()


@pytest.mark.skipif(not outputfs.can_mount(), reason="needs root, mkfs.ext4 and loop devices")
def test_the_file_cap_is_the_filesystems_inode_count(tmp_path):
    folder = tmp_path / "output"
    folder.mkdir()
    with outputfs.CappedOutputFolder(folder, max_bytes=1024**2, max_files=100) as capped:
        with pytest.raises(OSError) as caught:
            for index in range(5000):
                (folder / f"f{index}").touch()
        assert caught.value.errno == errno.ENOSPC and capped.exceeded()


@pytest.mark.skipif(not outputfs.can_mount(), reason="needs root, mkfs.ext4 and loop devices")
def test_removing_a_scratch_folder_unmounts_what_is_inside(tmp_path):
    dead = scratch.scratch_root(tmp_path) / f"{socket.gethostname()}-{DEAD_PID}-1"
    folder = dead / "aeval-job-x" / "output"
    folder.mkdir(parents=True)
    capped = outputfs.CappedOutputFolder(folder, max_bytes=1024**2, max_files=10).__enter__()
    assert capped.mounted and scratch.mounts_under(dead) == [folder]
    scratch.remove_dead_owners(tmp_path)  # as if its harness had been killed mid-case
    assert not os.path.ismount(folder) and not dead.exists()
