"""The source contract (docs/architecture.md, Contracts).

A source is an async iterator of message batches. Each message carries zero or more object
refs and an acknowledgement handle. The pipeline acknowledges a message only once every one of
its jobs is final; it calls ``retry_later`` to give a message back (transient failure, or
release on shutdown with ``delay=0``) and ``extend`` while work on it is long.

A message whose body could not be decoded has ``error`` set and ``raw`` holding the body: the
pipeline dead-letters it with that body and then acknowledges it (never retried forever).

A message that came back more often than the source allows has ``poison`` set. Its body still
counts: if it decodes, each object it names is dead-lettered on its own (rule
``source.poison``), so ``ingestd dlq requeue`` can announce every one again; only a body that
does not decode is a raw-body dead letter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol, runtime_checkable

import msgspec

from daemon.core.jobs import ObjectRef


class Poison(msgspec.Struct, frozen=True):
    """A message received ``count`` times, more than the source's ``limit`` allows."""

    count: int
    limit: int

    def __str__(self) -> str:
        return f"poison: received {self.count} times, more than source.max_receive_count={self.limit}"


@runtime_checkable
class Message(Protocol):
    """One source message (an SQS message, a manifest line, a spool file...)."""

    @property
    def id(self) -> str: ...

    @property
    def refs(self) -> list[ObjectRef]: ...

    @property
    def raw(self) -> bytes | None: ...

    @property
    def error(self) -> str | None: ...

    @property
    def poison(self) -> Poison | None:
        """Set when the message came back too often (see the module docstring)."""

    async def ack(self) -> None:
        """The work is final (delivered or dead-lettered): forget the message for good."""

    async def retry_later(self, delay: float) -> None:
        """Give the message back to be received again after ``delay`` seconds (0 = release now)."""

    async def extend(self) -> None:
        """Keep the message ours a while longer (SQS visibility heartbeat); no-op elsewhere."""


class Source(Protocol):
    """A stream of message batches. ``once``: end when what is there now is drained."""

    name: str

    @property
    def exhausted(self) -> bool:
        """Everything this run will ever yield has been yielded (a ``--once`` folder or manifest
        read to its end, no retry pending): what is missing now will not come. Queues: False."""
        ...

    def batches(self) -> AsyncIterator[Sequence[Message]]:
        """Yield batches of messages until stopped (or drained in ``--once`` mode)."""
        ...

    async def close(self) -> None:
        """Stop pulling; release what was received but not handed to the pipeline."""
