"""Backoff, retry budget and Retry-After parsing: pure, with injected randomness and time."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.retry import Backoff, RetryBudget, parse_retry_after


def test_backoff_ceiling_doubles_then_caps() -> None:
    b = Backoff(base=0.1, cap=1.0)
    assert [b.ceiling(n) for n in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert b.ceiling(10_000) == 1.0  # no overflow


def test_backoff_zero_random_removes_the_wait() -> None:
    assert Backoff(random=lambda: 0.0).delay(5) == 0.0


@given(n=st.integers(0, 200), u=st.floats(0.0, 1.0, exclude_max=True))
def test_backoff_stays_within_zero_and_the_ceiling(n: int, u: float) -> None:
    b = Backoff(base=0.05, cap=20.0, random=lambda: u)
    assert 0.0 <= b.delay(n) < b.ceiling(n) or b.delay(n) == 0.0


def test_backoff_full_jitter_is_uniform_over_the_ceiling() -> None:
    rng = random.Random(7)
    b = Backoff(base=1.0, cap=8.0, random=rng.random)
    samples = [b.delay(3) for _ in range(20_000)]  # ceiling 8 s
    assert min(samples) >= 0.0 and max(samples) < 8.0
    assert sum(samples) / len(samples) == pytest.approx(4.0, rel=0.03)
    quarters = [sum(1 for s in samples if q * 2 <= s < (q + 1) * 2) for q in range(4)]
    assert all(abs(c - 5000) < 300 for c in quarters), quarters


def test_backoff_rejects_negative_retry_number() -> None:
    with pytest.raises(ValueError, match="retry number must be >= 0, got -1"):
        Backoff().ceiling(-1)


def test_budget_allows_ratio_of_requests_plus_floor() -> None:
    b = RetryBudget(ratio=0.2, window=10, min_per_second=0.5)  # floor: 5 retries per window
    for _ in range(100):
        b.record_request(0.0)
    granted = sum(b.try_retry(0.5) for _ in range(100))
    assert granted == 25  # 5 + 0.2 * 100


def test_budget_deposits_expire_after_the_window() -> None:
    b = RetryBudget(ratio=0.5, window=10, min_per_second=0.0)
    for _ in range(10):
        b.record_request(0.0)
    assert b.available(9.9) == pytest.approx(5.0)
    assert b.available(10.0) == 0.0
    assert not b.try_retry(10.0)


def test_budget_retries_expire_too() -> None:
    b = RetryBudget(ratio=0.1, window=2, min_per_second=1.0)
    assert b.try_retry(0.0) and b.try_retry(0.1)
    assert not b.try_retry(0.2)
    assert b.try_retry(2.0)  # the first second's retries left the window


def test_budget_outage_bounds_retries_to_the_fraction() -> None:
    """An outage: every request fails and wants all its retries; the budget holds the line."""
    b = RetryBudget(ratio=0.2, window=10, min_per_second=1.0)
    retries = requests = 0
    for tick in range(600):  # 60 s at 10 requests/s
        now = tick / 10
        b.record_request(now)
        requests += 1
        for _ in range(8):  # max_retries
            retries += b.try_retry(now)
    assert retries <= 0.2 * requests + 1.0 * 60 + 10


def test_budget_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match=r"ratio must be within 0\.\.1, got 1\.5"):
        RetryBudget(ratio=1.5)
    with pytest.raises(ValueError, match="window must be >= 1 s"):
        RetryBudget(ratio=0.1, window=0)


NOW = datetime(2026, 11, 22, 8, 0, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("999999", 300.0),  # capped
        ("Sun, 22 Nov 2026 08:00:30 GMT", 30.0),  # IMF-fixdate
        ("Sunday, 22-Nov-26 08:01:00 GMT", 60.0),  # obsolete RFC 850
        ("Sun Nov 22 08:00:10 2026", 10.0),  # obsolete asctime, read as UTC
        ("Sun, 22 Nov 2026 07:00:00 GMT", 0.0),  # in the past
        ("Mon, 23 Nov 2026 08:00:00 GMT", 300.0),  # a day ahead: capped
        ("-5", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_both_forms_and_cap(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now_epoch=NOW, cap=300.0) == expected


@given(offset=st.integers(0, 10_000))
def test_retry_after_http_date_round_trips(offset: int) -> None:
    when = datetime.fromtimestamp(NOW + offset, UTC)
    header = format_datetime(when, usegmt=True)
    assert parse_retry_after(header, now_epoch=NOW, cap=1e9) == pytest.approx(offset)


@given(st.text(max_size=40))
def test_retry_after_never_raises_and_is_bounded(value: str) -> None:
    r = parse_retry_after(value, now_epoch=NOW, cap=60.0)
    assert r is None or 0.0 <= r <= 60.0


@given(
    events=st.lists(
        st.tuples(st.floats(0.0, 0.5), st.booleans()),  # (time step, is it a retry attempt?)
        max_size=400,
    ),
    ratio=st.sampled_from([0.0, 0.1, 0.2, 0.5]),
)
def test_budget_never_grants_more_than_ratio_plus_floor_within_a_window(
    events: list[tuple[float, bool]], ratio: float
) -> None:
    b = RetryBudget(ratio=ratio, window=10, min_per_second=0.5)
    now = 0.0
    log: list[tuple[float, str]] = []
    for step, is_retry in events:
        now += step
        if is_retry:
            if b.try_retry(now):
                log.append((now, "retry"))
        else:
            b.record_request(now)
            log.append((now, "request"))
        # the budget keeps whole seconds: the window is the last 10 one-second slots
        start = (int(now) - 9) if now >= 0 else 0
        recent = [kind for t, kind in log if int(t) >= start]
        assert recent.count("retry") <= 0.5 * 10 + ratio * recent.count("request") + 1e-9
