"""Output folders are walked from directory descriptors, with caps, and removed without recursion."""

from __future__ import annotations

import os
import sys

import pytest
import SimpleITK as sitk

from harness.errors import CaseFailed
from harness.runner.protocols import outputs_tree
from harness.runner.protocols.flare import FlareJob, collect_outputs
from harness.runner.protocols.gc import collect_output
from harness.runner.protocols.outputs_tree import audit_tree, open_subfolder, remove_tree
from tests.runner.outputs_helpers import RELATIVE, gc_job, labels, nested_dirs


@pytest.fixture(autouse=True)
def _clean_deep_trees(tmp_path):
    """pytest's own clean-up recurses per level: remove the hostile trees here, without recursion."""
    yield
    remove_tree(tmp_path)


def _audit(root, **caps):
    return audit_tree(root, case_id="img0042", max_bytes=caps.pop("max_bytes", 10 * 1024**2), **caps)


def test_an_honest_tree_lists_its_files(tmp_path):
    job, folder = gc_job(tmp_path)
    sitk.WriteImage(labels(), str(folder / "out.mha"))
    (job.output_dir / "notes.txt").write_text("hello")
    tree = _audit(job.output_dir)
    assert set(tree.files) == {f"{RELATIVE}/out.mha", "notes.txt"}
    assert tree.total_bytes == (folder / "out.mha").stat().st_size + 5


def test_deep_nesting_is_one_failed_case_not_a_recursion_error(tmp_path):
    nested_dirs(tmp_path, 1500)
    assert sys.getrecursionlimit() < 1500  # a recursive walk would die here
    with pytest.raises(CaseFailed) as caught:
        _audit(tmp_path)
    assert caught.value.kind == "output_too_deep" and "deeper than 32 levels" in caught.value.message


def test_a_path_longer_than_path_max_is_one_failed_case_not_an_os_error(tmp_path):
    nested_dirs(tmp_path, 20, name="n" * 250)  # ~5,000 bytes: over PATH_MAX (4096) in 20 levels
    with pytest.raises(CaseFailed) as caught:
        _audit(tmp_path)
    assert caught.value.kind == "output_path_too_long" and "longer than 1024 bytes" in caught.value.message
    assert len(caught.value.message) < 400  # the path is shortened in the message


def test_many_files_are_refused_at_the_entry_cap(tmp_path):
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for i in range(outputs_tree.MAX_ENTRIES + 500):
            os.close(os.open(f"f{i}", os.O_WRONLY | os.O_CREAT, dir_fd=fd))
    finally:
        os.close(fd)
    with pytest.raises(CaseFailed) as caught:
        _audit(tmp_path)
    assert caught.value.kind == "output_too_many_files" and "more than 10000" in caught.value.message


def test_a_symlink_is_refused_and_named(tmp_path):
    job, folder = gc_job(tmp_path)
    (folder / "out.mha").symlink_to("/etc/passwd")
    with pytest.raises(CaseFailed) as caught:
        _audit(job.output_dir)
    assert caught.value.kind == "symlink_in_output" and "/etc/passwd" in caught.value.message


def test_a_fifo_is_refused(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(CaseFailed, match="'pipe' is not a regular file"):
        _audit(tmp_path)


def test_the_byte_cap_is_checked(tmp_path):
    (tmp_path / "big").write_bytes(bytes(2048))
    with pytest.raises(CaseFailed) as caught:
        _audit(tmp_path, max_bytes=1024)
    assert caught.value.kind == "output_too_large"


def test_the_output_folder_itself_is_never_followed_as_a_link(tmp_path):
    elsewhere = tmp_path / "another-run"
    elsewhere.mkdir()
    (tmp_path / "output").symlink_to(elsewhere)
    with pytest.raises(CaseFailed, match="cannot open the output folder"):
        _audit(tmp_path / "output")


def test_a_linked_socket_folder_is_not_entered(tmp_path):
    elsewhere = tmp_path / "other" / "images"
    elsewhere.mkdir(parents=True)
    root = tmp_path / "output"
    root.mkdir()
    (root / "images").symlink_to(elsewhere)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(CaseFailed) as caught:
            open_subfolder(fd, "images/abdominal-organ-segmentation", case_id="img0042")
        assert caught.value.kind == "unsafe_output_path"
        with pytest.raises(CaseFailed):
            open_subfolder(fd, "../other/images", case_id="img0042")
        assert open_subfolder(fd, "absent/folder", case_id="img0042") is None
    finally:
        os.close(fd)


def test_collect_output_lists_what_was_written_elsewhere(tmp_path):
    job, folder = gc_job(tmp_path)
    (job.output_dir / "images" / "wrong-socket").mkdir()
    sitk.WriteImage(labels(), str(job.output_dir / "images" / "wrong-socket" / "out.mha"))
    with pytest.raises(CaseFailed) as caught:
        collect_output(job, relative_path=RELATIVE, case_id="img0042", max_bytes=10**8, keep_as=tmp_path / "k" / "c")
    assert caught.value.kind == "no_output"
    assert "Output directory 'images/abdominal-organ-segmentation' is empty" in caught.value.message
    assert "images/wrong-socket/out.mha" in caught.value.message


def test_collect_output_refuses_a_second_image_and_nifti(tmp_path):
    job, folder = gc_job(tmp_path)
    sitk.WriteImage(labels(), str(folder / "a.mha"))
    sitk.WriteImage(labels(), str(folder / "b.tif"))
    with pytest.raises(CaseFailed, match="Only 1 image should be produced"):
        collect_output(job, relative_path=RELATIVE, case_id="c", max_bytes=10**8, keep_as=tmp_path / "k" / "c")
    (folder / "b.tif").unlink()
    sitk.WriteImage(labels(), str(folder / "b.nii.gz"))
    with pytest.raises(CaseFailed, match="does not accept NIfTI"):
        collect_output(job, relative_path=RELATIVE, case_id="c", max_bytes=10**8, keep_as=tmp_path / "k" / "c")


def test_collect_output_keeps_a_tif(tmp_path):
    job, folder = gc_job(tmp_path)
    sitk.WriteImage(labels(), str(folder / "out.tiff"))
    kept = collect_output(job, relative_path=RELATIVE, case_id="c", max_bytes=10**8, keep_as=tmp_path / "k" / "c")
    assert kept.name == "c.tif" and kept.read_bytes() == (folder / "out.tiff").read_bytes()


def test_flare_collection_reads_through_the_folder_descriptor(tmp_path):
    output = tmp_path / "outputs"
    output.mkdir()
    job = FlareJob(input_dir=tmp_path / "inputs", output_dir=output, names={"a": "case_1", "b": "case_2", "c": "case_3"})
    sitk.WriteImage(labels(), str(output / "case_1.nii.gz"))
    (output / "case_3.nii.gz").mkdir()  # a folder where a prediction should be
    kept = collect_outputs(job, max_bytes=10**8, keep_dir=tmp_path / "kept")
    assert kept["a"] == tmp_path / "kept" / "a.nii.gz" and kept["a"].read_bytes() == (output / "case_1.nii.gz").read_bytes()
    assert isinstance(kept["b"], CaseFailed) and kept["b"].kind == "no_output"
    assert isinstance(kept["c"], CaseFailed) and "not a regular file" in kept["c"].message


def test_flare_collection_fails_every_case_on_a_hostile_tree(tmp_path):
    output = tmp_path / "outputs"
    output.mkdir()
    nested_dirs(output, 100)
    job = FlareJob(input_dir=tmp_path / "inputs", output_dir=output, names={"a": "case_1", "b": "case_2"})
    kept = collect_outputs(job, max_bytes=10**8, keep_dir=tmp_path / "kept")
    assert all(isinstance(v, CaseFailed) and v.kind == "output_too_deep" for v in kept.values())


@pytest.mark.parametrize("shape", ["deep", "long", "wide"])
def test_remove_tree_removes_any_hostile_tree(tmp_path, shape):
    root = tmp_path / "scratch"
    root.mkdir()
    if shape == "deep":
        nested_dirs(root, 1500)
    elif shape == "long":
        nested_dirs(root, 20, name="n" * 250)
    else:
        for i in range(50):
            (root / f"d{i}").mkdir()
            (root / f"d{i}" / "f").write_bytes(b"x")
        (root / "link").symlink_to(tmp_path / "keep-me")
    (tmp_path / "keep-me").write_text("outside the scratch")
    assert os.listdir(root)
    remove_tree(root)
    assert not root.exists()
    assert (tmp_path / "keep-me").read_text() == "outside the scratch"


def test_remove_tree_of_a_missing_folder_is_quiet(tmp_path):
    remove_tree(tmp_path / "absent")
