"""Image and other-container corpus, generated once per session (ffmpeg, Pillow, hand-built).

``IMAGES`` maps a file name to how it is made and what the probe must report for it. Files
are small (67x41) except where size is the point (SOF behind big APP segments, TIFF IFD after
230 KB of strips, a 1080p ffmpeg TIFF). Every image's expectations are also compared with
ffprobe in ``test_image_ffprobe.py``.
"""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image  # test-only dependency: writes progressive/CMYK/Exif/ICC JPEGs, BigTIFF

W, H = 67, 41


def ffmpeg(*args: str, frames: int = 1, size: str = f"{W}x{H}") -> Callable[[Path], None]:
    def make(path: Path) -> None:
        src = ["-f", "lavfi", "-i", f"testsrc=size={size}:rate=5"]
        cmd = ["ffmpeg", "-v", "error", "-y", *src, "-frames:v", str(frames), *args, str(path)]
        subprocess.run(cmd, check=True, timeout=60)

    return make


def pillow(mode: str, size: tuple[int, int] = (W, H), **save: Any) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        gradient = Image.linear_gradient("L").resize(size)
        image = Image.merge("RGB", (gradient, gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT), gradient))
        image = image.convert(mode)
        if mode == "RGBA":
            image.putalpha(gradient)
        image.save(path, **save)

    return make


def exif(orientation: int, order: str) -> bytes:
    """A TIFF structure (Exif payload) with IFD0 = {Make, Orientation}."""
    e = "<" if order == "II" else ">"
    make = b"ingestd\x00"
    ifd = struct.pack(e + "H", 2)
    ifd += struct.pack(e + "HHII", 0x010F, 2, len(make), 8 + 2 + 2 * 12 + 4)
    ifd += struct.pack(e + "HHIHH", 0x0112, 3, 1, orientation, 0)
    ifd += struct.pack(e + "I", 0)
    return order.encode() + struct.pack(e + "HI", 42, 8) + ifd + make


def pillow_exif(orientation: int) -> bytes:
    """Exif written by Pillow itself (little-endian), with an orientation tag."""
    tags = Image.Exif()
    tags[0x0112] = orientation
    return tags.tobytes()


def segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def jpeg_bytes(size: tuple[int, int] = (W, H), **save: Any) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (30, 120, 200)).save(out, "JPEG", **save)
    return out.getvalue()


def insert_after_soi(path: Path, *segments: bytes, base: bytes | None = None) -> None:
    data = base if base is not None else jpeg_bytes()
    path.write_bytes(data[:2] + b"".join(segments) + data[2:])


def exif_thumbnail(path: Path) -> None:
    """APP1 Exif with IFD0 (orientation 8) and IFD1 pointing at a 16x8 JPEG thumbnail."""
    thumb = jpeg_bytes((16, 8))
    ifd0 = struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, 8, 0)
    ifd1_at = 8 + len(ifd0) + 4
    ifd1_size = 2 + 2 * 12 + 4
    ifd0 += struct.pack("<I", ifd1_at)
    ifd1 = struct.pack("<H", 2)
    ifd1 += struct.pack("<HHII", 0x0201, 4, 1, ifd1_at + ifd1_size)  # JPEGInterchangeFormat
    ifd1 += struct.pack("<HHII", 0x0202, 4, 1, len(thumb))
    ifd1 += struct.pack("<I", 0)
    tiff = b"II" + struct.pack("<HI", 42, 8) + ifd0 + ifd1 + thumb
    insert_after_soi(path, segment(0xE1, b"Exif\x00\x00" + tiff))


def icc_profile(size: int) -> bytes:
    """Bytes shaped like an ICC profile: its first field is its own size."""
    return struct.pack(">I", size) + bytes(i % 251 for i in range(size - 4))


def big_app(path: Path) -> None:
    """One maximal (65 535-byte) APP15 segment first: the next marker lies past a 64 KiB head."""
    insert_after_soi(path, segment(0xEF, bytes(65_533)))


def after_app0(*pieces: bytes) -> Callable[[Path], None]:
    """A Pillow JPEG with ``pieces`` (segments, junk) between its JFIF APP0 and its tables.

    Reproduces the damage of Pillow's test images ``junk_jpeg_header.jpg`` (text between
    segments), ``jpeg_ff00_header.jpg`` (``FF00`` and junk after APP14),
    ``photoshop-200dpi-broken.jpg`` (an APP13 whose length is 16 bytes short) and
    ``truncated_app14.jpg`` (an Adobe APP14 whose length leaves out its transform byte).
    """

    def make(path: Path) -> None:
        data = jpeg_bytes()
        assert data[2:4] == b"\xff\xe0"
        app0_end = 4 + struct.unpack_from(">H", data, 4)[0]
        path.write_bytes(data[:app0_end] + b"".join(pieces) + data[app0_end:])

    return make


ADOBE = b"Adobe\x00\x64\x40\x00\x00\x00\x01"  # version 100, flags, transform 1 (YCbCr)
PHOTOSHOP = b"Photoshop 3.0\x008BIM\x04\x04\x00\x00" + struct.pack(">I", 22) + bytes(range(1, 23))


def exif_mm(path: Path) -> None:
    insert_after_soi(path, segment(0xE1, b"Exif\x00\x00" + exif(3, "MM")))


def sof(marker: int, precision: int, components: int) -> Callable[[Path], None]:
    """A frame header the encoders we have cannot write (arithmetic, 12-bit), after a real JFIF."""

    def make(path: Path) -> None:
        comps = b"".join(bytes((i + 1, 0x11, 0)) for i in range(components))
        frame = segment(marker, struct.pack(">BHHB", precision, H, W, components) + comps)
        path.write_bytes(b"\xff\xd8" + segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00") + frame)

    return make


def bmp_top_down(path: Path) -> None:
    ffmpeg()(path)
    data = bytearray(path.read_bytes())
    (height,) = struct.unpack_from("<i", data, 22)
    struct.pack_into("<i", data, 22, -height)
    path.write_bytes(bytes(data))


def bmp_core(path: Path) -> None:
    """OS/2 1.x BITMAPCOREHEADER (12 bytes), 24-bit."""
    stride = (W * 3 + 3) // 4 * 4
    pixels = bytes(stride * H)
    header = b"BM" + struct.pack("<IHHI", 26 + len(pixels), 0, 0, 26) + struct.pack("<IHHHH", 12, W, H, 1, 24)
    path.write_bytes(header + pixels)


def tiff_ifd_at_end(order: str, size: tuple[int, int] = (320, 240)) -> Callable[[Path], None]:
    """Uncompressed RGB TIFF: header, 230 KB of strip data, then IFD0 (far past a 64 KiB head)."""

    def make(path: Path) -> None:
        e = "<" if order == "II" else ">"
        w, h = size
        strip = bytes((x * 7) % 256 for x in range(w * h * 3))
        ifd_at = 8 + len(strip) + 6
        bps_at = ifd_at + 2 + 9 * 12 + 4
        entries = [
            (256, 4, 1, struct.pack(e + "I", w)),
            (257, 3, 1, struct.pack(e + "HH", h, 0)),
            (258, 3, 3, struct.pack(e + "I", bps_at)),
            (259, 3, 1, struct.pack(e + "HH", 1, 0)),
            (262, 3, 1, struct.pack(e + "HH", 2, 0)),
            (273, 4, 1, struct.pack(e + "I", 8)),
            (274, 3, 1, struct.pack(e + "HH", 6, 0)),
            (277, 3, 1, struct.pack(e + "HH", 3, 0)),
            (279, 4, 1, struct.pack(e + "I", len(strip))),
        ]
        ifd = struct.pack(e + "H", len(entries))
        ifd += b"".join(struct.pack(e + "HHI", tag, typ, n) + value for tag, typ, n, value in entries)
        ifd += struct.pack(e + "I", 0) + struct.pack(e + "HHH", 8, 8, 8)
        header = order.encode() + struct.pack(e + "HI", 42, ifd_at)
        path.write_bytes(header + strip + bytes(6) + ifd)

    return make


# name -> (builder, expected MediaInfo fields)
Spec = tuple[Callable[[Path], None], dict[str, Any]]
IMG = {"valid": True, "kind": "image", "width": W, "height": H}
JPEG = {**IMG, "container": "jpeg", "mime_type": "image/jpeg", "bit_depth": 8}
PNG = {**IMG, "container": "png", "mime_type": "image/png", "codec": "deflate"}
BMP = {**IMG, "container": "bmp", "mime_type": "image/bmp"}
TIFF = {**IMG, "container": "tiff", "mime_type": "image/tiff"}
WEBP = {**IMG, "container": "webp", "mime_type": "image/webp", "bit_depth": 8}
LATE_IFD = {
    **TIFF,
    "width": 320,
    "height": 240,
    "codec": "raw",
    "channels": 3,
    "bit_depth": 8,
    "orientation": 6,
}
BASELINE3 = {**JPEG, "codec": "jpeg-baseline", "channels": 3}

# ffmpeg's lossless JPEG of RGB declares 9-bit samples (its colour transform needs the extra bit).
IMAGES: dict[str, Spec] = {
    "ffmpeg444.jpg": (ffmpeg(), BASELINE3),
    "ffmpeg420.jpg": (ffmpeg("-pix_fmt", "yuvj420p"), BASELINE3),
    "lossless.jpg": (
        ffmpeg("-c:v", "ljpeg", "-pix_fmt", "bgr24"),
        {**JPEG, "codec": "jpeg-lossless", "channels": 3, "bit_depth": 9},
    ),
    "progressive.jpg": (
        pillow("RGB", progressive=True),
        {**JPEG, "codec": "jpeg-progressive", "channels": 3},
    ),
    "gray.jpg": (pillow("L"), {**JPEG, "codec": "jpeg-baseline", "channels": 1}),
    "cmyk.jpg": (pillow("CMYK"), {**JPEG, "codec": "jpeg-baseline", "channels": 4}),
    "exif6.jpg": (pillow("RGB", exif=pillow_exif(6)), {**BASELINE3, "orientation": 6}),
    "exif3mm.jpg": (exif_mm, {**BASELINE3, "orientation": 3}),
    "exifthumb.jpg": (exif_thumbnail, {**BASELINE3, "orientation": 8}),
    "icc100k.jpg": (pillow("RGB", icc_profile=icc_profile(100 * 1024)), BASELINE3),
    "bigapp.jpg": (big_app, BASELINE3),
    "junk-header.jpg": (after_app0(segment(0xFE, b"CREATOR"), b"hello"), BASELINE3),
    "ff00-header.jpg": (after_app0(segment(0xEE, ADOBE), b"\xff\x00\x00\x02"), BASELINE3),
    # the APP13 length says 16 bytes fewer than its resource block holds: they become junk
    "photoshop-broken.jpg": (
        after_app0(segment(0xED, PHOTOSHOP)[:2], struct.pack(">H", 2 + len(PHOTOSHOP) - 16), PHOTOSHOP),
        BASELINE3,
    ),
    # APP14 of length 13: its last byte (the transform) is left outside the segment
    "truncated-app14.jpg": (after_app0(segment(0xEE, ADOBE[:-1]), ADOBE[-1:]), BASELINE3),
    "jpegls.jpg": (ffmpeg("-c:v", "jpegls"), {**JPEG, "codec": "jpeg-ls", "channels": 3}),
    "exif3.png": (
        pillow("RGB", exif=pillow_exif(3)),
        {**PNG, "channels": 3, "bit_depth": 8, "orientation": 3},
    ),
    "exif6.webp": (
        pillow("RGB", exif=pillow_exif(6)),
        {**WEBP, "codec": "vp8", "channels": 3, "orientation": 6},
    ),
    "rgb.png": (ffmpeg(), {**PNG, "channels": 3, "bit_depth": 8}),
    "gray.png": (ffmpeg("-pix_fmt", "gray"), {**PNG, "channels": 1, "bit_depth": 8}),
    "gray16.png": (ffmpeg("-pix_fmt", "gray16be"), {**PNG, "channels": 1, "bit_depth": 16}),
    "rgba.png": (ffmpeg("-pix_fmt", "rgba"), {**PNG, "channels": 4, "bit_depth": 8}),
    "rgb48.png": (ffmpeg("-pix_fmt", "rgb48be"), {**PNG, "channels": 3, "bit_depth": 16}),
    "pal8.png": (ffmpeg("-pix_fmt", "pal8"), {**PNG, "channels": 1, "bit_depth": 8}),
    "anim.apng": (ffmpeg("-f", "apng", frames=3), {**PNG, "channels": 3, "bit_depth": 8, "frames": 3}),
    "rgb.bmp": (ffmpeg(), {**BMP, "codec": "raw", "channels": 3, "bit_depth": 8}),
    "bgra.bmp": (ffmpeg("-pix_fmt", "bgra"), {**BMP, "codec": "raw", "channels": 4, "bit_depth": 8}),
    "pal8.bmp": (ffmpeg("-pix_fmt", "pal8"), {**BMP, "codec": "raw", "channels": 1, "bit_depth": 8}),
    "rgb565.bmp": (ffmpeg("-pix_fmt", "rgb565"), {**BMP, "codec": "bitfields", "channels": 3}),
    "mono.bmp": (ffmpeg("-pix_fmt", "monob"), {**BMP, "codec": "raw", "channels": 1, "bit_depth": 1}),
    "topdown.bmp": (bmp_top_down, {**BMP, "codec": "raw", "channels": 3, "bit_depth": 8}),
    "core.bmp": (bmp_core, {**BMP, "codec": "raw", "channels": 3, "bit_depth": 8}),
    "rgb.gif": (
        ffmpeg(),
        {**IMG, "container": "gif", "mime_type": "image/gif", "codec": "lzw", "bit_depth": 8},
    ),
    "anim.gif": (ffmpeg(frames=3), {**IMG, "container": "gif", "codec": "lzw", "bit_depth": 8}),
    "lossy.webp": (ffmpeg(), {**WEBP, "codec": "vp8", "channels": 3}),
    "lossless.webp": (ffmpeg("-lossless", "1"), {**WEBP, "codec": "vp8l"}),
    "alpha.webp": (pillow("RGBA", lossless=False), {**WEBP, "codec": "vp8", "channels": 4}),
    "anim.webp": (ffmpeg("-c:v", "libwebp_anim", "-loop", "0", frames=3), {**WEBP, "codec": None}),
    "rgb.tiff": (ffmpeg(), {**TIFF, "codec": "packbits", "channels": 3, "bit_depth": 8}),
    "gray.tiff": (ffmpeg("-pix_fmt", "gray"), {**TIFF, "channels": 1, "bit_depth": 8}),
    "rgba.tiff": (ffmpeg("-pix_fmt", "rgba"), {**TIFF, "channels": 4, "bit_depth": 8}),
    "deflate.tiff": (ffmpeg("-compression_algo", "deflate"), {**TIFF, "codec": "deflate", "channels": 3}),
    "lzw.tiff": (ffmpeg("-compression_algo", "lzw"), {**TIFF, "codec": "lzw", "channels": 3}),
    # 640x480: IFD0 after 900 KB of strips, BitsPerSample stored just before it
    "hd.tiff": (
        ffmpeg(size="640x480"),
        {**TIFF, "width": 640, "height": 480, "codec": "packbits", "channels": 3},
    ),
    "big.tiff": (pillow("RGB", big_tiff=True), {**TIFF, "codec": "raw", "channels": 3, "bit_depth": 8}),
    "ifdend.tiff": (tiff_ifd_at_end("II"), LATE_IFD),
    "ifdend-mm.tiff": (tiff_ifd_at_end("MM"), LATE_IFD),
}

# Frame headers no encoder here writes (ffprobe cannot decode them either): probe only.
HEADER_ONLY: dict[str, Spec] = {
    "arith.jpg": (sof(0xC9, 8, 3), {**JPEG, "codec": "jpeg-extended-arithmetic", "channels": 3}),
    "arithprog.jpg": (sof(0xCA, 8, 3), {**JPEG, "codec": "jpeg-progressive-arithmetic", "channels": 3}),
    "twelve.jpg": (sof(0xC1, 12, 1), {**JPEG, "codec": "jpeg-extended", "channels": 1, "bit_depth": 12}),
    "losslessarith.jpg": (sof(0xCB, 16, 1), {**JPEG, "codec": "jpeg-lossless-arithmetic", "bit_depth": 16}),
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "image_name" in metafunc.fixturenames:
        metafunc.parametrize("image_name", sorted(IMAGES))
    if "any_image_name" in metafunc.fixturenames:
        metafunc.parametrize("any_image_name", sorted(IMAGES) + sorted(HEADER_ONLY))


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, Any]]]:
    """Every corpus file, built once: name -> (path, expected fields)."""
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        pytest.fail("ffmpeg/ffprobe are required (installed by .ci/run)")
    root = tmp_path_factory.mktemp("image-corpus")
    built = {}
    for name, (make, expected) in {**IMAGES, **HEADER_ONLY}.items():
        path = root / name
        make(path)
        built[name] = (path, expected)
    return built
