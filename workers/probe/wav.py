"""WAV (RIFF/WAVE) and its 64-bit forms RF64 and BW64 (sizes in the ``ds64`` chunk).

Chunks are walked in file order, in any order (``LIST`` before ``fmt ``, ``fmt `` after
``data``), honouring the pad byte after odd-sized chunks, and hopping over each body by its
size, so the ``data`` body is never read. The walk stops as soon as both ``fmt `` and ``data``
are known: one request when ``fmt `` comes first, two when it follows a big ``data`` chunk.

Codec names: ``pcm`` (integer, any width; the width is ``bit_depth``), ``pcm_float``,
``pcm_alaw``, ``pcm_mulaw``, ``adpcm_ms``, ``adpcm_ima_wav``, ``gsm_ms``, ``mp2``, ``mp3``, else
``wav_0x<tag>``. ffprobe's ``pcm_s16le``/``pcm_u8``/``pcm_f32le``... map to ``pcm``/``pcm_float``
plus ``bit_depth``. WAVE_FORMAT_EXTENSIBLE is resolved through its SubFormat GUID, and its
valid bits per sample are the ``bit_depth`` (24 for 24-bit samples in 32-bit containers).

Duration: PCM-like codecs ``(data_size // block_align) / rate`` (exact); ADPCM from samples per
block; otherwise the ``fact`` chunk's sample count when it precedes ``data``, else
``data_size / avg_bytes_per_sec`` flagged ``duration_estimated=True`` (``None`` without a byte
rate). A ``data`` size of 0xFFFFFFFF (streamed) means "to the end of the file". A ``data`` chunk
running past the end of the file is an error (truncated file).
"""

from __future__ import annotations

from workers.probe.media import MediaInfo, ProbeError
from workers.probe.sparse import Sparse

_CODECS = {
    0x0001: "pcm",
    0x0002: "adpcm_ms",
    0x0003: "pcm_float",
    0x0006: "pcm_alaw",
    0x0007: "pcm_mulaw",
    0x0011: "adpcm_ima_wav",
    0x0031: "gsm_ms",
    0x0050: "mp2",
    0x0055: "mp3",
}
_PCM_LIKE = {"pcm", "pcm_float", "pcm_alaw", "pcm_mulaw"}
_ADPCM = {"adpcm_ms", "adpcm_ima_wav"}
EXTENSIBLE = 0xFFFE
#: KSDATAFORMAT_SUBTYPE_* GUIDs are the format tag followed by these 14 bytes
_GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")
MAX_CHUNKS = 4096
MAX_FMT = 4096
UNKNOWN_SIZE = 0xFFFFFFFF


class Fmt:
    """The ``fmt `` chunk."""

    __slots__ = ("avg_bytes", "bits", "block_align", "channels", "codec", "rate", "samples_per_block")

    def __init__(self, body: bytes, at: int) -> None:
        if len(body) < 16:
            raise ProbeError(f"WAV fmt chunk at {at}: {len(body)} bytes, at least 16 expected")
        tag = int.from_bytes(body[0:2], "little")
        self.channels = int.from_bytes(body[2:4], "little")
        self.rate = int.from_bytes(body[4:8], "little")
        self.avg_bytes = int.from_bytes(body[8:12], "little")
        self.block_align = int.from_bytes(body[12:14], "little")
        self.bits = int.from_bytes(body[14:16], "little")
        extra = body[18:] if len(body) >= 18 else b""
        if tag == EXTENSIBLE:
            if len(extra) < 22:
                raise ProbeError(f"WAV fmt chunk at {at}: EXTENSIBLE with {len(extra)} of 22 extra bytes")
            valid_bits = int.from_bytes(extra[0:2], "little")
            if 0 < valid_bits <= self.bits:
                self.bits = valid_bits
            guid = extra[6:22]
            if guid[2:] != _GUID_TAIL:
                raise ProbeError(f"WAV fmt chunk at {at}: unknown SubFormat GUID {guid.hex()}")
            tag = int.from_bytes(guid[0:2], "little")
        self.codec = _CODECS.get(tag, f"wav_0x{tag:04x}")
        self.samples_per_block = (
            int.from_bytes(extra[0:2], "little") if self.codec in _ADPCM and len(extra) >= 2 else 0
        )
        if self.channels == 0 or self.rate == 0:
            raise ProbeError(f"WAV fmt chunk at {at}: {self.channels} channels at {self.rate} Hz")
        if self.block_align == 0 and (self.codec in _PCM_LIKE or self.codec in _ADPCM):
            raise ProbeError(f"WAV fmt chunk at {at}: block align 0 for {self.codec}")


def _riff_header(buf: Sparse) -> tuple[str, int | None, int]:
    """(container, 64-bit data size from ds64 or None, offset of the first chunk after it)."""
    head = buf.get(0, 12)
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64", b"BW64") or head[8:12] != b"WAVE":
        raise ProbeError(f"WAV: no RIFF/RF64/BW64 WAVE header (got {head[:12]!r})")
    if head[:4] == b"RIFF":
        return "wav", None, 12
    ds64 = buf.get(12, 36)
    if len(ds64) < 36 or ds64[:4] != b"ds64":
        raise ProbeError(f"WAV: {head[:4].decode()} file without a ds64 chunk at 12")
    size = int.from_bytes(ds64[4:8], "little")
    return "wav", int.from_bytes(ds64[16:24], "little"), 12 + 8 + size + (size & 1)


def parse(buf: Sparse) -> MediaInfo:
    """Probe a WAV file."""
    container, data_size64, pos = _riff_header(buf)
    fmt: Fmt | None = None
    data: tuple[int, int] | None = None  # (offset of the body, size)
    fact: int | None = None
    for _ in range(MAX_CHUNKS):
        if fmt is not None and data is not None:
            break
        header = buf.get(pos, 8)
        if len(header) < 8:
            what = "fmt " if fmt is None else "data"
            raise ProbeError(f"WAV: no {what!r} chunk before the end of the file ({buf.size} bytes)")
        cid, size = header[:4], int.from_bytes(header[4:8], "little")
        body_at = pos + 8
        if cid == b"fmt ":
            fmt = Fmt(buf.get(body_at, min(size, MAX_FMT)), pos)
        elif cid == b"fact" and size >= 4 and data is None:
            fact = int.from_bytes(buf.get(body_at, 4), "little")
        elif cid == b"data":
            if data_size64 is not None and size == UNKNOWN_SIZE:
                size = data_size64
            elif size == UNKNOWN_SIZE:
                size = buf.size - body_at
            if body_at + size > buf.size:
                raise ProbeError(
                    f"WAV: data chunk at {pos} of {size} bytes runs past the end of the file ({buf.size})"
                )
            data = (body_at, size)
        pos = body_at + size + (size & 1)
    else:
        raise ProbeError(f"WAV: more than {MAX_CHUNKS} chunks before fmt and data")
    assert fmt is not None and data is not None
    size = data[1]
    estimated: bool | None = False
    if fmt.codec in _PCM_LIKE:
        duration = size // fmt.block_align / fmt.rate
    elif fmt.samples_per_block:
        duration = size // fmt.block_align * fmt.samples_per_block / fmt.rate
    elif fact is not None:
        duration = fact / fmt.rate
    elif fmt.avg_bytes:
        duration, estimated = size / fmt.avg_bytes, True
    else:
        duration, estimated = None, None  # no way to know it without decoding
    return MediaInfo(
        valid=True,
        kind="audio",
        container=container,
        mime_type="audio/wav",
        file_size=buf.size,
        codec=fmt.codec,
        sample_rate=fmt.rate,
        channels=fmt.channels,
        bit_depth=fmt.bits if fmt.codec in _PCM_LIKE else None,
        duration=duration,
        duration_estimated=estimated,
    )
