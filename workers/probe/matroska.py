"""Matroska / WebM (EBML): the Segment's ``Info`` and first video ``TrackEntry``.

Theory of operation: EBML elements are walked by their headers (variable-length id and size),
asking only for each header, so large elements (Void padding, CodecPrivate, Clusters) are hopped,
never read. The EBML header's ``DocType`` decides ``matroska`` vs ``webm``. The Segment's
children are walked up to the first ``Cluster``, stopping early once ``Info``, ``Tracks`` and
``Tags`` are known; a ``SeekHead`` met on the way gives their positions when they are not there
(a muxer that writes them after the media), and each costs one targeted read.

An element of unknown size (all ones, as live muxers write for the Segment and Clusters) runs
to the end of its parent; a master element of unknown size other than the Segment ends where
the next top-level element (Cluster, Cues, Tags, ...) begins.

Reported:

* ``duration``: the video track's ``DURATION`` statistics tag (``HH:MM:SS.nnnnnnnnn``, written
  by ffmpeg and mkvmerge in ``Tags`` targeted at the track's ``TrackUID``), else
  ``Info/Duration`` (a float in ``TimecodeScale`` units, default 1 ms), which is the Segment's:
  the longest track's, an audio track longer than the video included, so it is flagged
  ``duration_estimated`` unless the video is the only track. ``None`` when neither was written
  (live streams).
* ``frames``: the video track's ``NUMBER_OF_FRAMES`` statistics tag (mkvmerge), else unknown:
  Matroska's headers proper do not count frames.
* ``fps``/``fps_rational``: from the video track's ``DefaultDuration`` (nanoseconds per frame).
  The stored integer is rounded or truncated: see :func:`workers.probe.rates.from_frame_duration`
  (33366666 ns -> ``30000/1001``).
* ``width``/``height`` (``PixelWidth``/``PixelHeight``) and ``codec`` from ``CodecID``.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Iterator
from fractions import Fraction

from workers.probe import rates
from workers.probe.layout import exact
from workers.probe.media import ProbeError
from workers.probe.sparse import Sparse

_EBML, _DOCTYPE, _SEGMENT = 0x1A45DFA3, 0x4282, 0x18538067
_SEEKHEAD, _SEEK, _SEEK_ID, _SEEK_POSITION = 0x114D9B74, 0x4DBB, 0x53AB, 0x53AC
_INFO, _TIMECODE_SCALE, _DURATION = 0x1549A966, 0x2AD7B1, 0x4489
_TRACKS, _TRACK_ENTRY, _TRACK_TYPE, _CODEC_ID = 0x1654AE6B, 0xAE, 0x83, 0x86
_DEFAULT_DURATION, _VIDEO, _PIXEL_W, _PIXEL_H = 0x23E383, 0xE0, 0xB0, 0xBA
_CLUSTER, _CUES, _TAGS, _CHAPTERS, _ATTACHMENTS = 0x1F43B675, 0x1C53BB6B, 0x1254C367, 0x1043A770, 0x1941A469
_TRACK_UID, _TAG, _TARGETS, _TAG_TRACK_UID = 0x73C5, 0x7373, 0x63C0, 0x63C5
_SIMPLE_TAG, _TAG_NAME, _TAG_STRING = 0x67C8, 0x45A3, 0x4487
_TOP_LEVEL = frozenset({_SEEKHEAD, _INFO, _TRACKS, _CLUSTER, _CUES, _TAGS, _CHAPTERS, _ATTACHMENTS})
_MAX_SEEK_FOLLOW = 4  # SeekHead entries followed (Info, Tracks, Tags, a second SeekHead)
_MAX_TAGS = 64  # Tag elements looked at for the video track's statistics
_TAG_DURATION = re.compile(rb"(\d{1,9}):([0-5]\d):([0-5]\d(?:\.\d{1,9})?)")
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
Span = tuple[int, int]


def _vint(buf: Sparse, pos: int, what: str, keep_marker: bool) -> tuple[int, int]:
    """(value, byte length) of the EBML variable-size integer at ``pos``."""
    first = exact(buf, pos, 1, what)[0]
    if first == 0:
        raise ProbeError(f"matroska: {what} at offset {pos} is longer than 8 bytes")
    length = 9 - first.bit_length()
    value = int.from_bytes(exact(buf, pos, length, what), "big")
    return (value if keep_marker else value & ((1 << (7 * length)) - 1)), length


def _element(buf: Sparse, pos: int, end: int) -> tuple[int, int, int, bool]:
    """(id, data offset, data end, unknown size) of the element at ``pos``.

    An unknown size runs to ``end`` (the caller narrows it for master elements)."""
    ident, id_len = _vint(buf, pos, "element id", keep_marker=True)
    size, size_len = _vint(buf, pos + id_len, f"size of element {ident:#x}", keep_marker=False)
    data = pos + id_len + size_len
    unknown = size == (1 << (7 * size_len)) - 1
    data_end = end if unknown else data + size
    if data_end > end:
        raise ProbeError(f"matroska: element {ident:#x} at offset {pos} runs past its parent (to {data_end})")
    return ident, data, data_end, unknown


def _children(buf: Sparse, start: int, end: int) -> tuple[dict[int, Span], int]:
    """First occurrence of each child of [start, end) (id -> data span), and where they end:
    ``end``, or the first top-level element (the end of a parent of unknown size)."""
    found: dict[int, Span] = {}
    pos = start
    while pos < end:
        ident, data, data_end, _ = _element(buf, pos, end)
        if ident in _TOP_LEVEL:
            break
        found.setdefault(ident, (data, data_end))
        pos = data_end
    return found, min(pos, end)


def _each(buf: Sparse, parent: Span, ident: int) -> Iterator[dict[int, Span]]:
    """The children (first of each id) of every ``ident`` element directly inside ``parent``."""
    pos, end = parent
    while pos < end:
        child, data, pos, _ = _element(buf, pos, end)
        if child == ident:
            yield _children(buf, data, pos)[0]


def _target(buf: Sparse, at: int, end: int, ident: int) -> Span | None:
    """The span of the element ``ident`` a SeekHead entry points at. A pointer to Info or Tracks
    that misses is an error; one to Tags or another SeekHead (optional) is ignored."""
    try:
        got, span, _ = _master(buf, at, end)
    except ProbeError:
        if ident in (_INFO, _TRACKS):
            raise
        return None
    if got == ident:
        return span
    if ident in (_INFO, _TRACKS):
        raise ProbeError(f"matroska: SeekHead points at offset {at} for {ident:#x}, found {got:#x}")
    return None


def _master(buf: Sparse, pos: int, end: int) -> tuple[int, Span, int]:
    """(id, data span, element end) of the master element at ``pos``, unknown size resolved."""
    ident, data, data_end, unknown = _element(buf, pos, end)
    if unknown:
        data_end = _children(buf, data, end)[1]
    return ident, (data, data_end), data_end


def _uint(buf: Sparse, span: Span | None) -> int | None:
    if span is None or not 0 < span[1] - span[0] <= 8:
        return None
    return int.from_bytes(exact(buf, span[0], span[1] - span[0], "integer element"), "big")


def _float(buf: Sparse, span: Span | None) -> float | None:
    if span is None or span[1] - span[0] not in (4, 8):
        return None
    raw = exact(buf, span[0], span[1] - span[0], "float element")
    value: float = struct.unpack(">f" if len(raw) == 4 else ">d", raw)[0]
    return value if math.isfinite(value) and value > 0 else None


def _video_fields(buf: Sparse, entry: dict[int, Span]) -> dict[str, object]:
    fields: dict[str, object] = {}
    codec = entry.get(_CODEC_ID)
    if codec is not None:
        raw = exact(buf, codec[0], codec[1] - codec[0], "CodecID")
        name = raw.rstrip(b"\x00").decode("ascii", "replace")
        fields["codec"] = _MKV_CODECS.get(name, name)
    video = entry.get(_VIDEO)
    if video is not None:
        dims = _children(buf, *video)[0]
        fields["width"], fields["height"] = _uint(buf, dims.get(_PIXEL_W)), _uint(buf, dims.get(_PIXEL_H))
    default_duration = _uint(buf, entry.get(_DEFAULT_DURATION))
    if default_duration:
        fps = rates.from_frame_duration(10**9, Fraction(default_duration))
        fields["fps"], fields["fps_rational"] = float(fps), f"{fps.numerator}/{fps.denominator}"
    return fields


def _video_track(buf: Sparse, tracks: Span) -> tuple[dict[str, object], int | None, int]:
    """Fields of the first video TrackEntry, its TrackUID, and how many tracks there are."""
    pos, end = tracks
    fields: dict[str, object] = {}
    uid, count, found = None, 0, False
    while pos < end:
        ident, entry_span, pos = _master(buf, pos, end)
        if ident in _TOP_LEVEL:
            break
        if ident != _TRACK_ENTRY:
            continue
        count += 1
        entry = _children(buf, *entry_span)[0]
        if not found and _uint(buf, entry.get(_TRACK_TYPE)) == 1:
            found = True
            fields, uid = _video_fields(buf, entry), _uint(buf, entry.get(_TRACK_UID))
    return fields, uid, count


def _string(buf: Sparse, span: Span | None) -> bytes:
    return b"" if span is None else exact(buf, span[0], span[1] - span[0], "string element").rstrip(b"\x00")


def _statistics(buf: Sparse, tags: Span, uid: int) -> dict[str, object]:
    """``DURATION`` and ``NUMBER_OF_FRAMES`` of the Tag whose target is track ``uid``."""
    pos, end = tags
    for _ in range(_MAX_TAGS):
        if pos >= end:
            break
        ident, span, pos = _master(buf, pos, end)
        if ident in _TOP_LEVEL:
            break
        if ident != _TAG:
            continue
        children = _children(buf, *span)[0]
        targets = children.get(_TARGETS)
        if targets is None or _uint(buf, _children(buf, *targets)[0].get(_TAG_TRACK_UID)) != uid:
            continue
        fields: dict[str, object] = {}
        for simple in _each(buf, span, _SIMPLE_TAG):
            name, value = _string(buf, simple.get(_TAG_NAME)).upper(), _string(buf, simple.get(_TAG_STRING))
            if name == b"DURATION" and (clock := _TAG_DURATION.fullmatch(value)):
                seconds = int(clock[1]) * 3600 + int(clock[2]) * 60 + float(clock[3])
                if seconds > 0:
                    fields["duration"] = seconds
            elif name == b"NUMBER_OF_FRAMES" and value.isdigit() and int(value) > 0:
                fields["frames"] = int(value)
        return fields
    return {}


def _info(buf: Sparse, info: Span) -> dict[str, object]:
    children = _children(buf, *info)[0]
    scale = _uint(buf, children.get(_TIMECODE_SCALE)) or 1_000_000
    duration = _float(buf, children.get(_DURATION))
    return {} if duration is None else {"duration": duration * scale / 1e9}


def _seeks(buf: Sparse, seekhead: Span, segment_data: int) -> dict[int, int]:
    """SeekHead entries: element id -> absolute offset."""
    out: dict[int, int] = {}
    for seek in _each(buf, seekhead, _SEEK):
        target, where = _uint(buf, seek.get(_SEEK_ID)), _uint(buf, seek.get(_SEEK_POSITION))
        if target is not None and where is not None:
            out.setdefault(target, segment_data + where)
    return out


def _segment(buf: Sparse, start: int, end: int) -> dict[int, Span]:
    """Spans of the Segment's Info, Tracks and Tags (when found), by walk then SeekHead."""
    found: dict[int, Span] = {}
    seeks: dict[int, int] = {}
    pos = start
    while pos < end and not (_INFO in found and _TRACKS in found and _TAGS in found):
        ident, data, next_pos, unknown = _element(buf, pos, end)
        if ident == _CLUSTER:  # media from here on; never walked (an unknown size would read it all)
            break
        if unknown:
            next_pos = _children(buf, data, end)[1]
        span = (data, next_pos)
        if ident in (_INFO, _TRACKS, _TAGS):
            found.setdefault(ident, span)
        elif ident == _SEEKHEAD:
            seeks = {**_seeks(buf, span, start), **seeks}
        pos = next_pos
    followed = 0
    while followed < _MAX_SEEK_FOLLOW:
        wanted = [i for i in (_INFO, _TRACKS, _TAGS, _SEEKHEAD) if i in seeks and i not in found]
        if not wanted:
            break
        ident = wanted[0]
        at = seeks.pop(ident)
        followed += 1
        if not start <= at < end:
            continue
        target = _target(buf, at, end, ident)
        if target is None:
            continue
        if ident == _SEEKHEAD:
            seeks = {**_seeks(buf, target, start), **seeks}
        found[ident] = target
    return found


def matroska(buf: Sparse) -> tuple[str, dict[str, object]]:
    """(``matroska`` or ``webm``, fields of the Segment's Info and first video track)."""
    ident, data, header_end, _ = _element(buf, 0, buf.size)
    if ident != _EBML:
        raise ProbeError(f"matroska: first element {ident:#x} is not the EBML header")
    doctype_span = _children(buf, data, header_end)[0].get(_DOCTYPE)
    if doctype_span is None:
        raise ProbeError("matroska: EBML header has no DocType")
    doctype = exact(buf, doctype_span[0], doctype_span[1] - doctype_span[0], "DocType").rstrip(b"\x00")
    if doctype not in (b"matroska", b"webm"):
        raise ProbeError(f"matroska: DocType {doctype!r} is neither 'matroska' nor 'webm'")
    ident, pos, segment_end, _ = _element(buf, header_end, buf.size)
    if ident != _SEGMENT:
        raise ProbeError(f"matroska: element {ident:#x} after the EBML header is not a Segment")
    found = _segment(buf, pos, segment_end)
    fields: dict[str, object] = {}
    uid, tracks = None, 0
    if _TRACKS in found:
        video, uid, tracks = _video_track(buf, found[_TRACKS])
        fields.update(video)
    if _INFO in found:
        fields.update(_info(buf, found[_INFO]))
        if "duration" in fields:
            fields["duration_estimated"] = tracks != 1  # the Segment's, other tracks' included
    if _TAGS in found and uid is not None:
        statistics = _statistics(buf, found[_TAGS], uid)
        if "duration" in statistics:
            statistics["duration_estimated"] = False
        fields.update(statistics)
    return doctype.decode(), fields
