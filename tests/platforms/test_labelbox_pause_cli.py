"""The daemon (not ``--once``) against the local Labelbox server while Labelbox refuses our key
(issue 13's gap): intake pauses, nothing is uploaded or dead-lettered, the key is re-checked at a
backoff; once Labelbox takes the key again (access restored on the platform's side), intake
resumes by itself and every row is created exactly once."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
from pathlib import Path
from typing import Any

from tests.platforms.labelbox_server import LabelboxServer
from tests.platforms.test_labelbox_cli import KEY, names, setup, start

N = 40


async def test_a_refused_key_pauses_the_daemon_until_labelbox_takes_it_again(
    tmp_path: Path, server: LabelboxServer
) -> None:
    server.api_key = "the-key-labelbox-knows-today"  # ours is refused until access is restored
    recheck = "credentials_recheck_seconds = 0.05\ncredentials_recheck_max_seconds = 0.3\n"
    cfg = setup(tmp_path, server, N, recheck)
    (tmp_path / "media" / "m.ndjson").unlink()  # a spool folder, not a manifest: the daemon never ends
    spool = 'type = "spool"\npath = "media"\nstable_seconds = 0.1'
    text = cfg.read_text()
    assert 'type = "manifest"\npath = "media/m.ndjson"' in text
    cfg.write_text(text.replace('type = "manifest"\npath = "media/m.ndjson"', spool))
    proc = await start(cfg, KEY, "run", "-c", str(cfg))
    assert proc.stdout is not None
    events: list[dict[str, Any]] = []
    lines: list[str] = []

    async def read() -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            lines.append(raw.decode())
            if raw.startswith(b"{"):
                events.append(json.loads(raw))

    reader = asyncio.create_task(read())

    def said(start: str) -> int:
        return sum(1 for e in events if str(e.get("event", "")).startswith(start))

    def refused() -> int:
        return sum(1 for r in server.requests if r.answer == "401")

    async def until(cond: Any, timeout: float = 60.0) -> None:
        async with asyncio.timeout(timeout):
            while not cond():
                await asyncio.sleep(0.02)

    try:
        await until(lambda: said("intake paused"))
        seen = refused()
        await until(lambda: refused() >= seen + 6)  # re-checks go by, each refused ...
        assert not server.creations and server.count("uploadFile") == 0  # ... nothing is uploaded
        server.api_key = KEY  # Labelbox takes our key again
        await until(lambda: len(server.creations) == N)
        await until(lambda: said("intake resumed"))
    finally:
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            await proc.wait()
        await reader
    assert proc.returncode == 0, "".join(lines)[-3000:]
    assert sorted(server.creations) == names(N) and max(server.creations.values()) == 1
    with sqlite3.connect(tmp_path / "l.db") as c:
        assert c.execute("SELECT count(*) FROM dead_letters").fetchone() == (0,)
    assert said("intake paused") == 1 and said("intake resumed") == 1
    (finished,) = [e for e in events if e.get("event") == "run finished"]
    assert finished["retried"] == 0 and finished["unfinished"] == 0  # given back, not failed
    text = "".join(lines)
    assert KEY not in text and "Invalid API key" in text
