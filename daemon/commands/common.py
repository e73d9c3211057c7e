"""What the subcommands share: loading the config with a clear error and exit status 2."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from daemon.core.config import Config, ConfigError, load


class CommandError(Exception):
    """Printed as ``ingestd: error: <message>``; exit status 2."""


def load_config(path: str) -> Config:
    try:
        return load(path)
    except ConfigError as e:
        raise CommandError(f"config {path}: {e}") from None


def parse_time(text: str) -> float:
    """An ISO-8601 time, or a duration ago like ``90s``, ``15m``, ``2h``, ``3d``."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text and text[-1] in units and text[:-1].replace(".", "", 1).isdigit():
        return datetime.now(UTC).timestamp() - float(text[:-1]) * units[text[-1]]
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"not a time: {text!r} (ISO-8601 or 15m/2h/3d ago)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def write(text: str) -> None:
    sys.stdout.write(text + "\n")
