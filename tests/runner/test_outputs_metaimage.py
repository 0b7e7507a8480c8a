"""MetaImage headers a container writes are parsed by the harness before any reader follows them."""

from __future__ import annotations

import io
import os
import time

import numpy as np
import pytest
import SimpleITK as sitk

from harness.errors import CaseFailed
from harness.runner.protocols import metaimage
from harness.runner.protocols.gc import collect_output
from tests.runner.outputs_helpers import gc_job, labels, metaimage_header


def _collect(job, tmp_path):
    return collect_output(job, relative_path="images/abdominal-organ-segmentation", case_id="img0042",
                          max_bytes=64 * 1024**2, keep_as=tmp_path / "kept" / "img0042")


def _refused(job, tmp_path, kind="unsafe_metaimage") -> str:
    with pytest.raises(CaseFailed) as caught:
        _collect(job, tmp_path)
    assert caught.value.kind == kind, caught.value.message
    assert "case img0042" in caught.value.message
    return caught.value.message


def test_an_honest_mha_parses_and_is_kept_byte_for_byte(tmp_path):
    job, folder = gc_job(tmp_path)
    sitk.WriteImage(labels(), str(folder / "out.mha"), useCompression=True)
    header = metaimage.read_header(folder / "out.mha", case_id="img0042")
    assert header.local and header.compressed and header.dim_size == (8, 7, 6)
    assert header.expected_bytes == 6 * 7 * 8
    kept = _collect(job, tmp_path)
    assert kept.name == "img0042.mha" and kept.read_bytes() == (folder / "out.mha").read_bytes()


@pytest.mark.parametrize("target", ["/etc/passwd", "/work/data/RawData/label0001.nii.gz", "out.raw"])
def test_an_mha_must_hold_its_pixels(tmp_path, target):
    job, folder = gc_job(tmp_path)
    (folder / "out.mha").write_bytes(metaimage_header(data_file=target, compressed=True))
    message = _refused(job, tmp_path)
    assert "out.mha" in message and "LOCAL" in message and target in message


@pytest.mark.parametrize("data_file", ["LIST 2D", "slice%03d.raw 1 8 1", "/dev/kmsg", "../other/out.raw",
                                       "sub/out.raw", "..", "/etc/shadow"])
def test_an_mhd_may_name_only_a_plain_file_beside_it(tmp_path, data_file):
    job, folder = gc_job(tmp_path)
    header = metaimage_header(data_file=data_file)
    if data_file.startswith("LIST"):
        header += b"/etc/passwd\n/etc/shadow\n"
    (folder / "out.mhd").write_bytes(header)
    message = _refused(job, tmp_path)
    assert "out.mhd" in message and "ElementDataFile" in message


def test_an_mhd_data_file_must_be_a_regular_file(tmp_path):
    job, folder = gc_job(tmp_path)
    (folder / "out.mhd").write_bytes(metaimage_header(data_file="out.raw"))
    (folder / "out.raw").mkdir()  # a folder where the data should be
    assert "not a regular file" in _refused(job, tmp_path)


def test_a_fifo_as_data_file_is_refused_without_blocking(tmp_path):
    job, folder = gc_job(tmp_path)
    (folder / "out.mhd").write_bytes(metaimage_header(data_file="out.raw"))
    os.mkfifo(folder / "out.raw")
    started = time.monotonic()
    with pytest.raises(CaseFailed) as caught:  # the tree audit already refuses special files
        _collect(job, tmp_path)
    assert caught.value.kind == "special_file_in_output" and "out.raw" in caught.value.message
    header = metaimage.read_header(folder / "out.mhd", case_id="img0042")
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(CaseFailed, match="not a regular file"):  # and so does the data-file check itself
            metaimage.open_data_file(header, case_id="img0042", header_name="out.mhd", dir_fd=fd)
    finally:
        os.close(fd)
    assert time.monotonic() - started < 60  # a blocking open of the fifo would hang here for ever


def test_an_mhd_data_file_that_is_a_link_is_refused(tmp_path):
    job, folder = gc_job(tmp_path)
    host = tmp_path / "ground_truth.raw"
    host.write_bytes(bytes(6 * 7 * 8))
    (folder / "out.mhd").write_bytes(metaimage_header(data_file="out.raw"))
    (folder / "out.raw").symlink_to(host)
    assert _refused(job, tmp_path, kind="symlink_in_output")
    header = metaimage.read_header(folder / "out.mhd", case_id="img0042")
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(CaseFailed, match="links, devices and fifos are refused"):
            metaimage.open_data_file(header, case_id="img0042", header_name="out.mhd", dir_fd=fd)
    finally:
        os.close(fd)


def test_the_header_read_is_capped(tmp_path):
    endless = b"".join(b"Comment%d = %s\n" % (i, b"x" * 100) for i in range(20_000))
    stream = io.BytesIO(endless)  # 2 MB of header lines, no ElementDataFile
    with pytest.raises(CaseFailed, match="no ElementDataFile within the first 64 KiB"):
        metaimage.parse_header(stream, case_id="img0042", name="out.mha")
    assert stream.tell() == metaimage.HEADER_CAP_BYTES


@pytest.mark.parametrize("header, reason", [
    (b"NDims = 3\nDimSize = 4 4\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n", "do not describe"),
    (b"NDims = 3\nDimSize = 4 4 4\nElementType = MET_STRING\nElementDataFile = LOCAL\n", "ElementType"),
    (b"NDims = 3\nNDims = 3\nDimSize = 4 4 4\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n", "twice"),
    (b"NDims = 3\nDimSize = 4 4 -4\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n", "outside"),
    (b"\x89PNG\r\n\x1a\n", "non-ASCII"),
    (b"NDims = 3\nDimSize = 4 4 4\nElementType = MET_UCHAR\nelementdatafile = LOCAL\n"
     b"ElementDataFile = /etc/passwd\n", "must be spelled ElementDataFile"),
    (b"just some text\nElementDataFile = LOCAL\n", "not 'Key = Value'"),
])
def test_malformed_headers_are_refused(header, reason):
    with pytest.raises(CaseFailed, match=reason):
        metaimage.parse_header(io.BytesIO(header), case_id="img0042", name="out.mha")


def test_an_mhd_with_zraw_becomes_one_mha_without_inflating(tmp_path):
    job, folder = gc_job(tmp_path)
    image = labels()
    sitk.WriteImage(image, str(folder / "out.mhd"), useCompression=True)
    zraw = (folder / "out.zraw").read_bytes()
    kept = _collect(job, tmp_path)
    assert kept.name == "img0042.mha"
    data = kept.read_bytes()
    assert data.endswith(b"ElementDataFile = LOCAL\n" + zraw)  # the compressed bytes, copied as they were
    assert f"CompressedDataSize = {len(zraw)}".encode() in data
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(kept))), sitk.GetArrayFromImage(image))
    assert sitk.ReadImage(str(kept)).GetSpacing() == image.GetSpacing()


def test_an_mhd_with_raw_becomes_one_mha(tmp_path):
    job, folder = gc_job(tmp_path)
    image = labels()
    sitk.WriteImage(image, str(folder / "out.mhd"), useCompression=False)
    kept = _collect(job, tmp_path)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(kept))), sitk.GetArrayFromImage(image))


def test_an_mhd_whose_raw_is_shorter_than_its_header_claims_is_refused(tmp_path):
    job, folder = gc_job(tmp_path)
    (folder / "out.mhd").write_bytes(metaimage_header(dim_size=(1024, 1024, 1024), data_file="out.raw"))
    (folder / "out.raw").write_bytes(bytes(1024**2))
    message = _refused(job, tmp_path, kind="unreadable_prediction")
    assert "1048576 bytes" in message and str(1024**3) in message
    assert not (tmp_path / "kept" / "img0042.mha").exists()
