"""This consumer's share of a group's pending entries: in flight, acknowledged, given back.

* ``acknowledge`` buffers the id; a flusher task sends one ``XACK`` for everything acked in
  the same event-loop turn (the pipeline's acker awaits each ack in turn: an XACK per call
  would cost a round trip each, ~12x slower in bench_redis).
* ``give_back(delay)`` leaves the entry pending with its idle time set to ``visibility -
  delay`` (``TOUCH`` script): any consumer may claim it once ``delay`` has passed, not before,
  and it is remembered as *due* so this consumer claims it itself at that moment. A delay
  longer than the visibility is *held*: the heartbeat keeps the entry ours until it is one
  visibility away from due. If this process dies meanwhile, the entry comes back after at most
  one visibility timeout: early rather than lost.
* The heartbeat resets the idle time of every entry in flight every ``visibility/3``.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Sequence

import structlog
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from daemon.sources.redis_scripts import TOUCH, as_text

log = structlog.get_logger()

ACK_CHUNK = 4096
TOUCH_CHUNK = 2048
SLACK = 0.005  # a due retry is claimed this long after its idle time reached the visibility
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
REDIS_FAILURES = (*UNREACHABLE, ResponseError)


async def back_off(event: str, stream: str, err: BaseException, failures: int) -> None:
    """Log a Redis failure and wait: full jitter, up to 0.2 s, 0.4 s, ... capped at 5 s."""
    delay = random.uniform(0, min(5.0, 0.1 * 2**failures))
    log.warning(event, stream=stream, reason=str(err), retry_in=round(delay, 2))
    await asyncio.sleep(delay)


class PendingEntries:
    def __init__(self, client: Redis, *, stream: str, group: str, consumer: str, visibility: float) -> None:
        self.client = client
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.visibility = visibility
        self.vis_ms = max(1, math.ceil(visibility * 1000))
        self._touch = client.register_script(TOUCH)
        self.in_flight: set[str] = set()
        self.acks: list[str] = []
        self.due: dict[str, float] = {}  # retries: when they may be claimed (loop time)
        self.held: dict[str, float] = {}  # retries due later than one visibility from now
        self.changed = asyncio.Event()  # set on every ack, give-back and flush
        self._ack_wake = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self.acked = 0

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._heartbeat(), name="redis-heartbeat"),
            asyncio.create_task(self._flusher(), name="redis-ack-flusher"),
        ]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def busy(self) -> bool:
        """Anything handed out, acked but not flushed, or coming back."""
        return bool(self.in_flight or self.due or self.held or self.acks)

    def take(self, entry_id: str) -> bool:
        """Mark an entry handed to the pipeline; False if the pipeline has it already."""
        if entry_id in self.in_flight:
            return False
        self.due.pop(entry_id, None)
        self.held.pop(entry_id, None)
        self.in_flight.add(entry_id)
        return True

    def due_now(self, limit: int) -> list[str]:
        """Retries whose delay has passed (forgotten here: the claim decides who gets them)."""
        now = asyncio.get_running_loop().time()
        ids = [eid for eid, at in self.due.items() if at <= now][:limit]
        for eid in ids:
            del self.due[eid]
        return ids

    def next_due(self) -> float | None:
        return min(self.due.values(), default=None)

    def acknowledge(self, entry_id: str) -> None:
        self.in_flight.discard(entry_id)
        self.acks.append(entry_id)
        self._ack_wake.set()
        self.changed.set()

    async def give_back(self, entry_id: str, delay: float) -> None:
        """Leave the entry pending, claimable by any consumer once ``delay`` has passed."""
        self.in_flight.discard(entry_id)
        self.changed.set()
        loop = asyncio.get_running_loop()
        delay_ms = math.ceil(max(0.0, delay) * 1000)
        if delay_ms >= self.vis_ms:
            if await self.touch([entry_id], 0):
                self.held[entry_id] = loop.time() + delay_ms / 1000
            return
        if await self.touch([entry_id], self.vis_ms - delay_ms):
            self.due[entry_id] = loop.time() + delay_ms / 1000 + SLACK

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

    async def flush(self) -> None:
        """Send the buffered acknowledgements (kept for the next try if this fails)."""
        async with self._flush_lock:
            while self.acks:
                ids, self.acks = self.acks[:ACK_CHUNK], self.acks[ACK_CHUNK:]
                try:
                    await self.client.xack(self.stream, self.group, *ids)
                except BaseException:
                    self.acks[:0] = ids
                    raise
                self.acked += len(ids)
        self.changed.set()

    async def _flusher(self) -> None:
        failures = 0
        while True:
            await self._ack_wake.wait()
            self._ack_wake.clear()
            try:
                await self.flush()
                failures = 0
            except REDIS_FAILURES as err:
                failures += 1
                await back_off("redis XACK failed", self.stream, err, failures)
                self._ack_wake.set()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.visibility / 3)
            try:
                await self.beat()
            except REDIS_FAILURES as err:
                log.warning("redis heartbeat failed", stream=self.stream, reason=str(err))

    async def beat(self) -> None:
        """Keep in-flight and held entries ours; release held ones coming due within a visibility."""
        loop = asyncio.get_running_loop()
        keep = list(self.in_flight)
        for eid, at in list(self.held.items()):
            left = at - loop.time()
            if left > self.visibility:
                keep.append(eid)
                continue
            del self.held[eid]
            left_ms = max(0, math.ceil(left * 1000))
            if await self.touch([eid], self.vis_ms - left_ms):
                self.due[eid] = loop.time() + left_ms / 1000 + SLACK
        if keep:
            owned = set(await self.touch(keep, 0))
            for eid in keep:
                if eid not in owned:
                    self.held.pop(eid, None)

    async def release_unseen(self) -> None:
        """Give back at once (idle = visibility) our pending entries the pipeline never received."""
        known = self.in_flight | set(self.due) | set(self.held) | set(self.acks)
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
            await self.touch(unseen, self.vis_ms)
            log.info("redis entries given back unseen", stream=self.stream, count=len(unseen))

    async def release_in_flight(self) -> None:
        """At exit: entries the pipeline never settled go to other consumers at once."""
        if self.in_flight:
            log.warning("redis entries given back at exit", stream=self.stream, count=len(self.in_flight))
            await self.touch(list(self.in_flight), self.vis_ms)
            self.in_flight.clear()

    async def mine(self) -> bool:
        """Whether anything is pending for this consumer in Redis."""
        rows = await self.client.xpending_range(
            self.stream, self.group, min="-", max="+", count=1, consumername=self.consumer
        )
        return bool(rows)
