"""daemon.pipeline.tracker: a message is acknowledged once all its jobs are final, else given back."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from structlog.testing import capture_logs

from daemon.core.jobs import ObjectRef
from daemon.pipeline.tracker import Counters, Tracker


@dataclass
class FakeMessage:
    id: str
    refs: list[ObjectRef] = field(default_factory=list)
    raw: bytes | None = None
    error: str | None = None
    calls: list[tuple[str, float | None]] = field(default_factory=list)
    fail: bool = False

    async def ack(self) -> None:
        self.calls.append(("ack", None))
        if self.fail:
            raise ConnectionError("sqs unreachable")

    async def retry_later(self, delay: float) -> None:
        self.calls.append(("retry_later", delay))
        if self.fail:
            raise ConnectionError("sqs unreachable")

    async def extend(self) -> None:
        self.calls.append(("extend", None))


@pytest.fixture
def tracker() -> Tracker:
    return Tracker(Counters(), retry_delay=5.0)


class TestAcknowledgement:
    async def test_acked_only_after_every_job_is_final(self, tracker: Tracker) -> None:
        """Three jobs: the message is acknowledged once, after the third settles."""
        msg = FakeMessage("m")
        tracker.add(msg, 3)
        tracker.settle("m", "delivered")
        tracker.settle("m", "dead")
        await tracker.flush()
        assert msg.calls == [] and len(tracker) == 1
        tracker.settle("m", "duplicate")
        await tracker.flush()
        assert msg.calls == [("ack", None)]
        await tracker.flush()
        assert len(tracker) == 0 and tracker.counters.acked == 1

    @pytest.mark.parametrize("outcome", ["delivered", "duplicate", "dead", "gone"])
    async def test_each_final_outcome_acks(self, tracker: Tracker, outcome: str) -> None:
        """Delivered, duplicate, dead-lettered and gone are all final."""
        msg = FakeMessage("m")
        tracker.add(msg, 1)
        tracker.settle("m", outcome)  # type: ignore[arg-type]
        await tracker.flush()
        assert msg.calls == [("ack", None)]

    async def test_messages_are_independent(self, tracker: Tracker) -> None:
        """Settling one message's jobs never acknowledges another."""
        a, b = FakeMessage("a"), FakeMessage("b")
        tracker.add(a, 1)
        tracker.add(b, 2)
        tracker.settle("b", "delivered")
        tracker.settle("a", "delivered")
        await tracker.flush()
        assert a.calls == [("ack", None)] and b.calls == []


class TestRetry:
    async def test_any_retry_gives_the_message_back_with_the_longest_delay(self, tracker: Tracker) -> None:
        """One retried job makes the whole message come back, after the largest delay asked."""
        msg = FakeMessage("m")
        tracker.add(msg, 4)
        tracker.settle("m", "retry", delay=2.0)
        tracker.settle("m", "delivered")
        tracker.settle("m", "retry", delay=7.5)
        tracker.settle("m", "retry", delay=1.0)
        await tracker.flush()
        assert msg.calls == [("retry_later", 7.5)]
        await tracker.flush()
        assert tracker.counters.acked == 0

    async def test_retry_without_delay_uses_the_default(self, tracker: Tracker) -> None:
        """A retry with no delay given waits retry_delay."""
        msg = FakeMessage("m")
        tracker.add(msg, 1)
        tracker.settle("m", "retry")
        await tracker.flush()
        assert msg.calls == [("retry_later", 5.0)]

    async def test_release_gives_back_at_once(self, tracker: Tracker) -> None:
        """Jobs released at shutdown give the message back with no delay."""
        msg = FakeMessage("m")
        tracker.add(msg, 2)
        tracker.settle("m", "delivered")
        tracker.settle("m", "release")
        await tracker.flush()
        assert msg.calls == [("retry_later", 0.0)]

    @pytest.mark.parametrize("order", [("release", "retry"), ("retry", "release")])
    async def test_retry_delay_wins_over_release(self, tracker: Tracker, order: tuple[str, str]) -> None:
        """A retry's delay is kept whether the release came before or after it."""
        msg = FakeMessage("m")
        tracker.add(msg, 2)
        for outcome in order:
            tracker.settle("m", outcome, delay=3.0)  # type: ignore[arg-type]
        await tracker.flush()
        assert msg.calls == [("retry_later", 3.0)]

    async def test_release_all_gives_back_every_unsettled_message(self, tracker: Tracker) -> None:
        """At the drain deadline every message not yet settled is released now."""
        a, b, done = FakeMessage("a"), FakeMessage("b"), FakeMessage("c")
        tracker.add(a, 2)
        tracker.add(b, 1)
        tracker.add(done, 1)
        tracker.settle("a", "delivered")
        tracker.settle("c", "delivered")
        await tracker.release_all()
        assert a.calls == [("retry_later", 0.0)] and b.calls == [("retry_later", 0.0)]
        assert done.calls == [("ack", None)]
        await tracker.flush()
        assert len(tracker) == 0


class TestFailures:
    async def test_ack_failure_is_logged_not_raised(self, tracker: Tracker) -> None:
        """A failed acknowledgement is a warning with the message id and reason; the run goes on."""
        msg = FakeMessage("m-1", fail=True)
        tracker.add(msg, 1)
        with capture_logs() as logs:
            tracker.settle("m-1", "delivered")
            await tracker.flush()
        await tracker.flush()
        assert msg.calls == [("ack", None)]
        (entry,) = [e for e in logs if e["event"] == "acknowledgement failed"]
        assert entry["log_level"] == "warning"
        assert entry["message_id"] == "m-1" and entry["reason"] == "sqs unreachable"
        await tracker.flush()
        assert tracker.counters.acked == 0

    async def test_release_failure_is_logged_not_raised(self, tracker: Tracker) -> None:
        """A failed release at shutdown is logged and the others are still released."""
        bad, good = FakeMessage("bad", fail=True), FakeMessage("good")
        tracker.add(bad, 1)
        tracker.add(good, 1)
        with capture_logs() as logs:
            await tracker.release_all()
        assert good.calls == [("retry_later", 0.0)]
        assert [e["message_id"] for e in logs if e["event"] == "release failed"] == ["bad"]

    async def test_unknown_message_is_counted_but_not_acked(self, tracker: Tracker) -> None:
        """A settle for a message that is not tracked (already released) changes only the counters."""
        tracker.settle("ghost", "delivered")
        await tracker.flush()
        assert tracker.counters.delivered == 1 and tracker.counters.acked == 0


class TestCounters:
    async def test_every_outcome_is_counted(self) -> None:
        """Each outcome has its own counter."""
        c = Counters()
        t = Tracker(c)
        msg = FakeMessage("m")
        outcomes = ["delivered", "delivered", "duplicate", "dead", "gone", "retry", "release"]
        t.add(msg, len(outcomes))
        for o in outcomes:
            t.settle("m", o, delay=0.0)  # type: ignore[arg-type]
        assert (c.delivered, c.duplicates, c.dead, c.gone, c.retried, c.released) == (2, 1, 1, 1, 1, 1)
        await t.flush()
        assert c.acked == 0 and msg.calls == [("retry_later", 0.0)]
