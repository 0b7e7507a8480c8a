"""Predictions are read header first: size, grid and pixel type are checked before any voxel is read."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import SimpleITK as sitk

from harness.errors import CaseFailed
from harness.imageio import Geometry
from harness.scoring.outputs import read_prediction
from tests.runner.outputs_helpers import compressed_zeros, huge_mha, labels, metaimage_header, peak_rss_of

GIB = 1024**3


def _reference() -> Geometry:
    return Geometry.of(labels())


def _refused(path, kind, **options) -> str:
    with pytest.raises(CaseFailed) as caught:
        read_prediction(path, case_id="img0042", reference=_reference(), **options)
    assert caught.value.kind == kind, caught.value.message
    assert "case img0042" in caught.value.message and path.name in caught.value.message
    return caught.value.message


@pytest.mark.parametrize("name", ["out.mha", "out.mhd", "out.nii.gz", "out.nii", "out.tif", "out.nrrd"])
def test_an_honest_prediction_is_read_once_and_whole(tmp_path, name):
    image = labels()
    sitk.WriteImage(image, str(tmp_path / name), useCompression=True)
    # a TIFF keeps no origin or slice spacing: its own grid is the reference there
    reference = Geometry.of(sitk.ReadImage(str(tmp_path / name))) if name.endswith(".tif") else _reference()
    read = read_prediction(tmp_path / name, case_id="img0042", reference=reference, gc_output=True)
    np.testing.assert_array_equal(read.voxels, sitk.GetArrayFromImage(image))


def test_a_small_file_claiming_a_huge_grid_is_refused_from_its_header(tmp_path):
    bomb = tmp_path / "out.mha"
    bomb.write_bytes(huge_mha())
    assert bomb.stat().st_size < 2 * 1024**2
    message = _refused(bomb, "geometry_mismatch")
    assert "size (1024, 1024, 1024) != (8, 7, 6)" in message


def test_a_nifti_header_claiming_a_huge_grid_is_refused(tmp_path):
    honest = tmp_path / "honest.nii"
    sitk.WriteImage(labels(), str(honest))
    header = bytearray(honest.read_bytes()[:352])
    header[42:48] = np.array([1024, 1024, 1024], dtype="<i2").tobytes()
    bomb = tmp_path / "out.nii.gz"
    bomb.write_bytes(compressed_zeros(GIB, prefix=bytes(header), wrapper="gzip"))
    assert bomb.stat().st_size < 2 * 1024**2
    assert "size (1024, 1024, 1024)" in _refused(bomb, "geometry_mismatch")


def test_a_gzip_stream_inflating_past_its_grid_is_refused(tmp_path):
    image = labels()
    honest = tmp_path / "honest.nii"
    sitk.WriteImage(image, str(honest))
    bomb = tmp_path / "out.nii.gz"  # the right header and voxels, then 1 GiB more
    bomb.write_bytes(compressed_zeros(GIB, prefix=honest.read_bytes(), wrapper="gzip"))
    message = _refused(bomb, "prediction_too_large")
    assert f"inflates past the {honest.stat().st_size} bytes its header and grid need" in message


def test_gzip_members_are_followed_to_the_end(tmp_path):
    """Several members (pigz, bgzip and its empty end block) read whole; garbage after them does not."""
    image = labels()
    honest = (tmp_path / "honest.nii")
    sitk.WriteImage(image, str(honest))
    raw = honest.read_bytes()
    members = tmp_path / "members.nii.gz"
    members.write_bytes(gzip.compress(raw[:200]) + gzip.compress(raw[200:]) + gzip.compress(b""))
    read = read_prediction(members, case_id="img0042", reference=_reference())
    np.testing.assert_array_equal(read.voxels, sitk.GetArrayFromImage(image))
    (tmp_path / "out.nii.gz").write_bytes(members.read_bytes() + b"trailing garbage")
    assert "not valid gzip" in _refused(tmp_path / "out.nii.gz", "unreadable_prediction")


def test_a_nifti_header_putting_its_voxels_a_gigabyte_in_is_refused_before_reading(tmp_path):
    honest = tmp_path / "honest.nii"
    sitk.WriteImage(labels(), str(honest))
    header = bytearray(honest.read_bytes()[:352])
    header[108:112] = np.array([GIB], dtype="<f4").tobytes()  # vox_offset
    bomb = tmp_path / "out.nii.gz"
    bomb.write_bytes(compressed_zeros(GIB, prefix=bytes(header), wrapper="gzip"))
    message = _refused(bomb, "prediction_too_large")
    assert f"{GIB} bytes into the stream (vox_offset)" in message


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.999, -4])
def test_a_truncated_gzip_is_unreadable_not_read_as_garbage(tmp_path, keep):
    """ITK itself reads a truncated .nii.gz without an error, filling the rest with stale memory."""
    voxels = np.random.default_rng(0).integers(0, 5, (60, 70, 80)).astype(np.uint8)
    large = sitk.GetImageFromArray(voxels)
    whole = tmp_path / "whole.nii.gz"
    sitk.WriteImage(large, str(whole), useCompression=True)
    data = whole.read_bytes()
    truncated = tmp_path / "cut.nii.gz"
    truncated.write_bytes(data[:keep] if keep < 0 else data[: int(len(data) * keep)])  # -4: just the size field gone
    with pytest.raises(CaseFailed) as caught:
        read_prediction(truncated, case_id="img0042", reference=Geometry.of(large))
    assert caught.value.kind == "unreadable_prediction" and "cut.nii.gz is truncated" in caught.value.message


def test_a_prediction_spanning_many_chunks_and_pieces_reads_whole_or_not_at_all(tmp_path):
    """Several MiB compressed (many reads) and more than one inflated piece (PIECE_BYTES)."""
    from harness.scoring.nifti_gz import CHUNK_BYTES, PIECE_BYTES

    voxels = np.random.default_rng(5).integers(0, 11, (80, 256, 1024)).astype(np.uint8)
    assert voxels.nbytes > PIECE_BYTES
    image = sitk.GetImageFromArray(voxels)
    whole = tmp_path / "whole.nii.gz"
    sitk.WriteImage(image, str(whole), useCompression=True)
    assert whole.stat().st_size > 3 * CHUNK_BYTES
    read = read_prediction(whole, case_id="img0042", reference=Geometry.of(image))
    np.testing.assert_array_equal(read.voxels, voxels)
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(whole.read_bytes()[:-100])
    with pytest.raises(CaseFailed, match="cut.nii.gz is truncated"):
        read_prediction(cut, case_id="img0042", reference=Geometry.of(image))


def test_a_truncated_uncompressed_nifti_is_unreadable_too(tmp_path):
    """ITK reads a cut .nii without an error as well: its length is checked against its header."""
    voxels = np.random.default_rng(6).integers(0, 5, (60, 70, 80)).astype(np.uint8)
    image = sitk.GetImageFromArray(voxels)
    whole = tmp_path / "whole.nii"
    sitk.WriteImage(image, str(whole))
    cut = tmp_path / "cut.nii"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 9 // 10])
    assert sitk.ReadImage(str(cut)).GetSize() == (80, 70, 60)  # ITK itself says nothing
    with pytest.raises(CaseFailed) as caught:
        read_prediction(cut, case_id="img0042", reference=Geometry.of(image))
    assert caught.value.kind == "unreadable_prediction"
    assert "cut.nii is truncated: the file holds" in caught.value.message


def test_broken_gzip_is_unreadable(tmp_path):
    broken = tmp_path / "out.nii.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00" + b"nonsense" * 10)
    assert "not valid gzip" in _refused(broken, "unreadable_prediction")


@pytest.mark.parametrize("order", ["<", ">"])
def test_big_endian_and_wide_predictions_are_read_as_itk_reads_them(tmp_path, order):
    import nibabel as nib

    voxels = np.random.default_rng(1).integers(0, 300, (6, 7, 8)).astype(order + "i2")
    image = nib.Nifti1Image(voxels.T, np.diag([-0.8, -0.8, 2.5, 1.0]), nib.Nifti1Header(endianness=order))
    image.set_data_dtype(order + "i2")
    image.header.set_slope_inter(1, 0)  # stored unscaled, as labels are
    path = tmp_path / "wide.nii.gz"
    nib.save(image, path)
    itk = sitk.ReadImage(str(path))
    read = read_prediction(path, case_id="img0042", reference=Geometry.of(itk))
    np.testing.assert_array_equal(read.voxels, sitk.GetArrayFromImage(itk))
    assert read.voxels.dtype == np.int16 and read.voxels.dtype.isnative
    assert read.pixel_type == itk.GetPixelIDTypeAsString() and read.geometry == Geometry.of(itk)


def test_pixel_type_and_components_are_checked_before_pixels(tmp_path):
    float_image = sitk.Cast(labels(), sitk.sitkFloat32)
    sitk.WriteImage(float_image, str(tmp_path / "out.mha"))
    assert "32-bit float" in _refused(tmp_path / "out.mha", "non_integer_labels")
    assert "32-bit float" in _refused(tmp_path / "out.mha", "non_integer_labels", gc_output=True)
    wide = sitk.Cast(labels(), sitk.sitkUInt16)
    sitk.WriteImage(wide, str(tmp_path / "wide.mha"))
    assert "uint8 or int8" in _refused(tmp_path / "wide.mha", "unsupported_pixel_type", gc_output=True)
    vector = sitk.Compose([labels(), labels()])
    sitk.WriteImage(vector, str(tmp_path / "vector.mha"))
    assert "2 components" in _refused(tmp_path / "vector.mha", "unreadable_prediction")


def test_grid_differences_are_named(tmp_path):
    image = labels()
    image.SetDirection((-1, 0, 0, 0, 1, 0, 0, 0, 1))
    sitk.WriteImage(image, str(tmp_path / "out.mha"))
    assert "direction" in _refused(tmp_path / "out.mha", "geometry_mismatch")


def test_an_mhd_naming_a_host_file_is_refused_at_scoring_too(tmp_path):
    """Grand-Challenge evaluation reads job outputs straight from /input: the header check runs there too."""
    (tmp_path / "out.mhd").write_bytes(metaimage_header(dim_size=(8, 7, 6), data_file="/etc/passwd"))
    assert "only a plain file name" in _refused(tmp_path / "out.mhd", "unsafe_metaimage")


def test_a_missing_prediction_is_its_own_kind(tmp_path):
    with pytest.raises(CaseFailed) as caught:
        read_prediction(tmp_path / "absent.mha", case_id="img0042", reference=_reference())
    assert caught.value.kind == "missing_prediction"


_MEASURE = """
import sys
from pathlib import Path
from harness.errors import CaseFailed
from harness.scoring.outputs import read_prediction
from tests.runner.outputs_helpers import labels
from harness.imageio import Geometry
import SimpleITK as sitk
try:
    read_prediction(Path(sys.argv[1] if len(sys.argv) > 1 else {path!r}), case_id="c", reference=Geometry.of(labels()))
    print("RESULT ok")
except CaseFailed as failure:
    print("RESULT", failure.kind.value)
"""


@pytest.mark.parametrize(("variant", "outcome"), [("mha_huge_header", "geometry_mismatch"),
                                                  ("nifti_voxel_offset_bomb", "prediction_too_large"),
                                                  ("nifti_gzip_bomb", "prediction_too_large")])
def test_a_bomb_costs_the_harness_no_more_memory_than_an_honest_prediction(tmp_path, variant, outcome):
    honest = tmp_path / "honest.nii.gz"
    sitk.WriteImage(labels(), str(honest), useCompression=True)
    plain = tmp_path / "honest.nii"
    sitk.WriteImage(labels(), str(plain))
    if variant == "mha_huge_header":
        bomb = tmp_path / "bomb.mha"
        bomb.write_bytes(huge_mha())
    elif variant == "nifti_voxel_offset_bomb":
        header = bytearray(plain.read_bytes()[:352])
        header[108:112] = np.array([GIB], dtype="<f4").tobytes()  # vox_offset
        bomb = tmp_path / "bomb.nii.gz"
        bomb.write_bytes(compressed_zeros(2 * GIB, prefix=bytes(header), wrapper="gzip"))
    else:
        bomb = tmp_path / "bomb.nii.gz"
        bomb.write_bytes(compressed_zeros(2 * GIB, prefix=plain.read_bytes(), wrapper="gzip"))
    assert bomb.stat().st_size < 4 * 1024**2
    honest_peak, honest_said = peak_rss_of(_MEASURE.format(path=str(honest)))
    bomb_peak, bomb_said = peak_rss_of(_MEASURE.format(path=str(bomb)))
    assert "RESULT ok" in honest_said and f"RESULT {outcome}" in bomb_said, bomb_said
    print(f"peak RSS: honest {honest_peak / 1024**2:.0f} MiB, {variant} {bomb_peak / 1024**2:.0f} MiB")
    assert bomb_peak < honest_peak + 64 * 1024**2


@pytest.mark.parametrize("name", ["out.nii.gz", "out.tif"])
def test_the_suffix_decides_the_reader(tmp_path, name):
    """A MetaImage header named .nii.gz or .tif is not read as MetaImage (it could name a host file)."""
    (tmp_path / name).write_bytes(metaimage_header(dim_size=(8, 7, 6), data_file="/etc/passwd"))
    _refused(tmp_path / name, "unreadable_prediction")
