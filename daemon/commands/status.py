"""``ingestd status -c CONFIG [--json]``: live figures from the running daemon, else the ledger's."""

from __future__ import annotations

import argparse
import asyncio
import time
from contextlib import AsyncExitStack
from typing import Any

import msgspec

from daemon.commands.common import iso, load_config, require_ledger, write
from daemon.core.config import Config, resolve
from daemon.ledger.store import open_store
from daemon.ops.status_client import LAST_RUN, read_status
from daemon.pipeline.waiting import WAITING, WaitingFigure
from workers.platforms.labelbox.imports import RECORD_PREFIX, summarize_records


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("status", help="what has been imported and refused")
    p.add_argument("-c", "--config", required=True, help="TOML configuration file")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=run)


async def _stats(cfg: Config) -> dict[str, Any]:
    async with AsyncExitStack() as stack:
        store = await open_store(cfg, stack)
        stats = await store.stats()
        last = await store.get_checkpoint(LAST_RUN)
        stats["last_run"] = msgspec.json.decode(last) if last else None
        records = await store.checkpoints(RECORD_PREFIX)
        stats["annotation_imports"], stats["annotation_lines"] = summarize_records(records.values())
        stats["annotations_waiting"] = waiting_figure(await store.get_checkpoint(WAITING), now=time.time())
        return stats


def waiting_figure(value: str | None, *, now: float) -> dict[str, Any]:
    """The waiting room's last recorded figure for ``status`` (pure): how many annotations wait
    for their media, the oldest one's age, when recorded, and whether the daemon had stopped."""
    if value is None:
        return {"count": 0, "oldest_seconds": None, "recorded_at": None, "given_back_at_stop": False}
    try:
        fig = msgspec.json.decode(value, type=WaitingFigure)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return {"count": None, "oldest_seconds": None, "recorded_at": None, "given_back_at_stop": False}
    return {
        "count": fig.count,
        "oldest_seconds": round(now - fig.oldest, 1) if fig.oldest is not None else None,
        "recorded_at": iso(fig.at),
        "given_back_at_stop": fig.stopped,
    }


def _waiting_line(w: dict[str, Any]) -> str:
    if w["count"] is None:
        return "unreadable record"
    if not w["count"]:
        return "0"
    text = f"{w['count']:,}, the oldest for {w['oldest_seconds']:,.0f} s"
    stop = "given back at the stop, waiting for a restart; " if w["given_back_at_stop"] else ""
    return f"{text}  ({stop}recorded {w['recorded_at']})"


def _pairs(d: dict[str, Any]) -> str:
    return "  ".join(f"{k} {_num(v)}" for k, v in d.items()) or "-"


def _num(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)


def live_table(doc: dict[str, Any], *, now: float) -> list[str]:
    """The daemon's ``/status`` for a person: one aligned line per figure, nested counts as
    ``name value`` pairs, times as UTC and an age (pure; ``--json`` gives the document as is)."""
    rows: list[tuple[str, str]] = []
    problems = doc.get("not_ready_because") or []
    for key, value in doc.items():
        if key in ("not_ready_because",):
            continue
        label = key.replace("_", " ")
        if key == "ready":
            rows.append(("ready", "yes" if value else "no: " + "; ".join(problems)))
        elif key == "uptime_seconds":
            rows.append(("uptime", f"{value:,.0f} s"))
        elif key == "last_success_timestamp":
            when = iso(value) if value else None
            rows.append(("last success", f"{when} ({now - value:,.0f} s ago)" if when else "-"))
        elif key in ("objects", "stages") and isinstance(value, dict):
            rows.append((label, "" if value else "-"))
            rows.extend((f"  {name}", _pairs(counts)) for name, counts in sorted(value.items()))
        elif isinstance(value, dict):
            rows.append((label, _pairs(value)))
        elif isinstance(value, list):
            rows.append((label, ", ".join(map(str, value)) or "-"))
        elif isinstance(value, bool):
            rows.append((label, "yes" if value else "no"))
        else:
            rows.append((label, _num(value)))
    return [f"{name:<18} {text}".rstrip() for name, text in rows]


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    live = read_status(cfg.http.listen) if cfg.http.listen else None
    if live is not None:
        live["source"] = "live (operations endpoint)"
        if args.json:
            write(msgspec.json.encode(live).decode())
        else:
            for line in live_table(live, now=time.time()):
                write(line)
        return 0
    require_ledger(cfg)
    stats = asyncio.run(_stats(cfg))
    stats["ledger"] = (
        "postgresql" if (cfg.ledger.dsn or cfg.ledger.dsn_secret) else str(resolve(cfg, cfg.ledger.path))
    )
    stats["last_accepted_at"] = iso(stats["last_accepted_at"])
    if stats["last_run"]:
        stats["last_run"]["finished_at"] = iso(stats["last_run"].get("finished_at"))
    if args.json:
        write(msgspec.json.encode(stats).decode())
        return 0
    write(f"ledger            {stats['ledger']}")
    write(f"accepted          {stats['accepted']}")
    # the ledger's duplicates are keys the platform said it already had; a run's summary also
    # counts offers of objects already final, which the ledger does not keep
    write(f"already there     {stats['duplicates']}  (the platform had them)")
    write(f"dead letters      {stats['dead_letters']}")
    for rule, n in stats["dead_letters_by_rule"].items():
        write(f"  {rule:<30} {n}")
    write(f"batches done      {stats['batches_done']}")
    write(f"batches pending   {stats['batches_pending']}")
    write(f"last accepted at  {stats['last_accepted_at'] or '-'}")
    write(f"URLs expiring 24h {stats.get('urls_expiring_24h', 0)}  (presigned row_data, refreshed by upsert)")
    write(f"annotation imports {_pairs(stats['annotation_imports'])}  (Labelbox import jobs by state)")
    write(f"annotation lines  {_pairs(stats['annotation_lines'])}")
    write(f"annotations waiting for media {_waiting_line(stats['annotations_waiting'])}")
    last = stats["last_run"]
    if last:  # the run's own figures, as its summary said them
        write(f"last run          {last.pop('finished_at') or '-'}")
        write(f"  {_pairs({k: v for k, v in last.items() if not isinstance(v, float)})}")
    return 0
