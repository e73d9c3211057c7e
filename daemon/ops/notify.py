"""sd_notify: tell systemd how the service is doing, over ``$NOTIFY_SOCKET``.

The protocol (sd_notify(3), declared stable by systemd) is one ``AF_UNIX``/``SOCK_DGRAM``
datagram of newline-separated ``KEY=VALUE`` fields. A socket path starting with ``@`` lives in
the abstract namespace (the ``@`` stands for a leading NUL byte). Without ``$NOTIFY_SOCKET``
(not started by systemd, or ``Type=simple``) every call is a no-op.

Sends never block the event loop: the socket is non-blocking and a datagram that cannot be
queued right now is dropped and counted (systemd's queue is deep; a dropped ``STATUS=`` is
harmless and the next watchdog tick sends another ``WATCHDOG=1``).

The messages the service sends, and when:

* ``READY=1`` once the source and the sink are reachable and the ledger is open;
* ``STATUS=...`` with live counts (``systemctl status`` shows it);
* ``WATCHDOG=1`` at half of ``$WATCHDOG_USEC``, only while the pipeline makes progress
  (see :mod:`daemon.ops.watchdog`);
* ``STOPPING=1`` on SIGTERM, then ``EXTEND_TIMEOUT_USEC=...`` while the drain makes progress;
* ``RELOADING=1`` + ``MONOTONIC_USEC=...`` on SIGHUP, then ``READY=1`` when the new limits
  are in force.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import structlog

log = structlog.get_logger()


def socket_address(value: str) -> str | bytes | None:
    """The address to send to for a ``$NOTIFY_SOCKET`` value; ``None`` when unusable.

    ``@name`` is the abstract name ``\\0name``; otherwise an absolute filesystem path.
    (``vsock:`` addresses, used by VMs, are not supported: ``None``.)
    """
    if not value:
        return None
    if value[0] == "@":
        return b"\0" + value[1:].encode()
    if value[0] == "/":
        return value
    return None


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings: half of ``$WATCHDOG_USEC``, or ``None`` if off.

    Off when the variable is absent or not a positive integer, or when ``$WATCHDOG_PID`` is
    set and names another process (the watchdog was meant for a parent or a child of ours).
    """
    raw = environ.get("WATCHDOG_USEC", "")
    if not raw.isascii() or not raw.isdigit():
        return None
    usec = int(raw)
    if usec <= 0:
        return None
    owner = environ.get("WATCHDOG_PID", "")
    if owner and (not owner.isascii() or not owner.isdigit() or int(owner) != pid):
        return None
    return usec / 2 / 1_000_000


def reloading_message(monotonic_usec: int) -> str:
    """``RELOADING=1`` with the ``CLOCK_MONOTONIC`` timestamp ``Type=notify-reload`` requires."""
    return f"RELOADING=1\nMONOTONIC_USEC={monotonic_usec}"


def extend_timeout_message(seconds: float) -> str:
    """Ask for ``seconds`` more before systemd's current start/stop timeout fires."""
    if seconds <= 0:
        raise ValueError(f"EXTEND_TIMEOUT_USEC: seconds must be > 0, got {seconds}")
    return f"EXTEND_TIMEOUT_USEC={round(seconds * 1_000_000)}"


def status_message(text: str) -> str:
    """``STATUS=`` takes one line: newlines would start new fields, so they become spaces."""
    return "STATUS=" + " ".join(text.splitlines())


class Notifier:
    """One notification socket, opened lazily, kept for the life of the process."""

    def __init__(self, address: str | bytes | None, *, watchdog: float | None = None) -> None:
        self.address = address
        self.watchdog_interval = watchdog
        self.dropped = 0
        self._sock: socket.socket | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        env = os.environ if environ is None else environ
        return cls(
            socket_address(env.get("NOTIFY_SOCKET", "")),
            watchdog=watchdog_interval(env, os.getpid()),
        )

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, message: str) -> bool:
        """Send one datagram; ``True`` if queued. Never blocks, never raises for I/O."""
        if self.address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(message.encode(), self.address)
            return True
        except OSError as e:
            # BlockingIOError (queue full), ENOENT/ECONNREFUSED (systemd restarted): the next
            # message is another try; the service must not die because systemd is busy.
            self.dropped += 1
            log.debug("sd_notify send failed", error=e.strerror or type(e).__name__, dropped=self.dropped)
            return False

    def ready(self, status: str | None = None) -> bool:
        return self.send("READY=1" + ("\n" + status_message(status) if status else ""))

    def status(self, text: str) -> bool:
        return self.send(status_message(text))

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def watchdog_trigger(self) -> bool:
        """Ask systemd to act as if the watchdog timed out now (a self-detected wedge)."""
        return self.send("WATCHDOG=trigger")

    def stopping(self, status: str | None = None) -> bool:
        return self.send("STOPPING=1" + ("\n" + status_message(status) if status else ""))

    def reloading(self) -> bool:
        return self.send(reloading_message(time.monotonic_ns() // 1000))

    def extend_timeout(self, seconds: float) -> bool:
        return self.send(extend_timeout_message(seconds))

    @contextmanager
    def reload_cycle(self) -> Iterator[None]:
        """``RELOADING=1`` now, ``READY=1`` when the block ends, even if the reload failed.

        systemd keeps the unit "reloading" until ``READY=1``; a failed reload keeps the old
        settings, says so in ``STATUS=`` and re-raises for the caller to log.
        """
        self.reloading()
        try:
            yield
        except Exception as e:
            self.ready(f"reload failed, previous settings kept: {e}")
            raise
        self.ready("reloaded")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
