"""Annotation imports into a project, sans-I/O (shared/ref/labelbox.md section 2 and addendum A2.3).

* MAL (``createModelAssistedLabelingPredictionImport``) or ground truth (``createLabelImport``),
  the NDJSON inline as a GraphQL multipart request (``map`` = ``<projectId>__<name>.ndjson``, the
  file part ``application/x-ndjson``, the **true** ``contentLength``) or by ``fileUrl``;
* the job read by ``(projectId, name)`` (the only way to read a job; ``RESOURCE_NOT_FOUND`` when
  no job has that name);
* the import name: ``ingestd-<32 hex>``, a pure function of the job's lines (SHA-256 of the
  NDJSON bytes), so a job re-sent after a crash has the name of the first attempt and is looked
  up instead of created again;
* the status file: one JSON line per annotation ``{uuid, dataRow, status, errors?}``; blank or
  undecodable lines are reported, never fatal (the SDK's parser breaks on a blank line).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any, Literal

import msgspec

ImportKind = Literal["mal", "ground_truth"]
NAME_PREFIX = "ingestd-"
STATES = ("RUNNING", "FINISHED", "FAILED")

JOB_FIELDS = "id name state progress statusFileUrl errorFileUrl inputFileUrl"
_ROOT: dict[ImportKind, tuple[str, str, str]] = {  # create field, read field, document prefix
    "mal": ("createModelAssistedLabelingPredictionImport", "modelAssistedLabelingPredictionImport", "Mal"),
    "ground_truth": ("createLabelImport", "labelImport", "Label"),
}


def import_name(ndjson: bytes) -> str:
    return NAME_PREFIX + hashlib.sha256(ndjson).hexdigest()[:32]


def create_by_file(kind: ImportKind) -> str:
    create, _, doc = _ROOT[kind]
    return (
        f"mutation Ingestd{doc}ImportByFile($projectId: ID!, $name: String!, $file: Upload!, "
        f"$contentLength: Int!) {{ {create}(data: {{ projectId: $projectId name: $name "
        f"filePayload: {{ file: $file, contentLength: $contentLength }} }}) {{ {JOB_FIELDS} }} }}"
    )


def create_by_url(kind: ImportKind) -> str:
    create, _, doc = _ROOT[kind]
    return (
        f"mutation Ingestd{doc}ImportByUrl($projectId: ID!, $name: String!, $fileUrl: String!) "
        f"{{ {create}(data: {{ projectId: $projectId name: $name fileUrl: $fileUrl }}) {{ {JOB_FIELDS} }} }}"
    )


def read_job(kind: ImportKind) -> str:
    _, read, doc = _ROOT[kind]
    return (
        f"query Ingestd{doc}Import($projectId: ID!, $name: String!) "
        f"{{ {read}(where: {{projectId: $projectId, name: $name}}) {{ {JOB_FIELDS} }} }}"
    )


_encode = msgspec.json.Encoder().encode


def file_body(kind: ImportKind, project: str, name: str, ndjson: bytes) -> tuple[str, bytes]:
    """``(content type, body)`` of a create-by-file request, laid out as the SDK sends it."""
    part = f"{project}__{name}.ndjson"
    operations = _encode(
        {
            "query": create_by_file(kind),
            "variables": {"file": None, "contentLength": len(ndjson), "projectId": project, "name": name},
        }
    )
    boundary = "ingestd-" + hashlib.sha256(ndjson).hexdigest()[:40]
    sep = b"--" + boundary.encode()
    body = b"".join(
        (
            sep,
            b'\r\nContent-Disposition: form-data; name="operations"\r\n\r\n',
            operations,
            b"\r\n",
            sep,
            b'\r\nContent-Disposition: form-data; name="map"\r\n\r\n',
            _encode({part: ["variables.file"]}),
            b"\r\n",
            sep,
            f'\r\nContent-Disposition: form-data; name="{part}"; filename="{part}"\r\n'.encode(),
            b"Content-Type: application/x-ndjson\r\n\r\n",
            ndjson,
            b"\r\n",
            sep,
            b"--\r\n",
        )
    )
    return f"multipart/form-data; boundary={boundary}", body


def url_variables(project: str, name: str, url: str) -> dict[str, Any]:
    return {"projectId": project, "name": name, "fileUrl": url}


def staging_key(prefix: str, name: str) -> str:
    """The object an import's NDJSON is staged as: a function of the import name only, so a retry
    writes the same object."""
    return f"{prefix}{name}.ndjson"


def without_query(url: str) -> str:
    """``url`` without its query (a presigned URL's signature and token), for messages and logs."""
    return url.split("?", 1)[0]


# -- answers ------------------------------------------------------------------------------------


class ImportJob(msgspec.Struct):
    id: str
    name: str = ""
    state: str = "RUNNING"
    progress: str | None = None
    statusFileUrl: str | None = None
    errorFileUrl: str | None = None
    inputFileUrl: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("FINISHED", "FAILED")


def job_of(kind: ImportKind, data: dict[str, ImportJob | None], *, created: bool) -> ImportJob | None:
    """The job in a create (``created``) or read answer's data."""
    create, read, _ = _ROOT[kind]
    return data.get(create if created else read)


# -- the status file ------------------------------------------------------------------------------


class LineError(msgspec.Struct):
    name: str = ""
    message: str = ""


class _Row(msgspec.Struct):
    id: str | None = None
    globalKey: str | None = None


class StatusLine(msgspec.Struct):
    uuid: str | None = None
    status: str = ""
    dataRow: _Row | None = None
    errors: list[LineError] = msgspec.field(default_factory=list)

    @property
    def row(self) -> str:
        if self.dataRow is None:
            return ""
        return self.dataRow.globalKey or self.dataRow.id or ""

    def reason(self) -> str:
        return "; ".join(f"{e.name}: {e.message}" if e.name else e.message for e in self.errors) or "FAILURE"


_line = msgspec.json.Decoder(StatusLine).decode


def read_status_file(body: bytes) -> tuple[list[StatusLine], int]:
    """Every decodable status line, and how many non-blank lines could not be read."""
    out: list[StatusLine] = []
    bad = 0
    for raw in body.splitlines():
        if not raw.strip():
            continue
        try:
            out.append(_line(raw))
        except (msgspec.DecodeError, msgspec.ValidationError):
            bad += 1
    return out, bad


class SentLine(msgspec.Struct, frozen=True):
    """What we sent on one line: which item (sidecar) it came from, its data row and feature."""

    item: str
    row: str
    feature: str


class _Sent(msgspec.Struct):
    uuid: str | None = None
    name: str | None = None
    schemaId: str | None = None
    dataRow: _Row | None = None
    masks: Any = None


_sent = msgspec.json.Decoder(_Sent).decode


def index_lines(item: str, ndjson: bytes) -> tuple[dict[str, SentLine], list[str]]:
    """``uuid -> SentLine`` of one item's NDJSON, and the data rows (global keys) it names."""
    by_uuid: dict[str, SentLine] = {}
    rows: list[str] = []
    for raw in ndjson.splitlines():
        if not raw.strip():
            continue
        s = _sent(raw)
        row = (s.dataRow.globalKey or s.dataRow.id or "") if s.dataRow else ""
        if row and row not in rows:
            rows.append(row)
        feature = s.name or s.schemaId or _mask_feature(s.masks)
        if s.uuid:
            by_uuid[s.uuid] = SentLine(item, row, feature)
    return by_uuid, rows


def _mask_feature(masks: Any) -> str:
    if isinstance(masks, dict):
        names = [i.get("name", "") for i in masks.get("instances", []) if isinstance(i, dict)]
        return ",".join(n for n in names if n)
    return ""


def join_ndjson(parts: Iterable[bytes]) -> bytes:
    """One job's file: the items' lines joined by ``\\n``, no blank line, no trailing newline."""
    return b"\n".join(line for p in parts for line in p.splitlines() if line.strip())


# -- the ledger's record of a job (checkpoint ``labelbox.import:<name>``) ---------------------------

RECORD_PREFIX = "labelbox.import:"
RecordState = Literal["created", "running", "finished", "failed"]


class ImportRecord(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """What the ledger keeps of one import job: ``created`` (the name recorded before the create
    call: the job may or may not exist), ``running``, ``finished`` or ``failed``, with the job id
    once known and, when ended, its lines by outcome."""

    state: RecordState
    job: str = ""
    imported: int = 0
    failed: int = 0


_record_json = msgspec.json.Decoder(ImportRecord).decode


def record_value(rec: ImportRecord) -> str:
    return _encode(rec).decode()


def read_record(value: str) -> ImportRecord | None:
    """A stored record; the first layout (``creating``, ``FINISHED:<id>``) is read too. None for a
    value that is neither."""
    if value == "creating":
        return ImportRecord(state="created")
    state, _, job = value.partition(":")
    if state in ("FINISHED", "FAILED") and job:
        return ImportRecord(state="finished" if state == "FINISHED" else "failed", job=job)
    try:
        return _record_json(value)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def summarize_records(values: Iterable[str]) -> tuple[dict[str, int], dict[str, int]]:
    """Jobs by state and lines by outcome over the ledger's records (unreadable ones as
    ``unreadable``), zero counts left out."""
    states: dict[str, int] = {}
    lines = {"imported": 0, "failed": 0}
    for value in values:
        rec = read_record(value)
        state = rec.state if rec is not None else "unreadable"
        states[state] = states.get(state, 0) + 1
        if rec is not None:
            lines["imported"] += rec.imported
            lines["failed"] += rec.failed
    return states, {k: n for k, n in lines.items() if n}
