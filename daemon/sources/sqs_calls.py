"""Batched SQS control calls for the ``sqs`` source: visibility changes and deletes.

``ChangeMessageVisibilityBatch`` and ``DeleteMessageBatch`` take up to 10 entries and answer per
entry. A failed delete (the call, or an entry) goes back to the one deleter after a delay from the
daemon's retry policy (:class:`workers.retry.Backoff`, full jitter), at most ``DELETE_ATTEMPTS``
times per message; after that it is logged and left: the message becomes visible again and the
ledger settles it as a duplicate. A stale receipt handle (the message was received again, by us or
by another instance) is logged, never retried. ``close()`` waits for retries still due.
:func:`freeze_user_agent` trims botocore's per-call CPU on the source's client.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import structlog

from workers.retry import Backoff

log = structlog.get_logger()

STALE_HANDLE = frozenset({"ReceiptHandleIsInvalid", "MessageNotInflight", "InvalidParameterValue"})
BATCH = 10
DELETE_ATTEMPTS = 6  # per message, counting the first
DELETE_BACKOFF = Backoff(base=0.2, cap=5.0, random=random.random)


class Held(Protocol):
    """What the calls need of a message: its id, newest receipt handle and visibility deadline."""

    @property
    def id(self) -> str: ...

    receipt: str
    visible_at: float


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError or a thin-client SqsError, else the class name."""
    code = getattr(exc, "code", None)
    if isinstance(code, str) and code:
        return code
    resp = getattr(exc, "response", None)
    if isinstance(resp, dict):
        return str(resp.get("Error", {}).get("Code", "")) or type(exc).__name__
    return type(exc).__name__


class SqsCalls:
    """One queue's batched calls. ``delete()`` queues; a background task sends the batches."""

    def __init__(
        self,
        client: Any,
        queue_url: str,
        *,
        linger: float,
        clock: Callable[[], float],
        stats: dict[str, int],
        backoff: Backoff = DELETE_BACKOFF,
    ) -> None:
        self._client = client
        self._queue_url = queue_url
        self._linger = linger
        self._clock = clock
        self._stats = stats
        self._backoff = backoff
        self._deletes: asyncio.Queue[Held | None] = asyncio.Queue()
        self._calls: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._failures: dict[str, int] = {}  # message id -> failed delete attempts so far
        self._timers: set[asyncio.TimerHandle] = set()  # retries not yet due
        self._quiet = asyncio.Event()  # a call or a retry timer finished (close waits on it)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._deleter(), name="sqs-deleter")

    def delete(self, m: Held) -> None:
        if self._task is None or self._task.done():  # after close: send it alone rather than lose it
            self._send([m])
            return
        self._deletes.put_nowait(m)

    def _send(self, chunk: list[Held]) -> None:
        task = asyncio.create_task(self._delete_chunk(chunk))
        self._calls.add(task)
        task.add_done_callback(self._call_done)

    def _call_done(self, task: asyncio.Task[None]) -> None:
        self._calls.discard(task)
        self._quiet.set()

    async def close(self) -> None:
        """Send every queued delete and wait for the calls and for retries still due, then stop."""
        if self._task is not None:
            self._deletes.put_nowait(None)
            await self._task
            self._task = None
        while self._calls or self._timers:
            self._quiet.clear()
            await self._quiet.wait()

    # -- visibility ----------------------------------------------------------------------------
    async def change_visibility(self, msgs: Sequence[Held], seconds: int) -> None:
        chunks = [msgs[i : i + BATCH] for i in range(0, len(msgs), BATCH)]
        await asyncio.gather(*(self._visibility_chunk(c, seconds) for c in chunks))

    async def _visibility_chunk(self, chunk: Sequence[Held], seconds: int) -> None:
        entries = [
            {"Id": str(i), "ReceiptHandle": m.receipt, "VisibilityTimeout": seconds}
            for i, m in enumerate(chunk)
        ]
        sent_at = self._clock()
        try:
            resp = await self._client.change_message_visibility_batch(
                QueueUrl=self._queue_url, Entries=entries
            )
        except Exception as e:
            log.warning("sqs.visibility_failed", count=len(chunk), seconds=seconds, error=error_code(e))
            return
        for ok in resp.get("Successful") or ():
            chunk[int(ok["Id"])].visible_at = sent_at + seconds
            if seconds:
                self._stats["extended"] += 1
        for f in resp.get("Failed") or ():
            m = chunk[int(f["Id"])]
            log.warning("sqs.visibility_entry_failed", message_id=m.id, code=f.get("Code"), seconds=seconds)

    # -- deletes ---------------------------------------------------------------------------------
    async def _deleter(self) -> None:
        closing = False
        while not closing:
            first = await self._deletes.get()
            if first is None:
                return
            chunk = [first]
            deadline = self._clock() + self._linger
            while len(chunk) < BATCH:
                nxt = await self._next_delete(deadline)
                if isinstance(nxt, bool):
                    break
                if nxt is None:
                    closing = True
                    break
                chunk.append(nxt)
            self._send(chunk)

    async def _next_delete(self, deadline: float) -> Held | bool | None:
        """The next queued delete, None at close, False when the linger is over."""
        try:
            return self._deletes.get_nowait()
        except asyncio.QueueEmpty:
            pass
        remaining = deadline - self._clock()
        if remaining <= 0:
            return False
        try:
            async with asyncio.timeout(remaining):  # not wait_for: it can swallow a cancel (3.11)
                return await self._deletes.get()
        except TimeoutError:
            return False

    async def _delete_chunk(self, chunk: list[Held]) -> None:
        """One DeleteMessageBatch; what failed is handed to :meth:`_retry` (no loop here)."""
        entries = [{"Id": str(i), "ReceiptHandle": m.receipt} for i, m in enumerate(chunk)]
        try:
            resp = await self._client.delete_message_batch(QueueUrl=self._queue_url, Entries=entries)
        except Exception as e:
            self._retry(chunk, error_code(e))
            return
        failed: list[Held] = []
        codes: set[str] = set()
        for f in resp.get("Failed") or ():
            m = chunk[int(f["Id"])]
            if f.get("Code") in STALE_HANDLE:
                self._stats["stale"] += 1
                self._failures.pop(m.id, None)
                log.warning("sqs.delete_stale_handle", message_id=m.id, code=f.get("Code"))
            else:
                failed.append(m)
                codes.add(str(f.get("Code")))
        self._stats["deleted"] += len(resp.get("Successful") or ())
        for ok in resp.get("Successful") or ():
            self._failures.pop(chunk[int(ok["Id"])].id, None)
        if failed:
            self._retry(failed, ",".join(sorted(codes)))

    def _retry(self, msgs: list[Held], error: str) -> None:
        """Each message back to the deleter after the policy's delay, or given up."""
        for m in msgs:
            n = self._failures.get(m.id, 0) + 1
            if n >= DELETE_ATTEMPTS:
                self._failures.pop(m.id, None)
                log.error(
                    "sqs.delete_gave_up",
                    message_id=m.id,
                    attempts=n,
                    error=error,
                    reason="it becomes visible again and is settled as a duplicate",
                )
                continue
            self._failures[m.id] = n
            delay = self._backoff.delay(n - 1)
            log.warning(
                "sqs.delete_failed", message_id=m.id, attempt=n, error=error, retry_in=round(delay, 3)
            )
            self._later(m, delay)

    def _later(self, m: Held, delay: float) -> None:
        handle: asyncio.TimerHandle

        def due() -> None:
            self._timers.discard(handle)
            self._quiet.set()
            self.delete(m)  # to the deleter, or sent alone once it has closed

        handle = asyncio.get_running_loop().call_later(delay, due)
        self._timers.add(handle)


def freeze_user_agent(client: Any) -> None:
    """Build the client's User-Agent string once instead of twice per request.

    botocore re-sanitises every User-Agent component on every call (about a fifth of the CPU of
    a ReceiveMessage/DeleteMessageBatch in our profile). The only thing lost is the per-request
    SDK feature metadata in the header. Skipped silently if botocore's internals change.
    """
    creator = getattr(client, "_user_agent_creator", None)
    to_string = getattr(creator, "to_string", None)
    if creator is None or not callable(to_string):
        return
    value = to_string()
    creator.to_string = lambda: value
