"""Fragmented MP4: ``mvex``/``trex`` defaults and the samples of each ``moof``'s ``trun``s.

Cost: a fragmented file's sample count is only in its ``moof`` boxes, spread through the
file between ``mdat``s. Each ``moof`` past the head costs one read (the next header plus a
window of ``FRAGMENT_WINDOW`` bytes, or twice the largest ``moof`` seen so far, so that the
next ``moof`` arrives whole); ``mdat`` bodies are hopped.
The walk is bounded: once more than ``MAX_FRAGMENT_READS`` fragments start past
``HEAD_HINT`` (the driver's default head), the walk stops and the result says the sample
tables are incomplete, so frames are reported unknown rather than guessed; the duration then
comes from a ``sidx`` in front of the fragments (the sum of its subsegment durations) or from
``mehd``, when the writer wrote one. The bound counts fragment offsets, not reads
actually made, so the result does not depend on what happened to be buffered.

Why not read ``mfra``/``sidx`` instead: both index fragments by time and byte offset but not
by sample count, so neither can replace the ``moof`` walk for ``frames`` (``tfra`` would only
say where the ``moof``s are, each still one read). A ``sidx`` ahead of the fragments is used
for the duration when the walk is bounded.

Bytes that cannot be a box header after the last fragment (trailing data) end the walk; an
``mfra`` ends it too (it indexes what was walked).
"""

from __future__ import annotations

import struct
import sys
from array import array
from fractions import Fraction
from itertools import groupby

import msgspec

from workers.probe.bmff_boxes import Box, children, find, full_box, need_bytes, top_level_header
from workers.probe.media import ProbeError
from workers.probe.sparse import Sparse

HEAD_HINT = 64 * 1024
MAX_FRAGMENT_READS = 16  # the driver allows 24 reads per probe in all
FRAGMENT_WINDOW = 4 * 1024
_U32 = struct.Struct(">I")


class Trex(msgspec.Struct, frozen=True):
    """Per-track defaults from ``mvex/trex``."""

    duration: int
    size: int


class FragmentRuns(msgspec.Struct, kw_only=True):
    """Samples found in fragments for one track, run-length encoded like stts/ctts."""

    stts: list[tuple[int, int]] = []
    ctts: list[tuple[int, int]] = []
    has_cto: bool = False


class Fragments(msgspec.Struct, kw_only=True):
    """The walk's result: runs per track id, whether every fragment was seen."""

    tracks: dict[int, FragmentRuns] = {}
    count: int = 0
    complete: bool = True
    sidx_duration: dict[int, Fraction] = {}  # seconds indexed by each track's top-level sidx


def parse_mvex(data: bytes, mvex: Box, base: int) -> tuple[dict[int, Trex], int]:
    """``trex`` defaults by track id, and ``mehd``'s fragment duration (0 if absent)."""
    defaults: dict[int, Trex] = {}
    duration = 0
    for box in children(data, mvex.payload, mvex.end, base, "mvex"):
        if box.type == "trex":
            _, _, p = full_box(data, box, base, 20)
            track_id, _sdi, dur, size = struct.unpack_from(">IIII", data, p)
            defaults[track_id] = Trex(dur, size)
        elif box.type == "mehd":
            version, _, p = full_box(data, box, base, 4)
            if version == 1:
                need_bytes(box, base, p, 8, "mehd v1 duration")
                duration = struct.unpack_from(">Q", data, p)[0]
            else:
                duration = _U32.unpack_from(data, p)[0]
    return defaults, duration


def _append(runs: list[tuple[int, int]], count: int, value: int) -> None:
    if runs and runs[-1][1] == value:
        runs[-1] = (runs[-1][0] + count, value)
    else:
        runs.append((count, value))


def _trun(data: bytes, box: Box, base: int, default_duration: int, out: FragmentRuns) -> None:
    _, flags, p = full_box(data, box, base, 4)
    count = _U32.unpack_from(data, p)[0]
    p += 4 + (4 if flags & 0x1 else 0) + (4 if flags & 0x4 else 0)
    fields = [bit for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit]
    need_bytes(box, base, p, count * 4 * len(fields), "trun with {} samples", count)
    if not fields or not flags & (0x100 | 0x800):
        _append(out.stts, count, default_duration)
        _append(out.ctts, count, 0)
        return
    nf = len(fields)
    table = array("i", data[p : p + 4 * nf * count])
    if sys.byteorder == "little":
        table.byteswap()
    if flags & 0x100:
        durations = (
            [d & 0xFFFFFFFF for d in table[0::nf]] if min(table[0::nf], default=0) < 0 else table[0::nf]
        )
    else:
        durations = array("i", [default_duration]) * count
    for value, group in groupby(durations):
        _append(out.stts, len(list(group)), value)
    if flags & 0x800:
        for value, group in groupby(table[fields.index(0x800) :: nf]):
            _append(out.ctts, len(list(group)), value)
        out.has_cto = True
    else:
        _append(out.ctts, count, 0)


def _moof(data: bytes, moof: Box, base: int, trex: dict[int, Trex], into: Fragments) -> None:
    for traf in children(data, moof.payload, moof.end, base, "moof"):
        if traf.type != "traf":
            continue
        boxes = find(data, traf.payload, traf.end, base, "traf")
        tfhd = boxes.get("tfhd")
        if tfhd is None:
            raise ProbeError(f"traf at offset {base + traf.start}: no tfhd")
        _, flags, p = full_box(data, tfhd, base, 4)
        track_id = _U32.unpack_from(data, p)[0]
        p += 4 + (8 if flags & 0x1 else 0) + (4 if flags & 0x2 else 0)
        defaults = trex.get(track_id, Trex(0, 0))
        duration = defaults.duration
        if flags & 0x8:
            need_bytes(tfhd, base, p, 4, "tfhd default_sample_duration")
            duration = _U32.unpack_from(data, p)[0]
        runs = into.tracks.setdefault(track_id, FragmentRuns())
        for box in children(data, traf.payload, traf.end, base, "traf"):
            if box.type == "trun":
                _trun(data, box, base, duration, runs)


def _sidx(data: bytes, box: Box, base: int) -> tuple[int, Fraction] | None:
    """``(reference_ID, total duration in seconds)`` of a segment index."""
    version, _, p = full_box(data, box, base, 20)
    track_id, timescale = struct.unpack_from(">II", data, p)
    p += 8 + (16 if version == 1 else 8) + 2
    need_bytes(box, base, p, 2, "sidx reference_count")
    count = struct.unpack_from(">H", data, p)[0]
    need_bytes(box, base, p + 2, count * 12, "sidx with {} references", count)
    if timescale == 0:
        return None
    total = sum(struct.unpack_from(">I", data, p + 2 + 12 * i + 4)[0] for i in range(count))
    return track_id, Fraction(total, timescale)


def walk_fragments(buf: Sparse, offset: int, trex: dict[int, Trex]) -> Fragments:
    """Every ``moof`` from ``offset`` (the end of ``moov``) on, within the read bound.

    The walk gathers the boxes' bytes first and parses them after the last read, so the
    re-runs that follow each read only repeat the cheap header hops.
    """
    result = Fragments()
    beyond_head = 0
    gathered: list[tuple[Box, bytes]] = []
    window = FRAGMENT_WINDOW
    while offset < buf.size:
        box = top_level_header(buf, offset, after_media=False, window=window, junk_ok=True)
        if box is None or box.type == "mfra":
            break
        if box.type == "moof":
            if box.start >= HEAD_HINT:
                beyond_head += 1
                if beyond_head > MAX_FRAGMENT_READS:
                    result.complete = False
                    break
            gathered.append((box, buf.get(box.start, box.size)))
            window = max(window, 2 * box.size)  # fragments are alike: the next moof arrives whole
        elif box.type == "sidx" and not any(b.type == "moof" for b, _ in gathered):
            gathered.append((box, buf.get(box.start, box.size)))
        offset = box.end
    for box, data in gathered:
        shifted = Box(box.type, 0, box.payload - box.start, box.size)
        if box.type == "moof":
            _moof(data, shifted, box.start, trex, result)
            result.count += 1
            continue
        indexed = _sidx(data, shifted, box.start)
        if indexed is not None:
            result.sidx_duration.setdefault(indexed[0], Fraction(0))
            result.sidx_duration[indexed[0]] += indexed[1]
    return result
