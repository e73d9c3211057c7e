"""One sink endpoint's shared flow control: the request token bucket and the adaptive gate.

A sink calls ``await endpoint.request_slot(items=n)`` before *every* request it makes (uploads,
polls, result pages), so all of them share one rate limit; the :class:`Endpoint` also carries the
endpoint-wide ``Retry-After`` pause. :class:`AdaptiveGate` is the concurrency limit whose size the
AIMD controller moves. Both only sleep the durations the pure policies in ``workers/limits.py``
compute.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field

import structlog

from daemon.sinks.base import CredentialsError
from workers.limits import AdaptiveConcurrency, CircuitState, TokenBucket

log = structlog.get_logger()

CREDENTIALS_RECHECK = 60.0  # seconds objects wait at the source while the endpoint refuses us
# seconds this task spent in request_slot since track_waits() (a one-element list, shared by copies)
_waited: ContextVar[list[float] | None] = ContextVar("ingestd_slot_wait", default=None)


@dataclass(slots=True)
class DeliveryStats:
    """Per-sink counters, plain values the metrics and logs read (never a secret)."""

    sink: str
    requests: dict[str, int] = field(default_factory=dict)  # outcome -> count
    items: Counter[str] = field(default_factory=Counter)  # final item status -> count
    retries: int = 0
    budget_denied: int = 0
    given_back: int = 0  # batches returned as retryable
    splits: int = 0
    pauses: int = 0  # endpoint-wide Retry-After pauses
    platform_waits: int = 0  # polls answered "still running" (a job on the platform): not a wedge
    imports: Counter[str] = field(default_factory=Counter)  # annotation import jobs by state
    import_lines: Counter[str] = field(default_factory=Counter)  # annotation lines by outcome
    rate_limit_wait_seconds: float = 0.0
    concurrency_limit: int = 0
    in_flight: int = 0
    circuit_state: str = CircuitState.CLOSED.value
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=1024))

    def count(self, table: dict[str, int], key: str, n: int = 1) -> None:
        table[key] = table.get(key, 0) + n


class Endpoint:
    """The request (and optional item) token bucket every request to one endpoint goes through."""

    def __init__(
        self,
        name: str,
        *,
        requests_per_second: float,
        burst: float = 1.0,
        items_per_second: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.name = name
        self._clock = clock
        self._sleep = sleep
        now = clock()
        self.stats = DeliveryStats(sink=name)
        self._requests = TokenBucket(requests_per_second, burst, last=now)
        self._items = self._items_bucket(items_per_second, now)
        self._lock = asyncio.Lock()
        self.refused: str | None = None  # why the endpoint refuses our credentials, while it does
        self.on_refused: Callable[[str | None], None] | None = None  # told of every change

    def refuse(self, reason: str) -> None:
        """The endpoint refused our credentials: nothing is sent until :meth:`checked` passes.
        Said once in the log, however many batches were refused (given back quietly meanwhile)."""
        self.stats.count(self.stats.requests, "credentials_refused")
        if self.refused is None:
            log.error(
                "sink refused our credentials; delivery stopped until they are fixed",
                sink=self.name,
                reason=reason,
            )
        self.refused = reason
        if self.on_refused is not None:
            self.on_refused(reason)

    async def checked(self, check: Callable[[], Awaitable[None]]) -> None:
        """Run a sink's check: a refusal of our credentials stops delivery, a pass resumes it."""
        try:
            await check()
        except CredentialsError as e:
            self.refuse(str(e))
            raise
        if self.refused is not None:
            log.info("sink accepts our credentials again; delivery resumed", sink=self.name)
            self.refused = None
            if self.on_refused is not None:
                self.on_refused(None)

    @staticmethod
    def _items_bucket(rate: float, now: float) -> TokenBucket | None:
        return TokenBucket(rate, max(1.0, rate), last=now) if rate > 0 else None

    async def request_slot(self, items: int = 0) -> None:
        """Wait until one more request (carrying ``items`` items) may be sent.

        Waiters queue FIFO on a lock and only the head holds a reservation, so each reservation is
        made at or after the previous waiter was released: a late wake-up of the event loop cannot
        release a bunch of overdue reservations together. Released requests therefore respect
        ``burst + rate * w`` per window of ``w`` seconds, plus at most one request whose own
        wake-up was late.
        """
        started = self._clock()
        try:
            async with self._lock:
                while True:
                    now = self._clock()
                    epoch = self._requests.epoch
                    wait = self._requests.acquire(now)
                    if self._items is not None and items:
                        wait = max(wait, self._items.acquire(now, items))
                    if wait <= 0:
                        return
                    await self._sleep(wait)
                    if self._requests.epoch == epoch:
                        return
                    # a Retry-After pause began while we slept: our reservation is void, queue again
        finally:
            waited = self._clock() - started
            self.stats.rate_limit_wait_seconds += waited
            acc = _waited.get()
            if acc is not None:
                acc[0] += waited

    @staticmethod
    def track_waits() -> list[float]:
        """Start counting this task's rate-limit waits; the returned cell accumulates seconds."""
        cell = [0.0]
        _waited.set(cell)
        return cell

    def pause(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (a server's Retry-After): every worker waits."""
        now = self._clock()
        if self._requests.pause_until(now, now + seconds):
            self.stats.pauses += 1
            log.info("endpoint.paused", sink=self.name, seconds=round(seconds, 3))

    def paused_for(self) -> float:
        return max(0.0, self._requests.paused_until - self._clock())

    def reconfigure(self, *, requests_per_second: float, burst: float, items_per_second: float) -> None:
        now = self._clock()
        self._requests.reconfigure(now, requests_per_second, burst)
        if self._items is not None and items_per_second > 0:
            self._items.reconfigure(now, items_per_second, max(1.0, items_per_second))
        else:
            self._items = self._items_bucket(items_per_second, now)

    def __repr__(self) -> str:
        b = self._requests
        return (
            f"<Endpoint {self.name} rate={b.rate}/s tokens={b.tokens:.2f} "
            f"paused_for={self.paused_for():.3f}s waited={self.stats.rate_limit_wait_seconds:.3f}s>"
        )


class AdaptiveGate:
    """A semaphore whose size is ``aimd.slots``, re-read on every release and :meth:`wake`."""

    def __init__(self, aimd: AdaptiveConcurrency) -> None:
        self.aimd = aimd
        self.in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        if not self._waiters and self.in_flight < self.aimd.slots:
            self.in_flight += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # the slot was handed to us as we were cancelled: pass it on
            else:
                try:
                    self._waiters.remove(fut)
                except ValueError:
                    pass
            raise

    def release(self) -> None:
        self.in_flight -= 1
        self.wake()

    def wake(self) -> None:
        while self._waiters and self.in_flight < self.aimd.slots:
            fut = self._waiters.popleft()
            if not fut.done():
                self.in_flight += 1
                fut.set_result(None)

    def __repr__(self) -> str:
        return (
            f"<AdaptiveGate limit={self.aimd.limit:.2f} in_flight={self.in_flight} "
            f"waiting={len(self._waiters)}>"
        )
