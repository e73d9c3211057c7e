"""Endpoint (shared bucket + Retry-After pause) and the adaptive gate, on a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from daemon.sinks.endpoint import AdaptiveGate, Endpoint
from workers.limits import AdaptiveConcurrency


class FakeTime:
    """A clock that only moves when someone sleeps (Endpoint lets one waiter sleep at a time)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.on_sleep: Callable[[float], None] | None = None

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if self.on_sleep is not None:
            self.on_sleep(self.now)
        await asyncio.sleep(0)  # let the other callers queue up at the current instant
        self.now += seconds


async def released(endpoint: Endpoint, t: FakeTime, n: int, items: int = 0) -> list[tuple[int, float]]:
    out: list[tuple[int, float]] = []

    async def one(i: int) -> None:
        await endpoint.request_slot(items)
        out.append((i, t.now))

    async with asyncio.TaskGroup() as tg:
        for i in range(n):
            tg.create_task(one(i))
    return out


async def test_concurrent_callers_are_released_fifo_at_the_rate() -> None:
    t = FakeTime()
    ep = Endpoint("e", requests_per_second=100.0, burst=2.0, clock=t.clock, sleep=t.sleep)
    out = await released(ep, t, 6)
    assert [i for i, _ in out] == list(range(6))
    assert [at for _, at in out] == pytest.approx([0.0, 0.0, 0.01, 0.02, 0.03, 0.04])
    assert ep.stats.rate_limit_wait_seconds == pytest.approx(0.01 + 0.02 + 0.03 + 0.04)


async def test_a_pause_that_starts_while_waiting_holds_every_waiter() -> None:
    t = FakeTime()
    ep = Endpoint("e", requests_per_second=100.0, burst=1.0, clock=t.clock, sleep=t.sleep)
    paused = False

    def another_worker_got_429(now: float) -> None:
        nonlocal paused
        if not paused and now >= 0.0:
            paused = True
            ep.pause(2.0)  # Retry-After: 2, seen at t=0 while the head waits for its token

    t.on_sleep = another_worker_got_429
    out = await released(ep, t, 4)
    times = [at for _, at in out]
    assert times[0] == 0.0  # had its token before the pause
    assert all(at >= 2.0 for at in times[1:])
    assert times[1:] == pytest.approx([2.01, 2.02, 2.03])  # then paced again, not a burst
    assert ep.stats.pauses == 1
    assert ep.paused_for() == 0.0


async def test_items_per_second_meters_items_as_well_as_requests() -> None:
    t = FakeTime()
    ep = Endpoint("e", requests_per_second=1000.0, items_per_second=1000.0, clock=t.clock, sleep=t.sleep)
    out = await released(ep, t, 4, items=500)
    # the items bucket holds one second of items: two batches go at once (the request bucket
    # spaces them by 1 ms), then one every 0.5 s
    assert [at for _, at in out] == pytest.approx([0.0, 0.001, 0.5, 1.0])


async def test_track_waits_counts_this_tasks_waits_only() -> None:
    t = FakeTime()
    ep = Endpoint("e", requests_per_second=10.0, clock=t.clock, sleep=t.sleep)
    cell = ep.track_waits()
    await ep.request_slot()
    await ep.request_slot()
    assert cell == [pytest.approx(0.1)]


async def test_reconfigure_changes_the_pace() -> None:
    t = FakeTime()
    ep = Endpoint("e", requests_per_second=10.0, clock=t.clock, sleep=t.sleep)
    ep.reconfigure(requests_per_second=1000.0, burst=1.0, items_per_second=0.0)
    out = await released(ep, t, 3)
    assert [at for _, at in out] == pytest.approx([0.0, 0.001, 0.002])
    assert "rate=1000.0/s" in repr(ep)


async def test_gate_follows_the_aimd_limit_and_survives_cancellation() -> None:
    aimd = AdaptiveConcurrency(maximum=4, initial=2)
    gate = AdaptiveGate(aimd)
    await gate.acquire()
    await gate.acquire()
    waiter = asyncio.create_task(gate.acquire())
    cancelled = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0)
    assert not waiter.done() and gate.in_flight == 2
    cancelled.cancel()
    aimd.limit = 3.0  # the controller grew the limit
    gate.wake()
    await asyncio.wait_for(waiter, 1)
    assert gate.in_flight == 3
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert gate.in_flight == 3  # the cancelled waiter holds nothing
    aimd.limit = 1.0  # shrink: releases do not hand slots on until below the limit
    late = asyncio.create_task(gate.acquire())
    for _ in range(3):
        gate.release()
    await asyncio.sleep(0)
    assert late.done() and gate.in_flight == 1
    assert "in_flight=1" in repr(gate)
