"""ADTS: raw AAC frames, each with a 7-byte (9 with CRC) header.

ADTS has no index and no total: the duration is known exactly only by counting frames. Frames are
walked within the budget of :mod:`workers.probe.framescan` (one request): if the walk reaches the
end of the file, ``duration = frames * 1024 / rate`` exactly (what a decoder outputs, priming
samples included). Otherwise the duration is extrapolated from the mean size of the frames walked
(better than the first frame's size alone, since AAC frames vary) and flagged
``duration_estimated=True``. ffprobe also estimates here (from a bitrate), so for long files both
are estimates; the tests hold ours to the exact frame count where it is known.
"""

from __future__ import annotations

from workers.probe.framescan import FrameSpec, scan_end, walk_frames
from workers.probe.media import MediaInfo, ProbeError
from workers.probe.sparse import Sparse

RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)
HEADER_LEN = 7
SAMPLES_PER_BLOCK = 1024


class AdtsHeader:
    """The fields of one ADTS header the probe uses."""

    __slots__ = ("blocks", "channel_config", "length", "profile", "rate_index")

    def __init__(self, profile: int, rate_index: int, channel_config: int, length: int, blocks: int) -> None:
        self.profile = profile
        self.rate_index = rate_index
        self.channel_config = channel_config
        self.length = length
        self.blocks = blocks

    def same_stream(self, other: AdtsHeader) -> bool:
        return (self.profile, self.rate_index, self.channel_config) == (
            other.profile,
            other.rate_index,
            other.channel_config,
        )


def decode_header(b: bytes) -> AdtsHeader | None:
    """The ADTS header in ``b[:7]``, or ``None`` if it is not a valid one."""
    if len(b) < HEADER_LEN or b[0] != 0xFF or (b[1] & 0xF6) != 0xF0:
        return None
    crc = not (b[1] & 1)
    rate_index = (b[2] >> 2) & 0xF
    length = ((b[3] & 3) << 11) | (b[4] << 3) | (b[5] >> 5)
    if rate_index >= len(RATES) or length < HEADER_LEN + (2 if crc else 0):
        return None
    return AdtsHeader(b[2] >> 6, rate_index, ((b[2] & 1) << 2) | (b[3] >> 6), length, (b[6] & 3) + 1)


def parse_at(buf: Sparse, offset: int) -> MediaInfo:
    """Probe an ADTS stream whose first frame is at ``offset``."""
    first = decode_header(buf.get(offset, HEADER_LEN))
    if first is None:
        raise ProbeError(f"ADTS: invalid frame header at {offset}")
    if offset + first.length < buf.size:
        nxt = decode_header(buf.get(offset + first.length, HEADER_LEN))
        if nxt is None or not nxt.same_stream(first):
            raise ProbeError(f"ADTS: frame at {offset} is not followed by a matching frame")
    rate = RATES[first.rate_index]

    def frame_at(b: bytes) -> FrameSpec | None:
        h = decode_header(b)
        if h is None or not h.same_stream(first):
            return None
        return FrameSpec(h.length, h.blocks * SAMPLES_PER_BLOCK)

    walk = walk_frames(buf, offset, HEADER_LEN, frame_at, scan_end(offset, buf.size))
    if walk.stop != "budget":
        duration, estimated = walk.samples / rate, False
    else:
        duration = (buf.size - offset) / (walk.nbytes / walk.frames) * (walk.samples / walk.frames) / rate
        estimated = True
    channels = {0: None, 7: 8}.get(first.channel_config, first.channel_config)
    return MediaInfo(
        valid=True,
        kind="audio",
        container="adts",
        mime_type="audio/aac",
        file_size=buf.size,
        codec="aac",
        sample_rate=rate,
        channels=channels,
        duration=duration,
        duration_estimated=estimated,
    )


def parse(buf: Sparse) -> MediaInfo:
    """Probe an ADTS AAC file."""
    return parse_at(buf, 0)
