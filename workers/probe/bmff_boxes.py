"""ISO BMFF box walking: top-level boxes over a ``Sparse`` buffer, children in memory.

A box header is ``size:u32 type:4cc`` then ``largesize:u64`` when ``size == 1``, and a 16-byte
``usertype`` when the type is ``uuid``; ``size == 0`` means "to the end of the enclosing
space" (the file, for a top-level box). A box whose end passes its parent's end is an error
naming the box, its offset and its size.

Top-level walking asks for bytes with a read policy (:func:`top_level_header`): the header of
the box after a large media box (``mdat``) usually leads to a ``moov`` that runs to the end of
the file, so the whole remainder is asked for at once when it is small enough; after any other
box a generous window is asked for so the next small box arrives in the same read.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import NamedTuple

from workers.probe.media import ProbeError
from workers.probe.sparse import Missing, Sparse

REMAINDER_LIMIT = 16 * 1024 * 1024  # ask for the whole rest of the file when at most this big
WINDOW = 16 * 1024  # else the next header plus this much (a bigger moov costs one more, exact, read)
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_HEAD = struct.Struct(">I4s")


class Box(NamedTuple):
    """One box: its type, where it starts, where its payload starts and where it ends."""

    type: str
    start: int
    payload: int
    end: int

    @property
    def size(self) -> int:
        """Total size, header included."""
        return self.end - self.start


_new_box = tuple.__new__  # a Box without the NamedTuple's Python-level ``__new__``


def fourcc(raw: bytes) -> str:
    """A box type as text (latin-1 keeps every byte value)."""
    return raw.decode("latin-1")


_TYPE_BYTES = bytes([*range(0x20, 0x7F), 0xA9])


def is_plausible_type(raw: bytes) -> bool:
    """True for four printable ASCII characters or ``©`` (what real box types are made of)."""
    return len(raw) == 4 and not raw.translate(None, _TYPE_BYTES)


def _decode_header(head: bytes, start: int, limit: int, where: str) -> Box:
    """A box from its header bytes (``head`` holds at least the whole header)."""
    size = _U32.unpack_from(head, 0)[0]
    kind = fourcc(head[4:8])
    header = 8
    if size == 1:
        size = _U64.unpack_from(head, 8)[0]
        header = 16
    elif size == 0:
        size = limit - start
    if kind == "uuid":
        header += 16
    if size < header:
        raise ProbeError(f"box {kind!r} at offset {start} in {where}: size {size} < header size {header}")
    if start + size > limit:
        raise ProbeError(
            f"box {kind!r} at offset {start} in {where}: size {size} runs past its end at {limit} "
            f"by {start + size - limit} bytes"
        )
    return _new_box(Box, (kind, start, start + header, start + size))


def _header_length(first8: bytes) -> int:
    size = _U32.unpack_from(first8, 0)[0]
    return (16 if size == 1 else 8) + (16 if first8[4:8] == b"uuid" else 0)


def _fetch_header(buf: Sparse, offset: int, want: int) -> bytes:
    """The header bytes at ``offset``; a ``Missing`` is widened to ``want`` bytes from there."""
    try:
        first8 = buf.get(offset, 8)
        if len(first8) < 8:
            return first8
        length = _header_length(first8)
        return first8 if length == 8 else buf.get(offset, length)
    except Missing as m:
        raise Missing(m.offset, max(m.length, offset + want - m.offset)) from None


def top_level_header(
    buf: Sparse, offset: int, after_media: bool, window: int = WINDOW, junk_ok: bool = False
) -> Box | None:
    """The top-level box at ``offset`` (< ``buf.size``), asking for bytes by the read policy.

    ``after_media``: the previous box was a media box, so what follows is probably the
    metadata up to the end of the file. ``window``: how much to ask for past the header
    otherwise. ``junk_ok``: return ``None`` for bytes that cannot be a box header (trailing
    data after the last box) instead of raising.
    """
    remainder = buf.size - offset
    want = remainder if after_media and remainder <= REMAINDER_LIMIT else min(remainder, 32 + window)
    head = _fetch_header(buf, offset, want)
    if junk_ok and (len(head) < 8 or not is_plausible_type(head[4:8])):
        return None
    if len(head) < 8 or len(head) < _header_length(head):
        raise ProbeError(
            f"top-level box header at offset {offset} truncated: {remainder} bytes left in the file"
        )
    return _top_level_box(head, 0, offset, buf.size)


def _top_level_box(head: bytes, at: int, offset: int, size: int) -> Box:
    """The top-level box at file ``offset`` whose whole header is ``head[at:]``."""
    if not is_plausible_type(head[at + 4 : at + 8]):
        raise ProbeError(
            f"top-level box at offset {offset}: type {head[at + 4 : at + 8].hex()} is not a box type"
        )
    return _decode_header(head[at : at + 32] if at else head, offset, size, "file")


def known_top_level_header(head: bytes, offset: int, size: int) -> Box | None:
    """:func:`top_level_header` (``junk_ok`` false) for a box at ``offset`` inside ``head``, the
    known bytes from the start of the file; ``None`` when its header may not all be there."""
    if offset + 32 > len(head):  # the longest header: 64-bit size and a uuid
        return None
    return _top_level_box(head, offset, offset, size)


def _bad_child(data: bytes, pos: int, end: int, base: int, where: str) -> ProbeError:
    """The error for the child box header at ``pos`` that the fast walk refused."""
    if end - pos < 8:
        return ProbeError(f"{where}: {end - pos} stray bytes at offset {base + pos} (box header is 8)")
    size, raw = _HEAD.unpack_from(data, pos)
    header = 8
    if size == 1:
        if end - pos < 16:
            return ProbeError(f"{where}: 64-bit box header at offset {base + pos} truncated")
        size, header = _U64.unpack_from(data, pos + 8)[0], 16
    elif size == 0:
        size = end - pos
    kind = raw.decode("latin-1")
    if kind == "uuid":
        header += 16
    return ProbeError(
        f"box {kind!r} at offset {base + pos} in {where}: size {size} "
        + (f"< header size {header}" if size < header else f"runs past its end at {base + end}")
    )


def _odd_header(data: bytes, pos: int, end: int, size: int, raw: bytes) -> tuple[int, int] | None:
    """``(size, header size)`` of a child header that is not the plain 32-bit one, or ``None``
    when it is bad (64-bit size cut off, size below the header, past the parent's end)."""
    header = 8
    if size == 1:
        if end - pos < 16:
            return None
        size, header = _U64.unpack_from(data, pos + 8)[0], 16
    elif size == 0:
        size = end - pos
    if raw == b"uuid":
        header += 16
    if size < header or pos + size > end:
        return None
    return size, header


def walk(
    data: bytes, start: int, end: int, base: int, where: str, *args: object
) -> tuple[list[Box], ProbeError | None]:
    """The boxes in ``data[start:end]`` up to the first bad header, and the error for that one.

    What a lazy walk would yield before raising, in one tight loop: a caller that handles the
    boxes in order and then raises the error behaves exactly like one iterating
    :func:`children`. ``Box`` offsets are indexes into ``data``; ``base`` (the file offset of
    ``data[0]``) is only used in error messages, which give file offsets. ``where`` names the
    container; with ``args`` it is a ``str.format`` template, filled only for an error.
    """
    boxes: list[Box] = []
    add, unpack, pos = boxes.append, _HEAD.unpack_from, start
    try:
        while pos < end:  # fewer than 8 bytes left: size < 8 or past the end, or no bytes at all
            size, raw = unpack(data, pos)
            if size < 8 or pos + size > end or raw == b"uuid":  # not the plain 32-bit header
                odd = _odd_header(data, pos, end, size, raw)
                if odd is None:
                    break
                size, header = odd
            else:
                header = 8
            add(_new_box(Box, (raw.decode("latin-1"), pos, pos + header, pos + size)))
            pos += size
        else:
            return boxes, None
    except struct.error:  # the data itself ends within the header
        pass
    return boxes, _bad_child(data, pos, end, base, where.format(*args) if args else where)


def children(data: bytes, start: int, end: int, base: int, where: str, *args: object) -> Iterator[Box]:
    """The boxes in ``data[start:end]``; a bad header raises once the boxes before it are out."""
    boxes, error = walk(data, start, end, base, where, *args)
    yield from boxes
    if error is not None:
        raise error


def scan(data: bytes, start: int, end: int, base: int, where: str, *args: object) -> list[Box]:
    """Every box in ``data[start:end]``, or the ``ProbeError`` for the first bad header."""
    boxes, error = walk(data, start, end, base, where, *args)
    if error is not None:
        raise error
    return boxes


def first_of_each(boxes: list[Box]) -> dict[str, Box]:
    """The first box of each type among ``boxes``."""
    return {box.type: box for box in reversed(boxes)}


def find(data: bytes, start: int, end: int, base: int, where: str, *args: object) -> dict[str, Box]:
    """The first child box of each type in ``data[start:end]``; a bad header raises (as
    :func:`scan` does), whatever boxes come before it."""
    found: dict[str, Box] = {}
    unpack, pos = _HEAD.unpack_from, start
    try:
        while pos < end:  # fewer than 8 bytes left: size < 8 or past the end, or no bytes at all
            size, raw = unpack(data, pos)
            if size < 8 or pos + size > end or raw == b"uuid":  # not the plain 32-bit header
                odd = _odd_header(data, pos, end, size, raw)
                if odd is None:
                    break
                size, header = odd
            else:
                header = 8
            kind = raw.decode("latin-1")
            if kind not in found:
                found[kind] = _new_box(Box, (kind, pos, pos + header, pos + size))
            pos += size
        else:
            return found
    except struct.error:  # the data itself ends within the header
        pass
    raise _bad_child(data, pos, end, base, where.format(*args) if args else where)


def full_box(data: bytes, box: Box, base: int, min_payload: int) -> tuple[int, int, int]:
    """``(version, flags, body_offset)`` of a full box whose body needs ``min_payload`` bytes."""
    if box.end - box.payload < 4 + min_payload:
        raise ProbeError(
            f"box {box.type!r} at offset {base + box.start}: {box.end - box.payload} payload bytes, "
            f"need at least {4 + min_payload}"
        )
    vf = _U32.unpack_from(data, box.payload)[0]
    return vf >> 24, vf & 0xFFFFFF, box.payload + 4


def need_bytes(box: Box, base: int, at: int, length: int, field: str, *args: object) -> None:
    """Raise ``ProbeError`` unless ``[at, at+length)`` lies inside ``box``.

    ``field`` names what needs the bytes; with ``args`` it is a ``str.format`` template, filled
    only when raising (the common, passing call builds no text).
    """
    if at + length > box.end:
        raise ProbeError(
            f"box {box.type!r} at offset {base + box.start}: {field.format(*args) if args else field} "
            f"needs {at + length - box.start} bytes but the box has {box.size}"
        )
