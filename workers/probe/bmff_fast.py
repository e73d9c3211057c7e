"""One ``trak`` read in a single pass for the common, well-formed layout.

:func:`workers.probe.bmff_track.parse_trak` is the reference: one function per box, each
checking its own sizes and naming what is wrong. Most tracks are plain: 32-bit box headers
that nest properly, version 0 headers, a ``stco`` chunk table. :func:`fast_trak` reads
exactly those with one walk down ``trak/mdia/minf/stbl`` (offsets collected into a dict per
depth, no ``Box`` per child) and one ``struct`` call per header box, reads a video track's
first sample entry and its children (``pasp``, ``avcC``/``hvcC``) the same way (audio and
encrypted entries go to ``parse_stsd``), and returns ``None`` at the first thing it does not
handle or that the reference would refuse: the caller then runs the reference, which
gives the answer or its own, identical, error. What the fast reader does hand over equals the
reference's ``Track`` field for field (the tests compare the two on real and mutated files).

Order matters for errors: where the fast reader calls a reference helper that may raise
(``parse_stsd``), every check the reference makes before that call has already passed here,
so the error is the one the reference would raise.
"""

from __future__ import annotations

import struct
from typing import Literal

from workers.probe.bmff_boxes import Box
from workers.probe.bmff_entry import VIDEO_CODECS, SampleEntry, avcc_sar, hvcc_sar, parse_stsd
from workers.probe.bmff_runs import NO_RUNS, Runs, read_runs, u32_array
from workers.probe.bmff_track import MEDIA_HANDLERS, Edit, Track, tkhd_rotation
from workers.probe.h26x_sar import h264_sps_sar

_HEAD = struct.Struct(">I4s")
_U32 = struct.Struct(">I")
_TKHD0 = struct.Struct(">I4sI8xI24x5i")  # size, type, version/flags, track_id, matrix a b u c d
_MDHD0 = struct.Struct(">I4sI8xII")  # size, type, version/flags, timescale, duration
_STSZ = struct.Struct(">I8xII")  # size, constant size, count
_ELST = struct.Struct(">I4xII")  # size, version/flags, count
_EDIT0 = struct.Struct(">Ii")
_EDTS = struct.Struct(">I4sI4sIIIi")  # edts size, type; elst size, type, version/flags, count; an edit
_HEAD_COUNT = struct.Struct(">I8xI")  # size, entry count of a full box
_COUNT_FIRST = struct.Struct(">I8xII")  # size, entry count, first u32 entry (stco)
_STSC_FIRST = struct.Struct(">I8xI4xI")  # size, entry count, first entry's samples per chunk
_SIZE = struct.Struct(">HH")
_U16 = struct.Struct(">H")
_PAIR = struct.Struct(">II")
_new_box = tuple.__new__  # a Box without the NamedTuple's Python-level ``__new__``


_CHAIN = (b"mdia", b"minf", b"stbl", b"")  # the container walked into at each depth of a trak
_FLAT = (b"",)  # walk into nothing


def _tree(
    data: bytes, start: int, end: int, chain: tuple[bytes, ...] = _CHAIN
) -> tuple[dict[bytes, int], ...] | None:
    """Offset of the first child of each type in ``data[start:end]`` (a ``trak``'s children),
    in the first ``mdia`` among them, the first ``minf`` in that and the first ``stbl`` in that
    (the ``chain``): one walk, a dict per depth. ``None`` for any header but the plain 32-bit
    one that fits (64-bit sizes, ``uuid``, size 0, stray bytes ...) at any depth."""
    levels: tuple[dict[bytes, int], ...] = ({}, {}, {}, {})
    found, depth, ends = levels[0], 0, []
    unpack = _HEAD.unpack_from
    try:
        while True:
            while start < end:
                size, raw = unpack(data, start)
                if size < 8 or start + size > end or raw == b"uuid":
                    return None
                if raw not in found:
                    found[raw] = start
                    if raw == chain[depth]:  # walk into it; its parent's walk goes on after it
                        ends.append(end)
                        depth += 1
                        found, start, end = levels[depth], start + 8, start + size
                        continue
                start += size
            if not ends:
                return levels
            depth -= 1
            found, start, end = levels[depth], end, ends.pop()
    except struct.error:
        return None


def _edits(data: bytes, edts: int) -> list[Edit] | bool:
    """The first ``elst`` of the ``edts`` at ``edts``: its edits, ``True`` without one, ``False``
    to ask the reference."""
    # the usual edts, one version 0 elst filling it, read with its first edit in one call
    end, _, size, raw, vf, count, duration, media_time = _EDTS.unpack_from(data, edts)
    end += edts
    if raw == b"elst" and edts + 8 + size == end and size >= 16 and vf >> 24 == 0 and 16 + count * 12 <= size:
        if count == 1:
            return [Edit(duration, media_time)]
        at = edts + 8
    else:
        kids = _tree(data, edts + 8, end, _FLAT)
        if kids is None:
            return False
        at = kids[0].get(b"elst", -1)
        if at < 0:
            return True
        size, vf, count = _ELST.unpack_from(data, at)
        if size < 16 or vf >> 24 == 1 or 16 + count * 12 > size:
            return False
    return [Edit(*_EDIT0.unpack_from(data, at + 16 + 12 * i)) for i in range(count)]


def _one_sps(data: bytes, at: int, end: int) -> bytes | None:
    """The SPS of the ``avcC`` at ``at`` when it holds exactly one that fits, as ``avcc_sar``
    reads it; ``None`` to let ``avcc_sar`` read (or refuse) the box."""
    if end - at < 16 or data[at + 13] & 0x1F != 1:  # the box holds the first length; one SPS
        return None
    size: int = _U16.unpack_from(data, at + 14)[0]
    return data[at + 16 : at + 16 + size] if at + 16 + size <= end else None


def _video_entry(data: bytes, at: int, base: int) -> SampleEntry | Literal[False] | None:
    """What ``parse_stsd`` gives for the ``stsd`` at ``at`` of a video track; ``False`` to ask
    it (an encrypted entry, an odd header among the entry's children, anything it refuses)."""
    size, count = _HEAD_COUNT.unpack_from(data, at)
    if size < 16:
        return False
    if count == 0:
        return None
    end = at + size
    at += 16
    size, raw = _HEAD.unpack_from(data, at)
    if size < 86 or at + size > end or raw in (b"uuid", b"encv", b"resv"):
        return False
    kind = raw.decode("latin-1")
    width, height = _SIZE.unpack_from(data, at + 32)
    entry = SampleEntry(fourcc=kind, codec=VIDEO_CODECS.get(kind, kind.strip()), width=width, height=height)
    end, at = at + size, at + 86
    unpack = _HEAD.unpack_from
    while at < end:  # the children in order, as the reference handles them
        size, raw = unpack(data, at)
        if size < 8 or at + size > end or raw == b"uuid":
            return False
        if raw == b"pasp":
            h, v = _PAIR.unpack_from(data, at + 8)
            if size < 16 or not h or not v:
                return False
            entry.sar_pasp = (h, v)
        elif raw == b"avcC" and entry.codec == "h264":
            nal = _one_sps(data, at, at + size)
            if nal is None:
                entry.sar_vui = avcc_sar(data, _new_box(Box, ("avcC", at, at + 8, at + size)), base)
            else:
                entry.sar_vui = h264_sps_sar(nal)
        elif raw == b"hvcC" and entry.codec == "hevc":
            entry.sar_vui = hvcc_sar(data, _new_box(Box, ("hvcC", at, at + 8, at + size)), base)
        at += size
    return entry


def fast_trak(data: bytes, start: int, end: int, base: int) -> Track | None:
    """The ``trak`` whose children span ``data[start:end]``, or ``None`` to ask the reference.

    ``base`` is the file offset of ``data[0]`` (for the errors ``parse_stsd`` may raise)."""
    try:
        return _trak(data, start, end, base)
    except struct.error:  # bytes past the moov copy: the reference names what is wrong
        return None


def _trak(data: bytes, start: int, end: int, base: int) -> Track | None:
    tree = _tree(data, start, end)
    if tree is None:
        return None
    trak, mdia, minf, stbl = tree
    if b"tkhd" not in trak or b"mdia" not in trak:
        return None
    size, _, tkhd_vf, track_id, a, b, u, c, d = _TKHD0.unpack_from(data, trak[b"tkhd"])
    if size < 92 or tkhd_vf >> 24 == 1:
        return None
    if b"mdhd" not in mdia or b"hdlr" not in mdia:
        return None
    size, _, vf, timescale, duration = _MDHD0.unpack_from(data, mdia[b"mdhd"])
    if size < 28 or vf >> 24 == 1 or timescale == 0:
        return None
    at = mdia[b"hdlr"]
    if _U32.unpack_from(data, at)[0] < 20:
        return None
    handler = data[at + 16 : at + 20].decode("latin-1")
    # the identity matrix (most tracks) without building the tuple tkhd_rotation looks up
    rotation = 0 if a == d == 0x10000 and b == u == c == 0 else tkhd_rotation((a, b, u, c, d))
    if duration == 0xFFFFFFFF:
        duration = 0
    edits = entry = None
    stts = ctts = NO_RUNS
    count = media_end = 0
    if handler in MEDIA_HANDLERS:
        if b"edts" in trak:
            found = _edits(data, trak[b"edts"])
            if found is False:
                return None
            if found is not True:
                edits = found
        if b"stbl" in minf:  # else no minf, or no stbl in it: a track without tables
            tables = _tables(data, stbl, base, handler)
            if tables is None:
                return None
            entry, stts, ctts, count, media_end = tables
    return Track(  # built once, every field known (setting them one by one costs a call each)
        track_id=track_id,
        enabled=bool(tkhd_vf & 1),
        handler=handler,
        rotation=rotation,
        timescale=timescale,
        media_duration=duration,
        edits=edits,
        stts=stts,
        ctts=ctts,
        sample_count=count,
        entry=entry,
        media_end=media_end,
    )


def _tables(
    data: bytes, stbl: dict[bytes, int], base: int, handler: str
) -> tuple[SampleEntry | None, Runs, Runs, int, int] | None:
    """The sample entry, ``stts``, ``ctts``, sample count and media end of a media track's
    ``stbl`` children (``None``: ask the reference)."""
    entry = None
    if b"stsd" in stbl:
        at = stbl[b"stsd"]
        fast = _video_entry(data, at, base) if handler == "vide" else False
        if fast is False:
            end = at + _U32.unpack_from(data, at)[0]
            entry = parse_stsd(data, _new_box(Box, ("stsd", at, at + 8, end)), base, handler)
        else:
            entry = fast
    stts = ctts = NO_RUNS
    at = stbl.get(b"stts", -1)
    if at >= 0:
        size, n = _HEAD_COUNT.unpack_from(data, at)
        if 16 + n * 8 > size:  # the box is too short for its count (or below 16 bytes)
            return None
        stts = read_runs(data, at + 16, n, False)
    at = stbl.get(b"ctts", -1)
    if at >= 0:
        size, n = _HEAD_COUNT.unpack_from(data, at)
        if 16 + n * 8 > size:
            return None
        ctts = read_runs(data, at + 16, n, True)
    count = const = 0
    sizes_at = -1
    if b"stsz" in stbl:
        at = stbl[b"stsz"]
        size, const, count = _STSZ.unpack_from(data, at)
        if size < 20 or (not const and 20 + count * 4 > size):
            return None
        sizes_at = -1 if const else at + 20
    elif b"stz2" in stbl:
        return None
    if stts.samples != count and (stts.counts or count):
        return None
    if ctts.counts and ctts.samples != count:
        return None
    media_end = _media_end(data, stbl, const, count, sizes_at)
    if media_end is None:
        return None
    return entry, stts, ctts, count, media_end


def _media_end(data: bytes, stbl: dict[bytes, int], const: int, count: int, sizes_at: int) -> int | None:
    """What ``bmff_track._media_end`` gives, for a ``stco`` table (``None``: ask the reference)."""
    at = stbl.get(b"stco", -1)
    if at < 0:
        return None if b"co64" in stbl else 0
    size, n, first = _COUNT_FIRST.unpack_from(data, at)  # one chunk (short clips): no table to read
    if 16 + n * 4 > size:
        return None
    if n == 0:
        return 0
    if n == 1:
        end = final = first
    else:
        offsets = u32_array(data, at + 16, n)
        end, final = max(offsets), offsets[-1]
    at = stbl.get(b"stsc", -1)
    if at >= 0:
        size, m, per_chunk = _STSC_FIRST.unpack_from(data, at)  # a one-entry table whole
        if 16 + m * 12 > size:
            return None
        if m:
            if m > 1:
                per_chunk = _U32.unpack_from(data, at + 16 + (m - 1) * 12 + 4)[0]
            if const:
                last = final + const * per_chunk
            elif per_chunk and sizes_at >= 0:
                k = min(per_chunk, count)
                last = final + sum(u32_array(data, sizes_at + 4 * (count - k), k))
            else:
                last = final
            end = max(end, last)
    return int(end)
