"""Head size: bytes and requests per object for 16 KiB and 64 KiB first reads (``[probe] head_bytes``).

A corpus made with ffmpeg of the shapes we ingest (phone/camera MP4 and MOV with the ``moov``
first and last, short and long, audio-only M4A, MP3 with ID3, WAV, FLAC, JPEG with small and
large APP segments (Exif/XMP as phones write them), PNG) is probed in memory with the probe's own
read policy and cost accounting (``probe_bytes``) at both head sizes. Requests cost money and a
round trip each on S3 (tens of ms to the first byte); bytes cost transfer time (48 KiB more is
well under a millisecond at S3 speeds). The figures: requests and KiB per object at 16 KiB, with
64 KiB as the baseline; the note lists the shapes that need a second read at 16 KiB.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

from bench.harness import Figure
from workers.probe.engine import probe_bytes

SMALL, LARGE = 16 * 1024, 64 * 1024

_V = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
_A = ["-c:a", "aac", "-b:a", "96k"]
_FIRST = ["-movflags", "+faststart"]
_CLIP5, _CLIP60 = "testsrc2=size=640x360:rate=30:duration=5", "testsrc2=size=320x180:rate=30:duration=60"
_LONG, _PHONE = "testsrc2=size=160x90:rate=30:duration=300", "testsrc2=size=480x270:rate=30:duration=20"
_PHOTO = "testsrc2=size=1920x1080"
SHAPES: dict[str, list[str]] = {
    "clip 5s 640x360 mp4 (moov first)": [_CLIP5, *_V, *_FIRST],
    "clip 5s 640x360 mp4 (moov last)": [_CLIP5, *_V],
    "clip 60s 320x180 mp4 (moov first)": [_CLIP60, *_V, *_FIRST],
    "clip 60s 320x180 mp4 (moov last)": [_CLIP60, *_V],
    "clip 5min 160x90 mp4 (moov first)": [_LONG, *_V, *_FIRST],
    "phone 20s mov a+v (moov first)": [_PHONE, "sine=duration=20", *_V, *_A, *_FIRST, "-f", "mov"],
    "phone 20s mov a+v (moov last)": [_PHONE, "sine=duration=20", *_V, *_A, "-f", "mov"],
    "audio 60s m4a": ["sine=duration=60", *_A, *_FIRST, "-f", "ipod"],
    "audio 60s mp3": ["sine=duration=60", "-c:a", "libmp3lame", "-b:a", "128k", "-f", "mp3"],
    "audio 10s wav": ["sine=duration=10", "-f", "wav"],
    "audio 30s flac": ["sine=duration=30", "-f", "flac"],
    "photo 1920x1080 jpeg": [_PHOTO, "-frames:v", "1", "-f", "image2", "-c:v", "mjpeg"],
    "photo 1920x1080 png": [_PHOTO, "-frames:v", "1", "-f", "image2", "-c:v", "png"],
}
APP_SEGMENTS = {"photo jpeg + 12 KiB Exif": 12 * 1024, "photo jpeg + 40 KiB Exif/XMP": 40 * 1024}


def make(folder: Path) -> dict[str, bytes]:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("ffmpeg is required to build the corpus")
    out: dict[str, bytes] = {}
    for i, (name, spec) in enumerate(SHAPES.items()):
        inputs = [a for a in spec if "=" in a and not a.startswith("-")]
        rest = spec[len(inputs) :]
        path = folder / f"{i}.bin"
        cmd = [ffmpeg, "-v", "error", "-y"]
        for graph in inputs:
            cmd += ["-f", "lavfi", "-i", graph]
        fmt = [] if "-f" in rest else ["-f", "mp4"]
        subprocess.run([*cmd, *rest, *fmt, str(path)], check=True, timeout=300)
        out[name] = path.read_bytes()
    jpeg = out["photo 1920x1080 jpeg"]
    for name, size in APP_SEGMENTS.items():  # APP1 segments of up to 64 KiB each, after SOI
        segs = b""
        left = size
        while left > 0:
            n = min(left, 65533 - 6)
            segs += struct.pack(">BBH", 0xFF, 0xE1, n + 8) + b"Exif\x00\x00" + bytes(n)
            left -= n
        out[name] = jpeg[:2] + segs + jpeg[2:]
    return out


def run(quick: bool) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="ingestd-heads-") as tmp:
        corpus = make(Path(tmp))
    rows = {}
    for name, data in corpus.items():
        small, large = probe_bytes(data, head_bytes=SMALL), probe_bytes(data, head_bytes=LARGE)
        if not (small.valid and large.valid):
            raise RuntimeError(f"{name}: not probed ({small.error or large.error})")
        rows[name] = (small.requests, small.bytes_read, large.requests, large.bytes_read)
    n = len(rows)
    req_s, kib_s = sum(r[0] for r in rows.values()) / n, sum(r[1] for r in rows.values()) / n / 1024
    req_l, kib_l = sum(r[2] for r in rows.values()) / n, sum(r[3] for r in rows.values()) / n / 1024
    detail = "; ".join(
        f"{k}: {r[0]} req/{r[1] // 1024} KiB vs {r[2]}/{r[3] // 1024}" for k, r in rows.items()
    )
    return [
        Figure(
            name="head16k_requests_per_object",
            value=req_s,
            unit="requests",
            baseline=req_l,
            baseline_name="64 KiB head",
            higher_is_better=False,
            note=f"{n} shapes, each once; 16 KiB vs 64 KiB: {detail}",
        ),
        Figure(
            name="head16k_kib_per_object",
            value=kib_s,
            unit="KiB",
            baseline=kib_l,
            baseline_name="64 KiB head",
            higher_is_better=False,
        ),
    ]
