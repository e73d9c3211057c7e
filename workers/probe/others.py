"""Containers the platforms refuse, recognised precisely so the rules can say why.

* Matroska / WebM (EBML ``DocType``), AVI (``RIFF AVI``): kind ``video``, with the first video
  track's size and codec when the track headers are found (see :mod:`workers.probe.streams`).
* MPEG-TS: kind ``video``; the first 4 packets must carry the sync byte; the first video
  stream's codec from the PAT/PMT when they are in the first 64 packets (12 KiB), as muxers
  put them (the scan stops at the first packet without sync).
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

from workers.probe import streams
from workers.probe.layout import MIME, exact
from workers.probe.media import Kind, MediaInfo, ProbeError
from workers.probe.sniff import sniff
from workers.probe.sparse import Sparse

_TS_PACKET = 188
_TS_SCAN_PACKETS = 64
_TS_SYNCED_PACKETS = 4  # must all carry the sync byte (when the file holds that many)
# ISO/IEC 13818-1 stream_type -> codec, for video streams
_TS_VIDEO: dict[int, str] = {
    0x01: "mpeg1video",
    0x02: "mpeg2video",
    0x10: "mp4v",
    0x1B: "h264",
    0x20: "h264",  # MVC sub-bitstream
    0x24: "hevc",
    0x33: "vvc",
    0xD1: "dirac",
    0xEA: "vc1",
}


def result(container: str, kind: Kind, buf: Sparse, **fields: object) -> MediaInfo:
    """A valid result for one of these containers."""
    info = MediaInfo(
        valid=True, kind=kind, container=container, mime_type=MIME[container], file_size=buf.size
    )
    for name, value in fields.items():
        setattr(info, name, value)
    return info


def _ts_sections(buf: Sparse) -> dict[int, bytes]:
    """PSI sections starting in the first packets, by PID (the first section of each PID)."""
    count = min(_TS_SCAN_PACKETS, buf.size // _TS_PACKET)
    if count < 2:
        raise ProbeError(f"mpegts: {buf.size} bytes hold fewer than 2 transport packets")
    sections: dict[int, bytes] = {}
    for i in range(count):
        packet = exact(buf, i * _TS_PACKET, _TS_PACKET, f"mpegts packet {i}")
        if packet[0] != 0x47:
            if i < _TS_SYNCED_PACKETS:
                raise ProbeError(
                    f"mpegts: packet {i} at offset {i * _TS_PACKET} has sync byte {packet[0]:#04x}"
                )
            break  # trailing data or damage after the tables: what was found stands
        pid = (packet[1] & 0x1F) << 8 | packet[2]
        start, control = packet[1] & 0x40, (packet[3] >> 4) & 3
        if not start or not control & 1 or pid in sections:
            continue
        at = 4 + (1 + packet[4] if control & 2 else 0)
        if at >= _TS_PACKET:
            continue
        at += 1 + packet[at]  # pointer field
        if at + 3 <= _TS_PACKET:
            length = (packet[at + 1] & 0x0F) << 8 | packet[at + 2]
            sections[pid] = packet[at : at + 3 + length]
    return sections


def _ts_video_codec(sections: dict[int, bytes]) -> str | None:
    pat = sections.get(0)
    if pat is None or len(pat) < 12 or pat[0] != 0:
        return None
    pmt_pid = None
    for at in range(8, len(pat) - 4 - 3, 4):
        program, pid = struct.unpack_from(">HH", pat, at)
        if program != 0:
            pmt_pid = pid & 0x1FFF
            break
    pmt = sections.get(pmt_pid) if pmt_pid is not None else None
    if pmt is None or len(pmt) < 16 or pmt[0] != 2:
        return None
    at = 12 + ((pmt[10] & 0x0F) << 8 | pmt[11])
    while at + 5 <= len(pmt) - 4:
        stream_type = pmt[at]
        if stream_type in _TS_VIDEO:
            return _TS_VIDEO[stream_type]
        at += 5 + ((pmt[at + 3] & 0x0F) << 8 | pmt[at + 4])
    return None


def _mpegts(buf: Sparse) -> MediaInfo:
    return result("mpegts", "video", buf, codec=_ts_video_codec(_ts_sections(buf)))


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
        container, fields = streams.matroska(buf)
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
