"""The pipeline in-process: real files sink, real SQLite ledger, a scripted prober.

The prober decides per key: a valid image, invalid media, gone, a transient read error, a
parser bug, or "wait on a gate" (to hold objects in flight).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.core.jobs import Job, ObjectRef
from daemon.core.logs import configure
from daemon.ledger.records import DeadLetterFilter
from daemon.ledger.sqlite import Ledger
from daemon.ledger.store import SqliteStore
from daemon.pipeline.build import Builder
from daemon.pipeline.pipeline import Pipeline
from daemon.pipeline.stages import Settings
from daemon.sinks.base import Batch, BatchItem
from daemon.sinks.files import FilesSink
from daemon.sources.base import Poison
from workers.probe.media import MediaInfo, invalid
from workers.reads import ObjectGone, ReadError

IMAGE = MediaInfo(
    valid=True,
    kind="image",
    container="jpeg",
    mime_type="image/jpeg",
    file_size=1000,
    width=64,
    height=48,
    bytes_read=1000,
    requests=1,
)


@dataclass(eq=False)
class Msg:
    id: str
    refs: list[ObjectRef]
    raw: bytes | None = None
    error: str | None = None
    poison: Poison | None = None
    log: list[tuple[str, str, float | None]] = field(default_factory=list)

    async def ack(self) -> None:
        self.log.append(("ack", self.id, None))

    async def retry_later(self, delay: float) -> None:
        self.log.append(("retry", self.id, delay))

    async def extend(self) -> None:
        return None


class ListSource:
    name = "list"

    def __init__(self, messages: list[Msg], chunk: int = 16, gate: asyncio.Event | None = None) -> None:
        self.messages = messages
        self.chunk = chunk
        self.pulled = 0
        self.closed = False

    async def batches(self) -> AsyncIterator[list[Msg]]:
        for i in range(0, len(self.messages), self.chunk):
            part = self.messages[i : i + self.chunk]
            self.pulled += len(part)
            yield part

    async def close(self) -> None:
        self.closed = True


def ref(key: str) -> ObjectRef:
    return ObjectRef(origin="url", key=key, url=f"https://cdn.example.com/{key}")


def msgs(keys: list[str], log: list[tuple[str, str, float | None]]) -> list[Msg]:
    return [Msg(id=f"m-{k}", refs=[ref(k)], log=log) for k in keys]


class Script:
    """A prober whose answer depends on the key's prefix."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.gate.set()
        self.active = 0
        self.max_active = 0
        self.calls = 0

    async def __call__(self, job: Job) -> MediaInfo:
        self.calls += 1
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await self.gate.wait()
            k = job.ref.key
            if k.startswith("bad"):
                return invalid("truncated header: box 'moov' runs past the end", file_size=10)
            if k.startswith("gone"):
                raise ObjectGone(f"{k}: HTTP 404")
            if k.startswith("flaky"):
                raise ReadError(f"{k}: HTTP 503", transient=True, status=503)
            if k.startswith("bug"):
                raise KeyError("parser bug")
            return IMAGE
        finally:
            self.active -= 1


def make(tmp: Path, source: ListSource, prober: Script, **kw: object) -> tuple[Pipeline, Ledger]:
    ledger = Ledger(tmp / "ledger.db").open()
    store = SqliteStore(ledger)
    s = Settings(
        probe_workers=4,
        deliver_workers=1,
        queue_size=8,
        max_in_flight=32,
        max_items=10,
        linger=0.01,
        drain_timeout=5.0,
        retry_delay=7.0,
    )
    for k, v in kw.items():
        setattr(s, k, v)
    p = Pipeline(
        source=source,
        deliverer=FilesSink(tmp / "out", "labelbox"),
        ledger=store,
        prober=prober,
        builder=Builder(
            platform="labelbox", accept_kinds=["image", "video"], strict=False, make_url=lambda r: r.url or ""
        ),
        key_for=lambda r: r.key,
        settings=s,
    )
    return p, ledger


def output_keys(out: Path) -> list[str]:
    keys: list[str] = []
    for f in sorted(out.glob("labelbox-*.json")):
        keys.extend(row["global_key"] for row in json.loads(f.read_bytes()))
    return keys


class TestFlow:
    async def test_every_object_delivered_or_dead_lettered_with_reason(self, tmp_path: Path) -> None:
        """Good objects land in the output once; bad, gone and buggy ones are final with a reason."""
        log: list[tuple[str, str, float | None]] = []
        keys = [f"img{i}.jpg" for i in range(25)] + ["bad1.mp4", "gone1.jpg", "bug1.jpg"]
        p, ledger = make(tmp_path, ListSource(msgs(keys, log)), Script())
        c = await p.run()
        assert sorted(output_keys(tmp_path / "out")) == sorted(k for k in keys if k.startswith("img"))
        assert (c.delivered, c.dead, c.gone) == (25, 2, 1)
        dead = {d.key: d for d in ledger.dead_letters()}
        assert dead["bad1.mp4"].rule == "media.invalid" and "moov" in dead["bad1.mp4"].message
        assert dead["bug1.jpg"].rule == "probe.internal_error" and "KeyError" in dead["bug1.jpg"].message
        assert sorted(i for a, i, _ in log if a == "ack") == sorted(f"m-{k}" for k in keys)

    async def test_rerun_creates_no_new_rows(self, tmp_path: Path) -> None:
        """Running again over the same input writes nothing new: every object is a known duplicate."""
        keys = [f"img{i}.jpg" for i in range(30)] + ["bad1.mp4"]
        p, ledger = make(tmp_path, ListSource(msgs(keys, [])), Script())
        await p.run()
        ledger.close()
        files_before = sorted((tmp_path / "out").iterdir())
        prober = Script()
        p2, _ = make(tmp_path, ListSource(msgs(keys, [])), prober)
        c = await p2.run()
        assert c.duplicates == len(keys) and c.delivered == 0 and prober.calls == 0
        assert sorted((tmp_path / "out").iterdir()) == files_before

    async def test_multi_object_message_acked_only_when_all_final(self, tmp_path: Path) -> None:
        """A message carrying several objects is acknowledged once, after its last object is final."""
        log: list[tuple[str, str, float | None]] = []
        m = Msg(id="multi", refs=[ref("img-a.jpg"), ref("bad-b.mp4"), ref("img-c.jpg")], log=log)
        p, ledger = make(tmp_path, ListSource([m]), Script())
        await p.run()
        assert log == [("ack", "multi", None)]
        assert ledger.known(["img-a.jpg", "img-c.jpg", "bad-b.mp4"]) == {
            "img-a.jpg",
            "img-c.jpg",
            "bad-b.mp4",
        }

    async def test_ack_comes_after_the_sink_accepted(self, tmp_path: Path) -> None:
        """When a message is acknowledged, its object is already recorded as accepted and in a file."""
        seen_at_ack: list[bool] = []
        p, ledger = make(tmp_path, ListSource([]), Script())

        class Checking(Msg):
            async def ack(self) -> None:
                seen_at_ack.append(
                    bool(ledger.known([self.refs[0].key]))
                    and self.refs[0].key in output_keys(tmp_path / "out")
                )

        p.source = ListSource([Checking(id=f"c{i}", refs=[ref(f"img{i}.jpg")]) for i in range(12)])
        await p.run()
        assert seen_at_ack == [True] * 12

    async def test_transient_read_error_gives_the_message_back(self, tmp_path: Path) -> None:
        """A transient failure is not final: the message is given back with a delay, not acked."""
        log: list[tuple[str, str, float | None]] = []
        p, ledger = make(tmp_path, ListSource(msgs(["flaky1.jpg", "img1.jpg"], log)), Script())
        c = await p.run()
        assert ("retry", "m-flaky1.jpg", 7.0) in log and ("ack", "m-img1.jpg", None) in log
        assert not any(a == "ack" and i == "m-flaky1.jpg" for a, i, _ in log)
        assert c.retried == 1 and ledger.known(["flaky1.jpg"]) == set()

    async def test_malformed_message_is_dead_lettered_with_raw_body(self, tmp_path: Path) -> None:
        """An undecodable message is dead-lettered with its raw body, then acked; the rest flows."""
        log: list[tuple[str, str, float | None]] = []
        bad = Msg(id="junk", refs=[], raw=b'{"Records": [oops', error="not JSON at byte 13", log=log)
        p, ledger = make(tmp_path, ListSource([bad, *msgs(["img1.jpg"], log)]), Script())
        await p.run()
        (d,) = ledger.dead_letters(DeadLetterFilter(rule="message.decode"))
        assert d.raw == b'{"Records": [oops' and "byte 13" in d.message
        assert ("ack", "junk", None) in log and output_keys(tmp_path / "out") == ["img1.jpg"]

    async def test_case_only_collision_is_dead_lettered(self, tmp_path: Path) -> None:
        """Two objects whose keys differ only in case: the platform would see one, so the second
        is dead-lettered naming both keys (in the same run and in a later one); a rerun of the
        first is still a plain duplicate."""
        p, ledger = make(tmp_path, ListSource(msgs(["img/Cat.jpg", "img/cat.jpg"], [])), Script())
        c = await p.run()
        assert (c.delivered, c.dead) == (1, 1)
        (d,) = ledger.dead_letters(DeadLetterFilter(rule="global_key.case_collision"))
        assert d.actual == {"key": "img/cat.jpg", "existing": "img/Cat.jpg"}
        ledger.close()
        p2, _ = make(tmp_path, ListSource(msgs(["img/Cat.jpg", "img/CAT.jpg"], [])), Script())
        c2 = await p2.run()
        assert (c2.duplicates, c2.dead, c2.delivered) == (1, 1, 0)
        assert output_keys(tmp_path / "out") == ["img/Cat.jpg"]

    async def test_an_object_offered_again_while_in_flight_settles_with_the_first(
        self, tmp_path: Path
    ) -> None:
        """The same object arriving again while its first copy is in flight (an SQS message
        received twice, a manifest listing it twice) waits for that copy: never acknowledged
        before it, then acknowledged as a duplicate (no retry delay); one object, delivered once."""
        log: list[tuple[str, str, float | None]] = []
        prober = Script()
        prober.gate.clear()
        first = Msg(id="m1", refs=[ref("img1.jpg")], log=log)
        again = Msg(id="m1", refs=[ref("img1.jpg")], log=log)  # same message id, received twice
        p, _ = make(tmp_path, ListSource([first, again], chunk=1), prober)
        task = asyncio.create_task(p.run())
        while not p.followers:  # the second copy is waiting on the first, held at the gate
            await asyncio.sleep(0)
        assert log == []
        prober.gate.set()
        c = await asyncio.wait_for(task, 10)
        assert log == [("ack", "m1", None), ("ack", "m1", None)]
        assert output_keys(tmp_path / "out") == ["img1.jpg"]
        assert (c.seen, c.delivered, c.duplicates, c.unfinished) == (1, 1, 1, 0)

    async def test_a_waiting_copy_is_given_back_with_a_first_copy_that_failed(self, tmp_path: Path) -> None:
        """If the first copy is not final (a transient read error), the waiting copy is given back
        too, never acknowledged on its behalf; the object counts once, unfinished."""
        log: list[tuple[str, str, float | None]] = []
        prober = Script()
        prober.gate.clear()
        msgs_ = [Msg(id=f"m{i}", refs=[ref("flaky1.jpg")], log=log) for i in range(2)]
        p, _ = make(tmp_path, ListSource(msgs_, chunk=1), prober)
        task = asyncio.create_task(p.run())
        while not p.followers:
            await asyncio.sleep(0)
        prober.gate.set()
        c = await asyncio.wait_for(task, 10)
        assert sorted(log) == [("retry", "m0", 7.0), ("retry", "m1", 7.0)]
        assert (c.seen, c.retried, c.unfinished) == (1, 2, 1)

    async def test_retried_then_delivered_is_one_finished_object(self, tmp_path: Path) -> None:
        """An object given back once and delivered when offered again is one object, final."""
        log: list[tuple[str, str, float | None]] = []
        prober = Script()
        p, _ = make(tmp_path, ListSource([], chunk=1), prober)
        p.counters.see("img1.jpg")
        p.counters.count("retry", "img1.jpg")
        assert p.counters.unfinished == 1
        p.source = ListSource([Msg(id="m1", refs=[ref("img1.jpg")], log=log)])
        c = await asyncio.wait_for(p.run(), 10)
        assert (c.seen, c.delivered, c.retried, c.unfinished) == (1, 1, 1, 0)


class TestBounds:
    async def test_in_flight_never_exceeds_the_bound_and_source_waits(self, tmp_path: Path) -> None:
        """With a stalled probe, at most max_in_flight objects are taken and the source stops being pulled."""
        prober = Script()
        prober.gate.clear()
        source = ListSource(msgs([f"img{i}.jpg" for i in range(500)], []), chunk=4)
        p, _ = make(tmp_path, source, prober, max_in_flight=12, probe_workers=16)
        task = asyncio.create_task(p.run())
        for _ in range(200):
            await asyncio.sleep(0)
        assert prober.max_active <= 12 and p.in_flight <= 12
        assert source.pulled <= 12 + 4  # one chunk may be waiting for slots
        prober.gate.set()
        c = await asyncio.wait_for(task, 30)
        assert c.delivered == 500 and prober.max_active <= 12


class TestDrain:
    async def test_stop_finishes_started_work_and_releases_the_rest(self, tmp_path: Path) -> None:
        """stop(): objects already probing finish and are acked; the ones not started are given back."""
        log: list[tuple[str, str, float | None]] = []
        prober = Script()
        prober.gate.clear()
        source = ListSource(msgs([f"img{i}.jpg" for i in range(100)], log), chunk=50)
        p, ledger = make(tmp_path, source, prober, max_in_flight=8, probe_workers=8)
        task = asyncio.create_task(p.run())
        while prober.active < 8:
            await asyncio.sleep(0)
        p.stop()
        prober.gate.set()
        c = await asyncio.wait_for(task, 10)
        acked = {i for a, i, _ in log if a == "ack"}
        released = {i for a, i, d in log if a == "retry" and d == 0.0}
        assert p.drained and source.closed
        assert len(acked) == c.delivered >= 8
        assert acked | released == {
            f"m-img{i}.jpg" for i in range(50)
        }  # the first chunk; the 2nd never pulled
        assert not acked & released
        assert len(ledger.known([f"img{i}.jpg" for i in range(100)])) == c.delivered

    async def test_drain_deadline_releases_what_is_stuck(self, tmp_path: Path) -> None:
        """If in-flight work outlives the drain deadline, its messages are released, not acked."""
        log: list[tuple[str, str, float | None]] = []
        prober = Script()
        prober.gate.clear()
        p, _ = make(tmp_path, ListSource(msgs(["img1.jpg", "img2.jpg"], log)), prober, drain_timeout=0.2)
        task = asyncio.create_task(p.run())
        while prober.active < 2:
            await asyncio.sleep(0)
        p.stop()
        await asyncio.wait_for(task, 10)
        assert not p.drained
        assert sorted(log) == [("retry", "m-img1.jpg", 0.0), ("retry", "m-img2.jpg", 0.0)]

    async def test_a_slow_drain_says_what_it_waits_for(self, tmp_path: Path) -> None:
        """While the drain lasts, each tick names the stage holding it and what is still in flight;
        once the stuck work finishes, the drain completes and nothing is released."""
        log: list[tuple[str, str, float | None]] = []
        prober = Script()
        prober.gate.clear()
        p, _ = make(tmp_path, ListSource(msgs(["img1.jpg", "img2.jpg"], log)), prober)
        task = asyncio.create_task(p.run())
        while prober.active < 2:
            await asyncio.sleep(0)
        p.stop()
        ticks: asyncio.Queue[None] = asyncio.Queue()
        configure("info")  # this module quiets logs below errors

        async def tick(_: float) -> None:
            await ticks.get()

        with capture_logs() as logs:
            reporter = asyncio.create_task(p.report_drain(sleep=tick))
            while p.drain_step != "probers":
                await asyncio.sleep(0)
            await ticks.put(None)
            while not any(e["event"] == "still draining" for e in logs):
                await asyncio.sleep(0)
        said = next(e for e in logs if e["event"] == "still draining")
        assert said["waiting_for"] == "probers" and said["in_flight"] == 2 and said["unacknowledged"] == 2
        prober.gate.set()
        await asyncio.wait_for(task, 10)
        reporter.cancel()
        assert p.drained and p.drain_step == "done"
        assert sorted(a for a, _, _ in log) == ["ack", "ack"]


class TestRecovery:
    async def test_batch_begun_before_a_crash_is_redelivered_once(self, tmp_path: Path) -> None:
        """A batch pending at a crash is delivered first (delivered by this run: the summary
        says so); then its objects' messages are duplicates."""
        ledger = Ledger(tmp_path / "ledger.db").open()
        items = [
            BatchItem(
                f"img{i}.jpg", "IMAGE", json.dumps({"row_data": "x", "global_key": f"img{i}.jpg"}).encode()
            )
            for i in range(3)
        ]
        batch = Batch.of(items)
        ledger.begin_batch(batch, "files")
        ledger.close()
        prober = Script()
        p, ledger = make(tmp_path, ListSource(msgs([f"img{i}.jpg" for i in range(5)], [])), prober)
        c = await p.run()
        assert sorted(output_keys(tmp_path / "out")) == [f"img{i}.jpg" for i in range(5)]
        assert c.duplicates == 3 and c.delivered == 5 and prober.calls == 2
        assert ledger.pending_batches() == []

    async def test_recovery_finds_an_already_written_file(self, tmp_path: Path) -> None:
        """If the file was written but the commit was lost, recovery does not write a second copy."""
        sink = FilesSink(tmp_path / "out", "labelbox")
        items = [BatchItem("img0.jpg", "IMAGE", b'{"row_data":"x","global_key":"img0.jpg"}')]
        batch = Batch.of(items)
        await sink.deliver(batch)
        ledger = Ledger(tmp_path / "ledger.db").open()
        ledger.begin_batch(batch, "files")
        ledger.close()
        p, _ = make(tmp_path, ListSource(msgs(["img0.jpg"], [])), Script())
        c = await p.run()
        assert output_keys(tmp_path / "out") == ["img0.jpg"] and c.duplicates == 1


@pytest.fixture(autouse=True)
def _quiet_logs() -> None:
    configure("error")


class TestBatchingAdvice:
    async def test_a_batch_that_can_never_fill_is_said_once_with_both_values(self, tmp_path: Path) -> None:
        """max_in_flight below max_items: every batch would wait the whole linger (a run still
        delivers everything); the operator is told why, naming both settings and their values."""
        p, _ = make(tmp_path, ListSource(msgs(["img1.jpg", "img2.jpg"], [])), Script(), max_in_flight=4)
        configure("info")  # this module quiets logs below errors
        with capture_logs() as logs:
            c = await p.run()
        assert c.delivered == 2
        said = [e for e in logs if e["event"] == "batches cannot fill"]
        assert len(said) == 1 and said[0]["log_level"] == "warning"
        reason = said[0]["reason"]
        assert "pipeline.max_in_flight (4)" in reason and "sink.max_items (10)" in reason

    async def test_nothing_is_said_when_batches_can_fill(self, tmp_path: Path) -> None:
        p, _ = make(tmp_path, ListSource(msgs(["img1.jpg"], [])), Script())
        configure("info")
        with capture_logs() as logs:
            await p.run()
        assert not [e for e in logs if e["event"] == "batches cannot fill"]
