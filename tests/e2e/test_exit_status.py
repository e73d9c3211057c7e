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


async def _run_against(
    tmp_path: Path, server: FaultServer, n: int, sink_extra: str = "", *, then_check: bool = False
) -> tuple[list[Path], subprocess.CompletedProcess[str], subprocess.CompletedProcess[str] | None]:
    """``run --once`` of ``n`` images listed in a manifest, http sink to ``server``; then ``check``."""
    (tmp_path / "media").mkdir()
    paths = _tiny_images(tmp_path / "media", n)
    (tmp_path / "m.ndjson").write_text("".join(json.dumps(f"media/{p.name}") + "\n" for p in paths))
    url = await server.start()
    try:
        cfg = tmp_path / "c.toml"
        cfg.write_text(
            MANIFEST_SOURCE + f'[sink]\ntype = "http"\nurl = "{url}"\nmax_items = 10\nlinger_ms = 20\n'
            f'{sink_extra}[ledger]\npath = "l.db"\n[log]\nlevel = "warning"\n'
        )
        proc = await asyncio.to_thread(ingestd, "run", "-c", str(cfg), "--once", timeout=120)
        hits = len(server.hits)
        checked = await asyncio.to_thread(ingestd, "check", "-c", str(cfg)) if then_check else None
        del server.hits[hits:]  # what the run sent, not the check
    finally:
        await server.stop()
    return paths, proc, checked


async def test_objects_given_back_then_delivered_are_finished(tmp_path: Path) -> None:
    """An endpoint answering 503 now and then, with no retries in the Deliverer: objects go back to
    the source and are delivered when offered again; every object is final and the exit is 0."""
    server = FaultServer(plan=lambda n, _t: "503:0" if n % 3 == 1 else None, key_field="global_key")
    paths, proc, _ = await _run_against(tmp_path, server, 60, "max_retries = 0\n")
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


async def test_a_sink_refusing_our_credentials_dead_letters_nothing_and_exits_1(tmp_path: Path) -> None:
    """An endpoint answering 401 to everything: nothing is dead-lettered, the objects stay with the
    source, --once stops at once and exits 1 naming the problem; ``check`` fails on it although
    the same server would answer a HEAD."""
    server = FaultServer(plan=lambda _n, _t: "401", key_field="global_key")
    _, proc, checked = await _run_against(tmp_path, server, 30, then_check=True)
    assert checked is not None
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "ingestd: the sink refused our credentials: " in proc.stderr and "HTTP 401" in proc.stderr
    s = summary(proc.stdout)
    assert s["dead_lettered"] == 0 and s["delivered"] == 0 and s["unfinished"] == s["seen"]
    with sqlite3.connect(tmp_path / "l.db") as c:
        assert c.execute("SELECT count(*) FROM dead_letters").fetchone() == (0,)
    logs = [json.loads(line) for line in proc.stdout.splitlines()[:-1] if line.startswith("{")]
    refusals = [e for e in logs if e["event"].startswith("sink refused our credentials")]
    assert len(refusals) == 1  # said once
    # no retry storm: no batch sent twice (only those already on their way when the first 401 came)
    batches = [h.idempotency_key for h in server.hits if h.items]
    assert len(batches) == len(set(batches)) <= 3
    assert checked.returncode == 1
    assert "FAIL  sink reachable: CredentialsError: " in checked.stdout and "HTTP 401" in checked.stdout
