"""PNG: the IHDR chunk, then a hop over the chunks before the first IDAT looking for APNG's acTL.

Chunks are hopped by their length (only each 8-byte chunk header is asked for), so a large
iCCP/zTXt before the image data costs one targeted read, never the chunk's body. IHDR's CRC
is checked: a damaged header is reported, not trusted.

Reported: ``width``/``height``; ``bit_depth`` (bits per sample, or per palette index);
``channels`` (stored samples per pixel: gray 1, gray+alpha 2, RGB 3, palette 1, RGBA 4);
``codec`` ``"deflate"`` (the only PNG compression method); ``frames`` from acTL for APNG
(absent for a still PNG); ``orientation`` from an ``eXIf`` chunk before the image data.
"""

from __future__ import annotations

import struct
import zlib

from workers.probe import tiff
from workers.probe.layout import exact, image_result
from workers.probe.media import MediaInfo, ProbeError
from workers.probe.sparse import Sparse

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# colour type -> (channels, allowed bit depths)
_COLOR_TYPES: dict[int, tuple[int, tuple[int, ...]]] = {
    0: (1, (1, 2, 4, 8, 16)),
    2: (3, (8, 16)),
    3: (1, (1, 2, 4, 8)),
    4: (2, (8, 16)),
    6: (4, (8, 16)),
}
_MAX_DIM = 2**31 - 1


def _before_image_data(buf: Sparse) -> tuple[int | None, int | None]:
    """(acTL frame count, eXIf orientation) from the chunks before the first IDAT."""
    pos = 8 + 25
    frames = orientation = None
    exif_seen = False
    while True:
        head = exact(buf, pos, 8, f"png chunk header at offset {pos}")
        length, kind = struct.unpack(">I4s", head)
        if length > _MAX_DIM:
            raise ProbeError(f"png: chunk {kind!r} at offset {pos} has length {length} (> 2^31-1)")
        if kind == b"IDAT":
            return frames, orientation
        if kind == b"IEND":
            raise ProbeError(f"png: IEND at offset {pos} before any IDAT (no image data)")
        if kind == b"acTL" and frames is None:
            if length != 8:
                raise ProbeError(f"png: acTL at offset {pos} has length {length} (expected 8)")
            (frames,) = struct.unpack(">I", exact(buf, pos + 8, 4, "png acTL chunk"))
            if frames == 0:
                raise ProbeError(f"png: acTL at offset {pos} declares 0 frames")
        elif kind == b"eXIf" and not exif_seen:
            exif_seen = True
            orientation = tiff.exif_orientation(buf, pos + 8, pos + 8 + length, "png eXIf")
        pos += 12 + length


def parse(buf: Sparse) -> MediaInfo:
    """IHDR fields and the APNG frame count."""
    head = exact(buf, 0, 8 + 25, "png signature and IHDR")
    if head[:8] != _SIGNATURE:
        raise ProbeError("png: bad signature")
    length, kind = struct.unpack_from(">I4s", head, 8)
    if kind != b"IHDR" or length != 13:
        raise ProbeError(f"png: first chunk is {kind!r} of length {length}, expected IHDR of length 13")
    width, height, depth, color, compression, filtering, interlace, crc = struct.unpack_from(
        ">IIBBBBBI", head, 16
    )
    if zlib.crc32(head[12:29]) != crc:
        raise ProbeError(f"png: IHDR CRC mismatch (stored {crc:#010x})")
    if not (0 < width <= _MAX_DIM and 0 < height <= _MAX_DIM):
        raise ProbeError(f"png: IHDR size {width}x{height} out of range 1..2^31-1")
    if color not in _COLOR_TYPES:
        raise ProbeError(f"png: IHDR colour type {color} (expected 0, 2, 3, 4 or 6)")
    channels, depths = _COLOR_TYPES[color]
    if depth not in depths:
        raise ProbeError(f"png: IHDR bit depth {depth} not allowed for colour type {color}")
    if compression != 0 or filtering != 0 or interlace > 1:
        raise ProbeError(
            f"png: IHDR compression {compression} / filter {filtering} / interlace {interlace} unknown"
        )
    frames, orientation = _before_image_data(buf)
    return image_result(
        "png",
        buf,
        width=width,
        height=height,
        codec="deflate",
        channels=channels,
        bit_depth=depth,
        frames=frames,
        orientation=orientation,
    )
