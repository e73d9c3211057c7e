"""The pipeline's stages: probe+build+batch workers, the linger flush, delivery and the dead-letter
commit, and how each job's final outcome is settled and counted.

:class:`Stages` holds the stage loops; :class:`daemon.pipeline.pipeline.Pipeline` builds the
queues they share, starts them in one TaskGroup and drains them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from daemon.core.jobs import Job, ObjectRef, Rejection
from daemon.ledger.records import dead_letter_for, fold
from daemon.ledger.store import LedgerStore
from daemon.ops.metrics import Metrics, Stage
from daemon.ops.metrics import Outcome as MetricOutcome
from daemon.ops.watchdog import StageProgress
from daemon.pipeline.annotate import Annotator, Pairing, missing_rejection
from daemon.pipeline.build import Builder
from daemon.pipeline.commit import sort_results
from daemon.pipeline.held import HeldBatches
from daemon.pipeline.intake import Intake
from daemon.pipeline.pause import IntakePause, released
from daemon.pipeline.tracker import FINAL, Counters, Outcome, Tracker
from daemon.pipeline.waiting import Parked, WaitingRoom
from daemon.sinks.base import Batch, BatchItem, Deliverer, ItemResult, PermanentError, TransientError
from workers.batching import JSON_ARRAY, Batcher, Framing
from workers.probe.media import MediaInfo
from workers.reads import ObjectGone, ReadError

log = structlog.get_logger()

Prober = Callable[[Job], Awaitable[MediaInfo]]
KeyMaker = Callable[[ObjectRef], str]

# End-of-stream sentinels, recognised by identity.
END_JOB = Job(ref=ObjectRef(origin="file", key="<end>"), message_id="<end>")
END_BATCH: list[Job] = []

# Where an outcome is counted in the metrics, and how a rejection's stage maps onto them.
OUTCOME_METRIC: dict[str, tuple[Stage, MetricOutcome]] = {
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
    "annotation": "build",
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
    recheck: tuple[float, float] = (1.0, 60.0)  # credentials re-check backoff: base, cap (pipeline.pause)


def batching_advice(s: Settings) -> str | None:
    """Why batches can never fill with these settings (each then waits the linger), or None. A
    batch holds at most ``max_in_flight`` objects: below ``max_items`` it is legal and slow (at
    most max_in_flight objects per linger). The labelbox sink refuses such a config outright."""
    if s.max_in_flight >= s.max_items:
        return None
    return (
        f"pipeline.max_in_flight ({s.max_in_flight}) is below sink.max_items ({s.max_items}): no batch can"
        f" fill, so each waits sink.linger_ms ({s.linger * 1000:g} ms) and at most {s.max_in_flight}"
        " objects are delivered per linger; raise max_in_flight or lower max_items"
    )


class Stages:
    """The stage loops; the attributes are set up by the pipeline."""

    deliverer: Deliverer
    ledger: LedgerStore
    prober: Prober
    builder: Builder
    s: Settings
    clock: Callable[[], float]
    counters: Counters
    metrics: Metrics
    tracker: Tracker
    probe_q: asyncio.Queue[Job]
    deliver_q: asyncio.Queue[list[Job]]
    dead_q: asyncio.Queue[Job]
    batcher: Batcher[Job]
    slots: asyncio.Semaphore
    in_flight_keys: dict[str, str]
    followers: dict[str, list[str]]
    _st_probe: StageProgress
    _st_deliver: StageProgress
    _st_commit: StageProgress
    _probing: int
    _batch_added: asyncio.Event
    _lingering: list[Job]
    annotator: Annotator | None
    room: WaitingRoom | None
    intake: Intake
    held: HeldBatches
    pause: IntakePause

    # -- probe + build + batch ----------------------------------------------------------------------
    async def _probe_worker(self) -> None:
        st = self._st_probe
        q = self.probe_q
        while (job := await q.get()) is not END_JOB:
            self._probing += 1
            st.busy = True
            st.queued = q.qsize()
            try:
                if not await self._work(job):
                    continue
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

    async def _work(self, job: Job) -> bool:
        """Probe and build one job (or prepare one annotation sidecar). False when the job was
        settled or parked here (nothing more to do with it now); True when it goes on, built or
        with its rejection."""
        pairing = None
        if self.annotator is not None:
            try:
                pairing = self.annotator.pair(job)
            except ValueError as e:  # the sidecar's media has no valid global key
                job.rejection = Rejection(
                    stage="annotation", rule="global_key", message=str(e), actual=job.ref.key
                )
                return True
        try:
            if pairing is not None:
                return await self._annotation(job, pairing)
            info = await self.prober(job)
        except ObjectGone as e:
            log.info("object gone", key=job.ref.key, reason=str(e))
            self._final(job, "gone")
            return False
        except ReadError as e:
            if e.transient:
                log.warning("read failed, will retry", key=job.ref.key, reason=str(e))
                self.intake.note_error(job.global_key, str(e))
                self._final(job, "retry")
                await self.ledger.release([job.global_key])
                return False
            job.rejection = Rejection(stage="read", rule=e.rule, message=str(e), actual=e.actual)
        except Exception as e:
            # A bug in a parser must not stop the other objects: this one is dead-lettered
            # with the exception named, and the traceback is logged for us to fix.
            log.exception("probe failed unexpectedly", key=job.ref.key)
            stage = "probe" if pairing is None else "annotation"
            job.rejection = Rejection(
                stage=stage, rule=f"{stage}.internal_error", message=f"{type(e).__name__}: {e}"
            )
        else:
            self.counters.probe_bytes += info.bytes_read
            self.counters.probe_requests += info.requests
            self.metrics.probe_cost(info.bytes_read, info.requests)
            job.info = info
            self.builder.build(job)
        return True

    async def _annotation(self, job: Job, pairing: Pairing) -> bool:
        assert self.annotator is not None and self.room is not None
        if await self.annotator.prepare(job, pairing) != "wait":
            return True
        coming = fold(pairing.media_key) in self.in_flight_keys  # settles here, needs no slot
        if not self.room.park(job, pairing.media_key, media_in_flight=coming):
            # full (or the run is ending): give it back to the source for later
            self._final(job, "retry", self.annotator.cfg.recheck_seconds)
            await self.ledger.release([job.global_key])
            return False
        log.debug("annotation waits for its media", key=job.ref.key, media=pairing.media_key)
        return False

    async def _resume(self, job: Job) -> None:
        """The waiting room hands a parked annotation back: its media is final now."""
        await self.probe_q.put(job)

    async def _expire(self, parked: Parked, why: str) -> None:
        parked.job.rejection = missing_rejection(parked.media_key, why)
        parked.job.state = "dead"
        await self.dead_q.put(parked.job)

    def _give_back(self, job: Job) -> None:
        self._final(job, "release")

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
        while (jobs := await self.deliver_q.get()) is not END_BATCH:
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
        refused = False  # for good, as a whole: the platform did not take it
        try:
            results = await self.deliverer.deliver(batch)
        except (TransientError, PermanentError) as e:
            refused = isinstance(e, PermanentError)
            log.error(
                "batch not delivered; messages will be retried",
                batch_id=batch.id,
                items=len(jobs),
                reason=str(e),
            )
            results = [ItemResult(key=j.global_key, status="retryable", reason=str(e)) for j in jobs]
        outcomes, dead = sort_results(jobs, results)
        failed = all(o == "retry" for _, o, _ in outcomes)
        # given up without an answer for any item: the platform may have taken it (answer lost),
        # so the batch is held and re-sent as it is, never rebuilt under a new id (pipeline.held)
        held = failed and not refused
        self.metrics.delivered(time.monotonic() - started, success=not failed)
        if held:
            self.held.hold(batch)
        elif failed:
            await self.ledger.abort_batch(batch.id)
        else:
            await self.ledger.finish_batch(batch.id, results, dead)
            self.counters.batches += 1
        retried = [job.global_key for job, outcome, _ in outcomes if outcome == "retry"]
        if self.pause.paused:  # the sink refuses our credentials: released, not the objects' failure
            outcomes = released(outcomes)
        elif retried:
            self.intake.note_errors(retried, results)
        if retried and not held:
            await self.ledger.release(retried)
        # one bound logger per batch (the lazy proxy would bind one per call); the level checked
        # once per batch, not a no-op debug call per object
        blog = log.bind(batch_id=batch.id)
        settled = blog.debug if blog.is_enabled_for(logging.DEBUG) else None
        for job, outcome, delay in outcomes:
            if settled is not None:
                settled("object settled", key=job.ref.key, global_key=job.global_key, outcome=outcome)
            if outcome == "dead" and job.rejection is not None:
                blog.warning(
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
            jobs = [j for j in group if j is not END_JOB]
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
        folded = fold(job.global_key)
        self.in_flight_keys.pop(folded, None)
        self.slots.release()
        self.tracker.settle(job.message_id, outcome, delay=delay, key=folded)
        self._count(job, outcome)
        # other offers of the same object that waited for this one
        then: Outcome = "duplicate" if outcome in FINAL else outcome
        for token in self.followers.pop(folded, ()):
            self.tracker.settle(token, then, delay=delay, key=folded)
            self._count(job, then)
        if self.room is not None:
            self.room.media_settled(job.global_key)

    def _count(self, job: Job, outcome: Outcome) -> None:
        if outcome == "dead":
            rej = job.rejection
            stage = _REJECTION_STAGE.get(rej.stage, "build") if rej is not None else "build"
            self.metrics.object_done(stage, "dead_lettered")
            self.metrics.dead_letter(stage, rej.rule if rej is not None else "unknown")
        else:
            stage, result = OUTCOME_METRIC[outcome]
            self.metrics.object_done(stage, result)
