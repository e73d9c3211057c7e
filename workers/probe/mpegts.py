"""MPEG-TS: the first video stream's codec (PAT/PMT) and its timing from PES timestamps.

Theory of operation: a transport stream has no header that states a duration, so the probe
reads two windows of whole 188-byte packets, each in one read: the head (up to 348 packets,
inside the driver's 64 KiB first read) and the tail (the last 348 packets). The first 4 packets
must carry the sync byte; the head scan stops at the first packet without it (trailing data or
damage after what was found), the tail scan skips such packets. When the head scan stopped
early and the tail holds no video timestamp, the stream is taken to end inside the head.

* ``codec``: the first video ``stream_type`` of the first program's PMT (PAT and PMT sections
  starting in the head, as muxers put them).
* Timestamps: the PTS of every PES that starts on the video PID in either window, taken modulo
  2^33 relative to the first one (so a wrap of the 33-bit clock inside the file is harmless).
* ``fps``/``fps_rational``: from the sorted PTS of each window, the longest run of frame steps
  (each under 1.5x the smallest) gives the mean step, turned into a rate by
  :func:`workers.probe.rates.from_frame_duration` (23.976 fps alternates 3753 and 3754 ticks).
* ``duration``: last PTS in the tail - first PTS in the head, plus one frame (as ffprobe counts
  the stream's duration), only when the rate is known and the tail's timestamps do not fall
  behind the head's (a discontinuity, such as concatenated streams, leaves it unknown).
* ``width``/``height``: from the first video PES's sequence header (MPEG-1/2) or SPS (H.264,
  H.265, via :mod:`workers.probe.h26x`), read from the head's packets (the first 4 KiB of that
  PES's data). The SPS's VUI timing gives the rate when the timestamps cannot (one PES only).
  A sequence header or SPS that is cut short or malformed leaves them unknown: the stream
  around it is still a stream.
* ``frames`` stays unknown: no TS header counts frames.
"""

from __future__ import annotations

import itertools
import struct
from fractions import Fraction

from workers.probe import h26x, rates
from workers.probe.layout import exact
from workers.probe.media import ProbeError
from workers.probe.sparse import Sparse

PACKET = 188
WINDOW_PACKETS = 348  # 65 424 bytes: the head fits the driver's 64 KiB first read
_SYNCED_PACKETS = 4  # must all carry the sync byte (when the file holds that many)
_CLOCK = 90_000
_ES_BYTES = 4096  # of the first video PES: sequence header / parameter sets come first
# MPEG-1/2 sequence header frame_rate_code -> rate
_MPEG2_RATES = {
    1: Fraction(24000, 1001),
    2: Fraction(24),
    3: Fraction(25),
    4: Fraction(30000, 1001),
    5: Fraction(30),
    6: Fraction(50),
    7: Fraction(60000, 1001),
    8: Fraction(60),
}
_WRAP = 1 << 33
# ISO/IEC 13818-1 stream_type -> codec, for video streams
VIDEO_TYPES: dict[int, str] = {
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
_COMMON_RATES = sorted(
    {Fraction(n) for n in range(1, 241)}
    | {Fraction(n * 1000, 1001) for n in (12, 15, 24, 30, 48, 60, 120, 240)}
)


def _payload(packet: bytes) -> int | None:
    """Offset of the payload in a packet, or None when it has none."""
    control = (packet[3] >> 4) & 3
    if not control & 1:
        return None
    at = 4 + (1 + packet[4] if control & 2 else 0)
    return at if at < PACKET else None


def _head_packets(buf: Sparse) -> list[bytes]:
    count = min(WINDOW_PACKETS, buf.size // PACKET)
    if count < 2:
        raise ProbeError(f"mpegts: {buf.size} bytes hold fewer than 2 transport packets")
    data = exact(buf, 0, count * PACKET, "mpegts head packets")
    packets = []
    for i in range(count):
        packet = data[i * PACKET : (i + 1) * PACKET]
        if packet[0] != 0x47:
            if i < _SYNCED_PACKETS:
                raise ProbeError(f"mpegts: packet {i} at offset {i * PACKET} has sync byte {packet[0]:#04x}")
            break
        packets.append(packet)
    return packets


def _tail_packets(buf: Sparse, head_count: int) -> list[bytes] | None:
    """Synced packets of the tail window; ``None`` when the head scan reached the end."""
    total = buf.size // PACKET
    first = max(head_count, total - WINDOW_PACKETS)
    if first >= total:
        return None
    data = exact(buf, first * PACKET, (total - first) * PACKET, "mpegts tail packets")
    chunks = (data[i : i + PACKET] for i in range(0, len(data), PACKET))
    return [packet for packet in chunks if packet[0] == 0x47]


def _sections(packets: list[bytes]) -> dict[int, bytes]:
    """PSI sections starting in ``packets``, by PID (the first section of each PID)."""
    sections: dict[int, bytes] = {}
    for packet in packets:
        pid = (packet[1] & 0x1F) << 8 | packet[2]
        at = _payload(packet)
        if not packet[1] & 0x40 or at is None or pid in sections:
            continue
        at += 1 + packet[at]  # pointer field
        if at + 3 <= PACKET:
            length = (packet[at + 1] & 0x0F) << 8 | packet[at + 2]
            sections[pid] = packet[at : at + 3 + length]
    return sections


def _video_stream(sections: dict[int, bytes]) -> tuple[int, str] | None:
    """(PID, codec) of the first video stream of the first program."""
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
        if stream_type in VIDEO_TYPES:
            return (pmt[at + 1] & 0x1F) << 8 | pmt[at + 2], VIDEO_TYPES[stream_type]
        at += 5 + ((pmt[at + 3] & 0x0F) << 8 | pmt[at + 4])
    return None


def _pts(packets: list[bytes], pid: int) -> list[int]:
    """PTS of each PES starting on ``pid`` in ``packets``, in file order."""
    out = []
    for packet in packets:
        if not packet[1] & 0x40 or ((packet[1] & 0x1F) << 8 | packet[2]) != pid:
            continue
        at = _payload(packet)
        if at is None or at + 14 > PACKET or packet[at : at + 3] != b"\x00\x00\x01":
            continue
        if packet[at + 7] & 0x80 and packet[at + 8] >= 5:
            b = packet[at + 9 : at + 14]
            out.append((b[0] >> 1 & 7) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1)
    return out


def _first_pes_data(packets: list[bytes], pid: int) -> bytes:
    """The start of the first PES's data on ``pid`` (after its header), up to ``_ES_BYTES``."""
    out = bytearray()
    for packet in packets:
        at = _payload(packet)
        if ((packet[1] & 0x1F) << 8 | packet[2]) != pid or at is None:
            continue
        if packet[1] & 0x40:
            if out or at + 9 > PACKET or packet[at : at + 3] != b"\x00\x00\x01":
                break
            at += 9 + packet[at + 8]
        elif not out:
            continue
        out += packet[at:]
        if len(out) >= _ES_BYTES:
            break
    return bytes(out)


def _nal_units(data: bytes) -> list[bytes]:
    """NAL units (or MPEG-2 start-code units) of an Annex B byte stream, start codes removed."""
    units = data.split(b"\x00\x00\x01")[1:]
    return [unit.rstrip(b"\x00") for unit in units]


def _picture(codec: str, data: bytes) -> tuple[int, int, Fraction | None] | None:
    """(width, height, rate) from the sequence header or SPS at the start of ``data``."""
    for unit in _nal_units(data):
        try:
            if codec in ("mpeg1video", "mpeg2video") and unit[:1] == b"\xb3" and len(unit) >= 5:
                width, height = unit[1] << 4 | unit[2] >> 4, (unit[2] & 0x0F) << 8 | unit[3]
                return (width, height, _MPEG2_RATES.get(unit[4] & 0x0F)) if width and height else None
            if codec == "h264" and unit[:1] and unit[0] & 0x1F == 7:
                sps = h26x.h264_sps(unit)
                return sps.width, sps.height, sps.fps
            if codec == "hevc" and unit[:1] and (unit[0] >> 1) & 0x3F == 33:
                sps = h26x.hevc_sps(unit)
                return sps.width, sps.height, sps.fps
        except ProbeError:
            return None
    return None


def _mean_step(times: list[int]) -> tuple[int, int] | None:
    """(ticks, frames) of the longest run of regular frame steps in ``times`` (sorted PTS)."""
    steps = [b - a for a, b in itertools.pairwise(times) if b > a]
    if not steps:
        return None
    limit = min(steps) * 3 // 2
    best, run, ticks = (0, 0), 0, 0
    for step in steps:
        run, ticks = (run + 1, ticks + step) if step <= limit else (0, 0)
        if run > best[1]:
            best = (ticks, run)
    return best if best[1] else None


def _timing(head: list[int], tail: list[int] | None, coded_fps: Fraction | None) -> dict[str, object]:
    """fps and duration from the PTS in the head and the tail (``None``: the head was all),
    the rate the bitstream declares standing in when the timestamps give none."""
    if not head:
        return {}
    ref = head[0]
    rel_head = sorted((t - ref + _WRAP // 2) % _WRAP - _WRAP // 2 for t in head)
    rel_tail = rel_head if tail is None else sorted((t - ref + _WRAP // 2) % _WRAP - _WRAP // 2 for t in tail)
    means = [m for m in (_mean_step(rel_head), _mean_step(rel_tail)) if m is not None]
    if means:
        ticks, frames = max(means, key=lambda m: m[1])
        fps = rates.from_frame_duration(_CLOCK, Fraction(ticks, frames))
    elif coded_fps is not None:
        fps = coded_fps
    else:
        return {}
    fields: dict[str, object] = {"fps": float(fps), "fps_rational": f"{fps.numerator}/{fps.denominator}"}
    if rel_tail and rel_tail[-1] >= rel_head[-1]:  # else the clock was reset: no duration to tell
        fields["duration"] = float(Fraction(rel_tail[-1] - rel_head[0], _CLOCK) + 1 / fps)
    return fields


def mpegts(buf: Sparse) -> dict[str, object]:
    """Codec of the first video stream and, from its timestamps, fps and duration."""
    head = _head_packets(buf)
    video = _video_stream(_sections(head))
    if video is None:
        return {"codec": None}
    pid, codec = video
    tail = _tail_packets(buf, len(head))
    tail_pts = None if tail is None else _pts(tail, pid)
    if not tail_pts and len(head) < WINDOW_PACKETS:
        tail_pts = None  # the stream ended inside the head; what follows is not part of it
    picture = _picture(codec, _first_pes_data(head, pid))
    fields: dict[str, object] = {"codec": codec}
    if picture is not None:
        fields["width"], fields["height"] = picture[0], picture[1]
    return fields | _timing(_pts(head, pid), tail_pts, picture[2] if picture else None)
