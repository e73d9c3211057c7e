"""GIF: the logical screen descriptor.

Reported: the logical screen ``width``/``height`` (the canvas every frame is drawn on),
``bit_depth`` (bits per entry index of the global colour table, or the colour resolution
when there is none), ``codec`` ``"lzw"``. The first block after the global colour table is
checked to be an extension, an image or the trailer (catches garbage behind a GIF signature).

The frame count is not reported: it is only known by walking every image's LZW sub-blocks,
i.e. reading the whole file.
"""

from __future__ import annotations

import struct

from workers.probe.layout import exact, image_result
from workers.probe.media import MediaInfo, ProbeError
from workers.probe.sparse import Sparse


def parse(buf: Sparse) -> MediaInfo:
    """Logical screen size and palette depth."""
    head = exact(buf, 0, 13, "gif header and logical screen descriptor")
    if head[:6] not in (b"GIF87a", b"GIF89a"):
        raise ProbeError(f"gif: bad signature {head[:6]!r}")
    width, height, packed = struct.unpack_from("<HHB", head, 6)
    if width == 0 or height == 0:
        raise ProbeError(f"gif: logical screen size {width}x{height} is not positive")
    has_table = bool(packed & 0x80)
    table_bits = (packed & 0x07) + 1
    first_block = 13 + (3 << table_bits if has_table else 0)
    block = exact(buf, first_block, 1, "gif first block after the global colour table")[0]
    if block not in (0x21, 0x2C, 0x3B):
        raise ProbeError(
            f"gif: byte {block:#04x} at offset {first_block} is not an extension, image or trailer"
        )
    return image_result(
        "gif",
        buf,
        width=width,
        height=height,
        codec="lzw",
        channels=1,
        bit_depth=table_bits if has_table else ((packed >> 4) & 0x07) + 1,
    )
