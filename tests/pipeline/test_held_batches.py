"""Idempotency survives a give-up: a batch whose answers were all lost (the server stored the
items, then dropped the connection) until the retries ran out is held and re-sent as it was
(same id, so the same ``Idempotency-Key``), never rebuilt under a new key; even when one of its
objects disappears in between (which would otherwise change how the rest is batched)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from daemon.core.config import SinkConfig
from daemon.core.jobs import Job
from daemon.ledger.sqlite import Ledger
from daemon.ledger.store import SqliteStore
from daemon.pipeline.build import Builder
from daemon.pipeline.pipeline import Pipeline
from daemon.pipeline.stages import Settings
from daemon.sinks.delivery import DeliveryLimits
from daemon.sinks.http import open_http_deliverer
from daemon.sources.manifest import ManifestSource
from tests.sinks.fault_server import FaultServer, running_server
from workers.batching import NDJSON
from workers.probe.media import MediaInfo
from workers.reads import ObjectGone

IMAGE = MediaInfo(valid=True, kind="image", container="jpeg", mime_type="image/jpeg", width=64, height=48)
URLS = [f"https://cdn.example.com/{n}.jpg" for n in ("a", "b", "c", "d")]


@pytest.fixture
async def server() -> AsyncIterator[FaultServer]:
    async with running_server() as srv:
        yield srv


def idempotency_keys_per_item(server: FaultServer) -> dict[str, set[str]]:
    """Every Idempotency-Key under which the server saw each item (stored or answered)."""
    seen: dict[str, set[str]] = defaultdict(set)
    for h in server.hits:
        for k in h.keys:
            seen[k].add(h.idempotency_key)
    return seen


async def test_answers_lost_until_give_up_then_resent_under_the_same_key(
    tmp_path: Path, server: FaultServer
) -> None:
    retries = 1
    server.key_field = "global_key"
    server.faults.extend(["lost"] * (retries + 1))  # the first batch: stored twice over, never answered
    probed: dict[str, int] = defaultdict(int)

    async def prober(job: Job) -> MediaInfo:
        probed[job.ref.key] += 1
        if job.ref.key.endswith("/b.jpg") and probed[job.ref.key] > 1:
            raise ObjectGone("b.jpg: deleted since")  # travelling again, the batch would change
        return IMAGE

    manifest = tmp_path / "m.ndjson"
    manifest.write_text("".join(json.dumps(u) + "\n" for u in URLS))
    limits = DeliveryLimits(
        requests_per_second=1000.0,
        max_retries=retries,
        retry_budget=1.0,
        backoff_base=0.001,
        backoff_cap=0.01,
    )
    sink = SinkConfig(type="http", url=server.url, request_timeout=2.0)
    async with AsyncExitStack() as stack:
        ledger = SqliteStore(Ledger(tmp_path / "ledger.db").open())
        stack.callback(ledger.ledger.close)
        pipeline = Pipeline(
            source=ManifestSource(manifest),
            deliverer=await open_http_deliverer(sink, stack, limits=limits),
            ledger=ledger,
            prober=prober,
            builder=Builder(
                platform="labelbox", accept_kinds=["image"], strict=False, make_url=lambda r: r.url or ""
            ),
            key_for=lambda r: r.key,
            settings=Settings(
                probe_workers=1,
                deliver_workers=1,
                max_items=2,
                linger=0.01,
                retry_delay=0.1,
                framing=NDJSON,
            ),
        )
        counters = await pipeline.run()
        pending = await ledger.pending_batches()
    assert sorted(server.stored) == URLS
    assert all(n == 1 for n in server.deliveries.values())
    keys = idempotency_keys_per_item(server)
    assert set(keys) == set(URLS)
    for url, ikeys in keys.items():
        assert len(ikeys) == 1, f"{url} travelled under {len(ikeys)} idempotency keys: {ikeys}"
    assert pipeline.held.resent == 1 and len(pipeline.held) == 0 and pending == []
    # the held batch's objects were not probed again: their messages waited for the re-send
    assert probed[URLS[0]] == 1 and probed[URLS[1]] == 1
    # each object delivered once in this run's figures (the held two by the re-send); their
    # messages, given back while the batch was held, came again as duplicates
    assert counters.delivered == len(URLS) and counters.duplicates == 2
