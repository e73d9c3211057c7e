"""The real pipeline fed by the redis source: acks, retries, dead letters and the PEL at the end."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

from redis.asyncio import Redis

from daemon.core.jobs import Job
from daemon.ledger.sqlite import Ledger
from daemon.ledger.store import SqliteStore
from daemon.pipeline.build import Builder
from daemon.pipeline.pipeline import Pipeline
from daemon.pipeline.stages import Settings
from daemon.sinks.files import FilesSink
from daemon.sources.redis_streams import RedisStreamSource
from tests.redis.stream_tools import Reader, add, eventually, pending_ids
from workers.probe.media import MediaInfo
from workers.reads import ReadError

IMAGE = MediaInfo(valid=True, kind="image", container="jpeg", mime_type="image/jpeg", width=64, height=48)


async def prober(job: Job) -> MediaInfo:
    if "flaky" in job.ref.key:
        raise ReadError(f"{job.ref.key}: HTTP 503", transient=True, status=503)
    return IMAGE


Prober = Callable[[Job], Awaitable[MediaInfo]]


def pipeline_for(
    source: RedisStreamSource, tmp: Path, probe: Prober = prober, drain: float = 5.0
) -> Pipeline:
    return Pipeline(
        source=source,
        deliverer=FilesSink(tmp / "out", "labelbox"),
        ledger=SqliteStore(Ledger(tmp / "ledger.db").open()),
        prober=probe,
        builder=Builder(
            platform="labelbox", accept_kinds=["image"], strict=False, make_url=lambda r: r.url or ""
        ),
        key_for=lambda r: r.key,
        settings=Settings(max_in_flight=32, max_items=10, linger=0.01, retry_delay=0.05, drain_timeout=drain),
    )


def delivered_keys(out: Path) -> list[str]:
    return sorted(r["global_key"] for f in out.glob("labelbox-*.json") for r in json.loads(f.read_bytes()))


async def test_pipeline_drains_a_stream_once(client: Redis, stream: str, make_source, tmp_path: Path) -> None:
    """Good entries are delivered and acked; malformed and endlessly failing ones end as dead letters."""
    good = [f"https://cdn.example.com/img{i}.jpg" for i in range(20)]
    await add(client, stream, *(json.dumps(u) for u in good))
    (bad,) = await add(client, stream, "not json")
    await add(client, stream, json.dumps("https://cdn.example.com/flaky.jpg"))
    pipeline = pipeline_for(await make_source(once=True, visibility=0.3, max_deliveries=2), tmp_path)
    counters = await pipeline.run()
    assert counters.delivered == 20
    assert delivered_keys(tmp_path / "out") == sorted(good)
    dead = {d.key: d for d in await pipeline.ledger.dead_letters()}
    malformed, poison = dead.pop(f"msg:redis:{stream}:{bad}"), dead.pop("https://cdn.example.com/flaky.jpg")
    assert dead == {}
    assert malformed.raw == b"not json" and "body is not valid JSON" in malformed.message
    # the poison entry still names its object: dead-lettered as that object, with the last error
    assert (poison.rule, poison.raw) == ("source.poison", None)
    assert poison.object["url"] == "https://cdn.example.com/flaky.jpg"
    assert poison.actual == {
        "receive_count": 3,
        "last_error": "https://cdn.example.com/flaky.jpg: HTTP 503",
    }
    assert "received 3 times" in poison.message and "HTTP 503" in poison.message
    assert await pending_ids(client, stream) == []
    pipeline.ledger.ledger.close()  # type: ignore[attr-defined]


async def test_a_stopped_pipeline_hands_unfinished_entries_to_another_consumer(
    client: Redis, stream: str, make_source, tmp_path: Path
) -> None:
    """SIGTERM-style drain: finished entries are acked, the rest go to another consumer at once."""
    urls = [f"https://cdn.example.com/{'slow' if i % 2 else 'img'}{i}.jpg" for i in range(10)]
    await add(client, stream, *(json.dumps(u) for u in urls))
    gate = asyncio.Event()  # never opened: "slow" objects outlive the drain deadline

    async def probe(job: Job) -> MediaInfo:
        if "slow" in job.ref.key:
            await gate.wait()
        return IMAGE

    pipeline = pipeline_for(await make_source(visibility=30.0), tmp_path, probe, drain=0.3)
    run = asyncio.ensure_future(pipeline.run())

    async def fast_ones_done() -> bool:
        return len(delivered_keys(tmp_path / "out")) == 5

    await eventually(fast_ones_done)
    pipeline.stop()
    await asyncio.wait_for(run, 10)
    pipeline.ledger.ledger.close()  # type: ignore[attr-defined]
    slow = sorted(u for u in urls if "slow" in u)
    other = await make_source(visibility=30.0)  # only a give-back makes them claimable this soon
    got = await Reader(other).take(5, timeout=5)
    assert sorted(m.refs[0].key for m in got) == slow
    assert sorted(await pending_ids(client, stream)) == sorted(m.entry_id for m in got)
