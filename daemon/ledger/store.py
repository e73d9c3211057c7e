"""The ledger as the pipeline sees it: one async interface, two stores.

* :class:`SqliteStore` (the embedded default) wraps :class:`daemon.ledger.Ledger`; its calls are
  short local transactions done inline on the event loop.
* :class:`daemon.ledger_pg.PostgresStore` for fleets: several ingestd instances (competing
  consumers of one queue) share accepted keys, dead letters and batch records, and *claim* the
  keys they work on, so two instances never deliver the same object at the same time.

``claim(keys)`` returns the casefolded keys to skip: ``known`` (accepted or dead-lettered: a
duplicate, acknowledged) and, with a shared store, ``busy`` (another live instance holds them:
the message is given back for later, never acknowledged on the other's behalf). Claims end
when the key's work is recorded (``finish_batch``, ``add_dead``), when it is given back
(``release``), or when their lease runs out (a crashed instance).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AsyncExitStack
from typing import Any, Protocol

from daemon.core.config import Config, resolve
from daemon.core.secrets import load_secret
from daemon.ledger.records import Claimed, DeadLetter, DeadLetterFilter, FinalState, UrlExpiry
from daemon.ledger.sqlite import Ledger
from daemon.sinks.base import Batch, ItemResult


class LedgerStore(Protocol):
    async def claim(self, keys: Sequence[str]) -> Claimed: ...

    async def final_states(self, keys: Sequence[str]) -> dict[str, FinalState]: ...

    async def release(self, keys: Sequence[str]) -> None: ...

    async def begin_batch(self, batch: Batch, sink: str) -> None: ...

    async def finish_batch(
        self, batch_id: str, results: Iterable[ItemResult], dead: Iterable[DeadLetter] = ()
    ) -> None: ...

    async def abort_batch(self, batch_id: str) -> None: ...

    async def pending_batches(self) -> list[tuple[str, Batch]]: ...

    async def add_dead(self, letters: Sequence[DeadLetter]) -> None: ...

    async def dead_letters(self, f: DeadLetterFilter | None = None) -> list[DeadLetter]: ...

    async def requeue(self, keys: Sequence[str]) -> int: ...

    async def purge(self, keys: Sequence[str]) -> int: ...

    async def get_checkpoint(self, name: str) -> str | None: ...

    async def put_checkpoint(self, name: str, value: str) -> None: ...

    async def checkpoints(self, prefix: str) -> dict[str, str]:
        """Every checkpoint whose name starts with ``prefix`` (``status``: import job records)."""
        ...

    async def put_url_expiries(self, rows: Sequence[UrlExpiry]) -> None: ...

    async def urls_expiring(self, before: float, limit: int) -> list[UrlExpiry]: ...

    async def stats(self) -> dict[str, Any]: ...


class SqliteStore:
    """The embedded store: one process owns the SQLite file, so claims are the in-process set."""

    kind = "sqlite"

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    async def claim(self, keys: Sequence[str]) -> Claimed:
        return Claimed(self.ledger.known_as(keys), set())

    async def final_states(self, keys: Sequence[str]) -> dict[str, FinalState]:
        return self.ledger.final_states(keys)

    async def release(self, keys: Sequence[str]) -> None:
        return None

    async def begin_batch(self, batch: Batch, sink: str) -> None:
        self.ledger.begin_batch(batch, sink)

    async def finish_batch(
        self, batch_id: str, results: Iterable[ItemResult], dead: Iterable[DeadLetter] = ()
    ) -> None:
        self.ledger.finish_batch(batch_id, results, dead)

    async def abort_batch(self, batch_id: str) -> None:
        self.ledger.abort_batch(batch_id)

    async def pending_batches(self) -> list[tuple[str, Batch]]:
        return self.ledger.pending_batches()

    async def add_dead(self, letters: Sequence[DeadLetter]) -> None:
        self.ledger.add_dead(letters)

    async def dead_letters(self, f: DeadLetterFilter | None = None) -> list[DeadLetter]:
        return self.ledger.dead_letters(f)

    async def requeue(self, keys: Sequence[str]) -> int:
        return self.ledger.requeue(keys)

    async def purge(self, keys: Sequence[str]) -> int:
        return self.ledger.purge(keys)

    async def get_checkpoint(self, name: str) -> str | None:
        return await self.ledger.get_checkpoint(name)

    async def put_checkpoint(self, name: str, value: str) -> None:
        await self.ledger.put_checkpoint(name, value)

    async def checkpoints(self, prefix: str) -> dict[str, str]:
        return self.ledger.checkpoints(prefix)

    async def put_url_expiries(self, rows: Sequence[UrlExpiry]) -> None:
        self.ledger.put_url_expiries(rows)

    async def urls_expiring(self, before: float, limit: int) -> list[UrlExpiry]:
        return self.ledger.urls_expiring(before, limit)

    async def stats(self) -> dict[str, Any]:
        return self.ledger.stats()


async def open_store(cfg: Config, stack: AsyncExitStack) -> LedgerStore:
    """The configured ledger, closed by ``stack``. ``[ledger] dsn`` (or the secret
    ``ledger_dsn``) selects PostgreSQL; otherwise SQLite at ``[ledger] path``."""
    dsn = cfg.ledger.dsn
    if not dsn and cfg.ledger.dsn_secret:
        dsn = load_secret(cfg.ledger.dsn_secret)
    if dsn:
        from daemon.ledger.postgres import PostgresStore  # noqa: PLC0415 - psycopg only when PostgreSQL is configured

        store = await PostgresStore.connect(dsn, claim_seconds=cfg.ledger.claim_seconds)
        stack.push_async_callback(store.close)
        return store
    ledger = Ledger(resolve(cfg, cfg.ledger.path)).open()
    stack.callback(ledger.close)
    return SqliteStore(ledger)
