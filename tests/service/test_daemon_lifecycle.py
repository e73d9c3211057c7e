"""The real daemon under a stand-in systemd: ``ingestd run`` as a subprocess with
``NOTIFY_SOCKET`` bound by the test, ``WATCHDOG_USEC`` set and the operations endpoint on."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Systemd:
    """Collects the daemon's sd_notify datagrams as systemd does: promptly, on its own thread
    (an unread datagram socket fills after a few messages and later ones would be dropped)."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.path = path
        self.messages: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                m = self.sock.recv(65536).decode()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.messages.append(m)

    def wait_for(self, predicate, timeout: float = 20.0) -> str:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            with self._lock:
                new = self.messages[seen:]
            for m in new:
                if predicate(m):
                    return m
            seen += len(new)
            time.sleep(0.01)
        raise AssertionError(f"no matching notification in {timeout}s; got {self.messages[-10:]}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Systemd, Path, int]]:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    port = _free_port()
    cfg = tmp_path / "examples" / "service.toml"
    cfg.write_text(
        (tmp_path / "examples" / "local.toml").read_text()
        + f'\n[http]\nlisten = "127.0.0.1:{port}"\n\n[pipeline]\nstall_seconds = 30\n'
    )
    systemd = Systemd(tmp_path / "notify.sock")
    env = {**os.environ, "NOTIFY_SOCKET": str(systemd.path), "WATCHDOG_USEC": "400000", "WATCHDOG_PID": ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "daemon", "run", "-c", str(cfg)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc, systemd, cfg, port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
        systemd.close()


def _get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _stopped(proc: subprocess.Popen[str], timeout: float = 30) -> tuple[str, str]:
    """The daemon's output once it has exited; if it has not within ``timeout``, kill it and fail
    with the end of what it wrote (the drain says every few seconds what it is waiting for)."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=10)
        tail = "\n".join([*out.splitlines()[-30:], "--- stderr ---", *err.splitlines()[-30:]])
        raise AssertionError(f"the daemon did not exit within {timeout}s of SIGTERM:\n{tail}") from None


def _objects_total(port: int) -> dict[tuple[str, str], float]:
    _, body = _get(port, "/metrics")
    out: dict[tuple[str, str], float] = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            if s.name == "ingestd_objects_total":
                out[s.labels["stage"], s.labels["outcome"]] = s.value
    return out


class TestUnderSystemd:
    def test_ready_watchdog_metrics_reload_and_stop(self, daemon) -> None:  # type: ignore[no-untyped-def]
        """READY after start, watchdog pings, counters that move with real work, RELOADING around
        SIGHUP with the new settings applied, STOPPING on SIGTERM, and exit 0."""
        proc, systemd, cfg, port = daemon
        systemd.wait_for(lambda m: m.startswith("READY=1"))
        systemd.wait_for(lambda m: m == "WATCHDOG=1")
        deadline = time.monotonic() + 30
        while sum(v for (st, _), v in _objects_total(port).items()) < 9:
            assert time.monotonic() < deadline, _objects_total(port)
            time.sleep(0.05)
        totals = _objects_total(port)
        assert totals["deliver", "ok"] == 6
        assert sum(v for (_, outcome), v in totals.items() if outcome == "dead_lettered") == 3
        status, body = _get(port, "/readyz")
        assert status == 200 and json.loads(body)["ready"] is True
        status_doc = json.loads(_get(port, "/status")[1])
        assert status_doc["ready"] is True and "stages" in status_doc
        live = subprocess.run(
            [sys.executable, "-m", "daemon", "status", "-c", str(cfg), "--json"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        live_doc = json.loads(live.stdout)
        assert live_doc["source"] == "live (operations endpoint)" and live_doc["uptime_seconds"] > 0

        cfg.write_text(cfg.read_text().replace('level = "info"', 'level = "debug"'))
        n_before = len(systemd.messages)
        proc.send_signal(signal.SIGHUP)
        systemd.wait_for(lambda m: m.startswith("RELOADING=1") and "MONOTONIC_USEC=" in m)
        systemd.wait_for(lambda m: m.startswith("READY=1") and "reloaded" in m)
        assert len(systemd.messages) > n_before
        # work after the reload is logged at the new level
        shutil.copy(cfg.parent / "media" / "images" / "chart.jpg", cfg.parent / "media" / "late.jpg")
        deadline = time.monotonic() + 30
        while _objects_total(port).get(("deliver", "ok"), 0) < 7:
            assert time.monotonic() < deadline
            time.sleep(0.05)

        proc.send_signal(signal.SIGTERM)
        systemd.wait_for(lambda m: m.startswith("STOPPING=1"))
        stdout, stderr = _stopped(proc)
        assert proc.returncode == 0, stderr
        events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
        reload = next(e for e in events if e["event"] == "configuration reloaded")
        assert reload["log_level"] == "debug"
        debug = [e for e in events if e["level"] == "debug"]
        assert any(e.get("global_key") == "demo/late.jpg" for e in debug), "debug level in force after SIGHUP"
        assert not any(e["level"] == "debug" for e in events[: events.index(reload)])
        assert events[-1]["event"] == "run finished"

    def test_readyz_reports_draining(self, daemon) -> None:  # type: ignore[no-untyped-def]
        """After SIGTERM the endpoint (while it still answers) is not ready: the daemon is draining."""
        proc, systemd, _, port = daemon
        systemd.wait_for(lambda m: m.startswith("READY=1"))
        assert _get(port, "/readyz")[0] == 200
        assert _get(port, "/livez")[0] == 200
        proc.send_signal(signal.SIGTERM)
        _stopped(proc)
        assert proc.returncode == 0
