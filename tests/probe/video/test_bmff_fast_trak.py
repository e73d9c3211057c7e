"""The one-pass ``trak`` reader (``bmff_fast``) gives what the reference ``parse_trak`` gives,
and the plain top-level walk over the head bytes finds what the reference walk finds.

For every ``trak`` of every corpus file, and of corpus files whose ``trak`` bytes are mutated
(random bytes anywhere; box trees edited and written back with consistent sizes: boxes cut
short, grown, removed, repeated, given 64-bit or ``uuid`` headers, ``stco`` made ``co64``,
header fields, versions and entry counts set to edge values),
:func:`workers.probe.bmff_fast.fast_trak` either declines (``None``) or answers exactly as the
reference does: the same ``Track`` field for field, or the same ``ProbeError`` text. The
corpus check also makes sure the fast reader takes the common files (else it only costs time).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from workers.probe import bmff
from workers.probe.bmff_boxes import Box
from workers.probe.bmff_fast import fast_trak
from workers.probe.bmff_track import Track, parse_trak
from workers.probe.media import ProbeError
from workers.probe.sparse import Sparse

SETTINGS = settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
MOOV_CLIPS = ("h264_25_first", "hevc_hvc1", "hevc_hev1", "audio_first", "fragmented_av", "vfr", "mov",
              "bframes_editlist", "sar_sps_only", "big_first", "m4a_aac", "mpeg4", "rotation_90")  # fmt: skip
EDGE_VALUES = (
    0,
    1,
    2,
    7,
    8,
    9,
    15,
    16,
    20,
    86,
    0xFF,
    0x7FFFFFFF,
    0x80000000,
    0xFFFFFFFF,
    0x01000000,
    0x02000000,
)
EDGE_BYTES = (0, 1, 2, 3, 0x7F, 0x80, 0xFE, 0xFF)
CUTS = (0, 3, 4, 7, 8, 11, 12, 15, 16, 19, 20, 23, 24, 27, 28, 77, 78, 83, 84)
WORD_OFFSETS = (0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 72, 76)
Boxes = Callable[..., list[tuple[str, int, int, int]]]
CONTAINERS = {"moov", "trak", "mdia", "minf", "stbl", "edts", "stsd", "avc1", "hvc1", "hev1", "mp4v"}


def _outcome(fn: Any, *args: Any) -> Track | str | None:
    try:
        result: Track | None = fn(*args)
    except ProbeError as e:
        return f"error: {e}"
    return result


def _traks(boxes: Boxes, data: bytes) -> tuple[int, bytes, list[Box]]:
    """``(moov offset, moov bytes, its trak boxes)`` as the parser sees them."""
    moov = next(b for b in boxes(data) if b[0] == "moov")
    start, end = moov[1], min(moov[3], len(data))
    body = data[start:end]
    traks = [Box("trak", s - start, s - start + h, e - start) for t, s, h, e in boxes(data, start + 8, end)]
    return start, body, [b for b in traks if b.type == "trak" and b.end <= len(body)]


def _compare(boxes: Boxes, data: bytes, edited: bytes | None = None) -> int:
    """Compare the two readers on every trak of ``data`` (or of ``edited``, the same bytes
    changed in place: the trak boxes are found in ``data``, the test-side lister trusts sizes);
    the number the fast one answered."""
    base, body, traks = _traks(boxes, data)
    if edited is not None:
        body = edited[base : base + len(body)]
    answered = 0
    for trak in traks:
        fast = _outcome(fast_trak, body, trak.payload, trak.end, base)
        if fast is None:
            continue
        assert fast == _outcome(parse_trak, body, trak, base)
        answered += 1
    return answered


def _draw_clip(
    corpus: dict[str, Any], boxes: Boxes, data: st.DataObject
) -> tuple[bytes, tuple[str, int, int, int]]:
    """A corpus clip with a ``moov``, drawn, and its ``moov`` box."""
    raw: bytes = corpus[data.draw(st.sampled_from(MOOV_CLIPS))].data
    return raw, next(b for b in boxes(raw) if b[0] == "moov")


@pytest.mark.parametrize("name", MOOV_CLIPS)
def test_fast_trak_equals_reference_on_the_corpus(corpus: dict[str, Any], boxes: Boxes, name: str) -> None:
    assert _compare(boxes, corpus[name].data) >= 1  # the common files take the fast path


@SETTINGS
@given(data=st.data())
def test_fast_trak_equals_reference_on_random_bytes(
    corpus: dict[str, Any], boxes: Boxes, data: st.DataObject
) -> None:
    original, moov = _draw_clip(corpus, boxes, data)
    raw = bytearray(original)
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(moov[1] + 8, moov[3] - 1))
        raw[at] = data.draw(st.integers(0, 255))
    _compare(boxes, original, bytes(raw))


class Node:
    """A box for editing: ``fixed`` bytes before the children (or the whole payload of a
    leaf), the children of a container, and how its header is written."""

    def __init__(self, kind: bytes, fixed: bytes, kids: list[Node] | None) -> None:
        self.kind, self.fixed, self.kids, self.header = kind, fixed, kids, "plain"

    def write(self) -> bytes:
        body = self.fixed + b"".join(k.write() for k in self.kids or ())
        if self.header == "large":
            return struct.pack(">I4sQ", 1, self.kind, 16 + len(body)) + body
        if self.header == "uuid":
            return struct.pack(">I4s", 24 + len(body), b"uuid") + bytes(16) + body
        return struct.pack(">I4s", 8 + len(body), self.kind) + body

    def walk(self) -> list[Node]:
        return [self, *(n for k in self.kids or () for n in k.walk())]


FIXED = {"stsd": 8, "avc1": 78, "hvc1": 78, "hev1": 78, "mp4v": 78}


def _node(boxes: Boxes, data: bytes, kind: str, start: int, header: int, end: int) -> Node:
    if kind not in CONTAINERS:
        return Node(kind.encode("latin-1"), data[start + header : end], None)
    at = start + header + FIXED.get(kind, 0)
    kids = [_node(boxes, data, *b) for b in boxes(data, at, end) if b[3] <= end]
    return Node(kind.encode("latin-1"), data[start + header : at], kids)


def _put(fixed: bytes, at: int, raw: bytes) -> bytes:
    return fixed[:at] + raw + fixed[at + len(raw) :]


def _edit(node: Node, parent: Node, how: str, arg: int) -> None:
    """One edit of ``node`` (a child of ``parent``); ``arg`` is a length, offset or position."""
    if how == "cut":
        node.fixed = node.fixed[:arg]
    elif how == "grow":
        node.fixed += bytes(arg)
    elif how == "word":  # arg: offset * 16 + index into EDGE_VALUES
        node.fixed = _put(node.fixed, arg // 16, struct.pack(">I", EDGE_VALUES[arg % 16]))
    elif how == "byte":  # arg: offset * 8 + index into EDGE_BYTES
        node.fixed = _put(node.fixed, arg // 8, bytes([EDGE_BYTES[arg % 8]]))
    elif how in ("large", "uuid"):
        node.header = how
    elif how == "drop":
        assert parent.kids is not None
        parent.kids.remove(node)
    elif how == "repeat":
        assert parent.kids is not None
        twin = Node(node.kind, node.fixed, None if node.kids is None else list(node.kids))
        parent.kids.insert(min(arg, len(parent.kids)), twin)
    elif how == "co64" and node.kind == b"stco" and len(node.fixed) >= 8:  # same offsets, 64-bit
        count = (len(node.fixed) - 8) // 4
        offsets = struct.unpack_from(f">{count}I", node.fixed, 8)
        node.kind, node.fixed = b"co64", node.fixed[:8] + struct.pack(f">{count}Q", *offsets)


def _single_edits(node: Node) -> list[tuple[str, int]]:
    """Every single edit worth trying on ``node``."""
    size = len(node.fixed)
    edits = [("cut", n) for n in CUTS if n < size] + [("cut", size - 1)] if size and node.kids is None else []
    edits += [("word", o * 16 + v) for o in WORD_OFFSETS if o + 4 <= size for v in range(len(EDGE_VALUES))]
    edits += [("byte", o * 8 + v) for o in (0, 3) if o < size for v in range(len(EDGE_BYTES))]
    edits += [("grow", 4), ("large", 0), ("uuid", 0), ("drop", 0), ("repeat", 0), ("repeat", 99)]
    return [*edits, ("co64", 0)] if node.kind == b"stco" else edits


def _check(body: bytes) -> None:
    fast = _outcome(fast_trak, body, 8, len(body), 1000)
    if fast is not None:
        assert fast == _outcome(parse_trak, body, Box("trak", 0, 8, len(body)), 1000)


@pytest.mark.parametrize("name", MOOV_CLIPS)
def test_fast_trak_equals_reference_after_any_single_edit(
    corpus: dict[str, Any], boxes: Boxes, name: str
) -> None:
    """Every box of every trak, cut at each length, each header field set to each edge value..."""
    raw = corpus[name].data
    moov = next(b for b in boxes(raw) if b[0] == "moov")
    for trak_box in (b for b in boxes(raw, moov[1] + 8, moov[3]) if b[0] == "trak"):
        nodes = _node(boxes, raw, *trak_box).walk()
        for index, node in enumerate(nodes[1:], 1):
            for how, arg in _single_edits(node):
                trak = _node(boxes, raw, *trak_box)
                edited = trak.walk()
                parent = next(p for p in edited if any(k is edited[index] for k in p.kids or ()))
                _edit(edited[index], parent, how, arg)
                _check(trak.write())


@SETTINGS
@given(data=st.data())
def test_fast_trak_equals_reference_on_edited_trees(
    corpus: dict[str, Any], boxes: Boxes, data: st.DataObject
) -> None:
    """A few edits at once."""
    raw, moov = _draw_clip(corpus, boxes, data)
    traks = [b for b in boxes(raw, moov[1] + 8, moov[3]) if b[0] == "trak"]
    trak = _node(boxes, raw, *data.draw(st.sampled_from(traks)))
    for _ in range(data.draw(st.integers(1, 3))):
        node, parent = data.draw(st.sampled_from([(n, p) for p in trak.walk() for n in p.kids or ()]))
        how, arg = data.draw(st.sampled_from(_single_edits(node)))
        _edit(node, parent, how, arg)
    _check(trak.write())


def _find_moov_outcome(data: bytes) -> object:
    try:
        return bmff.walk_top_level(Sparse.whole(data))
    except ProbeError as e:
        return f"error: {e}"


@SETTINGS
@given(data=st.data())
def test_moov_in_head_equals_find_moov(corpus: dict[str, Any], data: st.DataObject) -> None:
    """The plain top-level walk over the head bytes finds what ``_find_moov`` finds."""
    raw = bytearray(corpus[data.draw(st.sampled_from(MOOV_CLIPS))].data)
    for _ in range(data.draw(st.integers(0, 3))):
        at = data.draw(st.integers(0, 40))
        if data.draw(st.booleans()):
            struct.pack_into(">I", raw, at, data.draw(st.sampled_from(EDGE_VALUES)))
        else:
            raw[at] = data.draw(st.sampled_from(EDGE_BYTES))
    cut = data.draw(st.sampled_from([len(raw), 64 * 1024, 100, 40]))
    found = bmff._moov_in_head(bytes(raw[:cut]), len(raw))
    if found is not None:
        assert found == _find_moov_outcome(bytes(raw))


TOP_KINDS = (b"ftyp", b"free", b"mdat", b"moov", b"uuid", b"\x00\x01ab")
SIZE_FIELDS = st.sampled_from((0, 1, 8))  # 0: to the end, 1: a 64-bit size follows, else plain


@settings(max_examples=2000, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(TOP_KINDS), st.integers(0, 30), SIZE_FIELDS), max_size=4),
    st.integers(0, 300),
    st.integers(0, 64),
)
@example([(b"ftyp", 2, 8), (b"moov", 30, 8)], 300, 0)  # ftyp too short for a brand
@example([(b"uuid", 4, 8), (b"moov", 30, 8)], 300, 0)  # uuid shorter than its header
@example([(b"\x00\x01ab", 4, 8), (b"moov", 30, 8)], 300, 0)  # not a box type
@example([(b"moov", 30, 8)], 300, 3)  # past the end of the file
def test_moov_in_head_equals_find_moov_on_generated_files(
    spec: list[tuple[bytes, int, int]], cut: int, past: int
) -> None:
    """Top-level boxes of every size, 64-bit and size-0 headers, junk types, short heads."""
    out = b""
    for kind, length, size_field in spec:
        payload = bytes(range(length))
        if size_field == 1:
            out += struct.pack(">I4sQ", 1, kind, 16 + length) + payload
        elif size_field == 0:
            out += struct.pack(">I4s", 0, kind) + payload
        else:
            out += struct.pack(">I4s", 8 + length, kind) + payload
    data = out[: max(0, len(out) - past)] if past < 8 else out + bytes(past)  # cut short or padded
    found = bmff._moov_in_head(data[:cut], len(data))
    if found is not None:
        assert found == _find_moov_outcome(data)
