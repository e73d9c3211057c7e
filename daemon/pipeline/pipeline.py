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
import random
import time
from collections.abc import Awaitable, Callable

import structlog

from daemon.core.jobs import Job
from daemon.ledger.records import fold
from daemon.ledger.store import LedgerStore
from daemon.ops.metrics import Metrics
from daemon.ops.watchdog import ProgressMonitor
from daemon.pipeline.annotate import Annotator
from daemon.pipeline.build import Builder
from daemon.pipeline.commit import STATUS_OUTCOME
from daemon.pipeline.held import HeldBatches
from daemon.pipeline.intake import Intake
from daemon.pipeline.pause import IntakePause
from daemon.pipeline.stages import (
    END_BATCH,
    END_JOB,
    OUTCOME_METRIC,
    KeyMaker,
    Prober,
    Settings,
    Stages,
    batching_advice,
)
from daemon.pipeline.tracker import Counters, Tracker
from daemon.pipeline.waiting import WaitingRoom
from daemon.sinks.base import Deliverer, ItemResult
from daemon.sources.base import Source
from workers.batching import Batcher
from workers.retry import Backoff

log = structlog.get_logger()


class Pipeline(Stages):
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
        annotator: Annotator | None = None,
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
        self.held = HeldBatches(ledger, deliverer, pause=settings.retry_delay, answered=self._held_answered)
        self.pause = IntakePause(  # closed while the sink refuses our credentials (told by the service)
            check=getattr(deliverer, "check", None),
            resend=self.held.resend_now,
            backoff=Backoff(base=settings.recheck[0], cap=settings.recheck[1], random=random.random),
        )
        self.intake = Intake(self, self.monitor.stage("intake"))
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
        self.followers: dict[str, list[str]] = {}  # casefolded -> receipts waiting for that job
        self._stopping = asyncio.Event()
        self._intake_task: asyncio.Task[None] | None = None
        self._deadline: asyncio.Timeout | None = None
        self.drained = True
        self.drain_step = ""  # what the drain is waiting for now (logged while it lasts)
        self.annotator = annotator
        self.room: WaitingRoom | None = None
        if annotator is not None:
            c = annotator.cfg
            self.room = WaitingRoom(
                ledger,
                wait=c.media_wait_seconds,
                recheck=c.recheck_seconds,
                capacity=c.max_waiting,
                clock=clock,
            )

    def _held_answered(self, results: list[ItemResult], ours: bool) -> None:
        """A held batch was answered for: its objects are final now (their messages, given back
        when it was held, come again as duplicates). ``ours``: held in this run, so a duplicate
        is what our own first attempt delivered (daemon.pipeline.held)."""
        for r in results:
            outcome = STATUS_OUTCOME.get(r.status)
            if outcome is None:  # retryable: released by the held batch, travels again
                continue
            if outcome == "duplicate" and ours:
                outcome = "delivered"
            self.counters.count(outcome, fold(r.key))
            if outcome == "dead":
                self.metrics.object_done("deliver", "dead_lettered")
                self.metrics.dead_letter("deliver", "sink.rejected")
            else:
                self.metrics.object_done(*OUTCOME_METRIC[outcome])

    # -- lifecycle ------------------------------------------------------------------------------
    def stop(self) -> None:
        """Begin the drain: stop pulling; finish what was started."""
        if not self._stopping.is_set():
            log.info("drain started")
            self._stopping.set()
            if self.room is not None:
                self.room.wake()
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
        """Re-deliver batches an earlier run left pending (crash, give-up), before taking new work;
        one the sink still does not take stays held (re-sent later, its keys kept back)."""
        await self.held.recover()

    async def run(self) -> Counters:
        if (advice := batching_advice(self.s)) is not None:
            log.warning("batches cannot fill", reason=advice)
        await self.recover()
        async with asyncio.TaskGroup() as tg:
            self._intake_task = tg.create_task(self.intake.run())
            probers = [tg.create_task(self._probe_worker()) for _ in range(self.s.probe_workers)]
            linger = tg.create_task(self._linger())
            deliverers = [tg.create_task(self._deliver_worker()) for _ in range(self.s.deliver_workers)]
            committer = tg.create_task(self._dead_stage())
            acker = tg.create_task(self.tracker.run())
            room = tg.create_task(self._serve_room())
            resend = tg.create_task(self.held.run())
            pauser = tg.create_task(self.pause.run())
            tg.create_task(self._closer(probers, linger, deliverers, committer, acker, room=room))
            await asyncio.wait({acker})
            resend.cancel()  # a batch still held stays pending in the ledger for the next start
            pauser.cancel()
        return self.counters

    async def _closer(
        self,
        probers: list[asyncio.Task[None]],
        linger: asyncio.Task[None],
        deliverers: list[asyncio.Task[None]],
        committer: asyncio.Task[None],
        acker: asyncio.Task[None],
        *,
        room: asyncio.Task[None],
    ) -> None:
        """End each stage once the stage before it has ended; bound the drain by its deadline."""
        assert self._intake_task is not None
        stop = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({stop, self._intake_task}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()

        async def cascade() -> None:
            assert self._intake_task is not None
            self.drain_step = "intake"
            await asyncio.wait({self._intake_task})
            if self.room is not None:
                # parked annotations leave first (their media final, expired, or given back):
                # a job resumed after the probers ended would have no one to take it
                self.drain_step = "waiting room"
                self.room.wake()
                await self.room.emptied()
                self.room.closed = True
            room.cancel()
            await asyncio.wait({room})
            self.drain_step = "probers"
            for _ in probers:
                await self.probe_q.put(END_JOB)
            await asyncio.wait(set(probers))
            self.drain_step = "batcher"
            linger.cancel()
            await asyncio.wait({linger})
            if self._lingering:  # taken from the batcher, not yet queued when cancelled
                await self.deliver_q.put(self._lingering)
            rest = self.batcher.flush()
            if rest:
                await self.deliver_q.put(rest)
            self.drain_step = "deliverers"
            for _ in deliverers:
                await self.deliver_q.put(END_BATCH)
            await asyncio.wait(set(deliverers))
            self.drain_step = "dead letters"
            await self.dead_q.put(END_JOB)
            await asyncio.wait({committer})

        try:
            async with asyncio.timeout(self.s.drain_timeout if self.stopping else None) as deadline:
                self._deadline = deadline
                await cascade()
        except TimeoutError:
            log.error("drain deadline passed; releasing unfinished messages", deadline=self.s.drain_timeout)
            self.drained = False
            for t in [self._intake_task, room, *probers, linger, *deliverers, committer]:
                t.cancel()
            await self.tracker.release_all()
        self.drain_step = "acknowledgements"
        self.tracker.close()
        await acker
        self.drain_step = "done"

    async def report_drain(
        self, every: float = 5.0, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    ) -> None:
        """While a drain lasts (run it after :meth:`stop`, cancel it after), say every ``every``
        seconds what the drain is waiting for: an operator watching a slow stop sees which stage
        holds it and how much is left."""
        started = self.clock()
        while True:
            await sleep(every)
            log.info(
                "still draining",
                waiting_for=self.drain_step or "intake",
                seconds=round(self.clock() - started, 1),
                in_flight=self.in_flight,
                unacknowledged=self.tracker.unacked,
                probe_queue=self.probe_q.qsize(),
                deliver_queue=self.deliver_q.qsize(),
                batch=len(self.batcher),
            )

    async def _serve_room(self) -> None:
        if self.room is None:
            return
        await self.room.run(
            resume=self._resume, expire=self._expire, give_back=self._give_back, stuck=self._stuck
        )

    def _stuck(self) -> str | None:
        """Why parked annotations can no longer be joined by their media (see the waiting room)."""
        if self.stopping:
            return "drain"
        room = self.room
        if room is not None and self.source.exhausted and self.in_flight <= len(room):
            return "once"
        return None

    def observe(self) -> None:
        """Refresh the gauges (queue depths, in-flight) from the live structures."""
        m = self.metrics
        m.queue_depth("probe", self.probe_q.qsize())
        m.queue_depth("deliver", self.deliver_q.qsize())
        m.queue_depth("dead_letter", self.dead_q.qsize())
        m.queue_depth("batch", len(self.batcher))
        m.set_in_flight(self.tracker.unacked)
        if self.room is not None:
            fig = self.room.figure()
            m.annotations_waiting = fig.count
            m.annotations_waiting_oldest = fig.at - fig.oldest if fig.oldest is not None else 0.0
        m.intake_paused = self.pause.paused
        self._st_commit.queued = self.dead_q.qsize()
