"""``ingestd run`` with the http sink against a fault-injecting endpoint on 127.0.0.1: thousands
of objects, transient faults, lost answers, per-item rejections; every object ends stored
exactly once at the server or dead-lettered with the server's reason."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT
from tests.e2e.test_run_cli import _tiny_images
from tests.sinks.fault_server import FaultServer

FAULTS = ["503", "429:0.2", "500", "reset", "lost", "html502", "502"]


class TestHttpSink:
    async def test_every_object_stored_once_or_dead_lettered_with_the_servers_reason(
        self, tmp_path: Path
    ) -> None:
        """1,500 objects through the real CLI; one request in six fails in some way."""
        media = tmp_path / "media"
        media.mkdir()
        paths = _tiny_images(media, 1500)
        (media / "m.ndjson").write_text("".join(json.dumps(p.name) + "\n" for p in paths))
        rng = random.Random(7)
        faults = {n: rng.choice(FAULTS) for n in range(2000) if rng.random() < 1 / 6}
        bad = {f"img{i:05d}.png": f"label schema rejects item {i}" for i in (3, 777, 1499)}
        server = FaultServer(plan=lambda n, _t: faults.get(n), bad_keys=bad, key_field="global_key")
        url = await server.start()
        try:
            cfg = tmp_path / "c.toml"
            cfg.write_text(
                '[source]\ntype = "manifest"\npath = "media/m.ndjson"\nurl_prefix = "https://cdn.example.com/"\n'
                f'[sink]\ntype = "http"\nurl = "{url}"\nmax_items = 50\nlinger_ms = 20\n'
                "requests_per_second = 300\nmax_concurrency = 4\nmax_retries = 10\nretry_budget = 0.5\n"
                'request_timeout = 5\n[ledger]\npath = "l.db"\n[log]\nlevel = "warning"\n'
            )
            proc = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "daemon", "run", "-c", str(cfg), "--once"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        finally:
            await server.stop()
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert summary["unfinished"] == 0 and summary["dead_lettered"] == 3
        assert summary["delivered"] + summary["duplicates"] == 1497
        assert set(server.stored) == {p.name for p in paths} - set(bad)
        assert max(server.deliveries.values()) == 1  # stored exactly once each
        with sqlite3.connect(tmp_path / "l.db") as c:
            dead = dict(c.execute("SELECT global_key, message FROM dead_letters").fetchall())
        assert dead == bad
        answers = {h.answer for h in server.hits}
        assert {"503", "reset", "lost"} <= answers  # the faults really happened
