"""workers.batching: exact byte and item limits, linger on an injected clock, nothing lost."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.batching import JSON_ARRAY, NDJSON, Batcher, Framing


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def body(framing: Framing, items: list[bytes]) -> bytes:
    """The real document a sink sends for these items in this framing."""
    if framing == JSON_ARRAY:
        return b"[" + b",".join(items) + b"]"
    return b"".join(x + b"\n" for x in items)


def make(
    framing: Framing = JSON_ARRAY, *, max_items: int = 100, max_bytes: int = 1000, linger: float = 1.0
) -> tuple[Batcher[bytes], FakeClock]:
    clock = FakeClock()
    b: Batcher[bytes] = Batcher(
        max_items=max_items, max_bytes=max_bytes, linger=linger, size_of=len, clock=clock, framing=framing
    )
    return b, clock


def item(i: int, size: int) -> bytes:
    """A JSON string of ``size`` bytes (more if its sequence number needs it)."""
    tag = json.dumps(str(i))
    return (tag[:-1] + "x" * max(0, size - len(tag)) + '"').encode()


ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(min_value=0, max_value=120)),
        st.tuples(st.just("tick"), st.floats(min_value=0, max_value=2)),
        st.tuples(st.just("due"), st.just(0)),
        st.tuples(st.just("flush"), st.just(0)),
    ),
    max_size=120,
)


class TestLimitsProperty:
    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(
        framing=st.sampled_from([JSON_ARRAY, NDJSON]),
        max_items=st.integers(min_value=1, max_value=12),
        max_bytes=st.integers(min_value=40, max_value=400),
        program=ops,
    )
    def test_batches_respect_limits_and_keep_order(
        self, framing: Framing, max_items: int, max_bytes: int, program: list[tuple[str, float]]
    ) -> None:
        """Batches keep max_items and max_bytes (framed and real body); items come out once, in order."""
        b, clock = make(framing, max_items=max_items, max_bytes=max_bytes, linger=1.0)
        added: list[bytes] = []
        out: list[list[bytes]] = []
        for n, (op, arg) in enumerate(program):
            if op == "add":
                x = item(n, 3 + int(arg))
                if not b.fits_alone(x):
                    with pytest.raises(ValueError, match="exceeds max_bytes"):
                        b.add(x)
                    continue
                added.append(x)
                out.extend(b.add(x))
            elif op == "tick":
                clock.now += arg
            elif op == "due":
                if (got := b.due()) is not None:
                    out.append(got)
            elif (got := b.flush()) is not None:
                out.append(got)
        if (rest := b.flush()) is not None:
            out.append(rest)
        assert len(b) == 0
        for batch in out:
            assert batch, "no empty batch is ever emitted"
            assert len(batch) <= max_items
            assert framing.size(len(batch), sum(map(len, batch))) <= max_bytes
            assert len(body(framing, batch)) <= max_bytes
        assert [x for batch in out for x in batch] == added

    @settings(max_examples=200, deadline=None, derandomize=True)
    @given(sizes=st.lists(st.integers(min_value=3, max_value=60), min_size=1, max_size=40))
    def test_ndjson_framing_is_exact(self, sizes: list[int]) -> None:
        """NDJSON framed size equals the length of the real body."""
        items = [item(i, s) for i, s in enumerate(sizes)]
        assert NDJSON.size(len(items), sum(map(len, items))) == len(body(NDJSON, items))

    @settings(max_examples=200, deadline=None, derandomize=True)
    @given(sizes=st.lists(st.integers(min_value=3, max_value=60), min_size=1, max_size=40))
    def test_json_array_framing_never_underestimates(self, sizes: list[int]) -> None:
        """The JSON array framing is at most one byte above the real body, never below."""
        items = [item(i, s) for i, s in enumerate(sizes)]
        real = len(body(JSON_ARRAY, items))
        assert real <= JSON_ARRAY.size(len(items), sum(map(len, items))) <= real + 1
        json.loads(body(JSON_ARRAY, items))


class TestAdd:
    def test_full_by_count_is_returned_at_once(self) -> None:
        """The item that reaches max_items closes the batch immediately."""
        b, _ = make(max_items=3)
        assert b.add(b'"a"') == []
        assert b.add(b'"b"') == []
        assert b.add(b'"c"') == [[b'"a"', b'"b"', b'"c"']]
        assert len(b) == 0

    def test_item_that_would_overflow_bytes_starts_a_new_batch(self) -> None:
        """An item that does not fit is not split off: the open batch is closed, the item opens the next."""
        b, _ = make(NDJSON, max_bytes=10)
        assert b.add(b'"abc"') == []  # 5 + 1 newline = 6
        assert b.add(b'"de"') == [[b'"abc"']]  # 6 + 4 + 1 = 11 > 10
        assert len(b) == 1

    def test_exactly_at_the_byte_limit_is_accepted(self) -> None:
        """A batch whose real NDJSON body is exactly max_bytes stays open."""
        b, _ = make(NDJSON, max_bytes=10)
        assert b.add(b'"ab"') == []
        assert b.add(b'"cd"') == []
        assert len(body(NDJSON, [b'"ab"', b'"cd"'])) == 10
        assert len(b) == 2
        assert b.add(b'"e"') == [[b'"ab"', b'"cd"']]

    def test_one_add_can_return_two_batches(self) -> None:
        """With max_items=1 an item that overflows bytes closes the open batch and its own."""
        b, _ = make(max_items=1, max_bytes=20)
        assert b.add(b'"a"') == [[b'"a"']]
        b2, _ = make(max_items=2, max_bytes=12)
        b2.add(b'"aaaa"')  # 2 + 6 + 1 = 9
        assert b2.add(b'"bbbbbb"') == [[b'"aaaa"']]  # 2 + 14 + 2 > 12; new batch holds 1

    def test_oversize_item_is_refused_and_batch_untouched(self) -> None:
        """An item that can never fit raises with its size and the limit; the open batch is kept."""
        b, _ = make(max_bytes=20)
        b.add(b'"a"')
        big = b'"' + b"x" * 30 + b'"'
        assert not b.fits_alone(big)
        with pytest.raises(ValueError, match=r"item of 32 bytes exceeds max_bytes=20"):
            b.add(big)
        assert b.flush() == [b'"a"']

    def test_fits_alone_accounts_for_framing(self) -> None:
        """An item fits alone exactly when its framed size is within max_bytes."""
        b, _ = make(JSON_ARRAY, max_bytes=10)
        assert b.fits_alone(b"x" * 7)  # 2 + 7 + 1
        assert not b.fits_alone(b"x" * 8)

    @pytest.mark.parametrize(("max_items", "max_bytes"), [(0, 100), (1, 3), (1, 1)])
    def test_impossible_limits_are_refused(self, max_items: int, max_bytes: int) -> None:
        """A batcher that could never emit anything is a construction error."""
        with pytest.raises(ValueError, match="max_"):
            make(max_items=max_items, max_bytes=max_bytes)


class TestLinger:
    def test_due_only_after_linger_from_the_first_item(self) -> None:
        """A batch is due ``linger`` seconds after its first item, not its last."""
        b, clock = make(linger=2.0)
        b.add(b'"a"')
        assert b.deadline() == 1002.0
        clock.now += 1.5
        b.add(b'"b"')
        assert b.due() is None
        assert b.deadline() == 1002.0
        clock.now += 0.5
        assert b.due() == [b'"a"', b'"b"']
        assert b.due() is None
        assert b.deadline() is None

    def test_empty_batcher_is_never_due(self) -> None:
        """Time passing with nothing open yields nothing."""
        b, clock = make(linger=0.0)
        clock.now += 100
        assert b.due() is None
        assert b.flush() is None

    def test_zero_linger_is_due_immediately(self) -> None:
        """With linger 0 an open batch is due on the next check."""
        b, _ = make(linger=0.0)
        b.add(b'"a"')
        assert b.due() == [b'"a"']

    def test_new_batch_restarts_the_clock(self) -> None:
        """After a full batch is handed out, the next batch's linger starts at its own first item."""
        b, clock = make(max_items=2, linger=5.0)
        b.add(b'"a"')
        assert b.add(b'"b"') == [[b'"a"', b'"b"']]
        clock.now += 4
        b.add(b'"c"')
        assert b.deadline() == 1009.0
        clock.now += 4.9
        assert b.due() is None
        clock.now += 0.1
        assert b.due() == [b'"c"']

    def test_flush_ignores_linger(self) -> None:
        """Drain hands out the open batch whatever its age."""
        b, _ = make(linger=60)
        b.add(b'"a"')
        assert b.flush() == [b'"a"']
        assert len(b) == 0
