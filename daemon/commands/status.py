"""``ingestd status -c CONFIG [--json]``: live figures from the running daemon, else the ledger's."""

from __future__ import annotations

import argparse
import asyncio
from contextlib import AsyncExitStack
from typing import Any

import msgspec

from daemon.commands.common import iso, load_config, write
from daemon.core.config import Config, resolve
from daemon.ledger.store import open_store
from daemon.ops.status_client import read_status


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("status", help="what has been imported and refused")
    p.add_argument("-c", "--config", required=True)
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=run)


async def _stats(cfg: Config) -> dict[str, Any]:
    async with AsyncExitStack() as stack:
        return await (await open_store(cfg, stack)).stats()


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    live = read_status(cfg.http.listen) if cfg.http.listen else None
    if live is not None:
        live["source"] = "live (operations endpoint)"
        if args.json:
            write(msgspec.json.encode(live).decode())
        else:
            for k, v in live.items():
                write(f"{k:<26} {v}")
        return 0
    stats = asyncio.run(_stats(cfg))
    stats["ledger"] = (
        "postgresql" if (cfg.ledger.dsn or cfg.ledger.dsn_secret) else str(resolve(cfg, cfg.ledger.path))
    )
    stats["last_accepted_at"] = iso(stats["last_accepted_at"])
    if args.json:
        write(msgspec.json.encode(stats).decode())
        return 0
    write(f"ledger            {stats['ledger']}")
    write(f"accepted          {stats['accepted']}")
    write(f"duplicates        {stats['duplicates']}")
    write(f"dead letters      {stats['dead_letters']}")
    for rule, n in stats["dead_letters_by_rule"].items():
        write(f"  {rule:<30} {n}")
    write(f"batches done      {stats['batches_done']}")
    write(f"batches pending   {stats['batches_pending']}")
    write(f"last accepted at  {stats['last_accepted_at'] or '-'}")
    write(f"URLs expiring 24h {stats.get('urls_expiring_24h', 0)}  (presigned row_data, refreshed by upsert)")
    return 0
