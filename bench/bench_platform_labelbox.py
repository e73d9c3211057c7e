"""The labelbox sink against the local Labelbox server (tests/platforms/labelbox_server.py).

Figures:

* ``platform_labelbox.rows_per_s``: data rows per second from batches handed to the Deliverer to
  finished tasks with every row's outcome known (specs spliced, chunks + manifest uploaded,
  ``upsertDataRows``, paced polls, the failure page), ``tasks_in_flight`` tasks at once. The
  server completes a task on its first read and polls are paced at 0.05 s here (2 s in
  production), so this is the client's and the protocol's cost, not Labelbox's processing time.
  Baseline, same run: the same chunk bytes uploaded with bare ``uploadFile`` requests by a plain
  aiohttp loop (the transfer alone).
* ``platform_labelbox.requests_per_10k_rows``: every request the sink made (uploads, manifest,
  task creation, user, polls, pages), per 10,000 rows. Baseline: the official SDK's ~43 requests
  for 2,500 rows (shared/ref/labelbox.md, Addendum), i.e. ~172 per 10,000. Lower is better.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from bench.harness import Figure
from bench.rig import MemoryCheckpoints, all_accepted, bare_posts, fan_out
from daemon.core.config import SinkConfig, TargetConfig
from daemon.sinks.base import Batch, BatchItem
from daemon.sinks.labelbox import open_labelbox_deliverer
from tests.platforms.labelbox_server import TEST_KEY, LabelboxServer
from workers.payloads import labelbox as lb
from workers.platforms.labelbox import graphql as gql
from workers.platforms.labelbox.specs import chunks, spec

SDK_REQUESTS_PER_10K = 43 * 4
TASKS_IN_FLIGHT = 4


def make_batches(n_batches: int, per_batch: int) -> list[Batch]:
    out = []
    for b in range(n_batches):
        items = []
        for i in range(per_batch):
            key = f"bench/{b:04d}/{i:05d}.jpg"
            url = f"https://bucket.s3.us-east-1.amazonaws.com/{key}?X-Amz-Signature={'0' * 64}"
            row = lb.DataRow(row_data=url, global_key=key, media_type="IMAGE", external_id=key)
            items.append(BatchItem(key, "IMAGE", lb.encode(row)))
        out.append(Batch.of(items))
    return out


async def ours(server: LabelboxServer, batches: list[Batch]) -> tuple[float, int]:
    cfg = SinkConfig(type="labelbox", endpoint=server.url, requests_per_minute=600_000, tasks_in_flight=4)
    target = TargetConfig(platform="labelbox", dataset=server.dataset_id)
    env = {"INGESTD_SECRET_LABELBOX_API_KEY": TEST_KEY}
    before = len(server.requests)
    async with AsyncExitStack() as stack:
        d = await open_labelbox_deliverer(
            cfg, target, stack, MemoryCheckpoints(), environ=env, poll_interval=0.05
        )

        async def send(batch: Batch) -> None:
            all_accepted(await d.deliver(batch))

        elapsed = await fan_out(batches, TASKS_IN_FLIGHT, send)
    return elapsed, len(server.requests) - before


async def raw_uploads(server: LabelboxServer, batches: list[Batch]) -> float:
    bodies = []
    for b in batches:
        specs = [(i.key, spec(i.body, server.dataset_id)) for i in b.items]
        bodies.extend(gql.upload_body(c.data, filename="json_import.json") for c in chunks(specs))
    return await bare_posts(server.url, bodies, api_key=TEST_KEY, concurrency=TASKS_IN_FLIGHT)


async def measure(quick: bool) -> list[Figure]:
    n_batches, per_batch = (4, 2_500) if quick else (12, 10_000)
    batches = make_batches(n_batches, per_batch)
    total = n_batches * per_batch
    server = LabelboxServer()
    await server.start()
    try:
        raw_t = await raw_uploads(server, batches)
        our_t, requests = await ours(server, batches)
    finally:
        await server.stop()
    assert len(server.creations) == total and max(server.creations.values()) == 1
    per_10k = requests * 10_000 / total
    return [
        Figure(
            name="platform_labelbox.rows_per_s",
            value=total / our_t,
            unit="rows/s",
            baseline=total / raw_t,
            baseline_name="bare uploadFile of the same chunks",
            note=f"{n_batches} batches of {per_batch} rows, {TASKS_IN_FLIGHT} tasks in flight, "
            "polls every 0.05 s, task done on first read",
        ),
        Figure(
            name="platform_labelbox.requests_per_10k_rows",
            value=per_10k,
            unit="requests",
            baseline=float(SDK_REQUESTS_PER_10K),
            baseline_name="official SDK (43 per 2,500 rows)",
            higher_is_better=False,
            target=float(SDK_REQUESTS_PER_10K),
            note=f"{requests} requests for {total} rows",
        ),
    ]


def run(quick: bool) -> list[Figure]:
    return asyncio.run(measure(quick))
