"""Fixed-layout fields read from a :class:`Sparse` buffer, and the image result shape.

Shared by the image and "other container" parsers: ``exact`` turns a short read (end of file)
into a specific ``ProbeError``; ``image_result`` builds the ``MediaInfo`` every image parser
returns, with the mime type of its container.
"""

from __future__ import annotations

from workers.probe.media import MediaInfo, ProbeError
from workers.probe.sparse import Sparse

MIME: dict[str, str] = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "bmp": "image/bmp",
    "gif": "image/gif",
    "webp": "image/webp",
    "tiff": "image/tiff",
    "matroska": "video/x-matroska",
    "webm": "video/webm",
    "avi": "video/x-msvideo",
    "mpegts": "video/mp2t",
    "pdf": "application/pdf",
    "dicom": "application/dicom",
    "text": "text/plain",
}


def exact(buf: Sparse, offset: int, length: int, what: str) -> bytes:
    """Exactly ``length`` bytes at ``offset``; ``ProbeError`` naming ``what`` if the file ends first."""
    data = buf.get(offset, length)
    if len(data) < length:
        raise ProbeError(
            f"{what} truncated: needs bytes {offset}..{offset + length}, file ends at {buf.size}"
        )
    return data


def image_result(
    container: str,
    buf: Sparse,
    *,
    width: int,
    height: int | None,
    codec: str | None = None,
    channels: int | None = None,
    bit_depth: int | None = None,
    orientation: int | None = None,
    frames: int | None = None,
) -> MediaInfo:
    """A valid image result; ``width``/``height`` are checked positive (``None``: not known)."""
    return MediaInfo(
        valid=True,
        kind="image",
        container=container,
        mime_type=MIME[container],
        file_size=buf.size,
        width=width,
        height=height,
        codec=codec,
        channels=channels,
        bit_depth=bit_depth,
        orientation=orientation,
        frames=frames,
    )
