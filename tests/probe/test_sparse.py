"""workers.probe.sparse: a sparse view of an object's bytes, checked against the whole bytes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.probe.sparse import Missing, Need, Sparse, run_parser


@st.composite
def object_and_chunks(draw: st.DrawFn) -> tuple[bytes, list[tuple[int, bytes]]]:
    """A reference object and chunks of it (overlapping, touching, past EOF) in random order."""
    size = draw(st.integers(min_value=0, max_value=300))
    ref = draw(st.binary(min_size=size, max_size=size))
    spans = draw(
        st.lists(
            st.tuples(st.integers(min_value=0, max_value=size + 20), st.integers(min_value=0, max_value=80)),
            max_size=12,
        )
    )
    # chunks may reach past the end (junk there must be clipped, never served)
    chunks = [(off, ref[off : off + n] + b"\xee" * max(0, off + n - max(size, off))) for off, n in spans]
    return ref, chunks


def known_set(size: int, chunks: list[tuple[int, bytes]]) -> set[int]:
    return {i for off, data in chunks for i in range(off, min(off + len(data), size))}


class TestAgainstReference:
    @settings(max_examples=250, deadline=None, derandomize=True)
    @given(
        case=object_and_chunks(),
        queries=st.lists(
            st.tuples(st.integers(min_value=0, max_value=340), st.integers(min_value=0, max_value=120)),
            max_size=20,
        ),
    )
    def test_get_is_the_reference_slice_or_a_precise_missing(
        self, case: tuple[bytes, list[tuple[int, bytes]]], queries: list[tuple[int, int]]
    ) -> None:
        """get returns the reference bytes (clipped at EOF) or raises Missing inside the unknown part."""
        ref, chunks = case
        buf = Sparse(len(ref), chunks)
        known = known_set(len(ref), chunks)
        assert buf.known == len(known)
        for off, n in queries:
            end = min(off + n, len(ref))
            wanted = set(range(off, end))
            assert buf.has(off, n) == wanted.issubset(known)
            try:
                got = buf.get(off, n)
            except Missing as m:
                assert not wanted.issubset(known)
                assert off <= m.offset < end, "Missing starts inside the asked range"
                assert m.offset not in known, "Missing starts at an unknown byte"
                assert min(wanted - known) == m.offset, "it names the first unknown byte"
                assert m.length >= 1
                assert m.offset + m.length <= len(ref), "Missing stays within the file"
            else:
                assert got == ref[off:end]

    @settings(max_examples=200, deadline=None, derandomize=True)
    @given(case=object_and_chunks(), order=st.randoms(use_true_random=False))
    def test_order_of_adds_does_not_matter(
        self, case: tuple[bytes, list[tuple[int, bytes]]], order: object
    ) -> None:
        """Adding the same chunks in any order gives the same knowledge."""
        ref, chunks = case
        shuffled = list(chunks)
        order.shuffle(shuffled)  # type: ignore[attr-defined]
        a, b = Sparse(len(ref), chunks), Sparse(len(ref), shuffled)
        assert a.known == b.known
        for off in range(len(ref)):
            assert a.has(off, 1) == b.has(off, 1)

    @settings(max_examples=200, deadline=None, derandomize=True)
    @given(case=object_and_chunks())
    def test_ranges_are_kept_sorted_and_merged(self, case: tuple[bytes, list[tuple[int, bytes]]]) -> None:
        """Stored ranges are sorted, disjoint and never touch (neighbours are merged)."""
        ref, chunks = case
        buf = Sparse(len(ref), chunks)
        starts, data = buf._starts, buf._data
        assert starts == sorted(starts)
        for i in range(1, len(starts)):
            assert starts[i - 1] + len(data[i - 1]) < starts[i]
        assert all(data)


class TestSemantics:
    def test_whole_knows_everything(self) -> None:
        """``Sparse.whole`` answers any in-file range."""
        buf = Sparse.whole(b"0123456789")
        assert buf.get(2, 3) == b"234"
        assert buf.has(0, 10)
        assert buf.known == 10

    def test_get_clips_at_end_of_file(self) -> None:
        """Asking past the end returns what exists; wholly past the end returns b""."""
        buf = Sparse.whole(b"abcdef")
        assert buf.get(4, 100) == b"ef"
        assert buf.get(6, 10) == b""
        assert buf.get(600, 1) == b""
        assert buf.has(4, 100)

    def test_add_clips_data_past_end(self) -> None:
        """Bytes beyond the file size are not stored."""
        buf = Sparse(4)
        buf.add(2, b"xyzzy")
        assert buf.known == 2
        assert buf.get(2, 10) == b"xy"
        buf.add(10, b"q")
        assert buf.known == 2

    def test_missing_at_start_names_the_gap_until_the_next_known_range(self) -> None:
        """An unknown start asks for the bytes up to the next known range only."""
        buf = Sparse(100, [(50, b"k" * 10)])
        with pytest.raises(Missing) as e:
            buf.get(10, 80)
        assert (e.value.offset, e.value.length) == (10, 40)

    def test_partly_known_range_asks_for_the_rest(self) -> None:
        """A range that starts in known bytes asks from where they end."""
        buf = Sparse(100, [(0, b"k" * 20)])
        with pytest.raises(Missing) as e:
            buf.get(10, 30)
        assert (e.value.offset, e.value.length) == (20, 20)

    def test_merge_bridges_a_gap(self) -> None:
        """A chunk filling the gap between two ranges makes one range."""
        buf = Sparse(30, [(0, b"a" * 10), (20, b"c" * 10)])
        buf.add(10, b"b" * 10)
        assert buf.get(0, 30) == b"a" * 10 + b"b" * 10 + b"c" * 10
        assert len(buf._starts) == 1

    def test_overlapping_add_keeps_first_bytes(self) -> None:
        """Overlapping chunks of the same object agree; the stored bytes are the object's."""
        ref = bytes(range(64))
        buf = Sparse(64, [(8, ref[8:40]), (0, ref[0:16]), (30, ref[30:64])])
        assert buf.get(0, 64) == ref

    def test_negative_arguments_are_refused(self) -> None:
        """Negative offsets or lengths are programming errors."""
        buf = Sparse.whole(b"abc")
        with pytest.raises(ValueError, match="negative"):
            buf.get(-1, 2)
        with pytest.raises(ValueError, match="negative"):
            buf.get(0, -2)
        with pytest.raises(ValueError, match="negative"):
            buf.add(-1, b"a")

    def test_zero_length_get_is_empty(self) -> None:
        """A zero-length read never needs bytes."""
        assert Sparse(10).get(5, 0) == b""
        assert Sparse(10).has(5, 0)


class TestRunParser:
    def test_missing_becomes_need(self) -> None:
        """A parser stopped by Missing yields the Need of that range."""

        def parse(buf: Sparse) -> bytes:
            return buf.get(0, 4) + buf.get(100, 8)

        buf = Sparse(200, [(0, b"HEAD")])
        assert run_parser(parse, buf) == Need(100, 8)
        buf.add(100, b"12345678")
        assert run_parser(parse, buf) == b"HEAD12345678"

    def test_other_errors_propagate(self) -> None:
        """Only Missing is converted; a parser's own error reaches the caller."""

        def parse(buf: Sparse) -> int:
            raise KeyError("boom")

        with pytest.raises(KeyError):
            run_parser(parse, Sparse(1))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.binary(min_size=1, max_size=20)), max_size=5))
def test_prefix_is_what_is_known_from_the_start(chunks: list[tuple[int, bytes]]) -> None:
    """``prefix()``: the longest run of known bytes from offset 0, nothing when 0 is unknown."""
    buf = Sparse(80, chunks)
    prefix = buf.prefix()
    assert buf.has(0, len(prefix)) and prefix == buf.get(0, len(prefix))
    assert len(prefix) == 80 or not buf.has(len(prefix), 1)
