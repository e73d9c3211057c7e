"""The delivery executor: the daemon's one retry loop, one :class:`Deliverer` per sink endpoint.

``await deliverer.deliver(batch)`` returns one :class:`ItemResult` per item, each final
(``accepted``, ``duplicate``, ``rejected`` with the server's reason) or ``retryable`` when the
retries, the retry budget or the deadline ran out, or the circuit is open (the pipeline gives those
messages back to the source, waiting at least ``retry_after`` when set).

One attempt = breaker admission -> a slot of the AIMD gate -> ``sink.deliver`` (the sink takes a
token from the shared :class:`~daemon.endpoint.Endpoint` before each request it makes). Then:

* results: final ones are kept; items the sink marked ``retryable`` are retried as a sub-batch;
* :class:`TransientError`: ``Retry-After`` pauses the whole endpoint; the retry waits a full-jitter
  backoff, if the attempt count, the deadline and the retry budget allow it;
* :class:`PermanentError` with a splitting status (400, 413, 422) on a multi-item batch: the batch
  is split in halves and each half delivered, down to the single bad items, which are rejected
  with the server's message; any other permanent error rejects the batch's items;
* :class:`CredentialsError` (the endpoint refuses *us*): no retry, nothing rejected; the items are
  given back with the message, and :meth:`Deliverer.ready` is false until a delivery succeeds.

The deadline (``DeliveryLimits.deadline``, per batch) bounds the waits (breaker, concurrency slot,
backoff, Retry-After pause), never a call in progress: the sink's request timeout bounds that, so
no call is cut off with its outcome unknown. A 429 gives the breaker no verdict (the server is
alive); 429, 503 and slow failures shrink the concurrency limit.
"""

from __future__ import annotations

import asyncio
import operator
import random
import time
from collections.abc import Callable, Iterable

import msgspec
import structlog

from daemon.core.config import SinkConfig
from daemon.sinks.base import Batch, CredentialsError, ItemResult, PermanentError, Sink, TransientError
from daemon.sinks.endpoint import AdaptiveGate, DeliveryStats, Endpoint
from workers.classify import OVERLOAD_STATUSES, SPLIT_STATUSES
from workers.limits import AdaptiveConcurrency, CircuitBreaker, CircuitState
from workers.retry import Backoff, RetryBudget

log = structlog.get_logger()
_status = operator.attrgetter("status")


class DeliveryLimits(msgspec.Struct, frozen=True, kw_only=True):
    """The knobs of one endpoint; :meth:`from_config` reads them from ``[sink]``."""

    requests_per_second: float
    burst: float = 1.0  # requests released at once after idle; any 1 s window sees <= rate + burst
    # the bucket runs this fraction below the configured rate, so arrival jitter between our clock
    # and the server's windows (loopback: ~10 ms; WAN: more) does not push a window over the limit
    headroom: float = 0.02
    items_per_second: float = 0.0  # 0 = unlimited
    max_concurrency: int = 8
    max_retries: int = 8
    retry_budget: float = 0.2
    retry_after_cap: float = 300.0
    deadline: float = 120.0  # per batch, all attempts and waits included
    backoff_base: float = 0.1
    backoff_cap: float = 10.0
    breaker_threshold: int = 10  # consecutive failures ...
    breaker_min_failing_seconds: float = 1.0  # ... lasting at least this long open the circuit
    breaker_open_seconds: float = 5.0
    latency_tolerance: float = 2.0  # AIMD shrinks past this x usual latency (inf: a call = a task)

    def __post_init__(self) -> None:
        checks = (
            ("requests_per_second", self.requests_per_second > 0, "must be > 0"),
            ("burst", self.burst >= 1, "must be >= 1"),
            ("items_per_second", self.items_per_second >= 0, "must be >= 0 (0 = unlimited)"),
            ("max_concurrency", self.max_concurrency >= 1, "must be >= 1"),
            ("max_retries", self.max_retries >= 0, "must be >= 0"),
            ("retry_budget", 0 <= self.retry_budget <= 1, "must be within 0..1"),
            ("headroom", 0 <= self.headroom < 0.5, "must be within 0..0.5"),
            ("deadline", self.deadline > 0, "must be > 0"),
        )
        for name, ok, rule in checks:
            if not ok:
                raise ValueError(f"delivery limits: {name} {rule}, got {getattr(self, name)!r}")

    @property
    def bucket_rate(self) -> float:
        return self.requests_per_second * (1 - self.headroom)

    @classmethod
    def from_config(cls, sink: SinkConfig) -> DeliveryLimits:
        return cls(
            requests_per_second=sink.requests_per_second,
            items_per_second=sink.items_per_second,
            max_concurrency=sink.max_concurrency,
            max_retries=sink.max_retries,
            retry_budget=sink.retry_budget,
            retry_after_cap=sink.retry_after_cap,
            deadline=max(60.0, 4 * sink.request_timeout),
        )


class Deliverer:
    """Wraps a :class:`Sink`; see the module docstring for the algorithm."""

    def __init__(
        self,
        sink: Sink,
        endpoint: Endpoint,
        limits: DeliveryLimits,
        *,
        clock: Callable[[], float] = time.monotonic,
        random_source: Callable[[], float] = random.random,
        split_on: Iterable[int] = SPLIT_STATUSES,
    ) -> None:
        self.name = sink.name  # the pipeline's Deliverer protocol: name + deliver()
        self.sink = sink
        self.endpoint = endpoint
        self._clock = clock
        self._random = random_source
        self._split_on = frozenset(split_on)
        self._aimd = AdaptiveConcurrency(maximum=limits.max_concurrency, tolerance=limits.latency_tolerance)
        self._gate = AdaptiveGate(self._aimd)
        self._breaker = CircuitBreaker(
            threshold=limits.breaker_threshold,
            min_duration=limits.breaker_min_failing_seconds,
            open_seconds=limits.breaker_open_seconds,
        )
        self._verdict = asyncio.Event()
        self.refused: str | None = None  # the last CredentialsError, until a delivery succeeds
        self.limits = limits
        self._budget = RetryBudget(limits.retry_budget)
        self._backoff = Backoff(limits.backoff_base, limits.backoff_cap, random_source)

    @classmethod
    def endpoint_for(
        cls, name: str, limits: DeliveryLimits, clock: Callable[[], float] = time.monotonic
    ) -> Endpoint:
        """The endpoint a sink must be given before it is wrapped by ``Deliverer``."""
        return Endpoint(
            name,
            requests_per_second=limits.bucket_rate,
            burst=limits.burst,
            items_per_second=limits.items_per_second,
            clock=clock,
        )

    def reload(self, limits: DeliveryLimits) -> None:
        """Apply new limits at runtime (SIGHUP); counters, baseline and breaker state are kept."""
        self.endpoint.reconfigure(
            requests_per_second=limits.bucket_rate,
            burst=limits.burst,
            items_per_second=limits.items_per_second,
        )
        self._aimd.reconfigure(limits.max_concurrency)
        if limits.max_concurrency > self._aimd.limit and self._aimd.limit == self.limits.max_concurrency:
            self._aimd.limit = float(limits.max_concurrency)  # was at the old ceiling: follow it up
        self._budget.ratio = limits.retry_budget
        self._backoff = Backoff(limits.backoff_base, limits.backoff_cap, self._random)
        self.limits = limits
        self._gate.wake()
        log.info(
            "delivery.reloaded",
            sink=self.sink.name,
            rps=limits.requests_per_second,
            max_concurrency=limits.max_concurrency,
        )

    @property
    def stats(self) -> DeliveryStats:
        s = self.endpoint.stats
        s.concurrency_limit = self._aimd.slots
        s.in_flight = self._gate.in_flight
        s.circuit_state = self._breaker.current(self._clock()).value
        return s

    def __repr__(self) -> str:
        s = self.stats
        return (
            f"<Deliverer {self.sink.name} circuit={s.circuit_state} limit={s.concurrency_limit} "
            f"in_flight={s.in_flight} retries={s.retries} given_back={s.given_back}>"
        )

    def circuit(self) -> CircuitState:
        return self._breaker.current(self._clock())

    def ready(self) -> bool:
        """False while the circuit is open or the endpoint refuses our credentials (``/readyz``)."""
        return self.refused is None and self.circuit() is not CircuitState.OPEN

    async def check(self) -> None:
        await self.sink.check()

    async def deliver(self, batch: Batch) -> list[ItemResult]:
        if not batch.items:
            return []
        deadline = self._clock() + self.limits.deadline
        self._budget.record_request(self._clock())
        results = await self._run(batch, deadline)
        self.endpoint.stats.items.update(map(_status, results))
        return results

    async def _run(self, batch: Batch, deadline: float) -> list[ItemResult]:
        final: list[ItemResult] = []
        retry_no = 0
        while True:
            wait = await self._admit(deadline)
            if wait is not None:
                return [*final, *self._give_back(batch, "circuit open: endpoint failing", wait)]
            paused = self.endpoint.paused_for()
            if self._clock() + paused >= deadline:
                reason = "endpoint paused by Retry-After past the delivery deadline"
                return [*final, *self._give_back(batch, reason, paused)]
            outcome = await self._attempt(batch, deadline)
            if outcome is None:
                reason = "delivery deadline reached waiting for a concurrency slot"
                return [*final, *self._give_back(batch, reason, None)]
            if isinstance(outcome, PermanentError):
                return [*final, *await self._permanent(batch, outcome, deadline)]
            if isinstance(outcome, CredentialsError):  # the endpoint refuses us: no retry, no dead letter
                self.refused = str(outcome)
                return [*final, *self._give_back(batch, self.refused, None)]
            if isinstance(outcome, list):
                self.refused = None
                retry = [r for r in outcome if r.status == "retryable"]
                if not retry:
                    final.extend(outcome)
                    return final
                again = {r.key for r in retry}
                final.extend(r for r in outcome if r.status != "retryable")
                batch = Batch.of([i for i in batch.items if i.key in again])
                reason = retry[0].reason or "retryable"
                error = TransientError(f"sink marked {len(again)} item(s) retryable: {reason}")
            else:
                error = outcome
            retry_no += 1
            delay = self._retry_delay(batch, error, retry_no, deadline)
            if isinstance(delay, list):
                return [*final, *delay]
            await asyncio.sleep(delay)

    def _retry_delay(
        self, batch: Batch, error: TransientError, retry_no: int, deadline: float
    ) -> float | list[ItemResult]:
        """Seconds to back off before retry ``retry_no``, or the give-back results."""
        if retry_no > self.limits.max_retries:
            return self._give_back(batch, f"gave up after {self.limits.max_retries} retries: {error}", None)
        now = self._clock()
        delay = self._backoff.delay(retry_no - 1)
        wait = max(delay, self.endpoint.paused_for())
        if now + wait >= deadline:
            return self._give_back(batch, f"delivery deadline reached: {error}", wait)
        if not self._budget.try_retry(now):
            self.endpoint.stats.budget_denied += 1
            return self._give_back(batch, f"retry budget exhausted: {error}", wait)
        self.endpoint.stats.retries += 1
        log.debug(
            "delivery.retry",
            sink=self.sink.name,
            batch=batch.id,
            retry=retry_no,
            status=error.status,
            delay=round(delay, 3),
            error=str(error),
        )
        return delay

    async def _admit(self, deadline: float) -> float | None:
        """Wait for the breaker to let a request through; the remaining wait if past the deadline."""
        while True:
            now = self._clock()
            if self._breaker.allow(now):
                return None
            wait = self._breaker.retry_in(now)
            if now + wait >= deadline:
                return max(wait, 0.0)
            verdict = self._verdict
            try:
                async with asyncio.timeout(wait if wait > 0 else deadline - now):
                    await verdict.wait()
            except TimeoutError:
                pass

    def _breaker_event(self, ok: bool) -> None:
        before = self._breaker.state
        now = self._clock()
        if ok:
            self._breaker.on_success(now)
        else:
            self._breaker.on_failure(now)
        after = self._breaker.state
        if after is not before:
            log.warning("circuit.changed", sink=self.sink.name, state=after.value, was=before.value)
        self._verdict.set()
        self._verdict = asyncio.Event()

    async def _attempt(
        self, batch: Batch, deadline: float
    ) -> list[ItemResult] | TransientError | PermanentError | None:
        """One call of the sink; ``None`` if the deadline passed while waiting for a slot.

        The deadline bounds the waits, not a call in progress: the sink's own request timeout
        does that, so a call is never cut off with its outcome unknown.
        """
        try:
            async with asyncio.timeout_at(self._loop_deadline(deadline)):
                await self._gate.acquire()
        except TimeoutError:
            self._release_probe()
            return None
        stats = self.endpoint.stats
        started = self._clock()
        waited = self.endpoint.track_waits()
        try:
            results = await self.sink.deliver(batch)
        except TransientError as e:
            stats.count(stats.requests, f"transient_{e.status}" if e.status else "transient")
            now = self._clock()
            if e.status in OVERLOAD_STATUSES:
                self._aimd.on_overload(now)
            else:  # a timeout is the far end of rising latency
                self._aimd.on_failure(now, max(0.0, now - started - waited[0]))
            if e.retry_after is not None:
                self.endpoint.pause(min(e.retry_after, self.limits.retry_after_cap))
            if e.status == 429:  # throttling says the server is alive: no breaker verdict
                self._release_probe()
            else:
                self._breaker_event(ok=False)
            return e
        except PermanentError as e:
            stats.count(stats.requests, f"permanent_{e.status}" if e.status else "permanent")
            self._breaker_event(ok=True)
            return e
        except BaseException:
            self._release_probe()  # cancelled or a sink bug: no verdict, let another probe go
            raise
        finally:
            in_flight = self._gate.in_flight
            self._gate.release()
        # latency of the requests themselves, without the time spent waiting for rate-limit tokens
        now = self._clock()
        latency = max(0.0, now - started - waited[0])
        stats.latencies.append(latency)
        stats.count(stats.requests, "ok")
        self._aimd.on_response(now, latency, in_flight)
        self._gate.wake()
        self._breaker_event(ok=True)
        return results

    def _release_probe(self) -> None:
        if self._breaker.state is CircuitState.HALF_OPEN:
            self._breaker.release_probe()

    def _loop_deadline(self, deadline: float) -> float:
        loop = asyncio.get_running_loop()
        return loop.time() + max(0.0, deadline - self._clock())

    async def _permanent(self, batch: Batch, error: PermanentError, deadline: float) -> list[ItemResult]:
        if error.status in self._split_on and len(batch.items) > 1:
            mid = len(batch.items) // 2
            halves = [Batch.of(batch.items[:mid]), Batch.of(batch.items[mid:])]
            self.endpoint.stats.splits += 1
            log.info(
                "delivery.split",
                sink=self.sink.name,
                batch=batch.id,
                items=len(batch.items),
                status=error.status,
            )
            now = self._clock()
            for _ in halves:
                self._budget.record_request(now)
            parts = await asyncio.gather(*(self._run(h, deadline) for h in halves))
            return [r for part in parts for r in part]
        log.info(
            "delivery.rejected",
            sink=self.sink.name,
            batch=batch.id,
            items=len(batch.items),
            status=error.status,
            reason=str(error),
        )
        return [ItemResult(key=i.key, status="rejected", reason=str(error)) for i in batch.items]

    def _give_back(self, batch: Batch, reason: str, retry_after: float | None) -> list[ItemResult]:
        self.endpoint.stats.given_back += 1
        log.warning(
            "delivery.given_back",
            sink=self.sink.name,
            batch=batch.id,
            items=len(batch.items),
            reason=reason,
            retry_after=retry_after,
        )
        ra = None if retry_after is None else round(retry_after, 3)
        return [ItemResult(key=i.key, status="retryable", reason=reason, retry_after=ra) for i in batch.items]
