"""The ``redis`` source: one Redis stream read through a consumer group (competing consumers).

Several ingestd instances name the same ``stream`` and ``group``; Redis hands each entry to one
of them. An entry stays in the group's pending list (PEL) until it is acknowledged, so nothing
is lost when an instance dies: another one claims what it left.

* **Group.** Created if missing (``XGROUP CREATE ... 0 MKSTREAM``): a new group starts at the
  beginning of the stream, so entries written before the first instance started are read.
* **Reading.** One reader, ``XREADGROUP COUNT n BLOCK 1s``. Measured on loopback: four
  concurrent raw readers were no faster than one (160-210k msgs/s either way) and COUNT 256
  beat 64 and 1024, so ``source.receivers`` is not used. ``n`` never exceeds the room left
  under ``max_in_flight``: while the pipeline holds that many entries, nothing is read.
  A consumer first resumes its own pending entries (a restart under a fixed ``consumer`` name).
* **ack()** buffers the id and returns; a flusher task sends one ``XACK`` for everything acked
  in the same event-loop turn (:mod:`daemon.sources.redis_pending`). A crash before the flush
  only means redelivery (the ledger recognises the duplicate).
* **Heartbeat.** Every ``visibility/3`` the entries in flight have their idle time reset
  (``XCLAIM ... JUSTID``, only while still ours), so a long probe or a slow sink never lets
  another consumer take them. ``extend()`` does the same for one entry at once.
* **Reclaim.** Entries idle for ``visibility`` (their consumer crashed or stalled) are taken
  with ``XAUTOCLAIM``, scanned every ``min(visibility/2, 5 s)``.
* **retry_later(delay)** leaves the entry pending and sets its idle time to ``visibility -
  delay``: any consumer may claim it once ``delay`` has passed, and not before. This consumer
  claims it itself at that moment. A delay longer than ``visibility`` is kept ours by the
  heartbeat until ``visibility`` before it is due. Nothing is copied or re-added, so the
  delivery count is Redis's own and no entry can be lost between an XACK and an XADD.
* **Poison.** A claimed entry delivered more than ``max_deliveries`` times has ``poison`` set:
  each object it names is dead-lettered on its own (rule ``source.poison``, requeue announces it
  again); an entry that does not decode is a raw dead letter. Then it is acked.
* **close()** stops reading, flushes acks and gives back at once (idle = ``visibility``) the
  entries this consumer holds that the pipeline never saw (a read cut off by cancellation).
  Leaving the exit stack gives back what is still in flight and, when this consumer has nothing
  pending, deletes it from the group (consumer names are hostname-pid by default).
* **once mode** ends when no new entry is left for the group and nothing is pending for this
  consumer (acks flushed, retries come back and are settled).

Needs Redis 7.0 or later (XAUTOCLAIM; claims drop entries trimmed from the stream out of the
pending list). Entries are never deleted: the producer bounds the stream (``XADD ... MAXLEN ~
n`` or ``MINID``), far enough behind the readers.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from daemon.core.config import Config, resolve
from daemon.core.jobs import ObjectRef
from daemon.sources.base import Poison
from daemon.sources.redis_entries import decode_entry, field_map
from daemon.sources.redis_pending import REDIS_FAILURES, UNREACHABLE, PendingEntries, back_off
from daemon.sources.redis_scripts import CLAIM, FORGET, Claimed, parse_claim

log = structlog.get_logger()

READ_COUNT = 256  # entries per XREADGROUP at most (bench_redis: faster than 64 and than 1024)
BLOCK = 1.0  # seconds one read waits for new entries


@dataclass(eq=False, slots=True)
class RedisMessage:
    """One stream entry handed to the pipeline."""

    id: str
    entry_id: str
    refs: list[ObjectRef]
    pending: PendingEntries = field(repr=False)
    raw: bytes | None = None
    error: str | None = None
    deliveries: int = 1
    poison: Poison | None = None

    async def ack(self) -> None:
        self.pending.acknowledge(self.entry_id)

    async def retry_later(self, delay: float) -> None:
        await self.pending.give_back(self.entry_id, delay)

    async def extend(self) -> None:
        await self.pending.touch([self.entry_id], 0)


class RedisStreamSource:
    name = "redis"
    exhausted = False  # more may come: waiting annotations wait out their deadline

    def __init__(
        self,
        client: Redis,
        *,
        stream: str,
        group: str,
        consumer: str,
        once: bool,
        visibility: float,
        max_deliveries: int,
        max_in_flight: int,
        base: Path,
        skip_removed: bool = True,
        read_count: int = READ_COUNT,
        block: float = BLOCK,
    ) -> None:
        self.client = client
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.once = once
        self.visibility = visibility
        self.max_deliveries = max_deliveries
        self.max_in_flight = max_in_flight
        self.base = base
        self.skip_removed = skip_removed
        self.read_count = read_count
        self.block = block
        self.claim_every = min(max(visibility / 2, 0.05), 5.0)
        self.pending = PendingEntries(
            client, stream=stream, group=group, consumer=consumer, visibility=visibility
        )
        self._claim = client.register_script(CLAIM)
        self._forget = client.register_script(FORGET)
        self._closed = False
        self._group_ready = False
        self._own: str | None = "0-0"  # cursor over this consumer's own pending entries
        self._auto_cursor = "0-0"
        self._next_auto = 0.0
        self._failures = 0
        self.reclaimed = 0
        self.poisoned = 0

    # -- lifecycle ----------------------------------------------------------------------------
    async def __aenter__(self) -> RedisStreamSource:
        self.pending.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop_reading()
        await self.pending.stop()
        if not self._group_ready:
            return  # never read (``ingestd check``): nothing of ours can be pending
        try:
            await self.pending.flush()
            await self.pending.release_in_flight()
            await self.pending.release_unseen()
            if await self._forget(keys=[self.stream], args=[self.group, self.consumer]):
                log.info("redis consumer left the group", stream=self.stream, consumer=self.consumer)
        except REDIS_FAILURES as err:
            log.warning("redis source exit incomplete", stream=self.stream, reason=str(err))

    async def close(self) -> None:
        """Stop reading; give back at once what this consumer holds and the pipeline never saw."""
        if self._closed:
            return
        self._stop_reading()
        try:
            await self.pending.flush()
            await self.pending.release_unseen()
        except REDIS_FAILURES as err:
            log.warning("redis source close incomplete", stream=self.stream, reason=str(err))

    def _stop_reading(self) -> None:
        self._closed = True
        self.pending.changed.set()

    async def check(self) -> None:
        """Readiness: the server answers."""
        await self.client.ping()

    @property
    def in_flight(self) -> int:
        return len(self.pending.in_flight)

    # -- reading ------------------------------------------------------------------------------
    async def batches(self) -> AsyncIterator[list[RedisMessage]]:
        while not self._closed:
            room = await self._room()
            if self._closed:
                return
            self.pending.changed.clear()  # what changes from here on wakes a once-mode wait
            try:
                msgs = await self._next_batch(room)
                if msgs:
                    self._failures = 0
                    yield msgs
                    continue
                if self.once and not self.pending.busy:
                    await self.pending.flush()  # waits for an XACK under way, too
                    if not await self.pending.mine():
                        return
                    self._own = "0-0"  # pending for us, unknown here: entries of a cut-off read
                    continue
                self._failures = 0
            except UNREACHABLE as err:
                self._failures += 1
                await back_off("redis unreachable", self.stream, err, self._failures)
                continue
            except ResponseError as err:
                if not str(err).startswith("NOGROUP"):
                    raise
                log.warning("redis consumer group vanished; creating it again", stream=self.stream)
                self._group_ready = False
                continue
            if self.once:
                await self._wait_change()

    async def _next_batch(self, room: int) -> list[RedisMessage]:
        """Own pending entries first (a restart), then due retries, idle entries, new entries."""
        if not self._group_ready:
            await self._ensure_group()
        if self._own is not None:
            msgs = await self._claim_own(room)
            if msgs or self._own is not None:
                return msgs
        return await self._claim_due(room) or await self._claim_idle(room) or await self._read_new(room)

    async def _room(self) -> int:
        """Wait while the pipeline holds ``max_in_flight`` entries; how many may be read now."""
        held = self.pending.in_flight
        while len(held) >= self.max_in_flight and not self._closed:
            self.pending.changed.clear()
            await self.pending.changed.wait()
        return max(0, min(self.read_count, self.max_in_flight - len(held)))

    async def _wait_change(self) -> None:
        """Once mode, nothing to read: wait for an ack or give-back, or for a retry coming due."""
        timeout = self.claim_every
        due = self.pending.next_due()
        if due is not None:
            timeout = min(timeout, max(0.0, due - asyncio.get_running_loop().time()))
        try:
            async with asyncio.timeout(timeout):
                await self.pending.changed.wait()
        except TimeoutError:
            pass

    async def _ensure_group(self) -> None:
        try:
            await self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
            log.info("redis consumer group created", stream=self.stream, group=self.group)
        except ResponseError as err:
            if not str(err).startswith("BUSYGROUP"):
                raise
        self._group_ready = True

    def _block_ms(self) -> int | None:
        """How long a read may wait: until the next reclaim scan or due retry, at most BLOCK."""
        if self.once:
            return None
        until = self._next_auto
        due = self.pending.next_due()
        if due is not None:
            until = min(until, due)
        wait = min(self.block, until - asyncio.get_running_loop().time())
        return max(1, int(wait * 1000))

    async def _read_new(self, room: int) -> list[RedisMessage]:
        reply: Any = await self.client.xreadgroup(
            self.group, self.consumer, {self.stream: ">"}, count=room, block=self._block_ms()
        )
        if not reply:
            return []
        entries: list[tuple[bytes, dict[bytes, bytes]]] = reply[0][1]
        return self._hand(self._message(eid.decode(), fields, 1) for eid, fields in entries)

    async def _claim_own(self, room: int) -> list[RedisMessage]:
        assert self._own is not None
        nxt, claimed = await self._run_claim("own", 0, self._own, room)
        self._own = None if nxt == "0-0" else nxt
        if claimed:
            log.info("redis entries resumed", stream=self.stream, consumer=self.consumer, count=len(claimed))
        return self._hand_claimed(claimed)

    async def _claim_due(self, room: int) -> list[RedisMessage]:
        ids = self.pending.due_now(room)
        if not ids:
            return []
        _, claimed = await self._run_claim("ids", self.pending.vis_ms, *ids)
        return self._hand_claimed(claimed)

    async def _claim_idle(self, room: int) -> list[RedisMessage]:
        now = asyncio.get_running_loop().time()
        if now < self._next_auto:
            return []
        self._auto_cursor, claimed = await self._run_claim(
            "auto", self.pending.vis_ms, self._auto_cursor, room
        )
        if self._auto_cursor == "0-0":
            self._next_auto = now + self.claim_every
        if claimed:
            self.reclaimed += len(claimed)
            log.info("redis entries reclaimed from idle consumers", stream=self.stream, count=len(claimed))
        return self._hand_claimed(claimed)

    async def _run_claim(self, mode: str, min_idle_ms: int, *rest: str | int) -> tuple[str, list[Claimed]]:
        reply = await self._claim(
            keys=[self.stream], args=[self.group, self.consumer, mode, min_idle_ms, *rest]
        )
        return parse_claim(reply)

    def _hand_claimed(self, claimed: list[Claimed]) -> list[RedisMessage]:
        return self._hand(self._message(c.entry_id, c.fields, c.deliveries) for c in claimed)

    def _hand(self, msgs: Iterable[RedisMessage]) -> list[RedisMessage]:
        # an entry claimed back while the pipeline still has it (a stalled loop) is not doubled
        return [m for m in msgs if self.pending.take(m.entry_id)]

    def _message(
        self, entry_id: str, fields: Mapping[bytes, bytes] | Sequence[bytes], deliveries: int
    ) -> RedisMessage:
        fm = field_map(fields)
        mid = f"redis:{self.stream}:{entry_id}"
        d = decode_entry(self.stream, entry_id, fm, self.base, skip_removed=self.skip_removed)
        if deliveries <= self.max_deliveries:
            return RedisMessage(mid, entry_id, d.refs, self.pending, d.raw, d.error, deliveries)
        poison = Poison(deliveries, self.max_deliveries)
        self.poisoned += 1
        log.warning("redis poison entry", stream=self.stream, entry=entry_id, deliveries=deliveries)
        error = None if d.error is None else f"{poison} (stream {self.stream!r} entry {entry_id}); {d.error}"
        return RedisMessage(mid, entry_id, d.refs, self.pending, d.raw, error, deliveries, poison)


def default_consumer() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def _keepalive() -> dict[int, int | bytes]:
    """TCP keepalive probing a silent peer after 10 s, every 5 s, 3 times (where the OS has it)."""
    opts = (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3))
    return {getattr(socket, name): v for name, v in opts if hasattr(socket, name)}


def make_client(url: str) -> Redis:
    """A client for ``url`` (``redis://``, ``rediss://``, ``unix://``).

    ``socket_timeout=None`` on purpose: with a timeout, redis-py (8.x) sends every command
    through ``asyncio.wait_for``, which on Python < 3.12 can swallow a cancellation (gh-86296)
    and leave a cancelled reader waiting forever for a reply to a command never sent. A dead
    peer is noticed by TCP keepalive instead (about 25 s); blocking reads are bounded by BLOCK.
    """
    return Redis.from_url(
        url,
        socket_connect_timeout=10,
        socket_timeout=None,
        socket_keepalive=True,
        socket_keepalive_options=_keepalive(),
        health_check_interval=30,
    )


async def open_redis_source(cfg: Config, stack: AsyncExitStack, *, once: bool) -> RedisStreamSource:
    """The ``redis`` source for ``cfg``: its client and background tasks close with ``stack``."""
    s = cfg.source
    client = make_client(s.redis_url)
    stack.push_async_callback(client.aclose)
    source = RedisStreamSource(
        client,
        stream=s.stream,
        group=s.group,
        consumer=s.consumer or default_consumer(),
        once=once,
        visibility=float(s.visibility_timeout),
        max_deliveries=s.max_receive_count,
        max_in_flight=cfg.pipeline.max_in_flight,
        base=resolve(cfg, "."),
        skip_removed=s.skip_removed,
    )
    return await stack.enter_async_context(source)
