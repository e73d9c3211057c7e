"""The daemon against moto_server's SQS and an ingest endpoint that refuses our key (issue 13's gap).

While the endpoint answers 401, intake pulls nothing: the messages' ApproximateReceiveCount stays
bounded (read from moto's own records, so reading it does not count as a receive), however many
re-checks go by, and no object turns poison (``max_receive_count`` is set low on purpose). Once
the endpoint takes the key again, intake resumes by itself and every object is delivered exactly
once; the queue is left empty and nothing is dead-lettered.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from s3_moto import apoll, queue_counts
from test_s3_cli import ROOT, announced_pngs, config, gk

from tests.sinks.fault_server import FaultServer

N = 30
MAX_RECEIVES = 3


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def receive_counts(endpoint: str, bucket: str) -> dict[str, int]:
    """Each of our messages' highest ApproximateReceiveCount, from moto's model data (no receive)."""
    with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=10) as r:
        doc = json.load(r)
    counts: dict[str, int] = {}
    for m in doc.get("sqs", {}).get("Message", []):
        if bucket in str(m.get("body", "")):
            counts[m["id"]] = max(counts.get(m["id"], 0), int(m.get("approximate_receive_count", 0)))
    return counts


def readyz(port: int) -> tuple[int, list[str]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as r:
            return r.status, json.load(r)["reasons"]
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)["reasons"]


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    (value,) = re.findall(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(value)


def log_events(path: Path, start: str) -> list[dict[str, Any]]:
    found = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if str(event.get("event", "")).startswith(start):
                found.append(event)
    return found


async def test_refused_key_pauses_intake_without_receive_churn_then_everything_lands_once(
    s3: Any, sqs: Any, queue: str, moto_endpoint: str, tmp_path: Path
) -> None:
    bucket, keys = announced_pngs(s3, sqs, queue, "refused", N)

    refusing = [True]
    server = FaultServer(plan=lambda _n, _t: "401" if refusing[0] else None, key_field="global_key")
    url = await server.start()
    cfg = config(
        tmp_path,
        moto_endpoint,
        f'[source]\ntype = "sqs"\nqueue_url = "{queue}"\nwait_time_seconds = 1\nreceivers = 2\n'
        f"visibility_timeout = 30\nmax_receive_count = {MAX_RECEIVES}\n"
        "[pipeline]\nmax_in_flight = 20\n",
    )
    sink = (
        f'type = "http"\nurl = "{url}"\nmax_items = 10\nlinger_ms = 20\n'
        "credentials_recheck_seconds = 0.05\ncredentials_recheck_max_seconds = 0.3"
    )
    text = cfg.read_text().replace('type = "files"\npath = "out"\nlinger_ms = 50', sink)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    text += f'[http]\nlisten = "127.0.0.1:{port}"\n'
    cfg.write_text(text.replace('level = "warning"', 'level = "info"'))
    out = tmp_path / "daemon.log"
    with out.open("w") as sink_out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "run", "-c", str(cfg)],
            cwd=ROOT,
            stdout=sink_out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        await apoll(lambda: log_events(out, "intake paused"), timeout=60)

        def rechecks() -> int:
            return sum(1 for h in server.hits if h.items == 0 and h.answer == "401")

        seen = rechecks()
        await apoll(lambda: rechecks() >= seen + 5, timeout=30)
        during = receive_counts(moto_endpoint, bucket)
        await apoll(lambda: rechecks() >= seen + 12, timeout=30)  # more re-checks go by ...
        later = receive_counts(moto_endpoint, bucket)
        assert later == during, "receive counts climbed while intake was paused"
        assert max(later.values()) <= 2, later  # received, given back once, received and held
        assert len(later) <= 20 + 10  # the rest was never received while paused
        sent = [h.idempotency_key for h in server.hits if h.items]
        assert len(sent) <= 3 and server.stored == {}  # no batch sent while refused but the first ones

        status, reasons = readyz(port)  # /readyz and status name the refusal while it lasts
        assert status == 503 and any(r.startswith("sink refused our credentials: ") for r in reasons)
        live = subprocess.run(
            [sys.executable, "-m", "daemon", "status", "-c", str(cfg)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert "no: sink refused our credentials: " in live.stdout and "HTTP 401" in live.stdout
        assert re.search(r"^intake paused +yes$", live.stdout, re.MULTILINE), live.stdout
        assert metric(port, "ingestd_intake_paused") == 1

        refusing[0] = False  # the key works again: nothing to do for the operator
        await apoll(lambda: len(server.stored) == N, timeout=60)
        await apoll(lambda: queue_counts(sqs, queue) == (0, 0), timeout=60)
        await apoll(lambda: log_events(out, "intake resumed"), timeout=10)
        await apoll(lambda: readyz(port)[0] == 200, timeout=30)
        assert metric(port, "ingestd_intake_paused") == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        await server.stop()
    log_text = out.read_text()
    assert code == 0, log_text[-3000:]
    assert sorted(server.stored) == sorted(gk(bucket, k) for k in keys)
    assert set(server.deliveries.values()) == {1}, "an object was delivered twice"
    final = receive_counts(moto_endpoint, bucket)
    assert len(final) == N and max(final.values()) <= MAX_RECEIVES, final  # none turned poison
    with sqlite3.connect(tmp_path / "l.db") as c:
        assert c.execute("SELECT count(*) FROM dead_letters").fetchone() == (0,)
    assert len(log_events(out, "intake paused")) == 1 and len(log_events(out, "intake resumed")) == 1
    assert len(log_events(out, "sink refused our credentials")) == 1
    assert "testing" not in log_text  # the (fake) AWS secret never appears in the log
