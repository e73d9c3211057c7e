"""The PostgreSQL ledger store against a real server: the same contract as SQLite, plus the
claims that let several instances share one queue without delivering an object twice."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

from daemon.core.logs import configure
from daemon.ledger.postgres import PostgresStore
from daemon.ledger.records import DeadLetter, DeadLetterFilter
from daemon.pipeline.build import Builder
from daemon.pipeline.pipeline import Pipeline
from daemon.pipeline.stages import Settings
from daemon.sinks.base import Batch, BatchItem, ItemResult
from daemon.sinks.files import FilesSink
from tests.pipeline.test_pipeline import ListSource, Script, msgs


def _batch(keys: list[str]) -> Batch:
    return Batch.of([BatchItem(k, "IMAGE", json.dumps({"global_key": k}).encode()) for k in keys])


class TestContract:
    async def test_claim_known_and_busy(self, pg_db: str) -> None:
        """Accepted keys are known to everyone; a key claimed by one instance is busy for another."""
        a = await PostgresStore.connect(pg_db, owner="host-a:1")
        b = await PostgresStore.connect(pg_db, owner="host-b:1")
        try:
            batch = _batch(["Done.jpg"])
            await a.begin_batch(batch, "files")
            await a.finish_batch(batch.id, [ItemResult(key="Done.jpg", status="accepted")])
            first = await a.claim(["done.JPG", "x.jpg", "y.jpg"])
            assert first.known == {"done.jpg": "Done.jpg"} and first.busy == set()
            second = await b.claim(["x.jpg", "z.jpg"])
            assert second.known == {} and second.busy == {"x.jpg"}
            await a.release(["x.jpg"])
            assert (await b.claim(["x.jpg"])).busy == set()
            await a.add_dead(
                [DeadLetter(key="bad.mp4", global_key="bad.mp4", stage="validate", rule="r.x", message="m")]
            )
            states = await b.final_states(["DONE.jpg", "bad.mp4", "x.jpg"])
            assert states["done.jpg"].usable and states["bad.mp4"].rule == "r.x" and "x.jpg" not in states
        finally:
            await a.close()
            await b.close()

    async def test_expired_claim_is_taken_over(self, pg_db: str) -> None:
        """A claim whose lease ran out (its instance died elsewhere) can be taken by another."""
        a = await PostgresStore.connect(pg_db, owner="host-a:1", claim_seconds=0.0)
        b = await PostgresStore.connect(pg_db, owner="host-b:1")
        try:
            await a.claim(["k.jpg"])
            assert (await b.claim(["k.jpg"])).busy == set()
        finally:
            await a.close()
            await b.close()

    async def test_pending_batch_of_a_dead_local_process_is_recovered(self, pg_db: str) -> None:
        """A batch begun by a process on this host that no longer exists is returned for recovery;
        one of a live instance elsewhere is not (it may still finish it)."""
        host = socket.gethostname()
        dead = await PostgresStore.connect(pg_db, owner=f"{host}:999999999")
        elsewhere = await PostgresStore.connect(pg_db, owner="other-host:1")
        mine = await PostgresStore.connect(pg_db, owner=f"{host}:1")
        try:
            await dead.begin_batch(_batch(["a.jpg"]), "files")
            await elsewhere.begin_batch(_batch(["b.jpg"]), "files")
            fresh = await PostgresStore.connect(pg_db, owner=f"{host}:2")
            pending = await fresh.pending_batches()
            assert [b.items[0].key for _, b in pending] == ["a.jpg"]
            await fresh.close()
        finally:
            for s in (dead, elsewhere, mine):
                await s.close()

    async def test_dead_letters_filters_requeue_and_stats(self, pg_db: str) -> None:
        """Dead letters upsert with attempts, filter by rule prefix and key prefix, and requeue."""
        s = await PostgresStore.connect(pg_db)
        try:
            d = DeadLetter(
                key="Vid/A.mp4",
                global_key="Vid/A.mp4",
                object={"key": "vid/a.mp4"},
                stage="validate",
                rule="labelbox.video.sar",
                message="non-square",
                expected="1:1",
                actual="4:3",
            )
            await s.add_dead([d])
            await s.add_dead([d])
            await s.add_dead(
                [
                    DeadLetter(
                        key="img/b.png", stage="probe", rule="media.invalid", message="x", raw=b"\x00\x01"
                    )
                ]
            )
            (got,) = await s.dead_letters(DeadLetterFilter(rule="labelbox.*"))
            assert got.attempts == 2 and got.actual == "4:3" and got.object == {"key": "vid/a.mp4"}
            (raw,) = await s.dead_letters(DeadLetterFilter(prefix="IMG/"))
            assert raw.raw == b"\x00\x01"
            assert (await s.claim(["vid/a.mp4"])).known == {"vid/a.mp4": "Vid/A.mp4"}
            assert await s.requeue(["VID/A.MP4"]) == 1
            stats = await s.stats()
            assert stats["dead_letters"] == 1 and stats["dead_letters_by_rule"] == {"media.invalid": 1}
            await s.put_checkpoint("listing:b/p", "key-42")
            assert await s.get_checkpoint("listing:b/p") == "key-42"
            await s.put_checkpoint("listing:b/q", "key-7")
            await s.put_checkpoint("listing_b", "other")
            assert await s.checkpoints("listing:b/") == {"listing:b/p": "key-42", "listing:b/q": "key-7"}
        finally:
            await s.close()


class SlowSink(FilesSink):
    """A files sink that yields to the loop, so two instances interleave."""

    async def deliver(self, batch: Batch) -> list[ItemResult]:
        await asyncio.sleep(0.005)
        return await super().deliver(batch)


class TestFleet:
    async def test_two_instances_on_overlapping_input_deliver_each_object_once(
        self, pg_db: str, tmp_path: Path
    ) -> None:
        """Two pipelines sharing a PostgreSQL ledger, fed overlapping messages (as competing
        consumers see SQS duplicates), deliver every object exactly once between them."""
        configure("error")
        keys = [f"img{i:03d}.jpg" for i in range(300)]
        logs: list[list[tuple[str, str, float | None]]] = [[], []]
        stores, pipes = [], []
        for n, part in enumerate((keys[:200], keys[100:])):
            store = await PostgresStore.connect(pg_db, owner=f"fleet-{n}:1")
            stores.append(store)
            pipes.append(
                Pipeline(
                    source=ListSource(msgs(part, logs[n]), chunk=8),
                    deliverer=SlowSink(tmp_path / f"out{n}", "labelbox"),
                    ledger=store,
                    prober=Script(),
                    builder=Builder(
                        platform="labelbox",
                        accept_kinds=["image"],
                        strict=False,
                        make_url=lambda r: r.url or "",
                    ),
                    key_for=lambda r: r.key,
                    settings=Settings(
                        probe_workers=4, deliver_workers=1, max_items=10, linger=0.01, retry_delay=0.0
                    ),
                )
            )
        try:
            counters = await asyncio.gather(*(p.run() for p in pipes))
            for c in counters:
                assert c.seen == c.delivered + c.duplicates + c.retried
            delivered: list[str] = []
            for n in range(2):
                for f in (tmp_path / f"out{n}").glob("labelbox-*.json"):
                    delivered.extend(r["global_key"] for r in json.loads(f.read_bytes()))
            assert len(delivered) == len(set(delivered))
            # objects given back because the other instance held them are retried (not acked):
            retried = {i for log in logs for a, i, _ in log if a == "retry"}
            acked = {i for log in logs for a, i, _ in log if a == "ack"}
            assert set(delivered) | {m.removeprefix("m-") for m in retried} >= set(keys)
            assert {m.removeprefix("m-") for m in acked} <= set(delivered) | set(keys)
            assert set(delivered) <= set(keys)
        finally:
            for s in stores:
                await s.close()


async def _aiter(items: list[object]) -> AsyncIterator[object]:
    for i in items:
        yield i


class TestUrlExpiries:
    async def test_expiries_upserted_by_key_and_listed_earliest_first(self, pg_db: str) -> None:
        """One row per (casefolded) key; due rows earliest first; counted in stats."""
        store = await PostgresStore.connect(pg_db)
        try:
            await store.put_url_expiries(
                [("B.mp4", "https://h/b", "eu-west-1", 200.0), ("a.mp4", "https://h/a", "eu-west-1", 100.0)]
            )
            await store.put_url_expiries([("b.MP4", "https://h/b2", "eu-west-1", 50.0)])
            assert await store.urls_expiring(150.0, 10) == [
                ("b.MP4", "https://h/b2", "eu-west-1", 50.0),
                ("a.mp4", "https://h/a", "eu-west-1", 100.0),
            ]
            assert await store.urls_expiring(60.0, 10) == [("b.MP4", "https://h/b2", "eu-west-1", 50.0)]
            assert (await store.stats())["urls_expiring_24h"] == 2
        finally:
            await store.close()
