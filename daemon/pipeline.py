"""The pipeline: intake -> probe+build -> batch -> deliver -> commit, joined by bounded queues.

One TaskGroup holds every stage. Memory is bounded by configuration: at most
``max_in_flight`` objects are between intake and their final state (a semaphore), and each
queue holds at most ``queue_size`` items; when a later stage is slow, earlier ones wait and the
source stops being pulled.

Probe and build run in the same worker task (build is pure and takes microseconds), and the
workers add built jobs straight to the one shared batcher (the event loop is single-threaded,
so no lock): a queue hop per object would cost more than the work. A linger task flushes a
batch that has waited ``linger`` seconds.

Drain (``stop()``): intake stops pulling and releases what it holds but has not dispatched;
every dispatched job runs to a final state; the batcher flushes; the ledger commits; acks go
out. If the drain deadline passes, what is left is released (given back to the source).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from daemon.build import Builder
from daemon.commit import recovery_dead_letters, sort_results
from daemon.jobs import Job, ObjectRef, Rejection
from daemon.ledger import Ledger, dead_letter_for, fold
from daemon.sinks.base import Batch, BatchItem, ItemResult, PermanentError, TransientError
from daemon.sources.base import Message, Source
from daemon.tracker import Counters, Outcome, Tracker
from workers.batching import JSON_ARRAY, Batcher, Framing
from workers.probe.media import MediaInfo
from workers.reads import ObjectGone, ReadError

log = structlog.get_logger()

Prober = Callable[[Job], Awaitable[MediaInfo]]
KeyMaker = Callable[[ObjectRef], str]

# End-of-stream sentinels, recognised by identity.
_END_JOB = Job(ref=ObjectRef(origin="file", key="<end>"), message_id="<end>")
_END_BATCH: list[Job] = []


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
        self.deliver_q: asyncio.Queue[list[Job]] = asyncio.Queue(max(2, settings.deliver_workers * 2))
        self.dead_q: asyncio.Queue[Job] = asyncio.Queue(settings.queue_size)
        self.batcher: Batcher[Job] = Batcher(
            max_items=settings.max_items,
            max_bytes=settings.max_bytes,
            linger=settings.linger,
            size_of=lambda j: len(j.body),
            clock=clock,
            framing=settings.framing,
        )
        self._batch_added = asyncio.Event()
        self._slots = asyncio.Semaphore(settings.max_in_flight)
        self._in_flight: set[str] = set()
        self._stopping = asyncio.Event()
        self._intake_task: asyncio.Task[None] | None = None
        self._deadline: asyncio.Timeout | None = None
        self.last_progress = clock()
        self.drained = True

    # -- lifecycle ------------------------------------------------------------------------------
    def stop(self) -> None:
        """Begin the drain: stop pulling; finish what was started."""
        if not self._stopping.is_set():
            log.info("drain started")
            self._stopping.set()
            if self._intake_task is not None:
                self._intake_task.cancel()
            if self._deadline is not None:  # already draining the rest of the input: bound it now
                self._deadline.reschedule(asyncio.get_running_loop().time() + self.s.drain_timeout)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @property
    def in_flight(self) -> int:
        return self.s.max_in_flight - self._slots._value

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
                raise RuntimeError(f"recovery of batch {batch.id} failed: the sink is not accepting work")
            self.ledger.finish_batch(batch.id, results, recovery_dead_letters(results))

    async def run(self) -> Counters:
        await self.recover()
        async with asyncio.TaskGroup() as tg:
            self._intake_task = tg.create_task(self._intake())
            probers = [tg.create_task(self._probe_worker()) for _ in range(self.s.probe_workers)]
            linger = tg.create_task(self._linger())
            deliverers = [tg.create_task(self._deliver_worker()) for _ in range(self.s.deliver_workers)]
            committer = tg.create_task(self._dead_stage())
            acker = tg.create_task(self.tracker.run())
            tg.create_task(self._closer(probers, linger, deliverers, committer, acker))
        return self.counters

    async def _closer(
        self,
        probers: list[asyncio.Task[None]],
        linger: asyncio.Task[None],
        deliverers: list[asyncio.Task[None]],
        committer: asyncio.Task[None],
        acker: asyncio.Task[None],
    ) -> None:
        """End each stage once the stage before it has ended; bound the drain by its deadline."""
        assert self._intake_task is not None
        stop = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({stop, self._intake_task}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()

        async def cascade() -> None:
            assert self._intake_task is not None
            await asyncio.wait({self._intake_task})
            for _ in probers:
                await self.probe_q.put(_END_JOB)
            await asyncio.wait(set(probers))
            linger.cancel()
            rest = self.batcher.flush()
            if rest:
                await self.deliver_q.put(rest)
            for _ in deliverers:
                await self.deliver_q.put(_END_BATCH)
            await asyncio.wait(set(deliverers))
            await self.dead_q.put(_END_JOB)
            await asyncio.wait({committer})

        try:
            async with asyncio.timeout(self.s.drain_timeout if self.stopping else None) as deadline:
                self._deadline = deadline
                await cascade()
        except TimeoutError:
            log.error("drain deadline passed; releasing unfinished messages", deadline=self.s.drain_timeout)
            self.drained = False
            for t in [self._intake_task, *probers, linger, *deliverers, committer]:
                t.cancel()
            await self.tracker.release_all()
        self.tracker.close()
        await acker

    # -- intake -----------------------------------------------------------------------------------
    async def _intake(self) -> None:
        jobs: list[Job] = []
        i = 0
        try:
            async for batch in self.source.batches():
                self.counters.messages += len(batch)
                jobs = self._open(batch)
                known = self.ledger.known([j.global_key for j in jobs if j.state == "new"])
                for i, job in enumerate(jobs):  # noqa: B007 - i is read in the finally clause
                    await self._dispatch(job, known)
                jobs = []
                if self.stopping:
                    break
        except asyncio.CancelledError:
            if not self.stopping:
                raise
        finally:
            for job in jobs[i:]:  # received but never dispatched: give back
                self.tracker.settle(job.message_id, "release")
            await self.source.close()

    def _open(self, batch: Sequence[Message]) -> list[Job]:
        jobs: list[Job] = []
        for msg in batch:
            if msg.error is not None:
                rej = Rejection(stage="intake", rule="message.decode", message=msg.error)
                self.ledger.add_dead([dead_letter_for(f"msg:{msg.id}", None, rej, raw=msg.raw)])
                log.warning("message dead-lettered", message_id=msg.id, rule=rej.rule, reason=msg.error)
                self.counters.seen += 1
                self.counters.dead += 1
                self.tracker.finish(msg)
                continue
            if not msg.refs:
                self.tracker.finish(msg)
                continue
            self.tracker.add(msg, len(msg.refs))
            for ref in msg.refs:
                self.counters.seen += 1
                job = Job(ref=ref, message_id=msg.id)
                try:
                    job.global_key = self.key_for(ref)
                except ValueError as e:
                    job.global_key = ref.key
                    job.rejection = Rejection(
                        stage="intake", rule="global_key", message=str(e), actual=ref.key
                    )
                    job.state = "dead"
                jobs.append(job)
        return jobs

    async def _dispatch(self, job: Job, known: set[str]) -> None:
        folded = fold(job.global_key)
        if job.state == "dead":
            await self._slots.acquire()
            await self.dead_q.put(job)
        elif folded in known or folded in self._in_flight:
            job.state = "duplicate"
            self.tracker.settle(job.message_id, "duplicate")
        else:
            await self._slots.acquire()
            self._in_flight.add(folded)
            await self.probe_q.put(job)

    # -- probe + build + batch ----------------------------------------------------------------------
    async def _probe_worker(self) -> None:
        while (job := await self.probe_q.get()) is not _END_JOB:
            try:
                info = await self.prober(job)
            except ObjectGone as e:
                log.info("object gone", key=job.ref.key, reason=str(e))
                self._final(job, "gone")
                continue
            except ReadError as e:
                if e.transient:
                    log.warning("read failed, will retry", key=job.ref.key, reason=str(e))
                    self._final(job, "retry")
                    continue
                job.rejection = Rejection(stage="read", rule="read.failed", message=str(e), actual=e.status)
            except Exception as e:
                # A bug in a parser must not stop the other objects: this one is dead-lettered
                # with the exception named, and the traceback is logged for us to fix.
                log.exception("probe failed unexpectedly", key=job.ref.key)
                job.rejection = Rejection(
                    stage="probe", rule="probe.internal_error", message=f"{type(e).__name__}: {e}"
                )
            else:
                self.counters.probe_bytes += info.bytes_read
                self.counters.probe_requests += info.requests
                job.info = info
                self.builder.build(job)
            if job.rejection is None and not self.batcher.fits_alone(job):
                job.rejection = Rejection(
                    stage="batch",
                    rule="batch.max_bytes",
                    message="payload item larger than the sink's max_bytes",
                    expected=f"<= {self.s.max_bytes}",
                    actual=len(job.body),
                )
            if job.rejection is not None:
                job.state = "dead"
                await self.dead_q.put(job)
                continue
            was_empty = not len(self.batcher)
            for full in self.batcher.add(job):
                await self.deliver_q.put(full)
            if was_empty:
                self._batch_added.set()

    async def _linger(self) -> None:
        """Flush a batch that has waited ``linger`` seconds."""
        while True:
            deadline = self.batcher.deadline()
            if deadline is None:
                self._batch_added.clear()
                await self._batch_added.wait()
                continue
            delay = deadline - self.clock()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            due = self.batcher.due()
            if due:
                await self.deliver_q.put(due)

    # -- deliver + commit -----------------------------------------------------------------------------
    async def _deliver_worker(self) -> None:
        while (jobs := await self.deliver_q.get()) is not _END_BATCH:
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
        outcomes, dead = sort_results(jobs, results)
        if all(o == "retry" for _, o, _ in outcomes):
            self.ledger.abort_batch(batch.id)
        else:
            self.ledger.finish_batch(batch.id, results, dead)
            self.counters.batches += 1
        for job, outcome, delay in outcomes:
            if outcome == "dead" and job.rejection is not None:
                log.warning(
                    "object rejected by sink",
                    key=job.ref.key,
                    global_key=job.global_key,
                    rule=job.rejection.rule,
                    reason=job.rejection.message,
                )
            self._final(job, outcome, delay)

    async def _dead_stage(self) -> None:
        """Write dead letters in groups (one transaction each), then settle their jobs."""
        while True:
            group = [await self.dead_q.get()]
            while len(group) < 512 and not self.dead_q.empty():
                group.append(self.dead_q.get_nowait())
            jobs = [j for j in group if j is not _END_JOB]
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
                self._final(j, "dead")
            if len(jobs) < len(group):
                return

    def _final(self, job: Job, outcome: Outcome, delay: float | None = None) -> None:
        self._in_flight.discard(fold(job.global_key))
        self._slots.release()
        self.last_progress = self.clock()
        self.tracker.settle(job.message_id, outcome, delay=delay)
