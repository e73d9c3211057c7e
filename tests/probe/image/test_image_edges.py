"""Broken and unusual images: specific errors, never invented metadata."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from workers.probe import tiff, webp
from workers.probe.engine import probe_bytes
from workers.probe.media import ProbeError
from workers.probe.sparse import Sparse

SOI = b"\xff\xd8"


def seg(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


SOF0 = seg(0xC0, struct.pack(">BHHB", 8, 41, 67, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01")


def png(ihdr: bytes, *chunks: tuple[bytes, bytes], crc: int | None = None) -> bytes:
    def chunk(kind: bytes, data: bytes, crc: int | None = None) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc or zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr, crc) + b"".join(chunk(k, d) for k, d in chunks)


IHDR = struct.pack(">IIBBBBB", 67, 41, 8, 2, 0, 0, 0)


def exif_app1(body: bytes) -> bytes:
    return seg(0xE1, b"Exif\x00\x00" + body)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", "empty object"),
        (b"\x00\x01garbage\xfe" * 40, "unrecognised format"),
        (SOI + b"\xff", "before any frame header"),
        (SOI + seg(0xE0, b"JFIF\x00") + b"\x00\x00", "expected a marker at offset 11, found byte 0x00"),
        (SOI + seg(0xDB, bytes(65)) + b"\xff\xda\x00\x08", "FFDA at offset 71 before any frame header"),
        (SOI + b"\xff\xe0\x00\x01", "has length 1 (< 2)"),
        (SOI + SOF0[:12], "SOF0 segment at offset 2 truncated"),
        (SOI + seg(0xC0, struct.pack(">BHHB", 8, 41, 67, 0)), "declares 0 components"),
        (SOI + seg(0xC0, struct.pack(">BHHB", 8, 41, 0, 1) + b"\x01\x11\x00"), "has width 0"),
        (png(IHDR, crc=1), "IHDR CRC mismatch"),
        (png(IHDR, (b"tEXt", b"k\x00v"), (b"IEND", b"")), "IEND at offset 48 before any IDAT"),
        (png(IHDR, (b"tEXt", b"k\x00v"))[:-3], "png chunk header at offset 48 truncated"),
        (png(struct.pack(">IIBBBBB", 67, 41, 16, 3, 0, 0, 0)), "bit depth 16 not allowed for colour type 3"),
        (png(struct.pack(">IIBBBBB", 0, 41, 8, 2, 0, 0, 0)), "size 0x41 out of range"),
        (
            b"BM"
            + struct.pack("<IHHII", 100, 0, 0, 54, 40)
            + struct.pack("<iiHHI", 67, 41, 1, 24, 0)
            + bytes(30),
            "pixel data needs bytes up to 8418, file ends at 64 (truncated)",
        ),
        (b"BM" + struct.pack("<IHHII", 100, 0, 0, 54, 200) + bytes(80), "unrecognised format"),
        (
            b"BM"
            + struct.pack("<IHHII", 100, 0, 0, 54, 40)
            + struct.pack("<iiHHI", 67, 41, 1, 7, 0)
            + bytes(80),
            "7 bits per pixel",
        ),
        (b"GIF89a" + struct.pack("<HHBBB", 67, 41, 0, 0, 0) + b"\x99", "byte 0x99 at offset 13"),
        (b"GIF89a" + struct.pack("<HHBBB", 0, 41, 0, 0, 0) + b";", "logical screen size 0x41"),
        (
            b"RIFF" + struct.pack("<I", 5000) + b"WEBPVP8 " + bytes(40),
            "RIFF size 5000 + 8 exceeds the file size 56",
        ),
        (
            b"RIFF"
            + struct.pack("<I", 30)
            + b"WEBPVP8 "
            + struct.pack("<I", 18)
            + bytes(3)
            + b"abc"
            + bytes(14),
            "VP8 start code 616263",
        ),
        (
            b"RIFF" + struct.pack("<I", 22) + b"WEBPVP8X" + struct.pack("<I", 10) + bytes(10),
            "VP8X file has no VP8/VP8L image chunk",
        ),
        (
            b"II*\x00" + struct.pack("<I", 5000) + bytes(100),
            "IFD0 entry count at offset 5000 (+2) lies outside",
        ),
        (
            b"II*\x00" + struct.pack("<IH", 8, 1) + struct.pack("<HHII", 257, 3, 1, 41) + bytes(4),
            "IFD0 has no ImageWidth (256) tag",
        ),
        (
            b"MM\x00*" + struct.pack(">IH", 8, 1) + struct.pack(">HHII", 256, 5, 1, 8) + bytes(4),
            "tag 256 has field type 5",
        ),
    ],
)
def test_broken_input_is_invalid_with_a_specific_error(data: bytes, error: str) -> None:
    """Each kind of damage is named, with offsets and values, and nothing else is reported."""
    info = probe_bytes(data)
    assert not info.valid
    assert info.error is not None and error in info.error
    assert info.width is None and info.height is None


def jpeg_with(*segments: bytes) -> bytes:
    return SOI + b"".join(segments) + SOF0 + b"\xff\xda"


@pytest.mark.parametrize(
    ("data", "orientation"),
    [
        (jpeg_with(exif_app1(b"XX*\x00" + bytes(20))), None),  # bad byte order mark
        (jpeg_with(exif_app1(b"II*\x00" + struct.pack("<I", 4000))), None),  # IFD outside APP1
        (
            jpeg_with(
                exif_app1(b"II*\x00" + struct.pack("<IH", 8, 1) + struct.pack("<HHIHH", 0x112, 3, 1, 9, 0))
            ),
            None,
        ),
        (
            jpeg_with(
                exif_app1(b"MM\x00*" + struct.pack(">IH", 8, 1) + struct.pack(">HHIHH", 0x112, 3, 1, 5, 0))
            ),
            5,
        ),
        # only the first Exif APP1 counts; an XMP APP1 before it is skipped
        (
            jpeg_with(
                seg(0xE1, b"http://ns.adobe.com/xap/1.0/\x00<x/>"),
                exif_app1(b"II*\x00" + struct.pack("<IH", 8, 1) + struct.pack("<HHIHH", 0x112, 3, 1, 2, 0)),
            ),
            2,
        ),
    ],
)
def test_exif_problems_leave_orientation_unknown(data: bytes, orientation: int | None) -> None:
    """A malformed Exif block does not invalidate the image; a valid tag is read in either byte order."""
    info = probe_bytes(data)
    assert (info.valid, info.width, info.height, info.orientation) == (True, 67, 41, orientation)


def test_fill_bytes_restart_markers_and_dnl_height() -> None:
    """Fill bytes and standalone markers are stepped over; height 0 (set later by DNL) is unknown."""
    frame = seg(0xC0, struct.pack(">BHHB", 8, 0, 67, 1) + b"\x01\x11\x00")
    info = probe_bytes(SOI + b"\xff\xff\xff\xd0" + frame + b"\xff\xda")
    assert (info.valid, info.width, info.height, info.channels) == (True, 67, None, 1)


def test_bigtiff_big_endian_with_out_of_line_bits_per_sample() -> None:
    """BigTIFF (MM, 64-bit offsets), BitsPerSample stored out of line: first value read."""
    entries = [
        struct.pack(">HHQQ", 256, 4, 1, 300 << 32),
        struct.pack(">HHQQ", 257, 16, 1, 200),
        struct.pack(">HHQQ", 258, 3, 5, 200),  # 5 shorts = 10 bytes > 8: at offset 200
        struct.pack(">HHQQ", 277, 3, 1, 5 << 48),
    ]
    ifd = struct.pack(">Q", len(entries)) + b"".join(entries) + bytes(8)
    data = b"MM\x00+" + struct.pack(">HHQ", 8, 0, 16) + ifd
    data += bytes(200 - len(data)) + struct.pack(">H", 16) + bytes(40)
    info = tiff.parse(Sparse.whole(data))
    assert (info.width, info.height, info.bit_depth, info.channels) == (300, 200, 16, 5)


def test_bmp_top_down_height_is_positive(corpus: dict[str, tuple[Path, dict[str, Any]]]) -> None:
    """A negative DIB height (top-down rows) reports the absolute height."""
    data = corpus["topdown.bmp"][0].read_bytes()
    assert struct.unpack_from("<i", data, 22)[0] == -41
    assert probe_bytes(data).height == 41


def test_webp_animation_flag(corpus: dict[str, tuple[Path, dict[str, Any]]]) -> None:
    """VP8X's animation flag is read; a still VP8X image names its bitstream codec."""
    animated = webp.header(Sparse.whole(corpus["anim.webp"][0].read_bytes()))
    alpha = webp.header(Sparse.whole(corpus["alpha.webp"][0].read_bytes()))
    assert (animated.animated, animated.codec) == (True, None)
    assert (alpha.animated, alpha.alpha, alpha.codec) == (False, True, "vp8")


def test_bigtiff_errors_are_probe_errors() -> None:
    """A BigTIFF header with a wrong offset size is rejected by name."""
    with pytest.raises(ProbeError, match="BigTIFF offset size 4"):
        tiff.parse(Sparse.whole(b"II+\x00" + struct.pack("<HHQ", 4, 0, 16) + bytes(40)))


def test_bmp_with_embedded_png_has_no_bit_count() -> None:
    """BI_PNG pixel data: a bit count of 0 is allowed and samples are left unknown."""
    embedded = png(IHDR, (b"IDAT", b"x"), (b"IEND", b""))
    header = struct.pack("<IiiHHI", 40, 67, 41, 1, 0, 5) + bytes(20)
    data = b"BM" + struct.pack("<IHHI", 54 + len(embedded), 0, 0, 54) + header + embedded
    info = probe_bytes(data)
    assert (info.valid, info.codec, info.width, info.height, info.channels, info.bit_depth) == (
        True,
        "png",
        67,
        41,
        None,
        None,
    )


def test_stuffed_zero_before_the_frame_header_is_skipped_with_a_warning() -> None:
    """FF00 only belongs in scan data; before the frame header decoders (libjpeg's next_marker)
    discard it with the junk around it and read on, so the probe does too and says so."""
    info = probe_bytes(SOI + b"\xff\x00\x00\x10" + SOF0)
    assert (info.valid, info.width, info.height) == (True, 67, 41)
    assert info.warnings == [
        "jpeg: 4 extraneous bytes before marker FFC0 at offset 2, skipped as decoders do"
    ]


@pytest.mark.parametrize(
    ("dib_size", "compression", "codec"),
    [
        (16, 0, "raw"),
        (40, 0, "raw"),
        (52, 3, "bitfields"),
        (56, 3, "bitfields"),
        (64, 3, "huffman1d"),
        (108, 3, "bitfields"),
        (124, 0, "raw"),
    ],
)
def test_every_dib_header_version(dib_size: int, compression: int, codec: str) -> None:
    """OS/2 2.x (16..64), INFO (40), V2/V3 (52/56), V4 (108), V5 (124): sizes and compression by version."""
    bpp = 1 if codec == "huffman1d" else 32
    fields = struct.pack("<iiHH", 67, -41, 1, bpp) + (
        struct.pack("<I", compression) if dib_size >= 20 else b""
    )
    dib = struct.pack("<I", dib_size) + fields + bytes(dib_size - 4 - len(fields))
    offset = 14 + dib_size
    data = b"BM" + struct.pack("<IHHI", 0, 0, 0, offset) + dib + bytes(67 * 41 * 4)
    info = probe_bytes(data)
    assert (info.valid, info.width, info.height, info.codec) == (True, 67, 41, codec)
