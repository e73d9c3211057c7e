"""The sink contract (docs/architecture.md, Contracts).

``deliver(batch) -> list[ItemResult]``: one result per item, in any order, each
``accepted``, ``duplicate`` (already there: a success), ``rejected`` (permanent, with the
reason) or ``retryable``. Sinks own their platform protocol; the pipeline owns rate limits,
retries and acknowledgements. A sink raises :class:`TransientError` / :class:`PermanentError`
for whole-batch failures it cannot map to items, and :class:`CredentialsError` when the endpoint
refuses our credentials.

``Batch.id`` is a pure function of its item keys, so a batch re-delivered after a crash is
recognisable (file name of the files sink, ``Idempotency-Key`` of the http sink).
"""

from __future__ import annotations

import hashlib
from typing import Literal, Protocol

import msgspec

ItemStatus = Literal["accepted", "duplicate", "rejected", "retryable"]

# BatchItem.kind of an annotation item: its body is the Labelbox NDJSON lines of one sidecar
ANNOTATIONS = "ANNOTATIONS"


class BatchItem(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One payload item: its global key, its kind (VIDEO/IMAGE/AUDIO/...) and its encoded JSON."""

    key: str
    kind: str
    body: bytes


class Batch(msgspec.Struct, frozen=True, gc=False):
    """Items delivered together. ``id`` = :func:`batch_id` of the item keys."""

    id: str
    items: list[BatchItem]

    @classmethod
    def of(cls, items: list[BatchItem]) -> Batch:
        return cls(batch_id([i.key for i in items]), items)

    @property
    def nbytes(self) -> int:
        return sum(len(i.body) for i in self.items)


def batch_id(keys: list[str]) -> str:
    """A pure function of the item keys (order-sensitive): 32 hex chars of SHA-256 of each key
    followed by a newline (one hash update for them all)."""
    text = "\n".join(keys) + "\n" if keys else ""
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class ItemResult(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    key: str
    status: ItemStatus
    reason: str | None = None
    retry_after: float | None = None


class TransientError(Exception):
    """The whole batch failed in a way a retry can fix (timeouts, 5xx, 429, throttling)."""

    def __init__(self, message: str, *, retry_after: float | None = None, status: int | None = None):
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


class CredentialsError(TransientError):
    """The endpoint refuses *us* (credentials, permissions, a target that is not ours or gone:
    HTTP 401/403, a platform's AUTHENTICATION/AUTHORIZATION error).

    A property of the endpoint, not of the objects: the Deliverer gives the batch back at once
    (no retries, nothing dead-lettered) and the endpoint sends nothing more until a check passes;
    ``/readyz`` and ``status`` name it and ``run --once`` exits 1 naming it. The message names
    what to fix and never quotes the credential itself.
    """


class PermanentError(Exception):
    """The whole batch failed in a way no retry can fix (a 4xx other than 401/403)."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


class Deliverer(Protocol):
    """What the pipeline delivers batches to: a sink, or a sink behind the delivery policy."""

    name: str

    async def deliver(self, batch: Batch) -> list[ItemResult]: ...


class Sink(Protocol):
    name: str

    async def deliver(self, batch: Batch) -> list[ItemResult]: ...

    async def check(self) -> None:
        """Raise if the sink is unreachable (used by readiness and ``ingestd check``)."""
        ...
