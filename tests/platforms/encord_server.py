"""A local Encord v2 API on 127.0.0.1, written from ref/encord.md (sections 1.2, 1.3, 1.5, 3.3).

It speaks what the sink needs, the way the notes describe Encord:

* every request must carry a valid ``encord-sig`` ed25519 message signature (checked here
  independently of the daemon's signer: parse ``Signature-Input``, re-digest the body, rebuild
  the four-line base, verify with a known public key); otherwise 401 with an error body;
* ``GET /v2/public/cloud-integrations`` -> ``{"result": [{"integrationUuid", "title"}]}``;
* ``GET /v2/public/storage/folders/{folder}`` -> the folder, or 404;
* ``POST /v2/public/storage/folders/{folder}/data-upload-jobs`` (``dataItems`` dialect, strict
  shape) -> the job UUID as a bare JSON string;
* ``GET .../data-upload-jobs/{job}?timeoutSeconds=N`` -> the job's state; a long poll while the
  job is held (``hold_jobs``) until :meth:`release` or the timeout.

A job registers each URL once per folder: a URL already there is skipped (``skipDuplicateUrls``),
a URL in ``unit_errors`` becomes a ``unitErrors`` entry. Faults are queued per route with
:meth:`fault` (status, optional ``Retry-After``, or ``drop`` = accept the job, then close the
connection without an answer). Every request is recorded (method, path with query, body, status).
The error body shape ``{"status": N, "message": "..."}`` is an assumption (the notes do not give it).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

PREFIX = "/v2/public"
_INPUT = re.compile(
    r'encord-sig=\("@method" "@request-target" "content-digest"\)'
    r';created=(\d+);keyid="([0-9a-f]{64})";alg="ed25519"'
)
_SIG = re.compile(r"encord-sig=:([A-Za-z0-9+/=]+):")
_META = {
    "videoMetadata": {"fps", "duration", "width", "height", "fileSize", "mimeType"},
    "imageMetadata": {"mimeType", "fileSize", "width", "height"},
    "audioMetadata": {"duration", "fileSize", "mimeType"},
}
_ITEM_KEYS = {"objectUrl", "title", "clientMetadata", *(_META)}
_GROUPS = ("videos", "images", "audio")


@dataclass
class Hit:
    method: str
    path: str
    body: bytes
    status: int = 0


@dataclass
class Fault:
    route: str  # "create", "poll", "folder", "integrations" or "any"
    status: int = 503
    retry_after: str | None = None
    drop: bool = False  # create only: make the job, then close the connection unanswered


@dataclass
class Job:
    id: str
    folder: str
    items: list[dict[str, Any]]
    skip_duplicates: bool
    state: dict[str, Any] | None = None  # set when processed


@dataclass
class EncordServer:
    keys: dict[str, Ed25519PublicKey]  # keyid (hex of the raw public key) -> key
    folder: str = "0a0a0a0a-0000-4000-8000-00000000f01d"
    integrations: list[dict[str, str]] = field(
        default_factory=lambda: [
            {"integrationUuid": "11111111-0000-4000-8000-000000000001", "title": "s3-prod"}
        ]
    )
    unit_errors: dict[str, str] = field(default_factory=dict)  # url -> Encord's message
    hold_jobs: bool = False
    skew_seconds: int = 300
    hits: list[Hit] = field(default_factory=list)
    registered: dict[str, list[str]] = field(default_factory=dict)  # url -> item uuids (one = once)
    jobs: dict[str, Job] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    clock: Any = None  # () -> unix seconds; time.time by default

    def __post_init__(self) -> None:
        self._released = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.created = asyncio.Event()  # set at each job creation (tests wait for state, not time)

    # -- control ------------------------------------------------------------------------------
    def fault(self, route: str, status: int = 503, *, retry_after: str | None = None, times: int = 1) -> None:
        self.faults.extend(Fault(route, status, retry_after) for _ in range(times))

    def drop_next_create(self) -> None:
        self.faults.append(Fault("create", 200, drop=True))

    def preregister(self, urls: list[str]) -> None:
        for u in urls:
            self.registered.setdefault(u, []).append(str(uuid.uuid4()))

    def release(self) -> None:
        self.hold_jobs = False
        for job in self.jobs.values():
            if job.state is None:
                self._process(job)
        self._released.set()

    def creates(self) -> list[Hit]:
        return [h for h in self.hits if h.method == "POST" and h.path.endswith("/data-upload-jobs")]

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- protocol -----------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        hit = Hit(request.method, request.raw_path, body)
        self.hits.append(hit)
        resp = await self._answer(request, body)
        hit.status = resp.status
        return resp

    async def _answer(self, request: web.Request, body: bytes) -> web.StreamResponse:
        problem = self._signature_problem(request, body)
        if problem is not None:
            return _error(401, f"Authentication failed: {problem}")
        path = request.path
        if not path.startswith(PREFIX + "/"):
            return _error(404, "Not found")
        parts = path[len(PREFIX) + 1 :].split("/")
        route = self._route(request.method, parts)
        if route is None:
            return _error(404, f"No route for {request.method} {path}")
        fault = self._take_fault(route)
        if fault is not None and not fault.drop:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return _error(fault.status, f"Injected fault {fault.status}", headers)
        if route == "integrations":
            return _json({"result": self._integrations(request.query)})
        if parts[2] != self.folder:
            return _error(404, f"Folder {parts[2]} not found")
        if route == "folder":
            return _json({"uuid": self.folder, "name": "ingest", "parent": None, "folderType": "regular"})
        if route == "create":
            resp = self._create(body)
            if fault is not None and fault.drop and resp.status == 200:
                assert request.transport is not None
                request.transport.close()  # the job exists; the answer never arrives
            return resp
        return await self._poll(parts[4], request.query.get("timeoutSeconds", "0"))

    @staticmethod
    def _route(method: str, parts: list[str]) -> str | None:
        if method == "GET" and parts == ["cloud-integrations"]:
            return "integrations"
        if len(parts) >= 3 and parts[:2] == ["storage", "folders"]:
            if method == "GET" and len(parts) == 3:
                return "folder"
            if method == "POST" and parts[3:] == ["data-upload-jobs"]:
                return "create"
            if method == "GET" and len(parts) == 5 and parts[3] == "data-upload-jobs":
                return "poll"
        return None

    def _take_fault(self, route: str) -> Fault | None:
        for i, f in enumerate(self.faults):
            if f.route in (route, "any"):
                return self.faults.pop(i)
        return None

    def _signature_problem(self, request: web.Request, body: bytes) -> str | None:
        given_input = request.headers.get("Signature-Input", "")
        m = _INPUT.fullmatch(given_input)
        s = _SIG.fullmatch(request.headers.get("Signature", ""))
        if m is None or s is None:
            return "missing or malformed signature headers"
        digest = "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"
        if request.headers.get("Content-Digest") != digest:
            return "content digest does not match the body"
        created, keyid = int(m.group(1)), m.group(2)
        now = self.clock() if self.clock is not None else time.time()
        if abs(now - created) > self.skew_seconds:
            return "signature created time out of range"
        key = self.keys.get(keyid)
        if key is None:
            return "unknown public key"
        params = given_input[len("encord-sig=") :]
        base = (
            f'"@method": {request.method}\n"@request-target": {request.raw_path}\n'
            f'"content-digest": {digest}\n"@signature-params": {params}'
        ).encode()
        try:
            key.verify(base64.b64decode(s.group(1)), base)
        except InvalidSignature:
            return "signature does not verify"
        return None

    def _integrations(self, query: Any) -> list[dict[str, str]]:
        out = self.integrations
        if titles := query.getall("filterIntegrationTitles", []):
            out = [i for i in out if i["title"] in titles]
        if uuids := query.getall("filterIntegrationUuids", []):
            out = [i for i in out if i["integrationUuid"] in uuids]
        return out

    def _create(self, body: bytes) -> web.Response:
        try:
            doc = msgspec.json.decode(body)
        except msgspec.DecodeError:
            return _error(400, "Request body is not JSON")
        problem = _shape_problem(doc, {i["integrationUuid"] for i in self.integrations})
        if problem is not None:
            return _error(422, problem)
        items = [item for g in _GROUPS for item in doc["dataItems"].get(g, [])]
        job = Job(str(uuid.uuid4()), self.folder, items, doc["dataItems"]["skipDuplicateUrls"])
        self.jobs[job.id] = job
        if not self.hold_jobs:
            self._process(job)
        self.created.set()
        return _json(job.id)

    def _process(self, job: Job) -> None:
        made, errors, skipped = [], [], 0
        for item in job.items:
            url = item["objectUrl"]
            if url in self.unit_errors:
                errors.append(
                    {"objectUrls": [url], "error": self.unit_errors[url], "subtaskUuid": str(uuid.uuid4())}
                )
            elif job.skip_duplicates and url in self.registered:
                skipped += 1
            else:
                item_uuid = str(uuid.uuid4())
                self.registered.setdefault(url, []).append(item_uuid)
                made.append({"itemUuid": item_uuid, "name": item.get("title") or url})
        job.state = {
            "status": "DONE",
            "itemsWithNames": made,
            "errors": [],
            "unitErrors": errors,
            "unitsPendingCount": 0,
            "unitsDoneCount": len(made) + skipped,
            "unitsErrorCount": len(errors),
            "unitsCancelledCount": 0,
        }

    async def _poll(self, job_id: str, timeout: str) -> web.Response:
        job = self.jobs.get(job_id)
        if job is None:
            return _error(404, f"Upload job {job_id} not found")
        if job.state is None:
            try:
                async with asyncio.timeout(min(float(timeout), 60.0)):
                    await self._released.wait()
            except TimeoutError:
                pass
        if job.state is None:
            return _json({"status": "PENDING", "unitsPendingCount": len(job.items)})
        return _json(job.state)


def _shape_problem(doc: Any, integrations: set[str]) -> str | None:
    if not isinstance(doc, dict) or set(doc) - {"dataItems", "integrationHash", "ignoreErrors", "fileName"}:
        return "unexpected top-level fields"
    if doc.get("integrationHash") not in integrations:
        return f"Integration {doc.get('integrationHash')!r} not found"
    items = doc.get("dataItems")
    if not isinstance(items, dict) or set(items) - {*_GROUPS, "skipDuplicateUrls", "upsertMetadata"}:
        return "dataItems: unexpected fields"
    for group in _GROUPS:
        for n, item in enumerate(items.get(group, [])):
            if not isinstance(item, dict) or "objectUrl" not in item or set(item) - _ITEM_KEYS:
                return (
                    f"dataItems.{group}[{n}]: objectUrl required, no other fields than {sorted(_ITEM_KEYS)}"
                )
            for name, required in _META.items():
                if name in item and not required <= set(item[name]):
                    return f"dataItems.{group}[{n}].{name}: missing {sorted(required - set(item[name]))}"
    return None


def _json(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=msgspec.json.encode(doc), status=status, headers=headers, content_type="application/json"
    )


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return _json({"status": status, "message": message}, status, headers)
