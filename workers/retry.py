"""Pure retry policy: full-jitter exponential backoff, a retry budget, ``Retry-After`` parsing.

The one retry loop of the daemon (``daemon/sinks/delivery.py``) asks these objects what to do; none of
them sleeps or reads a clock. Why not ``stamina``: its loop retries one call, while ours must share
a budget across every worker of an endpoint, pause the whole endpoint on ``Retry-After``, split
batches on some permanent errors and give items back instead of raising. The formula is stamina's
shape (exponential, full jitter, capped wait, attempt and total-time limits) and the test switch is
the injected random source (``lambda: 0.0`` removes backoff).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import parsedate_to_datetime


@dataclass(frozen=True, slots=True)
class Backoff:
    """``delay(n) = U(0, 1) * min(cap, base * 2**n)`` for the ``n``-th retry (``n`` from 0).

    Full jitter (AWS Architecture Blog, "Exponential Backoff and Jitter"): the spread of the
    uniform draw de-synchronises clients that failed together. ``random`` returns floats in [0, 1).
    """

    base: float = 0.1
    cap: float = 10.0
    random: Callable[[], float] = field(default=lambda: 0.5, compare=False)

    def ceiling(self, n: int) -> float:
        if n < 0:
            raise ValueError(f"retry number must be >= 0, got {n}")
        # 2**n overflows floats near n=1024; the cap is reached long before
        return min(self.cap, self.base * 2.0 ** min(n, 64))

    def delay(self, n: int) -> float:
        return self.random() * self.ceiling(n)


@dataclass(slots=True)
class RetryBudget:
    """Retries limited to ``ratio`` of requests over a sliding ``window`` (seconds).

    Token-quota style (Finagle's RetryBudget, the AWS SDK retry quota): each first attempt deposits
    ``ratio`` of a token, each retry withdraws one, deposits expire after ``window``; a floor of
    ``min_per_second * window`` tokens lets a quiet endpoint still retry. Time is kept in one-second
    slots so memory is ``window`` entries whatever the traffic.
    """

    ratio: float
    window: int = 10
    min_per_second: float = 1.0
    _requests: list[int] = field(default_factory=list)
    _retries: list[int] = field(default_factory=list)
    _slot: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.ratio <= 1:
            raise ValueError(f"retry budget ratio must be within 0..1, got {self.ratio}")
        if self.window < 1:
            raise ValueError(f"retry budget window must be >= 1 s, got {self.window}")
        self._requests = [0] * self.window
        self._retries = [0] * self.window

    def _advance(self, now: float) -> int:
        slot = math.floor(now)
        if self._slot is None:
            self._slot = slot
        elif slot > self._slot:
            for s in range(max(self._slot + 1, slot - self.window + 1), slot + 1):
                self._requests[s % self.window] = 0
                self._retries[s % self.window] = 0
            self._slot = slot
        return slot % self.window

    def record_request(self, now: float) -> None:
        """A first attempt was made."""
        self._requests[self._advance(now)] += 1

    def available(self, now: float) -> float:
        self._advance(now)
        floor = self.min_per_second * self.window
        return floor + self.ratio * sum(self._requests) - sum(self._retries)

    def try_retry(self, now: float) -> bool:
        """Withdraw one retry if the budget allows it."""
        if self.available(now) < 1:
            return False
        self._retries[self._advance(now)] += 1
        return True


_DELTA = re.compile(r"\s*(\d+(?:\.\d+)?)\s*")


def parse_retry_after(value: str | None, *, now_epoch: float, cap: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value, capped; ``None`` if absent or unparseable.

    RFC 9110 10.2.3: ``delay-seconds`` (decimal digits; a fraction is tolerated) or an
    ``HTTP-date`` (IMF-fixdate, and the obsolete RFC 850 and asctime forms, read as UTC). A date in
    the past means 0. ``now_epoch`` is the wall clock (Unix seconds) the date is measured against.
    """
    if value is None:
        return None
    m = _DELTA.fullmatch(value)
    if m:
        return min(cap, float(m.group(1)))
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(cap, max(0.0, when.timestamp() - now_epoch))
