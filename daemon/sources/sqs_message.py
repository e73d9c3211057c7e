"""One received SQS message of the ``sqs`` source, and how long a given-back message hides.

The message only carries state; acknowledging, giving back and extending go through the
source that received it (batched calls, in-flight accounting).
"""

from __future__ import annotations

from typing import Protocol

from daemon.core.jobs import ObjectRef
from daemon.sources.base import Poison

MAX_VISIBILITY = 43_200
RETRY_BASE = 5.0
RETRY_CAP = 900.0


def retry_visibility(delay: float, receive_count: int) -> int:
    """Seconds a retried message stays invisible: exponential in its receive count, >= delay."""
    backoff = min(RETRY_CAP, RETRY_BASE * 2 ** max(0, receive_count - 1))
    return int(min(MAX_VISIBILITY, max(delay, backoff)))


class _Owner(Protocol):
    async def ack(self, m: SqsMessage) -> None: ...

    async def retry_later(self, m: SqsMessage, delay: float) -> None: ...

    async def extend(self, msgs: list[SqsMessage]) -> None: ...


class SqsMessage:
    """One received SQS message (implements :class:`daemon.sources.base.Message`)."""

    __slots__ = (
        "_error",
        "_id",
        "_raw",
        "_refs",
        "_source",
        "poison",
        "receipt",
        "receive_count",
        "state",
        "visible_at",
    )

    def __init__(
        self,
        source: _Owner,
        *,
        msg_id: str,
        receipt: str,
        raw: bytes,
        refs: list[ObjectRef],
        error: str | None,
        receive_count: int,
        poison: Poison | None,
        visible_at: float,
    ) -> None:
        self._source = source
        self._id = msg_id
        self.receipt = receipt
        self._raw = raw
        self._refs = refs
        self._error = error
        self.receive_count = receive_count
        self.poison = poison
        self.visible_at = visible_at  # monotonic time at which SQS would make it visible again
        self.state = "held"  # held -> handed -> done

    @property
    def id(self) -> str:
        return self._id

    @property
    def refs(self) -> list[ObjectRef]:
        return self._refs

    @property
    def raw(self) -> bytes | None:
        return self._raw

    @property
    def error(self) -> str | None:
        return self._error

    async def ack(self) -> None:
        await self._source.ack(self)

    async def retry_later(self, delay: float) -> None:
        await self._source.retry_later(self, delay)

    async def extend(self) -> None:
        await self._source.extend([self])
