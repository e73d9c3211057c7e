"""Messages of the local sources (spool, manifest): acknowledgements are in-process.

A local source ends in ``--once`` mode when its input is exhausted and every message it
handed out is acknowledged, or has used up its retries (then it is *abandoned* and counted:
the run did not bring every object to a final state).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import structlog

from daemon.core.jobs import ObjectRef
from daemon.sources.base import Poison

log = structlog.get_logger()


@dataclass(eq=False, slots=True)
class LocalMessage:
    id: str
    refs: list[ObjectRef]
    raw: bytes | None = None
    error: str | None = None
    attempts: int = 0
    poison: Poison | None = None
    tracker: Outstanding | None = field(default=None, repr=False)

    async def ack(self) -> None:
        if self.tracker is not None:
            self.tracker.done(self)

    async def retry_later(self, delay: float) -> None:
        if self.tracker is not None:
            self.tracker.retry(self, delay)

    async def extend(self) -> None:
        return None


class Outstanding:
    """Messages handed out and not yet acknowledged; schedules retries."""

    def __init__(self, max_attempts: int = 5) -> None:
        self.max_attempts = max_attempts
        self._out: set[str] = set()
        self.retries: asyncio.Queue[LocalMessage] = asyncio.Queue()
        self.abandoned: list[str] = []
        self._changed = asyncio.Event()
        self._timers: set[asyncio.TimerHandle] = set()

    def handed(self, msg: LocalMessage) -> None:
        msg.tracker = self
        msg.attempts += 1
        self._out.add(msg.id)

    def done(self, msg: LocalMessage) -> None:
        self._out.discard(msg.id)
        self._changed.set()

    def retry(self, msg: LocalMessage, delay: float) -> None:
        if msg.attempts >= self.max_attempts:
            log.error(
                "message abandoned",
                message_id=msg.id,
                attempts=msg.attempts,
                reason="transient failures exhausted the attempts",
            )
            self.abandoned.append(msg.id)
            self.done(msg)
            return
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def fire() -> None:
            self._timers.discard(handle)
            self.retries.put_nowait(msg)
            self._changed.set()

        handle = loop.call_later(max(0.0, delay), fire)
        self._timers.add(handle)

    @property
    def count(self) -> int:
        return len(self._out)

    @property
    def idle(self) -> bool:
        """No retry scheduled or waiting to be handed out."""
        return not self._timers and self.retries.empty()

    async def changed(self) -> None:
        await self._changed.wait()
        self._changed.clear()

    def cancel(self) -> None:
        """Drop scheduled retries and wake the source's iterator so it sees it is closed."""
        for t in self._timers:
            t.cancel()
        self._timers.clear()
        self._changed.set()
