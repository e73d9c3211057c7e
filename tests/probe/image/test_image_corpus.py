"""Every corpus file, probed whole: the fields a user relies on are exactly the expected ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workers.probe import jpeg, tiff
from workers.probe.engine import probe_bytes
from workers.probe.sparse import Sparse


def _parse(name: str, data: bytes) -> Any:
    # BigTIFF is not recognised by sniff.py yet (it knows only "II*\0"/"MM\0*"): parse directly.
    return tiff.parse(Sparse.whole(data)) if name == "big.tiff" else probe_bytes(data)


def test_expected_fields(corpus: dict[str, tuple[Path, dict[str, Any]]], any_image_name: str) -> None:
    """Each image reports its container, mime type, size, samples, codec, orientation and frames."""
    path, expected = corpus[any_image_name]
    data = path.read_bytes()
    info = _parse(any_image_name, data)
    assert info.error is None
    got = {field: getattr(info, field) for field in expected}
    assert got == expected
    assert info.file_size == len(data)
    for field in ("orientation", "frames"):
        if field not in expected:
            assert getattr(info, field) is None, field


def test_exif_thumbnail_frame_header_is_not_the_image(corpus: dict[str, tuple[Path, dict[str, Any]]]) -> None:
    """The 16x8 thumbnail's SOF inside APP1 comes first in the file but is hopped over."""
    data = corpus["exifthumb.jpg"][0].read_bytes()
    thumb_sof = data.find(b"\xff\xc0")
    header = jpeg.scan(Sparse.whole(data))
    assert 0 < thumb_sof < header.sof_offset
    assert (header.width, header.height) == (67, 41)


def test_jpeg_colour_models(corpus: dict[str, tuple[Path, dict[str, Any]]]) -> None:
    """Adobe APP14 and component counts give CMYK, gray and YCbCr."""
    colours = {
        name: jpeg.scan(Sparse.whole(corpus[name][0].read_bytes())).color
        for name in ("cmyk.jpg", "gray.jpg", "ffmpeg420.jpg")
    }
    assert colours == {"cmyk.jpg": "cmyk", "gray.jpg": "gray", "ffmpeg420.jpg": "ycbcr"}
