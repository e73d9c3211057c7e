"""Chaos over the spool source and the http sink: the real daemon is SIGKILLed at random moments
while the ingest server drops answers (stores the items, then aborts the connection) and fails
with 5xx at random; after the kills a clean ``--once`` run finishes the work. At the receiving
end every object is stored exactly once, and no object ever travelled under two
``Idempotency-Key`` values in requests the server took (stored or answered).

Short in the suite; ``CHAOS_KILLS=60 pytest tests/chaos`` for a longer run (``CHAOS_SEED`` fixes
the moments)."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, kill_at_random_moments
from tests.sinks.fault_server import FaultServer

PNG = ROOT / "examples" / "media" / "images" / "fractal.png"
KILLS = int(os.environ.get("CHAOS_KILLS", "3"))
SEED = int(os.environ.get("CHAOS_SEED", str(random.SystemRandom().randrange(1 << 30))))
OBJECTS = 60


def keys_per_item(server: FaultServer) -> dict[str, set[str]]:
    """Idempotency keys of the requests that reached the store (answered 200, or answer lost)."""
    seen: dict[str, set[str]] = defaultdict(set)
    for h in server.hits:
        if h.answer in ("200", "lost"):
            for k in h.keys:
                seen[k].add(h.idempotency_key)
    return seen


@pytest.fixture
def chaos_server() -> Iterator[FaultServer]:
    rng = random.Random(SEED)
    srv = FaultServer(key_field="global_key")
    srv.plan = lambda n, t: rng.choice(["lost", "lost", "503", "reset"]) if rng.random() < 0.4 else None
    asyncio.run(srv.start())
    yield srv
    asyncio.run(srv.stop())


def test_sigkill_and_lost_answers_never_store_twice(tmp_path: Path, chaos_server: FaultServer) -> None:
    rng = random.Random(SEED + 1)
    spool = tmp_path / "spool"
    spool.mkdir()
    names = [f"img{i:03d}.png" for i in range(OBJECTS)]
    for n in names:
        shutil.copyfile(PNG, spool / n)
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[source]\ntype = "spool"\npath = "{spool}"\nurl_prefix = "https://cdn.example.com/"\n'
        "stable_seconds = 0\npoll_interval = 0.1\n"
        '[target]\nplatform = "labelbox"\nglobal_key_template = "{key}"\n'
        f'[sink]\ntype = "http"\nurl = "{chaos_server.url}"\nmax_items = 7\nlinger_ms = 20\n'
        "max_retries = 1\nrequest_timeout = 2.0\nrequests_per_second = 200\n"
        '[ledger]\npath = "l.db"\n[log]\nlevel = "warning"\n'
    )
    env = {"NO_PROXY": "127.0.0.1,localhost"}
    kill_at_random_moments(cfg, KILLS, rng, env)
    chaos_server.plan = None  # the storm is over: the last run finishes the work
    final = subprocess.run(
        [sys.executable, "-m", "daemon", "run", "-c", str(cfg), "--once"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert final.returncode == 0, final.stderr[-2000:]
    assert sorted(chaos_server.stored) == names, f"seed {SEED}"
    assert all(n == 1 for n in chaos_server.deliveries.values()), f"seed {SEED}"
    twice = {k: v for k, v in keys_per_item(chaos_server).items() if len(v) > 1}
    assert twice == {}, f"seed {SEED}: items sent under several idempotency keys: {twice}"
