"""TIFF and BigTIFF: the first image file directory (IFD0), wherever it is in the file.

The 8-byte header (16 for BigTIFF) gives the byte order and IFD0's offset; IFD0 is read with
one targeted request when it is not in the head (encoders such as ffmpeg's write it after the
image data). That request also covers 32 KiB before the IFD and 4 KiB after it, where writers
put the out-of-line values (ffmpeg: BitsPerSample of RGB before the strip offset/size arrays,
4.4 KB before the IFD at 1080p; libtiff: just after the IFD), so a late IFD costs one read, not
two. A value further away costs one more targeted read.

Only the tags we report are decoded, and of each only its first value: width (256), height
(257), bits per sample (258), compression (259), samples per pixel (277), orientation (274).
``read_ifd0`` is also used for the Exif block inside a JPEG APP1 segment, with ``base`` at the
Exif TIFF header and ``limit`` at the segment's end.

Multi-page TIFFs report IFD0 only (counting pages would hop every IFD).
"""

from __future__ import annotations

import struct

from workers.probe.layout import exact, image_result
from workers.probe.media import MediaInfo, ProbeError
from workers.probe.sparse import Sparse

WIDTH, HEIGHT, BITS_PER_SAMPLE, COMPRESSION, ORIENTATION, SAMPLES_PER_PIXEL = 256, 257, 258, 259, 274, 277

# field type -> (size in bytes, struct code) for the integer types
_INT_TYPES: dict[int, tuple[int, str]] = {
    1: (1, "B"),  # BYTE
    3: (2, "H"),  # SHORT
    4: (4, "I"),  # LONG
    6: (1, "b"),  # SBYTE
    8: (2, "h"),  # SSHORT
    9: (4, "i"),  # SLONG
    13: (4, "I"),  # IFD
    16: (8, "Q"),  # LONG8 (BigTIFF)
    17: (8, "q"),  # SLONG8
    18: (8, "Q"),  # IFD8
}

_BEFORE_IFD, _AFTER_IFD = 32 * 1024, 4 * 1024

_COMPRESSION: dict[int, str] = {
    1: "raw",
    2: "ccitt-rle",
    3: "ccitt-t4",
    4: "ccitt-t6",
    5: "lzw",
    6: "ojpeg",
    7: "jpeg",
    8: "deflate",
    32946: "deflate",
    32773: "packbits",
    34712: "jpeg2000",
    34887: "lerc",
    50000: "zstd",
    50001: "webp",
}


def read_ifd0(buf: Sparse, base: int, limit: int, wanted: frozenset[int], what: str) -> dict[int, int]:
    """First values of the ``wanted`` integer tags of IFD0 of the TIFF structure at ``base``.

    Offsets inside the structure are relative to ``base``; nothing may lie at or past ``limit``.
    """

    def within(offset: int, length: int, part: str) -> bytes:
        if offset < base or offset + length > limit:
            raise ProbeError(
                f"{what}: {part} at offset {offset} (+{length}) lies outside bytes {base}..{limit}"
            )
        return exact(buf, offset, length, f"{what} {part}")

    head = within(base, 8, "header")
    if head[:2] == b"II":
        order = "<"
    elif head[:2] == b"MM":
        order = ">"
    else:
        raise ProbeError(f"{what}: byte order mark {head[:2]!r} is neither II nor MM")
    (magic,) = struct.unpack_from(order + "H", head, 2)
    if magic == 42:
        big = False
        (ifd,) = struct.unpack_from(order + "I", head, 4)
    elif magic == 43:
        big = True
        head = within(base, 16, "BigTIFF header")
        offset_size, zero, ifd = struct.unpack_from(order + "HHQ", head, 4)
        if offset_size != 8 or zero != 0:
            raise ProbeError(f"{what}: BigTIFF offset size {offset_size} (expected 8)")
    else:
        raise ProbeError(f"{what}: magic number {magic} (expected 42 or 43)")
    count_fmt, entry_size, value_size = ("Q", 20, 8) if big else ("H", 12, 4)
    count_size = struct.calcsize(count_fmt)
    ifd += base
    if not buf.has(ifd, count_size):
        # Out-of-line values sit near the IFD (see the module docstring): fetch them with it.
        low, high = max(base, ifd - _BEFORE_IFD), min(limit, ifd + _AFTER_IFD)
        if low < high:
            buf.get(low, high - low)
    (n,) = struct.unpack(order + count_fmt, within(ifd, count_size, "IFD0 entry count"))
    if n == 0:
        raise ProbeError(f"{what}: IFD0 at offset {ifd} has no entries")
    entries = within(ifd + count_size, n * entry_size, f"IFD0 ({n} entries)")
    found: dict[int, int] = {}
    for i in range(n):
        at = i * entry_size
        tag, typ = struct.unpack_from(order + "HH", entries, at)
        if tag not in wanted or tag in found:
            continue
        if typ not in _INT_TYPES:
            raise ProbeError(f"{what}: tag {tag} has field type {typ}, expected an integer type")
        size, code = _INT_TYPES[typ]
        (count,) = struct.unpack_from(order + count_fmt.replace("H", "I"), entries, at + 4)
        if count == 0:
            raise ProbeError(f"{what}: tag {tag} has no values")
        field = entries[at + entry_size - value_size : at + entry_size]
        if count * size <= value_size:
            (value,) = struct.unpack_from(order + code, field, 0)
        else:
            (pointer,) = struct.unpack_from(order + ("Q" if big else "I"), field, 0)
            (value,) = struct.unpack(order + code, within(base + pointer, size, f"tag {tag} value"))
        found[tag] = value
    return found


def exif_orientation(buf: Sparse, start: int, end: int, what: str) -> int | None:
    """Orientation (1..8) from the Exif TIFF structure in [start, end) of a JPEG/PNG/WebP.

    An optional ``Exif\\0\\0`` prefix (always in JPEG, sometimes in PNG/WebP) is skipped. A
    malformed block or an out-of-range value gives ``None``: broken Exif does not make the
    image invalid, it only leaves its orientation unknown.
    """
    if buf.get(start, 6) == b"Exif\x00\x00":
        start += 6
    try:
        value = read_ifd0(buf, start, end, frozenset({ORIENTATION}), what).get(ORIENTATION)
    except ProbeError:
        return None
    return value if value is not None and 1 <= value <= 8 else None


_WANTED = frozenset({WIDTH, HEIGHT, BITS_PER_SAMPLE, COMPRESSION, ORIENTATION, SAMPLES_PER_PIXEL})


def parse(buf: Sparse) -> MediaInfo:
    """Dimensions, samples, compression and orientation from IFD0."""
    tags = read_ifd0(buf, 0, buf.size, _WANTED, "tiff")
    width, height = tags.get(WIDTH), tags.get(HEIGHT)
    if width is None or height is None:
        missing = "ImageWidth (256)" if width is None else "ImageLength (257)"
        raise ProbeError(f"tiff: IFD0 has no {missing} tag")
    if width <= 0 or height <= 0:
        raise ProbeError(f"tiff: image size {width}x{height} is not positive")
    compression = tags.get(COMPRESSION, 1)
    orientation = tags.get(ORIENTATION)
    return image_result(
        "tiff",
        buf,
        width=width,
        height=height,
        codec=_COMPRESSION.get(compression, f"compression-{compression}"),
        channels=tags.get(SAMPLES_PER_PIXEL, 1),
        bit_depth=tags.get(BITS_PER_SAMPLE, 1),
        orientation=orientation if orientation is not None and 1 <= orientation <= 8 else None,
    )
