"""What both ledger stores record and how it is queried: dead letters, claims, key folding, URL expiries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from daemon.core.jobs import Rejection


def fold(key: str) -> str:
    return key.casefold()


# (global key, location of the presigned row_data without its query, its region, expiry epoch s)
UrlExpiry = tuple[str, str, str, float]


class Claimed(msgspec.Struct, frozen=True):
    """Keys to skip: ``known`` (final already: casefolded key -> global key as recorded) and
    ``busy`` (casefolded keys another instance holds)."""

    known: dict[str, str]
    busy: set[str]


class FinalState(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What the ledger holds for a key that is final: ``accepted``/``duplicate``/``purged``, or
    ``dead`` with the dead letter's rule and message (what an annotation waiting for it needs)."""

    status: str
    rule: str | None = None
    message: str | None = None

    @property
    def usable(self) -> bool:
        """The object is on the platform (accepted now or before)."""
        return self.status in ("accepted", "duplicate")


FINAL_STATES_SQL = (
    "SELECT key, status, NULL, NULL FROM accepted WHERE key IN ({keys})"
    " UNION ALL SELECT key, 'dead', rule, message FROM dead_letters WHERE key IN ({keys})"
)


def final_states_from(rows: Sequence[Sequence[Any]]) -> dict[str, FinalState]:
    """Casefolded key -> its state; a key both accepted and dead-lettered counts as accepted."""
    out: dict[str, FinalState] = {}
    for key, status, rule, message in rows:
        if key not in out or status != "dead":
            out[key] = FinalState(status=status, rule=rule, message=message)
    return out


class DeadLetter(msgspec.Struct, kw_only=True, omit_defaults=True):
    key: str
    global_key: str | None = None
    object: Any = None
    stage: str
    rule: str
    message: str
    expected: Any = None
    actual: Any = None
    raw: bytes | None = None
    attempts: int = 1
    at: float = 0.0


class DeadLetterFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Which dead letters to list: every given condition must hold.

    ``rule`` is exact, or a literal prefix when it ends in ``*`` (no LIKE: ``_`` is not a
    wildcard and case matters); ``prefix`` is a literal prefix of the casefolded key;
    ``since``/``until`` are epoch seconds.
    """

    keys: tuple[str, ...] = ()
    rule: str | None = None
    stage: str | None = None
    prefix: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int | None = None


def dead_letter_query(mark: str, f: DeadLetterFilter) -> tuple[str, list[Any]]:
    """The dead-letter listing query for both stores (``mark`` is the driver's placeholder)."""
    keys, rule, stage, prefix, since, until, limit = (
        f.keys,
        f.rule,
        f.stage,
        f.prefix,
        f.since,
        f.until,
        f.limit,
    )
    where: list[str] = []
    args: list[Any] = []
    if keys:
        where.append(f"key IN ({','.join([mark] * len(keys))})")
        args.extend(fold(k) for k in keys)
    if rule and rule.endswith("*"):
        where.append(f"substr(rule, 1, {mark}) = {mark}")
        args.extend([len(rule) - 1, rule[:-1]])
    elif rule:
        where.append(f"rule = {mark}")
        args.append(rule)
    if stage:
        where.append(f"stage = {mark}")
        args.append(stage)
    if prefix:
        p = fold(prefix)
        where.append(f"substr(key, 1, {mark}) = {mark}")
        args.extend([len(p), p])
    if since is not None:
        where.append(f"at >= {mark}")
        args.append(since)
    if until is not None:
        where.append(f"at < {mark}")
        args.append(until)
    sql = (
        "SELECT key, global_key, object, stage, rule, message, expected, actual, raw, attempts, at"
        " FROM dead_letters"
    )
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY at"
    if limit:
        sql += f" LIMIT {int(limit)}"
    return sql, args


def dead_letter_from_row(row: Sequence[Any]) -> DeadLetter:
    k, gk, obj, stage, rule, msg, exp, act, raw, attempts, at = row
    return DeadLetter(
        key=k,
        global_key=gk,
        object=msgspec.json.decode(obj) if obj else None,
        stage=stage,
        rule=rule,
        message=msg,
        expected=msgspec.json.decode(exp) if exp else None,
        actual=msgspec.json.decode(act) if act else None,
        raw=None if raw is None else bytes(raw),
        attempts=attempts,
        at=at,
    )


def dead_letter_for(key: str, ref: Any, rejection: Rejection, *, raw: bytes | None = None) -> DeadLetter:
    return DeadLetter(
        key=key,
        global_key=key if not key.startswith("msg:") else None,
        object=ref,
        stage=rejection.stage,
        rule=rejection.rule,
        message=rejection.message,
        expected=rejection.expected,
        actual=rejection.actual,
        raw=raw,
    )
