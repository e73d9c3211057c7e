"""Annotation items into the project as MAL or ground-truth imports, exactly once
(shared/ref/labelbox.md 2, A2.3).

:meth:`Importer.deliver` answers one result per annotation item (kind ``ANNOTATIONS``: one
sidecar's NDJSON lines for one data row):

1. every data row the lines name must be in the project (ledger checkpoint); rows that are not
   yet are placed now (:class:`ProjectRows`); a row that cannot be placed refuses the annotation
   naming the row's reason;
2. items are grouped into jobs of <= ``rows_per_file`` data rows (issue #1021), several in flight;
3. a job's name is a pure function of its NDJSON; the name is recorded in the ledger (checkpoint
   ``labelbox.import:<name>``, an ``ImportRecord``: created, running, then finished or failed
   with its lines by outcome, what the offline ``status`` counts) *before* the create call. A
   recorded name is first looked up by (project, name): after a crash or an ambiguous failure
   the job is found, not created again; a refused create is followed by a read of the name and a
   job found there is that job (Labelbox's answer to a name that exists is unverified: the test
   server's ``RESOURCE_CONFLICT`` is a guess, and any other refusal is read the same way);
4. the NDJSON goes inline (multipart, true ``contentLength``) up to ``inline_bytes``; above it
   by ``fileUrl``: with ``[target] annotation_staging`` a presigned GET of an object we wrote
   (:mod:`daemon.sinks.labelbox.staging`), otherwise the URL of a file uploaded with ``uploadFile``;
5. the job is read every ``interval`` s until ``FINISHED``/``FAILED`` (bounded by ``deadline``,
   then the batch is retried and resumes by name); the status file's ``FAILURE`` lines refuse
   their item with the object key, the feature, the line's uuid and Labelbox's message; a
   ``FAILED`` job without a status file refuses all its items with the job id.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

import msgspec
import structlog

from daemon.sinks.base import BatchItem, ItemResult, PermanentError, TransientError
from daemon.sinks.labelbox.client import GraphqlRefusal, LabelboxClient
from daemon.sinks.labelbox.project import ProjectRows
from daemon.sinks.labelbox.staging import Stager
from workers.platforms.labelbox import imports as imp
from workers.platforms.labelbox.imports import ImportJob, ImportKind, SentLine

log = structlog.get_logger()

STATUS_FILE_BYTES = 256 * 1024 * 1024
LISTED = 3  # failures quoted in one dead letter
_Answer = dict[str, ImportJob | None]


class ImportSettings(msgspec.Struct, frozen=True, kw_only=True):
    kind: ImportKind = "mal"
    rows_per_file: int = 500
    inline_bytes: int = 8 * 1024 * 1024
    interval: float = 10.0
    deadline: float = 3600.0


class _Job(msgspec.Struct):
    items: list[BatchItem]
    ndjson: bytes
    uuids: dict[str, SentLine]

    @property
    def name(self) -> str:
        return imp.import_name(self.ndjson)


class Importer:
    def __init__(
        self,
        client: LabelboxClient,
        project: ProjectRows,
        settings: ImportSettings,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        stager: Stager | None = None,
    ) -> None:
        self.client = client
        self.project = project
        self.s = settings
        self.stager = stager  # large files: an object we wrote, presigned (else uploadFile)
        self._sleep = sleep
        self.stats = client.endpoint.stats  # imports by state, import_lines by outcome (metrics)

    async def deliver(self, items: list[BatchItem]) -> list[ItemResult]:
        results: list[ItemResult] = []
        indexed: list[tuple[BatchItem, dict[str, SentLine], list[str]]] = []
        for item in sorted(items, key=lambda i: i.key):
            try:
                uuids, rows = imp.index_lines(item.key, item.body)
            except (msgspec.DecodeError, msgspec.ValidationError) as e:
                results.append(ItemResult(key=item.key, status="rejected", reason=f"unreadable NDJSON: {e}"))
                continue
            indexed.append((item, uuids, rows))
        wanted = [(row, "") for _, _, rows in indexed for row in rows]
        refused = {k: why for k, why in (await self.project.place(wanted)).items() if why is not None}
        jobs: list[_Job] = []
        current: list[tuple[BatchItem, dict[str, SentLine], list[str]]] = []
        rows_in: set[str] = set()
        for entry in indexed:
            item, _, rows = entry
            bad = [r for r in rows if r in refused]
            if bad:
                why = f"data row {bad[0]} is not in the project: {refused[bad[0]]}"
                results.append(ItemResult(key=item.key, status="rejected", reason=why))
                continue
            if current and len(rows_in | set(rows)) > self.s.rows_per_file:
                jobs.append(self._job(current))
                current, rows_in = [], set()
            current.append(entry)
            rows_in |= set(rows)
        if current:
            jobs.append(self._job(current))
        for outcome in await asyncio.gather(*(self._run(j) for j in jobs)):
            results.extend(outcome)
        return results

    @staticmethod
    def _job(entries: list[tuple[BatchItem, dict[str, SentLine], list[str]]]) -> _Job:
        uuids: dict[str, SentLine] = {}
        for _, u, _ in entries:
            uuids.update(u)
        return _Job([e[0] for e in entries], imp.join_ndjson(e[0].body for e in entries), uuids)

    async def _record(self, name: str, state: imp.RecordState, job: str = "", **lines: int) -> None:
        rec = imp.ImportRecord(state=state, job=job, **lines)
        await self.project.ckpt.put_checkpoint(imp.RECORD_PREFIX + name, imp.record_value(rec))

    async def _run(self, job: _Job) -> list[ItemResult]:
        name = job.name
        view: ImportJob | None = None
        if await self.project.ckpt.get_checkpoint(imp.RECORD_PREFIX + name) is not None:
            view = await self._read(name)  # recorded before: the job may exist (crash, lost answer)
            if view is not None:
                log.info("labelbox.import_found", name=name, job=view.id, state=view.state)
        if view is None:
            await self._record(name, "created")
            view = await self._create(job, name)
            if not view.finished:
                await self._record(name, "running", view.id)
        loop = asyncio.get_running_loop()
        end = loop.time() + self.s.deadline
        while not view.finished:
            if loop.time() >= end:
                raise TransientError(f"Labelbox import {name} ({view.id}) still {view.state}")
            self.client.endpoint.stats.platform_waits += 1
            await self._sleep(self.s.interval)
            read = await self._read(name)
            if read is None:
                raise TransientError(f"Labelbox import {name} ({view.id}) cannot be read by name")
            view = read
        results, imported, failed = await self._outcome(job, view)
        ended: imp.RecordState = "failed" if view.state == "FAILED" else "finished"
        await self._record(name, ended, view.id, imported=imported, failed=failed)
        self.stats.imports[view.state.lower()] += 1
        return results

    async def _create(self, job: _Job, name: str) -> ImportJob:
        project = self.project.s.project
        kind = self.s.kind
        url = ""
        try:
            if len(job.ndjson) <= self.s.inline_bytes:
                ctype, body = imp.file_body(kind, project, name, job.ndjson)
                data = await self.client.multipart(ctype, body, _Answer)
            else:
                if self.stager is not None:
                    url = await self.stager.stage(name, job.ndjson)
                else:
                    url = await self.client.upload(job.ndjson, f"{name}.ndjson")
                variables = imp.url_variables(project, name, url)
                data = await self.client.query(imp.create_by_url(kind), variables, _Answer)
        except (TransientError, PermanentError) as e:
            if url and url in str(e):  # an answer quoting the signed URL: never in a log or dead letter
                e.args = (str(e).replace(url, imp.without_query(url) + "?<signed>"),)
            if not isinstance(e, GraphqlRefusal):
                raise
            # "a name that exists is that job": how Labelbox refuses a name that exists is not known
            # (RESOURCE_CONFLICT is the test server's guess, labelbox.md A2.7), so any refusal is
            # followed by a read of the name; only a job that is not there lets the refusal stand
            found = await self._read(name)
            if found is not None:
                log.info("labelbox.import_exists", name=name, job=found.id, code=e.code, state=found.state)
                return found
            if e.code == "RESOURCE_CONFLICT":
                raise TransientError(f"Labelbox import {name}: said to exist, not readable") from None
            raise
        created = imp.job_of(kind, data, created=True)
        if created is None:
            raise TransientError(f"Labelbox import {name}: the create answer holds no job")
        self.stats.imports["started"] += 1
        log.info("labelbox.import_started", name=name, job=created.id, kind=kind, items=len(job.items))
        return created

    async def _read(self, name: str) -> ImportJob | None:
        variables = {"projectId": self.project.s.project, "name": name}
        try:
            data = await self.client.query(imp.read_job(self.s.kind), variables, _Answer)
        except GraphqlRefusal as e:
            if e.code == "RESOURCE_NOT_FOUND":
                return None
            raise
        return imp.job_of(self.s.kind, data, created=False)

    async def _outcome(self, job: _Job, view: ImportJob) -> tuple[list[ItemResult], int, int]:
        """Results per item, and the job's lines imported and failed."""
        lines_of = Counter(line.item for line in job.uuids.values())
        if view.state == "FAILED" and not view.statusFileUrl:
            why = f"Labelbox import job {view.id} ({view.name}) FAILED without a status file"
            self.stats.import_lines["failed"] += lines_of.total()
            log.warning("labelbox.import_failed", job=view.id, name=view.name, items=len(job.items))
            refused = [ItemResult(key=i.key, status="rejected", reason=why) for i in job.items]
            return refused, 0, lines_of.total()
        failures: dict[str, list[str]] = {}
        if view.statusFileUrl:
            body = await self.client.fetch_file(view.statusFileUrl, STATUS_FILE_BYTES)
            lines, bad = imp.read_status_file(body)
            if bad:
                log.warning("labelbox.status_file_unreadable_lines", job=view.id, lines=bad)
            for line in lines:
                sent = job.uuids.get(line.uuid or "")
                if line.status != "FAILURE":
                    continue
                owner = sent.item if sent is not None else job.items[0].key
                where = f"{sent.row} feature {sent.feature!r}" if sent is not None else line.row
                failures.setdefault(owner, []).append(f"{where} uuid {line.uuid}: {line.reason()}")
        out: list[ItemResult] = []
        counts: Counter[str] = Counter()
        for item in job.items:
            failed = failures.get(item.key, [])
            counts.update({"failed": len(failed), "imported": max(0, lines_of[item.key] - len(failed))})
            if not failed:
                out.append(ItemResult(key=item.key, status="accepted"))
                continue
            more = f" (+{len(failed) - LISTED} more)" if len(failed) > LISTED else ""
            why = f"Labelbox import {view.id} refused {len(failed)} line(s): " + "; ".join(failed[:LISTED])
            out.append(ItemResult(key=item.key, status="rejected", reason=why + more))
        self.stats.import_lines.update(+counts)  # outcomes still at zero left out
        log.info("labelbox.import_finished", job=view.id, state=view.state, refused=len(failures))
        return out, counts["imported"], counts["failed"]
