"""The redis source against a real redis-server: consumer groups, acks, reclaim, retries, poison."""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from pathlib import Path

import msgspec
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from daemon.core.config import from_dict
from daemon.core.jobs import ObjectRef
from daemon.sources.base import Message, Poison
from daemon.sources.redis_streams import RedisStreamSource, make_client, open_redis_source
from tests.redis.stream_tools import (
    Reader,
    add,
    eventually,
    free_port,
    pending_ids,
    start_redis,
    stop_redis,
)

VIS = 0.3  # visibility timeout of the reclaim tests (seconds)


def url(n: int) -> str:
    return msgspec.json.encode(f"https://cdn.example.com/{n}.mp4").decode()


class TestReading:
    async def test_entries_decode_to_refs(self, client: Redis, stream: str, make_source) -> None:
        """Manifest-style and S3-event bodies become refs; the message satisfies the contract."""
        event = {
            "Records": [
                {
                    "eventName": "ObjectCreated:Put",
                    "s3": {"bucket": {"name": "bk"}, "object": {"key": "a+b.mp4", "size": 9}},
                }
            ]
        }
        ids = await add(client, stream, url(1), msgspec.json.encode(event), '"s3://bk/k.jpg"')
        src = await make_source(once=True)
        msgs = await Reader(src).take(3)
        assert all(isinstance(m, Message) for m in msgs)
        assert [m.entry_id for m in msgs] == ids
        assert [m.error for m in msgs] == [None, None, None]
        assert msgs[0].refs == [
            ObjectRef(origin="url", key="https://cdn.example.com/1.mp4", url="https://cdn.example.com/1.mp4")
        ]
        assert msgs[1].refs == [ObjectRef(origin="s3", bucket="bk", key="a b.mp4", size=9)]
        assert msgs[2].refs == [ObjectRef(origin="s3", bucket="bk", key="k.jpg")]
        assert msgs[0].id == f"redis:{stream}:{ids[0]}"

    async def test_malformed_entry_is_an_error_with_its_raw_body(
        self, client: Redis, stream: str, make_source
    ) -> None:
        """An undecodable body is handed on with ``error`` (stream, entry id, reason) and ``raw``."""
        (bad,) = await add(client, stream, b"<xml/>")
        await client.xadd(stream, {"other": "x"})
        src = await make_source()
        m1, m2 = await Reader(src).take(2)
        assert m1.refs == [] and m1.raw == b"<xml/>"
        assert m1.error is not None and m1.error.startswith(
            f"stream '{stream}' entry {bad}: body is not valid JSON"
        )
        assert m2.error is not None and "no 'body' field (fields: ['other'])" in m2.error

    async def test_a_new_group_reads_entries_written_before_it(
        self, client: Redis, stream: str, make_source
    ) -> None:
        """The group is created at the start of the stream; an existing group is reused (BUSYGROUP)."""
        await add(client, stream, url(1))
        first = await make_source(once=True)
        assert len(await Reader(first).rest()) == 1
        await add(client, stream, url(2))
        second = await make_source(once=True)
        (m,) = await Reader(second).take(1)
        assert m.refs[0].key.endswith("/2.mp4")


class TestAck:
    async def test_ack_removes_the_entry_from_the_pending_list(
        self, client: Redis, stream: str, make_source
    ) -> None:
        """Acked entries leave the PEL; unacked ones stay."""
        ids = await add(client, stream, url(1), url(2), url(3))
        src = await make_source()
        msgs = await Reader(src).take(3)
        assert sorted(await pending_ids(client, stream)) == sorted(ids)
        await msgs[0].ack()
        await msgs[2].ack()

        async def only_middle_left() -> bool:
            return await pending_ids(client, stream) == [ids[1]]

        await eventually(only_middle_left)
        assert src.in_flight == 1


class TestCompetingConsumers:
    async def test_each_entry_goes_to_one_consumer(self, client: Redis, stream: str, make_source) -> None:
        """Two instances in one group share the stream: together all entries, none to both."""
        ids = await add(client, stream, *(url(i) for i in range(200)))
        a, b = await make_source(read_count=16), await make_source(read_count=16)
        got: dict[str, list[str]] = {"a": [], "b": []}

        async def consume(name: str, reader: Reader) -> None:
            while len(got["a"]) + len(got["b"]) < len(ids):
                try:
                    async with asyncio.timeout(0.5):
                        batch = await anext(reader.it)
                except TimeoutError:
                    return
                got[name].extend(m.entry_id for m in batch)
                for m in batch:
                    await m.ack()
                await asyncio.sleep(0)  # let the other consumer read too

        async with asyncio.timeout(20):
            await asyncio.gather(consume("a", Reader(a)), consume("b", Reader(b)))
        assert not set(got["a"]) & set(got["b"])
        assert sorted(got["a"] + got["b"]) == sorted(ids)
        assert got["a"] and got["b"]


class TestReclaim:
    async def test_a_dead_consumers_entries_are_reclaimed_after_the_idle_time(
        self, client: Redis, stream: str, make_source
    ) -> None:
        """Entries read by a consumer that never acks are taken by another once idle for visibility."""
        ids = await add(client, stream, url(1), url(2))
        await client.xgroup_create(stream, "g", id="0")
        await client.xreadgroup("g", "dead", {stream: ">"}, count=10)
        t0 = time.monotonic()
        src = await make_source(visibility=VIS)
        msgs = await Reader(src).take(2)
        assert time.monotonic() - t0 >= VIS - 0.02
        assert sorted(m.entry_id for m in msgs) == sorted(ids)
        assert [m.deliveries for m in msgs] == [2, 2]
        assert await pending_ids(client, stream, consumer=src.consumer) == sorted(ids)

    async def test_the_heartbeat_keeps_long_work_from_being_reclaimed(
        self, client: Redis, stream: str, make_source
    ) -> None:
        """Entries in flight for several visibility timeouts stay with their consumer."""
        ids = await add(client, stream, url(1))
        holder = await make_source(visibility=2 * VIS)
        (m,) = await Reader(holder).take(1)
        other = await make_source(visibility=2 * VIS)
        reader = Reader(other)
        t_end = time.monotonic() + 6 * VIS  # three visibility timeouts
        while time.monotonic() < t_end:
            try:
                async with asyncio.timeout(t_end - time.monotonic()):
                    stolen = await anext(reader.it)
            except TimeoutError:
                break
            raise AssertionError(f"entry taken from a live consumer: {[s.entry_id for s in stolen]}")
        assert await pending_ids(client, stream, consumer=holder.consumer) == ids
        await m.ack()

    async def test_a_restarted_consumer_resumes_its_own_pending_entries(
        self, client: Redis, stream: str, make_source
    ) -> None:
        """Under a fixed consumer name, entries read before a crash come back first, without waiting."""
        ids = await add(client, stream, url(1), url(2), url(3))
        await client.xgroup_create(stream, "g", id="0")
        await client.xreadgroup("g", "fixed", {stream: ">"}, count=2)
        src = await make_source(consumer="fixed")
        msgs = await Reader(src).take(3, timeout=VIS * 10)
        assert [m.entry_id for m in msgs] == ids
        assert [m.deliveries for m in msgs] == [2, 2, 1]


class TestRetryAndPoison:
    async def test_retry_later_comes_back_after_the_delay_and_not_before(
        self, client: Redis, stream: str, make_source
    ) -> None:
        """The entry stays pending and is received again once ``delay`` has passed."""
        (eid,) = await add(client, stream, url(1))
        src = await make_source(visibility=2.0)
        reader = Reader(src)
        (m,) = await reader.take(1)
        t0 = time.monotonic()
        await m.retry_later(0.5)
        (again,) = await reader.take(1)
        waited = time.monotonic() - t0
        assert again.entry_id == eid
        assert 0.5 <= waited < 2.0
        assert again.deliveries == 2

    async def test_retry_later_longer_than_the_visibility_is_kept_from_others(
        self, client: Redis, stream: str, make_source
    ) -> None:
        """A delay beyond the visibility timeout is honoured: no consumer gets the entry earlier."""
        await add(client, stream, url(1))
        src = await make_source(visibility=VIS)
        other = await make_source(visibility=VIS)
        (m,) = await Reader(src).take(1)
        t0 = time.monotonic()
        await m.retry_later(4 * VIS)
        racers = {asyncio.ensure_future(Reader(src).take(1)), asyncio.ensure_future(Reader(other).take(1))}
        done, losing = await asyncio.wait(racers, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        waited = time.monotonic() - t0
        for t in losing:
            t.cancel()
        await asyncio.wait(losing)
        assert len(done) == 1
        (again,) = done.pop().result()
        assert again.entry_id == m.entry_id
        assert waited >= 4 * VIS

    async def test_poison_after_max_receive_count(self, client: Redis, stream: str, make_source) -> None:
        """Past max_deliveries the entry comes marked poison, its object still named; acking clears it."""
        (eid,) = await add(client, stream, url(1))
        src = await make_source(visibility=VIS, max_deliveries=2)
        reader = Reader(src)
        for n in (1, 2):
            (m,) = await reader.take(1)
            assert (m.deliveries, m.error) == (n, None)
            await m.retry_later(0)
        (poison,) = await reader.take(1)
        assert poison.entry_id == eid
        assert poison.poison == Poison(3, 2) and poison.error is None  # decodes: its refs still count
        assert [r.url for r in poison.refs] == [msgspec.json.decode(url(1))]
        await poison.ack()

        async def cleared() -> bool:
            return await pending_ids(client, stream) == []

        await eventually(cleared)


class TestBackpressure:
    async def test_no_more_than_the_in_flight_bound_is_read(
        self, client: Redis, stream: str, make_source
    ) -> None:
        """While nothing is acked the source reads no further; acking frees exactly that room."""
        await add(client, stream, *(url(i) for i in range(30)))
        src = await make_source(max_in_flight=10, read_count=4)
        reader = Reader(src)
        held = await reader.take(10)
        assert len(held) == 10
        nxt = asyncio.ensure_future(anext(reader.it))
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            assert not nxt.done()
            assert len(await pending_ids(client, stream)) == 10
            await asyncio.sleep(0.05)
        for m in held[:3]:
            await m.ack()
        async with asyncio.timeout(5):
            batch = await nxt
        assert len(batch) == 3
        assert src.in_flight == 10


async def stays_pending(fut: asyncio.Future[object], seconds: float) -> None:
    """Assert ``fut`` does not finish within ``seconds`` (a bounded look for something not happening)."""
    done, _ = await asyncio.wait({fut}, timeout=seconds)
    assert not done, fut


class TestOnceAndClose:
    async def test_once_ends_when_drained_and_settled(self, client: Redis, stream: str, make_source) -> None:
        """In once mode the iterator waits for retries and acks, then ends."""
        await add(client, stream, url(1), url(2))
        src = await make_source(once=True)
        reader = Reader(src)
        m1, m2 = await reader.take(2)
        await m1.ack()
        await m2.retry_later(0.1)
        (again,) = await reader.take(1)
        assert again.entry_id == m2.entry_id
        end = asyncio.ensure_future(anext(reader.it))
        await stays_pending(end, 0.3)
        await again.ack()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(end, 5)
        assert await pending_ids(client, stream) == []

    async def test_close_gives_back_what_the_pipeline_never_saw(
        self, client: Redis, stream: str, make_source
    ) -> None:
        """Entries pending for this consumer but never handed out go to another consumer at once."""
        ids = await add(client, stream, url(1), url(2), url(3))
        src = await make_source(read_count=1)
        (m,) = await Reader(src).take(1)
        # a read whose reply was lost (cancelled mid-command): pending for us, unknown to us
        await client.xreadgroup("g", src.consumer, {stream: ">"}, count=2)
        await src.close()
        other = await make_source()
        got = await Reader(other).take(2, timeout=5)
        assert sorted(x.entry_id for x in got) == ids[1:]
        assert await pending_ids(client, stream, consumer=src.consumer) == [m.entry_id]

    async def test_exit_gives_back_in_flight_and_leaves_the_group_when_empty(
        self, client: Redis, redis_url: str, stream: str
    ) -> None:
        """The factory's stack: in-flight entries are given back; an idle consumer is deleted."""
        cfg = from_dict(
            {"source": {"type": "redis", "redis_url": redis_url, "stream": stream, "consumer": "solo"}}
        )
        ids = await add(client, stream, url(1), url(2))
        async with AsyncExitStack() as stack:
            src = await open_redis_source(cfg, stack, once=True)
            await src.check()
            assert (src.group, src.visibility, src.max_deliveries) == ("ingestd", 120.0, 5)
            m1, _ = await Reader(src).take(2)
            await m1.ack()
        rows = await client.xpending_range(stream, "ingestd", min="-", max="+", count=10)
        assert [r["message_id"].decode() for r in rows] == [ids[1]]
        assert rows[0]["time_since_delivered"] >= 120_000  # claimable by anyone at once
        async with AsyncExitStack() as stack:
            src = await open_redis_source(cfg, stack, once=True)
            assert len(await Reader(src).rest()) == 1
        consumers = await client.xinfo_consumers(stream, "ingestd")
        assert [c["name"] for c in consumers] == []

    async def test_check_fails_when_the_server_is_unreachable(self, tmp_path: Path) -> None:
        """Readiness: PING to a closed port raises."""
        cfg = from_dict(
            {"source": {"type": "redis", "redis_url": f"redis://127.0.0.1:{free_port()}/0", "stream": "s"}}
        )
        async with AsyncExitStack() as stack:
            src = await open_redis_source(cfg, stack, once=True)
            with pytest.raises(RedisConnectionError):
                await src.check()

    async def test_a_destroyed_group_is_created_again(self, client: Redis, stream: str, make_source) -> None:
        """NOGROUP while running: the group is recreated and reading goes on."""
        await add(client, stream, url(1))
        src = await make_source()
        reader = Reader(src)
        (m,) = await reader.take(1)
        await m.ack()
        await eventually(lambda: _no_pending(client, stream))
        await client.xgroup_destroy(stream, "g")
        (new,) = await add(client, stream, url(2))
        got = await reader.take(2)
        assert new in [x.entry_id for x in got]


async def _no_pending(client: Redis, stream: str) -> bool:
    return await pending_ids(client, stream) == []


class TestExtendAndCancel:
    async def test_extend_resets_the_idle_time(self, client: Redis, stream: str, make_source) -> None:
        """extend() makes the entry fresh again (nobody may claim it for another visibility)."""
        await add(client, stream, url(1))
        src = await make_source(visibility=30.0)
        (m,) = await Reader(src).take(1)

        async def idle_ms() -> int:
            (row,) = await client.xpending_range(stream, "g", min="-", max="+", count=1)
            return int(row["time_since_delivered"])

        async def aged() -> bool:
            return await idle_ms() >= 150

        await eventually(aged)
        await m.extend()
        assert await idle_ms() < 150
        rows = await client.xpending_range(stream, "g", min="-", max="+", count=1)
        assert rows[0]["times_delivered"] == 1  # a heartbeat is not a delivery

    async def test_cancelling_a_read_ends_it_promptly(self, client: Redis, stream: str, make_source) -> None:
        """The pipeline stops intake by cancelling it mid-read; the cancellation is never lost."""
        src = await make_source(visibility=VIS, block=0.05)
        for i in range(40):
            task = asyncio.ensure_future(anext(src.batches().__aiter__()))
            await asyncio.sleep(0.002 * (i % 25))  # land the cancel at varied points of a read
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=2)
            assert done, f"cancellation swallowed on attempt {i}"


class TestServerRestart:
    async def test_reading_resumes_after_the_server_restarts(self, tmp_path: Path) -> None:
        """Redis goes away and comes back empty: the source backs off, recreates its group, reads on."""
        port = free_port()
        url_ = f"redis://127.0.0.1:{port}/0"
        server = start_redis(port)
        async with AsyncExitStack() as stack:
            stack.callback(lambda: stop_redis(server))
            src_client, before, after = make_client(url_), make_client(url_), make_client(url_)
            for c in (src_client, before, after):
                stack.push_async_callback(c.aclose)
            src = await stack.enter_async_context(
                RedisStreamSource(
                    src_client,
                    stream="s",
                    group="g",
                    consumer="c",
                    once=False,
                    visibility=VIS,
                    max_deliveries=5,
                    max_in_flight=100,
                    base=tmp_path,
                    block=0.05,
                )
            )
            reader = Reader(src)
            await add(before, "s", url(1))
            (m,) = await reader.take(1)
            await m.ack()
            stop_redis(server)
            server = start_redis(port)
            (new,) = await add(after, "s", url(2))
            (again,) = await reader.take(1)
            assert again.entry_id == new
            await again.ack()
