"""sd_notify over a real NOTIFY_SOCKET datagram socket bound by the test."""

from __future__ import annotations

import os
import re
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.ops.notify import (
    Notifier,
    extend_timeout_message,
    socket_address,
    status_message,
    watchdog_interval,
)


def _bind(address: str | bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(5.0)  # a bounded wait for each datagram, never an unbounded hang
    return sock


@pytest.fixture(params=["path", "abstract"])
def systemd(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket standing in for systemd, and the NOTIFY_SOCKET value naming it."""
    if request.param == "path":
        value = str(tmp_path / "notify.sock")
        sock = _bind(value)
    else:
        name = f"ingestd-test-{uuid.uuid4().hex}"
        value = "@" + name
        sock = _bind(b"\0" + name.encode())
    yield sock, value
    sock.close()


def _recv(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


class TestAddress:
    def test_abstract_name_gets_a_leading_nul(self) -> None:
        """'@name' is the abstract socket '\\0name' (the mistake many snippets make)."""
        assert socket_address("@foo/bar") == b"\0foo/bar"

    def test_path_is_kept(self) -> None:
        """An absolute path is used as is."""
        assert socket_address("/run/systemd/notify") == "/run/systemd/notify"

    @pytest.mark.parametrize("value", ["", "relative/path", "vsock:2:1234"])
    def test_unusable_values_disable_notifications(self, value: str) -> None:
        """Empty, relative or vsock addresses turn notifications off instead of failing."""
        assert socket_address(value) is None


class TestWatchdogInterval:
    @given(st.integers(min_value=1, max_value=10**12))
    def test_half_of_watchdog_usec(self, usec: int) -> None:
        """The ping interval is half of $WATCHDOG_USEC, in seconds."""
        assert watchdog_interval({"WATCHDOG_USEC": str(usec)}, 42) == pytest.approx(usec / 2e6)

    @given(st.text())
    def test_garbage_never_raises(self, raw: str) -> None:
        """Any $WATCHDOG_USEC either yields a positive interval or disables the watchdog."""
        got = watchdog_interval({"WATCHDOG_USEC": raw}, 1)
        assert got is None or got > 0

    def test_absent_or_zero_is_off(self) -> None:
        """No variable, or 0, means no watchdog."""
        assert watchdog_interval({}, 1) is None
        assert watchdog_interval({"WATCHDOG_USEC": "0"}, 1) is None

    def test_watchdog_pid_must_be_ours(self) -> None:
        """$WATCHDOG_PID naming another process disables the pings; naming us keeps them."""
        env = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}
        assert watchdog_interval(env, 4243) is None
        assert watchdog_interval(env, 4242) == 15.0

    def test_from_env_reads_the_interval(self) -> None:
        """Notifier.from_env derives the interval for this process."""
        env = {"WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid()), "NOTIFY_SOCKET": "@x"}
        assert Notifier.from_env(env).watchdog_interval == pytest.approx(0.1)


class TestMessages:
    def test_ready_and_status(self, systemd: tuple[socket.socket, str]) -> None:
        """READY=1 (with an optional status) and STATUS= arrive as single datagrams."""
        sock, value = systemd
        n = Notifier.from_env({"NOTIFY_SOCKET": value})
        assert n.enabled
        assert n.ready("started")
        assert _recv(sock) == "READY=1\nSTATUS=started"
        assert n.status("in_flight=3 delivered=10")
        assert _recv(sock) == "STATUS=in_flight=3 delivered=10"
        n.close()

    def test_status_is_one_line(self, systemd: tuple[socket.socket, str]) -> None:
        """A newline in a status would forge another field: it becomes a space."""
        sock, value = systemd
        n = Notifier.from_env({"NOTIFY_SOCKET": value})
        n.status("a\nREADY=1")
        assert _recv(sock) == "STATUS=a READY=1"
        assert status_message("x\r\ny") == "STATUS=x y"
        n.close()

    def test_watchdog_stopping_extend(self, systemd: tuple[socket.socket, str]) -> None:
        """WATCHDOG=1, WATCHDOG=trigger, STOPPING=1 and EXTEND_TIMEOUT_USEC in microseconds."""
        sock, value = systemd
        n = Notifier.from_env({"NOTIFY_SOCKET": value})
        n.watchdog()
        assert _recv(sock) == "WATCHDOG=1"
        n.watchdog_trigger()
        assert _recv(sock) == "WATCHDOG=trigger"
        n.stopping("draining 12 objects")
        assert _recv(sock) == "STOPPING=1\nSTATUS=draining 12 objects"
        n.extend_timeout(45)
        assert _recv(sock) == "EXTEND_TIMEOUT_USEC=45000000"
        n.extend_timeout(0.25)
        assert _recv(sock) == "EXTEND_TIMEOUT_USEC=250000"
        n.close()

    def test_extend_timeout_must_be_positive(self) -> None:
        """A non-positive extension is a programming error, named as such."""
        with pytest.raises(ValueError, match="EXTEND_TIMEOUT_USEC"):
            extend_timeout_message(0)

    def test_reloading_carries_monotonic_usec(self, systemd: tuple[socket.socket, str]) -> None:
        """RELOADING=1 comes with MONOTONIC_USEC from CLOCK_MONOTONIC (Type=notify-reload)."""
        sock, value = systemd
        n = Notifier.from_env({"NOTIFY_SOCKET": value})
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        n.reloading()
        after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        m = re.fullmatch(r"RELOADING=1\nMONOTONIC_USEC=(\d+)", _recv(sock))
        assert m, "RELOADING=1 must be followed by MONOTONIC_USEC=<digits>"
        assert before <= int(m.group(1)) <= after
        n.close()


class TestWithoutSystemd:
    def test_no_socket_is_a_no_op(self) -> None:
        """Without $NOTIFY_SOCKET every call does nothing and reports it."""
        n = Notifier.from_env({})
        assert not n.enabled
        assert not n.ready()
        assert not n.watchdog()
        assert n.dropped == 0

    def test_nobody_listening_is_counted_not_raised(self, tmp_path: Path) -> None:
        """A socket path with no listener (systemd restarting) drops the message, no exception."""
        n = Notifier.from_env({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
        assert not n.status("x")
        assert n.dropped == 1
        n.close()

    def test_full_queue_never_blocks(self, tmp_path: Path) -> None:
        """When systemd does not read, sends fail fast (non-blocking) instead of hanging."""
        path = str(tmp_path / "slow.sock")
        sock = _bind(path)
        n = Notifier.from_env({"NOTIFY_SOCKET": path})
        results = [n.status("x" * 1000) for _ in range(5000)]
        assert results[0] is True
        assert False in results, "the receive queue never filled: raise the count"
        assert n.dropped == results.count(False)
        n.close()
        sock.close()


class TestReloadCycle:
    def test_reloading_then_ready(self, systemd: tuple[socket.socket, str]) -> None:
        """A reload is bracketed by RELOADING=1 (+ MONOTONIC_USEC) and READY=1."""
        sock, value = systemd
        n = Notifier.from_env({"NOTIFY_SOCKET": value})
        applied = []
        with n.reload_cycle():
            assert _recv(sock).startswith("RELOADING=1\nMONOTONIC_USEC=")
            applied.append("limits")
        assert applied == ["limits"]
        assert _recv(sock) == "READY=1\nSTATUS=reloaded"
        n.close()

    def test_failed_reload_still_ends_the_reload(self, systemd: tuple[socket.socket, str]) -> None:
        """A reload that raises still sends READY=1 (old settings kept), names why, and re-raises."""
        sock, value = systemd
        n = Notifier.from_env({"NOTIFY_SOCKET": value})
        with pytest.raises(ValueError, match=r"sink\.max_concurrency"), n.reload_cycle():
            raise ValueError("sink.max_concurrency: must be >= 1, got 0")
        assert _recv(sock).startswith("RELOADING=1\n")
        assert _recv(sock) == (
            "READY=1\nSTATUS=reload failed, previous settings kept: sink.max_concurrency: must be >= 1, got 0"
        )
        n.close()
