"""Intake: decode messages, make each object's global key, skip what is known, dispatch.

A message the source could not decode is dead-lettered with its raw body and acknowledged.
Every object gets its global key (a pure function of its identity); keys the ledger knows
(accepted or dead-lettered) and keys already in flight are duplicates, settled at once. The
rest take an in-flight slot (the memory bound) and go to the probe queue; when the queue or
the slots are full, intake waits and the source is not pulled.

A poison message (received more often than the source allows) that still decodes is not
worked on again: each object it names is dead-lettered on its own (rule ``source.poison``, with
the receive count and the last transient error this process saw for the object), unless the
ledger already knows it (a duplicate) or it is in flight (given back). ``dlq requeue`` can
then announce each object again.

On a drain, intake is cancelled: what it received but did not dispatch is released (given
back to the source), never dropped. While the sink refuses our credentials, intake holds the
batch it has and pulls nothing more (``daemon.pipeline.pause``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Protocol

import structlog

from daemon.core.jobs import Job, ObjectRef, Rejection
from daemon.ledger.records import Claimed, dead_letter_for, fold
from daemon.ledger.store import LedgerStore
from daemon.ops.metrics import Metrics
from daemon.ops.watchdog import StageProgress
from daemon.pipeline.held import HeldBatches
from daemon.pipeline.pause import IntakePause
from daemon.pipeline.tracker import Counters, Tracker
from daemon.sinks.base import ItemResult
from daemon.sources.base import Message, Poison, Source

log = structlog.get_logger()

LAST_ERRORS = 10_000  # objects whose last transient error is remembered (oldest forgotten first)


def poison_rejection(poison: Poison, last_error: str | None) -> Rejection:
    seen = f"last error: {last_error}" if last_error else "no error seen by this process"
    return Rejection(
        stage="intake",
        rule="source.poison",
        message=f"{poison} ({seen}); the object was not worked on again",
        expected=f"at most {poison.limit} receives",
        actual={"receive_count": poison.count, "last_error": last_error},
    )


class IntakeSettings(Protocol):
    retry_delay: float


class Lanes(Protocol):
    """What intake needs of the pipeline: the source, where jobs go, and the books it keeps.

    A narrow view (the pipeline satisfies it structurally), so intake never imports the pipeline.
    """

    source: Source
    ledger: LedgerStore
    tracker: Tracker
    counters: Counters
    metrics: Metrics
    key_for: Callable[[ObjectRef], str]
    slots: asyncio.Semaphore
    in_flight_keys: dict[str, str]
    followers: dict[str, list[str]]
    probe_q: asyncio.Queue[Job]
    dead_q: asyncio.Queue[Job]
    held: HeldBatches
    pause: IntakePause

    @property
    def s(self) -> IntakeSettings: ...

    @property
    def stopping(self) -> bool: ...


class Intake:
    def __init__(self, lanes: Lanes, progress: StageProgress) -> None:
        self.p = lanes
        self.progress = progress
        self.received = 0
        self.last_errors: dict[str, str] = {}  # casefolded global key -> last transient error

    def note_error(self, global_key: str, reason: str) -> None:
        """Remember why an object's work was given back (named if its message turns poison)."""
        key = fold(global_key)
        self.last_errors.pop(key, None)
        self.last_errors[key] = reason[:500]
        if len(self.last_errors) > LAST_ERRORS:
            del self.last_errors[next(iter(self.last_errors))]

    def note_errors(self, keys: Sequence[str], results: Sequence[ItemResult]) -> None:
        """The sink gave these items back: remember its reasons."""
        reasons = {r.key: r.reason for r in results}
        for key in keys:
            self.note_error(key, reasons.get(key) or "the sink gave no result for it")

    async def run(self) -> None:
        p = self.p
        jobs: list[Job] = []
        dispatched = 0
        try:
            async for batch in p.source.batches():
                p.counters.messages += len(batch)
                jobs = await self.open(batch)
                dispatched = 0
                await p.pause.wait()  # the sink refuses our credentials: hold this batch
                claimed = await p.ledger.claim([j.global_key for j in jobs if j.state == "new"])
                self.progress.busy = True
                for job in jobs:
                    await self.dispatch(job, claimed)
                    dispatched += 1
                    self.progress.done += 1
                self.progress.busy = False
                jobs = []
                if p.stopping:
                    break
                await p.pause.wait()  # pull nothing while paused
        except asyncio.CancelledError:
            if not p.stopping:
                raise
        finally:
            undone = jobs[dispatched:]
            for job in undone:  # received but never dispatched: give back
                folded = fold(job.global_key)
                p.counters.see(folded)
                p.tracker.settle(job.message_id, "release", key=folded)
            if undone:
                await asyncio.shield(p.ledger.release([j.global_key for j in undone]))
            await p.source.close()

    async def open(self, batch: Sequence[Message]) -> list[Job]:
        p = self.p
        jobs: list[Job] = []
        for msg in batch:
            if msg.error is not None:
                rej = Rejection(stage="intake", rule="message.decode", message=msg.error)
                await p.ledger.add_dead([dead_letter_for(f"msg:{msg.id}", None, rej, raw=msg.raw)])
                p.metrics.object_done("intake", "dead_lettered")
                p.metrics.dead_letter("intake", rej.rule)
                log.warning("message dead-lettered", message_id=msg.id, rule=rej.rule, reason=msg.error)
                p.counters.see(f"msg:{msg.id}")
                p.counters.count("dead", f"msg:{msg.id}")
                p.tracker.finish(msg)
                continue
            if not msg.refs:
                p.tracker.finish(msg)
                continue
            self.received += 1
            token = f"{msg.id}#{self.received}"  # unique per receive: a message may arrive twice
            p.tracker.add(msg, len(msg.refs), token=token)
            for ref in msg.refs:
                job = Job(ref=ref, message_id=token)
                try:
                    job.global_key = p.key_for(ref)
                except ValueError as e:
                    job.global_key = ref.key
                    job.rejection = Rejection(
                        stage="intake", rule="global_key", message=str(e), actual=ref.key
                    )
                    job.state = "dead"
                else:
                    if msg.poison is not None:  # dead-lettered at dispatch unless known or in flight
                        last = self.last_errors.pop(fold(job.global_key), None)
                        job.rejection = poison_rejection(msg.poison, last)
                jobs.append(job)
        return jobs

    async def dispatch(self, job: Job, claimed: Claimed) -> None:
        p = self.p
        folded = fold(job.global_key)
        recorded = claimed.known.get(folded, p.in_flight_keys.get(folded))
        if job.state != "dead" and recorded not in (None, job.global_key):
            # Labelbox compares global keys case-insensitively; object keys are case-sensitive
            job.rejection = Rejection(
                stage="intake",
                rule="global_key.case_collision",
                message="another object's global key differs from this one only in case; the platform "
                "would treat them as one (include {etag} or {version} in global_key_template)",
                expected="a key unique without regard to case",
                actual={"key": job.global_key, "existing": recorded},
            )
            job.state = "dead"
            job.global_key = f"{job.global_key}#case-collision"
            folded = fold(job.global_key)
        p.counters.see(folded)
        if job.state == "dead":
            await p.slots.acquire()
            await p.dead_q.put(job)
        elif folded in claimed.known:
            # already final (accepted or dead-lettered): a duplicate, acknowledged
            job.state = "duplicate"
            p.tracker.settle(job.message_id, "duplicate", key=folded)
        elif folded in p.in_flight_keys:
            # in flight here (listed twice, an SQS message received twice): this copy settles
            # with the first one, never before it: acknowledged as a duplicate once that is
            # final, given back with it if it is not (then this copy brings the object back)
            p.followers.setdefault(folded, []).append(job.message_id)
        elif folded in claimed.busy or p.held.holds(folded):
            # held by another instance (never acknowledged on the other's behalf), or in a batch
            # held for re-sending as it was (daemon.pipeline.held): give this message back for later
            p.tracker.settle(job.message_id, "retry", delay=p.s.retry_delay, key=folded)
        elif job.rejection is not None:  # poison: recorded, not worked on again
            job.state = "dead"
            log.warning("poison message: object dead-lettered", key=job.ref.key, reason=job.rejection.message)
            await p.slots.acquire()
            await p.dead_q.put(job)
        else:
            await p.slots.acquire()
            p.in_flight_keys[folded] = job.global_key
            await p.probe_q.put(job)
