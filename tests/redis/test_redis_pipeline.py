"""The real pipeline fed by the redis source: acks, retries, dead letters and the PEL at the end."""

from __future__ import annotations

import json
from pathlib import Path

from redis.asyncio import Redis

from daemon.build import Builder
from daemon.jobs import Job
from daemon.ledger import Ledger
from daemon.pipeline import Pipeline, Settings
from daemon.sinks.files import FilesSink
from tests.redis.stream_tools import add, pending_ids
from workers.probe.media import MediaInfo
from workers.reads import ReadError

IMAGE = MediaInfo(valid=True, kind="image", container="jpeg", mime_type="image/jpeg", width=64, height=48)


async def prober(job: Job) -> MediaInfo:
    if "flaky" in job.ref.key:
        raise ReadError(f"{job.ref.key}: HTTP 503", transient=True, status=503)
    return IMAGE


async def test_pipeline_drains_a_stream_once(client: Redis, stream: str, make_source, tmp_path: Path) -> None:
    """Good entries are delivered and acked; malformed and endlessly failing ones end as dead letters."""
    good = [f"https://cdn.example.com/img{i}.jpg" for i in range(20)]
    await add(client, stream, *(json.dumps(u) for u in good))
    (bad,) = await add(client, stream, "not json")
    (flaky,) = await add(client, stream, json.dumps("https://cdn.example.com/flaky.jpg"))
    src = await make_source(once=True, visibility=0.3, max_deliveries=2)
    ledger = Ledger(tmp_path / "ledger.db").open()
    pipeline = Pipeline(
        source=src,
        deliverer=FilesSink(tmp_path / "out", "labelbox"),
        ledger=ledger,
        prober=prober,
        builder=Builder(
            platform="labelbox", accept_kinds=["image"], strict=False, make_url=lambda r: r.url or ""
        ),
        key_for=lambda r: r.key,
        settings=Settings(max_in_flight=32, max_items=10, linger=0.01, retry_delay=0.05),
    )
    counters = await pipeline.run()
    assert counters.delivered == 20
    rows = [r for f in sorted((tmp_path / "out").glob("labelbox-*.json")) for r in json.loads(f.read_bytes())]
    assert sorted(r["global_key"] for r in rows) == sorted(good)
    dead = {d.key: d for d in ledger.dead_letters()}
    malformed, poison = dead.pop(f"msg:redis:{stream}:{bad}"), dead.pop(f"msg:redis:{stream}:{flaky}")
    assert dead == {}
    assert malformed.raw == b"not json" and "body is not valid JSON" in malformed.message
    assert poison.message.startswith("poison: delivered 3 times")
    assert poison.raw == b'"https://cdn.example.com/flaky.jpg"'
    assert await pending_ids(client, stream) == []
    ledger.close()
