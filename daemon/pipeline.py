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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from daemon.build import Builder
from daemon.commit import recover, sort_results
from daemon.intake import Intake
from daemon.jobs import Job, ObjectRef, Rejection
from daemon.ledger import dead_letter_for, fold
from daemon.ledger_store import LedgerStore
from daemon.metrics import Metrics, Stage
from daemon.metrics import Outcome as MetricOutcome
from daemon.sinks.base import Batch, BatchItem, Deliverer, ItemResult, PermanentError, TransientError
from daemon.sources.base import Source
from daemon.tracker import Counters, Outcome, Tracker
from daemon.watchdog import ProgressMonitor
from workers.batching import JSON_ARRAY, Batcher, Framing
from workers.probe.media import MediaInfo
from workers.reads import ObjectGone, ReadError

log = structlog.get_logger()

Prober = Callable[[Job], Awaitable[MediaInfo]]
KeyMaker = Callable[[ObjectRef], str]

# End-of-stream sentinels, recognised by identity.
_END_JOB = Job(ref=ObjectRef(origin="file", key="<end>"), message_id="<end>")
_END_BATCH: list[Job] = []

# Where an outcome is counted in the metrics, and how a rejection's stage maps onto them.
_OUTCOME_METRIC: dict[str, tuple[Stage, MetricOutcome]] = {
    "delivered": ("deliver", "ok"),
    "duplicate": ("intake", "duplicate"),
    "gone": ("probe", "skipped"),
    "retry": ("deliver", "retried"),
    "release": ("intake", "skipped"),
}
_REJECTION_STAGE: dict[str, Stage] = {
    "intake": "intake",
    "read": "probe",
    "probe": "probe",
    "url": "build",
    "validate": "build",
    "build": "build",
    "batch": "batch",
    "deliver": "deliver",
}


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
        ledger: LedgerStore,
        prober: Prober,
        builder: Builder,
        key_for: KeyMaker,
        settings: Settings,
        clock: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
        monitor: ProgressMonitor | None = None,
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
        self.metrics = metrics or Metrics("unversioned")
        self.monitor = monitor or ProgressMonitor(stall_after=60.0)
        self._st_probe = self.monitor.stage("probe")
        self._st_deliver = self.monitor.stage("deliver")
        self._st_commit = self.monitor.stage("commit")
        self._probing = 0
        self.intake = Intake(self)
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
        self._lingering: list[Job] = []
        self.slots = asyncio.Semaphore(settings.max_in_flight)
        self.in_flight_keys: dict[str, str] = {}  # casefolded -> exact global key
        self._stopping = asyncio.Event()
        self._intake_task: asyncio.Task[None] | None = None
        self._deadline: asyncio.Timeout | None = None
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
        return self.s.max_in_flight - self.slots._value

    async def recover(self) -> None:
        """Re-deliver batches begun before a crash, before taking new work."""
        await recover(self.ledger, self.deliverer)

    async def run(self) -> Counters:
        await self.recover()
        async with asyncio.TaskGroup() as tg:
            self._intake_task = tg.create_task(self.intake.run())
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
            await asyncio.wait({linger})
            if self._lingering:  # taken from the batcher, not yet queued when cancelled
                await self.deliver_q.put(self._lingering)
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

    # -- probe + build + batch ----------------------------------------------------------------------
    async def _probe_worker(self) -> None:
        st = self._st_probe
        q = self.probe_q
        while (job := await q.get()) is not _END_JOB:
            self._probing += 1
            st.busy = True
            st.queued = q.qsize()
            try:
                info = await self.prober(job)
            except ObjectGone as e:
                log.info("object gone", key=job.ref.key, reason=str(e))
                self._final(job, "gone")
                continue
            except ReadError as e:
                if e.transient:
                    log.warning("read failed, will retry", key=job.ref.key, reason=str(e))
                    self.intake.note_error(job.global_key, str(e))
                    self._final(job, "retry")
                    await self.ledger.release([job.global_key])
                    continue
                job.rejection = Rejection(stage="read", rule=e.rule, message=str(e), actual=e.actual)
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
                self.metrics.probe_cost(info.bytes_read, info.requests)
                job.info = info
                self.builder.build(job)
            finally:
                self._probing -= 1
                st.busy = self._probing > 0
                st.done += 1
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
                self._lingering = due
                await self.deliver_q.put(due)
                self._lingering = []

    # -- deliver + commit -----------------------------------------------------------------------------
    async def _deliver_worker(self) -> None:
        st = self._st_deliver
        while (jobs := await self.deliver_q.get()) is not _END_BATCH:
            st.queued = self.deliver_q.qsize()
            st.busy = True
            try:
                await self._deliver(jobs)
            finally:
                st.busy = False
                st.done += 1

    async def _deliver(self, jobs: list[Job]) -> None:
        batch = Batch.of([BatchItem(j.global_key, j.kind, j.body) for j in jobs])
        await self.ledger.begin_batch(batch, self.deliverer.name)
        nbytes = batch.nbytes
        self.metrics.batch_sent(len(jobs), nbytes)
        started = time.monotonic()
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
        failed = all(o == "retry" for _, o, _ in outcomes)
        self.metrics.delivered(time.monotonic() - started, success=not failed)
        if failed:
            await self.ledger.abort_batch(batch.id)
        else:
            await self.ledger.finish_batch(batch.id, results, dead)
            self.counters.batches += 1
        retried = [job.global_key for job, outcome, _ in outcomes if outcome == "retry"]
        self.intake.note_errors(retried, results)
        if retried:
            await self.ledger.release(retried)
        for job, outcome, delay in outcomes:
            log.debug(
                "object settled",
                key=job.ref.key,
                global_key=job.global_key,
                outcome=outcome,
                batch_id=batch.id,
            )
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
            await self.ledger.add_dead(letters)
            self._st_commit.done += len(jobs)
            for j in jobs:
                self._final(j, "dead")
            if len(jobs) < len(group):
                return

    def _final(self, job: Job, outcome: Outcome, delay: float | None = None) -> None:
        self.in_flight_keys.pop(fold(job.global_key), None)
        self.slots.release()
        self.tracker.settle(job.message_id, outcome, delay=delay)
        self._count(job, outcome)

    def _count(self, job: Job, outcome: Outcome) -> None:
        if outcome == "dead":
            rej = job.rejection
            stage = _REJECTION_STAGE.get(rej.stage, "build") if rej is not None else "build"
            self.metrics.object_done(stage, "dead_lettered")
            self.metrics.dead_letter(stage, rej.rule if rej is not None else "unknown")
        else:
            stage, result = _OUTCOME_METRIC[outcome]
            self.metrics.object_done(stage, result)

    def observe(self) -> None:
        """Refresh the gauges (queue depths, in-flight) from the live structures."""
        m = self.metrics
        m.queue_depth("probe", self.probe_q.qsize())
        m.queue_depth("deliver", self.deliver_q.qsize())
        m.queue_depth("dead_letter", self.dead_q.qsize())
        m.queue_depth("batch", len(self.batcher))
        m.set_in_flight(self.tracker.unacked)
        self._st_commit.queued = self.dead_q.qsize()
