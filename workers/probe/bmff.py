"""ISO BMFF (MP4, MOV, M4A, 3GP, fragmented MP4): ``parse(buf) -> MediaInfo``.

Theory of operation: walk the top-level boxes from offset 0, hopping over each by its size
(32-bit, 64-bit ``largesize``, or 0 = to the end of the file) without reading bodies, until
``moov``; then read the whole ``moov`` and parse every ``trak`` in memory. Read economy
(:mod:`workers.probe.bmff_boxes`): a ``moov``-first file is done within the driver's head
read; after an ``mdat`` the whole remainder of the file is asked for in one read (the
``moov`` runs to the end there); after a large ``free``/``udta`` preamble the next header and
a 64 KiB window are asked for. A fragmented file (``moov/mvex``) then has its ``moof``s
walked (:mod:`workers.probe.bmff_fragments`, bounded).

Which track: video fields come from the first *enabled* video track (the first video track
if none is enabled); ``audio`` is the first audio track in file order. A file with neither is
an error. Media data is never read, but the sample tables must point inside the file: a
file cut short (the last chunk ends past the end) is an error, which is how a truncated
``moov``-first file is caught without reading its ``mdat``.

Container: ``ftyp`` major brand ``qt  `` (or no ``ftyp`` at all, the classic QuickTime
layout) is ``mov``; ``3gp*``/``3g2*`` is ``3gp``; an audio-only MP4 is ``m4a``; else ``mp4``.
"""

from __future__ import annotations

import struct
from fractions import Fraction
from math import gcd
from operator import itemgetter

from workers.probe.bmff_boxes import (
    Box,
    first_of_each,
    is_plausible_type,
    known_top_level_header,
    scan,
    top_level_header,
)
from workers.probe.bmff_fast import fast_trak
from workers.probe.bmff_fragments import Fragments, parse_mvex, walk_fragments
from workers.probe.bmff_runs import Runs
from workers.probe.bmff_timing import Ratio, Timing, runs_timing
from workers.probe.bmff_track import MEDIA_HANDLERS, Track, mdhd_or_mvhd_times, parse_trak
from workers.probe.media import AudioInfo, Kind, MediaInfo, ProbeError
from workers.probe.sparse import Sparse

_MIME = {
    ("mp4", "video"): "video/mp4",
    ("m4a", "audio"): "audio/mp4",
    ("mov", "video"): "video/quicktime",
    ("mov", "audio"): "audio/quicktime",
    ("3gp", "video"): "video/3gpp",
    ("3gp", "audio"): "audio/3gpp",
}
_MAX_TOP_LEVEL = 10_000
_FAST_TOP_LEVEL = 16  # top-level boxes the plain walk looks at before leaving it to the careful one
_HEAD = struct.Struct(">I4s")
_MVHD0 = struct.Struct(">I8xI")  # version/flags, timescale
_new_box = tuple.__new__  # a Box without the NamedTuple's Python-level ``__new__``
_USUAL_TOP = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide"})  # plausible, not uuid


def _ratio(sar: tuple[int, int] | None) -> str | None:
    if sar is None:
        return None
    g = gcd(*sar)
    return f"{sar[0] // g}:{sar[1] // g}"


def _float(value: Fraction | Ratio | None) -> float | None:
    return None if value is None else float(value)


def _moov_in_head(head: bytes, size: int) -> tuple[Box, bytes | None] | None:
    """What :func:`_find_moov` gives when ``head`` (the bytes from offset 0) holds every
    top-level header up to ``moov``'s, all plain 32-bit ones of plausible types that fit in
    the file; ``None`` (ask :func:`_find_moov`) for anything else."""
    offset, brand, unpack, known = 0, None, _HEAD.unpack_from, len(head) - 32
    for _ in range(_FAST_TOP_LEVEL):
        if offset > known:  # the longest header (32 bytes) not all there, as known_top_level_header asks
            return None
        length, raw = unpack(head, offset)
        if (
            length < 8
            or offset + length > size
            or (raw not in _USUAL_TOP and (raw == b"uuid" or not is_plausible_type(raw)))
        ):
            return None
        if raw == b"moov":
            return _new_box(Box, ("moov", offset, offset + 8, offset + length)), brand
        if raw == b"ftyp" and offset == 0:
            brand = head[8:12] if length >= 12 else b""
        offset += length
    return None


def _moov_children(data: bytes, start: int, end: int) -> tuple[list[Box], dict[str, Box]] | None:
    """The ``trak`` boxes in ``data[start:end]`` and the first box of each other type: what
    ``scan`` and ``first_of_each`` give when every header is a plain 32-bit one that fits (one
    loop, no list of every box); ``None`` for anything else (ask them)."""
    traks: list[Box] = []
    top: dict[str, Box] = {}
    unpack = _HEAD.unpack_from
    while start < end:
        if start + 8 > end:
            return None
        size, raw = unpack(data, start)
        if size < 8 or start + size > end or raw == b"uuid":
            return None
        kind = raw.decode("latin-1")
        if kind == "trak":
            traks.append(_new_box(Box, ("trak", start, start + 8, start + size)))
        elif kind not in top:
            top[kind] = _new_box(Box, (kind, start, start + 8, start + size))
        start += size
    return traks, top


def _find_moov(buf: Sparse) -> tuple[Box, bytes | None]:
    """The ``moov`` box and the ``ftyp`` major brand (``None`` without ``ftyp``)."""
    return _moov_in_head(buf.prefix(), buf.size) or walk_top_level(buf)


def walk_top_level(buf: Sparse) -> tuple[Box, bytes | None]:
    """:func:`_find_moov` box by box, asking for bytes as it goes (the reference)."""
    offset, after_media, brand, seen = 0, False, None, []
    head = buf.prefix()
    while offset < buf.size:
        box = known_top_level_header(head, offset, buf.size) or top_level_header(buf, offset, after_media)
        assert box is not None  # junk_ok is False: bad headers raise
        if box.type == "ftyp" and box.start == 0:
            brand = buf.get(box.payload, 4) if box.end - box.payload >= 4 else b""
        if box.type == "moov":
            return box, brand
        seen.append(box.type)
        if len(seen) > _MAX_TOP_LEVEL:
            raise ProbeError(f"no moov in the first {_MAX_TOP_LEVEL} top-level boxes")
        after_media = box.type == "mdat"
        offset = box.end
    shown = ", ".join(seen[:8]) + (" ..." if len(seen) > 8 else "")
    raise ProbeError(f"no moov box: {len(seen)} top-level boxes ({shown}) up to end of file at {buf.size}")


def _container(brand: bytes | None, has_video: bool) -> str:
    if brand is None or brand == b"qt  ":
        return "mov"
    if brand[:3] in (b"3gp", b"3g2"):
        return "3gp"
    return "mp4" if has_video else "m4a"


def _pick(tracks: list[Track], handler: str) -> Track | None:
    if len(tracks) == 1:  # the usual video-only file: no lists to build
        track = tracks[0]
        return track if track.handler == handler and track.entry is not None else None
    candidates = [t for t in tracks if t.handler == handler and t.entry is not None]
    enabled = [t for t in candidates if t.enabled]
    chosen = enabled or candidates
    return chosen[0] if chosen else None


def _timing(track: Track, fragments: Fragments | None, movie_ts: int) -> Timing:
    stts, ctts = track.stts, track.ctts
    media_duration = track.media_duration
    if fragments is not None and track.track_id in fragments.tracks:
        media_duration = 0  # mdhd covers the samples in moov only: sum every sample's delta
        runs = fragments.tracks[track.track_id]
        if not ctts.counts and runs.has_cto:
            ctts = Runs([stts.samples], [0], stts.samples) if stts.counts else ctts
        stts = _joined(stts, runs.stts)
        if ctts.counts or runs.has_cto:
            ctts = _joined(ctts, runs.ctts)
    return runs_timing(
        stts,
        ctts,
        timescale=track.timescale,
        media_duration=media_duration,
        edits=track.edits,
        movie_timescale=movie_ts,
    )


def _joined(runs: Runs, more: list[tuple[int, int]]) -> Runs:
    """``runs`` followed by a fragment's ``(count, value)`` pairs."""
    counts = [*runs.counts, *map(itemgetter(0), more)]
    return Runs(counts, [*runs.values, *map(itemgetter(1), more)], sum(counts))


def _audio_info(track: Track, fragments: Fragments | None, movie_ts: int) -> AudioInfo:
    assert track.entry is not None
    timing = _timing(track, fragments, movie_ts)
    incomplete = fragments is not None and not fragments.complete
    return AudioInfo(
        codec=track.entry.codec,
        sample_rate=track.entry.sample_rate,
        channels=track.entry.channels,
        duration=None if incomplete else _float(timing.duration),
        bit_depth=track.entry.bit_depth,
    )


def _movie_timescale(data: bytes, mvhd: Box, base: int) -> int:
    """``mdhd_or_mvhd_times``'s timescale, read in one call for a version 0 ``mvhd``."""
    if mvhd.end - mvhd.payload >= 20:
        vf, timescale = _MVHD0.unpack_from(data, mvhd.payload)
        if vf >> 24 != 1 and timescale:
            return int(timescale)
    return mdhd_or_mvhd_times(data, mvhd, base)[0]


def parse(buf: Sparse) -> MediaInfo:
    """Parse an ISO BMFF file. Raises ``Missing`` for bytes it needs, ``ProbeError`` if broken."""
    moov, brand = _find_moov(buf)
    data = buf.get(moov.start, moov.size)
    base = moov.start
    found = _moov_children(data, moov.payload - base, moov.size)
    if found is None:
        kids = scan(data, moov.payload - base, moov.size, base, "moov")
        traks, top = [b for b in kids if b.type == "trak"], first_of_each(kids)
    else:
        traks, top = found
    if "mvhd" not in top:
        raise ProbeError(f"moov at offset {base}: no mvhd")
    movie_ts = _movie_timescale(data, top["mvhd"], base)
    fragment_duration = 0
    fragments = None
    if "mvex" in top:  # first, so the re-runs after each fragment read skip the track parsing
        trex, fragment_duration = parse_mvex(data, top["mvex"], base)
        fragments = walk_fragments(buf, moov.end, trex)
    tracks = [fast_trak(data, b.payload, b.end, base) or parse_trak(data, b, base) for b in traks]
    if fragments is None:
        for t in tracks:
            if t.media_end > buf.size:
                raise ProbeError(
                    f"truncated: track {t.track_id}'s sample data ends at offset {t.media_end}, "
                    f"past the end of the file at {buf.size}"
                )
    video, audio = _pick(tracks, "vide"), _pick(tracks, "soun")
    if video is None and audio is None:
        handlers = (
            ", ".join(
                t.handler + (" without sample entry" if t.handler in MEDIA_HANDLERS else "") for t in tracks
            )
            or "none"
        )
        raise ProbeError(f"moov at offset {base}: no video or audio track (track handlers: {handlers})")
    container = _container(brand, video is not None)
    kind: Kind = "video" if video is not None else "audio"
    info = MediaInfo(
        valid=True,
        kind=kind,
        container=container,
        mime_type=_MIME.get((container, kind), "video/mp4"),
        file_size=buf.size,
        fragmented=fragments is not None,
    )
    audio_info = _audio_info(audio, fragments, movie_ts) if audio is not None else None
    if video is None:
        assert audio_info is not None
        info.codec, info.sample_rate, info.channels = (
            audio_info.codec,
            audio_info.sample_rate,
            audio_info.channels,
        )
        info.duration, info.bit_depth = audio_info.duration, audio_info.bit_depth
        return info
    info.audio = audio_info
    _fill_video(info, video, _timing(video, fragments, movie_ts), fragments)
    if fragments is not None and not fragments.complete:
        declared = fragments.sidx_duration.get(video.track_id)
        if declared is None and fragment_duration:  # mehd: the whole fragmented movie
            declared = Fraction(fragment_duration, movie_ts)
        info.duration = _float(declared)
    return info


def _fill_video(info: MediaInfo, video: Track, timing: Timing, fragments: Fragments | None) -> None:
    entry = video.entry
    assert entry is not None
    info.codec, info.width, info.height = entry.codec, entry.width, entry.height
    info.rotation = video.rotation
    info.sar_pasp = _ratio(entry.sar_pasp)
    info.sar_vui = info.sar_pasp if entry.sar_vui == entry.sar_pasp else _ratio(entry.sar_vui)
    info.sar = info.sar_pasp or info.sar_vui
    if fragments is not None and not fragments.complete:
        return  # frames, duration and rates need every fragment: unknown, never guessed
    info.frames, info.presented_frames = timing.frames, timing.presented
    info.vfr, info.negative_pts = timing.vfr, timing.negative_pts
    duration, fps, nominal = timing.duration, timing.fps, timing.nominal_fps
    if duration is not None:  # int / int is correctly rounded, as float(Ratio) is
        info.duration = duration[0] / duration[1]
    if fps is not None:
        info.fps, info.fps_rational = fps[0] / fps[1], f"{fps[0]}/{fps[1]}"
    if nominal is not None:
        info.nominal_fps, info.nominal_fps_rational = nominal[0] / nominal[1], f"{nominal[0]}/{nominal[1]}"
