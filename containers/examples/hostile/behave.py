"""Hostile and broken submissions, one behaviour per image, to prove the sandbox contains them.

Each behaviour is what a buggy or malicious participant container might do; the harness must
contain it and report it precisely without losing anything else. Selected by the first argument.
"""

from __future__ import annotations

import json
import os
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk

OUT = Path("/output/images/abdominal-organ-segmentation")


def the_input() -> Path:
    inputs = json.loads(Path("/input/inputs.json").read_text())
    folder = Path("/input") / inputs[0]["interface"]["relative_path"]
    return next(folder.glob("*.mha"))


def write_labels(array: np.ndarray, reference: sitk.Image, *, spacing=None, direction=None) -> None:
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    if spacing is not None:
        image.SetSpacing(spacing)
    if direction is not None:
        image.SetDirection(direction)
    OUT.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(OUT / "out.mha"))


def write_input() -> None:
    target = the_input()
    with open(target, "r+b") as handle:  # raises: /input is mounted read-only
        handle.write(b"corrupted")


def fork_bomb() -> None:
    children = 0
    try:
        while True:
            if os.fork() == 0:
                time.sleep(60)
                os._exit(0)
            children += 1
    except OSError as exc:
        sys.exit(f"fork failed after {children} processes: {exc.strerror}")


def memory_hog() -> None:
    hoard = []
    while True:
        hoard.append(np.ones(64 * 1024 * 1024, dtype=np.uint8))  # touch every page


def never_exit() -> None:
    while True:
        time.sleep(1)


def write_nothing() -> None:
    print("done, but wrote nothing")


def float_output() -> None:
    reference = sitk.ReadImage(str(the_input()))
    write_labels(np.full(sitk.GetArrayViewFromImage(reference).shape, 1.5, dtype=np.float32), reference)


def wrong_geometry() -> None:
    reference = sitk.ReadImage(str(the_input()))
    shape = sitk.GetArrayViewFromImage(reference).shape
    flipped = [-d for d in reference.GetDirection()]
    write_labels(np.zeros(shape, dtype=np.uint8), reference, direction=flipped)


def symlink_out() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    os.symlink("/etc/passwd", OUT / "out.mha")


def two_outputs() -> None:
    reference = sitk.ReadImage(str(the_input()))
    write_labels(np.zeros(sitk.GetArrayViewFromImage(reference).shape, dtype=np.uint8), reference)
    sitk.WriteImage(sitk.ReadImage(str(OUT / "out.mha")), str(OUT / "second.mha"))


def list_network() -> None:
    interfaces = sorted(os.listdir("/sys/class/net"))
    print("INTERFACES=" + json.dumps(interfaces))
    reference = sitk.ReadImage(str(the_input()))
    write_labels(np.zeros(sitk.GetArrayViewFromImage(reference).shape, dtype=np.uint8), reference)


def crash() -> None:
    print("loading model", file=sys.stderr)
    raise RuntimeError("CUDA error: no kernel image is available for execution on the device")


# -- outputs that attack the harness's reading of them (issue: outputs are untrusted bytes) -------------

def _deflated_zeros(total: int, chunk: int = 64 * 1024**2) -> bytes:
    """Raw deflate of `total` zero bytes, ~1 MB per GiB, without deflating a GiB (one segment, repeated)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = packer.compress(bytes(chunk)) + packer.flush(zlib.Z_FULL_FLUSH)
    return segment * (total // chunk) + b"\x03\x00"


def _meta_header(reference: sitk.Image, *, data_file: str, dim_size=None, compressed: bool = False) -> str:
    size = dim_size or reference.GetSize()
    return "\n".join([
        "ObjectType = Image", "NDims = 3", "BinaryData = True", "BinaryDataByteOrderMSB = False",
        f"CompressedData = {compressed}",
        "TransformMatrix = " + " ".join(str(v) for v in reference.GetDirection()),
        "Offset = " + " ".join(str(v) for v in reference.GetOrigin()),
        "ElementSpacing = " + " ".join(str(v) for v in reference.GetSpacing()),
        "DimSize = " + " ".join(str(v) for v in size), "ElementType = MET_UCHAR",
        f"ElementDataFile = {data_file}"]) + "\n"


def mha_host_file() -> None:
    """An .mha whose pixels are 'a host file': the harness would read its bytes as the prediction."""
    reference = sitk.ReadImage(str(the_input()))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "out.mha").write_text(_meta_header(reference, data_file="/etc/passwd", compressed=True))


def mhd_list() -> None:
    reference = sitk.ReadImage(str(the_input()))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "out.mhd").write_text(_meta_header(reference, data_file="LIST 2D") + "/etc/passwd\n/etc/shadow\n")


def mhd_device() -> None:
    """Data file /dev/kmsg: a read that never ends."""
    reference = sitk.ReadImage(str(the_input()))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "out.mhd").write_text(_meta_header(reference, data_file="/dev/kmsg"))


def mha_huge() -> None:
    """A ~1 MB .mha claiming 1024^3 voxels."""
    reference = sitk.ReadImage(str(the_input()))
    OUT.mkdir(parents=True, exist_ok=True)
    body = b"\x78\xda" + _deflated_zeros(1024**3)
    header = _meta_header(reference, data_file="LOCAL", dim_size=(1024, 1024, 1024), compressed=True)
    header = header.replace("ElementDataFile", f"CompressedDataSize = {len(body)}\nElementDataFile")
    (OUT / "out.mha").write_bytes(header.encode() + body)


def mhd_huge() -> None:
    """The same bomb as an .mhd + .zraw pair (once inflated twice by the harness)."""
    reference = sitk.ReadImage(str(the_input()))
    OUT.mkdir(parents=True, exist_ok=True)
    body = b"\x78\xda" + _deflated_zeros(1024**3)
    (OUT / "out.mhd").write_text(_meta_header(reference, data_file="out.zraw", dim_size=(1024, 1024, 1024),
                                              compressed=True))
    (OUT / "out.zraw").write_bytes(body)


def flare_gzip_bomb() -> None:
    """FLARE protocol: every prediction a ~1 MB .nii.gz whose header claims 1024^3 voxels."""
    outputs = Path("/workspace/outputs")
    for source in sorted(Path("/workspace/inputs").glob("*_0000.nii.gz")):
        name = source.name[: -len("_0000.nii.gz")]
        scratch = outputs / f"{name}.tmp.nii"
        sitk.WriteImage(sitk.Image(2, 2, 2, sitk.sitkUInt8), str(scratch))
        header = bytearray(scratch.read_bytes()[:352])
        scratch.unlink()
        header[42:48] = np.array([1024, 1024, 1024], dtype="<i2").tobytes()
        packer = zlib.compressobj(9, zlib.DEFLATED, -15)
        first = packer.compress(bytes(header)) + packer.flush(zlib.Z_FULL_FLUSH)
        (outputs / f"{name}.nii.gz").write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + first
                                                + _deflated_zeros(1024**3) + bytes(8))


def _nest(name: str, depth: int) -> None:
    Path("/output/nest").mkdir(parents=True, exist_ok=True)
    os.chdir("/output/nest")
    for _ in range(depth):
        os.mkdir(name)
        os.chdir(name)
    Path("leaf.txt").write_text("deep")


def deep_tree() -> None:
    _nest("d", 1500)


def long_path() -> None:
    _nest("n" * 250, 20)


def many_files() -> None:
    folder = Path("/output/junk")
    folder.mkdir(parents=True)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    for i in range(300_000):
        os.close(os.open(f"f{i}", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))


def escape_names() -> None:
    """A valid prediction beside a file whose name would forge lines and colours when printed."""
    reference = sitk.ReadImage(str(the_input()))
    write_labels(np.zeros(sitk.GetArrayViewFromImage(reference).shape, dtype=np.uint8), reference)
    (OUT / "notes\n\x1b[2K\rPASS.txt").write_text("x")


def ansi_crash() -> None:
    print("loading model", file=sys.stderr)
    sys.stderr.write("\x1b[2K\r\x1b[32mPASS  dry run CT             all good\x1b[0m\x1b]0;owned\x07\n")
    sys.exit(1)


BEHAVIOURS = {f.__name__: f for f in (write_input, fork_bomb, memory_hog, never_exit, write_nothing, float_output,
                                      wrong_geometry, symlink_out, two_outputs, list_network, crash,
                                      mha_host_file, mhd_list, mhd_device, mha_huge, mhd_huge, flare_gzip_bomb,
                                      deep_tree, long_path, many_files, escape_names, ansi_crash)}

if __name__ == "__main__":
    BEHAVIOURS[sys.argv[1]]()
