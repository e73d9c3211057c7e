"""Deliverer decisions with an in-memory sink: retries, give-backs, splitting, cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.core.config import SinkConfig
from daemon.sinks.base import Batch, BatchItem, ItemResult, PermanentError, TransientError, batch_id
from daemon.sinks.delivery import Deliverer, DeliveryLimits

LIMITS = DeliveryLimits(requests_per_second=1e6, burst=1e6, max_retries=3, deadline=5.0, retry_budget=1.0)


class ScriptedSink:
    """Answers each call with ``answer(call_number, batch)``; records every batch it saw."""

    name = "scripted"

    def __init__(self, answer: Callable[[int, Batch], list[ItemResult]]) -> None:
        self.answer = answer
        self.calls: list[Batch] = []
        self.block: asyncio.Event | None = None

    async def deliver(self, batch: Batch) -> list[ItemResult]:
        self.calls.append(batch)
        if self.block is not None:
            await self.block.wait()
        return self.answer(len(self.calls), batch)

    async def check(self) -> None:
        return None


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Let other tasks run until ``condition`` holds (bounded)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0)


def deliverer(sink: ScriptedSink, limits: DeliveryLimits = LIMITS) -> Deliverer:
    return Deliverer(sink, Deliverer.endpoint_for(sink.name, limits), limits, random_source=lambda: 0.0)


def batch(*keys: str) -> Batch:
    return Batch.of([BatchItem(k, "IMAGE", msgspec.json.encode({"key": k})) for k in keys])


def ok(b: Batch) -> list[ItemResult]:
    return [ItemResult(key=i.key, status="accepted") for i in b.items]


async def test_items_the_sink_marks_retryable_are_retried_alone() -> None:
    def answer(n: int, b: Batch) -> list[ItemResult]:
        if n == 1:
            return [
                ItemResult(key="a", status="accepted"),
                ItemResult(key="b", status="retryable", reason="busy"),
            ]
        return ok(b)

    sink = ScriptedSink(answer)
    d = deliverer(sink)
    results = await d.deliver(batch("a", "b"))
    assert sorted((r.key, r.status) for r in results) == [("a", "accepted"), ("b", "accepted")]
    assert [c.id for c in sink.calls] == [batch_id(["a", "b"]), batch_id(["b"])]
    assert d.stats.retries == 1


async def test_gives_back_after_max_retries_with_the_last_error() -> None:
    def answer(n: int, b: Batch) -> list[ItemResult]:
        raise TransientError(f"HTTP 502 attempt {n}", status=502)

    sink = ScriptedSink(answer)
    d = deliverer(sink)
    results = await d.deliver(batch("a", "b"))
    assert len(sink.calls) == 4  # 1 + max_retries
    assert {r.status for r in results} == {"retryable"}
    assert results[0].reason == "gave up after 3 retries: HTTP 502 attempt 4"
    assert d.stats.requests == {"transient_502": 4} and d.stats.given_back == 1
    assert d.name == "scripted"
    assert repr(d) == "<Deliverer scripted circuit=closed limit=8 in_flight=0 retries=3 given_back=1>"


async def test_retry_after_beyond_the_deadline_gives_back_at_once() -> None:
    def answer(n: int, b: Batch) -> list[ItemResult]:
        raise TransientError("HTTP 429", status=429, retry_after=3600.0)

    sink = ScriptedSink(answer)
    d = deliverer(sink, msgspec.structs.replace(LIMITS, retry_after_cap=120.0))
    results = await d.deliver(batch("a"))
    assert len(sink.calls) == 1
    assert results[0].status == "retryable"
    assert results[0].reason == "delivery deadline reached: HTTP 429"
    assert results[0].retry_after == pytest.approx(120.0, abs=0.1)  # the capped pause
    assert d.endpoint.paused_for() > 100  # every other worker waits too
    assert d.stats.pauses == 1
    later = await d.deliver(batch("b"))  # nothing is sent into a pause that outlasts the deadline
    assert len(sink.calls) == 1
    assert later[0].reason == "endpoint paused by Retry-After past the delivery deadline"
    assert later[0].retry_after is not None and later[0].retry_after > 100


async def test_permanent_error_without_split_status_rejects_the_whole_batch() -> None:
    def answer(n: int, b: Batch) -> list[ItemResult]:
        raise PermanentError("HTTP 401: bad token", status=401)

    sink = ScriptedSink(answer)
    results = await deliverer(sink).deliver(batch("a", "b", "c"))
    assert len(sink.calls) == 1
    assert [(r.status, r.reason) for r in results] == [("rejected", "HTTP 401: bad token")] * 3


async def test_split_finds_each_bad_item_with_a_binary_search() -> None:
    bad = {"k13", "k42"}

    def answer(n: int, b: Batch) -> list[ItemResult]:
        found = sorted(bad & {i.key for i in b.items})
        if found:
            raise PermanentError(f"HTTP 422: item {found[0]} invalid", status=422)
        return ok(b)

    sink = ScriptedSink(answer)
    d = deliverer(sink)
    results = {r.key: r for r in await d.deliver(batch(*(f"k{i}" for i in range(64))))}
    assert {k for k, r in results.items() if r.status == "rejected"} == bad
    assert results["k13"].reason == "HTTP 422: item k13 invalid"
    assert sum(r.status == "accepted" for r in results.values()) == 62
    assert len(sink.calls) <= 1 + 2 * 2 * 6  # two searches over log2(64) levels
    assert d.stats.splits > 0


async def test_an_empty_batch_costs_nothing() -> None:
    sink = ScriptedSink(lambda n, b: ok(b))
    assert await deliverer(sink).deliver(Batch.of([])) == []
    assert sink.calls == []


async def test_cancellation_frees_the_concurrency_slot() -> None:
    sink = ScriptedSink(lambda n, b: ok(b))
    sink.block = asyncio.Event()
    d = deliverer(sink, msgspec.structs.replace(LIMITS, max_concurrency=1))
    task = asyncio.create_task(d.deliver(batch("a")))
    waiting = asyncio.create_task(d.deliver(batch("b")))
    await until(lambda: len(sink.calls) == 1)
    assert d.stats.in_flight == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    sink.block.set()
    assert (await asyncio.wait_for(waiting, 5))[0].status == "accepted"
    assert d.stats.in_flight == 0


async def test_deadline_while_waiting_for_a_slot_gives_back_without_a_verdict() -> None:
    sink = ScriptedSink(lambda n, b: ok(b))
    sink.block = asyncio.Event()
    d = deliverer(sink, msgspec.structs.replace(LIMITS, max_concurrency=1, deadline=0.2))
    busy = asyncio.create_task(d.deliver(batch("a")))
    await until(lambda: len(sink.calls) == 1)
    late = await d.deliver(batch("b"))  # the only slot is taken for longer than the deadline
    assert late[0].status == "retryable"
    assert late[0].reason == "delivery deadline reached waiting for a concurrency slot"
    assert [c.id for c in sink.calls] == [batch_id(["a"])]
    sink.block.set()
    assert (await busy)[0].status == "accepted"  # a call in progress is never cut off
    assert d.ready() and d.stats.concurrency_limit == 1


def test_limits_from_config_and_validation() -> None:
    cfg = SinkConfig(
        type="http",
        url="http://127.0.0.1:1/x",
        requests_per_second=50.0,
        items_per_second=5000.0,
        max_concurrency=3,
        max_retries=4,
        retry_budget=0.1,
        request_timeout=10.0,
        retry_after_cap=60.0,
    )
    lim = DeliveryLimits.from_config(cfg)
    assert (lim.requests_per_second, lim.items_per_second, lim.max_concurrency) == (50.0, 5000.0, 3)
    assert (lim.max_retries, lim.retry_budget, lim.retry_after_cap) == (4, 0.1, 60.0)
    assert lim.deadline == 60.0  # max(60 s, 4 x request_timeout)
    assert lim.bucket_rate == pytest.approx(49.0)  # 2 % headroom
    with pytest.raises(ValueError, match=r"delivery limits: burst must be >= 1, got 0\.5"):
        DeliveryLimits(requests_per_second=1.0, burst=0.5)
    with pytest.raises(ValueError, match=r"retry_budget must be within 0\.\.1, got 2\.0"):
        msgspec.structs.replace(lim, retry_budget=2.0)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 80), data=st.data())
def test_split_isolates_exactly_the_bad_items(n: int, data: st.DataObject) -> None:
    bad = data.draw(st.sets(st.integers(0, n - 1), max_size=5))
    keys = [f"i{k}" for k in range(n)]
    bad_keys = {keys[k] for k in bad}

    def answer(call: int, b: Batch) -> list[ItemResult]:
        if bad_keys & {i.key for i in b.items}:
            raise PermanentError("HTTP 400: bad item", status=400)
        return ok(b)

    async def go() -> list[ItemResult]:
        return await deliverer(ScriptedSink(answer)).deliver(batch(*keys))

    results = asyncio.run(go())
    assert [r.key for r in sorted(results, key=lambda r: int(r.key[1:]))] == keys
    assert {r.key for r in results if r.status == "rejected"} == bad_keys
    assert all(r.status == "accepted" for r in results if r.key not in bad_keys)
