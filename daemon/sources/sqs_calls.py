"""Batched SQS control calls for the ``sqs`` source: visibility changes and deletes.

``ChangeMessageVisibilityBatch`` and ``DeleteMessageBatch`` take up to 10 entries and answer per
entry. Failed delete entries are retried with backoff; a stale receipt handle (the message was
received again, by us or by another instance) is logged, never fatal: the ledger deduplicates.
:func:`freeze_user_agent` trims botocore's per-call CPU on the source's client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import structlog

log = structlog.get_logger()

STALE_HANDLE = frozenset({"ReceiptHandleIsInvalid", "MessageNotInflight", "InvalidParameterValue"})
BATCH = 10


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
        self, client: Any, queue_url: str, *, linger: float, clock: Callable[[], float], stats: dict[str, int]
    ) -> None:
        self._client = client
        self._queue_url = queue_url
        self._linger = linger
        self._clock = clock
        self._stats = stats
        self._deletes: asyncio.Queue[Held | None] = asyncio.Queue()
        self._calls: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._deleter(), name="sqs-deleter")

    def delete(self, m: Held) -> None:
        if self._task is None:  # after close: send it alone rather than lose it
            task = asyncio.create_task(self._delete_chunk([m]))
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)
            return
        self._deletes.put_nowait(m)

    async def close(self) -> None:
        """Send every queued delete (waiting for the calls to finish), then stop."""
        if self._task is None:
            return
        self._deletes.put_nowait(None)
        await self._task
        self._task = None
        if self._calls:
            await asyncio.gather(*self._calls, return_exceptions=True)

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
            task = asyncio.create_task(self._delete_chunk(chunk))
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)

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
        for attempt in range(6):
            entries = [{"Id": str(i), "ReceiptHandle": m.receipt} for i, m in enumerate(chunk)]
            try:
                resp = await self._client.delete_message_batch(QueueUrl=self._queue_url, Entries=entries)
            except Exception as e:
                log.warning("sqs.delete_failed", count=len(chunk), attempt=attempt, error=error_code(e))
                await asyncio.sleep(min(5.0, 0.2 * 2**attempt))
                continue
            self._stats["deleted"] += len(resp.get("Successful") or ())
            retry: list[Held] = []
            for f in resp.get("Failed") or ():
                m = chunk[int(f["Id"])]
                if f.get("Code") in STALE_HANDLE:
                    self._stats["stale"] += 1
                    log.warning("sqs.delete_stale_handle", message_id=m.id, code=f.get("Code"))
                else:
                    retry.append(m)
            if not retry:
                return
            chunk = retry
            await asyncio.sleep(min(5.0, 0.2 * 2**attempt))
        log.error("sqs.delete_gave_up", message_ids=[m.id for m in chunk])


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
