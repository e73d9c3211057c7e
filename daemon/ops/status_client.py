"""The client side of the operations endpoint: where it listens, and its live ``/status``.

Kept apart from ``daemon.ops.health`` (the aiohttp server) so ``ingestd status`` starts fast: it
needs only the standard library to ask a running daemon for its figures.
"""

from __future__ import annotations

import re
import urllib.request
from typing import Any

import msgspec


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9464`` for IPv6) -> ``(host, port)``."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^:\[\]]+):(\d{1,5})", listen)
    if not m:
        raise ValueError(f"http.listen: must be HOST:PORT, got {listen!r}")
    host, port = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    if int(port) > 65535:
        raise ValueError(f"http.listen: port must be 0..65535, got {port}")
    return host, int(port)


def read_status(listen: str, *, timeout: float = 2.0) -> dict[str, Any] | None:
    """``/status`` of the daemon listening on ``listen``, or ``None`` if none answers there.

    For ``ingestd status`` (a synchronous command): live figures while the daemon runs, the
    ledger's otherwise. A wildcard listen address is reached on loopback.
    """
    host, port = parse_listen(listen)
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104 -- compared, not bound
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        with urllib.request.urlopen(f"http://{netloc}/status", timeout=timeout) as resp:
            body: dict[str, Any] = msgspec.json.decode(resp.read())
            return body
    except (OSError, msgspec.DecodeError):
        return None
