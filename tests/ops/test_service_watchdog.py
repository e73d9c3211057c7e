"""The progress-gated watchdog: pure logic with an injected clock, then end to end over a socket."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import statistics
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.ops.notify import Notifier
from daemon.ops.watchdog import ProgressMonitor, extend_stop_while_draining, run_watchdog


class TestProgressMonitor:
    def test_idle_is_healthy_forever(self) -> None:
        """Stages with no work are idle by choice, however long nothing happens."""
        m = ProgressMonitor(stall_after=30)
        m.stage("probe")
        m.stage_queued("deliver", 0)
        assert m.healthy(0.0)
        assert m.healthy(10_000.0)

    def test_busy_without_progress_is_wedged(self) -> None:
        """A stage with work and no progress for longer than stall_after is named with its age."""
        m = ProgressMonitor(stall_after=30)
        m.stage_busy("deliver", True)
        assert m.healthy(100.0)  # work just appeared: the stall clock starts here
        assert m.healthy(129.0)
        health = m.check(131.0)
        assert not health.ok
        assert health.wedged == {"deliver": 31.0}
        assert "deliver no progress for 31s" in m.status_line(health)

    def test_progress_keeps_it_healthy(self) -> None:
        """A busy stage whose counter moves between checks is never wedged."""
        m = ProgressMonitor(stall_after=30)
        deliver = m.stage("deliver")
        deliver.busy = True
        for t in range(0, 300, 20):
            deliver.progress()
            assert m.healthy(float(t))

    def test_queued_items_count_as_work(self) -> None:
        """Items waiting for a stage are work: a stage that never takes them is wedged."""
        m = ProgressMonitor(stall_after=5)
        m.stage_queued("probe", 12)
        m.check(0.0)
        assert m.check(6.0).wedged == {"probe": 6.0}
        m.stage_queued("probe", 0)
        assert m.healthy(7.0)

    def test_recovery_resumes_health(self) -> None:
        """Once the wedged stage moves again, the monitor is healthy again."""
        m = ProgressMonitor(stall_after=5)
        s = m.stage("commit")
        s.busy = True
        m.check(0.0)
        assert not m.healthy(10.0)
        s.progress(3)
        assert m.healthy(11.0)
        assert m.counts() == {"commit": 3}

    def test_new_work_after_long_idle_starts_a_fresh_clock(self) -> None:
        """The stall clock counts from when work appeared, not from the last progress long ago."""
        m = ProgressMonitor(stall_after=10)
        s = m.stage("deliver")
        s.progress()
        m.check(0.0)
        s.busy = True
        assert m.healthy(1000.0)
        assert m.healthy(1009.0)
        assert not m.healthy(1011.0)

    def test_one_wedged_stage_among_healthy_ones(self) -> None:
        """Only the stuck stage is reported; the moving ones are not."""
        m = ProgressMonitor(stall_after=5)
        probe, deliver = m.stage("probe"), m.stage("deliver")
        probe.busy = deliver.busy = True
        m.check(0.0)
        probe.progress()
        assert m.check(6.0).wedged == {"deliver": 6.0}

    def test_stall_after_must_be_positive(self) -> None:
        """A zero threshold would declare everything wedged: refused with the value."""
        with pytest.raises(ValueError, match="stall_after must be > 0 seconds, got 0"):
            ProgressMonitor(stall_after=0)

    @given(st.lists(st.floats(min_value=0.001, max_value=4.9), min_size=1, max_size=50))
    def test_progress_between_checks_never_wedges(self, gaps: list[float]) -> None:
        """Whatever the spacing of checks, a stage that moves before each one stays healthy."""
        m = ProgressMonitor(stall_after=5)
        s = m.stage("probe")
        s.busy = True
        now = 0.0
        for gap in gaps:
            s.progress()
            now += gap
            assert m.healthy(now)


# -- end to end: a real NOTIFY_SOCKET, WATCHDOG_USEC=200 ms -----------------------------------


class Systemd:
    """The receiving end: datagrams with their arrival time, read without blocking the loop."""

    def __init__(self) -> None:
        self.name = f"ingestd-wd-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(b"\0" + self.name.encode())
        self.sock.setblocking(False)

    async def next(self) -> tuple[float, str]:
        async with asyncio.timeout(5.0):
            data = await asyncio.get_running_loop().sock_recv(self.sock, 4096)
        return time.monotonic(), data.decode()

    async def until(self, predicate: str) -> list[tuple[float, str]]:
        """Every datagram up to and including the first containing ``predicate``."""
        seen = []
        async with asyncio.timeout(10.0):
            while True:
                item = await self.next()
                seen.append(item)
                if predicate in item[1]:
                    return seen


@pytest.fixture
async def systemd() -> AsyncIterator[Systemd]:
    s = Systemd()
    yield s
    s.sock.close()


async def test_pings_follow_progress_and_stop_when_a_stage_wedges(systemd: Systemd) -> None:
    """WATCHDOG=1 every WATCHDOG_USEC/2 while the pipeline moves; none while a stage is wedged."""
    env = {"NOTIFY_SOCKET": "@" + systemd.name, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid())}
    notifier = Notifier.from_env(env)
    assert notifier.watchdog_interval == pytest.approx(0.1)
    monitor = ProgressMonitor(stall_after=0.3)
    deliver = monitor.stage("deliver")
    deliver.busy = True
    moving = asyncio.Event()
    moving.set()

    async def pipeline() -> None:
        while True:
            await moving.wait()
            deliver.progress()
            await asyncio.sleep(0.01)

    feeder = asyncio.create_task(pipeline())
    dog = asyncio.create_task(run_watchdog(notifier, monitor, extra_status=lambda: "in_flight=7"))
    try:
        # Phase 1: progressing -> pings at the interval, each followed by a live STATUS.
        pings: list[float] = []
        while len(pings) < 5:
            at, msg = await systemd.next()
            if msg == "WATCHDOG=1":
                pings.append(at)
            else:
                assert msg.startswith("STATUS=in_flight=7 deliver=")
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        assert min(gaps) >= 0.09, f"pings closer than the 100 ms interval: {gaps}"
        assert statistics.median(gaps) < 1.0, f"pings far slower than the interval: {gaps}"

        # Phase 2: the stage wedges with work pending -> STATUS says so, pings stop.
        moving.clear()
        await systemd.until("STALLED: deliver")
        after = [msg for _, msg in [await systemd.next() for _ in range(6)]]
        assert "WATCHDOG=1" not in after
        assert all("STALLED: deliver" in m for m in after)

        # Phase 3: it moves again -> pings resume.
        moving.set()
        await systemd.until("WATCHDOG=1")
    finally:
        for t in (feeder, dog):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        notifier.close()


async def test_without_watchdog_only_status_is_sent(systemd: Systemd) -> None:
    """With no WATCHDOG_USEC the task still refreshes STATUS= but never pings."""
    notifier = Notifier.from_env({"NOTIFY_SOCKET": "@" + systemd.name})
    monitor = ProgressMonitor(stall_after=1)
    monitor.stage_progress("probe", 4)
    dog = asyncio.create_task(run_watchdog(notifier, monitor, status_every=0.05))
    try:
        msgs = [msg for _, msg in [await systemd.next() for _ in range(3)]]
        assert msgs == ["STATUS=probe=4"] * 3
    finally:
        dog.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await dog
        notifier.close()


async def test_drain_extends_the_stop_timeout_only_while_progressing(systemd: Systemd) -> None:
    """STOPPING=1, then EXTEND_TIMEOUT_USEC after ticks that saw progress, nothing after stalled ones."""
    notifier = Notifier.from_env({"NOTIFY_SOCKET": "@" + systemd.name})
    monitor = ProgressMonitor(stall_after=1)
    deliver = monitor.stage("deliver")
    notifier.stopping("draining")
    assert (await systemd.next())[1] == "STOPPING=1\nSTATUS=draining"

    # The test drives the ticks: each sleep() waits for a permit and reports that it is waiting,
    # i.e. that the previous tick has been handled completely.
    permits: asyncio.Queue[None] = asyncio.Queue()
    waiting: asyncio.Queue[float] = asyncio.Queue()

    async def tick_sleep(seconds: float) -> None:
        waiting.put_nowait(seconds)
        await permits.get()

    async def tick() -> None:
        permits.put_nowait(None)
        async with asyncio.timeout(5):
            assert await waiting.get() == 2.0

    def pending() -> list[str]:
        out = []
        while True:
            try:
                out.append(systemd.sock.recv(4096).decode())
            except BlockingIOError:
                return out

    keeper = asyncio.create_task(
        extend_stop_while_draining(notifier, monitor, every=2.0, extend_by=6.0, sleep=tick_sleep)
    )
    try:
        async with asyncio.timeout(5):
            assert await waiting.get() == 2.0
        deliver.progress(4)
        await tick()
        assert pending() == [
            "EXTEND_TIMEOUT_USEC=6000000",
            "STATUS=draining: 4 objects finished in the last 2s",
        ]
        await tick()  # no progress during this tick: no extension, no status
        await tick()
        assert pending() == []
        deliver.progress()
        await tick()
        assert pending()[0] == "EXTEND_TIMEOUT_USEC=6000000"
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
        notifier.close()


def test_extension_must_outlast_the_tick() -> None:
    """An extension shorter than the tick would let the timeout fire between two messages."""
    with pytest.raises(ValueError, match=r"extend_by \(1s\) must exceed the tick \(5s\)"):
        asyncio.run(extend_stop_while_draining(Notifier(None), ProgressMonitor(1), every=5, extend_by=1))
