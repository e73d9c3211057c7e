"""AVI (RIFF) stream headers (Matroska/WebM: :mod:`workers.probe.matroska`).

The ``hdrl`` list is walked chunk by chunk, asking only for each 12-byte header, so large
chunks (JUNK padding, strd/vprp) are hopped, never read.

* AVI: ``hdrl``'s ``avih`` and each ``strl``'s ``strh``/``strf``: the first ``vids`` stream gives
  the size (BITMAPINFOHEADER), the codec fourcc, the frame count (``dwLength``), the rate
  (``dwRate/dwScale``) and so the duration (``dwLength * dwScale / dwRate``).
* Without a usable video ``strh`` (no rate or no length), the main header stands in: ``avih``'s
  ``dwTotalFrames`` and ``dwMicroSecPerFrame`` (a whole number of microseconds: see
  :func:`workers.probe.rates.from_frame_duration`, 33367 us -> ``30000/1001``).
"""

from __future__ import annotations

import struct
from fractions import Fraction

from workers.probe import rates
from workers.probe.layout import exact
from workers.probe.media import ProbeError
from workers.probe.sparse import Sparse


def _fourcc(raw: bytes) -> str:
    return raw.rstrip(b"\x00 ").decode("latin-1")


def _timing(fps: Fraction, frames: int) -> dict[str, object]:
    return {
        "frames": frames,
        "fps": float(fps),
        "fps_rational": f"{fps.numerator}/{fps.denominator}",
        "duration": float(frames / fps),
    }


def avi(buf: Sparse) -> dict[str, object]:
    """Fields of the first video stream from the ``hdrl`` list."""
    head = exact(buf, 0, 24, "avi RIFF header")
    if head[12:16] != b"LIST" or head[20:24] != b"hdrl":
        raise ProbeError(f"avi: first chunk {head[12:16]!r} is not LIST hdrl")
    (hdrl_size,) = struct.unpack_from("<I", head, 16)
    end = min(20 + hdrl_size, buf.size)
    avih = exact(buf, 24, 8 + 40, "avi avih chunk")
    if avih[:4] != b"avih":
        raise ProbeError(f"avi: hdrl starts with {avih[:4]!r}, expected avih")
    usec_per_frame, total_frames = struct.unpack_from("<I12xI", avih, 8)
    width, height = struct.unpack_from("<II", avih, 8 + 32)
    fields: dict[str, object] = {"width": width or None, "height": height or None}
    if usec_per_frame and total_frames:
        fields |= _timing(rates.from_frame_duration(10**6, Fraction(usec_per_frame)), total_frames)
    pos = 24 + 8 + struct.unpack_from("<I", avih, 4)[0]
    while pos + 12 <= end:
        kind, size, form = struct.unpack("<4sI4s", exact(buf, pos, 12, f"avi chunk at offset {pos}"))
        if kind == b"LIST" and form == b"strl":
            strh = exact(buf, pos + 12, 8 + 36, "avi strh chunk")
            if strh[:4] == b"strh" and strh[8:12] == b"vids":
                scale, rate, _start, length = struct.unpack_from("<4I", strh, 8 + 20)
                strh_size = struct.unpack_from("<I", strh, 4)[0]
                strf = exact(buf, pos + 12 + 8 + strh_size + (strh_size & 1), 8 + 20, "avi strf chunk")
                if strf[:4] != b"strf":
                    raise ProbeError(f"avi: video strl has {strf[:4]!r} after strh, expected strf")
                width, height = struct.unpack_from("<ii", strf, 12)
                fields["width"], fields["height"] = (width if width > 0 else None), (abs(height) or None)
                fields["codec"] = _fourcc(strf[24:28]) or _fourcc(strh[12:16])
                if scale and rate and length:
                    fields |= _timing(Fraction(rate, scale), length)
                return fields
        pos += 8 + size + (size & 1)
    return fields
