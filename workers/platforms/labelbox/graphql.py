"""Labelbox's GraphQL wire: documents, the ``uploadFile`` multipart body, answers as data.

Every request goes to one endpoint (``POST /graphql``) with ``Authorization: Bearer <key>``;
uploads count against the same rate limit as queries (shared/ref/labelbox.md sections 0, 1.1, 3).

:func:`read_answer` sorts one HTTP answer once, for every caller (section 0, "What users hit"):

==================  =============================================================================
``rate_limited``    HTTP 429, or a ``message`` starting "You have exceeded" (``Retry-After`` read
                    when present; the header is unverified for Labelbox)
``transient``       5xx (520 included), HTML or other non-JSON bodies, malformed JSON,
                    ``INTERNAL_SERVER_ERROR`` other than 400/422/426, unknown error codes
``refused``         ``AUTHENTICATION_ERROR``, ``AUTHORIZATION_ERROR``, HTTP 401/403: the
                    credentials, not the rows, are at fault
``permanent``       ``GRAPHQL_VALIDATION_FAILED``/``GRAPHQL_PARSE_FAILED``/``MALFORMED_REQUEST``/
                    ``OPERATION_NOT_ALLOWED``/``RESOURCE_CONFLICT``/``RESOURCE_NOT_FOUND``,
                    ``INTERNAL_SERVER_ERROR`` with status 400, 422 or 426 (quota), other 4xx JSON
``ok``              2xx JSON without ``errors``
==================  =============================================================================
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from enum import StrEnum
from typing import Any, TypeVar

import msgspec

from workers.classify import CREDENTIAL_STATUSES, BodyKind, Verdict, body_kind, classify
from workers.retry import parse_retry_after

UPLOAD_FILE = (
    "mutation IngestdUploadFile($file: Upload!, $contentLength: Int!, $sign: Boolean) "
    "{ uploadFile(file: $file, contentLength: $contentLength, sign: $sign) { url filename } }"
)
TASK_FIELDS = "id status completionPercentage errors result type"
UPSERT_DATA_ROWS = (
    "mutation IngestdUpsertDataRows($manifestUri: String!) "
    f"{{ upsertDataRows(data: {{manifestUri: $manifestUri}}) {{ {TASK_FIELDS} }} }}"
)
USER = "query IngestdUser { user { id } }"
FAILED_ROWS = (
    "query IngestdFailedRows($taskId: ID!, $first: Int, $from: String) "
    "{ failedDataRowImports(data: {taskId: $taskId, first: $first, from: $from}) "
    "{ after total results { message spec { externalId globalKey rowData } } } }"
)
SUCCEEDED_ROWS = (  # the server's own spelling: "successesful"
    "query IngestdSucceededRows($taskId: ID!, $first: Int, $from: String) "
    "{ successesfulDataRowImports(data: {taskId: $taskId, first: $first, from: $from}) "
    "{ after total nodes { id globalKey } } }"
)
METADATA_ONTOLOGY = (
    "query IngestdMetadataOntology { customMetadataOntology "
    "{ id name kind reserved options { id kind name reserved } } }"
)
DATASET = "query IngestdDataset($id: ID!) { dataset(where: {id: $id}) { id name } }"
ROWS_BY_KEY = (
    "query IngestdRowsByKey($globalKeys: [ID!]!) "
    "{ dataRowsForGlobalKeys(where: {ids: $globalKeys}) { jobId } }"
)
ROWS_BY_KEY_RESULT = (
    "query IngestdRowsByKeyResult($jobId: ID!) { dataRowsForGlobalKeysResult(jobId: {id: $jobId}) "
    "{ jobStatus data { fetchedDataRows { id globalKey } notFoundGlobalKeys accessDeniedGlobalKeys } } }"
)
PAGE_ROWS = 5_000  # the SDK's DOWNLOAD_RESULT_PAGE_SIZE


def tasks_query(task_ids: Sequence[str]) -> str:
    """One status read for several tasks: aliased ``createdTasks`` fields (GraphQL aliases) on the
    creating user (tasks are readable only through their creator). Variables: ``userId``,
    ``t0``, ``t1``...; the answer holds ``user.t<i>``, a list of zero or one task."""
    if not task_ids:
        raise ValueError("no task to read")
    params = "".join(f", $t{i}: ID!" for i in range(len(task_ids)))
    fields = " ".join(
        f"t{i}: createdTasks(where: {{id: $t{i}}}, skip: 0, first: 1) {{ {TASK_FIELDS} }}"
        for i in range(len(task_ids))
    )
    return f"query IngestdTasks($userId: ID!{params}) {{ user(where: {{id: $userId}}) {{ {fields} }} }}"


def tasks_variables(user_id: str, task_ids: Sequence[str]) -> dict[str, str]:
    return {"userId": user_id, **{f"t{i}": t for i, t in enumerate(task_ids)}}


_encode = msgspec.json.Encoder().encode


def upload_body(content: bytes, *, filename: str) -> tuple[str, bytes]:
    """``(content type, body)`` of an ``uploadFile`` request: the GraphQL multipart request
    (``operations``, ``map``, file part ``1``) with the file's true byte length."""
    boundary = "ingestd-" + hashlib.sha256(content).hexdigest()[:40]
    operations = _encode(
        {"query": UPLOAD_FILE, "variables": {"file": None, "contentLength": len(content), "sign": False}}
    )
    sep = b"--" + boundary.encode()
    body = b"".join(
        (
            sep,
            b'\r\nContent-Disposition: form-data; name="operations"\r\n\r\n',
            operations,
            b"\r\n",
            sep,
            b'\r\nContent-Disposition: form-data; name="map"\r\n\r\n{"1":["variables.file"]}\r\n',
            sep,
            b'\r\nContent-Disposition: form-data; name="1"; filename="',
            filename.encode(),
            b'"\r\nContent-Type: application/json\r\n\r\n',
            content,
            b"\r\n",
            sep,
            b"--\r\n",
        )
    )
    return f"multipart/form-data; boundary={boundary}", body


# -- answers ------------------------------------------------------------------------------------


class Kind(StrEnum):
    OK = "ok"
    RATE_LIMITED = "rate_limited"
    TRANSIENT = "transient"
    REFUSED = "refused"
    PERMANENT = "permanent"


class _Exception(msgspec.Struct):
    status: int | None = None


class _Extensions(msgspec.Struct):
    code: str | None = None
    exception: _Exception | None = None


class GqlError(msgspec.Struct):
    message: str = ""
    extensions: _Extensions | None = None


class _Envelope(msgspec.Struct):
    data: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"null"))
    errors: list[GqlError] | None = None
    message: str | None = None


class Answer(msgspec.Struct, frozen=True, kw_only=True):
    """One HTTP answer, sorted. ``data`` is the raw ``data`` member (decode with :func:`data_as`)."""

    kind: Kind
    status: int
    message: str = ""
    code: str | None = None
    retry_after: float | None = None
    data: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"null"))


REFUSED_CODES = frozenset({"AUTHENTICATION_ERROR", "AUTHORIZATION_ERROR"})
PERMANENT_CODES = frozenset(
    {
        "GRAPHQL_VALIDATION_FAILED",
        "GRAPHQL_PARSE_FAILED",
        "MALFORMED_REQUEST",
        "OPERATION_NOT_ALLOWED",
        "RESOURCE_CONFLICT",
        "RESOURCE_NOT_FOUND",
    }
)
PERMANENT_SERVER_STATUSES = frozenset({400, 422, 426})  # invalid query, unprocessable, LBU quota
RATE_LIMIT_PREFIX = "You have exceeded"
_SPACE = re.compile(r"[\s\x00-\x1f\x7f]+")


def clip(text: str, limit: int = 300) -> str:
    """Server text fit for a log line and a dead letter: one line, bounded."""
    text = _SPACE.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _error_kind(err: GqlError) -> Kind:
    ext = err.extensions or _Extensions()
    if err.message.startswith(RATE_LIMIT_PREFIX):
        return Kind.RATE_LIMITED
    if ext.code in REFUSED_CODES:
        return Kind.REFUSED
    if ext.code in PERMANENT_CODES:
        return Kind.PERMANENT
    status = ext.exception.status if ext.exception is not None else None
    if ext.code == "INTERNAL_SERVER_ERROR" and status in PERMANENT_SERVER_STATUSES:
        return Kind.PERMANENT
    return Kind.TRANSIENT


_SEVERITY = (Kind.REFUSED, Kind.RATE_LIMITED, Kind.PERMANENT, Kind.TRANSIENT)


def read_answer(
    status: int,
    content_type: str,
    body: bytes,
    *,
    retry_after: str | None = None,
    now_epoch: float = 0.0,
    retry_after_cap: float = 300.0,
) -> Answer:
    """Sort one answer (see the module table)."""
    ra = parse_retry_after(retry_after, now_epoch=now_epoch, cap=retry_after_cap)
    kind = body_kind(content_type, body)
    env: _Envelope | None = None
    if kind is BodyKind.JSON:
        try:
            env = msgspec.json.decode(body, type=_Envelope)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            if status != 429:
                return Answer(kind=Kind.TRANSIENT, status=status, message=f"malformed JSON answer: {e}")
    top = env.message if env is not None and env.message else ""
    if status == 429 or top.startswith(RATE_LIMIT_PREFIX):
        return Answer(kind=Kind.RATE_LIMITED, status=429, message=clip(top or "HTTP 429"), retry_after=ra)
    if env is not None and env.errors:
        kinds = [_error_kind(e) for e in env.errors]
        worst = min(kinds, key=_SEVERITY.index)
        first = env.errors[kinds.index(worst)]
        code = first.extensions.code if first.extensions is not None else None
        return Answer(
            kind=worst,
            status=status,
            message=clip("; ".join(e.message for e in env.errors[:3]) or code or f"HTTP {status}"),
            code=code,
            retry_after=ra if worst is Kind.RATE_LIMITED else None,
        )
    if status in CREDENTIAL_STATUSES:
        return Answer(kind=Kind.REFUSED, status=status, message=clip(top or f"HTTP {status}"))
    verdict = classify(status, kind)
    if verdict is Verdict.ACCEPTED and env is not None:
        return Answer(kind=Kind.OK, status=status, data=env.data)
    if verdict in (Verdict.ACCEPTED, Verdict.TRANSIENT):
        what = {BodyKind.HTML: "an HTML page", BodyKind.EMPTY: "an empty body"}.get(kind, "a non-JSON body")
        return Answer(kind=Kind.TRANSIENT, status=status, message=top or f"HTTP {status} with {what}")
    return Answer(kind=Kind.PERMANENT, status=status, message=clip(top or f"HTTP {status}"))


class ProtocolError(ValueError):
    """An answer that is JSON but not the shape the document asked for."""


T = TypeVar("T")


def data_as(answer: Answer, typ: type[T]) -> T:
    try:
        return msgspec.json.decode(answer.data, type=typ)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise ProtocolError(f"unexpected answer shape: {e}") from None


# -- answer shapes (only the fields we read; Labelbox's extra fields are ignored) -------------


class UploadedFile(msgspec.Struct):
    url: str
    filename: str = ""


class UploadFileData(msgspec.Struct):
    uploadFile: UploadedFile


class TaskView(msgspec.Struct):
    """``status``: IN_PROGRESS, COMPLETE, FAILED, CANCELLING, CANCELED (anything else: unknown).
    ``errors`` is a string or a list depending on where the failure sat (issue #1249)."""

    id: str
    status: str
    completionPercentage: float | None = None
    errors: Any = None
    result: Any = None
    type: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("COMPLETE", "FAILED", "CANCELED")


class UpsertData(msgspec.Struct):
    upsertDataRows: TaskView


class _UserId(msgspec.Struct):
    id: str


class UserData(msgspec.Struct):
    user: _UserId


def decode_tasks(answer: Answer, task_ids: Sequence[str]) -> dict[str, TaskView | None]:
    """A :func:`tasks_query` answer: each task id -> its view, or ``None`` if not readable."""
    user = data_as(answer, dict[str, dict[str, list[TaskView]] | None]).get("user")
    if user is None:
        raise ProtocolError("unexpected answer shape: no user")
    out: dict[str, TaskView | None] = {}
    for i, tid in enumerate(task_ids):
        found = [t for t in user.get(f"t{i}", []) if t.id == tid]
        out[tid] = found[0] if found else None
    return out


class FailedSpec(msgspec.Struct):
    globalKey: str | None = None
    externalId: str | None = None
    rowData: Any = None


class FailedRow(msgspec.Struct):
    message: str = ""
    spec: FailedSpec | None = None


class FailedPage(msgspec.Struct):
    results: list[FailedRow] = msgspec.field(default_factory=list)
    after: str | None = None
    total: int | None = None


class FailedData(msgspec.Struct):
    failedDataRowImports: FailedPage


class SucceededRow(msgspec.Struct):
    id: str = ""
    globalKey: str | None = None


class SucceededPage(msgspec.Struct):
    nodes: list[SucceededRow] = msgspec.field(default_factory=list)
    after: str | None = None
    total: int | None = None


class SucceededData(msgspec.Struct):
    successesfulDataRowImports: SucceededPage


class Dataset(msgspec.Struct):
    id: str
    name: str = ""


class DatasetData(msgspec.Struct):
    dataset: Dataset | None = None


class _Job(msgspec.Struct):
    jobId: str


class RowsByKeyData(msgspec.Struct):
    dataRowsForGlobalKeys: _Job


class FetchedRow(msgspec.Struct):
    id: str
    globalKey: str | None = None


class RowsByKey(msgspec.Struct):
    fetchedDataRows: list[FetchedRow] = msgspec.field(default_factory=list)
    notFoundGlobalKeys: list[str] = msgspec.field(default_factory=list)
    accessDeniedGlobalKeys: list[str] = msgspec.field(default_factory=list)


class RowsByKeyJob(msgspec.Struct):
    jobStatus: str
    data: RowsByKey | None = None


class RowsByKeyResultData(msgspec.Struct):
    dataRowsForGlobalKeysResult: RowsByKeyJob
