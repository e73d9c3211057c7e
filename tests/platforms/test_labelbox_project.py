"""Project batches and annotation imports through the labelbox sink, against the local server
(in process, fast polls)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import msgspec
import pytest

from daemon.core.config import AnnotationsConfig, ConfigError, SinkConfig, TargetConfig, from_dict
from daemon.ops.metrics import Metrics
from daemon.service.wiring import make_annotator
from daemon.sinks.base import ANNOTATIONS, Batch, BatchItem
from daemon.sinks.delivery import Deliverer
from daemon.sinks.labelbox import open_labelbox_deliverer
from daemon.sinks.labelbox.project import in_project_name
from tests.platforms.labelbox_project_server import ProjectServer
from tests.platforms.test_labelbox_sink import KEY, MemoryCheckpoints, batch, statuses
from workers.platforms.labelbox.imports import ImportRecord, import_name, join_ndjson, read_record
from workers.platforms.labelbox.project import batch_name


@pytest.fixture
async def ps() -> AsyncIterator[ProjectServer]:
    s = ProjectServer()
    await s.start()
    yield s
    await s.stop()


async def open_sink(
    stack: AsyncExitStack,
    server: ProjectServer,
    ckpt: MemoryCheckpoints,
    *,
    kind: str = "mal",
    **target: object,
) -> Deliverer:
    sink_cfg = SinkConfig(type="labelbox", endpoint=server.url, max_retries=3)
    tgt = TargetConfig(platform="labelbox", dataset=server.dataset_id, project=server.project_id, **target)  # type: ignore[arg-type]
    env = {"INGESTD_SECRET_LABELBOX_API_KEY": KEY}
    notes = AnnotationsConfig(kind=kind, rows_per_file=2)  # type: ignore[arg-type]
    return await open_labelbox_deliverer(
        sink_cfg, tgt, stack, ckpt, environ=env, poll_interval=0.01, annotations=notes
    )


def note(row: str, *features: str) -> BatchItem:
    lines = [
        {"uuid": f"u-{row}-{f}", "name": f, "dataRow": {"globalKey": row}, "answer": {"name": "yes"}}
        for f in features
    ]
    return BatchItem(f"{row}.labels.ndjson", ANNOTATIONS, "\n".join(json.dumps(x) for x in lines).encode())


class TestBatches:
    async def test_rows_go_into_one_named_batch_with_priority_and_consensus(self, ps: ProjectServer) -> None:
        ps.unprocessed_checks = 2
        ckpt = MemoryCheckpoints({})
        async with AsyncExitStack() as stack:
            d = await open_sink(stack, ps, ckpt, priority=2, consensus_labels=3, consensus_coverage=0.5)
            results = await d.deliver(batch(5))
        assert set(statuses(results).values()) == {"accepted"}
        keys = [f"k{i:04d}" for i in range(5)]
        [(name, b)] = ps.batches.items()
        assert name == batch_name(keys) and b["size"] == 5 and b["priority"] == 2
        assert b["consensus"] == {"numberOfLabels": 3, "coveragePercentage": 0.5}
        assert ps.count("queryAllDataRowsHaveBeenProcessed") == 3 and ps.count("createBatchV2") == 1
        assert all(ckpt.values[in_project_name(k)] == name for k in keys)

    async def test_async_path_at_the_threshold(self, ps: ProjectServer) -> None:
        async with AsyncExitStack() as stack:
            d = await open_sink(stack, ps, MemoryCheckpoints({}), batch_async_at=4)
            results = await d.deliver(batch(4))
        assert set(statuses(results).values()) == {"accepted"}
        assert ps.count("createBatchV2") == 0
        ops = ("createEmptyBatch", "addDataRowsToBatchAsync", "batches")
        assert [ps.count(op) for op in ops] == [1, 1, 1]
        assert len(ps.in_project) == 4

    async def test_already_batched_is_success_and_wrong_media_is_refused(self, ps: ProjectServer) -> None:
        ps.media_type = "VIDEO"
        async with AsyncExitStack() as stack:
            d = await open_sink(stack, ps, MemoryCheckpoints({}))
            results = await d.deliver(batch(2))
        reasons = {r.key: r.reason for r in results}
        assert all("IMAGE" in (r or "") and "VIDEO" in (r or "") for r in reasons.values())
        assert statuses(results) == {"k0000": "rejected", "k0001": "rejected"} and not ps.batches
        ps.media_type = "IMAGE"
        ps.in_project = {"k0000": "earlier", "k0001": "earlier"}
        async with AsyncExitStack() as stack:
            d = await open_sink(stack, ps, MemoryCheckpoints({}))
            results = await d.deliver(batch(2))
        assert set(statuses(results).values()) == {"duplicate"} and not ps.batches

    @pytest.mark.parametrize(
        ("op", "path"), [("createBatchV2", {}), ("createEmptyBatch", {"batch_async_at": 2})]
    )
    async def test_a_lost_batch_answer_finds_the_first_batch(
        self, ps: ProjectServer, op: str, path: dict[str, int]
    ) -> None:
        """The batch was created and its answer lost: the retry's name exists; one batch, all in."""
        ps.plan = lambda _n, name: "lost" if name == op and ps.count(op) == 0 else None
        async with AsyncExitStack() as stack:
            d = await open_sink(stack, ps, MemoryCheckpoints({}), **path)
            results = await d.deliver(batch(3))
        assert set(statuses(results).values()) <= {"accepted", "duplicate"} and len(results) == 3
        assert len(ps.batches) == 1 and len(ps.in_project) == 3 and ps.count(op) == 2

    @pytest.mark.parametrize("listed_as_failed", [False, True])
    async def test_rows_already_batched_among_new_ones_are_a_success(
        self, ps: ProjectServer, listed_as_failed: bool
    ) -> None:
        """Labelbox may skip rows already in a batch of the project or list them in failedDataRowIds
        (unverified which): either way they are a success, and a row that really failed is refused."""
        ps.batched_rows_failed = listed_as_failed
        ps.in_project = {"k0000": "earlier", "k0001": "earlier"}
        ps.processing_failed = {"k0003"}
        async with AsyncExitStack() as stack:
            d = await open_sink(stack, ps, MemoryCheckpoints({}))
            results = await d.deliver(batch(4))
        assert statuses(results) == {
            "k0000": "accepted",
            "k0001": "accepted",
            "k0002": "accepted",
            "k0003": "rejected",
        }
        assert "dr-k0003" in next(r.reason for r in results if r.key == "k0003")  # type: ignore[operator]
        assert (
            ps.in_project["k0000"] == "earlier" and "k0002" in ps.in_project and "k0003" not in ps.in_project
        )
        assert ps.count("createBatchV2") == (4 if listed_as_failed else 2)  # one more per failed row

    async def test_processing_failed_rows_are_refused_by_key(self, ps: ProjectServer) -> None:
        ps.processing_failed = {"k0001"}
        async with AsyncExitStack() as stack:
            d = await open_sink(stack, ps, MemoryCheckpoints({}))
            results = await d.deliver(batch(3))
        assert statuses(results) == {"k0000": "accepted", "k0001": "rejected", "k0002": "accepted"}
        assert "dr-k0001" in next(r.reason for r in results if r.key == "k0001")  # type: ignore[operator]


class TestImports:
    async def _rows(
        self, stack: AsyncExitStack, ps: ProjectServer, ckpt: MemoryCheckpoints, kind: str
    ) -> Deliverer:
        d = await open_sink(stack, ps, ckpt, kind=kind)
        assert set(statuses(await d.deliver(batch(3))).values()) == {"accepted"}
        return d

    @pytest.mark.parametrize("kind", ["mal", "ground_truth"])
    async def test_imported_once_in_jobs_of_rows_per_file(self, ps: ProjectServer, kind: str) -> None:
        ckpt = MemoryCheckpoints({})
        notes = [note("k0000", "a", "b"), note("k0001", "a"), note("k0002", "c")]
        async with AsyncExitStack() as stack:
            d = await self._rows(stack, ps, ckpt, kind)
            results = await d.deliver(Batch.of(notes))
            again = await d.deliver(Batch.of(notes))  # a re-delivery finds the jobs by name
        assert set(statuses(results).values()) == {"accepted"} == set(statuses(again).values())
        stats = d.stats  # type: ignore[attr-defined]
        assert stats.imports == {"started": 2, "finished": 4} and stats.import_lines == {"imported": 8}
        assert len(ps.jobs) == 2 and set(ps.job_creations.values()) == {1}  # 2 rows per file
        assert {j.kind for j in ps.jobs.values()} == {kind} and len(ps.imported_lines()) == 4
        mal = "createModelAssistedLabelingPredictionImport"
        assert ps.count("createLabelImport" if kind == "ground_truth" else mal) == 2
        first = import_name(join_ndjson(n.body for n in notes[:2]))
        record = read_record(ckpt.values[f"labelbox.import:{first}"])
        # 3 lines, not 6: the re-delivery rewrites the same record
        assert first in ps.jobs and record == ImportRecord("finished", ps.jobs[first].id, imported=3)

    async def test_failure_lines_refuse_their_sidecar_with_the_message(self, ps: ProjectServer) -> None:
        ps.feature_failures = {"b": "Feature b is not in the ontology"}
        async with AsyncExitStack() as stack:
            d = await self._rows(stack, ps, MemoryCheckpoints({}), "mal")
            results = await d.deliver(Batch.of([note("k0000", "a", "b"), note("k0001", "a")]))
        assert statuses(results) == {"k0000.labels.ndjson": "rejected", "k0001.labels.ndjson": "accepted"}
        assert d.stats.import_lines == {"imported": 2, "failed": 1}  # type: ignore[attr-defined]
        why = next(r.reason for r in results if r.status == "rejected") or ""
        assert "k0000" in why and "'b'" in why and "u-k0000-b" in why and "is not in the ontology" in why

    async def test_large_files_go_by_url(self, ps: ProjectServer) -> None:
        """Above inline_bytes the NDJSON is uploaded with uploadFile and the job created by fileUrl."""
        async with AsyncExitStack() as stack:
            d = await self._rows(stack, ps, MemoryCheckpoints({}), "ground_truth")
            importer = d.sink.importer  # type: ignore[attr-defined]
            importer.s = msgspec.structs.replace(importer.s, inline_bytes=10)
            results = await d.deliver(Batch.of([note("k0000", "a", "b")]))
        assert set(statuses(results).values()) == {"accepted"}
        [create] = [r for r in ps.requests if r.operation == "createLabelImport"]
        assert create.variables["fileUrl"] in ps.files and len(ps.imported_lines()) == 2

    async def test_an_answer_quoting_the_signed_url_is_redacted(self, ps: ProjectServer) -> None:
        """A staged file Labelbox cannot fetch: the refusal names the object, never the signature."""
        signed = "http://127.0.0.1:1/bucket/staged/x.ndjson?X-Amz-Signature=SIGNATURE0123"

        class Unreachable:
            async def stage(self, name: str, ndjson: bytes) -> str:
                return signed

        async with AsyncExitStack() as stack:
            d = await self._rows(stack, ps, MemoryCheckpoints({}), "mal")
            importer = d.sink.importer  # type: ignore[attr-defined]
            importer.s = msgspec.structs.replace(importer.s, inline_bytes=10)
            importer.stager = Unreachable()
            results = await d.deliver(Batch.of([note("k0000", "a")]))
        [r] = results
        assert ps.fetched[signed][0] == 0 and r.status == "rejected"
        why = r.reason or ""
        assert "SIGNATURE0123" not in why and "/bucket/staged/x.ndjson?<signed>" in why

    async def test_failed_without_status_file_refuses_all_with_the_job_id(self, ps: ProjectServer) -> None:
        ps.fail_jobs = True
        async with AsyncExitStack() as stack:
            d = await self._rows(stack, ps, MemoryCheckpoints({}), "mal")
            results = await d.deliver(Batch.of([note("k0000", "a"), note("k0001", "a")]))
        [job] = ps.jobs.values()
        assert set(statuses(results).values()) == {"rejected"}
        assert all(job.id in (r.reason or "") for r in results)

    async def test_rows_not_yet_in_the_project_are_placed_first(self, ps: ProjectServer) -> None:
        """Rows accepted before the project was set: the import places them, then imports."""
        for k in ("k0000", "k0001"):
            ps.rows[k] = {"global_key": k}
        async with AsyncExitStack() as stack:
            d = await open_sink(stack, ps, MemoryCheckpoints({}))
            results = await d.deliver(Batch.of([note("k0000", "a"), note("k0001", "a")]))
        assert set(statuses(results).values()) == {"accepted"} and len(ps.in_project) == 2
        assert ps.count("createBatchV2") == 1

    async def test_lost_create_answer_is_found_by_name(self, ps: ProjectServer) -> None:
        """The create reached the server, its answer was lost: the retry finds the job, one job."""
        ps.plan = lambda _n, op: "lost" if op == "createModelAssistedLabelingPredictionImport" else None
        async with AsyncExitStack() as stack:
            d = await self._rows(stack, ps, MemoryCheckpoints({}), "mal")
            results = await d.deliver(Batch.of([note("k0000", "a")]))
        assert set(statuses(results).values()) == {"accepted"}
        assert len(ps.jobs) == 1 and set(ps.job_creations.values()) == {1}

    @pytest.mark.parametrize("code", ["RESOURCE_CONFLICT", "MALFORMED_REQUEST"])
    async def test_a_name_that_exists_is_that_job(self, ps: ProjectServer, code: str) -> None:
        """No ledger record (another instance made it): the create is told the name exists, in
        whichever words (Labelbox's are unverified); the job read by that name is the job."""
        ps.duplicate_name_code = code
        ckpt = MemoryCheckpoints({})
        async with AsyncExitStack() as stack:
            d = await self._rows(stack, ps, ckpt, "mal")
            await d.deliver(Batch.of([note("k0000", "a")]))
            for k in [k for k in ckpt.values if k.startswith("labelbox.import:")]:
                del ckpt.values[k]
            results = await d.deliver(Batch.of([note("k0000", "a")]))
        assert set(statuses(results).values()) == {"accepted"} and len(ps.jobs) == 1
        assert set(ps.job_creations.values()) == {1}

    async def test_ontology_read_once(self, ps: ProjectServer) -> None:
        ps.normalized = {"tools": [{"name": "box", "tool": "rectangle"}], "classifications": []}
        async with AsyncExitStack() as stack:
            d = await open_sink(stack, ps, MemoryCheckpoints({}))
            project = d.sink.project  # type: ignore[attr-defined]
            assert b'"box"' in (await project.ontology())
            await asyncio.gather(project.ontology(), project.ontology())
            assert ps.count("project") == 1
            await project.ontology(True)
        assert ps.count("project") == 2


def test_metrics_show_imports_by_state_lines_by_outcome_and_waiting() -> None:
    m = Metrics("test")
    m.annotation_imports, m.annotation_lines = {"finished": 2, "failed": 1}, {"imported": 9, "failed": 3}
    text = m.exposition().decode()
    assert 'ingestd_annotation_imports_total{state="finished"} 2.0' in text
    assert 'ingestd_annotation_lines_total{outcome="failed"} 3.0' in text
    assert m.snapshot()["annotation_imports"] == {"finished": 2, "failed": 1}
    m.annotations_waiting, m.annotations_waiting_oldest = 3, 42.25
    assert "ingestd_annotations_waiting 3.0" in m.exposition().decode()
    assert "ingestd_annotations_waiting_oldest_seconds 42.25" in m.exposition().decode()
    assert m.snapshot()["annotations_waiting"] == {"count": 3, "oldest_seconds": 42.2}


@pytest.mark.parametrize(
    ("target", "match"),
    [
        ({"priority": 0}, "target.priority: 1 \\(highest\\) to 5"),
        ({"consensus_labels": 3, "consensus_coverage": 0}, "target.consensus_coverage"),
        ({"batch_async_at": 1001}, "target.batch_async_at"),
        ({"annotation_staging": "https://bucket/p/"}, "target.annotation_staging: s3://bucket/prefix/"),
        ({"annotation_staging": "s3://B_/p/"}, "target.annotation_staging: bad bucket name"),
        ({"annotation_staging_expires": 8 * 86400}, "target.annotation_staging_expires: 300 s .. 7 days"),
        ({"annotation_inline_bytes": 0}, "target.annotation_inline_bytes"),
    ],
)
def test_project_keys_are_checked(target: dict[str, object], match: str) -> None:
    base = {"platform": "labelbox", "dataset": "ds-1", "project": "p", **target}
    with pytest.raises(ConfigError, match=match):
        from_dict({"source": {"type": "manifest", "path": "m"}, "target": base, "sink": {"type": "labelbox"}})


def test_annotations_into_a_project_are_not_refused() -> None:
    """make_annotator refuses sidecars for a labelbox sink without a project, not with one."""
    base = {"source": {"type": "manifest", "path": "m"}, "sink": {"type": "labelbox"}}
    without = from_dict({**base, "target": {"platform": "labelbox", "dataset": "d"}})
    with_project = from_dict({**base, "target": {"platform": "labelbox", "dataset": "d", "project": "p"}})
    refused = make_annotator(without, None, None)  # type: ignore[arg-type]
    taken = make_annotator(with_project, None, None)  # type: ignore[arg-type]
    assert refused is not None and "set [target] project" in (refused.refuse or "")
    assert taken is not None and taken.refuse is None
