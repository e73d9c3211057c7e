"""pipeline.pause: intake pauses while the sink refuses our credentials and resumes by itself.

The gate with injected time (the re-check pacing, the order resend-then-open, early wake-ups),
then the pipeline with the real Deliverer and Endpoint around a sink that refuses our key until
it is "rotated": intake pulls nothing while paused, objects past intake are given back once
(released, not counted as retries), and every object is delivered once the key works.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.ledger.sqlite import Ledger
from daemon.ledger.store import SqliteStore
from daemon.pipeline.build import Builder
from daemon.pipeline.pause import IntakePause
from daemon.pipeline.pipeline import Pipeline
from daemon.pipeline.stages import Settings
from daemon.sinks.base import Batch, CredentialsError, ItemResult
from daemon.sinks.delivery import Deliverer, DeliveryLimits
from daemon.sinks.endpoint import Endpoint
from tests.pipeline.test_pipeline import ListSource, Script, msgs
from workers.retry import Backoff

REFUSAL = "HTTP 401 from the ingest endpoint: Invalid API key (credentials refused)"


class FakeTime:
    """Injected time: a nap advances the clock and yields once (no real waiting)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.naps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.naps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def gate(
    time: FakeTime, check: object, resend: object, *, base: float = 1.0, cap: float = 8.0
) -> IntakePause:
    return IntakePause(
        check=check,  # type: ignore[arg-type]
        resend=resend,  # type: ignore[arg-type]
        backoff=Backoff(base=base, cap=cap, random=lambda: 1.0),  # jitter removed: the ceilings
        sleep=time.sleep,
        clock=time,
    )


def events(logs: list[dict[str, object]], start: str) -> list[dict[str, object]]:
    return [e for e in logs if str(e["event"]).startswith(start)]


class TestGate:
    async def test_rechecks_back_off_then_held_batches_go_first_then_intake_resumes(self) -> None:
        time = FakeTime()
        calls: list[str] = []

        async def check() -> None:
            calls.append("check")
            if calls.count("check") < 6:
                raise CredentialsError(REFUSAL, status=401)

        async def resend() -> None:
            calls.append("resend while paused" if pause.paused else "resend after opening")

        pause = gate(time, check, resend)
        runner = asyncio.create_task(pause.run())
        with capture_logs() as logs:
            assert not pause.paused
            await pause.wait()  # open: returns at once
            pause.refused(REFUSAL)
            pause.refused(REFUSAL)  # every refused batch says so again: one pause, logged once
            assert pause.paused and pause.pauses == 1
            waiter = asyncio.create_task(pause.wait())
            await asyncio.wait_for(waiter, 10)  # returns once the credentials work again
            runner.cancel()
        assert time.naps == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]  # doubling from the base, capped
        assert calls == ["check"] * 6 + ["resend while paused"]
        assert not pause.paused and pause.reason is None and pause.rechecks == 6
        (paused,) = events(logs, "intake paused")
        assert paused["reason"] == REFUSAL and paused["log_level"] == "warning"
        (resumed,) = events(logs, "intake resumed")
        assert resumed["rechecks"] == 6 and resumed["paused_seconds"] == 31.0

    async def test_credentials_accepted_elsewhere_wake_the_gate_before_its_next_recheck(self) -> None:
        """A readiness check or a SIGHUP with a new key found the credentials good: the gate does not
        wait out its backoff (here: a nap that would never end)."""
        never = asyncio.Event()
        checks = 0

        async def check() -> None:
            nonlocal checks
            checks += 1

        async def endless(_: float) -> None:
            await never.wait()

        async def resend() -> None:
            return None

        pause = IntakePause(check=check, resend=resend, backoff=Backoff(base=60.0, cap=60.0), sleep=endless)
        runner = asyncio.create_task(pause.run())
        pause.refused(REFUSAL)
        await asyncio.sleep(0)
        waiter = asyncio.create_task(pause.wait())
        pause.refused(None)
        await asyncio.wait_for(waiter, 10)
        runner.cancel()
        assert checks == 0 and not pause.paused

    async def test_sighup_rechecks_at_once_instead_of_waiting_out_the_backoff(self) -> None:
        never = asyncio.Event()
        answers: list[Exception | None] = [CredentialsError(REFUSAL, status=401), None]

        async def check() -> None:
            if (e := answers.pop(0)) is not None:
                raise e

        async def endless(_: float) -> None:
            await never.wait()

        async def resend() -> None:
            return None

        pause = IntakePause(check=check, resend=resend, backoff=Backoff(base=60.0, cap=60.0), sleep=endless)
        pause.recheck_now()  # not paused: nothing to re-check, nothing remembered
        runner = asyncio.create_task(pause.run())
        pause.refused(REFUSAL)
        waiter = asyncio.create_task(pause.wait())
        pause.recheck_now()  # the operator fixed something: still refused
        await _until(lambda: pause.rechecks == 1)
        assert pause.paused
        pause.recheck_now()  # fixed for real this time
        await asyncio.wait_for(waiter, 10)
        runner.cancel()
        assert pause.rechecks == 2 and answers == []

    async def test_a_refusal_while_resending_keeps_the_gate_closed(self) -> None:
        time = FakeTime()
        refusals = [REFUSAL]  # the resend meets one more refusal, then the key works

        async def check() -> None:
            return None

        async def resend() -> None:
            if refusals:
                pause.refused(refusals.pop())

        pause = gate(time, check, resend, base=0.5, cap=0.5)
        runner = asyncio.create_task(pause.run())
        pause.refused(REFUSAL)
        await asyncio.wait_for(pause.wait(), 10)
        runner.cancel()
        assert pause.rechecks == 2 and pause.pauses == 1  # one pause, checked twice, opened once

    async def test_a_check_that_cannot_reach_the_endpoint_keeps_it_paused(self) -> None:
        time = FakeTime()
        answers: list[Exception | None] = [ConnectionResetError("reset"), TimeoutError(), None]

        async def check() -> None:
            if (e := answers.pop(0)) is not None:
                raise e

        async def resend() -> None:
            return None

        pause = gate(time, check, resend)
        runner = asyncio.create_task(pause.run())
        pause.refused(REFUSAL)
        await asyncio.wait_for(pause.wait(), 10)
        runner.cancel()
        assert pause.rechecks == 3 and answers == []

    async def test_a_check_that_never_answers_is_given_up_and_tried_again(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr("daemon.pipeline.pause.CHECK_TIMEOUT", 0.01)
        time = FakeTime()
        hang = asyncio.Event()

        async def check() -> None:
            await hang.wait()

        async def resend() -> None:
            return None

        pause = gate(time, check, resend, base=0.5, cap=0.5)
        runner = asyncio.create_task(pause.run())
        pause.refused(REFUSAL)
        await _until(lambda: pause.rechecks >= 3)  # each timed out, the loop goes on
        assert pause.paused
        pause.refused(None)  # the readiness check found the key good
        await asyncio.wait_for(pause.wait(), 10)
        runner.cancel()


class KeySink:
    """A sink refusing our key until it is rotated; stores what it takes (by key, counted)."""

    name = "keysink"

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.rotated = False
        self.delivered: dict[str, int] = {}
        self.checks = 0
        self.refused_batches = 0

    async def deliver(self, batch: Batch) -> list[ItemResult]:
        await self.endpoint.request_slot(items=len(batch.items))
        if not self.rotated:
            self.refused_batches += 1
            raise CredentialsError(REFUSAL, status=401)
        for item in batch.items:
            self.delivered[item.key] = self.delivered.get(item.key, 0) + 1
        return [ItemResult(key=i.key, status="accepted") for i in batch.items]

    async def check(self) -> None:
        self.checks += 1
        if not self.rotated:
            raise CredentialsError(REFUSAL, status=401)


async def _until(cond: object, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():  # type: ignore[operator]
            await asyncio.sleep(0.005)


async def test_intake_pulls_nothing_while_refused_and_delivers_everything_after(tmp_path: Path) -> None:
    endpoint = Endpoint("keysink", requests_per_second=1000.0, burst=100.0)
    sink = KeySink(endpoint)
    deliverer = Deliverer(sink, endpoint, DeliveryLimits(requests_per_second=1000.0, max_retries=0))
    log: list[tuple[str, str, float | None]] = []
    keys = [f"img{i:03d}.jpg" for i in range(200)]
    source = ListSource(msgs(keys, log), chunk=10)
    store = SqliteStore(Ledger(tmp_path / "ledger.db").open())
    settings = Settings(
        probe_workers=4, deliver_workers=2, queue_size=8, max_in_flight=30, max_items=10, linger=0.01
    )
    settings.recheck = (0.01, 0.05)
    p = Pipeline(
        source=source,
        deliverer=deliverer,
        ledger=store,
        prober=Script(),
        builder=Builder(
            platform="labelbox", accept_kinds=["image"], strict=False, make_url=lambda r: r.url or ""
        ),
        key_for=lambda r: r.key,
        settings=settings,
    )
    endpoint.on_refused = p.pause.refused  # what the service does (runner.Service._credentials)
    with capture_logs() as logs:
        run = asyncio.create_task(p.run())
        await _until(lambda: p.pause.paused)
        pulled = source.pulled
        await _until(lambda: sink.checks >= 5)  # several re-checks later ...
        assert source.pulled == pulled <= 30 + 10  # ... nothing more was pulled
        sent = sink.refused_batches
        await _until(lambda: p.in_flight == 0)  # what was past intake was given back
        assert sink.refused_batches == sent  # and not sent again while refused
        sink.rotated = True  # the key was rotated: the next re-check passes
        counters = await asyncio.wait_for(run, 30)
    given_back = [(i, d) for a, i, d in log if a == "retry"]
    assert all(d == 0.0 for _, d in given_back), "released now, not retried later"
    assert len({i for i, _ in given_back}) == len(given_back), "each given back once"
    taken = {f"m-{k}" for k in sink.delivered}
    assert all(n == 1 for n in sink.delivered.values()), "nothing delivered twice"
    # every object was delivered, or given back once (they come again from a real source)
    assert taken | {i for i, _ in given_back} == {f"m-{k}" for k in keys}
    assert len(sink.delivered) >= len(keys) - 30
    assert counters.retried == 0 and counters.dead == 0
    assert len(events(logs, "intake paused")) == 1 and len(events(logs, "intake resumed")) == 1
    assert len(events(logs, "sink refused our credentials")) == 1


async def test_held_batch_is_not_sent_twice_when_resend_now_meets_the_loop(tmp_path: Path) -> None:
    """The held loop and the pause's resend_now may reach one batch together: it goes out once."""
    from daemon.pipeline.held import HeldBatches  # noqa: PLC0415 - only this test needs it
    from daemon.sinks.base import BatchItem  # noqa: PLC0415

    answer = asyncio.Event()
    calls: list[str] = []

    class Slow:
        name = "slow"

        async def deliver(self, batch: Batch) -> list[ItemResult]:
            calls.append(batch.id)
            await answer.wait()
            return [ItemResult(key=i.key, status="accepted") for i in batch.items]

    store = SqliteStore(Ledger(tmp_path / "ledger.db").open())
    batch = Batch.of([BatchItem("a.jpg", "IMAGE", b"{}"), BatchItem("b.jpg", "IMAGE", b"{}")])
    await store.begin_batch(batch, "slow")
    held = HeldBatches(store, Slow(), pause=0.001)
    held.hold(batch)
    loop = asyncio.create_task(held.run())
    await _until(lambda: calls)
    await asyncio.wait_for(held.resend_now(), 10)  # the batch is on its way: not sent again
    assert calls == [batch.id]
    answer.set()
    await _until(lambda: len(held) == 0)
    loop.cancel()
    assert calls == [batch.id] and held.resent == 1
