"""Track headers of the refused video containers: Matroska/WebM (EBML) and AVI (RIFF).

Both are walked element by element / chunk by chunk, asking only for each 8-12 byte header,
so large elements (SeekHead voids, JUNK padding, CodecPrivate) are hopped, never read.

* Matroska/WebM: the EBML header's ``DocType`` decides ``matroska`` vs ``webm``; the Segment's
  children are hopped up to ``Tracks`` (stopping at the first ``Cluster``): the first video
  ``TrackEntry`` gives ``PixelWidth``/``PixelHeight`` and the ``CodecID``.
* AVI: ``hdrl``'s ``avih`` and each ``strl``'s ``strh``/``strf``: the first ``vids`` stream gives
  the size (BITMAPINFOHEADER), the codec fourcc, the frame count (``dwLength``) and the rate
  (``dwRate/dwScale``).
"""

from __future__ import annotations

import struct
from fractions import Fraction

from workers.probe.layout import exact
from workers.probe.media import ProbeError
from workers.probe.sparse import Sparse

_EBML, _DOCTYPE, _SEGMENT, _CLUSTER, _TRACKS = 0x1A45DFA3, 0x4282, 0x18538067, 0x1F43B675, 0x1654AE6B
_TRACK_ENTRY, _TRACK_TYPE, _CODEC_ID, _VIDEO, _PIXEL_W, _PIXEL_H = 0xAE, 0x83, 0x86, 0xE0, 0xB0, 0xBA
_MKV_CODECS = {
    "V_MPEG4/ISO/AVC": "h264",
    "V_MPEGH/ISO/HEVC": "hevc",
    "V_VP8": "vp8",
    "V_VP9": "vp9",
    "V_AV1": "av1",
    "V_MPEG4/ISO/ASP": "mp4v",
    "V_MPEG2": "mpeg2video",
    "V_MJPEG": "mjpeg",
    "V_THEORA": "theora",
}


def _vint(buf: Sparse, pos: int, what: str, keep_marker: bool) -> tuple[int, int]:
    """(value, byte length) of the EBML variable-size integer at ``pos``."""
    first = exact(buf, pos, 1, what)[0]
    if first == 0:
        raise ProbeError(f"matroska: {what} at offset {pos} is longer than 8 bytes")
    length = 9 - first.bit_length()
    value = int.from_bytes(exact(buf, pos, length, what), "big")
    return (value if keep_marker else value & ((1 << (7 * length)) - 1)), length


def _element(buf: Sparse, pos: int, end: int) -> tuple[int, int, int]:
    """(id, data offset, data end) of the element at ``pos``; unknown sizes run to ``end``."""
    ident, id_len = _vint(buf, pos, "element id", keep_marker=True)
    size, size_len = _vint(buf, pos + id_len, f"size of element {ident:#x}", keep_marker=False)
    data = pos + id_len + size_len
    unknown = size == (1 << (7 * size_len)) - 1
    data_end = end if unknown else data + size
    if data_end > end:
        raise ProbeError(f"matroska: element {ident:#x} at offset {pos} runs past its parent (to {data_end})")
    return ident, data, data_end


def _children(buf: Sparse, start: int, end: int) -> dict[int, tuple[int, int]]:
    """First occurrence of each child element of [start, end): id -> (data offset, data end)."""
    found: dict[int, tuple[int, int]] = {}
    pos = start
    while pos < end:
        ident, data, data_end = _element(buf, pos, end)
        found.setdefault(ident, (data, data_end))
        pos = data_end
    return found


def _uint(buf: Sparse, span: tuple[int, int] | None) -> int | None:
    if span is None or not 0 < span[1] - span[0] <= 8:
        return None
    return int.from_bytes(exact(buf, span[0], span[1] - span[0], "integer element"), "big")


def _video_track(buf: Sparse, start: int, end: int) -> dict[str, object]:
    pos = start
    while pos < end:
        ident, data, data_end = _element(buf, pos, end)
        pos = data_end
        if ident != _TRACK_ENTRY:
            continue
        entry = _children(buf, data, data_end)
        if _uint(buf, entry.get(_TRACK_TYPE)) != 1:
            continue
        fields: dict[str, object] = {}
        codec = entry.get(_CODEC_ID)
        if codec is not None:
            name = (
                exact(buf, codec[0], codec[1] - codec[0], "CodecID")
                .rstrip(b"\x00")
                .decode("ascii", "replace")
            )
            fields["codec"] = _MKV_CODECS.get(name, name)
        video = entry.get(_VIDEO)
        if video is not None:
            dims = _children(buf, *video)
            fields["width"], fields["height"] = _uint(buf, dims.get(_PIXEL_W)), _uint(buf, dims.get(_PIXEL_H))
        return fields
    return {}


def matroska(buf: Sparse) -> tuple[str, dict[str, object]]:
    """(``matroska`` or ``webm``, fields of the first video track)."""
    ident, data, header_end = _element(buf, 0, buf.size)
    if ident != _EBML:
        raise ProbeError(f"matroska: first element {ident:#x} is not the EBML header")
    doctype_span = _children(buf, data, header_end).get(_DOCTYPE)
    if doctype_span is None:
        raise ProbeError("matroska: EBML header has no DocType")
    doctype = exact(buf, doctype_span[0], doctype_span[1] - doctype_span[0], "DocType").rstrip(b"\x00")
    if doctype not in (b"matroska", b"webm"):
        raise ProbeError(f"matroska: DocType {doctype!r} is neither 'matroska' nor 'webm'")
    ident, pos, segment_end = _element(buf, header_end, buf.size)
    if ident != _SEGMENT:
        raise ProbeError(f"matroska: element {ident:#x} after the EBML header is not a Segment")
    fields: dict[str, object] = {}
    while pos < segment_end:
        ident, data, data_end = _element(buf, pos, segment_end)
        if ident == _CLUSTER:
            break
        if ident == _TRACKS:
            fields = _video_track(buf, data, data_end)
            break
        pos = data_end
    return doctype.decode(), fields


def _fourcc(raw: bytes) -> str:
    return raw.rstrip(b"\x00 ").decode("latin-1")


def avi(buf: Sparse) -> dict[str, object]:
    """Fields of the first video stream from the ``hdrl`` list."""
    head = exact(buf, 0, 24, "avi RIFF header")
    if head[12:16] != b"LIST" or head[20:24] != b"hdrl":
        raise ProbeError(f"avi: first chunk {head[12:16]!r} is not LIST hdrl")
    (hdrl_size,) = struct.unpack_from("<I", head, 16)
    end = min(20 + hdrl_size, buf.size)
    avih = exact(buf, 24, 8 + 40, "avi avih chunk")
    if avih[:4] != b"avih":
        raise ProbeError(f"avi: hdrl starts with {avih[:4]!r}, expected avih")
    fields: dict[str, object] = {}
    width, height = struct.unpack_from("<II", avih, 8 + 32)
    fields["width"], fields["height"] = width or None, height or None
    pos = 24 + 8 + struct.unpack_from("<I", avih, 4)[0]
    while pos + 12 <= end:
        kind, size, form = struct.unpack("<4sI4s", exact(buf, pos, 12, f"avi chunk at offset {pos}"))
        if kind == b"LIST" and form == b"strl":
            strh = exact(buf, pos + 12, 8 + 36, "avi strh chunk")
            if strh[:4] == b"strh" and strh[8:12] == b"vids":
                scale, rate, _start, length = struct.unpack_from("<4I", strh, 8 + 20)
                strh_size = struct.unpack_from("<I", strh, 4)[0]
                strf = exact(buf, pos + 12 + 8 + strh_size + (strh_size & 1), 8 + 20, "avi strf chunk")
                if strf[:4] != b"strf":
                    raise ProbeError(f"avi: video strl has {strf[:4]!r} after strh, expected strf")
                width, height = struct.unpack_from("<ii", strf, 12)
                fields["width"], fields["height"] = (width if width > 0 else None), (abs(height) or None)
                fields["codec"] = _fourcc(strf[24:28]) or _fourcc(strh[12:16])
                fields["frames"] = length
                if scale and rate:
                    fps = Fraction(rate, scale)
                    fields["fps"], fields["fps_rational"] = float(fps), f"{fps.numerator}/{fps.denominator}"
                return fields
        pos += 8 + size + (size & 1)
    return fields
