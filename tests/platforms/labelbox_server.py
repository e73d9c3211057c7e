"""A local Labelbox GraphQL endpoint on 127.0.0.1, written from shared/ref/labelbox.md (0-6).

What it speaks (one ``POST /graphql``, operations recognised by their root field):

* ``Authorization: Bearer <api_key>`` on every request; anything else is answered HTTP 401 with
  ``errors[0].extensions.code = AUTHENTICATION_ERROR`` (the code is the SDK's; the HTTP status
  Labelbox uses with it is not documented);
* ``uploadFile`` as a GraphQL multipart request (``operations`` / ``map`` / file part): checks that
  ``contentLength`` is the true length, stores the file, answers its URL;
* ``upsertDataRows(manifestUri)``: reads the manifest and its chunks (a missing one fails the
  task with "Failed to access URL: 404..."), creates a task ``IN_PROGRESS``;
* ``user { id }`` and ``user(where:{id}) { <alias>: createdTasks(where:{id}) }`` (aliases read in
  one request). A task completes on its own clock: after ``polls_to_complete`` reads of it, never
  while :attr:`hold` is set, or at once by :meth:`complete_all`. Completion applies the rows:
  ``AUTO`` with a key that exists -> "Duplicate global key: '<gk>'"; a key in ``row_failures`` ->
  that message; ``GKEY`` -> created or updated in place;
* ``failedDataRowImports`` / ``successesfulDataRowImports`` paged with the ``after`` cursor;
  ``customMetadataOntology``; ``dataset(where:{id})`` (``RESOURCE_NOT_FOUND`` when unknown);
  ``dataRowsForGlobalKeys`` + ``dataRowsForGlobalKeysResult``.

Faults, one per request from :attr:`plan` (request number, operation) -> name: ``429`` (JSON "You
have exceeded", no Retry-After), ``429:<s>`` (with Retry-After), ``exceeded`` (HTTP 200 with the
"You have exceeded" message), ``500`` ``502html`` ``520`` (bodies as a proxy sends them), ``reset``
(connection aborted before the operation), ``lost`` (operation done, then the connection aborted).

Every request is recorded (:attr:`requests`: operation, variables, answer) so tests count requests
and assert that each row was created exactly once (:attr:`creations`).
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TEST_KEY = "lb-secret-9f8e7d"  # tests grep every output for it
ROOT_FIELDS = (
    "uploadFile",
    "upsertDataRows",
    "createdTasks",
    "failedDataRowImports",
    "successesfulDataRowImports",
    "customMetadataOntology",
    "dataRowsForGlobalKeysResult",
    "dataRowsForGlobalKeys",
    "dataset",
    "user",
)
_ROOT = re.compile(r"\b(" + "|".join(ROOT_FIELDS) + r")\b\s*[({]")
_ALIAS = re.compile(r"(\w+): createdTasks\(where: \{id: \$(\w+)\}")
DEFAULT_ONTOLOGY = [
    {"id": "md-tag", "name": "tag", "kind": "CustomMetadataString", "reserved": True, "options": []},
    {
        "id": "md-split",
        "name": "split",
        "kind": "CustomMetadataEnum",
        "reserved": True,
        "options": [
            {"id": "md-split-train", "name": "train", "kind": "CustomMetadataEnumOption", "reserved": True},
            {"id": "md-split-test", "name": "test", "kind": "CustomMetadataEnumOption", "reserved": True},
        ],
    },
]


@dataclass
class Request:
    operation: str
    variables: dict[str, Any]
    answer: str  # HTTP status or the fault name


@dataclass
class Task:
    id: str
    specs: list[dict[str, Any]]
    status: str = "IN_PROGRESS"
    error: str | None = None
    polls: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)
    succeeded: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class LabelboxServer:
    api_key: str = TEST_KEY
    dataset_id: str = "ds-1"
    dataset_name: str = "ingestd test dataset"
    user_id: str = "user-1"
    ontology: list[dict[str, Any]] = field(default_factory=lambda: list(DEFAULT_ONTOLOGY))
    existing: dict[str, str] = field(default_factory=dict)  # global key -> row_data, before the run
    row_failures: dict[str, str] = field(default_factory=dict)  # global key -> the task's message
    polls_to_complete: int = 1
    hold: bool = False
    plan: Callable[[int, str], str | None] | None = None
    requests: list[Request] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # folded key -> payload
    creations: Counter[str] = field(default_factory=Counter)  # key -> rows created with it
    updates: Counter[str] = field(default_factory=Counter)  # key -> GKEY upserts applied
    url: str = ""

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        for key, row_data in self.existing.items():
            self.rows[key.casefold()] = {
                "global_key": key,
                "row_data": row_data,
                "dataset_id": self.dataset_id,
            }

    async def start(self) -> str:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_post("/graphql", self._graphql)
        self._routes(app)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/graphql"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _routes(self, app: web.Application) -> None:
        """More routes (subclasses)."""

    def _root(self, query: str) -> str:
        m = _ROOT.search(query)
        return m.group(1) if m else "?"

    def count(self, operation: str) -> int:
        return sum(1 for r in self.requests if r.operation == operation)

    def complete_all(self) -> None:
        self.hold = False
        for t in self.tasks.values():
            if t.status == "IN_PROGRESS":
                self._finish(t)

    # -- the endpoint ---------------------------------------------------------------------------
    async def _graphql(self, request: web.Request) -> web.StreamResponse:
        file: bytes | None = None
        if request.content_type.startswith("multipart/"):
            doc, file = await self._multipart(request)
        else:
            doc = json.loads(await request.read())
        query, variables = doc.get("query", ""), doc.get("variables") or {}
        op = self._root(query)
        if op == "user" and "createdTasks" in query:
            op = "createdTasks"
        fault = self.plan(len(self.requests), op) if self.plan is not None else None
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            self.requests.append(Request(op, variables, "401"))
            return _error(401, "AUTHENTICATION_ERROR", "Invalid API key: the key is expired or revoked")
        self.requests.append(Request(op, variables, fault or "200"))
        if fault is not None and fault != "lost":
            return _fault(request, fault)
        answer = await self._answer(op, query, variables, file)
        if fault == "lost":
            assert request.transport is not None
            request.transport.abort()
        return answer

    async def _multipart(self, request: web.Request) -> tuple[dict[str, Any], bytes]:
        parts: dict[str, bytes] = {}
        reader = await request.multipart()
        async for part in reader:
            parts[part.name or ""] = await part.read()  # type: ignore[union-attr]
        doc = json.loads(parts["operations"])
        [(name, where)] = json.loads(parts["map"]).items()
        assert where == ["variables.file"]
        return doc, parts[name]

    async def _answer(
        self, op: str, query: str, variables: dict[str, Any], file: bytes | None
    ) -> web.Response:
        return self._operation(op, query, variables, file)

    def _operation(self, op: str, query: str, variables: dict[str, Any], file: bytes | None) -> web.Response:
        if op == "uploadFile":
            assert file is not None
            if variables.get("contentLength") != len(file):
                return _error(200, "INTERNAL_SERVER_ERROR", "content length mismatch", status=400)
            url = f"{self.url.rsplit('/', 1)[0]}/files/{next(self._ids)}"
            self.files[url] = file
            return _data({"uploadFile": {"url": url, "filename": "json_import.json"}})
        if op == "upsertDataRows":
            task = self._create_task(variables["manifestUri"])
            return _data({"upsertDataRows": self._view(task)})
        if op == "user":
            return _data({"user": {"id": self.user_id}})
        if op == "createdTasks":
            if variables.get("userId") != self.user_id:
                return _error(200, "AUTHORIZATION_ERROR", "tasks are readable only by their creator")
            return _data({"user": self._read_tasks(query, variables)})
        if op == "failedDataRowImports":
            task = self.tasks[variables["taskId"]]
            page, after = _page(task.failed, variables)
            return _data(
                {"failedDataRowImports": {"results": page, "after": after, "total": len(task.failed)}}
            )
        if op == "successesfulDataRowImports":
            task = self.tasks[variables["taskId"]]
            page, after = _page(task.succeeded, variables)
            total = len(task.succeeded)
            return _data({"successesfulDataRowImports": {"nodes": page, "after": after, "total": total}})
        if op == "customMetadataOntology":
            return _data({"customMetadataOntology": self.ontology})
        if op == "dataset":
            if variables.get("id") != self.dataset_id:
                return _error(200, "RESOURCE_NOT_FOUND", f"Dataset {variables.get('id')} not found")
            return _data({"dataset": {"id": self.dataset_id, "name": self.dataset_name}})
        if op == "dataRowsForGlobalKeys":
            job = f"gk-job-{next(self._ids)}"
            self.files[job] = json.dumps(variables["globalKeys"]).encode()
            return _data({"dataRowsForGlobalKeys": {"jobId": job}})
        if op == "dataRowsForGlobalKeysResult":
            return _data({"dataRowsForGlobalKeysResult": self._lookup(variables["jobId"])})
        return _error(400, "GRAPHQL_PARSE_FAILED", f"unknown operation in {query[:60]!r}")

    def _create_task(self, manifest_uri: str) -> Task:
        task = Task(id=f"task-{next(self._ids)}", specs=[])
        self.tasks[task.id] = task
        manifest = json.loads(self.files.get(manifest_uri, b"{}") or b"{}")
        for uri in manifest.get("chunk_uris", []):
            chunk = self.files.get(uri)
            if chunk is None:
                task.status, task.error = (
                    "FAILED",
                    "Failed to access URL: 404:The specified resource does not exist.",
                )
                return task
            task.specs.extend(json.loads(chunk))
        if manifest.get("item_count") != len(task.specs):
            task.status, task.error = "FAILED", "item_count does not match the chunks"
        return task

    def _read_tasks(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for alias, var in _ALIAS.findall(query):
            task = self.tasks.get(variables.get(var, ""))
            if task is None:
                out[alias] = []
                continue
            task.polls += 1
            if task.status == "IN_PROGRESS" and not self.hold and task.polls >= self.polls_to_complete:
                self._finish(task)
            out[alias] = [self._view(task)]
        return out

    def _finish(self, task: Task) -> None:
        for s in task.specs:
            p = s["payload"]
            key = p.get("global_key", "")
            spec = {"globalKey": key, "externalId": p.get("external_id"), "rowData": p.get("row_data")}
            folded = key.casefold()
            if key in self.row_failures:
                task.failed.append({"message": self.row_failures[key], "spec": spec})
            elif s["id"]["type"] == "GKEY":
                self.rows[folded] = {**self.rows.get(folded, {}), **p}
                self.updates[key] += 1
                task.succeeded.append({"id": f"dr-{folded}", "globalKey": key})
            elif folded in self.rows:
                task.failed.append({"message": f"Duplicate global key: '{key}'", "spec": spec})
            else:
                self.rows[folded] = p
                self.creations[key] += 1
                task.succeeded.append({"id": f"dr-{folded}", "globalKey": key})
        task.status = "COMPLETE"

    def _view(self, task: Task) -> dict[str, Any]:
        errors = [{"message": task.error}] if task.error else [f["message"] for f in task.failed] or None
        return {
            "id": task.id,
            "status": task.status,
            "completionPercentage": 100.0 if task.status != "IN_PROGRESS" else 0.0,
            "errors": errors,
            "result": None,
            "type": "adv-upsert-data-rows",
        }

    def _lookup(self, job: str) -> dict[str, Any]:
        keys = json.loads(self.files[job])
        found = [k for k in keys if k.casefold() in self.rows]
        return {
            "jobStatus": "COMPLETE",
            "data": {
                "fetchedDataRows": [{"id": f"dr-{k.casefold()}", "globalKey": k} for k in found],
                "notFoundGlobalKeys": [k for k in keys if k not in found],
                "accessDeniedGlobalKeys": [],
            },
        }


def _page(items: list[dict[str, Any]], variables: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    start = int(variables.get("from") or 0)
    end = start + int(variables.get("first") or 5000)
    return items[start:end], (str(end) if end < len(items) else None)


def _data(data: dict[str, Any]) -> web.Response:
    return web.json_response({"data": data})


def _error(http: int, code: str, message: str, *, status: int | None = None) -> web.Response:
    ext: dict[str, Any] = {"code": code}
    if status is not None:
        ext["exception"] = {"status": status}
    return web.json_response({"data": None, "errors": [{"message": message, "extensions": ext}]}, status=http)


def _fault(request: web.Request, fault: str) -> web.Response:
    name, _, arg = fault.partition(":")
    if name == "429":
        headers = {"Retry-After": arg} if arg else {}
        return web.json_response({"message": "You have exceeded the API limit"}, status=429, headers=headers)
    if name == "exceeded":
        return web.json_response({"message": "You have exceeded 1500 requests per minute"})
    if name == "500":
        return _error(500, "INTERNAL_SERVER_ERROR", "Internal server error")
    if name == "502html":
        return web.Response(
            status=502, body=b"<html><body>502 Bad Gateway</body></html>", content_type="text/html"
        )
    if name == "520":
        return web.Response(status=520, text="upstream connect error or disconnect/reset before headers")
    assert name == "reset", f"unknown fault {fault!r}"
    assert request.transport is not None
    request.transport.abort()
    return web.Response(status=599)
