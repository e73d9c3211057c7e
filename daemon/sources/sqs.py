"""The ``sqs`` source: S3 event notifications from an SQS queue.

ReceiveMessage, DeleteMessageBatch and ChangeMessageVisibilityBatch go through a thin JSON-protocol
client (:mod:`daemon.sources.sqs_http`); aiobotocore's client makes every other call.

Life of a message (ref/pipelines.md 1.5, the complaint taxonomy):

* ``receivers`` tasks long-poll ``ReceiveMessage`` (10 a call, ``VisibilityTimeout`` set, receive
  count requested). A receiver waits while ``max_in_flight`` messages are held or while the
  pipeline has not taken the previous batches (a bounded queue): that is the backpressure.
* Each body is decoded (:mod:`daemon.sources.s3events`). Skip-only bodies (``s3:TestEvent``,
  removals) are deleted at once and never handed out. A body that cannot be decoded is handed
  out with ``error`` set and ``refs`` empty: the pipeline dead-letters it with ``raw`` and acks
  it. A message received more than ``max_receive_count`` times has ``poison`` set: if it still
  decodes, the pipeline dead-letters each object it names (rule ``source.poison``), so a
  requeue announces them again; if not, it is a raw dead letter as above. The ack of either
  copies the body to ``dead_letter_queue_url`` (if set) before deleting it.
* A heartbeat extends every held message before half its visibility timeout has passed
  (``ChangeMessageVisibilityBatch``, 10 a call), until it is acked or released, also while
  draining. A message received again while held keeps one identity: the newest receipt handle
  replaces the old one and it is not handed out twice.
* ``ack()`` queues a delete; deletes go out as ``DeleteMessageBatch`` of up to 10 after a short
  linger; failed entries are retried, a stale receipt handle is logged (the message was given to
  someone else and will be deduplicated by the ledger), never fatal.
* ``retry_later(delay)``: ``delay > 0`` makes it visible again after ``max(delay, backoff)``
  where backoff grows exponentially with the receive count; ``delay == 0`` releases it now.
* ``close()`` (the Source contract, called when intake ends) stops receiving and releases
  (visibility 0) what was received but not handed out; heartbeats and deletes go on while the
  pipeline drains. ``aclose()`` (on the exit stack) releases handed-out messages never acked,
  flushes deletes and stops the heartbeat.
* ``once``: ``batches()`` ends when two receives in a row came back empty and nothing is held.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack
from typing import Any

import structlog
from aiobotocore.session import get_session

from daemon.core.aws import aws_client
from daemon.core.config import Config
from daemon.sources.base import Message, Poison
from daemon.sources.s3events import decode_body
from daemon.sources.sqs_calls import SqsCalls, error_code, freeze_user_agent
from daemon.sources.sqs_http import open_thin_sqs
from daemon.sources.sqs_message import SqsMessage, retry_visibility
from workers.retry import Backoff

log = structlog.get_logger()

RECEIVE_BACKOFF = Backoff(base=0.4, cap=20.0, random=random.random)  # after a failed ReceiveMessage


class SqsSource:
    """See the module docstring. Use as ``async with`` or ``start()`` / ``close()``."""

    name = "sqs"
    exhausted = False  # more may come: waiting annotations wait out their deadline

    def __init__(
        self,
        client: Any,
        *,
        queue_url: str,
        receivers: int = 4,
        wait_time_seconds: int = 20,
        visibility_timeout: int = 120,
        max_receive_count: int = 5,
        dead_letter_queue_url: str = "",
        skip_removed: bool = True,
        max_in_flight: int = 1000,
        once: bool = False,
        delete_linger: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
        hot: Any = None,
    ) -> None:
        self._client = client
        # the receive/delete/visibility-batch calls: the thin client when given, else aiobotocore's
        self._hot = hot or client
        self.queue_url = queue_url
        self._receivers = receivers
        self._wait = wait_time_seconds
        self._visibility = max(2, visibility_timeout)
        self._max_receive = max_receive_count
        self._dlq = dead_letter_queue_url
        self._skip_removed = skip_removed
        self._max_in_flight = max(10, max_in_flight)
        self._once = once
        self._linger = delete_linger
        self._clock = clock
        self._held: dict[str, SqsMessage] = {}
        # batches received but not taken by the pipeline: at most `_slots` of them (backpressure);
        # the queue itself is unbounded so the end-of-stream marker never blocks
        self._ready: asyncio.Queue[list[SqsMessage] | None] = asyncio.Queue()
        self._slots = asyncio.Semaphore(max(2, receivers))
        self._reserved = 0
        self._room = asyncio.Event()
        self._room.set()
        self._recv_tasks: list[asyncio.Task[None]] = []
        self._polling: set[asyncio.Task[Any]] = set()
        self._bg_tasks: list[asyncio.Task[None]] = []
        self._empty_streak = 0
        self._finished = False
        self._stopping = False
        self.stats = dict.fromkeys(
            ("received", "deleted", "extended", "released", "poison", "skipped", "stale"), 0
        )
        self._calls = SqsCalls(self._hot, queue_url, linger=delete_linger, clock=clock, stats=self.stats)

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._bg_tasks:
            return
        self._calls.start()
        self._bg_tasks = [asyncio.create_task(self._heartbeat(), name="sqs-heartbeat")]
        self._recv_tasks = [
            asyncio.create_task(self._receiver(i), name=f"sqs-receiver-{i}") for i in range(self._receivers)
        ]

    async def __aenter__(self) -> SqsSource:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def batches(self) -> AsyncIterator[list[Message]]:
        await self.start()
        while (batch := await self._ready.get()) is not None:
            self._slots.release()
            while not self._ready.empty():  # receives answered meanwhile: one intake round for all
                if (more := self._ready.get_nowait()) is None:
                    self._ready.put_nowait(None)  # the end, after these
                    break
                self._slots.release()
                batch = batch + more
            live: list[Message] = []
            for m in batch:
                if m.state == "held":
                    m.state = "handed"
                    live.append(m)
            if live:
                yield live

    async def close(self) -> None:
        """Stop pulling; release what was received but not handed out (the Source contract).

        Heartbeats and deletes go on: the pipeline acks (or gives back) what it holds after
        this, while it drains. :meth:`aclose` ends everything.
        """
        if self._stopping:
            return
        self._stopping = True
        # A receive cancelled mid-flight loses what SQS already handed it (invisible for the
        # whole visibility timeout): let running receives answer (<= WaitTimeSeconds), cancel
        # only receivers that are waiting for room.
        idle = [t for t in self._recv_tasks if t not in self._polling]
        for t in idle:
            t.cancel()
        busy = [t for t in self._recv_tasks if t in self._polling]
        if busy:
            _, late = await asyncio.wait(busy, timeout=self._wait + 5)
            for t in late:
                t.cancel()
        await asyncio.gather(*self._recv_tasks, return_exceptions=True)
        while not self._ready.empty():
            if self._ready.get_nowait() is not None:
                self._slots.release()
        await self._release([m for m in self._held.values() if m.state == "held"])
        self._ready.put_nowait(None)

    async def aclose(self) -> None:
        """Final shutdown, after the pipeline has drained: release every message still not
        acked (visibility 0, another instance takes it at once), send the queued deletes,
        stop the heartbeat."""
        await self.close()
        await self._release([m for m in self._held.values() if m.state != "done"])
        await self._calls.close()
        for t in self._bg_tasks:
            t.cancel()
        await asyncio.gather(*self._bg_tasks, return_exceptions=True)
        self._bg_tasks = []

    # -- receiving -------------------------------------------------------------------------------
    async def _receiver(self, index: int) -> None:
        failures = 0
        while not self._stopping and not self._finished:
            while not self._has_room():
                self._room.clear()
                await self._room.wait()
            want = min(10, self._room_left())  # room for this receive's answer: receivers never overshoot
            self._reserved += want
            me = asyncio.current_task()
            assert me is not None
            self._polling.add(me)
            try:
                try:
                    resp = await self._hot.receive_message(
                        QueueUrl=self.queue_url,
                        MaxNumberOfMessages=want,
                        WaitTimeSeconds=self._wait,
                        VisibilityTimeout=self._visibility,
                        MessageSystemAttributeNames=["ApproximateReceiveCount"],
                    )
                finally:
                    self._polling.discard(me)
            except asyncio.CancelledError:
                self._reserved -= want
                raise
            except Exception as e:
                self._reserved -= want
                failures += 1
                pause = RECEIVE_BACKOFF.delay(failures - 1)  # the daemon's retry policy (full jitter)
                log.warning("sqs.receive_failed", receiver=index, error=error_code(e), retry_in=pause)
                await asyncio.sleep(pause)
                continue
            self._reserved -= want
            if self._has_room():
                self._room.set()  # another receiver may wait on the room this one reserved
            failures = 0
            messages = resp.get("Messages") or ()
            if not messages:
                self._empty_streak += 1
                self._check_finished()
                continue
            self._empty_streak = 0
            batch = self._accept(messages)
            if batch and not (self._stopping or self._finished):
                await self._slots.acquire()
                self._ready.put_nowait(batch)
            elif batch:  # nobody will take them any more: give them back at once
                await self._release(batch)

    def _accept(self, messages: Sequence[dict[str, Any]]) -> list[SqsMessage]:
        now = self._clock()
        visible_at = now + self._visibility
        batch: list[SqsMessage] = []
        for raw in messages:
            self.stats["received"] += 1
            msg_id, receipt, body = raw["MessageId"], raw["ReceiptHandle"], raw.get("Body") or ""
            held = self._held.get(msg_id)
            if held is not None:  # received again while ours (a heartbeat failed): newest handle wins
                held.receipt, held.visible_at = receipt, visible_at
                continue
            count = int((raw.get("Attributes") or {}).get("ApproximateReceiveCount", "1"))
            poison = Poison(count, self._max_receive) if count > self._max_receive else None
            d = decode_body(body, skip_removed=self._skip_removed)
            error = d.error if poison is None or d.error is None else f"{poison}; {d.error}"
            m = SqsMessage(
                self,
                msg_id=msg_id,
                receipt=receipt,
                raw=body.encode(),
                refs=d.refs,
                error=error,
                receive_count=count,
                poison=poison,
                visible_at=visible_at,
            )
            if poison is not None:
                self.stats["poison"] += 1
            if not d.refs and d.error is None:
                self.stats["skipped"] += 1
                log.info("sqs.skipped", message_id=msg_id, skipped=d.skipped)
                self._held[msg_id] = m
                self._finish(m)
                self._calls.delete(m)
                continue
            self._held[msg_id] = m
            batch.append(m)
        if not self._has_room():
            self._room.clear()
        return batch

    def _room_left(self) -> int:
        return self._max_in_flight - len(self._held) - self._reserved

    def _has_room(self) -> bool:
        """Room for at least one more message (a receive asks for no more than is left)."""
        return self._room_left() >= 1

    def _finish(self, m: SqsMessage) -> None:
        m.state = "done"
        self._held.pop(m.id, None)
        if self._has_room():
            self._room.set()
        self._check_finished()

    def _check_finished(self) -> None:
        if self._once and not self._finished and self._empty_streak >= 2 and not self._held:
            self._finished = True
            self._ready.put_nowait(None)

    # -- acknowledgement -------------------------------------------------------------------------
    async def ack(self, m: SqsMessage) -> None:
        """Final: copy to the dead-letter queue if it was dead-lettered, then delete (batched)."""
        if m.state == "done":
            return
        if (m.error is not None or m.poison is not None) and self._dlq:
            await self._send_to_dlq(m)
        self._finish(m)
        self._calls.delete(m)

    async def retry_later(self, m: SqsMessage, delay: float) -> None:
        if m.state == "done":
            return
        seconds = 0 if delay <= 0 else retry_visibility(delay, m.receive_count)
        self._finish(m)
        try:
            await self._client.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=m.receipt, VisibilityTimeout=seconds
            )
        except Exception as e:
            log.warning("sqs.retry_later_failed", message_id=m.id, error=error_code(e))

    async def extend(self, msgs: Sequence[SqsMessage]) -> None:
        """Extend visibility of held messages now (the heartbeat does this on its own)."""
        live = [m for m in msgs if m.state != "done"]
        await self._calls.change_visibility(live, self._visibility)

    async def _send_to_dlq(self, m: SqsMessage) -> None:
        try:
            await self._client.send_message(
                QueueUrl=self._dlq,
                MessageBody=(m.raw or b"").decode(),
                MessageAttributes={
                    "ingestd-error": {"DataType": "String", "StringValue": (m.error or str(m.poison))[:1000]},
                    "ingestd-source-queue": {"DataType": "String", "StringValue": self.queue_url},
                },
            )
        except Exception as e:  # the ledger has it; the SQS copy is a convenience
            log.warning("sqs.dlq_send_failed", message_id=m.id, error=error_code(e))

    async def _release(self, msgs: Sequence[SqsMessage]) -> None:
        for m in msgs:
            self._finish(m)
        if msgs:
            self.stats["released"] += len(msgs)
            await self._calls.change_visibility(msgs, 0)

    async def _heartbeat(self) -> None:
        """Every tick, extend held messages of which 40 % of the visibility timeout has passed."""
        tick = min(10.0, max(0.1, self._visibility / 10))
        while True:
            await asyncio.sleep(tick)
            threshold = self._clock() + self._visibility * 0.6
            due = [m for m in self._held.values() if m.visible_at <= threshold]
            if due:
                await self._calls.change_visibility(due, self._visibility)


async def open_sqs_source(
    cfg: Config, stack: AsyncExitStack, *, once: bool = False, session: Any = None
) -> SqsSource:
    """Build the ``sqs`` source from config: one aiobotocore client entered on ``stack`` and, for
    the hot calls, a thin client at the same endpoint (``[aws] endpoints.sqs``, else
    ``endpoint_url``) with the same credential chain."""

    s = cfg.source
    session = session or get_session()
    client = await aws_client(
        stack,
        cfg.aws,
        "sqs",
        session=session,
        attempts=3,
        max_pool_connections=s.receivers + 8,
        read_timeout=s.wait_time_seconds + 10,
        connect_timeout=5,
        parameter_validation=False,
    )
    freeze_user_agent(client)
    hot = await open_thin_sqs(
        client, session, stack, connections=s.receivers + 8, read_timeout=s.wait_time_seconds + 10
    )
    source = SqsSource(
        client,
        hot=hot,
        queue_url=s.queue_url,
        receivers=s.receivers,
        wait_time_seconds=s.wait_time_seconds,
        visibility_timeout=s.visibility_timeout,
        max_receive_count=s.max_receive_count,
        dead_letter_queue_url=s.dead_letter_queue_url,
        skip_removed=s.skip_removed,
        max_in_flight=cfg.pipeline.max_in_flight,
        once=once,
    )
    stack.push_async_callback(source.aclose)
    await source.start()
    return source


__all__ = ["SqsMessage", "SqsSource", "freeze_user_agent", "open_sqs_source", "retry_visibility"]
