"""Request economy: one read for an image whose header is in the 64 KiB head, a second targeted
read when the header lies beyond it, and never the whole image."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from workers.probe.engine import DEFAULT_HEAD_BYTES, probe, probe_bytes
from workers.reads.file import FileReader

# files whose frame header / IFD lies past the head: exactly one more read
SECOND_READ = {"bigapp.jpg", "icc100k.jpg", "ifdend.tiff", "ifdend-mm.tiff", "hd.tiff"}
UNSNIFFED: set[str] = set()  # every corpus image is sniffed


def test_requests_and_bytes(corpus: dict[str, tuple[Path, dict[str, Any]]], image_name: str) -> None:
    """1 request when the header is in the head, 2 when it is behind a big segment; never all bytes."""
    if image_name in UNSNIFFED:
        pytest.skip("BigTIFF is not sniffed yet")
    data = corpus[image_name][0].read_bytes()
    info = probe_bytes(data)
    assert info.valid
    assert info.requests == (2 if image_name in SECOND_READ else 1)
    if len(data) > DEFAULT_HEAD_BYTES:
        assert info.bytes_read < len(data)
        if image_name.endswith(".tiff"):  # a late IFD is read with 32 KiB before it, 4 KiB after
            assert info.bytes_read <= DEFAULT_HEAD_BYTES + 36 * 1024
        elif image_name != "icc100k.jpg":  # its 100 KiB profile is metadata: bounded by its own test
            assert info.bytes_read <= DEFAULT_HEAD_BYTES + 4096


def test_big_icc_profile_is_crossed_in_one_read(corpus: dict[str, tuple[Path, dict[str, Any]]]) -> None:
    """An ICC profile split over two APP2 segments (100 KiB) is crossed with one targeted read
    that ends just past the last chunk, not one read per chunk and not into the image data."""
    data = corpus["icc100k.jpg"][0].read_bytes()
    sof = data.find(b"\xff\xc0")
    info = probe_bytes(data)
    assert info.requests == 2
    assert sof > DEFAULT_HEAD_BYTES
    assert info.bytes_read <= sof + 4096


async def test_file_reader_small_head(corpus: dict[str, tuple[Path, dict[str, Any]]]) -> None:
    """Through a real file reader and a 4 KiB head, a JPEG behind a 64 KiB APP segment costs 2 reads."""
    reader = FileReader(str(corpus["bigapp.jpg"][0]))
    try:
        info = await probe(reader, head_bytes=4096)
    finally:
        reader.close()
    assert (info.valid, info.width, info.height, info.requests) == (True, 67, 41, 2)
    assert info.bytes_read < 4096 + 4096


def riff_chunk(kind: bytes, data: bytes) -> bytes:
    return kind + struct.pack("<I", len(data)) + data + b"\x00" * (len(data) & 1)


def test_webp_exif_after_a_large_bitstream_costs_one_more_read() -> None:
    """A still VP8X image flags Exif: the bitstream chunk is hopped and the EXIF chunk read."""
    vp8 = b"\x10\x02\x00\x9d\x01\x2a" + struct.pack("<HH", 67, 41) + bytes(150_000)
    exif = b"MM\x00*" + struct.pack(">IH", 8, 1) + struct.pack(">HHIHH", 0x112, 3, 1, 7, 0) + bytes(4)
    vp8x = riff_chunk(
        b"VP8X", bytes([0x08, 0, 0, 0]) + (66).to_bytes(3, "little") + (40).to_bytes(3, "little")
    )
    body = b"WEBP" + vp8x + riff_chunk(b"VP8 ", vp8) + riff_chunk(b"EXIF", exif)
    info = probe_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    assert (info.valid, info.codec, info.width, info.height, info.orientation) == (True, "vp8", 67, 41, 7)
    assert info.requests == 2 and info.bytes_read <= DEFAULT_HEAD_BYTES + 4096


def test_png_large_chunk_before_image_data_is_hopped() -> None:
    """acTL after a 100 KB iTXt is still found: the iTXt is hopped with one targeted read."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 67, 41, 8, 6, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"iTXt", bytes(100_000))
    data += chunk(b"acTL", struct.pack(">II", 12, 0)) + chunk(b"IDAT", bytes(50_000)) + chunk(b"IEND", b"")
    info = probe_bytes(data)
    assert (info.valid, info.frames, info.channels, info.requests) == (True, 12, 4, 2)
    assert info.bytes_read <= DEFAULT_HEAD_BYTES + 4096
