"""Hand-built Matroska, AVI and MPEG-TS layouts ffmpeg does not write: SeekHead to headers
after the media, elements of unknown size, a 33-bit PTS wrap, an AVI whose strh has no rate."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workers.probe.engine import DEFAULT_HEAD_BYTES, probe_bytes
from workers.probe.engine import parse as engine_parse
from workers.probe.mpegts import PACKET
from workers.probe.sparse import Sparse
from workers.rules import encord

from .test_image_properties import fed, outcome

UNKNOWN = b"\x01\xff\xff\xff\xff\xff\xff\xff"


def ebml(ident: int, payload: bytes, *, unknown: bool = False) -> bytes:
    size = UNKNOWN if unknown else (len(payload) | 1 << 56).to_bytes(8, "big")
    return ident.to_bytes((ident.bit_length() + 7) // 8, "big") + size + payload


def uint(ident: int, value: int) -> bytes:
    return ebml(ident, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


HEADER = ebml(0x1A45DFA3, ebml(0x4282, b"webm"))
AUDIO_ENTRY = ebml(0xAE, uint(0x83, 2) + uint(0x73C5, 11) + ebml(0x86, b"A_OPUS"))
VIDEO_ENTRY = ebml(
    0xAE,
    uint(0x83, 1)
    + uint(0x73C5, 22)
    + ebml(0x86, b"V_VP9")
    + uint(0x23E383, 41_708_333)
    + ebml(0xE0, uint(0xB0, 320) + uint(0xBA, 240)),
)
TRACKS = ebml(0x1654AE6B, AUDIO_ENTRY + VIDEO_ENTRY)


def info(scale: int, duration: bytes) -> bytes:
    return ebml(0x1549A966, uint(0x2AD7B1, scale) + ebml(0x4489, duration))


def seekhead(entries: dict[int, int]) -> bytes:
    seeks = b"".join(
        ebml(
            0x4DBB,
            ebml(0x53AB, ident.to_bytes((ident.bit_length() + 7) // 8, "big"))
            + ebml(0x53AC, pos.to_bytes(4, "big")),
        )
        for ident, pos in entries.items()
    )
    return ebml(0x114D9B74, seeks)


def test_info_and_tracks_after_the_clusters_are_found_through_the_seekhead() -> None:
    """A muxer that writes Info and Tracks at the end: two targeted reads, not the media."""
    clusters = ebml(0x1F43B675, bytes(300_000))
    head_len = len(seekhead({0x1549A966: 0, 0x1654AE6B: 0}))
    tail_info = info(1_000_000, struct.pack(">d", 5005.0))
    entries = {0x1549A966: head_len + len(clusters), 0x1654AE6B: head_len + len(clusters) + len(tail_info)}
    segment = seekhead(entries) + clusters + tail_info + TRACKS
    data = HEADER + ebml(0x18538067, segment)
    got = probe_bytes(data)
    assert (got.valid, got.codec, got.width, got.height) == (True, "vp9", 320, 240)
    assert (got.fps_rational, got.duration) == ("24000/1001", 5.005)
    assert got.requests == 2 and got.bytes_read <= DEFAULT_HEAD_BYTES + 4096


def test_unknown_sizes_end_at_the_next_top_level_element() -> None:
    """A live stream: Segment, Tracks and Cluster of unknown size; a 4-byte float Duration in a
    TimecodeScale of 1 us."""
    tracks_unknown = ebml(0x1654AE6B, TRACKS[12:], unknown=True)
    segment = (
        tracks_unknown
        + info(1000, struct.pack(">f", 2_500_000.0))
        + ebml(0x1F43B675, bytes(50), unknown=True)
    )
    data = HEADER + ebml(0x18538067, segment, unknown=True)
    got = probe_bytes(data)
    assert (got.valid, got.width, got.fps_rational, got.duration) == (True, 320, "24000/1001", 2.5)
    assert fed(engine_parse, data, one_byte=True) == outcome(engine_parse, Sparse.whole(data))


@pytest.mark.parametrize(
    ("default_duration", "rational"),
    [
        (40_000_000, "25/1"),
        (33_366_666, "30000/1001"),
        (16_683_333, "60000/1001"),
        (33_000_000, "1000/33"),
        (123_456_789, "1000000000/123456789"),
    ],
)
def test_default_duration_to_a_rate(default_duration: int, rational: str) -> None:
    entry = ebml(0xAE, uint(0x83, 1) + uint(0x23E383, default_duration))
    data = HEADER + ebml(0x18538067, ebml(0x1654AE6B, entry))
    assert probe_bytes(data).fps_rational == rational


@pytest.mark.parametrize(
    ("segment", "error"),
    [
        (seekhead({0x1549A966: 0}) + ebml(0x1F43B675, bytes(10)), "SeekHead points at offset"),
        (info(1_000_000, b"\x00\x00")[:-1], "runs past its parent"),
    ],
)
def test_broken_matroska_is_named(segment: bytes, error: str) -> None:
    got = probe_bytes(HEADER + ebml(0x18538067, segment))
    assert not got.valid and error in (got.error or "")


def test_nan_or_missing_duration_is_unknown() -> None:
    data = HEADER + ebml(0x18538067, info(1_000_000, struct.pack(">d", float("nan"))) + TRACKS)
    got = probe_bytes(data)
    assert (got.valid, got.duration, got.fps_rational) == (True, None, "24000/1001")


def riff(kind: bytes, data: bytes) -> bytes:
    return kind + struct.pack("<I", len(data)) + data + b"\x00" * (len(data) & 1)


def avi(strh_rate: int, strh_length: int) -> bytes:
    avih = struct.pack("<IIIIIIIIII", 33_367, 0, 0, 0x10, 300, 0, 1, 0, 64, 48) + bytes(16)
    strh = b"vidsMJPG" + struct.pack(
        "<IHHIIIIIIIIhhhh", 0, 0, 0, 0, 1001, strh_rate, 0, strh_length, 0, 0, 0, 0, 0, 64, 48
    )
    strf = struct.pack("<IiiHH4sIiiII", 40, 64, 48, 1, 24, b"MJPG", 0, 0, 0, 0, 0)
    hdrl = b"hdrl" + riff(b"avih", avih) + riff(b"LIST", b"strl" + riff(b"strh", strh) + riff(b"strf", strf))
    body = b"AVI " + riff(b"LIST", hdrl) + riff(b"LIST", b"movi" + bytes(64))
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_avi_rate_from_strh_else_from_avih() -> None:
    """strh's dwRate/dwScale and dwLength rule; without a rate, avih's microseconds per frame
    (33367 us: 30000/1001 within 1 us) and total frames stand in."""
    by_strh = probe_bytes(avi(30000, 240))
    assert (by_strh.fps_rational, by_strh.frames, by_strh.duration) == ("30000/1001", 240, 8.008)
    by_avih = probe_bytes(avi(0, 0))
    assert (by_avih.fps_rational, by_avih.frames, by_avih.duration) == ("30000/1001", 300, 10.01)
    assert (by_avih.width, by_avih.height, by_avih.codec) == (64, 48, "MJPG")


def ts_packet(pid: int, payload: bytes, *, start: bool = True) -> bytes:
    header = struct.pack(">BHB", 0x47, (0x4000 if start else 0) | pid, 0x10)
    return header + payload + b"\xff" * (PACKET - 4 - len(payload))


def section(table: int, ident: int, body: bytes) -> bytes:
    length = 5 + len(body) + 4
    return b"\x00" + struct.pack(">BHHBBB", table, 0xB000 | length, ident, 0xC1, 0, 0) + body + bytes(4)


def pes(pts: int) -> bytes:
    b = bytes(
        (
            0x21 | (pts >> 29) & 0x0E,
            (pts >> 22) & 0xFF,
            0x01 | (pts >> 14) & 0xFE,
            (pts >> 7) & 0xFF,
            0x01 | (pts << 1) & 0xFE,
        )
    )
    return b"\x00\x00\x01\xe0\x00\x00\x80\x80\x05" + b


def ts(first_pts: int, frames: int, step: int, *, filler: int = 0) -> bytes:
    pat = ts_packet(0, section(0x00, 1, struct.pack(">HH", 1, 0xE000 | 0x1000)))
    pmt = ts_packet(
        0x1000,
        section(0x02, 1, struct.pack(">HH", 0xE100, 0xF000) + struct.pack(">BHH", 0x1B, 0xE100, 0xF000)),
    )
    video = [ts_packet(0x100, pes((first_pts + i * step) % (1 << 33))) for i in range(frames)]
    middle = [ts_packet(0x100, b"\x00" * 20, start=False)] * filler
    return pat + pmt + b"".join(video[: frames // 2]) + b"".join(middle) + b"".join(video[frames // 2 :])


@pytest.mark.parametrize("filler", [0, 2000])
def test_pts_wrapping_through_zero(filler: int) -> None:
    """The 33-bit clock wraps inside the file: duration is still last - first + one frame."""
    data = ts((1 << 33) - 3600 * 10, 50, 3600, filler=filler)
    got = probe_bytes(data)
    assert (got.valid, got.codec, got.fps_rational, got.duration) == (True, "h264", "25/1", 2.0)
    assert got.requests == (2 if filler else 1)


def test_ts_without_a_tail_timestamp_has_no_duration() -> None:
    """A long stream whose tail window holds no video PES start: fps from the head, duration unknown."""
    data = ts(0, 20, 3003, filler=0)
    data = data[: PACKET * 12] + ts_packet(0x100, b"\x00", start=False) * 1000
    got = probe_bytes(data)
    assert (got.valid, got.fps_rational, got.duration) == (True, "30000/1001", None)


def test_a_live_cluster_is_never_walked() -> None:
    """No Info before a Cluster of unknown size: the walk stops at the Cluster, it does not
    hop its 300 blocks to find where it ends."""
    blocks = ebml(0xE7, b"\x00") + ebml(0xA3, bytes(1000)) * 300
    segment = TRACKS + ebml(0x1F43B675, blocks, unknown=True)
    data = HEADER + ebml(0x18538067, segment, unknown=True)
    got = probe_bytes(data)
    assert (got.valid, got.width, got.duration, got.requests) == (True, 320, None, 1)


def statistics(uid: int, duration: bytes, frames: bytes) -> bytes:
    """One Tag of mkvmerge's track statistics, targeted at TrackUID ``uid``."""
    simple = ebml(0x67C8, ebml(0x45A3, b"DURATION") + ebml(0x4487, duration))
    simple += ebml(0x67C8, ebml(0x45A3, b"NUMBER_OF_FRAMES") + ebml(0x4487, frames))
    return ebml(0x7373, ebml(0x63C0, uint(0x63C5, uid)) + simple)


def test_video_statistics_tags_after_the_media_through_the_seekhead() -> None:
    """mkvmerge writes Tags at the end: the video track's DURATION (not the Segment's 10 s, which
    is the audio's) and NUMBER_OF_FRAMES, for one more read; the audio track's Tag is not used."""
    clusters = ebml(0x1F43B675, bytes(200_000))
    tags = ebml(
        0x1254C367,
        statistics(11, b"00:00:10.000000000", b"500") + statistics(22, b"00:00:08.008000000", b"192"),
    )
    head = seekhead({0x1254C367: 0}) + info(1_000_000, struct.pack(">d", 10_000.0)) + TRACKS
    segment = seekhead({0x1254C367: len(head) + len(clusters)}) + head[len(seekhead({0x1254C367: 0})) :]
    data = HEADER + ebml(0x18538067, segment + clusters + tags)
    got = probe_bytes(data)
    assert (got.valid, got.duration, got.frames, got.fps_rational) == (True, 8.008, 192, "24000/1001")
    assert got.requests == 2 and got.bytes_read <= DEFAULT_HEAD_BYTES + 4096
    assert round(got.fps * got.duration) == got.frames


@pytest.mark.parametrize(
    "tags",
    [
        ebml(0x1254C367, statistics(22, b"8 seconds", b"many")),  # unreadable values
        ebml(0x1254C367, statistics(33, b"00:00:01.000", b"25")),  # another track's
        b"\x00\x00\x00\x00",  # the SeekHead points at damage
    ],
)
def test_unusable_statistics_leave_the_segment_duration(tags: bytes) -> None:
    head = info(1_000_000, struct.pack(">d", 10_000.0)) + TRACKS
    pointer = len(seekhead({0x1254C367: 0})) + len(head) + 12
    segment = seekhead({0x1254C367: pointer}) + head + ebml(0x1F43B675, bytes(0)) + tags
    got = probe_bytes(HEADER + ebml(0x18538067, segment))
    assert (got.valid, got.duration, got.frames, got.duration_estimated) == (True, 10.0, None, True)


def test_ts_clock_reset_leaves_the_duration_unknown() -> None:
    """Two streams concatenated: the tail's timestamps restart below the head's."""
    first, second = ts(900_000, 30, 3600), ts(0, 30, 3600)
    data = first + second[2 * PACKET :] * 200
    got = probe_bytes(data)
    assert (got.valid, got.fps_rational, got.duration, got.requests) == (True, "25/1", None, 2)


@pytest.mark.parametrize("strict", [False, True])
def test_a_segment_duration_with_other_tracks_is_not_given_to_encord(strict: bool) -> None:
    """Two tracks and no statistics tag: the Segment's 10 s may be the audio's. Encord's frame
    indices would follow it, so videoMetadata is withheld (a warning; an error when strict)."""
    data = HEADER + ebml(0x18538067, info(1_000_000, struct.pack(">d", 10_000.0)) + TRACKS)
    got = probe_bytes(data)
    assert (got.duration, got.duration_estimated) == (10.0, True)
    report = encord.check(got, strict=strict)
    assert report.videoMetadata is None
    rules = [v.rule for v in (report.errors if strict else report.warnings)]
    assert rules == ["encord.video.duration_estimated"]


def test_a_segment_duration_of_a_video_only_file_is_its_own() -> None:
    video_only = ebml(0x1654AE6B, VIDEO_ENTRY)
    got = probe_bytes(HEADER + ebml(0x18538067, info(1_000_000, struct.pack(">d", 2_002.0)) + video_only))
    assert (got.duration, got.duration_estimated, got.width) == (2.002, False, 320)
    assert encord.check(got, strict=True).videoMetadata is not None


@settings(max_examples=300, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    packets=st.lists(
        st.tuples(st.sampled_from([0x100, 0x101, 0x1FFF]), st.booleans(), st.binary(max_size=184)),
        max_size=60,
    ),
    pts=st.lists(st.integers(0, (1 << 33) - 1), max_size=60),
    cut=st.integers(0, 20_000),
)
def test_arbitrary_ts_packets_give_a_result_or_a_rejection(
    packets: list[tuple[int, bool, bytes]], pts: list[int], cut: int
) -> None:
    """Valid tables, then packets on the video PID (and others) with arbitrary payloads and
    PES headers with arbitrary timestamps, cut anywhere: a result or a ProbeError, the same
    whole and need by need."""
    body = [ts_packet(pid, payload[:184], start=start) for pid, start, payload in packets]
    body += [ts_packet(0x100, pes(t)) for t in pts]
    data = (ts(0, 0, 1) + b"".join(body))[: max(cut, 2 * PACKET)]
    whole = outcome(engine_parse, Sparse.whole(data))
    assert fed(engine_parse, data, one_byte=False) == whole


MASTERS = [
    0x114D9B74,
    0x4DBB,
    0x1549A966,
    0x1654AE6B,
    0xAE,
    0xE0,
    0x1254C367,
    0x7373,
    0x63C0,
    0x67C8,
    0x1F43B675,
]
LEAVES = [
    0x53AB,
    0x53AC,
    0x2AD7B1,
    0x4489,
    0x83,
    0x86,
    0x23E383,
    0xB0,
    0xBA,
    0x73C5,
    0x63C5,
    0x45A3,
    0x4487,
    0xEC,
]
elements = st.recursive(
    st.tuples(st.sampled_from(LEAVES), st.binary(max_size=12)).map(lambda e: ebml(e[0], e[1])),
    lambda children: st.tuples(st.sampled_from(MASTERS), st.lists(children, max_size=5), st.booleans()).map(
        lambda e: ebml(e[0], b"".join(e[1]), unknown=e[2])
    ),
    max_leaves=30,
)


@settings(max_examples=400, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(children=st.lists(elements, max_size=6), unknown=st.booleans(), cut=st.integers(0, 4000))
def test_arbitrary_ebml_trees_give_a_result_or_a_rejection(
    children: list[bytes], unknown: bool, cut: int
) -> None:
    """Segment children built from the element ids the parser knows, nested anyhow, of known and
    unknown sizes, with arbitrary values, cut anywhere: a result or a ProbeError, the same whole
    and need by need."""
    data = (HEADER + ebml(0x18538067, b"".join(children), unknown=unknown))[: max(cut, len(HEADER) + 12)]
    whole = outcome(engine_parse, Sparse.whole(data))
    assert fed(engine_parse, data, one_byte=True) == whole
