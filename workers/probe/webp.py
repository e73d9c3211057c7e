"""WebP: the RIFF header and the first chunk: ``VP8 `` (lossy), ``VP8L`` (lossless) or ``VP8X``.

* ``VP8 ``: the key frame header's 14-bit width and height (the 2-bit scale is ignored, as
  decoders do); ``codec`` ``vp8``.
* ``VP8L``: 14-bit width-1/height-1 and the alpha hint; ``codec`` ``vp8l``.
* ``VP8X`` (extended): the 24-bit canvas size and the flags. For a still image the chunks
  after VP8X are hopped (8-byte headers only) to the ``VP8 ``/``VP8L`` bitstream for the
  codec; an animation's canvas is reported and its codec is left unknown (each frame has its
  own). :func:`header` also tells whether the file is animated. When VP8X flags Exif, a
  still image's chunks are hopped on to the ``EXIF`` chunk (after the bitstream: one more
  read when the image is larger than the head) for the orientation; an animation's is not
  looked for (it would hop every frame).

The RIFF size must fit in the file: a shorter file is truncated.
"""

from __future__ import annotations

import struct

import msgspec

from workers.probe import tiff
from workers.probe.layout import exact, image_result
from workers.probe.media import MediaInfo, ProbeError
from workers.probe.sparse import Sparse

_ANIMATION, _EXIF, _ALPHA = 0x02, 0x08, 0x10


class WebpHeader(msgspec.Struct, kw_only=True, frozen=True):
    width: int
    height: int
    codec: str | None
    alpha: bool
    animated: bool
    orientation: int | None


def _bitstream(buf: Sparse, kind: bytes, at: int) -> tuple[str, int, int, bool]:
    """(codec, width, height, alpha) from a VP8/VP8L chunk whose data starts at ``at``."""
    if kind == b"VP8 ":
        data = exact(buf, at, 10, "webp VP8 frame header")
        if data[0] & 1:
            raise ProbeError(f"webp: VP8 chunk at offset {at - 8} does not start with a key frame")
        if data[3:6] != b"\x9d\x01\x2a":
            raise ProbeError(f"webp: VP8 start code {data[3:6].hex()} at offset {at + 3} (expected 9d012a)")
        w, h = struct.unpack_from("<HH", data, 6)
        return "vp8", w & 0x3FFF, h & 0x3FFF, False
    data = exact(buf, at, 5, "webp VP8L header")
    if data[0] != 0x2F:
        raise ProbeError(f"webp: VP8L signature {data[0]:#04x} at offset {at} (expected 0x2f)")
    (bits,) = struct.unpack_from("<I", data, 1)
    if bits >> 29:
        raise ProbeError(f"webp: VP8L version {bits >> 29} (expected 0)")
    return "vp8l", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool(bits >> 28 & 1)


def header(buf: Sparse) -> WebpHeader:
    """Canvas size, bitstream codec, alpha and animation flags."""
    head = exact(buf, 0, 30, "webp RIFF header and first chunk")
    riff_size, form, kind, size = struct.unpack_from("<I4s4sI", head, 4)
    if head[:4] != b"RIFF" or form != b"WEBP":
        raise ProbeError("webp: not a RIFF WEBP file")
    if riff_size + 8 > buf.size:
        raise ProbeError(f"webp: RIFF size {riff_size} + 8 exceeds the file size {buf.size} (truncated)")
    codec: str | None
    if kind in (b"VP8 ", b"VP8L"):
        codec, width, height, alpha = _bitstream(buf, kind, 20)
        animated, orientation = False, None
    elif kind == b"VP8X":
        if size < 10:
            raise ProbeError(f"webp: VP8X chunk of length {size} (expected >= 10)")
        flags = head[20]
        w1, w2, h1, h2 = struct.unpack_from("<HBHB", head, 24)
        width, height = (w1 | w2 << 16) + 1, (h1 | h2 << 16) + 1
        animated, alpha = bool(flags & _ANIMATION), bool(flags & _ALPHA)
        codec = orientation = None
        if not animated:
            codec, orientation = _still_chunks(
                buf, 20 + size + (size & 1), riff_size + 8, bool(flags & _EXIF)
            )
    else:
        raise ProbeError(f"webp: first chunk {kind!r} (expected 'VP8 ', 'VP8L' or 'VP8X')")
    if width == 0 or height == 0:
        raise ProbeError(f"webp: image size {width}x{height} is not positive")
    return WebpHeader(
        width=width, height=height, codec=codec, alpha=alpha, animated=animated, orientation=orientation
    )


def _still_chunks(buf: Sparse, pos: int, end: int, exif: bool) -> tuple[str, int | None]:
    """Hop the chunks after VP8X (ICCP, ALPH, ...) to the image bitstream, and on to EXIF if flagged.

    Returns (codec, Exif orientation).
    """
    codec = None
    while pos + 8 <= end:
        kind, size = struct.unpack("<4sI", exact(buf, pos, 8, f"webp chunk header at offset {pos}"))
        if kind in (b"VP8 ", b"VP8L") and codec is None:
            codec = "vp8" if kind == b"VP8 " else "vp8l"
            if not exif:
                return codec, None
        elif kind in (b"ANIM", b"ANMF"):
            raise ProbeError(f"webp: {kind!r} chunk at offset {pos} but VP8X does not flag an animation")
        elif kind == b"EXIF" and codec is not None:
            return codec, tiff.exif_orientation(buf, pos + 8, min(end, pos + 8 + size), "webp EXIF")
        pos += 8 + size + (size & 1)
    if codec is None:
        raise ProbeError("webp: VP8X file has no VP8/VP8L image chunk")
    return codec, None


def parse(buf: Sparse) -> MediaInfo:
    """Canvas size, codec and channels (4 with alpha)."""
    h = header(buf)
    return image_result(
        "webp",
        buf,
        width=h.width,
        height=h.height,
        codec=h.codec,
        channels=4 if h.alpha else 3,
        bit_depth=8,
        orientation=h.orientation,
    )
