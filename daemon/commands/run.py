"""``ingestd run -c CONFIG [--once]``."""

from __future__ import annotations

import argparse

from daemon.commands.common import load_config
from daemon.core.logs import configure


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="run the pipeline (daemon, or --once to drain the source and exit)")
    p.add_argument("-c", "--config", required=True, help="TOML configuration file")
    p.add_argument("--once", action="store_true", help="drain the source, print a JSON summary line, exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    configure(cfg.log.level)
    from daemon.service.runner import run as run_service  # noqa: PLC0415 - keep the light commands fast

    return run_service(cfg, once=args.once, config_path=args.config)
