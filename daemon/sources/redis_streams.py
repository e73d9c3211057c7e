"""The ``redis`` source: one Redis stream read through a consumer group (competing consumers).

Several ingestd instances name the same ``stream`` and ``group``; Redis hands each entry to one
of them. An entry stays in the group's pending list (PEL) until it is acknowledged, so nothing
is lost when an instance dies: another one claims what it left.

* **Group.** Created if missing (``XGROUP CREATE ... 0 MKSTREAM``): a new group starts at the
  beginning of the stream, so entries written before the first instance started are read.
* **Reading.** One reader, ``XREADGROUP COUNT n BLOCK`` (measured against several concurrent
  readers: one reader with a larger COUNT is as fast and simpler). ``n`` never exceeds the room
  left under ``max_in_flight``: while the pipeline holds that many entries, nothing is read.
  A consumer first resumes its own pending entries (a restart under a fixed ``consumer`` name).
* **ack()** buffers the id and returns; a flusher task sends one ``XACK`` for everything acked
  in the same event-loop turn. A crash before the flush only means redelivery (the ledger
  recognises the duplicate).
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
* **Poison.** A claimed entry delivered more than ``max_deliveries`` times becomes a message
  with ``error = "poison: delivered N times ..."``: the pipeline dead-letters it, then acks.
* **close()** stops reading, flushes acks and gives back at once (idle = ``visibility``) the
  entries this consumer holds that the pipeline never saw (a read cut off by cancellation).
  Leaving the exit stack gives back what is still in flight and, when this consumer has nothing
  pending, deletes it from the group (consumer names are hostname-pid by default).
* **once mode** ends when no new entry is left for the group and nothing is pending for this
  consumer (acks flushed, retries come back and are settled).

Entries are never deleted: the producer bounds the stream (``XADD ... MAXLEN ~ n`` or
``MINID``), far enough behind the readers.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import socket
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from daemon.config import Config, resolve
from daemon.jobs import ObjectRef
from daemon.sources.redis_entries import BODY, decode_entry, field_map, raw_fields
from daemon.sources.redis_scripts import CLAIM, FORGET, TOUCH, Claimed, as_text, parse_claim

log = structlog.get_logger()

READ_COUNT = 256  # entries per XREADGROUP at most (bench_redis: 256 reaches the raw client's rate)
BLOCK = 1.0  # seconds one read waits for new entries
ACK_CHUNK = 4096
TOUCH_CHUNK = 2048
SLACK = 0.005  # a due retry is claimed this long after its idle time reached the visibility
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


@dataclass(eq=False, slots=True)
class RedisMessage:
    """One stream entry handed to the pipeline."""

    id: str
    entry_id: str
    refs: list[ObjectRef]
    source: RedisStreamSource = field(repr=False)
    raw: bytes | None = None
    error: str | None = None
    deliveries: int = 1

    async def ack(self) -> None:
        self.source.acknowledge(self.entry_id)

    async def retry_later(self, delay: float) -> None:
        await self.source.give_back(self.entry_id, delay)

    async def extend(self) -> None:
        await self.source.touch([self.entry_id], 0)


class RedisStreamSource:
    name = "redis"

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
        self._vis_ms = max(1, math.ceil(visibility * 1000))
        self._touch = client.register_script(TOUCH)
        self._claim = client.register_script(CLAIM)
        self._forget = client.register_script(FORGET)
        self._in_flight: set[str] = set()
        self._acks: list[str] = []
        self._due: dict[str, float] = {}  # our retries: when they may be claimed (loop time)
        self._held: dict[str, float] = {}  # retries due later than one visibility from now
        self._changed = asyncio.Event()
        self._ack_wake = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._group_ready = False
        self._own: str | None = "0-0"  # cursor over this consumer's own pending entries
        self._auto_cursor = "0-0"
        self._next_auto = 0.0
        self._failures = 0
        self.acked = 0
        self.reclaimed = 0
        self.poisoned = 0

    # -- lifecycle ----------------------------------------------------------------------------
    async def __aenter__(self) -> RedisStreamSource:
        self._tasks = [
            asyncio.create_task(self._heartbeat(), name="redis-heartbeat"),
            asyncio.create_task(self._flusher(), name="redis-ack-flusher"),
        ]
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._closed = True
        self._changed.set()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await self._flush()
            if self._in_flight:  # the pipeline ended without settling these: others take them now
                log.warning(
                    "redis entries given back at exit", stream=self.stream, count=len(self._in_flight)
                )
                await self.touch(list(self._in_flight), self._vis_ms)
            await self._release_unseen()
            if await self._forget(keys=[self.stream], args=[self.group, self.consumer]):
                log.info("redis consumer left the group", stream=self.stream, consumer=self.consumer)
        except (*_UNREACHABLE, ResponseError) as err:
            log.warning("redis source exit incomplete", stream=self.stream, reason=str(err))

    async def close(self) -> None:
        """Stop reading; give back at once what this consumer holds and the pipeline never saw."""
        if self._closed:
            return
        self._closed = True
        self._changed.set()
        try:
            await self._flush()
            await self._release_unseen()
        except (*_UNREACHABLE, ResponseError) as err:
            log.warning("redis source close incomplete", stream=self.stream, reason=str(err))

    async def check(self) -> None:
        """Readiness: the server answers."""
        await self.client.ping()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    # -- reading ------------------------------------------------------------------------------
    async def batches(self) -> AsyncIterator[list[RedisMessage]]:
        while not self._closed:
            room = await self._room()
            if self._closed:
                return
            try:
                msgs = await self._next_batch(room)
                if msgs:
                    self._failures = 0
                    yield msgs
                    continue
                if self.once and not self._local_work():
                    await self._flush()
                    if not await self._pending_for_us():
                        return
                    self._own = "0-0"  # pending for us, unknown here: entries of a cut-off read
                    continue
                self._failures = 0
            except _UNREACHABLE as err:
                await self._unreachable(err)
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
        while len(self._in_flight) >= self.max_in_flight and not self._closed:
            self._changed.clear()
            await self._changed.wait()
        return max(0, min(self.read_count, self.max_in_flight - len(self._in_flight)))

    def _local_work(self) -> bool:
        return bool(self._in_flight or self._due or self._held or self._acks)

    async def _wait_change(self) -> None:
        loop = asyncio.get_running_loop()
        timeout = self.claim_every
        if self._due:
            timeout = min(timeout, max(0.0, min(self._due.values()) - loop.time()))
        self._changed.clear()
        try:
            async with asyncio.timeout(timeout):
                await self._changed.wait()
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
        if self.once:
            return None
        loop = asyncio.get_running_loop()
        until = min([self._next_auto, *self._due.values()], default=self._next_auto)
        wait = min(self.block, until - loop.time())
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
        now = asyncio.get_running_loop().time()
        ids = [eid for eid, at in self._due.items() if at <= now][:room]
        if not ids:
            return []
        for eid in ids:
            del self._due[eid]
        _, claimed = await self._run_claim("ids", self._vis_ms, *ids)
        return self._hand_claimed(claimed)

    async def _claim_idle(self, room: int) -> list[RedisMessage]:
        now = asyncio.get_running_loop().time()
        if now < self._next_auto:
            return []
        self._auto_cursor, claimed = await self._run_claim("auto", self._vis_ms, self._auto_cursor, room)
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
        out: list[RedisMessage] = []
        for m in msgs:
            if m.entry_id in self._in_flight:
                continue  # claimed back while the pipeline still has it (a stalled loop)
            self._due.pop(m.entry_id, None)
            self._held.pop(m.entry_id, None)
            self._in_flight.add(m.entry_id)
            out.append(m)
        return out

    def _message(
        self, entry_id: str, fields: Mapping[bytes, bytes] | Sequence[bytes], deliveries: int
    ) -> RedisMessage:
        fm = field_map(fields)
        mid = f"redis:{self.stream}:{entry_id}"
        if deliveries > self.max_deliveries:
            self.poisoned += 1
            return RedisMessage(
                id=mid,
                entry_id=entry_id,
                refs=[],
                source=self,
                raw=fm.get(BODY) or raw_fields(fm),
                error=f"poison: delivered {deliveries} times (stream {self.stream!r} entry {entry_id},"
                f" max_receive_count {self.max_deliveries})",
                deliveries=deliveries,
            )
        d = decode_entry(self.stream, entry_id, fm, self.base, skip_removed=self.skip_removed)
        return RedisMessage(mid, entry_id, d.refs, self, d.raw, d.error, deliveries)

    async def _unreachable(self, err: BaseException) -> None:
        self._failures += 1
        delay = random.uniform(0, min(5.0, 0.1 * 2**self._failures))
        log.warning("redis unreachable", stream=self.stream, reason=str(err), retry_in=round(delay, 2))
        await asyncio.sleep(delay)

    # -- settling -----------------------------------------------------------------------------
    def acknowledge(self, entry_id: str) -> None:
        self._in_flight.discard(entry_id)
        self._acks.append(entry_id)
        self._ack_wake.set()
        self._changed.set()

    async def give_back(self, entry_id: str, delay: float) -> None:
        """Leave the entry pending, claimable by any consumer once ``delay`` has passed."""
        self._in_flight.discard(entry_id)
        self._changed.set()
        loop = asyncio.get_running_loop()
        delay_ms = math.ceil(max(0.0, delay) * 1000)
        if delay_ms >= self._vis_ms:
            if await self.touch([entry_id], 0):
                self._held[entry_id] = loop.time() + delay_ms / 1000
            return
        if await self.touch([entry_id], self._vis_ms - delay_ms):
            self._due[entry_id] = loop.time() + delay_ms / 1000 + SLACK

    async def touch(self, ids: Sequence[str], idle_ms: int) -> list[str]:
        """Set the idle time of the ids still ours; the ids another consumer took are dropped."""
        owned: list[str] = []
        for i in range(0, len(ids), TOUCH_CHUNK):
            reply = await self._touch(
                keys=[self.stream], args=[self.group, self.consumer, idle_ms, *ids[i : i + TOUCH_CHUNK]]
            )
            owned.extend(as_text(v) for v in reply)
        if len(owned) < len(ids):
            log.warning(
                "redis entries taken over by another consumer",
                stream=self.stream,
                entries=sorted(set(ids) - set(owned))[:10],
            )
        return owned

    async def _flush(self) -> None:
        async with self._flush_lock:
            while self._acks:
                ids, self._acks = self._acks[:ACK_CHUNK], self._acks[ACK_CHUNK:]
                try:
                    await self.client.xack(self.stream, self.group, *ids)
                except BaseException:
                    self._acks[:0] = ids
                    raise
                self.acked += len(ids)
        self._changed.set()

    async def _flusher(self) -> None:
        failures = 0
        while True:
            await self._ack_wake.wait()
            self._ack_wake.clear()
            try:
                await self._flush()
                failures = 0
            except (*_UNREACHABLE, ResponseError) as err:
                failures += 1
                delay = random.uniform(0, min(5.0, 0.1 * 2**failures))
                log.warning(
                    "redis XACK failed", stream=self.stream, reason=str(err), retry_in=round(delay, 2)
                )
                await asyncio.sleep(delay)
                self._ack_wake.set()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.visibility / 3)
            try:
                await self._beat()
            except (*_UNREACHABLE, ResponseError) as err:
                log.warning("redis heartbeat failed", stream=self.stream, reason=str(err))

    async def _beat(self) -> None:
        loop = asyncio.get_running_loop()
        keep = list(self._in_flight)
        for eid, at in list(self._held.items()):
            left = at - loop.time()
            if left > self.visibility:
                keep.append(eid)
                continue
            del self._held[eid]
            left_ms = max(0, math.ceil(left * 1000))
            if await self.touch([eid], self._vis_ms - left_ms):
                self._due[eid] = loop.time() + left_ms / 1000 + SLACK
        if keep:
            owned = set(await self.touch(keep, 0))
            for eid in keep:
                if eid not in owned:
                    self._held.pop(eid, None)

    async def _pending_for_us(self) -> bool:
        rows = await self.client.xpending_range(
            self.stream, self.group, min="-", max="+", count=1, consumername=self.consumer
        )
        return bool(rows)

    async def _release_unseen(self) -> None:
        """Give back (idle = visibility) our pending entries the pipeline never received."""
        known = self._in_flight | set(self._due) | set(self._held) | set(self._acks)
        unseen: list[str] = []
        start = "-"
        while True:
            rows = await self.client.xpending_range(
                self.stream, self.group, min=start, max="+", count=1000, consumername=self.consumer
            )
            ids = [as_text(r["message_id"]) for r in rows]
            unseen.extend(i for i in ids if i not in known)
            if len(rows) < 1000:
                break
            start = "(" + ids[-1]
        if unseen:
            await self.touch(unseen, self._vis_ms)
            log.info("redis entries given back unseen", stream=self.stream, count=len(unseen))


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
