"""A .nii.gz prediction's voxels, inflated once, strictly and within the bound its checked grid sets.

Why not let ITK inflate it: ITK reads a truncated .nii.gz without a word and fills the missing
voxels with whatever its buffer held (measured: half a file read back as 136k wrong voxels of
336k, no error), and it cannot bound what it inflates before the voxel offset. Why not inflate to
a scratch .nii for ITK: that wrote and read every voxel twice more (0.1 s of a 40 MB case).

The header is parsed by nibabel and checked against what ITK's header read found (the grid and
pixel type the caller has already checked against the reference); then the stream is inflated once
(by zlib-ng, the library ITK bundles: 3x the system zlib here) into one buffer of exactly the bytes
the header says, the gzip member must end right there (its CRC checked), and an empty member after
it (bgzip's end block) is allowed. Anything else fails the case: a stream that ends early
(truncated), one holding more than its grid needs (refused after one byte more), bad gzip. A
header this module does not handle (scaled voxels, another layout) is left to ITK's reader. An
uncompressed .nii (which ITK also reads when cut short) only has its length checked here.
"""

from __future__ import annotations

import gzip
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from zlib_ng import zlib_ng

from harness.errors import CaseFailed, FailureKind
from harness.imageio import PIXEL_DTYPES, Geometry, LabelVolume

#: The most bytes a NIfTI header and its extensions may take before the voxels (its vox_offset).
NIFTI_HEADER_ALLOWANCE = 1024**2
#: Compressed bytes read from the file at a time, and the most inflated bytes held beside the buffer.
CHUNK_BYTES = 1 << 20
PIECE_BYTES = 16 << 20


@dataclass(frozen=True)
class Role:
    """Whose file it is: the word messages use, and the failure kinds its problems become."""

    name: str
    unreadable: FailureKind
    too_large: FailureKind


PREDICTION = Role("prediction", FailureKind.UNREADABLE_PREDICTION, FailureKind.PREDICTION_TOO_LARGE)
#: A truncated or oversized download of the ground truth (the organizer's data) is unreadable data.
GROUND_TRUTH = Role("ground truth", FailureKind.UNREADABLE_GROUND_TRUTH, FailureKind.UNREADABLE_GROUND_TRUTH)


def _header(path: Path, *, case_id: str, role: Role, compressed: bool = True):
    """The fixed NIfTI-1/-2 header (nibabel), or None when the stream does not start with one."""
    import nibabel as nib  # only NIfTI files need it

    try:
        with (gzip.open(path, "rb") if compressed else open(path, "rb")) as stream:
            head = stream.read(nib.Nifti2Header.sizeof_hdr)
    except (OSError, EOFError, zlib.error) as exc:
        problem = "is not valid gzip" if compressed else "could not be read"
        raise CaseFailed(role.unreadable, f"case {case_id}: {role.name} {path} {problem}: {exc}") from None
    sizes = {int.from_bytes(head[:4], order) for order in ("little", "big")}  # sizeof_hdr, in either byte order
    header_class = next((cls for cls in (nib.Nifti1Header, nib.Nifti2Header) if cls.sizeof_hdr in sizes), None)
    if header_class is None or len(head) < header_class.sizeof_hdr:
        return None
    return header_class(binaryblock=head[:header_class.sizeof_hdr], check=False)


def check_voxel_offset(path: Path, *, case_id: str, role: Role = PREDICTION):
    """CaseFailed if the header puts the voxels more than NIFTI_HEADER_ALLOWANCE into the stream.

    Any reader inflates everything before the voxel offset: a 1 MB file whose header claims an
    offset of gigabytes would make it inflate that much. Returns the parsed header (None if the
    stream holds no NIfTI header; the caller's reader then reports what is wrong).
    """
    header = _header(path, case_id=case_id, role=role)
    if header is None:
        return None
    offset = float(header["vox_offset"])
    if not math.isfinite(offset) or offset > NIFTI_HEADER_ALLOWANCE:
        raise CaseFailed(role.too_large, f"case {case_id}: {role.name} {path}: its NIfTI header puts "
                         f"the voxels {offset:.0f} bytes into the stream (vox_offset); at most "
                         f"{NIFTI_HEADER_ALLOWANCE // 1024**2} MiB of header and extensions is allowed: refused")
    return header


def voxel_layout(header, *, size_xyz: tuple[int, ...], itk_dtype: np.dtype) -> tuple[int, np.dtype] | None:
    """(voxel offset, dtype on disk) when the raw voxels are exactly what ITK would return, else None.

    That holds when the header's shape and type are the ones ITK reported (`size_xyz`,
    `itk_dtype`) and no scaling applies (labels are stored unscaled); any other header is read by
    ITK itself.
    """
    if header is None:
        return None
    slope, intercept = header.get_slope_inter()  # (None, None): unscaled
    if slope not in (None, 1.0) or intercept not in (None, 0.0):
        return None
    dtype = header.get_data_dtype()
    if dtype.newbyteorder("=") != itk_dtype or math.prod(header.get_data_shape()) != math.prod(size_xyz):
        return None
    return int(header["vox_offset"]), dtype


def read_voxels(path: Path, *, offset: int, nbytes: int, case_id: str, role: Role = PREDICTION) -> np.ndarray:
    """Bytes [offset, offset + nbytes) of the inflated stream (uint8), which must end there (CRC checked).

    Memory: the buffer plus one compressed chunk and one inflated piece (PIECE_BYTES); inflation
    stops one byte past what the header needs.
    """
    wanted = offset + nbytes
    lead = -offset % 64  # so that the voxels start on a cache line (word-wise kernels read them)
    buffer = np.empty(lead + wanted, dtype=np.uint8)[lead:]
    filled = 0
    inflater = zlib_ng.decompressobj(wbits=zlib_ng.MAX_WBITS | 16)
    begun = False  # the current member has been fed but has not ended
    pending = b""
    at_end = False  # the file is read: what zlib still holds is drained with empty input
    with open(path, "rb") as handle:
        while True:
            if not pending and not at_end:
                pending = handle.read(CHUNK_BYTES)
                at_end = not pending
            try:
                piece = inflater.decompress(pending, min(max(wanted - filled, 1), PIECE_BYTES))
            except zlib_ng.error as exc:
                raise CaseFailed(role.unreadable, f"case {case_id}: {role.name} {path} is not valid gzip: "
                                                  f"{exc}") from None
            if at_end and not pending and not piece and not inflater.eof:
                break  # nothing more will come
            begun = True
            if filled + len(piece) > wanted:
                raise CaseFailed(role.too_large, f"case {case_id}: {role.name} {path} inflates past "
                                 f"the {wanted} bytes its header and grid need: refused")
            buffer[filled:filled + len(piece)] = np.frombuffer(piece, dtype=np.uint8)
            filled += len(piece)
            if inflater.eof:  # a member ended, its CRC checked: another may follow
                pending, begun = inflater.unused_data, False
                inflater = zlib_ng.decompressobj(wbits=zlib_ng.MAX_WBITS | 16)
                if at_end and not pending:
                    break
            else:
                pending = inflater.unconsumed_tail
    if filled < wanted or begun:
        raise CaseFailed(role.unreadable, f"case {case_id}: {role.name} {path} is truncated: its "
                         f"gzip stream ends after {filled} of the {wanted} bytes its header and grid need"
                         + ("" if filled < wanted else ", without the gzip end"))
    return buffer[offset:]


def read_array(path: Path, layout: tuple[int, np.dtype], *, size_xyz: tuple[int, ...], case_id: str,
               role: Role = PREDICTION) -> np.ndarray:
    """The voxels (z, y, x, native byte order) as ITK would read them, from one strict inflate.

    No ITK image is built: that would zero 40 MB and copy them again (0.03 s of a full-size case).
    """
    offset, dtype = layout
    raw = read_voxels(path, offset=offset, nbytes=math.prod(size_xyz) * dtype.itemsize, case_id=case_id, role=role)
    voxels = raw.view(dtype).reshape(tuple(reversed(size_xyz)))
    return voxels if dtype.isnative else voxels.astype(dtype.newbyteorder("="))


def read_volume(path: Path, *, case_id: str, role: Role) -> LabelVolume | None:
    """A .nii.gz label image read strictly (one inflate, truncation refused), or None when its header
    is one for ITK to read (none ITK can parse, scaled voxels, another layout): the caller then does."""
    header = check_voxel_offset(path, case_id=case_id, role=role)
    if header is None:
        return None
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.SetImageIO("NiftiImageIO")
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return None  # e.g. non-orthonormal directions: the caller's reader has the fallback and the message
    if reader.GetNumberOfComponents() != 1 or reader.GetPixelID() not in PIXEL_DTYPES:
        return None
    return read_checked(path, header, reader, case_id=case_id, role=role)


def read_checked(path: Path, header, reader: sitk.ImageFileReader, *, case_id: str, role: Role) -> LabelVolume | None:
    """The voxels of a .nii.gz whose headers the caller has read and checked (nibabel's `header`,
    ITK's `reader` after ReadImageInformation, one scalar pixel type), inflated strictly; None when
    they are for ITK to read (see :func:`voxel_layout`)."""
    size = tuple(reader.GetSize())
    layout = voxel_layout(header, size_xyz=size, itk_dtype=PIXEL_DTYPES[reader.GetPixelID()])
    if layout is None:
        return None
    return LabelVolume(voxels=read_array(path, layout, size_xyz=size, case_id=case_id, role=role),
                       geometry=Geometry.of(reader), pixel_type=sitk.GetPixelIDValueAsString(reader.GetPixelID()))


def check_uncompressed_length(path: Path, *, case_id: str, role: Role) -> None:
    """CaseFailed if an uncompressed .nii is shorter than its header's voxels need.

    ITK reads a truncated .nii without an error too (measured: a file cut to 90 % read back with
    27,000 of 336,000 voxels wrong). Here the file's length is checked against the header's offset,
    shape and type before ITK reads it; a header nibabel cannot parse is left to ITK.
    """
    header = _header(path, case_id=case_id, role=role, compressed=False)
    if header is None:
        return
    try:
        needed = int(header["vox_offset"]) + math.prod(header.get_data_shape()) * header.get_data_dtype().itemsize
    except Exception:  # nibabel refuses the header's type or shape: ITK's reader reports it
        return
    have = path.stat().st_size
    if have < needed:
        raise CaseFailed(role.unreadable, f"case {case_id}: {role.name} {path} is truncated: the file holds {have} "
                                          f"of the {needed} bytes its header and grid need")
