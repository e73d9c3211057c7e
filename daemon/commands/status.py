"""``ingestd status -c CONFIG [--json]``: figures from the ledger."""

from __future__ import annotations

import argparse

import msgspec

from daemon.commands.common import iso, load_config, write
from daemon.config import resolve
from daemon.ledger import Ledger


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("status", help="what has been imported and refused")
    p.add_argument("-c", "--config", required=True)
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    path = resolve(cfg, cfg.ledger.path)
    with Ledger(path) as ledger:
        stats = ledger.stats()
    stats["ledger"] = str(path)
    stats["last_accepted_at"] = iso(stats["last_accepted_at"])
    if args.json:
        write(msgspec.json.encode(stats).decode())
        return 0
    write(f"ledger            {path}")
    write(f"accepted          {stats['accepted']}")
    write(f"duplicates        {stats['duplicates']}")
    write(f"dead letters      {stats['dead_letters']}")
    for rule, n in stats["dead_letters_by_rule"].items():
        write(f"  {rule:<30} {n}")
    write(f"batches done      {stats['batches_done']}")
    write(f"batches pending   {stats['batches_pending']}")
    write(f"last accepted at  {stats['last_accepted_at'] or '-'}")
    return 0
