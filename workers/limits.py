"""Pure flow-control policies for one sink endpoint: token bucket, AIMD concurrency, circuit breaker.

Nothing here sleeps or reads a clock: every method takes ``now`` (monotonic seconds) and answers
with a number or a decision; ``daemon/sinks/delivery.py`` turns the answers into ``asyncio.sleep``.

Why our own code rather than ``aiolimiter``: the endpoint's bucket must also carry the endpoint-wide
``Retry-After`` pause (every waiter re-queues after it), meter items as well as requests, change rate
at runtime, and be driven by an injected clock in tests; aiolimiter's leaky bucket does none of
those. No maintained Python package does AIMD concurrency or a breaker with injected time.

Token bucket, theory of operation
---------------------------------
The bucket holds up to ``burst`` tokens and refills at ``rate`` tokens/s. :meth:`TokenBucket.acquire`
*reserves*: it always takes the tokens, letting the level go negative (a debt), and returns how long
the caller must wait until the debt is paid. Callers that sleep exactly that long are released in
FIFO order at ``rate``; over any window of ``w`` seconds at most ``burst + rate * w`` tokens are
released. :meth:`TokenBucket.pause_until` forgets the debt, empties the bucket and stops refilling
until the pause ends; it bumps :attr:`TokenBucket.epoch` so callers already sleeping on an older
reservation know to reserve again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


@dataclass(slots=True)
class TokenBucket:
    """Reservation token bucket: ``acquire(now, n) -> seconds to wait`` (0 when available now)."""

    rate: float
    burst: float
    tokens: float = math.nan
    last: float = 0.0
    paused_until: float = -math.inf
    epoch: int = 0

    def __post_init__(self) -> None:
        self._check(self.rate, self.burst)
        if math.isnan(self.tokens):
            self.tokens = self.burst

    @staticmethod
    def _check(rate: float, burst: float) -> None:
        if not rate > 0:
            raise ValueError(f"token bucket rate must be > 0, got {rate}")
        if not burst >= 1:
            raise ValueError(f"token bucket burst must be >= 1, got {burst}")

    def _refill(self, now: float) -> None:
        if now > self.last:
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
            self.last = now

    def acquire(self, now: float, n: float = 1) -> float:
        """Reserve ``n`` tokens; return the seconds until the reservation may be used."""
        if n < 0:
            raise ValueError(f"cannot acquire a negative number of tokens ({n})")
        self._refill(now)
        self.tokens -= n
        ready = self.last + (-self.tokens / self.rate if self.tokens < 0 else 0.0)
        return max(0.0, ready - now)

    def pause_until(self, now: float, until: float) -> bool:
        """Release nothing before ``until`` (Retry-After). Returns False if already paused as long."""
        if until <= max(now, self.paused_until):
            return False
        self._refill(now)
        self.paused_until = until
        self.tokens = 0.0
        self.last = until
        self.epoch += 1
        return True

    def reconfigure(self, now: float, rate: float, burst: float) -> None:
        self._check(rate, burst)
        self._refill(now)
        self.rate, self.burst = rate, burst
        self.tokens = min(self.tokens, burst)


@dataclass(slots=True)
class AdaptiveConcurrency:
    """AIMD concurrency limit (the shape of Vector's adaptive request concurrency).

    * Additive increase: each response that came back while the limit was fully used, with a
      latency not above ``tolerance`` times the EWMA baseline, adds ``1 / limit`` (so one slot per
      round trip of a full window).
    * Multiplicative decrease: an overload signal (429, 503, timeout) or a latency above the
      tolerance multiplies the limit by ``decrease``, at most once per baseline round trip so one
      burst of rejections from the same window counts once.
    * Bounded by ``[minimum, maximum]``; :attr:`slots` is the integer limit a gate enforces.
    """

    maximum: int
    minimum: int = 1
    initial: float | None = None
    decrease: float = 0.5
    tolerance: float = 2.0
    alpha: float = 0.1
    limit: float = 0.0
    baseline: float | None = None
    last_decrease: float = -math.inf
    increases: int = 0
    decreases: int = 0

    def __post_init__(self) -> None:
        if self.minimum < 1 or self.maximum < self.minimum:
            raise ValueError(
                f"concurrency bounds must satisfy 1 <= minimum <= maximum, got {self.minimum}..{self.maximum}"
            )
        if not 0 < self.decrease < 1:
            raise ValueError(f"decrease factor must be within (0, 1), got {self.decrease}")
        start = self.maximum if self.initial is None else self.initial
        self.limit = float(min(self.maximum, max(self.minimum, start)))

    @property
    def slots(self) -> int:
        return max(self.minimum, int(self.limit))

    def on_response(self, now: float, latency: float, in_flight: int) -> None:
        """A completed request that the server answered normally (not overload)."""
        base = self.baseline
        if base is not None and latency > self.tolerance * base:
            self._decrease(now)
        elif in_flight >= self.slots and self.limit < self.maximum:
            self.limit = min(float(self.maximum), self.limit + 1.0 / self.limit)
            self.increases += 1
        self.baseline = latency if base is None else base + self.alpha * (latency - base)

    def on_failure(self, now: float, latency: float) -> None:
        """A request failed without an overload status: only its slowness (a timeout) counts."""
        if self.baseline is not None and latency > self.tolerance * self.baseline:
            self._decrease(now)

    def on_overload(self, now: float) -> None:
        """The server said it is overloaded (429, 503) or a request timed out."""
        self._decrease(now)

    def _decrease(self, now: float) -> None:
        window = self.baseline or 0.0
        if now - self.last_decrease < window:
            return
        self.limit = max(float(self.minimum), self.limit * self.decrease)
        self.last_decrease = now
        self.decreases += 1

    def reconfigure(self, maximum: int) -> None:
        if maximum < self.minimum:
            raise ValueError(f"maximum concurrency must be >= {self.minimum}, got {maximum}")
        self.maximum = maximum
        self.limit = min(self.limit, float(maximum))


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(slots=True)
class CircuitBreaker:
    """Closed -> open after ``threshold`` consecutive failures lasting at least ``min_duration``
    seconds; open -> half-open after ``open_seconds``; half-open lets ``probes`` requests through
    one at a time and closes after that many successes in a row, or re-opens (for twice as long,
    up to ``max_open_seconds``) on a failure."""

    threshold: int = 10
    min_duration: float = 1.0
    open_seconds: float = 5.0
    max_open_seconds: float = 60.0
    probes: int = 1
    state: CircuitState = CircuitState.CLOSED
    failures: int = 0
    first_failure: float = 0.0
    opened_at: float = 0.0
    current_open: float = 0.0
    probe_in_flight: bool = False
    probe_successes: int = 0
    opens: int = 0

    def _tick(self, now: float) -> None:
        if self.state is CircuitState.OPEN and now >= self.opened_at + self.current_open:
            self.state = CircuitState.HALF_OPEN
            self.probe_in_flight = False
            self.probe_successes = 0

    def current(self, now: float) -> CircuitState:
        self._tick(now)
        return self.state

    def allow(self, now: float) -> bool:
        """May a request go now? In half-open this reserves the single probe slot."""
        self._tick(now)
        if self.state is CircuitState.CLOSED:
            return True
        if self.state is CircuitState.HALF_OPEN and not self.probe_in_flight:
            self.probe_in_flight = True
            return True
        return False

    def retry_in(self, now: float) -> float:
        """Seconds until :meth:`allow` may say yes (0 when closed; unknown in half-open: 0)."""
        self._tick(now)
        if self.state is CircuitState.OPEN:
            return self.opened_at + self.current_open - now
        return 0.0

    def on_success(self, now: float) -> None:
        self._tick(now)
        self.failures = 0
        if self.state is CircuitState.HALF_OPEN:
            self.probe_in_flight = False
            self.probe_successes += 1
            if self.probe_successes >= self.probes:
                self.state = CircuitState.CLOSED
                self.current_open = 0.0

    def on_failure(self, now: float) -> None:
        self._tick(now)
        if self.state is CircuitState.HALF_OPEN:
            self._open(now, min(self.max_open_seconds, max(self.open_seconds, 2 * self.current_open)))
            return
        if self.state is CircuitState.OPEN:
            return
        if self.failures == 0:
            self.first_failure = now
        self.failures += 1
        if self.failures >= self.threshold and now - self.first_failure >= self.min_duration:
            self._open(now, self.open_seconds)

    def release_probe(self) -> None:
        """A half-open probe ended without a verdict (cancelled): let another one go."""
        self.probe_in_flight = False

    def _open(self, now: float, seconds: float) -> None:
        self.state = CircuitState.OPEN
        self.opened_at = now
        self.current_open = seconds
        self.failures = 0
        self.probe_in_flight = False
        self.opens += 1
