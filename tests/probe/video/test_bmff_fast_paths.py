"""The probe's fast paths give what the plain, one-step-at-a-time reading gives, errors included.

* ``BitReader.ue`` counts leading zeros from the bit length of what is left; the reference
  reads them one bit at a time (the definition in H.264 9.1).
* ``bmff_boxes.walk``/``children`` read child box headers in one tight loop; the reference
  decodes each header by the ISO BMFF rules and names the first bad one the same way.
* ``bmff._movie_timescale`` reads a version 0 ``mvhd`` in one call; the reference is
  ``mdhd_or_mvhd_times``.
* ``bmff_timing``: one ``stts`` run takes its decode times from a ``range``; the same run cut
  in two takes the general per-sample path, and both must give the same timing.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.probe.bmff import _movie_timescale
from workers.probe.bmff_boxes import Box, children, find, walk
from workers.probe.bmff_timing import _pts_list, track_timing
from workers.probe.bmff_track import Edit, mdhd_or_mvhd_times
from workers.probe.h26x import BitReader
from workers.probe.media import ProbeError

SETTINGS = settings(max_examples=300, deadline=None)


def ue_bit_by_bit(r: BitReader, field: str) -> int:
    zeros = 0
    while r.u(1, field) == 0:
        zeros += 1
        if zeros > 31:
            raise ProbeError(f"{r.what}: exp-Golomb code of {field} longer than 32 bits")
    return (1 << zeros) - 1 + r.u(zeros, field)


def _read_all(data: bytes, skip: int, reader: str) -> list[int | str]:
    """Exp-Golomb codes read until an error, after ``skip`` bits; the error text ends the list."""
    r = BitReader(data, "test SPS")
    out: list[int | str] = []
    try:
        r.skip(min(skip, len(data) * 8), "lead")
        for _ in range(64):
            out.append(r.ue("code") if reader == "fast" else ue_bit_by_bit(r, "code"))
            out.append(r.u(1, "marker"))
    except ProbeError as e:
        out.append(str(e))
    return out


@SETTINGS
@given(st.binary(max_size=24), st.integers(0, 40))
def test_ue_matches_bit_by_bit_reading(data: bytes, skip: int) -> None:
    assert _read_all(data, skip, "fast") == _read_all(data, skip, "reference")


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"\x00\x00\x00\x00\x80", "longer than 32 bits"),  # 32 zeros then a one
        (b"\x00\x00\x00", "bitstream ends at bit 24 while reading code"),  # no one bit at all
        (b"\x00\x01", "bitstream ends at bit 16 while reading code"),  # 15 zeros, 1, 0 bits left
    ],
)
def test_ue_errors(data: bytes, error: str) -> None:
    with pytest.raises(ProbeError, match=error):
        BitReader(data, "test SPS").ue("code")


def test_ue_values() -> None:
    # 1 -> 0, 010 -> 1, 011 -> 2, 00100 -> 3, then 0001000 -> 7: 1 010 011 00100 0001000
    r = BitReader(int("1010011001000001000" + "0" * 5, 2).to_bytes(3, "big"), "test")
    assert [r.ue("v") for _ in range(5)] == [0, 1, 2, 3, 7]
    longest = BitReader(b"\x00\x00\x00\x01\xff\xff\xff\xfe", "test")  # 31 zeros, 1, 31 ones
    assert longest.ue("v") == (1 << 32) - 2


@SETTINGS
@given(st.lists(st.sampled_from([b"\x00", b"\x00\x00\x00", b"\x01", b"\x80", b"\xff"]), max_size=12))
def test_ue_matches_bit_by_bit_on_long_zero_runs(parts: list[bytes]) -> None:
    data = b"".join(parts)
    assert _read_all(data, 0, "fast") == _read_all(data, 0, "reference")


def reference_children(data: bytes, start: int, end: int, base: int, where: str) -> list[object]:
    """Each box as ``(type, start, payload, end)`` up to the first bad header, then its error."""
    out: list[object] = []
    pos = start
    while pos < end:
        if end - pos < 8:
            out.append(f"{where}: {end - pos} stray bytes at offset {base + pos} (box header is 8)")
            return out
        size, raw = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if end - pos < 16:
                out.append(f"{where}: 64-bit box header at offset {base + pos} truncated")
                return out
            size, header = struct.unpack_from(">Q", data, pos + 8)[0], 16
        elif size == 0:
            size = end - pos
        kind = raw.decode("latin-1")
        header += 16 if kind == "uuid" else 0
        if size < header or pos + size > end:
            tail = f"< header size {header}" if size < header else f"runs past its end at {base + end}"
            out.append(f"box {kind!r} at offset {base + pos} in {where}: size {size} {tail}")
            return out
        out.append((kind, pos, pos + header, pos + size))
        pos += size
    return out


def _fast_children(data: bytes, start: int, end: int) -> list[object]:
    out: list[object] = []
    try:
        out.extend(tuple(b) for b in children(data, start, end, 1000, "test"))
    except ProbeError as e:
        out.append(str(e))
    return out


_HEADER = st.one_of(
    st.tuples(st.integers(0, 40), st.sampled_from([b"free", b"uuid", b"trak", b"\x00\x01ab"])).map(
        lambda t: struct.pack(">I4s", *t)
    ),
    st.tuples(st.integers(0, 60), st.sampled_from([b"mdat", b"uuid"])).map(
        lambda t: struct.pack(">I4sQ", 1, t[1], t[0])
    ),
    st.binary(min_size=1, max_size=12),
)


@SETTINGS
@given(st.lists(_HEADER, max_size=8), st.integers(0, 4))
def test_child_walk_matches_reference(parts: list[bytes], start: int) -> None:
    data = b"".join(parts)
    start = min(start, len(data))
    expected = reference_children(data, start, len(data), 1000, "test")
    assert _fast_children(data, start, len(data)) == expected
    boxes, error = walk(data, start, len(data), 1000, "test")
    assert [tuple(b) for b in boxes] == [e for e in expected if isinstance(e, tuple)]
    assert (error is None) == isinstance(expected[-1] if expected else (), tuple)
    if error is None:
        assert find(data, start, len(data), 1000, "test") == {
            b.type: b for b in reversed(boxes)
        }  # first of each type


def test_children_yields_the_good_boxes_before_raising() -> None:
    data = struct.pack(">I4s", 8, b"free") + struct.pack(">I4s", 100, b"trak")
    seen = []
    with pytest.raises(ProbeError, match=r"box 'trak' at offset 8 in moov: size 100 runs past its end at 16"):
        for box in children(data, 0, len(data), 0, "moov"):
            seen.append(box.type)
    assert seen == ["free"]


_CTTS = st.lists(st.tuples(st.integers(0, 3), st.integers(-3000, 3000)), max_size=40)


@SETTINGS
@given(
    n=st.integers(0, 120),
    delta=st.integers(-5, 3000),
    split=st.integers(0, 120),
    ctts=_CTTS,
    edits=st.none() | st.lists(st.tuples(st.integers(0, 9000), st.integers(-1, 4000)), max_size=3),
)
def test_constant_rate_timing_matches_the_general_path(
    n: int, delta: int, split: int, ctts: list[tuple[int, int]], edits: list[tuple[int, int]] | None
) -> None:
    """One stts run (a range of decode times) gives what the same run cut in two gives."""
    split = min(split, n)
    whole, cut = [(n, delta)], [(split, delta), (n - split, delta)]
    assert _pts_list(whole, ctts) == _pts_list(cut, ctts)
    edit_list = None if edits is None else [Edit(d, t) for d, t in edits]

    def timing(stts: list[tuple[int, int]]) -> object:
        return track_timing(
            stts=stts, ctts=ctts, timescale=30000, media_duration=0, edits=edit_list, movie_timescale=1000
        )

    assert timing(whole) == timing(cut)


@SETTINGS
@given(
    st.sampled_from([0, 1, 2, 0xFF]),
    st.sampled_from([0, 1, 1000, 90000, 0xFFFFFFFF]),
    st.binary(max_size=40),
    st.integers(0, 2),
)
def test_movie_timescale_equals_the_reference(version: int, timescale: int, rest: bytes, header: int) -> None:
    """Any version, timescale and body length (cut anywhere), behind a 0, 8 or 16-byte header."""
    body = struct.pack(">I8xI", version << 24, timescale) + rest
    body = body[: len(rest) + 4] if len(rest) < 16 else body  # short bodies too
    data = b"\x00" * (8 * header) + body
    box = Box("mvhd", 0, 8 * header, len(data))

    def outcome(read: Callable[[], int]) -> int | str:
        try:
            return read()
        except ProbeError as e:
            return f"error: {e}"

    assert outcome(lambda: _movie_timescale(data, box, 100)) == outcome(
        lambda: mdhd_or_mvhd_times(data, box, 100)[0]
    )
