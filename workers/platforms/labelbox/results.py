"""A finished task's rows, mapped back to the global keys we sent.

``COMPLETE`` can hide partial failure (shared/ref/labelbox.md 1.1, 1.4): the failed rows come from
``failedDataRowImports``, each with the platform's message and the spec it refused. Rows are
correlated by ``spec.globalKey`` only (order is not kept; keys are case-insensitive):

* "Duplicate global key" (any of its historical wordings) for a key we sent: the row already
  exists -> ``duplicate``, a success;
* any other failure -> ``rejected`` with the platform's message;
* a row not among the failures of a ``COMPLETE`` task -> ``accepted``;
* a ``FAILED``/``CANCELED`` task: the rows listed as succeeded are ``accepted``, the failed ones
  as above, the rest ``retryable`` with the task's own error (e.g. a chunk the server could not
  fetch, issue #1776: uploading again fixes it).

Failures naming a key we did not send are ignored (returned apart, for the log).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import msgspec

from workers.platforms.labelbox.graphql import FailedRow, TaskView, clip

RowStatus = Literal["accepted", "duplicate", "rejected", "retryable"]

_DUPLICATE = re.compile(r"duplicate global keys?\b", re.IGNORECASE)


class RowOutcome(msgspec.Struct, frozen=True):
    key: str
    status: RowStatus
    reason: str | None = None


def is_duplicate(message: str) -> bool:
    return _DUPLICATE.search(message) is not None


def task_error(task: TaskView) -> str:
    """The task's own error text, whatever its shape (string, list, objects)."""
    errors: Any = task.errors if task.errors not in (None, "", []) else task.result
    if isinstance(errors, list):
        parts = [
            e if isinstance(e, str) else str(e.get("message", e)) if isinstance(e, dict) else str(e)
            for e in errors[:3]
        ]
        return clip("; ".join(parts)) or f"task {task.status}"
    if isinstance(errors, dict):
        return clip(str(errors.get("message", errors)))
    return clip(str(errors)) if errors else f"task {task.status}"


def outcomes(
    keys: Sequence[str],
    task: TaskView,
    failed: Iterable[FailedRow],
    succeeded: Iterable[str] = (),
) -> tuple[list[RowOutcome], list[FailedRow]]:
    """Every key's outcome for a finished task, and the failures that named no key of ours."""
    ours = {k.casefold(): k for k in keys}
    status: dict[str, RowOutcome] = {}
    strangers: list[FailedRow] = []
    for row in failed:
        gk = row.spec.globalKey if row.spec is not None else None
        key = ours.get(gk.casefold()) if gk else None
        if key is None:
            strangers.append(row)
            continue
        if is_duplicate(row.message):
            status[key] = RowOutcome(key, "duplicate")
        elif status.get(key) is None or status[key].status != "duplicate":
            status[key] = RowOutcome(key, "rejected", clip(row.message) or "refused by Labelbox")
    if task.status == "COMPLETE":
        rest = RowOutcome("", "accepted")
    else:
        for gk in succeeded:
            key = ours.get(gk.casefold())
            if key is not None and key not in status:
                status[key] = RowOutcome(key, "accepted")
        rest = RowOutcome("", "retryable", f"Labelbox task {task.id} {task.status}: {task_error(task)}")
    out = [status.get(k) or RowOutcome(k, rest.status, rest.reason) for k in keys]
    return out, strangers
