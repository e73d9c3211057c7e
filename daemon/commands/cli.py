"""The ``ingestd`` command line: run | probe | sign | validate | status | dlq | check."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from daemon.commands import check, dlq, probe, sign, status, validate
from daemon.commands import run as run_cmd
from daemon.commands.common import CommandError
from daemon.core.config import Config

COMMANDS = (run_cmd, probe, sign, validate, status, dlq)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ingestd", description="Feed media into Labelbox and Encord.")
    sub = p.add_subparsers(dest="command", required=True)
    for cmd in COMMANDS:
        cmd.register(sub)
    check.register(sub, probe=_probe_dependencies)
    return p


async def _probe_dependencies(cfg: Config) -> list[tuple[str, str | None]]:
    from daemon.service import wiring  # noqa: PLC0415 - aiohttp & co. only for the commands that need them

    return await wiring.probe_dependencies(cfg)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except CommandError as e:
        sys.stderr.write(f"ingestd: error: {e}\n")
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
