"""The labelbox sink behind the Deliverer, against the local Labelbox server (in process)."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from dataclasses import dataclass

import pytest
from structlog.testing import capture_logs

from daemon.core.config import SinkConfig, TargetConfig
from daemon.ops.health import Readiness, watch
from daemon.sinks.base import ANNOTATIONS, Batch, BatchItem, CredentialsError, PermanentError
from daemon.sinks.delivery import Deliverer
from daemon.sinks.labelbox import open_labelbox_deliverer
from daemon.sinks.labelbox.sink import LabelboxSink, checkpoint_name
from tests.platforms.labelbox_server import TEST_KEY, LabelboxServer
from workers.payloads import labelbox as lb
from workers.platforms.labelbox import graphql as gql

KEY = TEST_KEY


@dataclass
class MemoryCheckpoints:
    values: dict[str, str]

    async def get_checkpoint(self, name: str) -> str | None:
        return self.values.get(name)

    async def put_checkpoint(self, name: str, value: str) -> None:
        self.values[name] = value


def batch(n: int, prefix: str = "k", **row: object) -> Batch:
    items = []
    for i in range(n):
        key = f"{prefix}{i:04d}"
        body = lb.encode(lb.DataRow(row_data=f"https://cdn.example.com/{key}.jpg", global_key=key, **row))  # type: ignore[arg-type]
        items.append(BatchItem(key, "IMAGE", body))
    return Batch.of(items)


async def open_sink(
    stack: AsyncExitStack, server: LabelboxServer, ckpt: MemoryCheckpoints, *, key: str = KEY, **cfg: object
) -> Deliverer:
    sink_cfg = SinkConfig(type="labelbox", endpoint=server.url, **{"max_retries": 3, **cfg})  # type: ignore[arg-type]
    target = TargetConfig(platform="labelbox", dataset=server.dataset_id)
    env = {"INGESTD_SECRET_LABELBOX_API_KEY": key}
    return await open_labelbox_deliverer(sink_cfg, target, stack, ckpt, environ=env, poll_interval=0.01)


def statuses(results: list) -> dict[str, str]:  # type: ignore[type-arg]
    return {r.key: r.status for r in results}


class TestDeliver:
    async def test_one_task_per_batch_each_row_created_once(self, server: LabelboxServer) -> None:
        """Chunk upload, manifest, upsertDataRows, user, one poll, one failure page: six requests."""
        ckpt = MemoryCheckpoints({})
        async with AsyncExitStack() as stack:
            d = await open_sink(stack, server, ckpt)
            b = batch(50)
            results = await d.deliver(b)
        assert set(statuses(results).values()) == {"accepted"} and len(results) == 50
        assert all(n == 1 for n in server.creations.values()) and len(server.creations) == 50
        ops = [r.operation for r in server.requests]
        assert ops == [
            "uploadFile",
            "uploadFile",
            "upsertDataRows",
            "user",
            "createdTasks",
            "failedDataRowImports",
        ]
        assert ckpt.values[checkpoint_name(b.id)] == ""  # cleared once the batch is answered
        payload = next(iter(server.rows.values()))
        assert payload["dataset_id"] == server.dataset_id

    async def test_partial_failures_and_existing_keys(self, server: LabelboxServer) -> None:
        """Pre-existing key -> duplicate; a row Labelbox refuses -> rejected with its message."""
        server.existing = {"k0001": "https://old"}
        server.rows["k0001"] = {"global_key": "k0001"}
        server.row_failures = {"k0002": "Failed to access URL: 403 Forbidden"}
        async with AsyncExitStack() as stack:
            d = await open_sink(stack, server, MemoryCheckpoints({}))
            results = await d.deliver(batch(4))
        by_key = {r.key: r for r in results}
        assert by_key["k0001"].status == "duplicate"
        assert by_key["k0002"].status == "rejected"
        assert by_key["k0002"].reason == "Failed to access URL: 403 Forbidden"
        assert {by_key["k0000"].status, by_key["k0003"].status} == {"accepted"}
        assert "k0001" not in server.creations

    async def test_several_tasks_share_one_paced_poller(self, server: LabelboxServer) -> None:
        """Four batches at once: tasks are read together, far fewer reads than tasks x polls."""
        server.polls_to_complete = 3
        async with AsyncExitStack() as stack:
            d = await open_sink(stack, server, MemoryCheckpoints({}), tasks_in_flight=4)
            parts = await asyncio.gather(*(d.deliver(batch(10, prefix=p)) for p in "abcd"))
        assert all(set(statuses(p).values()) == {"accepted"} for p in parts)
        reads = server.count("createdTasks")
        assert reads < 4 * 3 and server.count("user") == 1

    async def test_resume_polls_the_recorded_task_no_upload(self, server: LabelboxServer) -> None:
        """A task recorded in the ledger before a crash is polled, not uploaded again."""
        server.hold = True
        ckpt = MemoryCheckpoints({})
        b = batch(20)
        async with AsyncExitStack() as stack:
            d = await open_sink(stack, server, ckpt)
            first = asyncio.create_task(d.deliver(b))
            while not ckpt.values.get(checkpoint_name(b.id)):
                await asyncio.sleep(0.01)
            first.cancel()  # the crash: the task runs on at Labelbox
            await asyncio.gather(first, return_exceptions=True)
        uploads = server.count("uploadFile")
        server.complete_all()
        async with AsyncExitStack() as stack:
            d = await open_sink(stack, server, ckpt)
            results = await d.deliver(b)
        assert set(statuses(results).values()) == {"accepted"}
        assert server.count("uploadFile") == uploads and server.count("upsertDataRows") == 1
        assert all(n == 1 for n in server.creations.values()) and len(server.creations) == 20

    async def test_deadline_falls_back_to_lookup_by_global_key(self, server: LabelboxServer) -> None:
        """A task still running at the deadline: rows found by key are accepted, the rest retryable."""
        server.hold = True
        server.existing = {"k0000": "x"}
        server.rows["k0000"] = {"global_key": "k0000"}
        async with AsyncExitStack() as stack:
            d = await open_sink(stack, server, MemoryCheckpoints({}), task_deadline=0.2)
            results = await d.sink.deliver(batch(3))  # the sink's answer, before any retry
        assert statuses(results) == {"k0000": "accepted", "k0001": "retryable", "k0002": "retryable"}
        assert server.count("dataRowsForGlobalKeys") == 1

    async def test_upsert_mode_sends_gkey_specs(self, server: LabelboxServer) -> None:
        """upsert = true: rows are addressed by global key and updated in place."""
        server.existing = {"k0000": "https://old"}
        server.rows["k0000"] = {"global_key": "k0000", "row_data": "https://old"}
        async with AsyncExitStack() as stack:
            d = await open_sink(stack, server, MemoryCheckpoints({}), upsert=True)
            results = await d.deliver(batch(2))
        assert set(statuses(results).values()) == {"accepted"}
        assert server.rows["k0000"]["row_data"] == "https://cdn.example.com/k0000.jpg"
        assert server.updates["k0000"] == 1

    async def test_an_annotation_item_is_never_sent_as_a_data_row(self, server: LabelboxServer) -> None:
        """An ANNOTATIONS item is refused with the reason; the data rows beside it go through."""
        rows = batch(2)
        note = BatchItem("k0000.labels.ndjson", ANNOTATIONS, b'{"dataRow": {"globalKey": "k0000"}}')
        async with AsyncExitStack() as stack:
            d = await open_sink(stack, server, MemoryCheckpoints({}))
            results = await d.deliver(Batch.of([*rows.items, note]))
        assert statuses(results) == {"k0000": "accepted", "k0001": "accepted", note.key: "rejected"}
        assert sorted(server.creations) == ["k0000", "k0001"]

    async def test_failures_are_paged_with_the_cursor(
        self, server: LabelboxServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Five failures read two at a time: three pages, each row mapped to its key once."""
        monkeypatch.setattr(gql, "PAGE_ROWS", 2)
        server.row_failures = {f"k{i:04d}": f"refused {i}" for i in range(5)}
        async with AsyncExitStack() as stack:
            d = await open_sink(stack, server, MemoryCheckpoints({}))
            results = await d.deliver(batch(7))
        reasons = {r.key: r.reason for r in results if r.status == "rejected"}
        assert reasons == {f"k{i:04d}": f"refused {i}" for i in range(5)}
        pages = [r.variables for r in server.requests if r.operation == "failedDataRowImports"]
        assert [p["from"] for p in pages] == [None, "2", "4"] and {p["first"] for p in pages} == {2}


class TestMetadata:
    async def test_names_resolved_once_and_unknown_names_rejected(self, server: LabelboxServer) -> None:
        """Fields by name become schema ids (enum as two entries); the ontology is read once, again
        on a miss; a field it still lacks rejects that row, naming the field."""
        good = lb.DataRow(
            row_data="https://cdn.example.com/a.jpg",
            global_key="a",
            metadata_fields=[
                lb.MetadataField(name="tag", value="t"),
                lb.MetadataField(name="split", value="train"),
            ],
        )
        bad = lb.DataRow(
            row_data="https://cdn.example.com/b.jpg",
            global_key="b",
            metadata_fields=[lb.MetadataField(name="colour", value="red")],
        )
        async with AsyncExitStack() as stack:
            d = await open_sink(stack, server, MemoryCheckpoints({}))
            r1 = await d.deliver(Batch.of([BatchItem("a", "IMAGE", lb.encode(good))]))
            r2 = await d.deliver(Batch.of([BatchItem("b", "IMAGE", lb.encode(bad))]))
            sink = d.sink
            assert isinstance(sink, LabelboxSink)
            assert sink.ontology_fetches == 2  # once, then once more on the miss
        assert statuses(r1) == {"a": "accepted"}
        assert r2[0].status == "rejected" and r2[0].reason is not None and "'colour'" in r2[0].reason
        assert server.rows["a"]["metadata_fields"] == [
            {"schemaId": "md-tag", "value": "t"},
            {"schemaId": "md-split", "value": {}},
            {"schemaId": "md-split-train", "value": {}},
        ]


class TestFaults:
    @pytest.mark.parametrize(
        "fault", ["429", "429:0.05", "exceeded", "500", "502html", "520", "reset", "lost"]
    )
    async def test_faults_are_retried_and_rows_created_once(self, server: LabelboxServer, fault: str) -> None:
        """Every request kind meets the fault once; each row still exists exactly once."""
        seen: set[str] = set()

        def plan(_n: int, op: str) -> str | None:
            if op in seen or op == "user":
                return None
            seen.add(op)
            return fault

        server.plan = plan
        async with AsyncExitStack() as stack:
            d = await open_sink(stack, server, MemoryCheckpoints({}), max_retries=8)
            results = await d.deliver(batch(5))
        assert set(statuses(results).values()) <= {"accepted", "duplicate"}
        assert all(n == 1 for n in server.creations.values()) and len(server.creations) == 5
        if fault == "429:0.05":
            assert d.endpoint.stats.pauses >= 1

    async def test_refused_key_dead_letters_nothing(self, server: LabelboxServer) -> None:
        """A wrong key: the batch comes back retryable (never rejected) and the refusal is logged once."""
        with capture_logs() as logs:
            async with AsyncExitStack() as stack:
                d = await open_sink(stack, server, MemoryCheckpoints({}), key="lb-wrong")
                results = await d.deliver(batch(3))
                with pytest.raises(CredentialsError, match="Invalid API key"):
                    await d.check()
        assert {r.status for r in results} == {"retryable"}
        assert sum(1 for e in logs if e["event"] == "labelbox.credentials_refused") == 1
        assert "lb-wrong" not in repr(logs) and all("lb-wrong" not in (r.reason or "") for r in results)
        assert not server.creations


class TestCheck:
    async def test_check_names_dataset_or_fails_with_message(self, server: LabelboxServer) -> None:
        """An authenticated dataset read; an unknown dataset fails with the server's text."""
        async with AsyncExitStack() as stack:
            d = await open_sink(stack, server, MemoryCheckpoints({}))
            with capture_logs() as logs:
                await d.check()
            assert any(e.get("name") == server.dataset_name for e in logs)
            server.dataset_id = "other"
            with pytest.raises(PermanentError, match="Dataset ds-1 not found"):
                await d.check()

    async def test_readiness_is_false_while_the_key_is_refused(self, server: LabelboxServer) -> None:
        """/readyz's sink check fails with Labelbox's message while refused, and recovers."""
        readiness = Readiness()
        async with AsyncExitStack() as stack:
            d = await open_sink(stack, server, MemoryCheckpoints({}), key="lb-wrong")
            watcher = asyncio.create_task(watch(d.check, readiness.sink, every=0.01))
            try:
                await readiness.changed.wait()
                assert readiness.sink_error is not None and "Invalid API key" in readiness.sink_error
                assert not readiness.ready
                server.api_key = "lb-wrong"  # the key is accepted again
                while readiness.sink_error is not None:
                    readiness.changed.clear()
                    await readiness.changed.wait()
            finally:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
