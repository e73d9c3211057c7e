"""JPEGs that decoders display although their headers are damaged: junk between segments.

libjpeg's ``next_marker`` (and Pillow's, and ffmpeg's) skip bytes other than FF, fill FFs and
stuffed ``FF00`` pairs until a real marker, counting them as "extraneous bytes". The corpus
files ``junk-header.jpg``, ``ff00-header.jpg``, ``photoshop-broken.jpg`` and
``truncated-app14.jpg`` reproduce the damage of Pillow's test images of similar names (their
sizes were checked once by hand against Pillow on the originals). What no decoder shows is
still rejected: no frame header before SOS or EOI, a file that ends in the junk, and a run of
junk longer than 64 KiB.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from workers.probe.engine import DEFAULT_HEAD_BYTES, parse, probe_bytes
from workers.probe.sparse import Sparse

from .test_image_properties import fed, outcome, sized

DAMAGED = {
    "junk-header.jpg": "5 extraneous bytes before marker FFDB at offset 31",
    "ff00-header.jpg": "4 extraneous bytes before marker FFDB at offset 36",
    "photoshop-broken.jpg": "16 extraneous bytes before marker FFDB at offset 56",
    "truncated-app14.jpg": "1 extraneous bytes before marker FFDB at offset 35",
}
SOI = b"\xff\xd8"


def seg(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


SOF0 = seg(0xC0, struct.pack(">BHHB", 8, 41, 67, 1) + b"\x01\x11\x00")
APP0 = seg(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")


@pytest.mark.parametrize("name", sorted(DAMAGED))
def test_damaged_headers_are_read_like_a_decoder_reads_them(
    corpus: dict[str, tuple[Path, dict[str, Any]]], name: str
) -> None:
    """Same size as Pillow's decoder finds (which decodes the pixels too), and one warning naming
    how many bytes were skipped before which marker."""
    path = corpus[name][0]
    info = probe_bytes(path.read_bytes())
    with Image.open(path) as image:
        image.load()
        assert (info.valid, info.width, info.height) == (True, *image.size)
    assert info.warnings == [f"jpeg: {DAMAGED[name]}, skipped as decoders do"]
    assert info.requests == 1


def test_an_undamaged_jpeg_has_no_warning(corpus: dict[str, tuple[Path, dict[str, Any]]]) -> None:
    assert probe_bytes(corpus["ffmpeg420.jpg"][0].read_bytes()).warnings is None


@pytest.mark.parametrize(
    ("data", "warnings"),
    [
        # fill FFs then a stuffed zero then text, twice: each gap is its own warning
        (
            SOI + APP0 + b"\xff\xff\x00abc" + seg(0xFE, b"x") + b"\x00" + SOF0,
            [(20, 5, 0xFE), (31, 1, 0xC0)],
        ),
        # a run of fill bytes alone is not junk
        (SOI + APP0 + b"\xff" * 7 + SOF0, []),
        # junk that ends in FF FF before the marker: the FFs are fill
        (SOI + APP0 + b"zz\xff\xff" + SOF0, [(20, 2, 0xC0)]),
    ],
)
def test_what_counts_as_junk(data: bytes, warnings: list[tuple[int, int, int]]) -> None:
    info = probe_bytes(data)
    assert (info.valid, info.width, info.height) == (True, 67, 41)
    expected = [
        f"jpeg: {n} extraneous bytes before marker FF{m:02X} at offset {at}, skipped as decoders do"
        for at, n, m in warnings
    ]
    assert (info.warnings or []) == expected


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (SOI + APP0 + b"junk" + b"\xff\xda\x00\x08" + bytes(20), "FFDA at offset 24 before any frame header"),
        (SOI + APP0 + b"\xff\x00" + b"\xff\xd9", "FFD9 at offset 22 before any frame header"),
        (SOI + APP0 + b"junk" + SOI + SOF0, "FFD8 at offset 24 before any frame header"),
        (
            SOI + APP0 + b"no marker follows",
            "expected a marker at offset 20, found byte 0x6e; the file ends at offset 37 before any frame",
        ),
        (
            SOI + APP0 + b"\xff\x00\xff\xff",
            "expected a marker at offset 20, found fill/stuffed bytes; the file ends at offset 24",
        ),
        (
            SOI + APP0 + bytes(70_000) + SOF0,
            "expected a marker at offset 20, found byte 0x00; no marker in the 65536 bytes after it",
        ),
        (SOI + APP0 + b"junk\xff\xc0\x00", "segment header FFC0 at offset 24 truncated by end of file"),
    ],
)
def test_what_no_viewer_shows_is_still_rejected(data: bytes, error: str) -> None:
    info = probe_bytes(data)
    assert not info.valid and info.width is None
    assert error in (info.error or "")


@pytest.mark.parametrize(
    "data",
    [
        SOI + APP0 + b"\xff\xff\x00abc" + seg(0xFE, b"x") + b"\x00" + SOF0,
        SOI + APP0 + b"junk" + b"\xff\xda\x00\x08",
        SOI + APP0 + bytes(5000) + SOF0,
    ],
)
def test_junk_is_read_the_same_however_the_bytes_arrive(data: bytes) -> None:
    whole = outcome(parse, Sparse.whole(data))
    assert fed(parse, data, one_byte=True) == whole
    assert sized(outcome(parse, Sparse.whole(data + b"\xff\xd9" + bytes(300))), len(data)) == whole


def test_junk_behind_a_large_segment_costs_one_more_read() -> None:
    """Junk past the head is scanned from the one targeted read that also holds the frame header."""
    data = SOI + seg(0xEF, bytes(65_533)) + b"\x00" * 300 + SOF0 + bytes(200_000)
    info = probe_bytes(data)
    assert (info.valid, info.width, info.requests) == (True, 67, 2)
    assert info.bytes_read <= DEFAULT_HEAD_BYTES + 4096
