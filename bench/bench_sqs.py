"""The sqs source's throughput and CPU per message against a fast local SQS stand-in.

Ours: ``SqsSource`` (4 long-poll receivers, decode into refs, ack -> batched deletes, heartbeat
task running) draining N preloaded S3-event messages in ``once`` mode. Baseline, same run,
same server and client settings: a raw aiobotocore loop (4 tasks of ReceiveMessage(10) +
DeleteMessageBatch, no decoding, no bookkeeping). Target (issue #4): >= 3,000 messages/s per
process. The note of the CPU figure says where our CPU goes (cProfile, grouped by package).
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import uvloop
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from bench.harness import Figure
from daemon.sources.sqs import SqsSource, freeze_user_agent
from daemon.sources.sqs_http import ThinSqs
from workers.sigv4 import Credentials

ROOT = Path(__file__).resolve().parent.parent
RECEIVERS = 4


class FakeSqs:
    def __init__(self, messages: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.fake_sqs", "--messages", str(messages)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.proc.kill()
            raise RuntimeError(f"fake_sqs did not start: {line!r}")
        self.url = f"http://127.0.0.1:{line.split()[1]}"
        self.queue_url = f"{self.url}/123456789012/bench"

    def __enter__(self) -> FakeSqs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def client(url: str) -> Any:
    return get_session().create_client(
        "sqs",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="bench",
        aws_secret_access_key="bench-secret",
        config=AioConfig(max_pool_connections=RECEIVERS + 8, parameter_validation=False, read_timeout=30),
    )


async def ours(server: FakeSqs, *, thin: bool = False) -> int:
    """The source draining the queue; ``thin``: the hot calls through the thin client."""
    async with client(server.url) as c, aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        freeze_user_agent(c)
        hot = None
        if thin:
            creds = StaticCredentials(Credentials(access_key="bench", secret_key="bench-secret"))
            hot = ThinSqs(http, server.url, region="us-east-1", credentials=creds)
        src = SqsSource(
            c, queue_url=server.queue_url, receivers=RECEIVERS, once=True, max_in_flight=4096, hot=hot
        )
        async for batch in src.batches():
            for m in batch:
                await m.ack()
        await src.aclose()
        return src.stats["deleted"]


async def ours_thin(server: FakeSqs) -> int:
    return await ours(server, thin=True)


class StaticCredentials:
    def __init__(self, creds: Credentials) -> None:
        self.creds = creds

    async def get(self) -> Credentials:
        return self.creds


async def raw_loop(server: FakeSqs) -> int:
    done = 0
    async with client(server.url) as c:

        async def worker() -> None:
            nonlocal done
            while True:
                r = await c.receive_message(
                    QueueUrl=server.queue_url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=20,
                    MessageSystemAttributeNames=["ApproximateReceiveCount"],
                )
                msgs = r.get("Messages")
                if not msgs:
                    return
                entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)]
                resp = await c.delete_message_batch(QueueUrl=server.queue_url, Entries=entries)
                done += len(resp.get("Successful", []))

        await asyncio.gather(*(worker() for _ in range(RECEIVERS)))
    return done


def measure(fn: Callable[[FakeSqs], Awaitable[int]], n: int) -> tuple[float, float]:
    """(messages/s, CPU µs per message) of this process draining n messages."""
    with FakeSqs(n) as server, asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        t0, c0 = time.perf_counter(), time.process_time()
        count = runner.run(fn(server))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if count != n:
        raise RuntimeError(f"{fn.__name__} deleted {count} of {n} messages")
    return n / wall, cpu / n * 1e6


_GROUPS = (
    ("aiobotocore", "/aiobotocore/"),
    ("botocore", "/botocore/"),
    ("aiohttp", "/aiohttp/"),
    ("ingestd sqs source", "/daemon/sources/sqs"),
    ("S3 event decoding", "/daemon/sources/s3events"),
    ("asyncio/uvloop", "/asyncio/"),
    ("json/msgspec", "/json/"),
    ("structlog", "/structlog/"),
)


def where_cpu_goes(n: int) -> str:
    """cProfile of our source, self time grouped by package, largest first."""
    prof = cProfile.Profile()
    with FakeSqs(n) as server, asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        prof.enable()
        runner.run(ours(server))
        prof.disable()
    stats = pstats.Stats(prof)
    groups: dict[str, float] = defaultdict(float)
    total = 0.0
    for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        total += tottime
        name = next((g for g, needle in _GROUPS if needle in filename), "other (stdlib, C builtins)")
        groups[name] += tottime
    parts = [
        f"{g} {t / total:.0%}" for g, t in sorted(groups.items(), key=lambda kv: -kv[1]) if t / total >= 0.01
    ]
    return "CPU by package (cProfile self time): " + ", ".join(parts)


def run(quick: bool) -> list[Figure]:
    n = 20_000 if quick else 100_000
    ours_rate, ours_cpu = measure(ours, n)
    raw_rate, raw_cpu = measure(raw_loop, n)
    thin_rate, thin_cpu = measure(ours_thin, n)
    note = where_cpu_goes(min(n, 10_000))
    return [
        Figure(
            name="sqs source: messages/s (receive, decode, ack, batched delete), 4 receivers",
            value=ours_rate,
            unit="msgs/s",
            baseline=raw_rate,
            baseline_name="raw aiobotocore receive+delete loop (no decoding)",
            target=3000,
            note=f"{n} S3-event messages from bench/fake_sqs.py (separate process, same 2 cores)",
        ),
        Figure(
            name="sqs source: CPU per message",
            value=ours_cpu,
            unit="µs/msg",
            baseline=raw_cpu,
            baseline_name="raw aiobotocore receive+delete loop (no decoding)",
            higher_is_better=False,
            note=note,
        ),
        Figure(
            name="sqs source, thin client for the hot calls: messages/s",
            value=thin_rate,
            unit="msgs/s",
            baseline=ours_rate,
            baseline_name="the source with aiobotocore for every call",
        ),
        Figure(
            name="sqs source, thin client for the hot calls: CPU per message",
            value=thin_cpu,
            unit="µs/msg",
            baseline=ours_cpu,
            baseline_name="the source with aiobotocore for every call",
            higher_is_better=False,
        ),
    ]
