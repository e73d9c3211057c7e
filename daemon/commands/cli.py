"""The ``ingestd`` command line: run | probe | sign | validate | status | dlq | check."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import sys
import traceback
from collections.abc import Sequence

import structlog

from daemon.commands import check, dlq, probe, sign, status, validate
from daemon.commands import run as run_cmd
from daemon.commands.common import CommandError
from daemon.core.config import Config

COMMANDS = (run_cmd, probe, sign, validate, status, dlq)
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for any tool whose reader left


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ingestd", description="Feed media into Labelbox and Encord.")
    p.add_argument("--debug", action="store_true", help="print the traceback of an unexpected error")
    p.add_argument("--version", action="version", version=f"ingestd {_version()}", help="print the version")
    sub = p.add_subparsers(dest="command", required=True)
    for cmd in COMMANDS:
        cmd.register(sub)
    check.register(sub, probe=_probe_dependencies)
    return p


def _version() -> str:
    try:
        return importlib.metadata.version("ingestd")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


async def _probe_dependencies(cfg: Config) -> list[tuple[str, str | None]]:
    from daemon.service import wiring  # noqa: PLC0415 - aiohttp & co. only for the commands that need them

    return await wiring.probe_dependencies(cfg)


def reason(e: BaseException) -> str:
    """One line for an unexpected error: the innermost exception of a group, type and message."""
    while isinstance(e, BaseExceptionGroup) and e.exceptions:
        e = e.exceptions[0]
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _quiet_stdout() -> None:
    """The reader went away (``ingestd status | head``): drop the rest of our output."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.func(args)
        sys.stdout.flush()
    except CommandError as e:
        sys.stderr.write(f"ingestd: error: {e}\n")
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as e:  # the last resort: one line, the traceback only where it is wanted
        if structlog.is_configured():  # the JSON log of ``run``; other commands log nothing
            structlog.get_logger().error("unexpected error", reason=reason(e), exc_info=True)
        if args.debug:
            traceback.print_exc()
        sys.stderr.write(
            f"ingestd: error: {reason(e)}{'' if args.debug else ' (--debug for the traceback)'}\n"
        )
        return 1
    return code


if __name__ == "__main__":
    raise SystemExit(main())
