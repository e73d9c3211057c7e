"""``ingestd run --once`` with ``[source] type = "redis"`` against a real redis-server: two
instances of the real CLI share one stream as competing consumers; every object once."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parents[2]
PNG = (ROOT / "examples" / "media" / "images" / "fractal.png").read_bytes()


async def test_two_cli_instances_share_a_stream(
    client: Redis, redis_url: str, stream: str, tmp_path: Path
) -> None:
    """Entries naming local files (plus one malformed) are split between two consumers of one
    group; together they deliver each file once and dead-letter the malformed entry once."""
    media = tmp_path / "media"
    media.mkdir()
    names = [f"img{i:04d}.png" for i in range(400)]
    for n in names:
        (media / n).write_bytes(PNG)
    pipe = client.pipeline()
    for n in names:
        pipe.xadd(stream, {"body": json.dumps({"path": str(media / n), "global_key": n})})
    pipe.xadd(stream, {"body": "{broken"})
    await pipe.execute()
    procs = []
    for i in range(2):
        cfg = tmp_path / f"c{i}.toml"
        cfg.write_text(
            f'[source]\ntype = "redis"\nredis_url = "{redis_url}"\nstream = "{stream}"\ngroup = "g"\n'
            f'consumer = "cli-{i}"\nurl_prefix = "https://cdn.example.com/"\n'
            f'[pipeline]\nmax_in_flight = 32\n[sink]\npath = "out{i}"\nmax_items = 20\nlinger_ms = 20\n'
            f'[ledger]\npath = "l{i}.db"\n'
            '[log]\nlevel = "warning"\n'
        )
        procs.append(
            asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "daemon",
                "run",
                "-c",
                str(cfg),
                "--once",
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        )
    started = [await p for p in procs]
    outs = [await asyncio.wait_for(p.communicate(), 120) for p in started]
    for p, (_, err) in zip(started, outs, strict=True):
        assert p.returncode == 0, err.decode()[-2000:]
    summaries = [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outs]
    delivered: list[str] = []
    for i in range(2):
        for f in (tmp_path / f"out{i}").glob("labelbox-*.json"):
            delivered.extend(r["global_key"] for r in json.loads(f.read_bytes()))
    assert sorted(delivered) == names
    assert sum(s["seen"] for s in summaries) == len(names) + 1  # nothing was given to both
    assert sum(s["dead_lettered"] for s in summaries) == 1
    assert await client.xpending(stream, "g") == {"pending": 0, "min": None, "max": None, "consumers": []}


async def test_poison_entry_is_dead_lettered_per_object_and_requeued(
    client: Redis, redis_url: str, stream: str, tmp_path: Path
) -> None:
    """An entry delivered too often (consumers that died holding it) still names its object: it is
    dead-lettered as that object (``source.poison``), and ``dlq requeue`` adds it to the stream
    again, where the next run imports it."""
    (tmp_path / "a.png").write_bytes(PNG)
    entry = await client.xadd(
        stream, {"body": json.dumps({"path": str(tmp_path / "a.png"), "global_key": "a"})}
    )
    await client.xgroup_create(stream, "g", id="0")
    await client.xreadgroup("g", "cli", {stream: ">"})
    for _ in range(5):  # what restarts that crashed holding it leave behind
        await client.xclaim(stream, "g", "cli", 0, [entry])
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[source]\ntype = "redis"\nredis_url = "{redis_url}"\nstream = "{stream}"\ngroup = "g"\n'
        'consumer = "cli"\nurl_prefix = "https://cdn.example.com/"\nmax_receive_count = 5\n'
        '[sink]\npath = "out"\nlinger_ms = 20\n[ledger]\npath = "l.db"\n[log]\nlevel = "warning"\n'
    )

    def cli(command: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "daemon", command, "-c", str(cfg), *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    first = await asyncio.to_thread(cli, "run", "--once")
    assert first.returncode == 0, first.stderr[-2000:]
    assert json.loads(first.stdout.strip().splitlines()[-1])["dead_lettered"] == 1
    listed = await asyncio.to_thread(cli, "dlq", "list", "--json")
    (letter,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (letter["key"], letter["rule"]) == ("a", "source.poison")
    assert letter["actual"]["receive_count"] > 5
    requeued = await asyncio.to_thread(cli, "dlq", "requeue", "--all")
    assert requeued.returncode == 0 and "requeued 1" in requeued.stdout, requeued.stderr
    second = await asyncio.to_thread(cli, "run", "--once")
    assert json.loads(second.stdout.strip().splitlines()[-1])["delivered"] == 1
    rows = [r for f in (tmp_path / "out").glob("labelbox-*.json") for r in json.loads(f.read_bytes())]
    assert [r["global_key"] for r in rows] == ["a"]
