"""MetaImage (.mha/.mhd) headers, parsed by us before any image library sees the file.

A MetaImage header is text that tells the reader where the pixels are: `ElementDataFile = LOCAL`
(after the header), one file name, a `LIST` of files, or a printf pattern. ITK follows whatever it
says, including absolute host paths, `/dev/kmsg`, or a gzip ground truth with `CompressedData =
True`: a participant could get scored on bytes it never wrote. So a container's header is read
here first, with a byte cap, and only two shapes pass:

- `.mha`: `ElementDataFile = LOCAL` (pixels follow the header in the same file);
- `.mhd`: `LOCAL`, or one plain file name beside the header (no path separator, no `..`, no
  pattern, no `LIST`), which must be a regular file (not a link, device or fifo).

`to_local_mha` then joins an `.mhd` and its data file into one `.mha` by copying bytes (no
decompression), so a prediction is inflated once, when it is scored.
"""

from __future__ import annotations

import math
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from harness.errors import CaseFailed, FailureKind

#: The most header bytes read before `ElementDataFile` must have appeared (ITK writes ~400).
HEADER_CAP_BYTES = 64 * 1024
#: Bytes per element of the MetaIO element types a segmentation may use.
ELEMENT_BYTES = {
    "MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
    "MET_LONG": 4, "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4, "MET_DOUBLE": 8,
}
_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,254}$")
_MAX_DIMS = 4


@dataclass(frozen=True)
class MetaHeader:
    """The facts of a MetaImage header that decide what may be read, and how much."""

    fields: dict[str, str]  # key (as written) -> value, in file order, ElementDataFile excluded
    lines: tuple[bytes, ...]  # the raw header lines before ElementDataFile (to rewrite the header)
    dim_size: tuple[int, ...]
    element_type: str
    channels: int
    compressed: bool
    header_size: int  # HeaderSize of a separate data file: bytes to skip (0), or -1 (data at the end)
    data_file: str  # "LOCAL" or a plain file name
    data_offset: int  # where the pixels start in the header's own file (LOCAL)

    @property
    def expected_bytes(self) -> int:
        """Bytes of the decoded pixel buffer the header asks a reader to allocate."""
        return math.prod(self.dim_size) * self.channels * ELEMENT_BYTES[self.element_type]

    @property
    def local(self) -> bool:
        return self.data_file == "LOCAL"


def _refuse(case_id: str, name: str, what: str) -> CaseFailed:
    return CaseFailed(FailureKind.UNSAFE_METAIMAGE, f"case {case_id}: MetaImage header {name}: {what}")


def parse_header(handle: BinaryIO, *, case_id: str, name: str, require_local: bool = False) -> MetaHeader:
    """Read at most HEADER_CAP_BYTES from `handle` (at its start); CaseFailed for anything unsafe.

    `require_local`: the pixels must follow the header (an .mha).
    """
    head = handle.read(HEADER_CAP_BYTES)
    fields: dict[str, str] = {}
    folded: dict[str, str] = {}  # lower-case key -> value: MetaIO matches keys loosely, so do we
    lines: list[bytes] = []
    position = 0
    while True:
        end = head.find(b"\n", position)
        if end < 0:
            if len(head) >= HEADER_CAP_BYTES:
                raise _refuse(case_id, name, f"no ElementDataFile within the first {HEADER_CAP_BYTES // 1024} KiB")
            end = len(head)
            if position >= end:
                raise _refuse(case_id, name, "no ElementDataFile line (not a MetaImage header?)")
        raw = head[position:end]
        position = end + 1
        try:
            text = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            raise _refuse(case_id, name, "non-ASCII bytes in the header (not a MetaImage header?)") from None
        if not text:
            continue
        if any(ord(c) < 32 and c != "\t" for c in text):
            raise _refuse(case_id, name, "control characters in the header")
        key, equals, value = text.partition("=")
        key, value = key.strip(), value.strip()
        if not equals or not _KEY.match(key):
            raise _refuse(case_id, name, f"line {len(lines) + 1} is not 'Key = Value'")
        if key.lower() in folded:
            raise _refuse(case_id, name, f"key {key} appears twice")
        if key.lower() == "elementdatafile" and key != "ElementDataFile":  # both readers must stop on one line
            raise _refuse(case_id, name, f"key {key} must be spelled ElementDataFile")
        if key.lower() == "elementdatafile":
            if require_local and value != "LOCAL":
                raise _refuse(case_id, name, f"ElementDataFile = {value[:80]}: an .mha must hold its pixels "
                                             "(ElementDataFile = LOCAL)")
            return _header(fields, folded, tuple(lines), value, min(position, len(head)), case_id=case_id, name=name)
        fields[key] = value
        folded[key.lower()] = value
        lines.append(raw.rstrip(b"\r"))


def _header(fields: dict[str, str], folded: dict[str, str], lines: tuple[bytes, ...], data_file: str,
            data_offset: int, *, case_id: str, name: str) -> MetaHeader:
    def integers(key: str, default: str | None = None) -> list[int]:
        text = folded.get(key.lower(), default)
        if text is None:
            raise _refuse(case_id, name, f"no {key}")
        try:
            return [int(v) for v in text.split()]
        except ValueError:
            raise _refuse(case_id, name, f"{key} = {text[:40]} is not a list of integers") from None

    ndims = integers("NDims")
    dim_size = integers("DimSize")
    if len(ndims) != 1 or not 1 <= ndims[0] <= _MAX_DIMS or len(dim_size) != ndims[0]:
        raise _refuse(case_id, name, f"NDims {ndims} and DimSize {dim_size[:8]} do not describe a 1-{_MAX_DIMS}-D image")
    if any(not 1 <= d < 2**31 for d in dim_size):
        raise _refuse(case_id, name, f"DimSize {dim_size} holds a size outside 1..2^31")
    element_type = folded.get("elementtype", "")
    if element_type not in ELEMENT_BYTES:
        raise _refuse(case_id, name, f"ElementType '{element_type[:40]}' is not one of {', '.join(ELEMENT_BYTES)}")
    channels = integers("ElementNumberOfChannels", "1")
    if len(channels) != 1 or not 1 <= channels[0] <= 64:
        raise _refuse(case_id, name, f"ElementNumberOfChannels {channels[:4]} is not 1..64")
    compressed = folded.get("compresseddata", "False").lower() == "true"
    header_size = integers("HeaderSize", "0")
    if len(header_size) != 1 or header_size[0] < -1:
        raise _refuse(case_id, name, f"HeaderSize {header_size[:4]} is not -1 or a byte count")
    if data_file != "LOCAL":
        if data_file.upper().startswith("LIST") or " " in data_file or "%" in data_file:
            raise _refuse(case_id, name, f"ElementDataFile = {data_file[:80]}: lists and file-name patterns are "
                                         "refused; write one .mha (LOCAL) or one .raw/.zraw beside the .mhd")
        if not _PLAIN_NAME.match(data_file) or data_file in (".", ".."):
            raise _refuse(case_id, name, f"ElementDataFile = {data_file[:80]}: only a plain file name in the same "
                                         "folder is accepted (no path, no '..')")
    return MetaHeader(fields=fields, lines=lines, dim_size=tuple(dim_size), element_type=element_type,
                      channels=channels[0], compressed=compressed, header_size=header_size[0], data_file=data_file,
                      data_offset=data_offset)


def read_header(path: Path, *, case_id: str, dir_fd: int | None = None) -> MetaHeader:
    """Parse the header of `path` (never following a link); `.mha` must keep its pixels LOCAL."""
    fd = _open_regular(path.name if dir_fd is not None else path, case_id=case_id, dir_fd=dir_fd, role="header")
    with os.fdopen(fd, "rb") as handle:
        return parse_header(handle, case_id=case_id, name=path.name,
                            require_local=path.name.lower().endswith(".mha"))


def _open_regular(path: Path | str, *, case_id: str, dir_fd: int | None, role: str) -> int:
    """A read-only descriptor of a regular file, opened without following a link."""
    name = os.fspath(path)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError as exc:
        raise CaseFailed(FailureKind.UNSAFE_METAIMAGE, f"case {case_id}: cannot open MetaImage {role} "
                                             f"{os.path.basename(name)}: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise CaseFailed(FailureKind.UNSAFE_METAIMAGE, f"case {case_id}: MetaImage {role} {os.path.basename(name)} "
                                             "is not a regular file")
    os.set_blocking(fd, True)
    return fd


def open_data_file(header: MetaHeader, *, case_id: str, header_name: str, dir_fd: int) -> int:
    """The descriptor of an .mhd's data file: a regular file in the folder `dir_fd`, never a link."""
    if header.local:
        raise ValueError("a LOCAL header has no separate data file")
    try:
        info = os.stat(header.data_file, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        raise _refuse(case_id, header_name, f"its data file {header.data_file} is not beside it") from None
    if not stat.S_ISREG(info.st_mode):
        raise _refuse(case_id, header_name, f"its data file {header.data_file} is not a regular file "
                                            "(links, devices and fifos are refused)")
    return _open_regular(header.data_file, case_id=case_id, dir_fd=dir_fd, role="data file")


def to_local_mha(header: MetaHeader, data_fd: int, target: Path, *, case_id: str, header_name: str) -> Path:
    """Write header + data as one `.mha` with `ElementDataFile = LOCAL`, copying bytes only.

    Uncompressed data must hold at least the bytes the header claims (exactly those are copied);
    compressed data is copied whole (it is bounded by the output cap) and sized by CompressedDataSize.
    """
    size = os.fstat(data_fd).st_size
    skip = max(header.header_size, 0)
    if header.compressed:
        count = size - skip
    else:
        count = header.expected_bytes
        skip = size - count if header.header_size == -1 else skip
    if count <= 0 or skip < 0 or skip + count > size:
        raise CaseFailed(FailureKind.UNREADABLE_PREDICTION, f"case {case_id}: {header_name}: its data file "
                         f"{header.data_file} holds {size} bytes, the header needs {header.expected_bytes}")
    dropped = {"headersize", "compresseddatasize"}
    lines = [line for line in header.lines if line.split(b"=", 1)[0].strip().lower().decode() not in dropped]
    if header.compressed:
        lines.append(b"CompressedDataSize = %d" % count)
    lines.append(b"ElementDataFile = LOCAL")
    with open(target, "wb") as out:
        out.write(b"\n".join(lines) + b"\n")
        os.lseek(data_fd, skip, os.SEEK_SET)
        left = count
        while left:
            chunk = os.read(data_fd, min(left, 1 << 20))
            if not chunk:
                raise CaseFailed(FailureKind.UNREADABLE_PREDICTION, f"case {case_id}: {header.data_file} shrank while read")
            out.write(chunk)
            left -= len(chunk)
    return target
