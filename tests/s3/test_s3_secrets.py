"""Secrets never leave where they belong: the real daemon runs with an API key (the sink's
Authorization header), AWS keys with a session token and presigned URLs in play, through an
auth failure, a 5xx, a lost answer, dead letters, an object gone, debug logs, the operations
endpoint (``/metrics``, ``/status``), ``ingestd status`` and ``dlq list/show``; everything it
printed or stored is searched for the secrets and for the presigned URLs' signatures."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from s3_moto import REGION, unique
from test_s3_cli import PNG, ROOT, s3_event

from tests.conftest import start_daemon
from tests.sinks.fault_server import FaultServer

API_KEY = "APIKEY-5e6f7a8b9c"
AWS_SECRET = "AWSSECRET-0f1e2d3c4b"
SESSION_TOKEN = "SESSIONTOKEN-9a8b7c6d5e"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


@pytest.fixture
def sink_server() -> Iterator[FaultServer]:
    import asyncio  # noqa: PLC0415 - the server's own thread runs the loop; this only starts it

    srv = FaultServer(key_field="global_key")
    # a 401 now stops delivery without refusing any object (CredentialsError): the secrets of that
    # path are grepped for in tests/e2e/test_exit_status.py and the platform sinks' CLI tests
    srv.faults.extend(["503", "503", "lost"])
    asyncio.run(srv.start())
    yield srv
    asyncio.run(srv.stop())


def _get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return r.read().decode()


def test_no_secret_in_anything_printed_or_stored(
    s3: Any, sqs: Any, queue: str, moto_endpoint: str, tmp_path: Path, sink_server: FaultServer
) -> None:
    bucket = unique("secrets")
    s3.create_bucket(Bucket=bucket)
    for k in ("a.png", "b.png", "c.png"):
        s3.put_object(Bucket=bucket, Key=k, Body=PNG)
    s3.put_object(Bucket=bucket, Key="bad.png", Body=b"not a png")
    for k in ("a.png", "b.png", "c.png", "bad.png", "gone.png"):  # gone.png was never there
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"Records": [s3_event(bucket, k, 100)]}))
    sqs.send_message(QueueUrl=queue, MessageBody="{not json")
    port = _free_port()
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[source]\ntype = "sqs"\nqueue_url = "{queue}"\nwait_time_seconds = 1\n'
        f'[aws]\nregion = "{REGION}"\nendpoint_url = "{moto_endpoint}"\naddressing_style = "path"\n'
        '[target]\nplatform = "labelbox"\nglobal_key_template = "{bucket}/{key}"\nurl_mode = "presign"\n'
        f'[sink]\ntype = "http"\nurl = "{sink_server.url}"\nmax_retries = 1\nmax_items = 1\nlinger_ms = 50\n'
        'request_timeout = 2.0\nsecret_headers = { Authorization = "ingest_token" }\n'
        f'[ledger]\npath = "l.db"\n[log]\nlevel = "debug"\n[http]\nlisten = "127.0.0.1:{port}"\n'
    )
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEKEYID",
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "AWS_SESSION_TOKEN": SESSION_TOKEN,
        "INGESTD_SECRET_INGEST_TOKEN": API_KEY,
        "NO_PROXY": "127.0.0.1,localhost",
    }
    proc = start_daemon(cfg, env, output=True)
    printed: list[str] = []
    try:
        # one object per batch: 503s and a lost answer, until all three are stored
        _wait(lambda: len(sink_server.stored) == 3)
        _wait(lambda: _dead(cfg, env) == 2)
        # the batch whose answer was lost is held (its bodies, presigned URLs included, pending
        # in the ledger) until it is re-sent under the same key; then they are cleared
        _wait(lambda: _pending(tmp_path / "l.db") == 0)
        printed += [_get(port, "/metrics"), _get(port, "/status"), _status(cfg, env)]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    printed += [out, err]
    assert sink_server.last_headers.get("Authorization") == API_KEY  # it was in play...
    listed = _cli(cfg, env, "dlq", "list", "--json")
    keys = [json.loads(line)["key"] for line in listed.splitlines()]
    assert len(keys) == 2  # the bad image and the undecodable body
    printed += [listed, _cli(cfg, env, "dlq", "show", *keys), _status(cfg, env)]
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("l.db*"))
    rows = [json.loads(line) for line in sink_server.stored.values()]
    signatures = {m for r in rows for m in re.findall(r"X-Amz-Signature=([0-9a-f]{64})", r["row_data"])}
    assert len(signatures) == 3 and all(SESSION_TOKEN in r["row_data"] for r in rows)  # ...and these too
    text = "\n".join(printed)
    for secret in [API_KEY, AWS_SECRET, SESSION_TOKEN, *signatures]:
        assert secret not in text, f"{secret[:12]}... printed"
        assert secret.encode() not in stored, f"{secret[:12]}... stored in the ledger"


def _cli(cfg: Path, env: dict[str, str], *args: str) -> str:
    command, *rest = args
    proc = subprocess.run(
        [sys.executable, "-m", "daemon", command, "-c", str(cfg), *rest],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return proc.stdout + proc.stderr


def _pending(db: Path) -> int:
    with closing(sqlite3.connect(db)) as c:  # closed: an open reader would keep the WAL alive
        return int(c.execute("SELECT count(*) FROM batches WHERE state='pending'").fetchone()[0])


def _status(cfg: Path, env: dict[str, str]) -> str:
    return _cli(cfg, env, "status", "--json")


def _dead(cfg: Path, env: dict[str, str]) -> int:
    return len(_cli(cfg, env, "dlq", "list", "--json").splitlines())
