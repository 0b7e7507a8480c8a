"""Builders of hostile output folders on temporary storage, for the unit tests of output reading."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from harness.runner.protocols.gc import GcJob

RELATIVE = "images/abdominal-organ-segmentation"
REPO = Path(__file__).resolve().parents[2]


def labels(shape=(6, 7, 8), dtype=np.uint8) -> sitk.Image:
    """A small label image (z, y, x) with a non-trivial grid."""
    array = np.zeros(shape, dtype=dtype)
    array[1:4, 2:5, 3:6] = 1
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.8, 0.9, 2.5))
    image.SetOrigin((-10.0, 4.0, 7.5))
    return image


def gc_job(tmp_path: Path) -> tuple[GcJob, Path]:
    """An empty Grand-Challenge job layout; returns (job, the output socket folder to write into)."""
    job = GcJob(input_dir=tmp_path / "input", output_dir=tmp_path / "output", image_uuid="u")
    job.input_dir.mkdir()
    folder = job.output_dir / RELATIVE
    folder.mkdir(parents=True)
    return job, folder


def metaimage_header(*, dim_size=(6, 7, 8), element_type="MET_UCHAR", data_file="LOCAL", extra: str = "",
                     compressed: bool = False) -> bytes:
    lines = ["ObjectType = Image", "NDims = %d" % len(dim_size), "BinaryData = True",
             "BinaryDataByteOrderMSB = False", f"CompressedData = {compressed}",
             "DimSize = " + " ".join(map(str, dim_size)), f"ElementType = {element_type}"]
    if extra:
        lines.append(extra)
    lines.append(f"ElementDataFile = {data_file}")
    return ("\n".join(lines) + "\n").encode()


def huge_mha(side: int = 1024) -> bytes:
    """A ~1 MB .mha claiming side^3 uint8 voxels: zlib zeros, with the CompressedDataSize ITK reads by."""
    body = compressed_zeros(side**3)
    return metaimage_header(dim_size=(side, side, side), compressed=True,
                            extra=f"CompressedDataSize = {len(body)}") + body


def compressed_zeros(total: int, *, prefix: bytes = b"", wrapper: str = "zlib", chunk: int = 64 * 1024**2) -> bytes:
    """A zlib or gzip stream of `prefix` then `total` zero bytes: a 1 GiB bomb of about 1 MB, in a second.

    One chunk of zeros is deflated once, ending in a full flush (no reference to earlier data),
    and that segment is repeated: a valid stream, with a correct checksum, without deflating 1 GiB.
    """
    def segment(data: bytes) -> bytes:
        packer = zlib.compressobj(9, zlib.DEFLATED, -15)
        return packer.compress(data) + packer.flush(zlib.Z_FULL_FLUSH)

    whole, rest = divmod(total, chunk)
    body = [segment(prefix)] if prefix else []
    body += [segment(bytes(chunk))] * whole + ([segment(bytes(rest))] if rest else []) + [b"\x03\x00"]
    if wrapper == "zlib":
        check = zlib.adler32(prefix)
        for _ in range(whole):
            check = zlib.adler32(bytes(chunk), check)
        check = zlib.adler32(bytes(rest), check)
        return b"\x78\xda" + b"".join(body) + check.to_bytes(4, "big")
    crc = zlib.crc32(prefix)
    for _ in range(whole):
        crc = zlib.crc32(bytes(chunk), crc)
    crc = zlib.crc32(bytes(rest), crc)
    size = (len(prefix) + total) % 2**32
    return (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + b"".join(body) + crc.to_bytes(4, "little")
            + size.to_bytes(4, "little"))


def nested_dirs(root: Path, depth: int, name: str = "d") -> None:
    """`depth` nested folders under `root`, made through descriptors (no path is ever that long)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        os.close(os.open("leaf.mha", os.O_WRONLY | os.O_CREAT, dir_fd=fd))
    finally:
        os.close(fd)


def peak_rss_of(code: str) -> tuple[int, str]:
    """(peak resident memory in bytes, stdout) of a fresh interpreter running `code`.

    The harness's allocations happen in SimpleITK's C++ code, which tracemalloc cannot see: the
    kernel's peak RSS of a process doing only that one read is the honest figure.
    """
    script = code + "\nimport resource; print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-2000:]
    line = next(l for l in done.stdout.splitlines() if l.startswith("PEAK "))
    return int(line.split()[1]) * 1024, done.stdout  # ru_maxrss is KiB on Linux

