"""The waiting room: annotation jobs parked until their media is final.

A sidecar that arrives before its media (or while the media is still being probed or delivered)
is parked here, holding its in-flight slot and leaving its message unacknowledged (the SQS
heartbeat keeps it invisible). It leaves:

* when the media's job settles in this process (:meth:`media_settled`, called by the stages), or
  the ledger shows the media final (read every ``recheck`` seconds, for media delivered by another
  instance): back to the probe queue, where the annotation stage now finds the media final;
* when ``wait`` seconds pass: a dead letter ``annotation.media_missing`` ("media never arrived");
* when nothing else can arrive: the source has ended (``--once``) and every other job is final,
  so the media is not coming in this run (a dead letter, ``dlq requeue`` brings it back), or the
  daemon is draining (given back to the source, taken again at the next start).

At most ``capacity`` jobs are parked; beyond that the annotation is given back to the source
(its slot is freed so media can come in), unless its media is already in flight here: that media
settles without needing another slot, so the annotation waits over capacity (each parked job holds
an in-flight slot, so ``pipeline.max_in_flight`` still bounds the room). A give-back costs the
message one of the source's attempts, so one given back while its media was in flight could be
abandoned although the media arrived (the run then ended unfinished, exit 1).
Time is injected (``clock``, and ``wall`` for the age ``status`` shows); the room never sleeps
longer than ``recheck``.

What waits is visible: live in ``/status`` and ``/metrics`` (:meth:`WaitingRoom.figure`), and in
the ledger (checkpoint ``annotations.waiting``, a :class:`WaitingFigure` written when the figure
changes, at most every ``recheck`` seconds unless the room emptied), which the offline ``status``
reads. At a drain the figure kept is what was given back (it waits again at the next start). With
several instances on one PostgreSQL ledger the figure is the last writer's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import msgspec
import structlog

from daemon.core.jobs import Job
from daemon.ledger.records import fold
from daemon.ledger.store import LedgerStore

log = structlog.get_logger()


WAITING = "annotations.waiting"  # the ledger checkpoint holding the room's figure


class WaitingFigure(msgspec.Struct, forbid_unknown_fields=True):
    """Annotations waiting for their media: how many, since when the oldest waits (epoch s),
    when this was recorded, and whether they were given back at a stop (waiting for a restart)."""

    count: int
    oldest: float | None = None
    at: float = 0.0
    stopped: bool = False


@dataclass(slots=True)
class Parked:
    job: Job
    media_key: str
    deadline: float
    since: float = 0.0  # wall clock when parked


@dataclass(slots=True)
class WaitingRoom:
    ledger: LedgerStore
    wait: float
    recheck: float
    capacity: int
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    parked: dict[str, list[Parked]] = field(default_factory=dict)  # folded media key -> jobs
    settled: set[str] = field(default_factory=set)  # folded media keys that settled here
    closed: bool = False  # set by the drain once the room is empty: nothing is parked after it
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _empty: asyncio.Event = field(default_factory=asyncio.Event)
    _count: int = 0  # parked, plus taken out but not yet handed back (resume/expire in progress)
    _recorded: tuple[int, float | None] | None = None  # the figure last written to the ledger
    _recorded_at: float = float("-inf")

    def __post_init__(self) -> None:
        self._empty.set()

    def __len__(self) -> int:
        return self._count

    def park(self, job: Job, media_key: str, *, media_in_flight: bool = False) -> bool:
        """Park ``job`` until ``media_key`` is final; False if the room is closed, or full and
        the media is not ``media_in_flight`` here."""
        if self.closed or (self._count >= self.capacity and not media_in_flight):
            return False
        parked = Parked(job, media_key, self.clock() + self.wait, self.wall())
        self.parked.setdefault(fold(media_key), []).append(parked)
        self._count += 1
        self._empty.clear()
        self._wake.set()
        return True

    def _done(self, n: int) -> None:
        self._count -= n
        if self._count == 0:
            self._empty.set()

    async def emptied(self) -> None:
        """Wait until nothing is parked and nothing taken out is still being handed back."""
        await self._empty.wait()

    def figure(self) -> WaitingFigure:
        """What waits now (parked jobs only; ``oldest`` is None when none)."""
        since = [p.since for ps in self.parked.values() for p in ps]
        return WaitingFigure(len(since), min(since) if since else None, self.wall())

    async def record(self, *, stopped: bool = False, force: bool = False) -> None:
        """Write the figure to the ledger when it changed: at once when the room emptied (or
        ``force``), otherwise at most every ``recheck`` seconds."""
        fig = self.figure()
        fig.stopped = stopped
        now = self.clock()
        if (fig.count, fig.oldest) == self._recorded and not force:
            return
        if not (force or fig.count == 0 or now - self._recorded_at >= self.recheck):
            return
        await self.ledger.put_checkpoint(WAITING, msgspec.json.encode(fig).decode())
        self._recorded, self._recorded_at = (fig.count, fig.oldest), now

    def media_settled(self, global_key: str) -> None:
        """A job settled in this process: wake the room (cheap when nothing is parked); what
        waited for this key leaves, and the room sees whether anything else is still coming."""
        if self.parked:
            if (k := fold(global_key)) in self.parked:
                self.settled.add(k)
            self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def _take(self, keys: set[str]) -> list[Parked]:
        """Out of the room; still counted until :meth:`_done` (so the drain waits for the hand-back)."""
        out: list[Parked] = []
        for k in keys:
            out.extend(self.parked.pop(k, ()))
        return out

    def expired(self, now: float) -> list[Parked]:
        out: list[Parked] = []
        for k in list(self.parked):
            stay = [p for p in self.parked[k] if p.deadline > now]
            out.extend(p for p in self.parked[k] if p.deadline <= now)
            if stay:
                self.parked[k] = stay
            else:
                del self.parked[k]
        return out

    def everything(self) -> list[Parked]:
        return self._take(set(self.parked))

    async def run(
        self,
        *,
        resume: Callable[[Job], Awaitable[None]],
        expire: Callable[[Parked, str], Awaitable[None]],
        give_back: Callable[[Job], None],
        stuck: Callable[[], str | None],
    ) -> None:
        """Serve the room until cancelled. ``stuck()`` says why nothing more can arrive:
        ``"once"`` (the source ended and only parked jobs remain), ``"drain"`` (stopping) or None."""
        last_check = float("-inf")  # the first pass with something parked reads the ledger
        while True:
            now = self.clock()
            timeout = self.recheck
            if self.parked:
                soonest = min(p.deadline for ps in self.parked.values() for p in ps)
                timeout = max(0.0, min(timeout, soonest - now))
            try:
                async with asyncio.timeout(timeout if self.parked else None):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            if not self.parked:
                self.settled.clear()
                await self.record()
                continue
            now = self.clock()
            ready = self.settled & set(self.parked)
            self.settled.clear()
            if now - last_check >= self.recheck:
                last_check = now
                keys = [ps[0].media_key for ps in self.parked.values()]
                ready |= set(await self.ledger.final_states(keys)) & set(self.parked)
            for p in (taken := self._take(ready)):
                await resume(p.job)
            self._done(len(taken))
            for p in (taken := self.expired(now)):
                await expire(p, f"within {self.wait:g} s (annotations.media_wait_seconds)")
            self._done(len(taken))
            why = stuck()
            if why == "once":
                for p in (taken := self.everything()):
                    await expire(p, "in this run: the source has ended without it")
                self._done(len(taken))
            elif why == "drain":
                if self.parked:  # what is given back waits again at the next start: kept
                    await self.record(stopped=True, force=True)
                    self._recorded = (0, None)
                for p in (taken := self.everything()):
                    give_back(p.job)
                self._done(len(taken))
                continue
            await self.record()
