"""Acknowledgement tracking: a message is acknowledged once every one of its jobs is final.

Outcomes per job: ``delivered``, ``duplicate``, ``dead``, ``gone`` are final; ``retry``
(transient failure) and ``release`` (shutdown before the job started) are not: when the last
job of a message settles and any of them asked for a retry, the message is given back to the
source (``retry_later``) instead of acknowledged, so nothing is lost.

Settled messages are handed to one acknowledging task that works through them in groups;
each group runs shielded from cancellation: once the sink has accepted the work, a shutdown
does not interrupt the delete. (One shielded task per group, not per message: at tens of
thousands of objects per second a task per acknowledgement is a visible cost.)
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal

import structlog

from daemon.sources.base import Message

log = structlog.get_logger()

Outcome = Literal["delivered", "duplicate", "dead", "gone", "retry", "release"]
FINAL: frozenset[str] = frozenset({"delivered", "duplicate", "dead", "gone"})


@dataclass(slots=True)
class Counters:
    messages: int = 0
    seen: int = 0
    delivered: int = 0
    duplicates: int = 0
    dead: int = 0
    gone: int = 0
    retried: int = 0
    released: int = 0
    acked: int = 0
    batches: int = 0
    probe_bytes: int = 0
    probe_requests: int = 0

    def count(self, outcome: Outcome) -> None:
        if outcome == "delivered":
            self.delivered += 1
        elif outcome == "duplicate":
            self.duplicates += 1
        elif outcome == "dead":
            self.dead += 1
        elif outcome == "gone":
            self.gone += 1
        elif outcome == "retry":
            self.retried += 1
        else:
            self.released += 1


@dataclass(slots=True)
class _Entry:
    msg: Message
    pending: int
    retry: float | None = None


@dataclass(slots=True)
class _Settled:
    msg: Message
    retry: float | None


@dataclass(slots=True)
class Tracker:
    counters: Counters
    retry_delay: float = 5.0
    _entries: dict[str, _Entry] = field(default_factory=dict)
    _settled: list[_Settled] = field(default_factory=list)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _idle: asyncio.Event = field(default_factory=asyncio.Event)
    _closed: bool = False

    def add(self, msg: Message, n_jobs: int, *, token: str | None = None) -> None:
        """Track ``msg`` until ``n_jobs`` settle under ``token`` (default: its id; the pipeline
        passes a per-receive token, since one message can be received twice)."""
        self._entries[token or msg.id] = _Entry(msg, n_jobs)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def unacked(self) -> int:
        return len(self._entries) + len(self._settled)

    def settle(self, message_id: str, outcome: Outcome, *, delay: float | None = None) -> None:
        """Record one job's outcome; the message is acknowledged when its last job settles."""
        self.counters.count(outcome)
        entry = self._entries.get(message_id)
        if entry is None:
            return
        if outcome == "retry":
            d = self.retry_delay if delay is None else delay
            entry.retry = d if entry.retry is None else max(entry.retry, d)
        elif outcome == "release" and entry.retry is None:
            entry.retry = 0.0
        entry.pending -= 1
        if entry.pending <= 0:
            del self._entries[message_id]
            self.finish(entry.msg, entry.retry)

    def finish(self, msg: Message, retry: float | None = None) -> None:
        """Queue an acknowledgement (``retry is None``) or a give-back for the acker task."""
        self._settled.append(_Settled(msg, retry))
        self._wake.set()

    async def run(self) -> None:
        """The acknowledging task: until :meth:`close`, then drain what is left."""
        while True:
            if self._settled:
                await self.flush()
            elif self._closed:
                return
            else:
                self._wake.clear()
                await self._wake.wait()

    async def flush(self) -> None:
        """Acknowledge (or give back) every settled message now, in shielded groups."""
        while self._settled:
            group, self._settled = self._settled, []
            await asyncio.shield(self._ack_group(group))

    def close(self) -> None:
        self._closed = True
        self._wake.set()

    async def _ack_group(self, group: list[_Settled]) -> None:
        for s in group:
            try:
                if s.retry is None:
                    await s.msg.ack()
                    self.counters.acked += 1
                else:
                    await s.msg.retry_later(s.retry)
            except Exception as e:
                # The work itself is recorded in the ledger; a failed ack only means the
                # message comes back and is recognised as a duplicate.
                event = "acknowledgement failed" if s.retry is None else "release failed"
                log.warning(event, message_id=s.msg.id, reason=str(e))

    async def release_all(self) -> None:
        """Give back every message not yet settled (drain deadline passed)."""
        entries, self._entries = list(self._entries.values()), {}
        for entry in entries:
            self.finish(entry.msg, 0.0)
        await self.flush()
