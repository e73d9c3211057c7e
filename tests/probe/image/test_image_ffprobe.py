"""The probe against ffprobe, field by field, on every corpus image.

Compared: width, height, the number of stored components derived from ffprobe's pix_fmt, and
the sample precision where ffprobe reports one (``bits_per_raw_sample``, JPEG).
Where ffprobe is wrong (ffmpeg 5.1, the version CI installs), the test pins ffprobe's answer
and the probe's, and this is why the probe is right:

* ``big.tiff`` (BigTIFF, magic 43): ffmpeg's TIFF decoder does not read BigTIFF ("Invalid TIFF
  header") and reports 0x0; the 16-byte header and 64-bit IFD are standard and the probe reads
  them.
* ``anim.webp`` (VP8X with ANIM/ANMF): ffmpeg's WebP decoder does not support animation ("image
  data not found") and reports 0x0; the canvas size is in VP8X.
* ``lossless.webp``: ffprobe says ``argb`` for every VP8L image (its decoder output); the
  bitstream's alpha_is_used hint is 0, so the image has 3 meaningful channels.
* ``cmyk.jpg``: ffprobe says ``gbrap``: it decodes Adobe CMYK into planar RGB+alpha; the file
  has 4 components that are C, M, Y, K (APP14 transform 0), which the probe reports
  (``jpeg.scan(...).color == "cmyk"``).
* GIF: ffprobe reports its decoder's ``bgra`` output; a GIF stores 1 palette index per pixel.
* Exif orientation: ffprobe's stream section has none; only decoding the frame
  (``-show_frames``) yields the Orientation tag and a display matrix. The probe reads tag 0x0112
  from the header (both byte orders) and agrees with that decoded tag on every corpus file.
* ``anim.apng``: ffprobe has no frame count for APNG (``nb_frames`` N/A); acTL declares it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from workers.probe import tiff
from workers.probe.engine import probe_bytes
from workers.probe.sparse import Sparse

COMPONENTS = {
    "gray": 1,
    "gray16be": 1,
    "monob": 1,
    "pal8": 1,
    "bgr8": 1,
    "ya8": 2,
    "rgb24": 3,
    "bgr24": 3,
    "rgb48be": 3,
    "rgb565le": 3,
    "yuvj420p": 3,
    "yuvj444p": 3,
    "yuv420p": 3,
    "rgba": 4,
    "bgra": 4,
    "yuva420p": 4,
}
FFPROBE_ZERO = {"big.tiff", "anim.webp"}
FFPROBE_OUTPUT_FORMAT = {"lossless.webp": ("argb", 3), "cmyk.jpg": ("gbrap", 4)}


def ffprobe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "quiet",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height,pix_fmt,nb_frames,bits_per_raw_sample",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        check=False,
        timeout=60,
        text=True,
    ).stdout
    streams = json.loads(out or "{}").get("streams", [{}])
    return streams[0] if streams else {}


def test_matches_ffprobe(corpus: dict[str, tuple[Path, dict[str, Any]]], image_name: str) -> None:
    """Width, height and components agree with ffprobe, except where ffprobe is documented wrong."""
    path, _ = corpus[image_name]
    data = path.read_bytes()
    ours = tiff.parse(Sparse.whole(data)) if image_name == "big.tiff" else probe_bytes(data)
    theirs = ffprobe(path)
    if image_name in FFPROBE_ZERO:
        assert theirs.get("width", 0) == 0 and theirs.get("height", 0) == 0
        assert ours.valid and ours.width == 67 and ours.height == 41
        return
    assert (ours.width, ours.height) == (theirs["width"], theirs["height"])
    pix_fmt = theirs["pix_fmt"]
    if image_name in FFPROBE_OUTPUT_FORMAT:
        assert (pix_fmt, ours.channels) == FFPROBE_OUTPUT_FORMAT[image_name]
    elif ours.container == "gif":
        assert pix_fmt == "bgra" and ours.channels == 1
    else:
        assert ours.channels == COMPONENTS[pix_fmt], pix_fmt
    bits = theirs.get("bits_per_raw_sample", "N/A")  # reported for JPEG: the SOF precision
    assert bits == "N/A" or ours.bit_depth == int(bits)


def ffprobe_orientation(path: Path) -> int | None:
    out = subprocess.run(
        ["ffprobe", "-v", "quiet", "-show_frames", "-of", "json", str(path)],
        capture_output=True,
        check=False,
        timeout=60,
        text=True,
    ).stdout
    frames = json.loads(out or "{}").get("frames", [{}])
    tag = frames[0].get("tags", {}).get("Orientation") if frames else None
    return int(tag) if tag is not None else None


def test_orientation_matches_decoded_frame(corpus: dict[str, tuple[Path, dict[str, Any]]]) -> None:
    """The header's Exif orientation equals the tag ffprobe finds by decoding the frame."""
    header_only = ("arith", "twelve", "losslessarith")  # frame headers ffmpeg cannot decode
    for name in sorted(corpus):
        if not name.endswith(".jpg") or name.startswith(header_only):
            continue
        path = corpus[name][0]
        assert probe_bytes(path.read_bytes()).orientation == ffprobe_orientation(path), name


def test_apng_frames_where_ffprobe_has_none(corpus: dict[str, tuple[Path, dict[str, Any]]]) -> None:
    """ffprobe gives no frame count for APNG; acTL's count is reported."""
    path, _ = corpus["anim.apng"]
    assert ffprobe(path).get("nb_frames", "N/A") == "N/A"
    assert probe_bytes(path.read_bytes()).frames == 3
