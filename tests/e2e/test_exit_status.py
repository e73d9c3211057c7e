"""``ingestd run --once``: the summary counts distinct objects and their final states, and the
exit status says what happened (0 all final, 1 some not final, 2 usage/config, 3 interrupted)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT, ingestd
from tests.e2e.test_run_cli import _tiny_images, _wait_for, summary
from tests.sinks.fault_server import FaultServer

MANIFEST_SOURCE = '[source]\ntype = "manifest"\npath = "m.ndjson"\nurl_prefix = "https://cdn.example.com/"\n'


def test_an_object_listed_twice_is_one_object_and_one_duplicate(tmp_path: Path) -> None:
    """A manifest naming the same object twice: one object delivered, one duplicate, exit 0."""
    (tmp_path / "media").mkdir()
    (path,) = _tiny_images(tmp_path / "media", 1)
    (tmp_path / "m.ndjson").write_text(f'"media/{path.name}"\n"media/{path.name}"\n')
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        MANIFEST_SOURCE + '[sink]\npath = "out"\n[ledger]\npath = "l.db"\n[log]\nlevel = "warning"\n'
    )
    proc = ingestd("run", "-c", str(cfg), "--once")
    assert proc.returncode == 0, proc.stderr
    s = summary(proc.stdout)
    assert (s["seen"], s["delivered"], s["duplicates"], s["unfinished"]) == (1, 1, 1, 0)
    assert s["retried"] == 0  # the second copy waited for the first: not given back for later


async def test_objects_given_back_then_delivered_are_finished(tmp_path: Path) -> None:
    """An endpoint answering 503 now and then, with no retries in the Deliverer: objects go back to
    the source and are delivered when offered again; every object is final and the exit is 0."""
    (tmp_path / "media").mkdir()
    paths = _tiny_images(tmp_path / "media", 60)
    (tmp_path / "m.ndjson").write_text("".join(json.dumps(f"media/{p.name}") + "\n" for p in paths))
    server = FaultServer(plan=lambda n, _t: "503:0" if n % 3 == 1 else None, key_field="global_key")
    url = await server.start()
    try:
        cfg = tmp_path / "c.toml"
        cfg.write_text(
            MANIFEST_SOURCE + f'[sink]\ntype = "http"\nurl = "{url}"\nmax_items = 10\nlinger_ms = 20\n'
            'max_retries = 0\n[ledger]\npath = "l.db"\n[log]\nlevel = "warning"\n'
        )
        proc = await asyncio.to_thread(ingestd, "run", "-c", str(cfg), "--once", timeout=120)
    finally:
        await server.stop()
    assert proc.returncode == 0, proc.stderr[-2000:]
    s = summary(proc.stdout)
    assert s["retried"] > 0, "the faults should have sent objects back to the source"
    assert (s["seen"], s["unfinished"]) == (60, 0)
    assert s["delivered"] + s["duplicates"] >= 60
    assert set(server.stored) == {f"media/{p.name}" for p in paths}


def test_sigterm_during_once_drains_and_exits_3(tmp_path: Path) -> None:
    """SIGTERM while --once waits for more input: the drain completes, the summary is printed,
    and the exit status 3 says "interrupted, nothing lost, input not done"."""
    spool = tmp_path / "in"
    spool.mkdir()
    (done,) = _tiny_images(spool, 1)
    settling = spool / "settling.png"
    settling.write_bytes(done.read_bytes())
    past, future = time.time() - 3600, time.time() + 3600
    os.utime(done, (past, past))  # settled long ago: taken at once
    os.utime(settling, (future, future))  # modified "in the future": never settles, --once waits
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[source]\ntype = "spool"\npath = "in"\nstable_seconds = 600\npoll_interval = 0.05\n'
        'url_prefix = "https://cdn.example.com/"\n'
        '[sink]\npath = "out"\nlinger_ms = 10\n[ledger]\npath = "l.db"\n[log]\nlevel = "warning"\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "daemon", "run", "-c", str(cfg), "--once"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    db = tmp_path / "l.db"

    def accepted() -> int:
        if not db.exists():
            return 0
        try:
            with sqlite3.connect(db, timeout=1) as c:
                return int(c.execute("SELECT count(*) FROM accepted").fetchone()[0])
        except sqlite3.OperationalError:
            return 0

    try:
        _wait_for(lambda: accepted() == 1)
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 3, stderr
    s = summary(stdout)
    assert (s["seen"], s["delivered"], s["unfinished"]) == (1, 1, 0)
