"""The pipeline: intake -> probe+build -> batch -> deliver -> commit, joined by bounded queues.

One TaskGroup holds every stage. Memory is bounded by configuration: at most
``max_in_flight`` objects are between intake and their final state (a semaphore), and each
queue holds at most ``queue_size`` items; when a later stage is slow, earlier ones wait and the
source stops being pulled.

Probe and build run in the same worker task: build is pure and takes microseconds, a queue
hop between them would cost more than the work.

Drain (``stop()``): intake stops pulling and releases what it holds but has not dispatched;
every dispatched job runs to a final state; the batcher flushes; the ledger commits; acks go
out. If the drain deadline passes, what is left is released (given back to the source).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import structlog

from daemon.build import Builder
from daemon.jobs import Job, ObjectRef, Rejection
from daemon.ledger import DeadLetter, Ledger, dead_letter_for, fold
from daemon.sinks.base import Batch, BatchItem, ItemResult, PermanentError, TransientError
from daemon.sources.base import Message, Source
from daemon.tracker import Counters, Outcome, Tracker
from workers.batching import JSON_ARRAY, Batcher, Framing
from workers.probe.media import MediaInfo
from workers.reads import ObjectGone, ReadError

log = structlog.get_logger()

# End-of-stream sentinels, recognised by identity.
_END_JOB = Job(ref=ObjectRef(origin="file", key="<end>"), message_id="<end>")
_END_BATCH: list[Job] = []

Prober = Callable[[Job], Awaitable[MediaInfo]]
KeyMaker = Callable[[ObjectRef], str]


class Deliverer(Protocol):
    name: str

    async def deliver(self, batch: Batch) -> list[ItemResult]: ...


@dataclass(slots=True)
class Settings:
    probe_workers: int = 64
    deliver_workers: int = 2
    queue_size: int = 1024
    max_in_flight: int = 4096
    max_items: int = 1000
    max_bytes: int = 8 * 1024 * 1024
    linger: float = 1.0
    framing: Framing = JSON_ARRAY
    drain_timeout: float = 30.0
    retry_delay: float = 5.0


class Pipeline:
    def __init__(
        self,
        *,
        source: Source,
        deliverer: Deliverer,
        ledger: Ledger,
        prober: Prober,
        builder: Builder,
        key_for: KeyMaker,
        settings: Settings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.deliverer = deliverer
        self.ledger = ledger
        self.prober = prober
        self.builder = builder
        self.key_for = key_for
        self.s = settings
        self.clock = clock
        self.counters = Counters()
        self.tracker = Tracker(self.counters, retry_delay=settings.retry_delay)
        self.probe_q: asyncio.Queue[Job] = asyncio.Queue(settings.queue_size)
        self.batch_q: asyncio.Queue[Job] = asyncio.Queue(settings.queue_size)
        self.deliver_q: asyncio.Queue[list[Job]] = asyncio.Queue(max(2, settings.deliver_workers * 2))
        self.dead_q: asyncio.Queue[Job] = asyncio.Queue(settings.queue_size)
        self._slots = asyncio.Semaphore(settings.max_in_flight)
        self._in_flight: set[str] = set()
        self._stopping = asyncio.Event()
        self._intake_task: asyncio.Task[None] | None = None
        self.last_progress = clock()
        self.drained = True

    # -- lifecycle ----------------------------------------------------------------------------
    def stop(self) -> None:
        """Begin the drain: stop pulling; finish what was started."""
        if not self._stopping.is_set():
            log.info("drain started")
            self._stopping.set()
            if self._intake_task is not None:
                self._intake_task.cancel()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def recover(self) -> None:
        """Re-deliver batches begun before a crash, before taking new work."""
        for sink_name, batch in self.ledger.pending_batches():
            if sink_name != self.deliverer.name:
                log.warning("pending batch for another sink dropped", batch_id=batch.id, sink=sink_name)
                self.ledger.abort_batch(batch.id)
                continue
            log.info("recovering batch", batch_id=batch.id, items=len(batch.items))
            results = await self.deliverer.deliver(batch)
            if any(r.status == "retryable" for r in results):
                raise RuntimeError(f"recovery of batch {batch.id} failed: sink is not accepting work")
            dead = [
                DeadLetter(
                    key=r.key,
                    global_key=r.key,
                    stage="deliver",
                    rule="sink.rejected",
                    message=r.reason or "rejected by the sink",
                )
                for r in results
                if r.status == "rejected"
            ]
            self.ledger.finish_batch(batch.id, results, dead)

    async def run(self) -> Counters:
        await self.recover()
        async with asyncio.TaskGroup() as tg:
            self._intake_task = tg.create_task(self._intake_then_end())
            probers = [tg.create_task(self._probe_worker()) for _ in range(self.s.probe_workers)]
            batcher = tg.create_task(self._batch_stage())
            deliverers = [tg.create_task(self._deliver_worker()) for _ in range(self.s.deliver_workers)]
            committer = tg.create_task(self._dead_stage())
            tg.create_task(self._closer(probers, batcher, deliverers, committer))
        return self.counters

    async def _closer(
        self,
        probers: list[asyncio.Task[None]],
        batcher: asyncio.Task[None],
        deliverers: list[asyncio.Task[None]],
        committer: asyncio.Task[None],
    ) -> None:
        """End each stage once the one before it has ended (sentinels flow downstream)."""
        await self._stopping_or_intake_done()
        assert self._intake_task is not None
        try:
            await asyncio.wait_for(
                self._wait_all(probers, batcher, deliverers, committer),
                timeout=None if not self.stopping else self.s.drain_timeout,
            )
        except TimeoutError:
            log.error("drain deadline passed; releasing unfinished messages", deadline=self.s.drain_timeout)
            self.drained = False
            for t in [*probers, batcher, *deliverers, committer]:
                t.cancel()
            await self.tracker.release_all()

    async def _stopping_or_intake_done(self) -> None:
        assert self._intake_task is not None
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({stop, self._intake_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()

    async def _wait_all(
        self,
        probers: list[asyncio.Task[None]],
        batcher: asyncio.Task[None],
        deliverers: list[asyncio.Task[None]],
        committer: asyncio.Task[None],
    ) -> None:
        """Each stage ends once the stage before it has ended: sentinels flow downstream."""
        assert self._intake_task is not None
        await asyncio.wait({self._intake_task})  # it puts one end marker per probe worker
        await asyncio.wait(set(probers))
        await self.batch_q.put(_END_JOB)
        await asyncio.wait({batcher})  # it flushes and puts one end marker per deliverer
        await asyncio.wait(set(deliverers))
        await self.dead_q.put(_END_JOB)
        await asyncio.wait({committer})

    # -- intake ------------------------------------------------------------------------------
    async def _intake_then_end(self) -> None:
        try:
            await self._intake()
        finally:
            for _ in range(self.s.probe_workers):
                await self.probe_q.put(_END_JOB)

    async def _intake(self) -> None:
        undispatched: list[Job] = []
        try:
            async for batch in self.source.batches():
                self.counters.messages += len(batch)
                jobs: list[Job] = []
                for msg in batch:
                    jobs.extend(await self._open_message(msg))
                undispatched = jobs
                await self._dispatch(undispatched)
                undispatched = []
                if self.stopping:
                    break
        except asyncio.CancelledError:
            if not self.stopping:
                raise
        finally:
            for job in undispatched:
                self._in_flight.discard(fold(job.global_key))
                await self.tracker.settle(job.message_id, "release")
            await self.source.close()

    async def _open_message(self, msg: Message) -> list[Job]:
        if msg.error is not None:
            key = f"msg:{msg.id}"
            rej = Rejection(stage="intake", rule="message.decode", message=msg.error)
            self.ledger.add_dead([dead_letter_for(key, None, rej, raw=msg.raw)])
            log.warning("message dead-lettered", message_id=msg.id, rule=rej.rule, reason=msg.error)
            self.counters.seen += 1
            self.counters.dead += 1
            await asyncio.shield(msg.ack())
            return []
        if not msg.refs:
            await asyncio.shield(msg.ack())
            return []
        self.tracker.add(msg, len(msg.refs))
        jobs = []
        for ref in msg.refs:
            self.counters.seen += 1
            job = Job(ref=ref, message_id=msg.id)
            try:
                job.global_key = self.key_for(ref)
            except ValueError as e:
                job.global_key = ref.key
                job.rejection = Rejection(stage="intake", rule="global_key", message=str(e), actual=ref.key)
                job.state = "dead"
            jobs.append(job)
        return jobs

    async def _dispatch(self, jobs: list[Job]) -> None:
        known = self.ledger.known([j.global_key for j in jobs if j.state == "new"])
        while jobs:
            job = jobs[0]
            folded = fold(job.global_key)
            if job.state == "dead":
                await self._slots.acquire()
                await self.dead_q.put(job)
            elif folded in known or folded in self._in_flight:
                job.state = "duplicate"
                await self.tracker.settle(job.message_id, "duplicate")
            else:
                self._in_flight.add(folded)
                await self._slots.acquire()
                await self.probe_q.put(job)
            jobs.pop(0)

    # -- probe + build ---------------------------------------------------------------------------
    async def _probe_worker(self) -> None:
        while True:
            job = await self.probe_q.get()
            if job is _END_JOB:
                return
            try:
                info = await self.prober(job)
            except asyncio.CancelledError:
                raise
            except ObjectGone as e:
                log.info("object gone", key=job.ref.key, reason=str(e))
                await self._final(job, "gone")
                continue
            except ReadError as e:
                if e.transient:
                    log.warning("read failed, will retry", key=job.ref.key, reason=str(e))
                    await self._final(job, "retry")
                    continue
                job.rejection = Rejection(stage="read", rule="read.failed", message=str(e), actual=e.status)
                job.state = "dead"
                await self.dead_q.put(job)
                continue
            except Exception as e:
                # A bug in a parser must not stop the other objects: this one is dead-lettered
                # with the exception named, and the traceback is logged for us to fix.
                log.exception("probe failed unexpectedly", key=job.ref.key)
                job.rejection = Rejection(
                    stage="probe", rule="probe.internal_error", message=f"{type(e).__name__}: {e}"
                )
                job.state = "dead"
                await self.dead_q.put(job)
                continue
            self.counters.probe_bytes += info.bytes_read
            self.counters.probe_requests += info.requests
            job.info = info
            self.builder.build(job)
            if job.rejection is None:
                await self.batch_q.put(job)
            else:
                await self.dead_q.put(job)

    # -- batch ------------------------------------------------------------------------------------
    async def _batch_stage(self) -> None:
        batcher: Batcher[Job] = Batcher(
            max_items=self.s.max_items,
            max_bytes=self.s.max_bytes,
            linger=self.s.linger,
            size_of=lambda j: len(j.body),
            clock=self.clock,
            framing=self.s.framing,
        )
        q = self.batch_q
        while True:
            try:
                job = q.get_nowait()
            except asyncio.QueueEmpty:
                deadline = batcher.deadline()
                if deadline is None:
                    job = await q.get()
                else:
                    got = await self._get_until(q, deadline)
                    if got is None:
                        due = batcher.due() or batcher.flush()
                        if due:
                            await self.deliver_q.put(due)
                        continue
                    job = got
            if job is _END_JOB:
                rest = batcher.flush()
                if rest:
                    await self.deliver_q.put(rest)
                for _ in range(self.s.deliver_workers):
                    await self.deliver_q.put(_END_BATCH)
                return
            if not batcher.fits_alone(job):
                size = len(job.body)
                job.rejection = Rejection(
                    stage="batch",
                    rule="batch.max_bytes",
                    message="payload item larger than the sink's max_bytes",
                    expected=f"<= {self.s.max_bytes}",
                    actual=size,
                )
                job.state = "dead"
                await self.dead_q.put(job)
                continue
            for full in batcher.add(job):
                await self.deliver_q.put(full)

    async def _get_until(self, q: asyncio.Queue[Job], deadline: float) -> Job | None:
        remaining = deadline - self.clock()
        if remaining <= 0:
            return None
        try:
            return await asyncio.wait_for(q.get(), remaining)
        except TimeoutError:
            return None

    # -- deliver + commit -----------------------------------------------------------------------------
    async def _deliver_worker(self) -> None:
        while True:
            jobs = await self.deliver_q.get()
            if jobs is _END_BATCH:
                return
            await self._deliver(jobs)

    async def _deliver(self, jobs: list[Job]) -> None:
        batch = Batch.of([BatchItem(j.global_key, j.kind, j.body) for j in jobs])
        self.ledger.begin_batch(batch, self.deliverer.name)
        try:
            results = await self.deliverer.deliver(batch)
        except (TransientError, PermanentError) as e:
            log.error(
                "batch not delivered; messages will be retried",
                batch_id=batch.id,
                items=len(jobs),
                reason=str(e),
            )
            results = [ItemResult(key=j.global_key, status="retryable", reason=str(e)) for j in jobs]
        by_key = {r.key: r for r in results}
        dead: list[DeadLetter] = []
        outcomes: list[tuple[Job, Outcome, float | None]] = []
        for job in jobs:
            r = by_key.get(job.global_key)
            if r is None:
                outcomes.append((job, "retry", None))
            elif r.status == "accepted":
                outcomes.append((job, "delivered", None))
            elif r.status == "duplicate":
                outcomes.append((job, "duplicate", None))
            elif r.status == "rejected":
                rej = Rejection(
                    stage="deliver", rule="sink.rejected", message=r.reason or "rejected by the sink"
                )
                dead.append(dead_letter_for(job.global_key, job.ref, rej))
                log.warning(
                    "object rejected by sink",
                    key=job.ref.key,
                    global_key=job.global_key,
                    rule=rej.rule,
                    reason=rej.message,
                )
                outcomes.append((job, "dead", None))
            else:
                outcomes.append((job, "retry", r.retry_after))
        if all(o == "retry" for _, o, _ in outcomes):
            self.ledger.abort_batch(batch.id)
        else:
            self.ledger.finish_batch(batch.id, results, dead)
            self.counters.batches += 1
        for job, outcome, delay in outcomes:
            await self._final(job, outcome, delay)

    async def _dead_stage(self) -> None:
        """Write dead letters in groups (one transaction each), then settle their jobs."""
        while True:
            first = await self.dead_q.get()
            group = [first]
            while len(group) < 512 and not self.dead_q.empty():
                group.append(self.dead_q.get_nowait())
            jobs = [j for j in group if j is not _END_JOB]
            ends = len(group) - len(jobs)
            if jobs:
                letters = []
                for j in jobs:
                    assert j.rejection is not None
                    letters.append(dead_letter_for(j.global_key, j.ref, j.rejection))
                    log.warning(
                        "object dead-lettered",
                        key=j.ref.key,
                        global_key=j.global_key,
                        stage=j.rejection.stage,
                        rule=j.rejection.rule,
                        reason=j.rejection.message,
                        expected=j.rejection.expected,
                        actual=j.rejection.actual,
                    )
                self.ledger.add_dead(letters)
                for j in jobs:
                    await self._final(j, "dead")
            if ends:
                return

    async def _final(self, job: Job, outcome: Outcome, delay: float | None = None) -> None:
        self._in_flight.discard(fold(job.global_key))
        self._slots.release()
        self.last_progress = self.clock()
        await self.tracker.settle(job.message_id, outcome, delay=delay)
