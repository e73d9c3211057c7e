"""Request economy: one read for an image whose header is in the 64 KiB head, a second targeted
read when the header lies beyond it, and never the whole image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from workers.probe.engine import DEFAULT_HEAD_BYTES, probe, probe_bytes
from workers.reads.file import FileReader

# files whose frame header / IFD lies past the head: exactly one more read
SECOND_READ = {"bigapp.jpg", "icc100k.jpg", "ifdend.tiff", "ifdend-mm.tiff", "hd.tiff"}
UNSNIFFED = {"big.tiff"}  # sniff.py does not know the BigTIFF magic yet (reported to the lead)


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
