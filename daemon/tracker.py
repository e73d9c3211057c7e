"""Acknowledgement tracking: a message is acknowledged once every one of its jobs is final.

Outcomes per job: ``delivered``, ``duplicate``, ``dead``, ``gone`` are final; ``retry``
(transient failure) and ``release`` (shutdown before the job started) are not: when the last
job of a message settles and any of them asked for a retry, the message is given back to the
source (``retry_later``) instead of acknowledged, so nothing is lost. Acknowledgements are
shielded from cancellation: once the sink has accepted the work, a shutdown does not interrupt
the delete.
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
    attempts: list[str] = field(default_factory=list)


class Tracker:
    def __init__(self, counters: Counters, *, retry_delay: float = 5.0) -> None:
        self.counters = counters
        self.retry_delay = retry_delay
        self._entries: dict[str, _Entry] = {}

    def add(self, msg: Message, n_jobs: int) -> None:
        self._entries[msg.id] = _Entry(msg, n_jobs)

    def __len__(self) -> int:
        return len(self._entries)

    async def settle(self, message_id: str, outcome: Outcome, *, delay: float | None = None) -> None:
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
            await self._finish(entry)

    async def _finish(self, entry: _Entry) -> None:
        msg = entry.msg
        try:
            if entry.retry is None:
                await asyncio.shield(msg.ack())
                self.counters.acked += 1
            else:
                await asyncio.shield(msg.retry_later(entry.retry))
        except asyncio.CancelledError:
            raise
        except Exception as e:
            # The work itself is recorded in the ledger; a failed ack only means the message
            # comes back and is recognised as a duplicate.
            log.warning("acknowledgement failed", message_id=msg.id, reason=str(e))

    async def release_all(self) -> None:
        """Give back every message not yet settled (drain deadline passed)."""
        entries, self._entries = list(self._entries.values()), {}
        for entry in entries:
            try:
                await asyncio.shield(entry.msg.retry_later(0.0))
            except Exception as e:
                log.warning("release failed", message_id=entry.msg.id, reason=str(e))
