"""The waiting room on its own: parked annotations leave when their media settles, when the ledger
shows it final, at their deadline, or when nothing more can come; never lost on the way out."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import msgspec

from daemon.core.jobs import Job, ObjectRef
from daemon.ledger.records import FinalState, fold
from daemon.pipeline.waiting import WAITING, Parked, WaitingFigure, WaitingRoom


class Ledger:
    def __init__(self) -> None:
        self.final: dict[str, FinalState] = {}
        self.asked = 0
        self.checkpoints: dict[str, str] = {}
        self.changed: asyncio.Event | None = None

    async def final_states(self, keys: Sequence[str]) -> dict[str, FinalState]:
        self.asked += 1
        return {fold(k): self.final[fold(k)] for k in keys if fold(k) in self.final}

    async def put_checkpoint(self, name: str, value: str) -> None:
        self.checkpoints[name] = value
        if self.changed is not None:
            self.changed.set()

    def figure(self) -> WaitingFigure | None:
        value = self.checkpoints.get(WAITING)
        return None if value is None else msgspec.json.decode(value, type=WaitingFigure)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def job(key: str) -> Job:
    return Job(ref=ObjectRef(origin="file", key=key), message_id=key, global_key=key)


class Harness:
    def __init__(self, *, wait: float = 100.0, recheck: float = 1000.0, capacity: int = 10) -> None:
        self.ledger = Ledger()
        self.clock = Clock()
        self.wall = 1_000_000.0
        self.room = WaitingRoom(
            self.ledger,  # type: ignore[arg-type]
            wait=wait,
            recheck=recheck,
            capacity=capacity,
            clock=self.clock,
            wall=lambda: self.wall + self.clock.now,
        )
        self.resumed: list[str] = []
        self.expired: list[tuple[str, str]] = []
        self.given_back: list[str] = []
        self.why: str | None = None
        self.changed = asyncio.Event()
        self.ledger.changed = self.changed

    async def resume(self, j: Job) -> None:
        self.resumed.append(j.global_key)
        self.changed.set()

    async def expire(self, p: Parked, why: str) -> None:
        self.expired.append((p.job.global_key, why))
        self.changed.set()

    def give_back(self, j: Job) -> None:
        self.given_back.append(j.global_key)
        self.changed.set()

    def stuck(self) -> str | None:
        return self.why

    def start(self) -> asyncio.Task[None]:
        return asyncio.create_task(
            self.room.run(resume=self.resume, expire=self.expire, give_back=self.give_back, stuck=self.stuck)
        )

    async def until(self, cond) -> None:  # type: ignore[no-untyped-def]
        async with asyncio.timeout(10):
            while not cond():
                self.changed.clear()
                await self.changed.wait()


async def test_a_parked_annotation_leaves_when_its_media_settles_here() -> None:
    h = Harness()
    task = h.start()
    assert h.room.park(job("a.mp4.labels.ndjson"), "a.mp4")
    assert h.room.park(job("b.mp4.labels.ndjson"), "B.MP4")
    h.room.media_settled("a.mp4")
    await h.until(lambda: h.resumed)
    assert h.resumed == ["a.mp4.labels.ndjson"] and len(h.room) == 1
    h.room.media_settled("b.mp4")  # keys compare case-insensitively, like global keys
    await h.until(lambda: len(h.resumed) == 2)
    await asyncio.wait_for(h.room.emptied(), 5)
    task.cancel()


async def test_the_ledger_is_read_for_media_final_elsewhere() -> None:
    h = Harness(recheck=5.0)
    task = h.start()
    h.room.park(job("a.json"), "a.mp4")
    h.ledger.final["a.mp4"] = FinalState(status="accepted")
    h.clock.now = 6.0  # past the recheck interval
    h.room.wake()
    await h.until(lambda: h.resumed)
    assert h.ledger.asked >= 1 and h.resumed == ["a.json"]
    task.cancel()


async def test_the_deadline_dead_letters_with_the_reason() -> None:
    h = Harness(wait=30.0)
    task = h.start()
    h.room.park(job("late.labels.ndjson"), "late.mp4")
    h.clock.now = 31.0
    h.room.wake()
    await h.until(lambda: h.expired)
    ((key, why),) = h.expired
    assert key == "late.labels.ndjson" and "30 s" in why and "media_wait_seconds" in why
    assert len(h.room) == 0
    task.cancel()


async def test_nothing_more_coming_expires_or_gives_back() -> None:
    h = Harness()
    task = h.start()
    h.room.park(job("x"), "x.mp4")
    h.why = "once"
    h.room.wake()
    await h.until(lambda: h.expired)
    assert "ended without it" in h.expired[0][1]
    h.room.park(job("y"), "y.mp4")
    h.why = "drain"
    h.room.wake()
    await h.until(lambda: h.given_back)
    assert h.given_back == ["y"] and not h.resumed
    task.cancel()


async def test_a_full_or_closed_room_refuses() -> None:
    h = Harness(capacity=1)
    assert h.room.park(job("a"), "a.mp4")
    assert not h.room.park(job("b"), "b.mp4")
    h2 = Harness()
    h2.room.closed = True
    assert not h2.room.park(job("a"), "a.mp4")


async def test_a_full_room_takes_an_annotation_whose_media_is_in_flight() -> None:
    """Its media settles here without another slot: waiting cannot starve it, so it is parked
    over capacity instead of given back (a give-back costs the message one of its attempts)."""
    h = Harness(capacity=1)
    task = h.start()
    assert h.room.park(job("a"), "a.mp4")
    assert h.room.park(job("b"), "b.mp4", media_in_flight=True) and len(h.room) == 2
    assert not h.room.park(job("c"), "c.mp4")
    h.room.media_settled("b.mp4")
    await h.until(lambda: h.resumed)
    assert h.resumed == ["b"]
    task.cancel()


async def test_the_figure_is_live_and_recorded_in_the_ledger() -> None:
    """How many wait and since when: live from figure(), in the ledger when it changed (at most
    every recheck seconds, at once when the room empties); a drain keeps what it gave back."""
    h = Harness(recheck=10.0)
    task = h.start()
    h.room.park(job("a"), "a.mp4")
    await h.until(lambda: h.ledger.figure() is not None)
    assert h.ledger.figure() == WaitingFigure(1, 1_000_000.0, 1_000_000.0)
    h.clock.now = 4.0
    h.room.park(job("b"), "b.mp4")
    fig = h.room.figure()
    assert (fig.count, fig.oldest, fig.at) == (2, 1_000_000.0, 1_000_004.0)
    await asyncio.sleep(0)
    assert h.ledger.figure().count == 1  # type: ignore[union-attr]  # within recheck: not yet
    h.room.media_settled("a.mp4")
    h.room.media_settled("b.mp4")
    await h.until(lambda: len(h.resumed) == 2 and h.ledger.figure().count == 0)  # type: ignore[union-attr]
    h.clock.now = 30.0
    h.room.park(job("c"), "c.mp4")
    h.why = "drain"
    h.room.wake()
    await h.until(lambda: h.given_back)
    await asyncio.wait_for(h.room.emptied(), 5)
    h.room.wake()  # another pass over the empty room keeps the figure of the stop
    await asyncio.sleep(0.01)
    assert h.ledger.figure() == WaitingFigure(1, 1_000_030.0, 1_000_030.0, stopped=True)
    task.cancel()
