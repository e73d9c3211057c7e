"""Delivery throughput and rate-limit accuracy against nginx on 127.0.0.1.

Figures:

* ``delivery.items_per_s``: items/s through ``Deliverer`` + the ``http`` sink (token bucket, AIMD
  gate, breaker, retry bookkeeping, NDJSON encoding, Idempotency-Key) with 1,000-item batches, against
  nginx answering ``return 200``. Baseline, same run: a raw aiohttp POST loop of the same bodies at
  the same concurrency (what our layer costs). Target: >= 50,000 items/s per process.
* ``delivery.rate_limited_rps``: achieved requests/s for a limited endpoint (one item per request,
  far more work than the limit allows); baseline = the configured limit, so the ratio is the
  accuracy, which must be within 0.9..1.0 (the bucket runs 2 % below the limit by design,
  ``DeliveryLimits.headroom``). The note gives the unlimited rate measured in the same run.

nginx is started with a temporary configuration (one worker, no logs, unlimited body size).
"""

from __future__ import annotations

import asyncio
import tempfile
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import msgspec

from bench.harness import Figure
from bench.nginx import nginx
from bench.rig import all_accepted, fan_out
from daemon.core.config import SinkConfig
from daemon.sinks.base import Batch, BatchItem
from daemon.sinks.delivery import DeliveryLimits
from daemon.sinks.http import open_http_deliverer

BATCH_ITEMS = 1000
CONCURRENCY = 8
RETURN_200 = "client_max_body_size 0; client_body_buffer_size 4m; location / { return 200; }"


def make_batches(n_batches: int, per_batch: int) -> list[Batch]:
    out = []
    for b in range(n_batches):
        items = []
        for i in range(per_batch):
            key = f"bench/{b:05d}/{i:05d}.jpg"
            row = {
                "key": key,
                "row_data": f"https://bucket.s3.us-east-1.amazonaws.com/{key}?X-Amz-Signature={'0' * 64}",
                "media_type": "IMAGE",
                "attachments": [],
                "metadata": {"width": 1920, "height": 1080, "source": "s3"},
            }
            items.append(BatchItem(key, "IMAGE", msgspec.json.encode(row)))
        out.append(Batch.of(items))
    return out


async def raw_aiohttp(url: str, batches: list[Batch]) -> float:
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), cookie_jar=aiohttp.DummyCookieJar()
    ) as session:

        async def send(batch: Batch) -> int:
            body = b"\n".join(i.body for i in batch.items) + b"\n"
            headers = {"Content-Type": "application/x-ndjson", "Idempotency-Key": batch.id}
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"nginx answered {resp.status}")
            return len(batch.items)

        return await fan_out(batches, CONCURRENCY, send)


async def ours(url: str, batches: list[Batch], limits: DeliveryLimits, concurrency: int) -> float:
    cfg = SinkConfig(type="http", url=url, max_bytes=64 * 1024 * 1024)
    async with AsyncExitStack() as stack:
        deliverer = await open_http_deliverer(cfg, stack, limits=limits)

        async def send(batch: Batch) -> None:
            all_accepted(await deliverer.deliver(batch), "not delivered")

        return await fan_out(batches, concurrency, send)


async def measure(quick: bool) -> list[Figure]:
    n_batches = 200 if quick else 1000
    batches = make_batches(n_batches, BATCH_ITEMS)
    total = n_batches * BATCH_ITEMS
    unlimited = DeliveryLimits(requests_per_second=1e6, burst=1e6, max_concurrency=CONCURRENCY)
    rps = 200.0
    seconds = 3.0 if quick else 10.0
    small = make_batches(int(rps * seconds), 1)
    limited = DeliveryLimits(requests_per_second=rps, max_concurrency=CONCURRENCY)
    with (
        tempfile.TemporaryDirectory(prefix="ingestd-bench-") as root,
        nginx(Path(root), locations=RETURN_200) as base,
    ):
        url = base + "/ingest"
        await raw_aiohttp(url, batches[:5])  # warm up nginx and the client
        raw_t = await raw_aiohttp(url, batches)
        our_t = await ours(url, batches, unlimited, CONCURRENCY)
        free_t = await ours(url, small, unlimited, CONCURRENCY)
        lim_t = await ours(url, small, limited, CONCURRENCY)
    achieved = len(small) / lim_t
    accuracy = achieved / rps
    return [
        Figure(
            name="delivery.items_per_s",
            value=total / our_t,
            unit="items/s",
            baseline=total / raw_t,
            baseline_name="raw aiohttp POST loop",
            target=50_000,
            note=f"{BATCH_ITEMS}-item NDJSON batches ({len(batches[0].items[0].body)} B/item), "
            f"concurrency {CONCURRENCY}, nginx return 200",
        ),
        Figure(
            name="delivery.rate_limited_rps",
            value=achieved,
            unit="req/s",
            baseline=rps,
            baseline_name="configured requests_per_second",
            target=0.9 * rps,
            note=f"ratio = achieved/configured = {accuracy:.3f}, must be within 0.9..1.0; the same "
            f"requests without a binding limit ran at {len(small) / free_t:,.0f} req/s; {seconds:g} s run",
        ),
    ]


def run(quick: bool) -> list[Figure]:
    try:
        import uvloop  # noqa: PLC0415 -- optional: the daemon runs on uvloop when it is installed

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(measure(quick))
    except ImportError:
        return asyncio.run(measure(quick))
