"""Hand-built ISO BMFF files for layouts and box versions ffmpeg does not write.

A tiny box builder assembles ``ftyp``/``moov``/``mdat`` with exactly the tables a case needs:
64-bit box sizes inside ``moov``, ``size 0`` boxes, ``uuid`` boxes, version 1 ``tkhd``/
``mdhd``/``elst``/``ctts``, ``stz2``, ``co64``, QuickTime sound descriptions v1/v2, protected
(``encv``) entries, disabled tracks, and broken tables.
"""

from __future__ import annotations

import struct

import pytest

from workers.probe.bmff import parse
from workers.probe.bmff_timing import track_timing
from workers.probe.engine import probe_bytes
from workers.probe.media import MediaInfo, ProbeError
from workers.probe.sparse import Sparse

MDAT_PAYLOAD = 4000


def box(kind: bytes, *parts: bytes, large: bool = False) -> bytes:
    payload = b"".join(parts)
    if large:
        return struct.pack(">I4sQ", 1, kind, 16 + len(payload)) + payload
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def full(kind: bytes, version: int, flags: int, *parts: bytes) -> bytes:
    return box(kind, struct.pack(">I", version << 24 | flags), *parts)


def tkhd(
    track_id: int, *, version: int = 0, enabled: bool = True, matrix: tuple[int, ...] = (1, 0, 0, 1)
) -> bytes:
    a, b, c, d = (v * 65536 for v in matrix)
    times = (
        struct.pack(">QQIIQ", 0, 0, track_id, 0, 0)
        if version
        else struct.pack(">IIIII", 0, 0, track_id, 0, 0)
    )
    rest = (
        bytes(16)
        + struct.pack(">9i", a, b, 0, c, d, 0, 0, 0, 1 << 30)
        + struct.pack(">II", 64 << 16, 48 << 16)
    )
    return full(b"tkhd", version, 3 if enabled else 2, times, rest)


def mdhd(timescale: int, duration: int, *, version: int = 0) -> bytes:
    if version:
        return full(b"mdhd", 1, 0, struct.pack(">QQIQ", 0, 0, timescale, duration), bytes(4))
    return full(b"mdhd", 0, 0, struct.pack(">IIII", 0, 0, timescale, duration), bytes(4))


def hdlr(kind: bytes) -> bytes:
    return full(b"hdlr", 0, 0, bytes(4), kind, bytes(12), b"\x00")


def visual(fourcc: bytes, *children: bytes) -> bytes:
    fixed = bytes(6) + struct.pack(">H", 1) + bytes(16) + struct.pack(">HH", 64, 48) + bytes(50)
    return box(fourcc, fixed, *children)


def sound(fourcc: bytes, *, version: int = 0, channels: int = 2, rate: int = 48000) -> bytes:
    head = bytes(6) + struct.pack(">HHH", 1, version, 0) + bytes(4)
    if version == 2:
        always = struct.pack(">HHhHI", 3, 16, -2, 0, 65536)
        fields = struct.pack(">IdIIIIII", 72, rate, channels, 0x7F000000, 24, 0, 0, 0)
        return box(fourcc, head, always, fields)
    fields = struct.pack(">HHHHI", channels, 16, 0, 0, rate << 16)
    return box(fourcc, head, fields, bytes(16) if version == 1 else b"")


def stbl(
    entry: bytes,
    n: int,
    delta: int,
    *,
    ctts: list[tuple[int, int]] | None = None,
    ctts_version: int = 0,
    stz2: bool = False,
    co64: bool = False,
    chunk_at: int = 100,
    stts: list[tuple[int, int]] | None = None,
) -> bytes:
    runs = stts or [(n, delta)]
    parts = [
        full(b"stsd", 0, 0, struct.pack(">I", 1), entry),
        full(b"stts", 0, 0, struct.pack(">I", len(runs)), b"".join(struct.pack(">II", *r) for r in runs)),
        full(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, n, 1)),
    ]
    if ctts is not None:
        body = b"".join(struct.pack(">Ii", c, o) for c, o in ctts)
        parts.append(full(b"ctts", ctts_version, 0, struct.pack(">I", len(ctts)), body))
    if stz2:
        parts.append(
            full(b"stz2", 0, 0, struct.pack(">I", 8)[1:] + b"\x10", struct.pack(">I", n), b"\x00\x0a" * n)
        )
    else:
        parts.append(full(b"stsz", 0, 0, struct.pack(">II", 10, n)))
    if co64:
        parts.append(full(b"co64", 0, 0, struct.pack(">IQ", 1, chunk_at)))
    else:
        parts.append(full(b"stco", 0, 0, struct.pack(">II", 1, chunk_at)))
    return box(b"stbl", *parts)


def trak(track_id: int, handler: bytes, table: bytes, *, timescale: int = 12800, duration: int = 0,
         edits: list[tuple[int, int]] | None = None, elst_version: int = 0, version: int = 0,
         enabled: bool = True, matrix: tuple[int, ...] = (1, 0, 0, 1)) -> bytes:  # fmt: skip
    parts = [tkhd(track_id, version=version, enabled=enabled, matrix=matrix)]
    if edits is not None:
        fmt = ">Qqhh" if elst_version else ">Iihh"
        body = b"".join(struct.pack(fmt, d, t, 1, 0) for d, t in edits)
        parts.append(box(b"edts", full(b"elst", elst_version, 0, struct.pack(">I", len(edits)), body)))
    media = [mdhd(timescale, duration, version=version), hdlr(handler), box(b"minf", table)]
    parts.append(box(b"mdia", *media))
    return box(b"trak", *parts)


def mp4(
    *traks: bytes, brand: bytes | None = b"isom", mdat_size_zero: bool = False, extra_top: bytes = b""
) -> bytes:
    moov = box(b"moov", full(b"mvhd", 0, 0, struct.pack(">IIII", 0, 0, 1000, 0), bytes(80)), *traks)
    ftyp = box(b"ftyp", brand, struct.pack(">I", 0), brand) if brand else b""
    mdat_payload = bytes(MDAT_PAYLOAD)
    mdat = struct.pack(">I4s", 0, b"mdat") + mdat_payload if mdat_size_zero else box(b"mdat", mdat_payload)
    return ftyp + extra_top + moov + mdat


def avc1() -> bytes:
    return visual(b"avc1")


def video(n: int = 25, **kw: object) -> bytes:
    table_kw = {k: kw.pop(k) for k in ("ctts", "ctts_version", "stz2", "co64", "chunk_at") if k in kw}
    return trak(1, b"vide", stbl(avc1(), n, 512, **table_kw), duration=n * 512, **kw)  # type: ignore[arg-type]


def probe(data: bytes) -> MediaInfo:
    info = probe_bytes(data)
    assert info.valid, info.error
    return info


def test_minimal_file() -> None:
    """A hand-built H.264 track: 25 samples of 512 at 12800 = 1 s at 25 fps."""
    info = probe(mp4(video()))
    assert (info.codec, info.frames, info.fps_rational, info.duration, info.container) == (
        "h264",
        25,
        "25/1",
        1.0,
        "mp4",
    )


def test_version_1_boxes_and_64bit_sizes() -> None:
    """tkhd/mdhd v1, elst v1, co64, stz2 and a 64-bit trak box parse like their v0 forms."""
    t = video(version=1, edits=[(1000, 0)], elst_version=1, stz2=True, co64=True)
    large = box(b"trak", t[8:], large=True)
    info = probe(mp4(large))
    assert (info.frames, info.fps_rational, info.duration) == (25, "25/1", 1.0)


def test_no_ftyp_is_quicktime() -> None:
    """A file starting with moov (no ftyp) is classic QuickTime; brand 3gp4 is 3gp."""
    assert probe(mp4(video(), brand=None)).container == "mov"
    assert probe(mp4(video(), brand=b"qt  ")).mime_type == "video/quicktime"
    assert probe(mp4(video(), brand=b"3gp4")).container == "3gp"


def test_size_zero_mdat_and_uuid_box() -> None:
    """A last mdat of size 0 runs to the end; a top-level uuid box is hopped with its 24-byte header."""
    uuid = struct.pack(">I4s", 24 + 10, b"uuid") + bytes(16) + bytes(10)
    info = probe(mp4(video(), mdat_size_zero=True, extra_top=uuid))
    assert info.valid and info.frames == 25


def test_negative_composition_offsets_without_edit_list() -> None:
    """ctts v1 with a negative first offset and no edit list puts a sample before 0."""
    info = probe(mp4(video(ctts=[(1, -512), (24, 0)], ctts_version=1)))
    assert (info.negative_pts, info.presented_frames, info.frames) == (True, 24, 25)


def test_edit_list_with_media_time_hides_leading_samples() -> None:
    """An edit starting at media time 5 samples in presents 20 of 25 frames over 0.8 s."""
    info = probe(mp4(video(edits=[(800, 5 * 512)])))
    assert (info.negative_pts, info.presented_frames, info.duration, info.fps_rational) == (
        True,
        20,
        0.8,
        "25/1",
    )


def test_vfr_ignores_only_the_last_delta() -> None:
    """A different last delta is not VFR; a different delta elsewhere is."""
    table = stbl(avc1(), 25, 512, stts=[(24, 512), (1, 300)])
    assert probe(mp4(trak(1, b"vide", table))).vfr is False
    table = stbl(avc1(), 25, 512, stts=[(10, 512), (1, 300), (14, 512)])
    info = probe(mp4(trak(1, b"vide", table)))
    assert (info.vfr, info.nominal_fps_rational) == (True, "25/1")


def test_first_enabled_video_track_wins() -> None:
    """A disabled video track before an enabled one is skipped; rotation comes from the chosen one."""
    disabled = trak(1, b"vide", stbl(visual(b"hvc1"), 10, 512), enabled=False)
    enabled = trak(2, b"vide", stbl(avc1(), 25, 512), matrix=(0, 1, -1, 0))
    info = probe(mp4(disabled, enabled))
    assert (info.codec, info.frames, info.rotation) == ("h264", 25, 90)


def test_other_tracks_are_not_judged() -> None:
    """A timecode track with inconsistent tables beside a good video track does not spoil the file."""
    tmcd = trak(2, b"tmcd", stbl(visual(b"tmcd"), 5, 512, ctts=[(1, 0)]))
    info = probe(mp4(video(), tmcd))
    assert (info.codec, info.frames) == ("h264", 25)


def test_protected_entry_reports_original_format() -> None:
    """encv with sinf/frma avc1 is reported as h264."""
    sinf = box(b"sinf", box(b"frma", b"avc1"))
    info = probe(mp4(trak(1, b"vide", stbl(visual(b"encv", sinf), 25, 512))))
    assert info.codec == "h264"


@pytest.mark.parametrize(("version", "rate", "channels"), [(0, 44100, 2), (1, 48000, 1), (2, 96000, 6)])
def test_quicktime_sound_descriptions(version: int, rate: int, channels: int) -> None:
    """Sound description v0/v1/v2 give the rate and channel count (v2 as float64/u32)."""
    t = trak(
        1,
        b"soun",
        stbl(sound(b"sowt", version=version, channels=channels, rate=rate), 10, 1024),
        timescale=rate,
    )
    info = probe(mp4(t, brand=b"qt  "))
    assert (info.kind, info.codec, info.sample_rate, info.channels) == ("audio", "pcm", rate, channels)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (mp4(trak(1, b"text", stbl(avc1(), 25, 512))), "no video or audio track (track handlers: text)"),
        (mp4(video(chunk_at=10**9)), "sample data ends at offset"),
        (mp4(video(ctts=[(3, 0)])), "ctts covers 3 samples but the size table has 25"),
        (mp4(box(b"trak", tkhd(1))), "missing mdia"),
        (mp4(video()).replace(b"stts" + bytes(7) + b"\x01", b"stts" + bytes(6) + b"\x10\x00"),
         "stts with 4096 entries needs"),
    ],
)  # fmt: skip
def test_broken_tables_name_the_box(data: bytes, message: str) -> None:
    """Inconsistent or overflowing tables fail with the box, the value and the limit."""
    info = probe_bytes(data)
    assert not info.valid and info.error is not None and message in info.error, info.error
    with pytest.raises(ProbeError):
        parse(Sparse.whole(data))


def test_child_box_past_its_parent() -> None:
    """A child whose size passes its parent's end is reported with its file offset."""
    data = bytearray(mp4(video()))
    at = data.find(b"mdhd") - 4
    struct.pack_into(">I", data, at, 5000)
    info = probe_bytes(bytes(data))
    assert (
        info.error is not None
        and f"box 'mdhd' at offset {at}" in info.error
        and "runs past its end" in info.error
    )


def test_huge_sample_counts_are_not_expanded() -> None:
    """Tables claiming 4 billion samples are computed by arithmetic, or refused, never expanded."""
    n = 4_000_000_000
    data = mp4(trak(1, b"vide", stbl(avc1(), n, 1, ctts=[(n, 2)])))
    info = probe_bytes(data)  # 4e9 samples of 10 bytes cannot be in a 4.5 KB file
    assert info.error is not None and "sample data ends at offset 40000000100" in info.error
    timing = track_timing(
        stts=[(n, 1)], ctts=[(n, 2)], timescale=1, media_duration=n, edits=None, movie_timescale=1
    )
    assert (timing.frames, timing.presented, timing.negative_pts) == (n, n, False)
    with pytest.raises(ProbeError, match="varying composition offsets"):
        track_timing(
            stts=[(n, 1)], ctts=[(n // 2, 2), (n // 2, 0)], timescale=1, media_duration=n, edits=None,
            movie_timescale=1,
        )  # fmt: skip
