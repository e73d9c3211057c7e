"""``ingestd dlq -c CONFIG list|show|requeue|purge``: the dead-letter store.

Filters (list, requeue, purge): ``--rule`` (exact, or a prefix ending in ``*``), ``--stage``,
``--prefix`` (global key prefix), ``--since``/``--until`` (ISO-8601 or ``15m``/``2h``/``3d``
ago). ``requeue`` forgets the dead letters so the next run takes the objects again (for a queue
source it also announces them to the queue again, see ``daemon.ledger.requeue``; what it could
not announce, such as a body that never decoded, is kept, named on stderr with what to do, and
the exit status is 1); ``purge`` drops them for good. Both need ``--all`` or keys or a filter,
so nothing is emptied by accident.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from contextlib import AsyncExitStack

import msgspec

from daemon.commands.common import CommandError, iso, load_config, parse_time, require_ledger, write
from daemon.core.config import Config
from daemon.ledger.records import DeadLetter, DeadLetterFilter
from daemon.ledger.store import LedgerStore, open_store


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("dlq", help="list, show, requeue or purge dead letters")
    p.add_argument("-c", "--config", required=True, help="TOML configuration file (its ledger)")
    p.add_argument(
        "action",
        choices=["list", "show", "requeue", "purge"],
        help="requeue: forget them so the next run takes the objects again; "
        "purge: drop them for good (the objects stay known and are skipped)",
    )
    p.add_argument("keys", nargs="*", help="global keys (show, requeue, purge)")
    p.add_argument(
        "--all", action="store_true", help="requeue/purge every dead letter that matches the filters"
    )
    p.add_argument("--rule", help="rule name, or a prefix ending in * (labelbox.video.*)")
    p.add_argument("--stage", help="intake, read, probe, url, validate, build, batch or deliver")
    p.add_argument("--prefix", help="global keys starting with this")
    p.add_argument("--since", help="dead-lettered at or after: ISO-8601 or 15m/2h/3d ago")
    p.add_argument("--until", help="dead-lettered before: ISO-8601 or 15m/2h/3d ago")
    p.add_argument("--limit", type=int, help="at most this many (list)")
    p.add_argument("--json", action="store_true", help="JSON lines")
    p.set_defaults(func=run)


async def _select(ledger: LedgerStore, args: argparse.Namespace) -> list[DeadLetter]:
    return await ledger.dead_letters(
        DeadLetterFilter(
            keys=tuple(args.keys),
            rule=args.rule,
            stage=args.stage,
            prefix=args.prefix,
            since=parse_time(args.since) if args.since else None,
            until=parse_time(args.until) if args.until else None,
            limit=args.limit,
        )
    )


def _line(d: DeadLetter) -> str:
    vals = ""
    if d.expected is not None or d.actual is not None:
        vals = f" (expected {d.expected!r}, actual {d.actual!r})"
    return f"{iso(d.at)}  {d.global_key or d.key}  [{d.stage}] {d.rule}: {d.message}{vals}"


def _json(d: DeadLetter) -> str:
    out = msgspec.structs.asdict(d)
    out["at"] = iso(d.at)
    raw = out.pop("raw")
    if raw is not None:
        out["raw"] = raw.decode("utf-8", "replace")
    return msgspec.json.encode(out).decode()


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    filtered = any((args.rule, args.stage, args.prefix, args.since, args.until))
    if args.action in ("requeue", "purge") and not (args.all or args.keys or filtered):
        raise CommandError(f"dlq {args.action}: name keys, give a filter, or pass --all")
    if args.action == "show" and not args.keys:
        raise CommandError("dlq show: name at least one key")
    require_ledger(cfg)
    return asyncio.run(_run(cfg, args))


async def _run(cfg: Config, args: argparse.Namespace) -> int:
    async with AsyncExitStack() as stack:
        ledger = await open_store(cfg, stack)
        letters = await _select(ledger, args)
        if args.action in ("list", "show"):
            for d in letters:
                write(_json(d) if args.json or args.action == "show" else _line(d))
            if args.keys and len(letters) < len(args.keys):
                missing = {k.casefold() for k in args.keys} - {d.key for d in letters}
                raise CommandError(f"no dead letter for: {', '.join(sorted(missing))}")
            return 0
        if args.action == "requeue" and cfg.source.type in ("sqs", "redis"):
            from daemon.ledger.requeue import announce  # noqa: PLC0415 - queue clients only when needed

            done = await announce(cfg, letters)
            letters = [d for d in letters if d.key in set(done.sent)]
            for key, why in done.skipped.items():
                sys.stderr.write(f"ingestd: not requeued: {key}: {why}\n")
            if done.skipped:
                sys.stderr.write(_NOT_REQUEUED.format(n=len(done.skipped), config=args.config))
        else:
            done = None
        keys = [d.key for d in letters]
        n = await (ledger.requeue(keys) if args.action == "requeue" else ledger.purge(keys))
        write(
            msgspec.json.encode({"action": args.action, "count": n}).decode()
            if args.json
            else f"{args.action}d {n} dead letter(s)"
        )
        return 1 if done is not None and done.skipped else 0


_NOT_REQUEUED = (
    "ingestd: {n} dead letter(s) could not be requeued and are kept. A message body that could not be"
    " decoded names no object: see it with `ingestd dlq -c {config} show KEY`, send a corrected"
    " message to the queue yourself, then `ingestd dlq -c {config} purge KEY`. Other failures"
    " (the queue refused the message): run the same requeue again.\n"
)
