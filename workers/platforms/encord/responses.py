"""Encord v2 responses, decoded (ref/encord.md 1.3, 1.5), and a job's answer mapped back to objects.

* job creation: a bare JSON string, the job's UUID;
* job status (``UploadLongPollingState``): ``status`` (``PENDING``, ``DONE``, ``ERROR``,
  ``CANCELLED``), ``itemsWithNames`` (created storage items: ``itemUuid``, ``name``),
  ``unitErrors`` (``objectUrls``, ``error``, ``subtaskUuid``, ``actionDescription``), counts;
* ``cloud-integrations``: ``{"result": [{"integrationUuid", "title"}, ...]}``;
* a storage folder: ``uuid``, ``name`` and more.

These are Encord's formats, not ours: unknown fields are ignored (the API grows), missing
optional ones default. :func:`outcomes` is the mapping of one finished job to its objects:

=======================================  ========================================================
the object's URL is in ``unitErrors``    ``rejected``, reason = Encord's message (+ subtask id)
its title is among ``itemsWithNames``    ``accepted`` (a storage item was created)
neither, job ``DONE``                    ``duplicate``: with ``skipDuplicateUrls`` the URL was
                                         already in the folder, so nothing was created
neither, job ``CANCELLED`` / ``ERROR``   ``retryable`` (the job stopped before this unit)
=======================================  ========================================================

How Encord reports a skipped duplicate is not documented (ref: skipped URLs are neither created
nor errors); the table infers it from what is absent.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Literal, TypeVar

import msgspec

from workers.platforms.encord.payload import Sent

TERMINAL = frozenset({"DONE", "ERROR", "CANCELLED"})
_UUID = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")


class ResponseError(ValueError):
    """An Encord answer that does not have the documented shape."""


class _Base(msgspec.Struct, kw_only=True, rename="camel", gc=False):
    pass


class UnitError(_Base):
    object_urls: list[str]
    error: str
    subtask_uuid: str | None = None
    action_description: str | None = None


class ItemWithName(_Base):
    item_uuid: str
    name: str


class JobStatus(_Base):
    status: str
    items_with_names: list[ItemWithName] = msgspec.field(default_factory=list)
    errors: list[str] = msgspec.field(default_factory=list)
    unit_errors: list[UnitError] = msgspec.field(default_factory=list)
    units_pending_count: int = 0
    units_done_count: int = 0
    units_error_count: int = 0
    units_cancelled_count: int = 0
    file_name: str | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


class Integration(_Base):
    integration_uuid: str
    title: str


class IntegrationList(_Base):
    result: list[Integration]


class Folder(_Base):
    uuid: str
    name: str
    parent: str | None = None
    folder_type: str | None = None
    integration_hash: str | None = None


_job_id = msgspec.json.Decoder(str)
_status = msgspec.json.Decoder(JobStatus)
_integrations = msgspec.json.Decoder(IntegrationList)
_folder = msgspec.json.Decoder(Folder)


T = TypeVar("T")


def _decode(decoder: msgspec.json.Decoder[T], data: bytes, what: str) -> T:
    try:
        return decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise ResponseError(f"{what}: {e}") from None


def job_id(data: bytes) -> str:
    """The job UUID from a ``data-upload-jobs`` POST answer (a bare JSON string)."""
    value = _decode(_job_id, data, "job creation answer")
    if not _UUID.fullmatch(value):
        raise ResponseError(f"job creation answer: not a UUID: {value[:80]!r}")
    return value


def job_status(data: bytes) -> JobStatus:
    return _decode(_status, data, "job status")


def integrations(data: bytes) -> list[Integration]:
    return _decode(_integrations, data, "cloud-integrations").result


def folder(data: bytes) -> Folder:
    return _decode(_folder, data, "storage folder")


def find_integration(found: list[Integration], wanted: str) -> Integration | None:
    """The integration whose hash (UUID) or title is ``wanted``; a hash wins over a title."""
    for i in found:
        if i.integration_uuid == wanted:
            return i
    titled = [i for i in found if i.title == wanted]
    return titled[0] if len(titled) == 1 else None


Status = Literal["accepted", "duplicate", "rejected", "retryable"]


class Outcome(msgspec.Struct, frozen=True, gc=False):
    key: str
    status: Status
    reason: str | None = None


def unit_error_text(e: UnitError) -> str:
    text = e.error.strip() or "unit failed"
    if e.action_description:
        text = f"{e.action_description}: {text}"
    return f"{text} (subtask {e.subtask_uuid})" if e.subtask_uuid else text


def outcomes(sent: list[Sent], state: JobStatus) -> list[Outcome]:
    """One outcome per sent object for a terminal job (see the module table)."""
    if not state.terminal:
        raise ValueError(f"job is still {state.status}: no outcomes yet")
    failed: dict[str, UnitError] = {}
    for e in state.unit_errors:
        for url in e.object_urls:
            failed.setdefault(url, e)
    created = Counter(i.name for i in state.items_with_names)
    out: list[Outcome] = []
    for s in sent:
        err = failed.get(s.url)
        if err is not None:
            out.append(Outcome(s.key, "rejected", unit_error_text(err)))
            continue
        if created[s.title] > 0:
            created[s.title] -= 1
            out.append(Outcome(s.key, "accepted"))
        elif state.status == "DONE":
            out.append(Outcome(s.key, "duplicate"))
        else:
            out.append(Outcome(s.key, "retryable", f"Encord job ended {state.status} before this item"))
    return out
