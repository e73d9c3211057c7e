"""The ledger: what was accepted, what was refused and why, and batches in flight.

SQLite (embedded, WAL) by default. Exactly-once in effect across crashes:

1. ``begin_batch`` records the batch (id, sink, item keys, kinds and bodies) *before* the sink
   is called, in one transaction.
2. The sink delivers (the files sink writes ``<id>.json`` atomically; the http sink sends the
   batch with ``Idempotency-Key: <id>``).
3. ``finish_batch`` records the accepted keys and dead letters and drops the pending record.

After a crash, :meth:`pending_batches` returns what was begun but not finished; the pipeline
re-delivers exactly those batches (same id, same bodies) before taking new work, so a batch is
never split differently on the retry. Intake skips keys that are ``known`` (accepted or
dead-lettered). Keys are compared case-insensitively (Labelbox global keys are).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from daemon.ledger.records import (
    FINAL_STATES_SQL,
    DeadLetter,
    DeadLetterFilter,
    FinalState,
    UrlExpiry,
    dead_letter_from_row,
    dead_letter_query,
    final_states_from,
    fold,
)
from daemon.ledger.sqlite_schema import connect
from daemon.sinks.base import Batch, BatchItem, ItemResult

_items_enc = msgspec.msgpack.Encoder()
_items_dec = msgspec.msgpack.Decoder(list[BatchItem])
_json = msgspec.json.Encoder()


class Ledger:
    """One SQLite connection, used from the event loop thread (each call is short)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None

    def open(self) -> Ledger:
        self._db = connect(self.path)
        return self

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> Ledger:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("ledger is not open")
        return self._db

    # -- intake -----------------------------------------------------------------------------
    def known(self, keys: Sequence[str]) -> set[str]:
        """The casefolded keys among ``keys`` that are accepted or dead-lettered."""
        return set(self.known_as(keys))

    def known_as(self, keys: Sequence[str]) -> dict[str, str]:
        """For each of ``keys`` already recorded: casefolded key -> the global key as recorded
        (its exact spelling tells a rerun of the same object from a case-only collision)."""
        out: dict[str, str] = {}
        folded = [fold(k) for k in keys]
        for i in range(0, len(folded), 400):  # one statement per chunk: both tables, 2 x 400 parameters
            chunk = folded[i : i + 400]
            marks = ",".join("?" * len(chunk))
            for k, gk, dead in self.db.execute(
                f"SELECT key, global_key, 0 FROM accepted WHERE key IN ({marks}) UNION ALL"
                f" SELECT key, coalesce(global_key, key), 1 FROM dead_letters WHERE key IN ({marks})",
                chunk + chunk,
            ):
                if dead:
                    out.setdefault(k, gk)
                else:
                    out[k] = gk  # accepted wins over a dead letter of the same key
        return out

    def final_states(self, keys: Sequence[str]) -> dict[str, FinalState]:
        """Casefolded key -> what the ledger holds for it, for the keys that are final."""
        folded = [fold(k) for k in keys]
        rows: list[Any] = []
        for i in range(0, len(folded), 400):
            chunk = folded[i : i + 400]
            marks = ",".join("?" * len(chunk))
            rows.extend(self.db.execute(FINAL_STATES_SQL.format(keys=marks), [*chunk, *chunk]))
        return final_states_from(rows)

    # -- batches ----------------------------------------------------------------------------
    def begin_batch(self, batch: Batch, sink: str) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO batches(id, sink, state, items, n, nbytes, begun) VALUES (?,?,?,?,?,?,?)",
            (
                batch.id,
                sink,
                "pending",
                _items_enc.encode(batch.items),
                len(batch.items),
                batch.nbytes,
                time.time(),
            ),
        )

    def finish_batch(
        self, batch_id: str, results: Iterable[ItemResult], dead: Iterable[DeadLetter] = ()
    ) -> None:
        """Record the final results of a batch in one transaction."""
        now = time.time()
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT OR IGNORE INTO accepted(key, global_key, status, batch_id, at) VALUES (?,?,?,?,?)",
                [
                    (fold(r.key), r.key, r.status, batch_id, now)
                    for r in results
                    if r.status in ("accepted", "duplicate")
                ],
            )
            self._insert_dead(list(dead), now)
            db.execute("UPDATE batches SET state='done', finished=?, items=x'' WHERE id=?", (now, batch_id))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def abort_batch(self, batch_id: str) -> None:
        """The batch was not delivered (retry later with a new batch): forget the pending record."""
        self.db.execute("DELETE FROM batches WHERE id=? AND state='pending'", (batch_id,))

    def pending_batches(self) -> list[tuple[str, Batch]]:
        rows = self.db.execute(
            "SELECT sink, id, items FROM batches WHERE state='pending' ORDER BY begun"
        ).fetchall()
        return [(sink, Batch(bid, _items_dec.decode(items))) for sink, bid, items in rows]

    # -- dead letters -----------------------------------------------------------------------
    def add_dead(self, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            self._insert_dead(list(letters), time.time())
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _insert_dead(self, letters: list[DeadLetter], now: float) -> None:
        self.db.executemany(
            "INSERT INTO dead_letters(key, global_key, object, stage, rule, message, expected, actual,"
            " raw, at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(key) DO UPDATE SET stage=excluded.stage,"
            " rule=excluded.rule, message=excluded.message, expected=excluded.expected,"
            " actual=excluded.actual, raw=excluded.raw, attempts=dead_letters.attempts+1, at=excluded.at",
            [
                (
                    fold(d.key),
                    d.global_key,
                    _json.encode(d.object).decode(),
                    d.stage,
                    d.rule,
                    d.message,
                    None if d.expected is None else _json.encode(d.expected).decode(),
                    None if d.actual is None else _json.encode(d.actual).decode(),
                    d.raw,
                    d.at or now,
                )
                for d in letters
            ],
        )

    def dead_letters(self, f: DeadLetterFilter | None = None) -> list[DeadLetter]:
        sql, args = dead_letter_query("?", f or DeadLetterFilter())
        return [dead_letter_from_row(row) for row in self.db.execute(sql, args)]

    def requeue(self, keys: Sequence[str]) -> int:
        """Forget these dead letters so the objects are taken again. Returns how many."""
        folded = [fold(k) for k in keys]
        n = 0
        for i in range(0, len(folded), 500):
            chunk = folded[i : i + 500]
            cur = self.db.execute(
                f"DELETE FROM dead_letters WHERE key IN ({','.join('?' * len(chunk))})", chunk
            )
            n += cur.rowcount
        return n

    def purge(self, keys: Sequence[str]) -> int:
        """Drop dead letters for good (the objects stay skipped: recorded as refused)."""
        folded = [fold(k) for k in keys]
        n = 0
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            for i in range(0, len(folded), 500):
                chunk = folded[i : i + 500]
                marks = ",".join("?" * len(chunk))
                db.execute(
                    "INSERT OR IGNORE INTO accepted(key, global_key, status, batch_id, at)"
                    f" SELECT key, coalesce(global_key, key), 'purged', NULL, ? FROM dead_letters"
                    f" WHERE key IN ({marks})",
                    [time.time(), *chunk],
                )
                n += db.execute(f"DELETE FROM dead_letters WHERE key IN ({marks})", chunk).rowcount
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return n

    # -- checkpoints (resumable sources) ------------------------------------------------------
    async def get_checkpoint(self, name: str) -> str | None:
        row = self.db.execute("SELECT value FROM checkpoints WHERE name=?", (name,)).fetchone()
        return None if row is None else str(row[0])

    async def put_checkpoint(self, name: str, value: str) -> None:
        self.db.execute(
            "INSERT INTO checkpoints(name, value, at) VALUES (?,?,?)"
            " ON CONFLICT(name) DO UPDATE SET value=excluded.value, at=excluded.at",
            (name, value, time.time()),
        )

    def checkpoints(self, prefix: str) -> dict[str, str]:
        rows = self.db.execute(
            "SELECT name, value FROM checkpoints WHERE substr(name, 1, ?) = ?", (len(prefix), prefix)
        ).fetchall()
        return {str(n): str(v) for n, v in rows}

    # -- presigned URL expiries (labelbox upsert: the URL refresher) ----------------------------
    def put_url_expiries(self, rows: Sequence[UrlExpiry]) -> None:
        self.db.executemany(
            "INSERT INTO url_expiry(key, global_key, location, region, expires) VALUES (?,?,?,?,?)"
            " ON CONFLICT(key) DO UPDATE SET global_key=excluded.global_key, location=excluded.location,"
            " region=excluded.region, expires=excluded.expires",
            [(fold(r[0]), *r) for r in rows],
        )

    def urls_expiring(self, before: float, limit: int) -> list[UrlExpiry]:
        rows = self.db.execute(
            "SELECT global_key, location, region, expires FROM url_expiry WHERE expires < ?"
            " ORDER BY expires LIMIT ?",
            (before, limit),
        ).fetchall()
        return [(str(g), str(loc), str(r), float(e)) for g, loc, r, e in rows]

    # -- figures ---------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        db = self.db
        accepted = dict(db.execute("SELECT status, count(*) FROM accepted GROUP BY status").fetchall())
        dead_by_rule = dict(
            db.execute("SELECT rule, count(*) FROM dead_letters GROUP BY rule ORDER BY 2 DESC").fetchall()
        )
        pending = db.execute("SELECT count(*) FROM batches WHERE state='pending'").fetchone()[0]
        batches = db.execute("SELECT count(*), coalesce(sum(n),0) FROM batches WHERE state='done'").fetchone()
        last = db.execute("SELECT max(at) FROM accepted WHERE status != 'purged'").fetchone()[0]
        day = time.time() + 86400
        expiring = db.execute("SELECT count(*) FROM url_expiry WHERE expires < ?", (day,)).fetchone()[0]
        return {
            "accepted": int(accepted.get("accepted", 0)),
            "duplicates": int(accepted.get("duplicate", 0)),
            "dead_letters": int(sum(dead_by_rule.values())),
            "dead_letters_by_rule": dead_by_rule,
            "batches_done": int(batches[0]),
            "batches_pending": int(pending),
            "last_accepted_at": last,
            "urls_expiring_24h": int(expiring),
        }
