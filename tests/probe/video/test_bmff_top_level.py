"""Top-level box headers decoded in place from the known prefix are what ``top_level_header``
decodes through ``Sparse.get``: the same box, or the same error, for any header bytes."""

from __future__ import annotations

import struct
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from workers.probe.bmff_boxes import known_top_level_header, top_level_header
from workers.probe.media import ProbeError
from workers.probe.sparse import Sparse

_HEADER = st.one_of(
    st.tuples(st.integers(0, 300), st.sampled_from([b"free", b"uuid", b"moov", b"\x00\x01ab", b"mdat"])).map(
        lambda t: struct.pack(">I4s", *t)
    ),
    st.tuples(st.integers(0, 300), st.sampled_from([b"mdat", b"uuid"])).map(
        lambda t: struct.pack(">I4sQ", 1, t[1], t[0])
    ),
    st.binary(min_size=8, max_size=16),
)


def _outcome(decode: Callable[[], object]) -> object:
    try:
        return decode()
    except ProbeError as e:
        return str(e)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40), _HEADER, st.binary(max_size=300))
def test_in_place_header_matches_top_level_header(before: bytes, header: bytes, after: bytes) -> None:
    data = before + header + after
    buf = Sparse.whole(data)
    offset = len(before)
    in_place = _outcome(lambda: known_top_level_header(buf.prefix(), offset, buf.size))
    if in_place is None:  # too close to the end to be sure the header is all there
        assert offset + 32 > len(data)
        return
    assert in_place == _outcome(lambda: top_level_header(buf, offset, after_media=False))
