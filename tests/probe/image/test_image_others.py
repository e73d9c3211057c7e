"""Refused containers are recognised precisely (kind, container, mime) with what their headers say."""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from workers.probe import others
from workers.probe.engine import parse as engine_parse
from workers.probe.engine import probe_bytes
from workers.probe.media import ProbeError
from workers.probe.sparse import Sparse

from .test_image_properties import fed, outcome, sized

SRC = ["-f", "lavfi", "-i", "testsrc=size=67x41:rate=25", "-frames:v", "10"]
VIDEOS = {
    "h264.mkv": (
        ["-c:v", "libx264"],
        {"container": "matroska", "mime_type": "video/x-matroska", "codec": "h264"},
    ),
    "vp9.webm": (["-c:v", "libvpx-vp9"], {"container": "webm", "mime_type": "video/webm", "codec": "vp9"}),
    "vp8.webm": (["-c:v", "libvpx"], {"container": "webm", "mime_type": "video/webm", "codec": "vp8"}),
    "mpeg4.avi": (
        ["-c:v", "mpeg4"],
        {
            "container": "avi",
            "mime_type": "video/x-msvideo",
            "codec": "FMP4",
            "frames": 10,
            "fps_rational": "25/1",
        },
    ),
    "h264.ts": (["-c:v", "libx264"], {"container": "mpegts", "mime_type": "video/mp2t", "codec": "h264"}),
    "mpeg2.ts": (
        ["-c:v", "mpeg2video"],
        {"container": "mpegts", "mime_type": "video/mp2t", "codec": "mpeg2video"},
    ),
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("other-containers")
    for name, (args, _) in VIDEOS.items():
        subprocess.run(["ffmpeg", "-v", "error", "-y", *SRC, *args, str(root / name)], check=True, timeout=60)
    return {name: root / name for name in VIDEOS}


def ffprobe_stream(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "quiet",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,codec_tag_string,width,height,nb_frames,r_frame_rate",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        check=True,
        timeout=60,
        text=True,
    ).stdout
    stream: dict[str, Any] = json.loads(out)["streams"][0]
    return stream


@pytest.mark.parametrize("name", sorted(VIDEOS))
def test_video_containers_match_ffprobe(videos: dict[str, Path], name: str) -> None:
    """Container, mime and codec as expected; size (from the SPS or sequence header for TS) and
    AVI frames/rate as ffprobe says."""
    info = probe_bytes(videos[name].read_bytes())
    expected = VIDEOS[name][1]
    assert (info.valid, info.kind) == (True, "video")
    assert {field: getattr(info, field) for field in expected} == expected
    theirs = ffprobe_stream(videos[name])
    assert (info.width, info.height) == (theirs["width"], theirs["height"])
    if info.container == "avi":
        assert info.codec == theirs["codec_tag_string"]
        assert str(info.frames) == theirs["nb_frames"] and info.fps_rational == theirs["r_frame_rate"]
    else:
        assert info.codec == theirs["codec_name"]
    assert info.requests == 1


def ebml(ident: int, payload: bytes) -> bytes:
    size = len(payload)
    return (
        ident.to_bytes((ident.bit_length() + 7) // 8, "big") + (size | 1 << 56).to_bytes(8, "big") + payload
    )


def test_matroska_tracks_behind_a_large_void_cost_one_more_read() -> None:
    """The Segment's children are hopped by size: a 100 KB Void is skipped, Tracks read next."""
    video = ebml(0xE0, ebml(0xB0, b"\x02\x80") + ebml(0xBA, b"\x01\x68"))
    entry = ebml(0xAE, ebml(0x83, b"\x01") + ebml(0x86, b"V_MPEGH/ISO/HEVC") + video)
    audio = ebml(0xAE, ebml(0x83, b"\x02") + ebml(0x86, b"A_OPUS"))
    segment = ebml(0xEC, bytes(100_000)) + ebml(0x1654AE6B, audio + entry) + ebml(0x1F43B675, bytes(2000))
    data = ebml(0x1A45DFA3, ebml(0x4282, b"matroska")) + ebml(0x18538067, segment)
    info = probe_bytes(data)
    assert (info.container, info.codec, info.width, info.height) == ("matroska", "hevc", 640, 360)
    assert info.requests == 2 and info.bytes_read <= 65536 + 4096 < len(data)


def test_matroska_unknown_doctype_and_overrun() -> None:
    """A DocType other than matroska/webm, and an element running past its parent, are named."""
    bad_doctype = ebml(0x1A45DFA3, ebml(0x4282, b"mka3d"))
    assert "DocType b'mka3d'" in (probe_bytes(bad_doctype).error or "")
    overrun = ebml(0x1A45DFA3, ebml(0x4282, b"webm"))[:-2]
    assert "runs past its parent" in (probe_bytes(overrun).error or "")


PDF_LINEARIZED = (
    b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"
    b"<< /Linearized 1 /L 91234 /H [ 620 160 ] /O 4 /E 5000 /N 12 /T 90000 >>\nendobj\n" + b"x" * 5000
)
PDF_PLAIN = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n" + b"y" * 3000


def dicom(syntax: bytes) -> bytes:
    def element(elem: int, vr: bytes, value: bytes) -> bytes:
        if vr in (b"OB", b"UN"):
            return struct.pack("<HH", 2, elem) + vr + b"\x00\x00" + struct.pack("<I", len(value)) + value
        return struct.pack("<HH", 2, elem) + vr + struct.pack("<H", len(value)) + value

    meta = element(0x0001, b"OB", b"\x00\x01") + element(0x0002, b"UI", b"1.2.840.10008.5.1.4.1.1.7\x00")
    meta += element(0x0010, b"UI", syntax) if syntax else b""
    group = element(0x0000, b"UL", struct.pack("<I", len(meta)))
    return bytes(128) + b"DICM" + group + meta + struct.pack("<HH", 8, 0x16) + b"UI" + bytes(200)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            PDF_LINEARIZED,
            {
                "kind": "document",
                "container": "pdf",
                "mime_type": "application/pdf",
                "codec": "pdf-1.7",
                "pages": 12,
            },
        ),
        (PDF_PLAIN, {"kind": "document", "container": "pdf", "codec": "pdf-1.4", "pages": None}),
        (
            dicom(b"1.2.840.10008.1.2.4.50\x00"),
            {
                "kind": "other",
                "container": "dicom",
                "mime_type": "application/dicom",
                "codec": "1.2.840.10008.1.2.4.50",
            },
        ),
        (
            "café ☕ naïve\n".encode() * 500,
            {"kind": "document", "container": "text", "mime_type": "text/plain", "codec": "utf-8"},
        ),
    ],
)
def test_documents_and_others(data: bytes, expected: dict[str, Any]) -> None:
    """PDF version and linearized page count, DICOM transfer syntax, UTF-8 text."""
    info = probe_bytes(data)
    assert info.valid and info.requests == 1
    assert {field: getattr(info, field) for field in expected} == expected


def test_broken_others_are_named() -> None:
    """DICOM without a transfer syntax, a PDF without a version, invalid UTF-8, bad TS sync."""
    assert "no Transfer Syntax UID" in (probe_bytes(dicom(b"")).error or "")
    with pytest.raises(ProbeError, match="no version"):
        others.parse(Sparse.whole(b"%PDF-x.y\n" + bytes(50)))
    with pytest.raises(ProbeError, match="invalid UTF-8 at offset 3"):
        others._text(Sparse.whole(b"abc\xff\xfe more text" * 10))
    ts = (b"\x47" + bytes(187)) * 3 + b"\x48" + bytes(187) * 3
    assert "packet 3 at offset 564 has sync byte 0x48" in (probe_bytes(ts).error or "")


@pytest.mark.parametrize("name", sorted(VIDEOS))
def test_video_containers_fed_byte_by_byte(videos: dict[str, Path], name: str) -> None:
    """The container parsers give the same result fed one byte per Need, and with trailing data."""
    data = videos[name].read_bytes()
    whole = outcome(engine_parse, Sparse.whole(data))
    assert whole[0] == "ok"
    assert fed(engine_parse, data, one_byte=True) == whole
    assert sized(outcome(engine_parse, Sparse.whole(data + bytes(5000))), len(data)) == whole
