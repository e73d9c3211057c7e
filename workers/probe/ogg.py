"""Ogg: Vorbis, Opus, FLAC and Speex streams.

The first pages (all beginning-of-stream pages come first) carry each logical stream's
identification header; the first audio stream is reported. A video stream (Theora, Daala, VP8,
Dirac) makes the file an error: video in Ogg is not supported, and it is not an audio file.
The duration comes from the granule position of that stream's last page, found in the last
64 KiB of the file (one ``Need``: two requests in all for a file longer than the head):

* Vorbis, FLAC, Speex: the granule counts samples at the stream's rate: ``granule / rate``.
* Opus: the granule counts 48 kHz samples including the pre-skip the decoder drops:
  ``(granule - pre_skip) / 48000``. ffprobe reports ``granule / 48000`` here (it includes the
  pre-skip), so it is longer than the decoded audio by ``pre_skip`` samples (6.5 ms for libopus);
  the tests check ours against the sample count fed to the encoder. ``sample_rate`` is 48000 (the
  rate Opus decodes at, as ffprobe says); ``mime_type`` is ``audio/ogg`` for every codec (the
  container's type; ``audio/opus`` names bare Opus in other containers too).

Pages are recognised by their CRC, so a capture pattern inside packet data, trailing garbage or a
page cut by the end of the file is never taken for a page. If no page of the stream with a
granule lies in the last 64 KiB (another stream fills the tail, or more than 64 KiB of trailing
data), the duration is ``None`` rather than a guess. Trailing data shorter than that does not
change the result. Streams whose first granule is not zero (cut from a live stream) are reported
from zero.
"""

from __future__ import annotations

import zlib

from workers.probe import flac
from workers.probe.media import MediaInfo, ProbeError
from workers.probe.sparse import Sparse

TAIL = 64 * 1024
MAX_BOS_PAGES = 16
NO_GRANULE = -1
_REVERSE_BITS = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def ogg_crc(page: bytes) -> int:
    """The Ogg page checksum (CRC-32, polynomial 0x04C11DB7, MSB-first, no init/xor).

    Computed with zlib's reflected CRC on bit-reversed bytes, then reversed back.
    """
    raw = zlib.crc32(page.translate(_REVERSE_BITS), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int(f"{raw:032b}"[::-1], 2)


class Page:
    """One Ogg page found in a byte window."""

    __slots__ = ("body", "bos", "granule", "length", "serial")

    def __init__(self, bos: bool, granule: int, serial: int, body: bytes, length: int) -> None:
        self.bos = bos
        self.granule = granule
        self.serial = serial
        self.body = body
        self.length = length


def page_at(data: bytes, i: int) -> Page | None:
    """The page starting at ``data[i]`` if it is complete and its CRC matches, else ``None``."""
    if data[i : i + 4] != b"OggS" or len(data) < i + 27 or data[i + 4] != 0:
        return None
    nsegs = data[i + 26]
    header_len = 27 + nsegs
    table = data[i + 27 : i + header_len]
    if len(table) < nsegs:
        return None
    length = header_len + sum(table)
    page = data[i : i + length]
    if len(page) < length:
        return None
    crc = int.from_bytes(page[22:26], "little")
    if ogg_crc(page[:22] + b"\0\0\0\0" + page[26:]) != crc:
        return None
    return Page(
        bos=bool(page[5] & 2),
        granule=int.from_bytes(page[6:14], "little", signed=True),
        serial=int.from_bytes(page[14:18], "little"),
        body=page[header_len:],
        length=length,
    )


class Stream:
    """An audio stream's identification header."""

    __slots__ = ("bits", "channels", "codec", "pre_skip", "rate")

    def __init__(
        self, codec: str, rate: int, channels: int, pre_skip: int = 0, bits: int | None = None
    ) -> None:
        self.codec = codec
        self.rate = rate
        self.channels = channels
        self.pre_skip = pre_skip
        self.bits = bits


def identify(packet: bytes, where: int) -> Stream | None:
    """The audio stream whose identification packet is ``packet``; ``None`` for other streams."""
    if packet.startswith(b"\x01vorbis") and len(packet) >= 16:
        return Stream("vorbis", int.from_bytes(packet[12:16], "little"), packet[11])
    if packet.startswith(b"OpusHead") and len(packet) >= 19:
        return Stream("opus", 48000, packet[9], pre_skip=int.from_bytes(packet[10:12], "little"))
    if packet.startswith(b"\x7fFLAC") and packet[9:13] == b"fLaC":
        info = flac.decode_streaminfo(packet[17:51], f"Ogg page at {where}")
        return Stream("flac", info.rate, info.channels, bits=info.bits)
    if packet.startswith(b"Speex   ") and len(packet) >= 52:
        return Stream("speex", int.from_bytes(packet[36:40], "little"), packet[48])
    return None


_VIDEO = {b"\x80theora": "theora", b"\x80daala": "daala", b"OVP80": "vp8", b"BBCD\x00": "dirac"}


def _video_codec(packet: bytes) -> str | None:
    return next((name for magic, name in _VIDEO.items() if packet.startswith(magic)), None)


def _first_audio_stream(buf: Sparse) -> tuple[int, Stream]:
    """The first audio stream among the beginning-of-stream pages; a video stream is an error."""
    pos, found, others = 0, None, []
    for _ in range(MAX_BOS_PAGES):
        head = buf.get(pos, 27 + 255)
        nsegs = head[26] if len(head) >= 27 else 0
        page = page_at(buf.get(pos, 27 + nsegs + sum(head[27 : 27 + nsegs])), 0)
        if page is None and pos == 0:
            raise ProbeError("Ogg: no valid first page (capture pattern, version 0, CRC)")
        if page is None or not page.bos:
            break  # the beginning-of-stream pages are over
        video = _video_codec(page.body)
        if video is not None:
            raise ProbeError(f"Ogg: {video} video stream at {pos}: video in Ogg is not supported")
        stream = identify(page.body, pos)
        if stream is not None and found is None:
            if stream.rate <= 0 or stream.channels <= 0:
                raise ProbeError(
                    f"Ogg {stream.codec} stream at {pos}: {stream.channels} channels at {stream.rate} Hz"
                )
            found = page.serial, stream
        elif stream is None:
            others.append(page.body[:8].strip(b"\x00\x01\x7f\x80 ").decode("latin-1"))
        pos += page.length
    if found is None:
        raise ProbeError(f"Ogg: no Vorbis/Opus/FLAC/Speex stream among the first streams {others}")
    return found


def last_granule(buf: Sparse, serial: int) -> int | None:
    """The granule of the last page of stream ``serial`` in the last ``TAIL`` bytes.

    Searched backwards: usually the very last page answers, so one CRC is computed.
    """
    start = max(0, buf.size - TAIL)
    tail = buf.get(start, buf.size - start)
    i = tail.rfind(b"OggS")
    while i >= 0:
        page = page_at(tail, i)
        if page is not None and page.serial == serial and page.granule != NO_GRANULE:
            return page.granule
        i = tail.rfind(b"OggS", 0, i)
    return None


def parse(buf: Sparse) -> MediaInfo:
    """Probe an Ogg file."""
    serial, stream = _first_audio_stream(buf)
    granule = last_granule(buf, serial)
    duration = None
    if granule is not None:
        duration = max(0, granule - stream.pre_skip) / stream.rate
    return MediaInfo(
        valid=True,
        kind="audio",
        container="ogg",
        mime_type="audio/ogg",
        file_size=buf.size,
        codec=stream.codec,
        sample_rate=stream.rate,
        channels=stream.channels,
        bit_depth=stream.bits,
        duration=duration,
        duration_estimated=False if duration is not None else None,
    )
