"""The ``s3-listing`` source: backfill a bucket/prefix with ListObjectsV2, resumable.

Each listed object (optionally only keys ending in ``suffix``) is one message with one ref.
The position is the last key of the newest page whose every object is final (acked); it is
stored through :class:`Checkpoints` (the ledger implements it) and a restart lists from there
(``StartAfter``), so at most the unfinished pages are listed again. Objects already known are
skipped by the pipeline's intake, not here.

``retry_later(delay)`` hands the message out again after ``delay`` seconds (the page stays
unfinished meanwhile). ``batches()`` ends when the listing is exhausted and every object is
final. New objects that sort before the checkpoint are not seen by a resumed backfill: events
(the ``sqs`` source) are the way to follow a live bucket.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any, Protocol

import structlog

from daemon.core.aws import aws_client
from daemon.core.config import Config
from daemon.core.jobs import ObjectRef
from daemon.sources.base import Message, Poison

log = structlog.get_logger()


class Checkpoints(Protocol):
    """Where a resumable source keeps its position (implemented by the ledger)."""

    async def get_checkpoint(self, name: str) -> str | None: ...

    async def put_checkpoint(self, name: str, value: str) -> None: ...


class _Page:
    __slots__ = ("last_key", "outstanding")

    def __init__(self, last_key: str, outstanding: int) -> None:
        self.last_key = last_key
        self.outstanding = outstanding


class ListingMessage:
    """One listed object (implements :class:`daemon.sources.base.Message`)."""

    __slots__ = ("_page", "_ref", "_source", "done")

    def __init__(self, source: ListingSource, page: _Page, ref: ObjectRef) -> None:
        self._source = source
        self._page = page
        self._ref = ref
        self.done = False

    @property
    def id(self) -> str:
        return f"s3://{self._ref.bucket}/{self._ref.key}"

    @property
    def refs(self) -> list[ObjectRef]:
        return [self._ref]

    @property
    def raw(self) -> bytes | None:
        return None

    @property
    def error(self) -> str | None:
        return None

    @property
    def poison(self) -> Poison | None:
        return None

    async def ack(self) -> None:
        await self._source.finished(self)

    async def retry_later(self, delay: float) -> None:
        self._source.again(self, delay)

    async def extend(self) -> None:
        return None


class ListingSource:
    """See the module docstring."""

    name = "s3-listing"
    exhausted = False  # more may come: waiting annotations wait out their deadline

    def __init__(
        self,
        client: Any,
        checkpoints: Checkpoints,
        *,
        bucket: str,
        prefix: str = "",
        suffix: str = "",
        max_in_flight: int = 4096,
        page_size: int = 1000,
        batch_size: int = 100,
    ) -> None:
        self._client = client
        self._ckpt = checkpoints
        self.bucket = bucket
        self.prefix = prefix
        self.suffix = suffix
        self.checkpoint_name = f"s3-listing:{bucket}/{prefix}"
        self._max_in_flight = max_in_flight
        self._page_size = page_size
        self._batch = batch_size
        self._pages: deque[_Page] = deque()
        self._outstanding = 0
        self._retries: list[ListingMessage] = []
        self._timers: set[asyncio.TimerHandle] = set()
        self._changed = asyncio.Event()
        self.position: str | None = None
        self.stats = {"listed": 0, "pages": 0, "acked": 0, "retried": 0}

    async def batches(self) -> AsyncIterator[list[Message]]:
        self.position = await self._ckpt.get_checkpoint(self.checkpoint_name)
        if self.position:
            log.info("listing.resume", bucket=self.bucket, prefix=self.prefix, after=self.position)
        token: str | None = None
        exhausted = False
        while True:
            if self._retries:
                again, self._retries = self._retries, []
                yield list(again)
                continue
            if not exhausted and self._outstanding < self._max_in_flight:
                token, msgs = await self._list_page(token)
                exhausted = token is None
                for i in range(0, len(msgs), self._batch):
                    yield list(msgs[i : i + self._batch])
                continue
            if exhausted and self._outstanding == 0:
                log.info("listing.done", bucket=self.bucket, prefix=self.prefix, listed=self.stats["listed"])
                return
            self._changed.clear()
            await self._changed.wait()

    async def _list_page(self, token: str | None) -> tuple[str | None, list[ListingMessage]]:
        kw: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix, "MaxKeys": self._page_size}
        if token:
            kw["ContinuationToken"] = token
        elif self.position:
            kw["StartAfter"] = self.position
        resp = await self._client.list_objects_v2(**kw)
        contents = resp.get("Contents") or []
        self.stats["pages"] += 1
        msgs: list[ListingMessage] = []
        if contents:
            page = _Page(contents[-1]["Key"], 0)
            for o in contents:
                if o["Key"].endswith(self.suffix):
                    ref = ObjectRef(
                        origin="s3",
                        bucket=self.bucket,
                        key=o["Key"],
                        size=o.get("Size"),
                        etag=o.get("ETag", "").strip('"') or None,
                    )
                    msgs.append(ListingMessage(self, page, ref))
            page.outstanding = len(msgs)
            self._pages.append(page)
            self._outstanding += len(msgs)
            self.stats["listed"] += len(msgs)
            await self._advance()
        return (resp.get("NextContinuationToken") if resp.get("IsTruncated") else None), msgs

    async def finished(self, m: ListingMessage) -> None:
        if m.done:
            return
        m.done = True
        m._page.outstanding -= 1
        self._outstanding -= 1
        self.stats["acked"] += 1
        await self._advance()
        self._changed.set()

    def again(self, m: ListingMessage, delay: float) -> None:
        if m.done:
            return
        self.stats["retried"] += 1
        if delay <= 0:
            self._retries.append(m)
            self._changed.set()
            return

        def due() -> None:
            self._timers.discard(handle)
            if not m.done:
                self._retries.append(m)
                self._changed.set()

        handle = asyncio.get_running_loop().call_later(delay, due)
        self._timers.add(handle)

    async def _advance(self) -> None:
        """Move the checkpoint over the contiguous prefix of finished pages."""
        last = None
        while self._pages and self._pages[0].outstanding == 0:
            last = self._pages.popleft().last_key
        if last is not None and last != self.position:
            self.position = last
            await self._ckpt.put_checkpoint(self.checkpoint_name, last)

    async def close(self) -> None:
        for t in self._timers:
            t.cancel()
        self._timers.clear()


async def open_listing_source(
    cfg: Config, stack: AsyncExitStack, checkpoints: Checkpoints, *, session: Any = None
) -> ListingSource:
    """Build the ``s3-listing`` source from config: one aiobotocore S3 client entered on ``stack``."""
    s = cfg.source
    client = await aws_client(stack, cfg.aws, "s3", session=session)
    source = ListingSource(
        client,
        checkpoints,
        bucket=s.bucket,
        prefix=s.prefix,
        suffix=s.suffix,
        max_in_flight=cfg.pipeline.max_in_flight,
    )
    stack.push_async_callback(source.close)
    return source
