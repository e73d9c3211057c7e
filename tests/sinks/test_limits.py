"""Token bucket, AIMD concurrency and circuit breaker, driven by an injected clock (no sleeping)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.limits import AdaptiveConcurrency, CircuitBreaker, CircuitState, TokenBucket

from .fault_server import max_in_window


def release_times(bucket: TokenBucket, arrivals: list[float]) -> list[float]:
    """When each caller is released if it sleeps exactly what acquire() says."""
    return [t + bucket.acquire(t) for t in arrivals]


def test_bucket_burst_is_free_then_rate_spaces_callers() -> None:
    b = TokenBucket(rate=10.0, burst=3.0, last=0.0)
    waits = [b.acquire(0.0) for _ in range(6)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3:] == pytest.approx([0.1, 0.2, 0.3])


def test_bucket_refills_at_rate_up_to_burst() -> None:
    b = TokenBucket(rate=10.0, burst=2.0, last=0.0)
    assert b.acquire(0.0, 2) == 0.0
    assert b.acquire(0.05) == pytest.approx(0.05)  # half a token had come back
    assert b.acquire(100.0) == 0.0  # long idle: refilled, but only to burst
    assert b.acquire(100.0) == 0.0
    assert b.acquire(100.0) == pytest.approx(0.1)


def test_bucket_items_larger_than_burst_wait_their_share() -> None:
    b = TokenBucket(rate=500.0, burst=500.0, last=0.0)
    assert b.acquire(0.0, 1000) == pytest.approx(1.0)
    assert b.acquire(0.0, 500) == pytest.approx(2.0)


@given(
    rate=st.floats(1.0, 1000.0),
    burst=st.integers(1, 20),
    gaps=st.lists(st.floats(0.0, 0.05), min_size=1, max_size=300),
)
def test_bucket_never_releases_more_than_burst_plus_rate_per_window(
    rate: float, burst: int, gaps: list[float]
) -> None:
    b = TokenBucket(rate=rate, burst=float(burst), last=0.0)
    arrivals, t = [], 0.0
    for g in gaps:
        t += g
        arrivals.append(t)
    released = release_times(b, arrivals)
    assert released == sorted(released)  # FIFO
    window = 1.0
    assert max_in_window(released, window) <= burst + rate * window + 1e-6


def test_bucket_pause_releases_nothing_before_it_ends_and_restarts_at_rate() -> None:
    b = TokenBucket(rate=100.0, burst=5.0, last=0.0)
    epoch = b.epoch
    assert b.pause_until(1.0, 3.0)
    assert b.epoch == epoch + 1
    waits = [b.acquire(1.5) for _ in range(3)]
    assert [1.5 + w for w in waits] == pytest.approx([3.01, 3.02, 3.03])
    assert not b.pause_until(2.0, 2.5)  # a shorter pause does not shorten the current one


def test_bucket_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="rate must be > 0, got 0"):
        TokenBucket(rate=0.0, burst=1.0)
    with pytest.raises(ValueError, match="burst must be >= 1"):
        TokenBucket(rate=1.0, burst=0.5)
    b = TokenBucket(rate=1.0, burst=1.0)
    with pytest.raises(ValueError, match="negative"):
        b.acquire(0.0, -1)


def test_bucket_reconfigure_changes_rate_and_clamps_tokens() -> None:
    b = TokenBucket(rate=10.0, burst=10.0, last=0.0)
    b.reconfigure(0.0, 100.0, 2.0)
    assert b.tokens == 2.0
    b.acquire(0.0, 2)
    assert b.acquire(0.0) == pytest.approx(0.01)


def test_aimd_grows_by_one_slot_per_full_window_while_latency_holds() -> None:
    a = AdaptiveConcurrency(maximum=10, initial=2)
    for i in range(2):
        a.on_response(float(i), 0.1, in_flight=2)
    assert a.limit == pytest.approx(2.0 + 1 / 2 + 1 / 2.5)
    assert a.slots == 2
    for i in range(100):
        a.on_response(float(i), 0.1, in_flight=a.slots)
    assert a.limit == 10.0  # bounded by the maximum


def test_aimd_does_not_grow_when_the_limit_is_not_used() -> None:
    a = AdaptiveConcurrency(maximum=10, initial=4)
    for i in range(50):
        a.on_response(float(i), 0.1, in_flight=1)
    assert a.limit == 4.0


def test_aimd_halves_on_overload_once_per_round_trip() -> None:
    a = AdaptiveConcurrency(maximum=16)
    a.on_response(0.0, 0.2, in_flight=1)  # baseline 0.2 s
    a.on_overload(1.0)
    a.on_overload(1.1)  # the same window's rejections count once
    assert a.limit == 8.0
    a.on_overload(1.3)
    assert a.limit == 4.0
    for t in range(10):
        a.on_overload(2.0 + t)
    assert a.limit == 1.0 and a.slots == 1  # bounded by the minimum


def test_aimd_decreases_on_rising_latency() -> None:
    a = AdaptiveConcurrency(maximum=8)
    for i in range(20):
        a.on_response(i * 0.1, 0.05, in_flight=8)
    assert a.limit == 8.0
    a.on_response(5.0, 0.5, in_flight=8)  # 10x the baseline
    assert a.limit == 4.0


def test_aimd_slow_failures_decrease_fast_ones_do_not() -> None:
    a = AdaptiveConcurrency(maximum=8)
    a.on_failure(0.0, 30.0)  # no baseline yet: nothing to compare with
    assert a.limit == 8.0
    a.on_response(0.0, 0.05, in_flight=1)
    a.on_failure(1.0, 0.001)  # connection refused at once: not a latency signal
    assert a.limit == 8.0
    a.on_failure(2.0, 30.0)  # a timeout
    assert a.limit == 4.0


def test_aimd_rejects_bad_bounds() -> None:
    with pytest.raises(ValueError, match="1 <= minimum <= maximum"):
        AdaptiveConcurrency(maximum=0)
    with pytest.raises(ValueError, match="decrease factor"):
        AdaptiveConcurrency(maximum=4, decrease=1.5)


def test_breaker_opens_only_on_sustained_failure() -> None:
    br = CircuitBreaker(threshold=3, min_duration=1.0, open_seconds=5.0)
    for t in (0.0, 0.1, 0.2, 0.3):
        br.on_failure(t)
    assert br.current(0.3) is CircuitState.CLOSED  # many failures, but not for a second yet
    br.on_failure(1.2)
    assert br.current(1.2) is CircuitState.OPEN
    assert not br.allow(2.0)
    assert br.retry_in(2.0) == pytest.approx(4.2)


def test_breaker_success_resets_the_failure_streak() -> None:
    br = CircuitBreaker(threshold=3, min_duration=0.0)
    br.on_failure(0.0)
    br.on_failure(0.1)
    br.on_success(0.2)
    br.on_failure(0.3)
    br.on_failure(0.4)
    assert br.current(0.4) is CircuitState.CLOSED


def test_breaker_half_open_lets_one_probe_and_closes_on_its_success() -> None:
    br = CircuitBreaker(threshold=1, min_duration=0.0, open_seconds=5.0)
    br.on_failure(0.0)
    assert br.current(4.9) is CircuitState.OPEN
    assert br.current(5.0) is CircuitState.HALF_OPEN
    assert br.allow(5.0)
    assert not br.allow(5.0)  # only one probe at a time
    br.on_success(5.1)
    assert br.current(5.1) is CircuitState.CLOSED
    assert br.allow(5.1) and br.allow(5.1)


def test_breaker_failed_probe_reopens_for_longer_up_to_the_cap() -> None:
    br = CircuitBreaker(threshold=1, min_duration=0.0, open_seconds=5.0, max_open_seconds=15.0)
    br.on_failure(0.0)
    t = 5.0
    opens = []
    for _ in range(4):
        assert br.allow(t)
        br.on_failure(t)
        opens.append(br.retry_in(t))
        t += opens[-1]
    assert opens == [10.0, 15.0, 15.0, 15.0]
    assert br.opens == 5


def test_breaker_cancelled_probe_frees_the_probe_slot() -> None:
    br = CircuitBreaker(threshold=1, min_duration=0.0, open_seconds=1.0)
    br.on_failure(0.0)
    assert br.allow(1.0)
    br.release_probe()
    assert br.allow(1.0)
