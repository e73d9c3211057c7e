"""FLAC: everything the probe needs is in STREAMINFO, the mandatory first metadata block.

Only the 4-byte marker and the 38 bytes of STREAMINFO are read; the blocks after it (SEEKTABLE,
VORBIS_COMMENT, PADDING, PICTURE with cover art) are not walked, so a file with a big PICTURE or
PADDING block still costs one request. ``total samples == 0`` means "unknown" in the format:
the duration is then ``None`` (not guessed). ``parse_at`` also serves FLAC behind an ID3v2 tag
(found by the MPEG audio parser) and the STREAMINFO inside Ogg FLAC.
"""

from __future__ import annotations

from workers.probe.bits import BitReader
from workers.probe.media import MediaInfo, ProbeError
from workers.probe.sparse import Sparse

STREAMINFO = 0
STREAMINFO_LEN = 34


class StreamInfo:
    """The fields of STREAMINFO the probe reports."""

    __slots__ = ("bits", "channels", "rate", "total_samples")

    def __init__(self, rate: int, channels: int, bits: int, total_samples: int) -> None:
        self.rate = rate
        self.channels = channels
        self.bits = bits
        self.total_samples = total_samples

    @property
    def duration(self) -> float | None:
        return self.total_samples / self.rate if self.total_samples else None


def decode_streaminfo(body: bytes, where: str) -> StreamInfo:
    """Decode the 34-byte STREAMINFO body; ``where`` names it in errors."""
    if len(body) < STREAMINFO_LEN:
        raise ProbeError(f"FLAC STREAMINFO at {where}: {len(body)} of {STREAMINFO_LEN} bytes")
    r = BitReader(body)
    min_block, max_block = r.read(16), r.read(16)
    r.skip(48)  # min/max frame size
    rate = r.read(20)
    channels = r.read(3) + 1
    bits = r.read(5) + 1
    total = r.read(36)
    if rate == 0:
        raise ProbeError(f"FLAC STREAMINFO at {where}: sample rate 0")
    if max_block < 16 or min_block > max_block:
        raise ProbeError(f"FLAC STREAMINFO at {where}: block sizes {min_block}..{max_block}")
    return StreamInfo(rate, channels, bits, total)


def parse_at(buf: Sparse, offset: int) -> MediaInfo:
    """Probe native FLAC whose ``fLaC`` marker is at ``offset``."""
    head = buf.get(offset, 8 + STREAMINFO_LEN)
    if head[:4] != b"fLaC":
        raise ProbeError(f"FLAC: no fLaC marker at {offset}")
    if len(head) < 8:
        raise ProbeError(f"FLAC: first metadata block header at {offset + 4} cut by the end of the file")
    block_type = head[4] & 0x7F
    length = int.from_bytes(head[5:8], "big")
    if block_type != STREAMINFO or length < STREAMINFO_LEN:
        raise ProbeError(
            f"FLAC: first metadata block at {offset + 4} is type {block_type} of {length} bytes,"
            f" expected STREAMINFO (type 0) of {STREAMINFO_LEN}"
        )
    info = decode_streaminfo(head[8:], str(offset + 8))
    return MediaInfo(
        valid=True,
        kind="audio",
        container="flac",
        mime_type="audio/flac",
        file_size=buf.size,
        codec="flac",
        sample_rate=info.rate,
        channels=info.channels,
        bit_depth=info.bits,
        duration=info.duration,
        duration_estimated=False if info.duration is not None else None,
    )


def parse(buf: Sparse) -> MediaInfo:
    """Probe a native FLAC file."""
    return parse_at(buf, 0)
