"""Identify a format from its first bytes (never from the extension).

``sniff(head)`` returns a format id; the probe engine dispatches on it to
``workers.probe.<module>.parse``. ``head`` is whatever the driver read first (64 KiB by
default); sniffing needs at most the first 4 KiB.
"""

from __future__ import annotations

# format id -> the parser module under workers.probe that handles it
PARSER_MODULE: dict[str, str] = {
    "bmff": "bmff",
    "jpeg": "jpeg",
    "png": "png",
    "bmp": "bmp",
    "gif": "gif",
    "webp": "webp",
    "tiff": "tiff",
    "mp3": "mp3",
    "adts": "adts",
    "wav": "wav",
    "flac": "flac",
    "ogg": "ogg",
    "matroska": "others",
    "avi": "others",
    "mpegts": "others",
    "pdf": "others",
    "dicom": "others",
    "text": "others",
}

_BMFF_BRANDS_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"styp", b"sidx")


_BMP_HEADER_SIZES = frozenset({12, 40, 52, 56, 64, 108, 124, *range(16, 65, 4)})


def _bmp_header_size(head: bytes) -> int:
    return int.from_bytes(head[14:18], "little")


def _looks_like_mpeg_audio(head: bytes, at: int) -> bool:
    if len(head) < at + 4:
        return False
    b1, b2 = head[at + 1], head[at + 2]
    if head[at] != 0xFF or (b1 & 0xE0) != 0xE0:
        return False
    version = (b1 >> 3) & 3
    layer = (b1 >> 1) & 3
    bitrate = b2 >> 4
    rate = (b2 >> 2) & 3
    return version != 1 and layer != 0 and bitrate not in (0, 15) and rate != 3


def _is_text(head: bytes) -> bool:
    sample = head[:4096]
    if not sample:
        return False
    if b"\x00" in sample:
        return False
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as e:
        # a multi-byte character cut at the end of the sample is still text; nothing else is
        if e.reason != "unexpected end of data" or e.start < len(sample) - 3:
            return False
    return True


def sniff(head: bytes) -> str:
    """The format id of an object whose first bytes are ``head``; ``"unknown"`` if none fits."""
    if len(head) >= 8 and head[4:8] in _BMFF_BRANDS_BOXES:
        return "bmff"
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if head[:2] == b"BM" and len(head) >= 18 and _bmp_header_size(head) in _BMP_HEADER_SIZES:
        return "bmp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if head[:5] == b"%PDF-":
        return "pdf"
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if head[:3] == b"ID3":
        return "mp3"
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xF6) == 0xF0:
        return "adts"
    if _looks_like_mpeg_audio(head, 0):
        return "mp3"
    if len(head) >= 377 and head[0] == head[188] == head[376] == 0x47:
        return "mpegts"
    if _is_text(head):
        return "text"
    return "unknown"
