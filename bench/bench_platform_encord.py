"""Encord sink throughput and request economy against the local Encord server (127.0.0.1).

Figures:

* ``platform_encord.rows_per_s``: rows/s from the first batch handed to the Deliverer to the last
  job finished, through the whole ``[sink] type = "encord"`` path (integration lookup, dataItems
  re-encoding, ed25519 signatures over the exact bytes, the job id checkpointed in a SQLite
  ledger before polling, long polls, results mapped back). 1,000-row batches, 4 in flight.
  Baseline, same run: a bare signed create + one poll per batch with aiohttp and the same
  pre-built bodies (the protocol's floor; what our layer costs). The server runs in the same
  process, so both figures include its work.
* ``platform_encord.requests_per_10k_rows``: HTTP requests the server saw per 10,000 rows
  (lower is better). Baseline: the official SDK's ~43 requests per 2,500 rows (issue 10), i.e.
  172 per 10,000.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from yarl import URL

from bench.harness import Figure
from bench.rig import all_accepted, fan_out
from daemon.core.config import from_dict
from daemon.core.logs import configure
from daemon.ledger.store import open_store
from daemon.sinks.base import Batch, BatchItem
from daemon.sinks.encord.sink import open_encord_deliverer
from tests.platforms.encord_server import PREFIX, EncordServer
from workers.payloads import encord as enc
from workers.platforms.encord import payload, signing
from workers.rules.encord import ImageMetadata

BATCH_ROWS = 1000
CONCURRENCY = 4
SDK_REQUESTS_PER_10K = 43 * 4


def make_batches(n_batches: int, prefix: str) -> list[Batch]:
    out = []
    for b in range(n_batches):
        items = []
        for i in range(BATCH_ROWS):
            key = f"{prefix}/{b:04d}/{i:05d}.jpg"
            item = enc.Item(
                objectUrl=f"https://bucket.s3.eu-west-2.amazonaws.com/{key}",
                title=key,
                clientMetadata={"src": "bench"},
                imageMetadata=ImageMetadata(
                    mime_type="image/jpeg", file_size=123456, width=1920, height=1080
                ),
            )
            items.append(BatchItem(key, "IMAGE", enc.encode(item)))
        out.append(Batch.of(items))
    return out


async def bare(base: str, srv: EncordServer, key: Ed25519PrivateKey, batches: list[Batch]) -> float:
    integration = srv.integrations[0]["integrationUuid"]
    bodies = {
        b.id: payload.upload_job([(i.key, i.kind, i.body) for i in b.items], integration_hash=integration)[0]
        for b in batches
    }
    jobs = f"{PREFIX}/storage/folders/{srv.folder}/data-upload-jobs"
    async with aiohttp.ClientSession() as session:

        async def call(method: str, target: str, body: bytes = b"") -> bytes:
            headers = signing.sign(method, target, body, key, int(time.time()))
            async with session.request(
                method, URL(base + target, encoded=True), data=body, headers=headers
            ) as r:
                return await r.read()

        async def send(batch: Batch) -> None:
            job = (await call("POST", jobs, bodies[batch.id])).strip(b'"').decode()
            await call("GET", f"{jobs}/{job}?timeoutSeconds=30")

        return await fan_out(batches, CONCURRENCY, send)


async def ours(base: str, srv: EncordServer, key_text: str, root: Path, batches: list[Batch]) -> float:
    cfg = from_dict(
        {
            "source": {"type": "manifest", "path": "unused.ndjson"},
            "target": {"platform": "encord", "dataset": srv.folder, "integration": "s3-prod"},
            "sink": {
                "type": "encord",
                "endpoint": base,
                "private_key_secret": "k",
                "requests_per_second": 1e6,
                "max_concurrency": CONCURRENCY,
            },
            "ledger": {"path": str(root / "l.db")},
        }
    )
    async with AsyncExitStack() as stack:
        ledger = await open_store(cfg, stack)
        deliverer = await open_encord_deliverer(cfg, stack, ledger, environ={"INGESTD_SECRET_K": key_text})

        async def send(batch: Batch) -> None:
            all_accepted(await deliverer.deliver(batch), "not registered")

        return await fan_out(batches, CONCURRENCY, send)


async def measure(quick: bool) -> list[Figure]:
    n_batches = 3 if quick else 20
    key = Ed25519PrivateKey.generate()
    key_text = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    srv = EncordServer(keys={signing.key_id(key): key.public_key()})
    base = await srv.start()
    try:
        with tempfile.TemporaryDirectory(prefix="ingestd-bench-") as root:
            await bare(base, srv, key, make_batches(1, "warm"))
            bare_t = await bare(base, srv, key, make_batches(n_batches, "bare"))
            before = len(srv.hits)
            rows = n_batches * BATCH_ROWS
            our_t = await ours(base, srv, key_text, Path(root), make_batches(n_batches, "ours"))
            requests = len(srv.hits) - before
    finally:
        await srv.stop()
    return [
        Figure(
            name="platform_encord.rows_per_s",
            value=rows / our_t,
            unit="rows/s",
            baseline=rows / bare_t,
            baseline_name="bare signed create + poll per batch (aiohttp)",
            note=f"{n_batches} jobs of {BATCH_ROWS} image rows, {CONCURRENCY} in flight, "
            "local server in the same process",
        ),
        Figure(
            name="platform_encord.requests_per_10k_rows",
            value=requests * 10_000 / rows,
            unit="requests",
            baseline=SDK_REQUESTS_PER_10K,
            baseline_name="official SDK (~43 per 2,500 rows)",
            target=SDK_REQUESTS_PER_10K,
            higher_is_better=False,
            note=f"{requests} requests for {rows} rows (integration lookup, creates, polls)",
        ),
    ]


def run(quick: bool) -> list[Figure]:
    configure("warning")
    return asyncio.run(measure(quick))
