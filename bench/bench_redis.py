"""The redis source against a real local redis-server: messages/s and client CPU per message.

Each run fills one stream with S3 event notification bodies (~880 B, as S3 sends them) and
drains it twice, through two consumer groups, under uvloop:

* baseline: a bare redis-py loop, ``XREADGROUP COUNT 256`` then one ``XACK`` of the batch, no
  decoding (the client's own floor; perf.md: ~140-160k msgs/s with hiredis);
* ours: ``RedisStreamSource`` in once mode, every entry decoded to an ObjectRef (typed msgspec
  view, URL-decoded key) and acknowledged one by one as the pipeline's acker does.

CPU is this process's CPU time (the server runs in its own process), per message drained.
A variant with the same body as a manifest-style URL entry shows the decode path's share.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import msgspec
import uvloop
from redis.asyncio import Redis
from redis.utils import HIREDIS_AVAILABLE

from bench.harness import Figure
from daemon.sources.redis_streams import RedisStreamSource, make_client

STREAM = "bench"


def s3_body(i: int) -> bytes:
    return msgspec.json.encode(
        {
            "Records": [
                {
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "awsRegion": "us-east-1",
                    "eventTime": "2026-11-22T06:00:00.000Z",
                    "eventName": "ObjectCreated:Put",
                    "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
                    "requestParameters": {"sourceIPAddress": "10.0.0.1"},
                    "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8"},
                    "s3": {
                        "s3SchemaVersion": "1.0",
                        "configurationId": "ingest",
                        "bucket": {
                            "name": "media-bucket",
                            "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                            "arn": "arn:aws:s3:::media-bucket",
                        },
                        "object": {
                            "key": f"videos/2026/11/clip+{i:08d}%281%29.mp4",
                            "size": 1048576 + i,
                            "eTag": "d41d8cd98f00b204e9800998ecf8427e",
                            "versionId": "096fKKXTRTtl3on89fVO.nfljtsv6qko",
                            "sequencer": f"0055AED6DCD90281{i:08X}",
                        },
                    },
                }
            ]
        }
    )


def url_body(i: int) -> bytes:
    return msgspec.json.encode({"url": f"https://cdn.example.com/videos/{i:09d}.mp4", "global_key": f"v-{i}"})


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.02)


async def fill(client: Redis, n: int, body: Callable[[int], bytes]) -> None:
    await client.delete(STREAM)
    for start in range(0, n, 1000):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(n, start + 1000)):
            pipe.xadd(STREAM, {"body": body(i)})
        await pipe.execute()


async def raw_loop(client: Redis, group: str, count: int = 256) -> int:
    """The floor: read a batch, acknowledge it, nothing else."""
    await client.xgroup_create(STREAM, group, id="0")
    done = 0
    while True:
        reply = await client.xreadgroup(group, "raw", {STREAM: ">"}, count=count)
        if not reply:
            return done
        entries = reply[0][1]
        await client.xack(STREAM, group, *[eid for eid, _ in entries])
        done += len(entries)


async def source_loop(url: str, group: str) -> int:
    async with AsyncExitStack() as stack:
        client = make_client(url)
        stack.push_async_callback(client.aclose)
        src = await stack.enter_async_context(
            RedisStreamSource(
                client,
                stream=STREAM,
                group=group,
                consumer="ours",
                once=True,
                visibility=60.0,
                max_deliveries=5,
                max_in_flight=4096,
                base=Path("."),
            )
        )
        done = 0
        async for batch in src.batches():
            for m in batch:
                if m.error is not None or not m.refs:
                    raise RuntimeError(f"bench entry did not decode: {m.error}")
                await m.ack()
            done += len(batch)
        return done


async def timed(work: Callable[[], Awaitable[int]]) -> tuple[float, float]:
    """(messages/s, CPU µs per message) of one drain."""
    c0, t0 = time.process_time(), time.perf_counter()
    n = await work()
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    return n / wall, cpu / n * 1e6


async def measure(
    url: str, n: int, repeats: int, body: Callable[[int], bytes]
) -> dict[str, tuple[float, float]]:
    """Best of ``repeats`` drains of ``n`` entries for each reader, alternating them."""
    client = make_client(url)
    best: dict[str, tuple[float, float]] = {}
    try:
        await fill(client, n, body)
        for r in range(repeats):
            runs = {
                "raw": lambda r=r: raw_loop(client, f"raw{r}"),
                "ours": lambda r=r: source_loop(url, f"ours{r}"),
            }
            for name, work in runs.items():
                rate, cpu = await timed(work)
                if name not in best or rate > best[name][0]:
                    best[name] = (rate, cpu)
    finally:
        await client.aclose()
    return best


def run(quick: bool) -> list[Figure]:
    n, repeats = (20_000, 3) if quick else (100_000, 5)
    proc, url = start_server()
    try:
        s3 = uvloop.run(measure(url, n, repeats, s3_body))
        urls = uvloop.run(measure(url, n, repeats, url_body))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    note = f"{n} entries, best of {repeats}, uvloop, hiredis {'yes' if HIREDIS_AVAILABLE else 'no'}"
    figures: list[Figure] = []
    for label, res in (("S3 event bodies", s3), ("manifest URL bodies", urls)):
        figures.append(
            Figure(
                name=f"redis source msgs/s, {label} (read, decode, ack)",
                value=round(res["ours"][0]),
                unit="msgs/s",
                baseline=round(res["raw"][0]),
                baseline_name="raw XREADGROUP+XACK",
                note=note,
            )
        )
        figures.append(
            Figure(
                name=f"redis source CPU per message, {label}",
                value=round(res["ours"][1], 2),
                unit="µs/msg",
                baseline=round(res["raw"][1], 2),
                baseline_name="raw XREADGROUP+XACK",
                higher_is_better=False,
            )
        )
    return figures
