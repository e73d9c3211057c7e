"""The ``labelbox`` sink: one batch = one Labelbox upload task (shared/ref/labelbox.md 1.1).

``deliver(batch)``:

1. If the ledger holds a task for this batch (checkpoint ``labelbox.task:<batch id>``), resume
   polling it: nothing is uploaded again (a restart after a crash, or a retry after a poll failed).
2. Otherwise build the specs (metadata resolved through the cached ontology, refreshed once on a
   miss; a row that cannot be sent is rejected here with the reason), upload them as <= 10 MB
   chunks with ``uploadFile``, upload the manifest, call ``upsertDataRows`` and record the task id
   in the ledger *before* polling.
3. Wait for the task (one paced poller for all tasks) at most ``task_deadline`` seconds; past it,
   look the rows up by global key instead.
4. Page ``failedDataRowImports`` (and the successes of a failed task) and map every row back to
   its key: duplicates are successes, other failures are rejected with Labelbox's message.
5. Clear the checkpoint and answer one result per item.

Errors while the task's outcome is unknown (polling, paging) are transient: the batch is retried
and resumes the same task; they never dead-letter rows that may already exist.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import msgspec
import structlog

from daemon.sinks.base import ANNOTATIONS, Batch, ItemResult, PermanentError, TransientError
from daemon.sinks.labelbox.client import LabelboxClient
from daemon.sinks.labelbox.imports import Importer
from daemon.sinks.labelbox.project import ProjectRows
from daemon.sinks.labelbox.refresher import UrlExpiries, UrlExpiry
from daemon.sinks.labelbox.tasks import TaskPoller
from workers.platforms.labelbox import graphql as gql
from workers.platforms.labelbox.metadata import (
    MetadataError,
    MetadataMiss,
    Ontology,
    OntologyData,
    needs_ontology,
    resolve_row,
)
from workers.platforms.labelbox.refresh import presigned
from workers.platforms.labelbox.results import RowOutcome, outcomes
from workers.platforms.labelbox.specs import CHUNK_BYTES, TASK_ROWS, IdType, chunks, fits, manifest, spec

log = structlog.get_logger()

LOOKUP_KEYS = 2_000  # global keys per dataRowsForGlobalKeys job
LOOKUP_READS = 30  # result reads per lookup job before giving up (transiently)


class Checkpoints(Protocol):
    async def get_checkpoint(self, name: str) -> str | None: ...

    async def put_checkpoint(self, name: str, value: str) -> None: ...


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    dataset: str
    upsert: bool = False
    task_deadline: float = 1800.0
    chunk_bytes: int = CHUNK_BYTES


class _Resume(msgspec.Struct):
    """What the ledger keeps for a batch whose task is running."""

    task: str
    rejected: dict[str, str] = msgspec.field(default_factory=dict)  # key -> why it was not sent


class _RowData(msgspec.Struct):
    row_data: Any = None


_row_data = msgspec.json.Decoder(_RowData).decode


def _row_url(body: bytes) -> str | None:
    try:
        value = _row_data(body).row_data
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return value if isinstance(value, str) else None


def checkpoint_name(batch_id: str) -> str:
    return f"labelbox.task:{batch_id}"


class LabelboxSink:
    name = "labelbox"

    def __init__(
        self,
        client: LabelboxClient,
        poller: TaskPoller,
        checkpoints: Checkpoints | None,
        settings: Settings,
        *,
        expiries: UrlExpiries | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        project: ProjectRows | None = None,
        importer: Importer | None = None,
    ) -> None:
        self.project = project  # [target] project: accepted rows are queued into it
        self.importer = importer  # ... and annotation items imported into it
        self.client = client
        self.poller = poller
        self._ckpt = checkpoints
        self._expiries = expiries if settings.upsert else None
        self.s = settings
        self._sleep = sleep
        self._ontology: Ontology | None = None
        self.ontology_fetches = 0
        self.tasks_started = 0

    async def deliver(self, batch: Batch) -> list[ItemResult]:
        if self._ckpt is None:
            raise PermanentError("labelbox sink opened without a ledger (check only)")
        notes = [i for i in batch.items if i.kind == ANNOTATIONS] if self.importer is not None else []
        rows = Batch(batch.id, [i for i in batch.items if i.kind != ANNOTATIONS]) if notes else batch
        results = await self._deliver_rows(rows) if rows.items else []
        if self.project is not None and rows.items:
            results = await self._place(rows, results)
        if notes:
            assert self.importer is not None
            results.extend(await self.importer.deliver(notes))
        return results

    async def _place(self, batch: Batch, results: list[ItemResult]) -> list[ItemResult]:
        """Rows Labelbox took, into the project's batches; a row it refuses there is rejected."""
        assert self.project is not None
        kinds = {i.key: i.kind for i in batch.items}
        taken = [(r.key, kinds.get(r.key, "")) for r in results if r.status in ("accepted", "duplicate")]
        refused = await self.project.place(taken) if taken else {}
        return [
            ItemResult(key=r.key, status="rejected", reason=why) if (why := refused.get(r.key)) else r
            for r in results
        ]

    async def row_ids(self, keys: list[str]) -> dict[str, str]:
        """``{data row id: our key}`` for the keys that exist on Labelbox."""
        ours = {k.casefold(): k for k in keys}
        out: dict[str, str] = {}
        for i in range(0, len(keys), LOOKUP_KEYS):
            job = await self.client.query(
                gql.ROWS_BY_KEY, {"globalKeys": keys[i : i + LOOKUP_KEYS]}, gql.RowsByKeyData
            )
            found = await self._lookup_result(job.dataRowsForGlobalKeys.jobId)
            for r in found.fetchedDataRows:
                if r.globalKey and r.globalKey.casefold() in ours:
                    out[r.id] = ours[r.globalKey.casefold()]
        return out

    async def _deliver_rows(self, batch: Batch) -> list[ItemResult]:
        assert self._ckpt is not None
        name = checkpoint_name(batch.id)
        raw = await self._ckpt.get_checkpoint(name)
        resume = msgspec.json.decode(raw, type=_Resume) if raw else None
        view: gql.TaskView | None = None
        if resume is None:
            sent, rejected = await self._specs(batch)
            if not sent:
                return self._results(batch, [], rejected)
            started = await self._start(sent)
            resume = _Resume(task=started.id, rejected=rejected)
            await self._ckpt.put_checkpoint(name, msgspec.json.encode(resume).decode())
            self.tasks_started += 1
            log.info(
                "labelbox.task_started",
                batch=batch.id,
                task=started.id,
                rows=len(sent),
                rejected=len(rejected),
            )
            view = started if started.finished else None
        else:
            log.info("labelbox.task_resumed", batch=batch.id, task=resume.task)
        keys = [i.key for i in batch.items if i.key not in resume.rejected]
        try:
            rows = await self._outcome(batch, resume.task, keys, view)
        except PermanentError as e:  # the rows' fate is unknown, not refused: never dead-letter them
            raise TransientError(f"reading Labelbox task {resume.task}: {e}") from None
        if self._expiries is not None:
            await self._record_expiries(batch, rows)
        await self._ckpt.put_checkpoint(name, "")
        return self._results(batch, rows, resume.rejected)

    async def _record_expiries(self, batch: Batch, rows: list[RowOutcome]) -> None:
        """Where each accepted row's presigned URL points and when it expires (the refresher's list)."""
        assert self._expiries is not None
        taken = {r.key for r in rows if r.status in ("accepted", "duplicate")}
        found: list[UrlExpiry] = []
        for item in batch.items:
            if item.key in taken:
                url = _row_url(item.body)
                p = presigned(url) if url else None
                if p is not None:
                    found.append((item.key, p.location, p.region, p.expires))
        if found:
            await self._expiries.put_url_expiries(found)

    async def _outcome(
        self, batch: Batch, task_id: str, keys: list[str], view: gql.TaskView | None
    ) -> list[RowOutcome]:
        if view is None:
            try:
                async with asyncio.timeout(self.s.task_deadline):
                    view = await self.poller.wait(task_id)
            except TimeoutError:
                log.warning(
                    "labelbox.task_deadline", batch=batch.id, task=task_id, deadline=self.s.task_deadline
                )
        if view is None:
            return await self._by_global_key(keys, task_id)
        failed = await self._failed_rows(task_id)
        succeeded = [] if view.status == "COMPLETE" else await self._succeeded_keys(task_id)
        rows, strangers = outcomes(keys, view, failed, succeeded)
        if strangers:
            log.warning(
                "labelbox.unknown_failures", task=task_id, rows=len(strangers), first=strangers[0].message
            )
        log.info(
            "labelbox.task_finished", batch=batch.id, task=task_id, status=view.status, failed=len(failed)
        )
        return rows

    # -- building and starting a task -----------------------------------------------------------
    async def _specs(self, batch: Batch) -> tuple[list[tuple[str, bytes]], dict[str, str]]:
        sent: list[tuple[str, bytes]] = []
        rejected: dict[str, str] = {}
        refreshed = False
        id_type: IdType = "GKEY" if self.s.upsert else "AUTO"
        for item in batch.items:
            if item.kind == ANNOTATIONS:  # wiring routes sidecars elsewhere; never send one as a row
                rejected[item.key] = "annotations are not imported by the labelbox sink"
                continue
            row = item.body
            try:
                if needs_ontology(row):
                    row, refreshed = await self._with_metadata(row, refreshed)
                s = spec(row, self.s.dataset, id_type=id_type, key=item.key)
            except (MetadataError, ValueError) as e:
                rejected[item.key] = str(e)
                continue
            if not fits(s, self.s.chunk_bytes):
                rejected[item.key] = (
                    f"data row spec of {len(s)} bytes exceeds the {self.s.chunk_bytes}-byte chunk"
                )
                continue
            sent.append((item.key, s))
        return sent, rejected

    async def _with_metadata(self, row: bytes, refreshed: bool) -> tuple[bytes, bool]:
        """The row in wire form; the ontology is fetched once, and again (once per batch) on a miss."""
        if self._ontology is None:
            self._ontology = await self._fetch_ontology()
        try:
            return resolve_row(row, self._ontology), refreshed
        except MetadataMiss:
            if refreshed:
                raise
        self._ontology = await self._fetch_ontology()
        return resolve_row(row, self._ontology), True

    async def _fetch_ontology(self) -> Ontology:
        data = await self.client.query(gql.METADATA_ONTOLOGY, {}, OntologyData)
        self.ontology_fetches += 1
        return Ontology(data.customMetadataOntology)

    async def _start(self, sent: list[tuple[str, bytes]]) -> gql.TaskView:
        if len(sent) > TASK_ROWS:
            raise PermanentError(f"batch of {len(sent)} rows exceeds {TASK_ROWS} rows per Labelbox task")
        urls = [
            await self.client.upload(c.data, "json_import.json")
            for c in chunks(sent, limit=self.s.chunk_bytes)
        ]
        manifest_url = await self.client.upload(manifest(urls, len(sent)), "manifest.json")
        data = await self.client.query(gql.UPSERT_DATA_ROWS, {"manifestUri": manifest_url}, gql.UpsertData)
        return data.upsertDataRows

    # -- reading results ------------------------------------------------------------------------
    async def _failed_rows(self, task_id: str) -> list[gql.FailedRow]:
        out: list[gql.FailedRow] = []
        cursor: str | None = None
        while True:
            variables = {"taskId": task_id, "first": gql.PAGE_ROWS, "from": cursor}
            page = (await self.client.query(gql.FAILED_ROWS, variables, gql.FailedData)).failedDataRowImports
            out.extend(page.results)
            if not page.after or not page.results:
                return out
            cursor = page.after

    async def _succeeded_keys(self, task_id: str) -> list[str]:
        out: list[str] = []
        cursor: str | None = None
        while True:
            variables = {"taskId": task_id, "first": gql.PAGE_ROWS, "from": cursor}
            data = await self.client.query(gql.SUCCEEDED_ROWS, variables, gql.SucceededData)
            page = data.successesfulDataRowImports
            out.extend(n.globalKey for n in page.nodes if n.globalKey)
            if not page.after or not page.nodes:
                return out
            cursor = page.after

    async def _by_global_key(self, keys: list[str], task_id: str) -> list[RowOutcome]:
        """Past the deadline (or for a task we cannot read): which rows exist on Labelbox."""
        rows: list[RowOutcome] = []
        for i in range(0, len(keys), LOOKUP_KEYS):
            part = keys[i : i + LOOKUP_KEYS]
            job = await self.client.query(gql.ROWS_BY_KEY, {"globalKeys": part}, gql.RowsByKeyData)
            found = await self._lookup_result(job.dataRowsForGlobalKeys.jobId)
            present = {r.globalKey.casefold() for r in found.fetchedDataRows if r.globalKey}
            denied = {k.casefold() for k in found.accessDeniedGlobalKeys}
            for k in part:
                if k.casefold() in present:
                    rows.append(RowOutcome(k, "accepted"))
                elif k.casefold() in denied:
                    rows.append(RowOutcome(k, "rejected", "Labelbox denies access to this global key"))
                else:
                    reason = f"not on Labelbox after task {task_id} passed the deadline"
                    rows.append(RowOutcome(k, "retryable", reason))
        log.info("labelbox.looked_up_by_key", task=task_id, rows=len(keys))
        return rows

    async def _lookup_result(self, job_id: str) -> gql.RowsByKey:
        for _ in range(LOOKUP_READS):
            data = await self.client.query(gql.ROWS_BY_KEY_RESULT, {"jobId": job_id}, gql.RowsByKeyResultData)
            result = data.dataRowsForGlobalKeysResult
            if result.jobStatus == "COMPLETE" and result.data is not None:
                return result.data
            if result.jobStatus == "FAILED":
                raise TransientError(f"Labelbox global key lookup {job_id} failed")
            await self._sleep(self.poller.interval)
        raise TransientError(f"Labelbox global key lookup {job_id} did not finish")

    @staticmethod
    def _results(batch: Batch, rows: list[RowOutcome], rejected: dict[str, str]) -> list[ItemResult]:
        out = [ItemResult(key=r.key, status=r.status, reason=r.reason) for r in rows]
        out.extend(ItemResult(key=k, status="rejected", reason=why) for k, why in rejected.items())
        return out

    async def check(self) -> None:
        """An authenticated read naming the dataset; fails with Labelbox's own message."""
        data = await self.client.query(gql.DATASET, {"id": self.s.dataset}, gql.DatasetData)
        if data.dataset is None:
            raise PermanentError(f"Labelbox dataset {self.s.dataset!r} not found")
        log.info("labelbox.dataset", dataset=data.dataset.id, name=data.dataset.name)
        if self.project is not None:
            view = await self.project.view(fresh=True)
            log.info("labelbox.project", project=view.id, name=view.name, media=view.mediaType)
        if self.importer is not None and self.importer.stager is not None:
            await self.importer.stager.check()

    async def aclose(self) -> None:
        await self.poller.aclose()
