"""The local Labelbox server with one project: batches and annotation imports (shared/ref/labelbox.md
1.5, 2, A2.1-A2.3). Answers the reference marks unverified are this emulator's own and say so.

* ``project(where:{id})``: ``mediaType`` and ``ontology { normalized }`` (``RESOURCE_NOT_FOUND``
  for another id);
* ``queryAllDataRowsHaveBeenProcessed``: false for the first :attr:`unprocessed_checks` calls;
* ``createBatchV2``: rows by global key; a name that exists -> ``RESOURCE_CONFLICT``; unknown keys
  only -> ``MALFORMED_REQUEST``; rows already in a batch of the project are skipped, or listed in
  ``failedDataRowIds`` with :attr:`batched_rows_failed` (both unverified; all of them ->
  ``MALFORMED_REQUEST`` "No valid data rows to add to project", the SDK tests' text); rows of another
  media type or in :attr:`processing_failed` -> ``failedDataRowIds`` (emulator's choice, unverified);
* ``createEmptyBatch`` + ``addDataRowsToBatchAsync`` (a task read like the upsert tasks, applied
  on completion) and ``batches(where:{name})``;
* MAL / ground truth imports by file (multipart) or by URL (a file uploaded here, or any other
  http(s) ``fileUrl`` fetched with a GET as Labelbox does, e.g. a presigned URL of the test's moto
  S3; what it got is kept in :attr:`fetched`): a name that exists -> ``RESOURCE_CONFLICT``, or
  :attr:`duplicate_name_code` (invented: the real answer is unknown, labelbox.md A2.3/A2.7); the
  job is ``RUNNING`` until it has been read :attr:`import_polls` times, then ``FINISHED`` with a
  status file served on ``GET /status/<id>`` (a line fails when its uuid is in
  :attr:`line_failures`, its feature in :attr:`feature_failures`, or its data row is not in the
  project), or ``FAILED`` without one when :attr:`fail_jobs` is set;
* :attr:`hold_create`: an event the create waits for *after* the job exists (the test kills the
  daemon in between); :attr:`create_seen` is set when a create arrived.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tests.platforms.labelbox_server import LabelboxServer, Request, Task, _data, _error

_OPS = (
    "createModelAssistedLabelingPredictionImport",
    "createLabelImport",
    "modelAssistedLabelingPredictionImport",
    "labelImport",
    "queryAllDataRowsHaveBeenProcessed",
    "createBatchV2",
    "createEmptyBatch",
    "addDataRowsToBatchAsync",
    "batches",
    "project",
)
_OP = [(op, re.compile(r"\b" + op + r"\s*\(")) for op in _OPS]  # the first that matches names it


@dataclass
class Job:
    id: str
    name: str
    kind: str
    lines: list[dict[str, Any]]
    state: str = "RUNNING"
    polls: int = 0
    status_url: str | None = None


@dataclass
class ProjectServer(LabelboxServer):
    project_id: str = "proj-1"
    media_type: str = "IMAGE"
    normalized: dict[str, Any] | None = field(default_factory=lambda: {"tools": [], "classifications": []})
    unprocessed_checks: int = 0
    processing_failed: set[str] = field(default_factory=set)
    import_polls: int = 1
    line_failures: dict[str, str] = field(default_factory=dict)  # uuid -> message
    feature_failures: dict[str, str] = field(default_factory=dict)  # feature name -> message
    fail_jobs: bool = False
    # Labelbox's real answers to these two are not known (labelbox.md A2.2, A2.3, A2.7): the test
    # server can give either guess, and the daemon must take both
    duplicate_name_code: str = "RESOURCE_CONFLICT"  # the error code of a create whose name exists
    batched_rows_failed: bool = False  # rows already batched, mixed with new ones: in failedDataRowIds
    hold_create: asyncio.Event | None = None
    create_seen: asyncio.Event = field(default_factory=asyncio.Event)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> batch
    in_project: dict[str, str] = field(default_factory=dict)  # folded key -> batch name
    jobs: dict[str, Job] = field(default_factory=dict)  # name -> job
    job_creations: Counter[str] = field(default_factory=Counter)  # name -> create calls that made it
    status_files: dict[str, bytes] = field(default_factory=dict)
    fetched: dict[str, tuple[int, bytes]] = field(default_factory=dict)  # fileUrl -> (status, body)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._batch_tasks: dict[str, tuple[str, list[str]]] = {}  # task id -> (batch name, keys)

    def _routes(self, app: web.Application) -> None:
        app.router.add_get("/status/{id}", self._status_file)

    async def _status_file(self, request: web.Request) -> web.Response:
        body = self.status_files.get(request.match_info["id"])
        self.requests.append(Request("statusFile", {"id": request.match_info["id"]}, "200"))
        return web.Response(status=404) if body is None else web.Response(body=body)

    def _root(self, query: str) -> str:
        return next((op for op, pattern in _OP if pattern.search(query)), None) or super()._root(query)

    def imported_lines(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [ln for j in self.jobs.values() if kind in (None, j.kind) for ln in j.lines]

    async def _answer(
        self, op: str, query: str, variables: dict[str, Any], file: bytes | None
    ) -> web.Response:
        if op in ("createModelAssistedLabelingPredictionImport", "createLabelImport"):
            return await self._create_import(op, variables, file)
        if op in ("modelAssistedLabelingPredictionImport", "labelImport"):
            return self._read_import(op, variables)
        if op == "project" and variables.get("projectId") != self.project_id:
            return _error(200, "RESOURCE_NOT_FOUND", f"Project {variables.get('projectId')} not found")
        if op == "project":
            return _data(
                {
                    "project": {
                        "id": self.project_id,
                        "name": "test project",
                        "mediaType": self.media_type,
                        "ontology": {"normalized": self.normalized},
                    }
                }
            )
        if op == "queryAllDataRowsHaveBeenProcessed":
            done = self.unprocessed_checks <= 0
            self.unprocessed_checks -= 1
            return _data({op: {"allDataRowsHaveBeenProcessed": done}})
        if op in ("createBatchV2", "createEmptyBatch", "addDataRowsToBatchAsync", "batches"):
            return self._batch_op(op, variables)
        return await super()._answer(op, query, variables, file)

    # -- batches --------------------------------------------------------------------------------
    def _batch_op(self, op: str, variables: dict[str, Any]) -> web.Response:
        if op == "batches":
            found = self.batches.get(variables.get("name", ""))
            return _data({"project": {"batches": {"nodes": [self._batch_view(found)] if found else []}}})
        if op == "addDataRowsToBatchAsync":
            inp = variables["input"]
            batch = next((b for b in self.batches.values() if b["id"] == inp["batchId"]), None)
            if batch is None:
                return _error(200, "RESOURCE_NOT_FOUND", f"Batch {inp['batchId']} not found")
            task = Task(id=f"task-{next(self._ids)}", specs=[])
            self.tasks[task.id] = task
            self._batch_tasks[task.id] = (batch["name"], inp["globalKeys"])
            return _data({"project": {op: {"taskId": task.id}}})
        inp = variables.get("batchInput") or variables["input"]
        name = inp["name"]
        if name in self.batches:
            return _error(200, "RESOURCE_CONFLICT", f"Batch with name {name} already exists in this project")
        if op == "createEmptyBatch":
            self.batches[name] = self._new_batch(name, inp)
            return _data({"project": {op: {"id": self.batches[name]["id"]}}})
        keys = inp["globalKeys"]
        unknown = [k for k in keys if k.casefold() not in self.rows]
        if len(unknown) == len(keys):
            return _error(
                200,
                "MALFORMED_REQUEST",
                f"Data rows with the following global keys do not exist: {', '.join(unknown)}.",
            )
        fresh = [k for k in keys if k.casefold() in self.rows and k.casefold() not in self.in_project]
        if not fresh:
            return _error(200, "MALFORMED_REQUEST", "No valid data rows to add to project")
        batch = self.batches[name] = self._new_batch(name, inp)
        failed = self._add(batch, fresh)
        if self.batched_rows_failed:  # the other answer Labelbox may give (unverified)
            failed += [f"dr-{k.casefold()}" for k in keys if k not in fresh and k.casefold() in self.rows]
        return _data({"project": {op: {"batch": self._batch_view(batch), "failedDataRowIds": failed}}})

    def _new_batch(self, name: str, inp: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": f"batch-{next(self._ids)}",
            "name": name,
            "size": 0,
            "consensus": inp.get("consensusSettings"),
            "priority": inp.get("priority"),
            "keys": [],
        }

    def _add(self, batch: dict[str, Any], keys: list[str]) -> list[str]:
        failed: list[str] = []
        for k in keys:
            folded = k.casefold()
            row = self.rows.get(folded)
            media = (row or {}).get("media_type")
            if row is None or k in self.processing_failed or (media and media != self.media_type):
                failed.append(f"dr-{folded}")
            elif folded not in self.in_project:
                self.in_project[folded] = batch["name"]
                batch["keys"].append(k)
                batch["size"] += 1
        return failed

    def _batch_view(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": batch["id"],
            "name": batch["name"],
            "size": batch["size"],
            "consensusSettingsJson": json.dumps(batch["consensus"]),
            "createdAt": "2026-01-01T00:00:00.000Z",
            "updatedAt": "2026-01-01T00:00:00.000Z",
        }

    def _finish(self, task: Task) -> None:
        if task.id not in self._batch_tasks:
            super()._finish(task)
            return
        name, keys = self._batch_tasks[task.id]
        self._add(self.batches[name], keys)
        task.status = "COMPLETE"

    # -- imports ----------------------------------------------------------------------------------
    async def _create_import(self, op: str, variables: dict[str, Any], file: bytes | None) -> web.Response:
        name = variables["name"]
        if variables.get("projectId") != self.project_id:
            return _error(200, "RESOURCE_NOT_FOUND", "Project not found")
        if name in self.jobs:
            message = f"An import named {name} already exists in this project"
            return _error(200, self.duplicate_name_code, message)
        if file is None:
            url = variables.get("fileUrl", "")
            file = self.files.get(url)
            if file is None and url.startswith(("http://", "https://")):
                file = await self._fetch(url)
            if file is None:  # the wording, and that it quotes the URL, are the emulator's
                return _error(200, "MALFORMED_REQUEST", f"Failed to access URL {url}")
        elif variables.get("contentLength") != len(file):
            return _error(200, "INTERNAL_SERVER_ERROR", "content length mismatch", status=400)
        kind = "mal" if op.startswith("createModel") else "ground_truth"
        lines = [json.loads(ln) for ln in file.splitlines() if ln.strip()]
        job = self.jobs[name] = Job(id=f"import-{next(self._ids)}", name=name, kind=kind, lines=lines)
        self.job_creations[name] += 1
        self.create_seen.set()
        if self.hold_create is not None:
            await self.hold_create.wait()
        return _data({op: self._job_view(job)})

    async def _fetch(self, url: str) -> bytes | None:
        """GET a fileUrl (no HEAD first: a URL presigned for GET answers HEAD 403 on S3)."""
        try:
            async with aiohttp.ClientSession() as session, session.get(url) as resp:
                body = await resp.read()
        except aiohttp.ClientError:
            self.fetched[url] = (0, b"")
            return None
        self.fetched[url] = (resp.status, body)
        return body if resp.status == 200 else None

    def _read_import(self, op: str, variables: dict[str, Any]) -> web.Response:
        job = self.jobs.get(variables.get("name", ""))
        if job is None or variables.get("projectId") != self.project_id:
            return _error(200, "RESOURCE_NOT_FOUND", f"No import named {variables.get('name')}")
        job.polls += 1
        if job.state == "RUNNING" and job.polls >= self.import_polls:
            self._finish_job(job)
        return _data({op: self._job_view(job)})

    def _finish_job(self, job: Job) -> None:
        if self.fail_jobs:
            job.state = "FAILED"
            return
        out = []
        for ln in job.lines:
            row = ln.get("dataRow", {}).get("globalKey", "")
            feature = ln.get("name", "")
            why = self.line_failures.get(ln.get("uuid", "")) or self.feature_failures.get(feature)
            if why is None and row.casefold() not in self.in_project:
                why = "Data row is not in a batch of this project (emulator wording)"
            status = {"uuid": ln.get("uuid"), "dataRow": ln.get("dataRow"), "status": "SUCCESS"}
            if why is not None:
                status |= {"status": "FAILURE", "errors": [{"name": "ValidationError", "message": why}]}
            out.append(json.dumps(status))
        self.status_files[job.id] = "\n".join(out).encode()
        job.status_url = f"{self.url.rsplit('/', 1)[0]}/status/{job.id}"
        job.state = "FINISHED"

    def _job_view(self, job: Job) -> dict[str, Any]:
        return {
            "id": job.id,
            "name": job.name,
            "state": job.state,
            "progress": "100%" if job.state != "RUNNING" else "0%",
            "statusFileUrl": job.status_url,
            "errorFileUrl": None,
            "inputFileUrl": None,
        }
