"""One ``trak``: header, media header, edit list, sample tables and the first sample entry.

Everything here is read from the ``moov`` bytes held in memory. Tables stay run-length
encoded (``stts``/``ctts`` runs) so a long movie costs one pass when timing is computed
(:mod:`workers.probe.bmff_timing`). ``ctts`` offsets are read as signed in both versions:
version 0 declares them unsigned, but writers put negative values there and every player
reads them signed.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence

import msgspec

from workers.probe.bmff_boxes import Box, find, full_box, need_bytes
from workers.probe.bmff_entry import SampleEntry, parse_stsd
from workers.probe.bmff_runs import NO_RUNS, Runs, read_runs, u32_array
from workers.probe.media import ProbeError

_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_U64 = struct.Struct(">Q")
_I64 = struct.Struct(">q")
_STSZ = struct.Struct(">II")
_MATRIX = struct.Struct(">iiiii")  # a, b, u, c, d of the tkhd matrix (16.16, u 2.30)
_ONE = 0x10000
_FIXED = 65536.0
# (a, b, u, c, d) of the exact quarter turns (u = 0): rotation_from_matrix's answers, looked up
_RIGHT_ANGLES = {
    (_ONE, 0, 0, 0, _ONE): 0,
    (0, _ONE, 0, -_ONE, 0): 90,
    (-_ONE, 0, 0, 0, -_ONE): 180,
    (0, -_ONE, 0, _ONE, 0): 270,
}
MEDIA_HANDLERS = frozenset({"vide", "soun"})


class Edit(msgspec.Struct, frozen=True):
    """One ``elst`` entry: duration in the movie timescale, media start (-1 = empty edit)."""

    duration: int
    media_time: int


class Track(msgspec.Struct, kw_only=True):
    """The raw facts of one track; derived values are computed in ``bmff_timing``."""

    track_id: int
    enabled: bool
    handler: str
    rotation: int
    timescale: int
    media_duration: int
    edits: list[Edit] | None = None
    stts: Runs = NO_RUNS  # (count, delta)
    ctts: Runs = NO_RUNS  # (count, offset)
    sample_count: int = 0
    entry: SampleEntry | None = None
    media_end: int = 0  # one past the last byte of sample data the tables point at


def rotation_from_matrix(a: float, b: float, c: float, d: float) -> int:
    """Clockwise display rotation in degrees (0/90/180/270) from the tkhd matrix's a, b, c, d.

    The matrix maps (x, y) to (a*x + c*y, b*x + d*y); ``a = cos t, b = sin t`` for a clockwise
    rotation by ``t`` in the y-down screen frame (QuickTime's rotate-by-90 matrix is
    ``0 1 -1 0``). Non-right angles are snapped to the nearest quarter turn.
    """
    if a == b == c == d == 0:
        return 0
    degrees = math.degrees(math.atan2(b, a))
    return (round(degrees / 90) * 90) % 360


def _tkhd(data: bytes, box: Box, base: int) -> tuple[int, bool, int]:
    version, flags, p = full_box(data, box, base, 80)
    if version == 1:
        need_bytes(box, base, p, 92, "tkhd v1 fields")
        track_id = _U32.unpack_from(data, p + 16)[0]
        p += 32
    else:
        track_id = _U32.unpack_from(data, p + 8)[0]
        p += 20
    return track_id, bool(flags & 1), tkhd_rotation(_MATRIX.unpack_from(data, p + 16))


def tkhd_rotation(matrix: tuple[int, int, int, int, int]) -> int:
    """The rotation of the tkhd matrix's raw ``(a, b, u, c, d)``."""
    rotation = _RIGHT_ANGLES.get(matrix)
    if rotation is None:
        a, b, _u, c, d = matrix
        rotation = rotation_from_matrix(a / _FIXED, b / _FIXED, c / _FIXED, d / _FIXED)
    return rotation


def mdhd_or_mvhd_times(data: bytes, box: Box, base: int) -> tuple[int, int]:
    """``(timescale, duration)`` of an ``mdhd`` or ``mvhd`` (same layout for both)."""
    version, _, p = full_box(data, box, base, 16)
    if version == 1:
        need_bytes(box, base, p, 28, "{} v1 fields", box.type)
        timescale, duration = _U32.unpack_from(data, p + 16)[0], _U64.unpack_from(data, p + 20)[0]
        if duration == 0xFFFFFFFFFFFFFFFF:
            duration = 0
    else:
        timescale, duration = _U32.unpack_from(data, p + 8)[0], _U32.unpack_from(data, p + 12)[0]
        if duration == 0xFFFFFFFF:
            duration = 0
    if timescale == 0:
        raise ProbeError(f"{box.type} at offset {base + box.start}: timescale is 0")
    return timescale, duration


def _elst(data: bytes, box: Box, base: int) -> list[Edit]:
    version, _, p = full_box(data, box, base, 4)
    count = _U32.unpack_from(data, p)[0]
    width = 20 if version == 1 else 12
    need_bytes(box, base, p + 4, count * width, "elst with {} entries", count)
    edits = []
    for i in range(count):
        at = p + 4 + i * width
        if version == 1:
            edits.append(Edit(_U64.unpack_from(data, at)[0], _I64.unpack_from(data, at + 8)[0]))
        else:
            edits.append(Edit(_U32.unpack_from(data, at)[0], _I32.unpack_from(data, at + 4)[0]))
    return edits


def _runs(data: bytes, box: Box, base: int, signed: bool) -> Runs:
    _, _, p = full_box(data, box, base, 4)
    count = _U32.unpack_from(data, p)[0]
    need_bytes(box, base, p + 4, count * 8, "{} with {} entries", box.type, count)
    return read_runs(data, p + 4, count, signed)


def _sample_sizes(data: bytes, stbl: dict[str, Box], base: int) -> tuple[int, int, Callable[[int], int]]:
    """``(count, constant_size, sum_of_last)``: the sample count, the constant size (0 when
    sizes vary) and a function summing the last ``k`` sizes (the last chunk's bytes)."""
    if "stsz" in stbl:
        box = stbl["stsz"]
        _, _, p = full_box(data, box, base, 8)
        const, count = _STSZ.unpack_from(data, p)
        if const:
            return count, const, _no_sizes
        need_bytes(box, base, p + 8, count * 4, "stsz with {} sizes", count)

        def last_sizes(k: int) -> int:
            k = min(k, count)
            return sum(u32_array(data, p + 8 + 4 * (count - k), k))

        return count, 0, last_sizes
    if "stz2" in stbl:
        box = stbl["stz2"]
        _, _, p = full_box(data, box, base, 8)
        field, count = data[p + 3], _U32.unpack_from(data, p + 4)[0]
        if field not in (4, 8, 16):
            raise ProbeError(f"stz2 at offset {base + box.start}: field_size {field} not 4, 8 or 16")
        need_bytes(box, base, p + 8, (count * field + 7) // 8, "stz2 with {} sizes", count)
        raw = data[p + 8 : p + 8 + (count * field + 7) // 8]
        if field == 16:
            sizes: Sequence[int] = struct.unpack(f">{count}H", raw)
        elif field == 8:
            sizes = raw
        else:
            sizes = [(raw[i // 2] >> (4 if i % 2 == 0 else 0)) & 15 for i in range(count)]
        return count, 0, lambda k: sum(sizes[-k:])
    return 0, 0, _no_sizes


def _no_sizes(k: int) -> int:
    return 0


def _media_end(
    data: bytes, stbl: dict[str, Box], base: int, const: int, last_sizes: Callable[[int], int]
) -> int:
    """End of the last chunk's sample data (0 without a chunk table)."""
    box = stbl.get("stco") or stbl.get("co64")
    if box is None:
        return 0
    _, _, p = full_box(data, box, base, 4)
    count = _U32.unpack_from(data, p)[0]
    if count == 0:
        return 0
    width = 8 if box.type == "co64" else 4
    need_bytes(box, base, p + 4, count * width, "{} with {} offsets", box.type, count)
    if count == 1:
        offsets: Sequence[int] = ((_U64 if width == 8 else _U32).unpack_from(data, p + 4)[0],)
    elif width == 4:
        offsets = u32_array(data, p + 4, count)
    else:
        offsets = struct.unpack_from(f">{count}Q", data, p + 4)
    end = max(offsets)
    stsc = stbl.get("stsc")
    if stsc is not None:
        _, _, q = full_box(data, stsc, base, 4)
        n = _U32.unpack_from(data, q)[0]
        need_bytes(stsc, base, q + 4, n * 12, "stsc with {} entries", n)
        if n:
            per_chunk = _U32.unpack_from(data, q + 4 + (n - 1) * 12 + 4)[0]
            last = offsets[-1] + (const * per_chunk if const else last_sizes(per_chunk) if per_chunk else 0)
            end = max(end, last)
    return int(end)


def parse_trak(data: bytes, trak: Box, base: int) -> Track:
    """One track from its ``trak`` box inside the ``moov`` bytes ``data``."""
    at = base + trak.start  # error texts name the trak by its offset, built only when raising
    boxes = find(data, trak.payload, trak.end, base, "trak at offset {}", at)
    if "tkhd" not in boxes or "mdia" not in boxes:
        raise ProbeError(f"trak at offset {at}: missing {'tkhd' if 'tkhd' not in boxes else 'mdia'}")
    track_id, enabled, rotation = _tkhd(data, boxes["tkhd"], base)
    mdia = find(data, boxes["mdia"].payload, boxes["mdia"].end, base, "trak at offset {} mdia", at)
    if "mdhd" not in mdia or "hdlr" not in mdia:
        raise ProbeError(f"trak at offset {at}: mdia lacks {'mdhd' if 'mdhd' not in mdia else 'hdlr'}")
    timescale, media_duration = mdhd_or_mvhd_times(data, mdia["mdhd"], base)
    _, _, p = full_box(data, mdia["hdlr"], base, 8)
    handler = data[p + 4 : p + 8].decode("latin-1")
    track = Track(
        track_id=track_id,
        enabled=enabled,
        handler=handler,
        rotation=rotation,
        timescale=timescale,
        media_duration=media_duration,
    )
    if handler not in MEDIA_HANDLERS:
        return track  # timecode, metadata, subtitle ... tracks: their tables are not ours to judge
    edts = boxes.get("edts")
    if edts is not None:
        elst = find(data, edts.payload, edts.end, base, "trak at offset {} edts", at).get("elst")
        if elst is not None:
            track.edits = _elst(data, elst, base)
    minf = mdia.get("minf")
    if minf is None:
        return track
    stbl_box = find(data, minf.payload, minf.end, base, "trak at offset {} minf", at).get("stbl")
    if stbl_box is None:
        return track
    stbl = find(data, stbl_box.payload, stbl_box.end, base, "trak at offset {} stbl", at)
    if "stsd" in stbl:
        track.entry = parse_stsd(data, stbl["stsd"], base, handler)
    if "stts" in stbl:
        track.stts = _runs(data, stbl["stts"], base, signed=False)
    if "ctts" in stbl:
        track.ctts = _runs(data, stbl["ctts"], base, signed=True)
    count, const, last_sizes = _sample_sizes(data, stbl, base)
    track.sample_count = count
    stts_total = track.stts.samples
    if stts_total != count and (track.stts.counts or count):
        raise ProbeError(
            f"trak at offset {at}: stts covers {stts_total} samples but the size table has {count}"
        )
    ctts_total = track.ctts.samples
    if track.ctts.counts and ctts_total != count:
        raise ProbeError(
            f"trak at offset {at}: ctts covers {ctts_total} samples but the size table has {count}"
        )
    track.media_end = _media_end(data, stbl, base, const, last_sizes)
    return track
