"""``ingestd run --once`` with ``[sink] type = "labelbox"`` against the local Labelbox server:
the real CLI in a subprocess, the server in the test's loop (so the test can hold tasks, count
requests and kill the daemon while a task is in flight)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import struct
import sys
import zlib
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.platforms.labelbox_server import TEST_KEY, LabelboxServer

KEY = TEST_KEY


def tiny_png() -> bytes:
    """A valid 8x8 RGB PNG (the probe reads it as an image)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * 8 for _ in range(8))
    ihdr = struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


def names(n: int) -> list[str]:
    return [f"img{i:05d}.png" for i in range(n)]


def setup(tmp_path: Path, server: LabelboxServer, n: int, sink: str = "") -> Path:
    media = tmp_path / "media"
    media.mkdir(exist_ok=True)
    png = tiny_png()
    for name in names(n):
        (media / name).write_bytes(png)
    (media / "m.ndjson").write_text("".join(json.dumps(p) + "\n" for p in names(n)))
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[source]\ntype = "manifest"\npath = "media/m.ndjson"\nurl_prefix = "https://cdn.example.com/"\n'
        f'[target]\nplatform = "labelbox"\ndataset = "{server.dataset_id}"\n'
        f'[sink]\ntype = "labelbox"\nendpoint = "{server.url}"\nmax_items = 100\nlinger_ms = 50\n'
        f"request_timeout = 5\n{sink}"
        '[ledger]\npath = "l.db"\n[log]\nlevel = "info"\n'
    )
    return cfg


async def start(cfg: Path, key: str = KEY, *args: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "INGESTD_SECRET_LABELBOX_API_KEY": key}
    command = args or ("run", "-c", str(cfg), "--once")
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "daemon", *command,
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def run(cfg: Path, key: str = KEY, *args: str) -> tuple[int, dict[str, int], str]:
    proc = await start(cfg, key, *args)
    async with asyncio.timeout(90):
        out, err = await proc.communicate()
    text = out.decode() + err.decode()
    assert KEY not in text  # the API key never reaches a log line
    lines = out.decode().strip().splitlines()
    summary = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    assert proc.returncode is not None
    return proc.returncode, summary, text


def dead_letters(tmp_path: Path) -> dict[str, str]:
    with sqlite3.connect(tmp_path / "l.db") as c:
        rows = c.execute("SELECT global_key, message FROM dead_letters").fetchall()
    assert all(KEY not in m for _, m in rows)
    return dict(rows)


class TestLabelboxCli:
    async def test_full_run(self, tmp_path: Path, server: LabelboxServer) -> None:
        """300 images, three tasks: every row created exactly once, in few requests."""
        code, summary, _ = await run(setup(tmp_path, server, 300))
        assert code == 0, summary
        assert summary["delivered"] == 300 and summary["unfinished"] == 0
        assert sorted(server.creations) == names(300) and max(server.creations.values()) == 1
        row = server.rows["img00007.png"]
        assert row["row_data"] == "https://cdn.example.com/img00007.png" and row["media_type"] == "IMAGE"
        assert row["dataset_id"] == server.dataset_id
        assert server.count("upsertDataRows") == 3
        assert len(server.requests) <= 3 * 6 + 2  # per task: chunk, manifest, upsert, poll(s), page

    async def test_partial_failures_and_existing_keys(self, tmp_path: Path, server: LabelboxServer) -> None:
        """Keys Labelbox already has are duplicates; a refused row is a dead letter with its message."""
        for k in ("img00001.png", "img00002.png"):
            server.rows[k] = {"global_key": k, "row_data": "https://old"}
        server.row_failures = {"img00003.png": "Failed to access URL: 403:Forbidden"}
        code, summary, _ = await run(setup(tmp_path, server, 20))
        assert code == 0
        assert (summary["delivered"], summary["duplicates"], summary["dead_lettered"]) == (17, 2, 1)
        assert dead_letters(tmp_path) == {"img00003.png": "Failed to access URL: 403:Forbidden"}
        assert "img00001.png" not in server.creations and len(server.creations) == 17

    @pytest.mark.parametrize("fault", ["429", "429:1"])
    async def test_rate_limited(self, tmp_path: Path, server: LabelboxServer, fault: str) -> None:
        """Rate limited with and without Retry-After: everything delivered once, nothing dead."""
        server.plan = lambda n, _op: fault if n in (0, 3, 6) else None
        code, summary, text = await run(setup(tmp_path, server, 150))
        assert code == 0 and summary["delivered"] == 150 and summary["dead_lettered"] == 0
        assert max(server.creations.values()) == 1 and len(server.creations) == 150
        assert sum(1 for r in server.requests if r.answer == fault) == 3
        if fault == "429:1":
            assert "endpoint.paused" in text

    async def test_5xx_storm(self, tmp_path: Path, server: LabelboxServer) -> None:
        """A run of 5xx, HTML and 520 answers and dropped connections: retried, nothing lost or doubled."""
        storm = ["500", "502html", "520", "reset", "500", "lost", "502html"]
        server.plan = lambda n, _op: storm[n - 1] if 1 <= n <= len(storm) else None
        code, summary, _ = await run(setup(tmp_path, server, 120))
        assert code == 0 and summary["delivered"] + summary["duplicates"] == 120
        assert summary["dead_lettered"] == 0
        assert max(server.creations.values()) == 1 and len(server.creations) == 120

    async def test_wrong_key(self, tmp_path: Path, server: LabelboxServer) -> None:
        """A refused key: non-zero exit naming the problem, nothing dead-lettered, nothing taken."""
        code, summary, text = await run(setup(tmp_path, server, 10), key="lb-expired-key")
        assert code != 0
        assert "Invalid API key" in text and "lb-expired-key" not in text
        assert summary.get("dead_lettered", 0) == 0 and dead_letters(tmp_path) == {}
        assert not server.creations and server.count("uploadFile") == 0

    async def test_sigkill_while_a_task_is_in_flight(self, tmp_path: Path, server: LabelboxServer) -> None:
        """Killed after the task was recorded: the restart polls it; nothing is uploaded again,
        every row exists exactly once and the refused one is a dead letter with Labelbox's message."""
        server.hold = True
        server.row_failures = {"img00005.png": "Failed to access URL: 404:Not Found"}
        cfg = setup(tmp_path, server, 40)
        proc = await start(cfg)
        async with asyncio.timeout(60):
            while server.count("createdTasks") == 0:
                await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        await proc.communicate()
        uploads, tasks = server.count("uploadFile"), len(server.tasks)
        assert tasks == 1 and not server.creations
        server.hold = False
        code, summary, text = await run(cfg)
        assert code == 0, text[-2000:]
        assert "labelbox.task_resumed" in text
        assert server.count("uploadFile") == uploads and len(server.tasks) == 1
        assert sorted(server.creations) == sorted(set(names(40)) - {"img00005.png"})
        assert max(server.creations.values()) == 1 and summary["unfinished"] == 0
        assert dead_letters(tmp_path) == {"img00005.png": "Failed to access URL: 404:Not Found"}

    async def test_check_proves_the_key_and_names_the_dataset(
        self, tmp_path: Path, server: LabelboxServer
    ) -> None:
        """ingestd check: an authenticated dataset read; failures carry Labelbox's own message."""
        cfg = setup(tmp_path, server, 1)
        code, _, text = await run(cfg, KEY, "check", "-c", str(cfg))
        assert code == 0 and "ok    sink reachable" in text and server.dataset_name in text
        code, _, text = await run(cfg, "lb-expired-key", "check", "-c", str(cfg))
        assert code == 1 and "FAIL  sink reachable" in text and "Invalid API key" in text
        assert "lb-expired-key" not in text
        server.dataset_id = "ds-other"
        code, _, text = await run(cfg, KEY, "check", "-c", str(cfg))
        assert code == 1 and "Dataset ds-1 not found" in text
