"""Containers the platforms refuse, recognised precisely so the rules can say why.

* Matroska / WebM (EBML ``DocType``), AVI (``RIFF AVI``): kind ``video``, with the first video
  track's size, codec, fps and duration when the headers are found (see
  :mod:`workers.probe.matroska` and :mod:`workers.probe.streams`).
* MPEG-TS: kind ``video``; the first video stream's codec from the PAT/PMT, and its fps and
  duration from the PES timestamps at the head and the tail (see :mod:`workers.probe.mpegts`).
* PDF: kind ``document``; ``codec`` ``pdf-<version>`` from the header; ``pages`` only from a
  linearization dictionary (``/Linearized ... /N n``) in the first 1 KiB: a PDF is never scanned.
* DICOM: kind ``other``, container ``dicom``; ``codec`` the Transfer Syntax UID (0002,0010)
  from the file meta group.
* Text: kind ``document``, container ``text``, ``codec`` ``utf-8`` (the first 4 KiB decode as
  UTF-8 and hold no NUL byte).
"""

from __future__ import annotations

import re
import struct

from workers.probe import matroska, mpegts, streams
from workers.probe.layout import MIME, exact
from workers.probe.media import Kind, MediaInfo, ProbeError
from workers.probe.sniff import sniff
from workers.probe.sparse import Sparse


def result(container: str, kind: Kind, buf: Sparse, **fields: object) -> MediaInfo:
    """A valid result for one of these containers."""
    info = MediaInfo(
        valid=True, kind=kind, container=container, mime_type=MIME[container], file_size=buf.size
    )
    for name, value in fields.items():
        setattr(info, name, value)
    return info


def _mpegts(buf: Sparse) -> MediaInfo:
    return result("mpegts", "video", buf, **mpegts.mpegts(buf))


# explicit-VR value representations with a 2-byte reserved field and a 4-byte length
_DICOM_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
_PDF_VERSION = re.compile(rb"%PDF-(\d\.\d)")
_LINEARIZED_PAGES = re.compile(rb"/N\s+(\d+)")


def _pdf(buf: Sparse) -> MediaInfo:
    head = buf.get(0, 1024)
    version = _PDF_VERSION.match(head)
    if version is None:
        raise ProbeError(f"pdf: header {head[:8]!r} has no version (expected %PDF-n.n)")
    pages = None
    start = head.find(b"<<")
    end = head.find(b">>", start)
    if start >= 0 and end > start and b"/Linearized" in head[start:end]:
        found = _LINEARIZED_PAGES.search(head, start, end)
        pages = int(found.group(1)) if found else None
    return result("pdf", "document", buf, codec=f"pdf-{version.group(1).decode()}", pages=pages)


def _dicom(buf: Sparse) -> MediaInfo:
    if exact(buf, 128, 4, "dicom preamble") != b"DICM":
        raise ProbeError("dicom: no 'DICM' after the 128-byte preamble")
    pos, syntax = 132, None
    while True:
        head = buf.get(pos, 8)
        if len(head) < 8 or head[:2] != b"\x02\x00":
            break
        element = struct.unpack_from("<H", head, 2)[0]
        vr = head[4:6]
        if vr in _DICOM_LONG_VRS:
            length, value_at = (
                struct.unpack("<I", exact(buf, pos + 8, 4, "dicom element length"))[0],
                pos + 12,
            )
        else:
            length, value_at = struct.unpack_from("<H", head, 6)[0], pos + 8
        if element == 0x0010:
            value = exact(buf, value_at, length, "dicom Transfer Syntax UID")
            syntax = value.rstrip(b"\x00 ").decode("ascii", "replace")
        pos = value_at + length
    if syntax is None:
        raise ProbeError("dicom: file meta group has no Transfer Syntax UID (0002,0010)")
    return result("dicom", "other", buf, codec=syntax)


def _text(buf: Sparse) -> MediaInfo:
    sample = buf.get(0, 4096)
    if b"\x00" in sample:
        raise ProbeError(f"text: NUL byte at offset {sample.index(0)}")
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(sample) - 3 or len(sample) == buf.size:
            raise ProbeError(f"text: invalid UTF-8 at offset {e.start}") from None
    return result("text", "document", buf, codec="utf-8")


def parse(buf: Sparse) -> MediaInfo:
    """Recognise the container from its first bytes and report what its header says."""
    fmt = sniff(exact(buf, 0, min(buf.size, 4096), "header"))
    if fmt == "matroska":
        container, fields = matroska.matroska(buf)
        return result(container, "video", buf, **fields)
    if fmt == "avi":
        return result("avi", "video", buf, **streams.avi(buf))
    if fmt == "mpegts":
        return _mpegts(buf)
    if fmt == "pdf":
        return _pdf(buf)
    if fmt == "dicom":
        return _dicom(buf)
    if fmt == "text":
        return _text(buf)
    raise ProbeError(f"unrecognised container (first bytes {buf.get(0, 8).hex()})")
