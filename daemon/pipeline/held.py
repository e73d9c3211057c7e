"""Batches whose delivery gave up without knowing whether the platform took them.

A request whose answer was lost (timeout, reset, 5xx after commit) may have been accepted. If
its objects went back to the source and travelled again in a new batch, they would be sent under
a new ``Idempotency-Key`` and could be accepted twice. So a batch that gave up on a transient
failure is *held*: it stays pending in the ledger (id, keys, bodies, as ``begin_batch`` wrote
it), its messages are given back, and intake gives back every later message naming one of its
keys instead of working on it again. This task re-sends the held batch as it was (same id, so
the same ``Idempotency-Key``; same bodies) with a growing pause, until the sink answers for
it: accepted, duplicate and rejected items are recorded, and its keys become known (their
messages are then acknowledged as duplicates). An item the sink answered ``retryable`` was
not taken, and is released to travel again. A sink that refuses the whole batch for good
(``PermanentError``) did not take it either: the batch is dropped and its objects travel again.

A batch still held at shutdown, or begun before a crash, stays pending in the ledger: the next
start holds it again and re-sends it once before taking new work (:meth:`HeldBatches.recover`);
a sink that still does not answer does not stop the start, the batch stays held.

What a re-send settles is told to ``answered`` (the pipeline counts those objects delivered,
duplicate or dead-lettered in this run; their messages, offered again, are duplicates). A batch
held in this run that the sink now calls a duplicate was taken by our own first attempt (its
answer was lost): delivered in this run. One recovered from an earlier run keeps the sink's word.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from daemon.ledger.records import fold
from daemon.ledger.store import LedgerStore
from daemon.pipeline.commit import recovery_dead_letters
from daemon.sinks.base import Batch, Deliverer, ItemResult, PermanentError, TransientError

log = structlog.get_logger()

MAX_PAUSE = 60.0


class HeldBatches:
    def __init__(
        self,
        ledger: LedgerStore,
        deliverer: Deliverer,
        *,
        pause: float,
        answered: Callable[[list[ItemResult], bool], None] = lambda _results, _ours: None,
    ) -> None:
        self.ledger = ledger
        self.answered = answered
        self.deliverer = deliverer
        self.pause = max(pause, 0.01)
        self.batches: dict[str, Batch] = {}
        self._keys: dict[str, str] = {}  # casefolded item key -> id of the batch holding it
        self._attempts: dict[str, int] = {}
        self._added = asyncio.Event()
        self._sending: set[str] = set()  # ids of held batches being re-sent now
        self.resent = 0
        self._recovered: set[str] = set()  # ids of batches begun by an earlier run

    def __len__(self) -> int:
        return len(self.batches)

    def holds(self, folded_key: str) -> bool:
        """Is this (casefolded) key in a held batch? Then its object must not travel again."""
        return folded_key in self._keys

    def hold(self, batch: Batch) -> None:
        self.batches[batch.id] = batch
        self._attempts[batch.id] = 0
        for item in batch.items:
            self._keys[fold(item.key)] = batch.id
        self._added.set()
        log.warning("batch held: will be re-sent as it was", batch_id=batch.id, items=len(batch.items))

    def _let_go(self, batch: Batch) -> None:
        self._recovered.discard(batch.id)
        self.batches.pop(batch.id, None)
        self._attempts.pop(batch.id, None)
        for item in batch.items:
            self._keys.pop(fold(item.key), None)

    async def recover(self) -> None:
        """Hold and re-send, once now, every batch left pending by an earlier run."""
        for sink_name, batch in await self.ledger.pending_batches():
            if sink_name != self.deliverer.name:
                log.warning("pending batch for another sink dropped", batch_id=batch.id, sink=sink_name)
                await self.ledger.abort_batch(batch.id)
                continue
            log.info("recovering batch", batch_id=batch.id, items=len(batch.items))
            self._recovered.add(batch.id)
            self.hold(batch)
            await self._resend(batch)

    async def run(self) -> None:
        """Re-send held batches until each is answered for (cancelled at the end of the drain)."""
        while True:
            if not self.batches:
                self._added.clear()
                await self._added.wait()
            attempts = min(self._attempts.values(), default=0)
            await asyncio.sleep(min(MAX_PAUSE, self.pause * 2**attempts))
            for batch in list(self.batches.values()):
                await self._resend(batch)

    async def resend_now(self) -> None:
        """Re-send every held batch now (the sink takes our credentials again: pipeline.pause)."""
        for batch in list(self.batches.values()):
            if batch.id in self._attempts:
                self._attempts[batch.id] = 0
            await self._resend(batch)

    async def _resend(self, batch: Batch) -> None:
        """Re-send one held batch, unless it is on its way already or was let go meanwhile (the
        loop and resend_now both re-send)."""
        if batch.id in self._sending or batch.id not in self.batches:
            return
        self._sending.add(batch.id)
        try:
            await self._send(batch)
        finally:
            self._sending.discard(batch.id)

    async def _send(self, batch: Batch) -> None:
        self._attempts[batch.id] += 1
        try:
            results = await self.deliverer.deliver(batch)
        except TransientError as e:
            log.warning("held batch not delivered yet", batch_id=batch.id, reason=str(e))
            return
        except PermanentError as e:
            log.error(
                "held batch refused by the sink; its objects travel again", batch_id=batch.id, reason=str(e)
            )
            await self.ledger.abort_batch(batch.id)
            self._let_go(batch)
            return
        if all(r.status == "retryable" for r in results):
            return
        await self.ledger.finish_batch(batch.id, results, recovery_dead_letters(results))
        self.answered(results, batch.id not in self._recovered)
        self.resent += 1
        retry = [r.key for r in results if r.status == "retryable"]
        answered = {r.key for r in results}
        retry += [i.key for i in batch.items if i.key not in answered]
        if retry:
            await self.ledger.release(retry)
        self._let_go(batch)
        log.info("held batch delivered", batch_id=batch.id, items=len(batch.items), not_taken=len(retry))
