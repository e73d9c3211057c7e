"""BMP: the 14-byte file header and the DIB header, every version.

DIB header versions by size: 12 (OS/2 1.x ``BITMAPCOREHEADER``, 16-bit unsigned dimensions),
16..64 (OS/2 2.x), 40 (``BITMAPINFOHEADER``), 52/56 (Adobe's V2/V3 with masks),
108 (V4), 124 (V5). A negative height means the rows are stored top-down; the height
reported is its absolute value.

Reported: ``width``/``height``; ``codec`` the compression (``raw``, ``rle8``, ``rle4``,
``bitfields``, ``jpeg``, ``png``, ...); ``bit_depth`` bits per sample (8 for 24/32-bit pixels,
the index width for palette images, 16 for 64-bit, unknown for 16-bit 5-5-5/5-6-5 pixels);
``channels`` (1 for palette images, 3, or 4 for 32/64-bit pixels). For uncompressed pixels the
file must hold ``rows x stride`` bytes after the pixel-data offset: a shorter file is truncated.
"""

from __future__ import annotations

import struct

from workers.probe.layout import exact, image_result
from workers.probe.media import MediaInfo, ProbeError
from workers.probe.sparse import Sparse

_WINDOWS_COMPRESSION = {
    0: "raw",
    1: "rle8",
    2: "rle4",
    3: "bitfields",
    4: "jpeg",
    5: "png",
    6: "alphabitfields",
}
_OS2_COMPRESSION = {0: "raw", 1: "rle8", 2: "rle4", 3: "huffman1d", 4: "rle24"}
_DEPTHS = (1, 2, 4, 8, 16, 24, 32, 64)


def _is_os2_v2(dib_size: int) -> bool:
    return 16 <= dib_size <= 64 and dib_size not in (40, 52, 56)


def parse(buf: Sparse) -> MediaInfo:
    """File header, DIB header and the uncompressed pixel-data extent."""
    head = exact(buf, 0, 18, "bmp file header")
    if head[:2] != b"BM":
        raise ProbeError(f"bmp: bad signature {head[:2]!r}")
    pixel_offset, dib_size = struct.unpack_from("<II", head, 10)
    if dib_size == 12:
        width, height, planes, bpp = struct.unpack("<HHHH", exact(buf, 18, 8, "bmp core header"))
        compression = 0
    elif 16 <= dib_size <= 124 and (dib_size <= 64 or dib_size in (108, 124)):
        width, height, planes, bpp = struct.unpack("<iiHH", exact(buf, 18, 12, "bmp info header"))
        compression = struct.unpack("<I", exact(buf, 30, 4, "bmp info header"))[0] if dib_size >= 20 else 0
    else:
        raise ProbeError(f"bmp: DIB header size {dib_size} is not a known version")
    if width <= 0 or height in (0, -(2**31)):
        raise ProbeError(f"bmp: image size {width}x{height} is not valid")
    height = abs(height)
    if planes != 1:
        raise ProbeError(f"bmp: {planes} colour planes (expected 1)")
    names = _OS2_COMPRESSION if _is_os2_v2(dib_size) else _WINDOWS_COMPRESSION
    if compression not in names:
        raise ProbeError(f"bmp: unknown compression {compression}")
    codec = names[compression]
    embedded = codec in ("jpeg", "png")  # a whole JPEG/PNG as pixel data: bit count may be 0
    if bpp not in _DEPTHS and not (embedded and bpp == 0):
        raise ProbeError(f"bmp: {bpp} bits per pixel (expected one of {_DEPTHS})")
    if pixel_offset < 14 + dib_size or pixel_offset >= buf.size:
        raise ProbeError(f"bmp: pixel data offset {pixel_offset} outside the file (size {buf.size})")
    if codec in ("raw", "bitfields", "alphabitfields"):
        stride = (width * bpp + 31) // 32 * 4
        end = pixel_offset + stride * height
        if end > buf.size:
            raise ProbeError(f"bmp: pixel data needs bytes up to {end}, file ends at {buf.size} (truncated)")
    if bpp == 0:
        channels, depth = None, None
    elif bpp <= 8:
        channels, depth = 1, bpp
    elif bpp == 16:
        channels, depth = 3, None
    else:
        channels, depth = (4 if bpp in (32, 64) else 3), (16 if bpp == 64 else 8)
    return image_result(
        "bmp", buf, width=width, height=height, codec=codec, channels=channels, bit_depth=depth
    )
