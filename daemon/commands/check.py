"""``ingestd check -c CONFIG``: is this configuration ready to run?

Validates the configuration, then checks what can be checked from here: the ledger's and the
files sink's folders can be written, the spool/manifest path can be read, every secret the
config names can be loaded. The CLI injects ``probe(cfg) -> [(name, error or None)]``, which
builds the real source, sink and ledger and asks each whether it is reachable; its answers are
added. Prints one line per check and exits 1 naming each failure.

Also runnable alone, local checks only: ``python -m daemon.commands.check -c CONFIG``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable

from daemon.commands.access import writable_dir
from daemon.core import config as config_mod
from daemon.core.config import Config, ConfigError
from daemon.core.secrets import load_secret

Result = tuple[str, str | None]  # (what was checked, why it failed or None)
Probe = Callable[[Config], Awaitable[list[Result]]]


def local_checks(cfg: Config, environ: dict[str, str] | None = None) -> list[Result]:
    """The checks that need no network: paths and secrets."""
    out: list[Result] = []
    if not cfg.ledger.dsn:
        db = config_mod.resolve(cfg, cfg.ledger.path)
        problem = writable_dir(db.parent)
        if problem is None and db.exists() and not os.access(db, os.R_OK | os.W_OK):
            problem = f"{db} is not readable and writable by uid {os.getuid()}"
        out.append(("ledger.path", problem))
    if cfg.sink.type == "files":
        out.append(("sink.path", writable_dir(config_mod.resolve(cfg, cfg.sink.path))))
    if cfg.source.type in ("spool", "manifest"):
        src = config_mod.resolve(cfg, cfg.source.path)
        problem = None
        if not src.exists():
            problem = f"{src} does not exist"
        elif not os.access(src, os.R_OK):
            problem = f"{src} is not readable by uid {os.getuid()}"
        out.append(("source.path", problem))
    for header, name in sorted(cfg.sink.secret_headers.items()):
        try:
            load_secret(name, environ)
            out.append((f"sink.secret_headers.{header}", None))
        except ConfigError as e:
            out.append((f"sink.secret_headers.{header}", str(e)))
    return out


async def run_checks(cfg: Config, probe: Probe | None, environ: dict[str, str] | None = None) -> list[Result]:
    results = local_checks(cfg, environ)
    if probe is not None:
        results.extend(await probe(cfg))
    return results


def check(path: str, *, probe: Probe | None, out: Callable[[str], None] = print) -> int:
    """Run every check on the config at ``path``; print one line each; the exit status."""
    try:
        cfg = config_mod.load(path)
    except ConfigError as e:
        out(f"FAIL  config: {e}")
        return 1
    out(f"ok    config: {path}")
    results = asyncio.run(run_checks(cfg, probe))
    for name, problem in results:
        out(f"FAIL  {name}: {problem}" if problem else f"ok    {name}")
    if probe is None:
        out("note  source/sink/ledger reachability not checked (no dependency probe wired in)")
    return 1 if any(problem for _, problem in results) else 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], probe: Probe | None = None) -> None:
    """Add ``check`` to the CLI's subcommands; its handler is ``args.func(args) -> int``.

    ``probe`` reaches the real source, sink and ledger (the CLI passes
    ``daemon.wiring.probe_dependencies``); without it only the local checks run.
    """

    def command(args: argparse.Namespace) -> int:
        return check(args.config, probe=probe)

    p = sub.add_parser("check", help="validate a config and reach its source, sink and ledger")
    p.add_argument("-c", "--config", required=True, help="path of the TOML configuration")
    p.set_defaults(func=command)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ingestd")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["check", *(sys.argv[1:] if argv is None else argv)])
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
