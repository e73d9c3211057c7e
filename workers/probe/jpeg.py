"""JPEG: walk the markers from SOI to the frame header (SOFn), hopping every segment by length.

A segment is never read whole unless we use it: at each marker only its 4-byte header
(``FF xx`` + length) is asked for, so a JPEG whose SOF sits behind a 64 KiB APP segment costs
one targeted read after the head. An ICC profile larger than one segment is split over several
APP2 chunks; its first chunk gives the profile size, so the rest of the chunks (and 2 KiB of
tables after them) are asked for in one read rather than one read per chunk. Image data is
never read: the walk stops at the first SOF; reaching SOS or EOI first is an error. An Exif
thumbnail is a complete JPEG *inside* APP1, so hopping APP1 by its length never sees its SOF.

Damaged headers that decoders display are read the way libjpeg's ``next_marker`` reads them:
where a marker is expected, bytes other than FF, fill FFs and stuffed ``FF00`` pairs are
skipped up to the next real marker (a segment whose length is a few bytes short, text pasted
between segments, ``FF00`` after APP14). Each skipped run is reported in ``warnings`` with its
offset and size. Still rejected: no SOF before SOS, EOI or a second SOI; a file that ends
inside the junk; a run of junk longer than 64 KiB (not a damaged header but another file).

Reported:

* ``width``/``height``/``bit_depth`` (sample precision)/``channels`` (component count) from SOFn;
  a height of 0 (defined later by a DNL marker) is reported as unknown.
* ``codec``: ``jpeg-`` + the coding process named by the SOF marker: ``baseline`` (C0),
  ``extended`` (C1), ``progressive`` (C2), ``lossless`` (C3), their arithmetic-coded variants
  ``extended-arithmetic`` (C9), ``progressive-arithmetic`` (CA), ``lossless-arithmetic`` (CB), and
  the hierarchical ``differential-*`` processes (C5-C7, CD-CF), and ``ls`` for JPEG-LS (F7).
* ``orientation``: Exif IFD0 tag 0x0112 from the first ``Exif\\0\\0`` APP1 (either byte order).
  A malformed Exif block leaves the orientation unknown; it does not invalidate the image.
* :func:`scan` also gives the colour model (gray, ycbcr, rgb, cmyk, ycck), using the Adobe APP14
  transform flag for 3 and 4 components.
"""

from __future__ import annotations

import struct

import msgspec

from workers.probe import tiff
from workers.probe.layout import exact, image_result
from workers.probe.media import MediaInfo, ProbeError
from workers.probe.sparse import Sparse

_PROCESS: dict[int, str] = {
    0xC0: "baseline",
    0xC1: "extended",
    0xC2: "progressive",
    0xC3: "lossless",
    0xC5: "differential-sequential",
    0xC6: "differential-progressive",
    0xC7: "differential-lossless",
    0xC9: "extended-arithmetic",
    0xCA: "progressive-arithmetic",
    0xCB: "lossless-arithmetic",
    0xCD: "differential-sequential-arithmetic",
    0xCE: "differential-progressive-arithmetic",
    0xCF: "differential-lossless-arithmetic",
    0xF7: "ls",  # JPEG-LS (ITU-T T.87) SOF55
}
_AFTER_ICC = 2048  # DQT/DHT/SOF after an ICC profile: a few hundred bytes in practice
_JUNK_WINDOW = 4096
_MAX_JUNK = 64 * 1024  # one run of junk longer than this is not a damaged header but another file
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0-7: no length field
_APP1, _APP2, _APP14, _SOS, _EOI, _SOI = 0xE1, 0xE2, 0xEE, 0xDA, 0xD9, 0xD8


class JpegHeader(msgspec.Struct, kw_only=True, frozen=True):
    """What the frame header and the segments before it say."""

    process: str
    width: int
    height: int | None
    precision: int
    components: int
    color: str
    orientation: int | None
    sof_offset: int
    junk: tuple[tuple[int, int, int], ...] = ()  # (offset, bytes discarded, marker found after them)


def _color(components: int, adobe_transform: int | None, ids: bytes) -> str:
    if components == 1:
        return "gray"
    if components == 3:
        if adobe_transform == 0 or (adobe_transform is None and ids == b"RGB"):
            return "rgb"
        return "ycbcr"
    if components == 4:
        return "ycck" if adobe_transform == 2 else "cmyk"
    return f"{components}-component"


def _icc_chunks_end(buf: Sparse, body: int, end: int, size: int) -> int:
    """Where the APP2 chunks of an ICC profile split over several segments should end.

    The first chunk (``ICC_PROFILE\\0``, number 1 of n > 1) starts with the profile header, whose
    first field is the profile's size; chunks 2..n carry the rest, 18 bytes of overhead each.
    ``0`` when this is not such a first chunk or the prediction is implausible.
    """
    head = buf.get(body, 18)
    if len(head) < 18 or head[:12] != b"ICC_PROFILE\x00" or head[12] != 1 or head[13] < 2:
        return 0
    chunks = head[13]
    profile_size = int.from_bytes(head[14:18], "big")
    rest = profile_size - (end - body - 14)
    predicted = end + rest + (chunks - 1) * 18
    if rest <= 0 or rest > (chunks - 1) * 65519 or predicted > size:
        return 0
    return predicted


def _junk_error(buf: Sparse, start: int, end: int) -> ProbeError:
    first = buf.get(start, 1)
    found = f"found byte {first[0]:#04x}" if first and first[0] != 0xFF else "found fill/stuffed bytes"
    if end >= buf.size:
        rest = f"the file ends at offset {buf.size} before any frame header (SOFn)"
    else:
        rest = f"no marker in the {end - start} bytes after it"
    return ProbeError(f"jpeg: expected a marker at offset {start}, {found}; {rest}")


def _next_marker(buf: Sparse, pos: int) -> tuple[int, int, int]:
    """(offset, code, discarded bytes) of the first marker at or after ``pos``, found as libjpeg's
    ``next_marker`` finds it: bytes other than FF are junk, FF runs are fill, and a stuffed
    ``FF00`` (only meaningful inside entropy-coded data) is junk too. The discarded count is what
    libjpeg reports as "extraneous bytes before marker" (non-FF bytes plus 2 per ``FF00``)."""
    head = buf.get(pos, 2)
    if len(head) == 2 and head[0] == 0xFF and head[1] not in (0x00, 0xFF):
        return pos, head[1], 0
    start, discarded = pos, 0
    while pos - start < _MAX_JUNK:
        window = buf.get(pos, _JUNK_WINDOW)
        if not window:
            break
        ff = window.find(0xFF)
        if ff < 0:
            discarded += len(window)
            pos += len(window)
            continue
        discarded += ff
        run = pos + ff + 1
        while (code := buf.get(run, 1)) == b"\xff":
            run += 1
        if not code:
            pos = run
            break
        if code[0] != 0x00:
            return run - 1, code[0], discarded
        discarded += 2
        pos = run + 1
    raise _junk_error(buf, start, min(pos, buf.size))


def scan(buf: Sparse) -> JpegHeader:
    """Walk the markers to the first SOFn. Raises ``Missing`` or ``ProbeError``."""
    if exact(buf, 0, 2, "jpeg SOI") != b"\xff\xd8":
        raise ProbeError("jpeg: file does not start with SOI (FFD8)")
    pos = 2
    orientation: int | None = None
    exif_seen = False
    adobe_transform: int | None = None
    icc_end = 0
    junk: list[tuple[int, int, int]] = []  # (offset, bytes discarded, marker found after them)
    while True:
        if pos < icc_end:
            # the rest of a chunked ICC profile and the tables after it: one read, not one per chunk
            buf.get(pos, icc_end + _AFTER_ICC - pos)
        if pos >= buf.size:
            raise ProbeError(f"jpeg: file ends at offset {buf.size} before any frame header (SOFn)")
        found, marker, discarded = _next_marker(buf, pos)
        if discarded:
            junk.append((pos, discarded, marker))
        pos = found
        if marker in _STANDALONE:
            pos += 2
            continue
        if marker in (_SOS, _EOI, _SOI):
            raise ProbeError(f"jpeg: marker FF{marker:02X} at offset {pos} before any frame header (SOFn)")
        head = buf.get(pos, 4)
        if len(head) < 4:
            raise ProbeError(f"jpeg: segment header FF{marker:02X} at offset {pos} truncated by end of file")
        (length,) = struct.unpack_from(">H", head, 2)
        if length < 2:
            raise ProbeError(f"jpeg: segment FF{marker:02X} at offset {pos} has length {length} (< 2)")
        body, end = pos + 4, pos + 2 + length
        if marker in _PROCESS:
            return _frame(buf, marker, pos, length, (orientation, adobe_transform), junk=junk)
        if marker == _APP1 and not exif_seen and length >= 8 + 6:
            if buf.get(body, 6) == b"Exif\x00\x00":
                exif_seen = True
                orientation = tiff.exif_orientation(buf, body, end, "jpeg Exif")
        elif marker == _APP14 and length >= 14 and buf.get(body, 5) == b"Adobe":
            adobe_transform = exact(buf, body + 11, 1, "jpeg Adobe APP14 segment")[0]
        elif marker == _APP2 and length >= 2 + 18 and not icc_end:
            icc_end = _icc_chunks_end(buf, body, end, buf.size)
        pos = end


def _frame(
    buf: Sparse,
    marker: int,
    pos: int,
    length: int,
    seen: tuple[int | None, int | None],
    *,
    junk: list[tuple[int, int, int]],
) -> JpegHeader:
    """The frame header; ``seen`` is (Exif orientation, Adobe transform) from earlier segments."""
    orientation, adobe_transform = seen
    seg = exact(buf, pos + 4, length - 2, f"jpeg SOF{marker - 0xC0} segment at offset {pos}")
    if len(seg) < 6:
        raise ProbeError(f"jpeg: SOF segment at offset {pos} has length {length} (< 8)")
    precision, height, width, components = struct.unpack_from(">BHHB", seg, 0)
    if components == 0 or len(seg) < 6 + 3 * components:
        raise ProbeError(
            f"jpeg: SOF at offset {pos} declares {components} components in a {length}-byte segment"
        )
    if width == 0:
        raise ProbeError(f"jpeg: SOF at offset {pos} has width 0")
    if not 2 <= precision <= 16:
        raise ProbeError(f"jpeg: SOF at offset {pos} has sample precision {precision}")
    ids = bytes(seg[6 + 3 * i] for i in range(components))
    return JpegHeader(
        process=_PROCESS[marker],
        width=width,
        height=height or None,
        precision=precision,
        components=components,
        color=_color(components, adobe_transform, ids),
        orientation=orientation,
        sof_offset=pos,
        junk=tuple(junk),
    )


def parse(buf: Sparse) -> MediaInfo:
    """Dimensions, precision, components, coding process and Exif orientation."""
    header = scan(buf)
    info = image_result(
        "jpeg",
        buf,
        width=header.width,
        height=header.height,
        codec=f"jpeg-{header.process}",
        channels=header.components,
        bit_depth=header.precision,
        orientation=header.orientation,
    )
    if header.junk:
        info.warnings = [
            f"jpeg: {count} extraneous bytes before marker FF{marker:02X} at offset {at}, "
            "skipped as decoders do"
            for at, count, marker in header.junk
        ]
    return info
