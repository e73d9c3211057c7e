"""MPEG audio (MPEG-1/2/2.5, layers I-III) behind optional ID3v2 tags.

How the duration is found, best first:

1. A Xing/Info or VBRI header in the first frame gives the frame count: ``frames * spf / rate``.
   If the LAME tag after a Xing header carries encoder delay and padding, they are subtracted:
   the duration is that of the samples a gapless decoder outputs (the encoded signal).
   ffprobe reports ``frames * spf / rate`` here, including the delay and padding; ours is the
   encoded signal's length (the test corpus checks it against the sample count fed to the encoder).
2. Otherwise frames are walked within the budget of :mod:`workers.probe.framescan`. If the walk
   reaches the end of the file, the count is exact.
3. If the budget runs out and every frame walked had the same bitrate, the last 4 KiB of the
   file are read (one more request for files longer than the head): if the frames there have
   that bitrate too (or none are found), the stream is CBR and
   ``frames = round(audio_bytes / mean_frame_bytes)`` is exact, audio bytes running from the
   first frame to the end of the file minus an ID3v1 tag (128 bytes: at low bitrates more than
   a frame) and an APEv2 tag (sized by its footer).
4. Otherwise (VBR without a Xing header: bitrates differ in the head, or the tail's differs) the
   duration is extrapolated from the mean frame size of the walked frames and flagged
   ``duration_estimated=True``. Scanning the whole file would cost its whole size in reads.

ID3v2 tags are hopped over by their synchsafe size (plus the v2.4 footer). A big tag (cover art)
costs one more request: an 8 KiB window after it. FLAC or ADTS behind an ID3v2 tag (which
``sniff`` reports as ``mp3``) are handed to their own parsers.
"""

from __future__ import annotations

from collections.abc import Callable

from workers.probe import adts, flac
from workers.probe.framescan import FrameSpec, Walk, scan_end, walk_frames
from workers.probe.media import MediaInfo, ProbeError
from workers.probe.sparse import Sparse

_KBPS = {
    (1, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (1, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (1, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (2, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (2, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (2, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
# version bits -> (name, sample rates); 1 is reserved
_RATES = {3: ("1", (44100, 48000, 32000)), 2: ("2", (22050, 24000, 16000)), 0: ("2.5", (11025, 12000, 8000))}
_CODEC = {1: "mp1", 2: "mp2", 3: "mp3"}
#: window read at the first frame (holds any first frame with its Xing/VBRI/LAME headers + the next
#: frame's header, which confirms the sync)
FIRST_WINDOW = 8192
#: how far after the tags a first frame is searched for (zero padding, junk)
SYNC_SEARCH = 4096
MAX_ID3_TAGS = 8
#: bytes at the end of the file read to confirm a CBR stream (and find an ID3v1 tag)
TAIL_CHECK = 4096


class Header:
    """A decoded 4-byte MPEG audio frame header."""

    __slots__ = ("bitrate", "channels", "layer", "length", "lsf", "rate", "spf", "version")

    def __init__(
        self, *, version: int, layer: int, bitrate: int, rate: int, padding: int, mono: bool
    ) -> None:
        self.version = version  # 3 = MPEG-1, 2 = MPEG-2, 0 = MPEG-2.5
        self.lsf = version != 3
        self.layer = layer  # 1, 2, 3
        self.bitrate = bitrate  # bits/s
        self.rate = rate
        self.channels = 1 if mono else 2
        if layer == 1:
            self.spf = 384
            self.length = (12 * bitrate // rate + padding) * 4
        else:
            self.spf = 576 if layer == 3 and self.lsf else 1152
            self.length = self.spf // 8 * bitrate // rate + padding

    def same_stream(self, other: Header) -> bool:
        return (self.version, self.layer, self.rate) == (other.version, other.layer, other.rate)


def decode_header(b: bytes) -> Header | None:
    """The frame header in ``b[:4]``, or ``None`` if it is not a valid one (free format included)."""
    if len(b) < 4 or b[0] != 0xFF or (b[1] & 0xE0) != 0xE0:
        return None
    version = (b[1] >> 3) & 3
    layer_bits = (b[1] >> 1) & 3
    bitrate_idx = b[2] >> 4
    rate_idx = (b[2] >> 2) & 3
    if version == 1 or layer_bits == 0 or bitrate_idx in (0, 15) or rate_idx == 3:
        return None
    layer = 4 - layer_bits
    kbps = _KBPS[(1 if version == 3 else 2, layer)][bitrate_idx]
    return Header(
        version=version,
        layer=layer,
        bitrate=kbps * 1000,
        rate=_RATES[version][1][rate_idx],
        padding=(b[2] >> 1) & 1,
        mono=b[3] >> 6 == 3,
    )


def skip_id3v2(buf: Sparse, pos: int = 0) -> int:
    """The offset after the ID3v2 tags at ``pos`` (``pos`` itself if there are none)."""
    for _ in range(MAX_ID3_TAGS):
        # ask for the whole first-frame window at once: the next read after a big tag is its last
        head = buf.get(pos, FIRST_WINDOW)[:10]
        if head[:3] != b"ID3":
            return pos
        if len(head) < 10:
            raise ProbeError(f"ID3v2 tag at {pos}: header cut by the end of the file ({buf.size} bytes)")
        if head[3] == 0xFF or head[4] == 0xFF or any(x & 0x80 for x in head[6:10]):
            raise ProbeError(f"ID3v2 tag at {pos}: invalid version or size bytes {head[3:10].hex()}")
        size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
        pos += 10 + size + (10 if head[5] & 0x10 else 0)
        if pos > buf.size:
            raise ProbeError(f"ID3v2 tag of {size} bytes runs past the end of the file ({buf.size} bytes)")
    return pos


def _find_first_frame(buf: Sparse, start: int) -> tuple[int, Header]:
    window = buf.get(start, FIRST_WINDOW)
    i = window.find(b"\xff", 0, SYNC_SEARCH)
    while i >= 0:
        h = decode_header(window[i : i + 4])
        if h is not None:
            nxt_at = i + h.length
            if start + nxt_at >= buf.size:
                return start + i, h  # a single frame up to the end of the file
            nxt = decode_header(window[nxt_at : nxt_at + 4])
            if nxt is not None and nxt.same_stream(h):
                return start + i, h
        i = window.find(b"\xff", i + 1, SYNC_SEARCH)
    raise ProbeError(f"MPEG audio: no frame sync (two consecutive frames) in {SYNC_SEARCH} bytes at {start}")


def _vbr_header(frame: bytes, h: Header) -> tuple[int, int, int] | None:
    """(frames, encoder delay, padding) from a Xing/Info (+LAME) or VBRI header, if present.

    frames is 0 when the header does not say.
    """
    side = (9 if h.channels == 1 else 17) if h.lsf else (17 if h.channels == 1 else 32)
    x = 4 + side
    if frame[x : x + 4] in (b"Xing", b"Info") and len(frame) >= x + 8:
        flags = int.from_bytes(frame[x + 4 : x + 8], "big")
        p = x + 8
        if not flags & 1:
            return 0, 0, 0  # a tag frame (silent) without a frame count
        frames = int.from_bytes(frame[p : p + 4], "big")
        p += 4 + (4 if flags & 2 else 0) + (100 if flags & 4 else 0) + (4 if flags & 8 else 0)
        delay = padding = 0
        if frame[p : p + 4] in (b"LAME", b"Lavf", b"Lavc") and len(frame) >= p + 24:
            v = int.from_bytes(frame[p + 21 : p + 24], "big")
            delay, padding = v >> 12, v & 0xFFF
        return frames, delay, padding
    if frame[36:40] == b"VBRI" and len(frame) >= 36 + 18:
        return int.from_bytes(frame[36 + 14 : 36 + 18], "big"), 0, 0
    return None


def _frame_at(first: Header) -> Callable[[bytes], FrameSpec | None]:
    seen: dict[bytes, FrameSpec | None] = {}  # a stream repeats a handful of distinct headers

    def frame_at(b: bytes) -> FrameSpec | None:
        if b in seen:
            return seen[b]
        h = decode_header(b)
        spec = None if h is None or not h.same_stream(first) else FrameSpec(h.length, h.spf, h.bitrate)
        seen[b] = spec
        return spec

    return frame_at


def _tail_bitrates(tail: bytes, first: Header) -> set[int]:
    """Bitrates of the run of frames found in ``tail``; empty if there is none.

    A run counts if it has 3 frames, or 2 that reach the end of ``tail`` (a lone 0xFF in audio
    data that decodes as a header is not a run).
    """
    frame_at = _frame_at(first)
    i = tail.find(b"\xff")
    while i >= 0:
        pos, rates, count = i, set(), 0
        while (spec := frame_at(tail[pos : pos + 4])) is not None:
            rates.add(spec.bitrate)
            pos += spec.length
            count += 1
        if count >= 3 or (count == 2 and pos >= len(tail)):
            return rates
        i = tail.find(b"\xff", i + 1)
    return set()


def _audio_end(tail: bytes, size: int, start: int) -> int:
    """Where the audio ends: before a trailing ID3v1 tag (128 bytes) and an APEv2 tag."""
    end = size
    if len(tail) >= 128 and tail[-128:-125] == b"TAG":
        end -= 128
    footer_end = len(tail) - (size - end)
    footer = tail[footer_end - 32 : footer_end] if footer_end >= 32 else b""
    if footer[:8] == b"APETAGEX":
        tag = int.from_bytes(footer[12:16], "little") + (32 if footer[20 + 3] & 0x80 else 0)
        end -= tag
    return max(start, end)


def _duration(buf: Sparse, start: int, h: Header) -> tuple[float, bool]:
    """(duration, estimated) for a stream without a usable VBR header."""
    walk: Walk = walk_frames(buf, start, 4, _frame_at(h), scan_end(start, buf.size))
    if walk.stop != "budget":
        return walk.samples / h.rate, False
    if len(walk.bitrates) == 1:
        tail_at = max(start, buf.size - TAIL_CHECK)
        tail = buf.get(tail_at, buf.size - tail_at)
        end = _audio_end(tail, buf.size, start)
        if _tail_bitrates(tail[: max(0, end - tail_at)], h) <= walk.bitrates:
            (bitrate,) = walk.bitrates  # not the first frame's: that may be a Xing frame
            frames = round((end - start) * 8 * h.rate / (h.spf * bitrate))
            return frames * h.spf / h.rate, False
    return (buf.size - start) / (walk.nbytes / walk.frames) * h.spf / h.rate, True


def parse(buf: Sparse) -> MediaInfo:
    """Probe an MPEG audio file (or FLAC/ADTS behind ID3v2 tags)."""
    start = skip_id3v2(buf)
    magic = buf.get(start, 4)
    if magic == b"fLaC":
        return flac.parse_at(buf, start)
    if len(magic) >= 2 and magic[0] == 0xFF and (magic[1] & 0xF6) == 0xF0:
        return adts.parse_at(buf, start)
    first, h = _find_first_frame(buf, start)
    frame = buf.get(first, h.length)
    vbr = _vbr_header(frame, h)
    if vbr is not None and vbr[0] > 0:
        frames, delay, padding = vbr
        samples = frames * h.spf
        if 0 < delay + padding < samples:
            samples -= delay + padding
        duration, estimated = samples / h.rate, False
    else:
        # an Info/Xing frame without a frame count is silent: the audio starts after it
        audio_start = first + h.length if vbr is not None else first
        duration, estimated = _duration(buf, audio_start, h) if audio_start < buf.size else (0.0, False)
    return MediaInfo(
        valid=True,
        kind="audio",
        container="mp3",
        mime_type="audio/mpeg",
        file_size=buf.size,
        codec=_CODEC[h.layer],
        sample_rate=h.rate,
        channels=h.channels,
        duration=duration,
        duration_estimated=estimated,
    )
