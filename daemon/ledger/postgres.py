"""The PostgreSQL ledger store, for fleets of ingestd instances sharing one queue.

Same tables as the SQLite ledger plus ``claims``: a key being worked on by an instance, with a
lease. ``claim`` skips keys that are accepted, dead-lettered, or claimed by another instance
whose lease has not run out, and claims the rest for this instance in the same transaction, so
two instances never deliver the same object at once; a crashed instance's claims expire after
``claim_seconds``. One connection, its transactions serialised by a lock (each is a few short
statements); psycopg's async connection keeps the event loop free while the database answers.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
import psycopg

from daemon.core.processes import running
from daemon.ledger.records import (
    FINAL_STATES_SQL,
    Claimed,
    DeadLetter,
    DeadLetterFilter,
    FinalState,
    UrlExpiry,
    dead_letter_from_row,
    dead_letter_query,
    final_states_from,
    fold,
)
from daemon.sinks.base import Batch, BatchItem, ItemResult

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accepted (
    key text PRIMARY KEY, global_key text NOT NULL, status text NOT NULL, batch_id text,
    at double precision NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letters (
    key text PRIMARY KEY, global_key text, object text NOT NULL, stage text NOT NULL,
    rule text NOT NULL, message text NOT NULL, expected text, actual text, raw bytea,
    attempts integer NOT NULL DEFAULT 1, at double precision NOT NULL);
CREATE INDEX IF NOT EXISTS dead_letters_rule ON dead_letters(rule);
CREATE TABLE IF NOT EXISTS batches (
    id text PRIMARY KEY, sink text NOT NULL, state text NOT NULL, items bytea NOT NULL,
    n integer NOT NULL, nbytes bigint NOT NULL, begun double precision NOT NULL,
    finished double precision, owner text);
CREATE TABLE IF NOT EXISTS checkpoints (
    name text PRIMARY KEY, value text NOT NULL, at double precision NOT NULL);
CREATE TABLE IF NOT EXISTS url_expiry (
    key text PRIMARY KEY, global_key text NOT NULL, location text NOT NULL, region text NOT NULL,
    expires double precision NOT NULL);
CREATE INDEX IF NOT EXISTS url_expiry_expires ON url_expiry(expires);
CREATE TABLE IF NOT EXISTS claims (
    key text PRIMARY KEY, owner text NOT NULL, until double precision NOT NULL);
"""

_items_enc = msgspec.msgpack.Encoder()
_items_dec = msgspec.msgpack.Decoder(list[BatchItem])
_json = msgspec.json.Encoder()


def _j(value: Any) -> str | None:
    return None if value is None else _json.encode(value).decode()


class PostgresStore:
    kind = "postgresql"

    def __init__(self, conn: psycopg.AsyncConnection[Any], *, claim_seconds: float, owner: str) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()
        self.claim_seconds = claim_seconds
        self.owner = owner
        self._dead_owners: list[str] = []

    @classmethod
    async def connect(
        cls, dsn: str, *, claim_seconds: float = 600.0, owner: str | None = None
    ) -> PostgresStore:
        try:
            conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as e:
            raise ConnectionError(f"ledger: cannot connect to PostgreSQL: {e}".split("\n")[0]) from None
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(4242001)")  # one schema creator at a time
            await conn.execute(_SCHEMA)
        store = cls(conn, claim_seconds=claim_seconds, owner=owner or f"{socket.gethostname()}:{os.getpid()}")
        await store._forget_dead_owners()
        return store

    async def _dead_local_owners(self) -> list[str]:
        """Owners on this host whose process is gone (a crash): their claims and batches are free."""
        host = socket.gethostname()
        cur = await self._conn.execute(
            "SELECT owner FROM claims WHERE starts_with(owner, %s) UNION "
            "SELECT owner FROM batches WHERE state='pending' AND starts_with(owner, %s)",
            (host + ":", host + ":"),
        )
        dead = []
        for (owner,) in await cur.fetchall():
            pid = owner.rsplit(":", 1)[-1]
            if owner != self.owner and pid.isdigit() and not running(int(pid)):
                dead.append(owner)
        return dead

    async def _forget_dead_owners(self) -> None:
        async with self._lock:
            self._dead_owners = await self._dead_local_owners()
            await self._conn.execute("DELETE FROM claims WHERE owner = ANY(%s)", (self._dead_owners,))

    async def close(self) -> None:
        async with self._lock:
            await self._conn.execute("DELETE FROM claims WHERE owner = %s", (self.owner,))
            await self._conn.close()

    async def _tx(self, statements: list[tuple[str, Any]]) -> None:
        async with self._lock, self._conn.transaction():
            cur = self._conn.cursor()
            for sql, args in statements:
                if isinstance(args, list):
                    if args:
                        await cur.executemany(sql, args)
                else:
                    await cur.execute(sql, args)

    # -- intake -----------------------------------------------------------------------------
    async def claim(self, keys: Sequence[str]) -> Claimed:
        folded = list({fold(k) for k in keys})
        if not folded:
            return Claimed({}, set())
        now = time.time()
        async with self._lock, self._conn.transaction():
            # Claim first, then look for final records: a concurrent finish_batch that commits
            # between the two statements is then seen by the second (READ COMMITTED takes a new
            # snapshot per statement), so a key is never claimed after another instance recorded it.
            cur = await self._conn.execute(
                "INSERT INTO claims(key, owner, until) SELECT k, %s, %s FROM unnest(%s::text[]) AS k"
                " ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, until = excluded.until"
                " WHERE claims.until < %s OR claims.owner = excluded.owner RETURNING key",
                (self.owner, now + self.claim_seconds, folded, now),
            )
            mine = {r[0] for r in await cur.fetchall()}
            cur = await self._conn.execute(
                "SELECT key, global_key FROM accepted WHERE key = ANY(%s)"
                " UNION ALL SELECT key, coalesce(global_key, key) FROM dead_letters WHERE key = ANY(%s)",
                (folded, folded),
            )
            known: dict[str, str] = {}
            for k, gk in await cur.fetchall():
                known.setdefault(k, gk)
            if known:
                await self._conn.execute(
                    "DELETE FROM claims WHERE key = ANY(%s) AND owner = %s", (list(known), self.owner)
                )
            rest = [k for k in folded if k not in known]
        return Claimed(known, set(rest) - mine)

    async def final_states(self, keys: Sequence[str]) -> dict[str, FinalState]:
        folded = list({fold(k) for k in keys})
        if not folded:
            return {}
        async with self._lock:
            cur = await self._conn.execute(
                FINAL_STATES_SQL.format(keys="SELECT unnest(%s::text[])"), (folded, folded)
            )
            return final_states_from(await cur.fetchall())

    async def release(self, keys: Sequence[str]) -> None:
        if keys:
            await self._tx(
                [
                    (
                        "DELETE FROM claims WHERE key = ANY(%s) AND owner = %s",
                        ([fold(k) for k in keys], self.owner),
                    )
                ]
            )

    # -- batches ----------------------------------------------------------------------------
    async def begin_batch(self, batch: Batch, sink: str) -> None:
        await self._tx(
            [
                (
                    "INSERT INTO batches(id, sink, state, items, n, nbytes, begun, owner)"
                    " VALUES (%s,%s,'pending',%s,%s,%s,%s,%s) ON CONFLICT (id) DO UPDATE SET state='pending',"
                    " items=excluded.items, begun=excluded.begun, owner=excluded.owner",
                    (
                        batch.id,
                        sink,
                        _items_enc.encode(batch.items),
                        len(batch.items),
                        batch.nbytes,
                        time.time(),
                        self.owner,
                    ),
                )
            ]
        )

    async def finish_batch(
        self, batch_id: str, results: Iterable[ItemResult], dead: Iterable[DeadLetter] = ()
    ) -> None:
        now = time.time()
        results = list(results)
        dead = list(dead)
        await self._tx(
            [
                (
                    "INSERT INTO accepted(key, global_key, status, batch_id, at) VALUES (%s,%s,%s,%s,%s)"
                    " ON CONFLICT (key) DO NOTHING",
                    [
                        (fold(r.key), r.key, r.status, batch_id, now)
                        for r in results
                        if r.status in ("accepted", "duplicate")
                    ],
                ),
                *self._dead_statements(dead, now),
                ("UPDATE batches SET state='done', finished=%s, items='' WHERE id=%s", (now, batch_id)),
                (
                    "DELETE FROM claims WHERE key = ANY(%s) AND owner = %s",
                    ([fold(r.key) for r in results], self.owner),
                ),
            ]
        )

    async def abort_batch(self, batch_id: str) -> None:
        await self._tx([("DELETE FROM batches WHERE id=%s AND state='pending'", (batch_id,))])

    async def pending_batches(self) -> list[tuple[str, Batch]]:
        """Pending batches whose instance is gone: ours, a dead process on this host, or any
        whose lease ran out (an instance elsewhere that stopped without finishing them)."""
        async with self._lock:
            cur = await self._conn.execute(
                "SELECT sink, id, items FROM batches WHERE state='pending'"
                " AND (owner = %s OR owner = ANY(%s) OR begun < %s) ORDER BY begun",
                (self.owner, self._dead_owners, time.time() - self.claim_seconds),
            )
            rows = await cur.fetchall()
        return [(sink, Batch(bid, _items_dec.decode(items))) for sink, bid, items in rows]

    # -- dead letters -----------------------------------------------------------------------
    def _dead_statements(self, letters: list[DeadLetter], now: float) -> list[tuple[str, Any]]:
        return [
            (
                "INSERT INTO dead_letters(key, global_key, object, stage, rule, message, expected, actual,"
                " raw, at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (key) DO UPDATE SET"
                " stage=excluded.stage, rule=excluded.rule, message=excluded.message,"
                " expected=excluded.expected, actual=excluded.actual, raw=excluded.raw,"
                " attempts=dead_letters.attempts+1, at=excluded.at",
                [
                    (
                        fold(d.key),
                        d.global_key,
                        _j(d.object) or "null",
                        d.stage,
                        d.rule,
                        d.message,
                        _j(d.expected),
                        _j(d.actual),
                        d.raw,
                        d.at or now,
                    )
                    for d in letters
                ],
            ),
            (
                "DELETE FROM claims WHERE key = ANY(%s) AND owner = %s",
                ([fold(d.key) for d in letters], self.owner),
            ),
        ]

    async def add_dead(self, letters: Sequence[DeadLetter]) -> None:
        if letters:
            await self._tx(self._dead_statements(list(letters), time.time()))

    async def dead_letters(self, f: DeadLetterFilter | None = None) -> list[DeadLetter]:
        sql, args = dead_letter_query("%s", f or DeadLetterFilter())
        async with self._lock:
            cur = await self._conn.execute(sql, args)
            rows = await cur.fetchall()
        return [dead_letter_from_row(row) for row in rows]

    async def requeue(self, keys: Sequence[str]) -> int:
        async with self._lock:
            cur = await self._conn.execute(
                "DELETE FROM dead_letters WHERE key = ANY(%s)", ([fold(k) for k in keys],)
            )
            return cur.rowcount

    async def purge(self, keys: Sequence[str]) -> int:
        return await self.requeue(keys)

    # -- checkpoints -------------------------------------------------------------------------
    async def get_checkpoint(self, name: str) -> str | None:
        async with self._lock:
            cur = await self._conn.execute("SELECT value FROM checkpoints WHERE name=%s", (name,))
            row = await cur.fetchone()
        return None if row is None else str(row[0])

    async def put_checkpoint(self, name: str, value: str) -> None:
        await self._tx(
            [
                (
                    "INSERT INTO checkpoints(name, value, at) VALUES (%s,%s,%s) ON CONFLICT (name)"
                    " DO UPDATE SET value=excluded.value, at=excluded.at",
                    (name, value, time.time()),
                )
            ]
        )

    async def checkpoints(self, prefix: str) -> dict[str, str]:
        async with self._lock:
            cur = await self._conn.execute(
                "SELECT name, value FROM checkpoints WHERE left(name, %s) = %s", (len(prefix), prefix)
            )
            rows = await cur.fetchall()
        return {str(n): str(v) for n, v in rows}

    # -- presigned URL expiries (labelbox upsert: the URL refresher) ----------------------------
    async def put_url_expiries(self, rows: Sequence[UrlExpiry]) -> None:
        sql = (
            "INSERT INTO url_expiry(key, global_key, location, region, expires) VALUES (%s,%s,%s,%s,%s)"
            " ON CONFLICT (key) DO UPDATE SET global_key=excluded.global_key, location=excluded.location,"
            " region=excluded.region, expires=excluded.expires"
        )
        await self._tx([(sql, [(fold(r[0]), *r) for r in rows])])

    async def urls_expiring(self, before: float, limit: int) -> list[UrlExpiry]:
        async with self._lock:
            cur = await self._conn.execute(
                "SELECT global_key, location, region, expires FROM url_expiry WHERE expires < %s"
                " ORDER BY expires LIMIT %s",
                (before, limit),
            )
            rows = await cur.fetchall()
        return [(str(g), str(loc), str(r), float(e)) for g, loc, r, e in rows]

    async def stats(self) -> dict[str, Any]:
        async with self._lock:
            acc = dict(
                await (
                    await self._conn.execute("SELECT status, count(*) FROM accepted GROUP BY status")
                ).fetchall()
            )
            by_rule = dict(
                await (
                    await self._conn.execute(
                        "SELECT rule, count(*) FROM dead_letters GROUP BY rule ORDER BY 2 DESC"
                    )
                ).fetchall()
            )
            cur = await self._conn.execute(
                "SELECT (SELECT count(*) FROM batches WHERE state='pending'),"
                " (SELECT count(*) FROM batches WHERE state='done'), (SELECT max(at) FROM accepted),"
                " (SELECT count(*) FROM claims), (SELECT count(*) FROM url_expiry WHERE expires < %s)",
                (time.time() + 86400,),
            )
            row = await cur.fetchone()
        assert row is not None
        return {
            "accepted": int(acc.get("accepted", 0)),
            "duplicates": int(acc.get("duplicate", 0)),
            "dead_letters": int(sum(by_rule.values())),
            "dead_letters_by_rule": {k: int(v) for k, v in by_rule.items()},
            "batches_done": int(row[1]),
            "batches_pending": int(row[0]),
            "last_accepted_at": row[2],
            "claims": int(row[3]),
            "urls_expiring_24h": int(row[4]),
        }
