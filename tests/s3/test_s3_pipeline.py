"""End to end on moto_server: bucket events -> sqs source -> probe through the S3 reader ->
presigned URLs -> files sink; each object once, the queue left empty, a replay deduplicated."""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiobotocore.session import get_session
from s3_moto import REGION, queue_arn, queue_counts, unique

from daemon.core.config import Config, from_dict
from daemon.core.jobs import Job, ObjectRef
from daemon.ledger.store import open_store
from daemon.pipeline.build import Builder
from daemon.pipeline.pipeline import Pipeline
from daemon.pipeline.tracker import Counters
from daemon.service.wiring import key_maker, make_sink, settings
from daemon.sources.sqs import open_sqs_source
from workers.probe.engine import probe
from workers.probe.media import MediaInfo
from workers.reads.s3 import ChainCredentials, S3Reads, http_session
from workers.urls import S3UrlSigner

MEDIA = Path(__file__).resolve().parents[2] / "examples" / "media"


async def run_pipeline(
    cfg: Config, *, work_seconds: float = 0.0, stats: dict[str, int] | None = None
) -> Counters:
    """The wiring the lead's ``ingestd run`` needs for [source] type = "sqs" (see the report)."""
    async with AsyncExitStack() as stack:
        session = get_session()
        source = await open_sqs_source(cfg, stack, once=True, session=session)
        credentials = ChainCredentials(session)
        signer = S3UrlSigner(
            region=cfg.aws.region,
            endpoint_url=cfg.aws.endpoint_url,
            addressing_style=cfg.aws.addressing_style,
        )
        http = await stack.enter_async_context(http_session(cfg.probe.concurrency, timeout=cfg.probe.timeout))
        reads = S3Reads(http, signer, credentials)
        creds = (
            await credentials.get()
        )  # a sync URL maker needs a snapshot; refresh it per batch in real wiring

        async def prober(job: Job) -> MediaInfo:
            ref = job.ref
            assert ref.bucket is not None
            if work_seconds:
                await asyncio.sleep(work_seconds)  # simulated slow work, longer than the visibility timeout
            return await probe(
                reads.reader(ref.bucket, ref.key, size=ref.size, etag=ref.etag),
                head_bytes=cfg.probe.head_bytes,
            )

        # the platform fetches from AWS over https (moto's http endpoint would break the https rule)
        publish = S3UrlSigner(region=cfg.aws.region, addressing_style="virtual")

        def make_url(ref: ObjectRef) -> str:
            assert ref.bucket is not None
            return publish.presign_get(
                creds, ref.bucket, ref.key, expires=cfg.target.url_expires, now=time.time()
            )

        ledger = await open_store(cfg, stack)
        t = cfg.target
        pipeline = Pipeline(
            source=source,
            deliverer=await make_sink(cfg, stack),
            ledger=ledger,
            prober=prober,
            builder=Builder(
                platform=t.platform, accept_kinds=t.accept_kinds, strict=t.strict_access, make_url=make_url
            ),
            key_for=key_maker(cfg),
            settings=settings(cfg),
        )
        counters = await asyncio.wait_for(pipeline.run(), 90)
        if stats is not None:
            stats.update(source.stats)
        return counters


def rows(out: Path) -> list[dict[str, Any]]:
    return [row for f in sorted(out.glob("labelbox-*.json")) for row in json.loads(f.read_bytes())]


async def test_events_to_import_files_exactly_once(
    s3: Any, sqs: Any, queue: str, moto_endpoint: str, tmp_path: Path
) -> None:
    """Every image put is imported once with a presigned URL; a deleted one is skipped; a replay of
    the same events imports nothing twice; the queue is empty at the end."""
    bucket = unique("e2e")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {"QueueArn": queue_arn(sqs, queue), "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}
            ]
        },
    )
    images = {f"shots/{p.stem} 1+1{p.suffix}": p.read_bytes() for p in sorted((MEDIA / "images").iterdir())}
    images.pop("shots/rgb 1+1.bmp")  # accepted by Labelbox too, but keep the set small and JPEG/PNG
    for key, data in images.items():
        s3.put_object(Bucket=bucket, Key=key, Body=data)
    s3.put_object(Bucket=bucket, Key="tmp/removed.jpg", Body=images[next(iter(images))])
    s3.delete_object(Bucket=bucket, Key="tmp/removed.jpg")
    cfg = from_dict(
        {
            "source": {
                "type": "sqs",
                "queue_url": queue,
                "receivers": 2,
                "wait_time_seconds": 1,
                "visibility_timeout": 10,
            },
            "aws": {"region": REGION, "endpoint_url": moto_endpoint, "addressing_style": "path"},
            "target": {
                "platform": "labelbox",
                "global_key_template": "{bucket}/{key}",
                "accept_kinds": ["image"],
            },
            "sink": {"type": "files", "path": str(tmp_path / "out"), "linger_ms": 50},
            "ledger": {"path": str(tmp_path / "state" / "ledger.db")},
        },
        base_dir=str(tmp_path),
    )
    (tmp_path / "out").mkdir()
    (tmp_path / "state").mkdir()
    counters = await run_pipeline(cfg)
    assert queue_counts(sqs, queue) == (0, 0)
    got = rows(tmp_path / "out")
    assert sorted(r["global_key"] for r in got) == sorted(f"{bucket}/{k}" for k in images)
    assert counters.delivered == len(images)
    for r in got:  # the presigned URL fetches the very object
        parts = urlsplit(r["row_data"])
        assert (
            parts.query.startswith("X-Amz-Algorithm=AWS4-HMAC-SHA256&") and "X-Amz-Signature=" in parts.query
        )
        key = r["global_key"].split("/", 1)[1]
        assert parts.netloc == f"{bucket}.s3.amazonaws.com"
        assert parts.path == "/" + key.replace(" ", "%20").replace("+", "%2B")

    # replay: the same objects announced again (at-least-once delivery) import nothing twice
    for key in images:
        s3.copy_object(
            Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key}, MetadataDirective="REPLACE"
        )
    again = await run_pipeline(cfg)
    assert again.delivered == 0 and again.duplicates + again.seen >= len(images)
    assert len(rows(tmp_path / "out")) == len(images)
    assert queue_counts(sqs, queue) == (0, 0)


async def test_slow_work_is_not_delivered_twice(
    s3: Any, sqs: Any, queue: str, moto_endpoint: str, tmp_path: Path
) -> None:
    """With a 2 s visibility timeout and 5 s of work per object, the heartbeat keeps the message
    ours: it is received once, imported once, and deleted."""
    bucket = unique("slow")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": queue_arn(sqs, queue), "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    s3.put_object(Bucket=bucket, Key="slow.png", Body=(MEDIA / "images" / "fractal.png").read_bytes())
    cfg = from_dict(
        {
            "source": {
                "type": "sqs",
                "queue_url": queue,
                "receivers": 2,
                "wait_time_seconds": 1,
                "visibility_timeout": 2,
            },
            "aws": {"region": REGION, "endpoint_url": moto_endpoint, "addressing_style": "path"},
            "target": {
                "platform": "labelbox",
                "global_key_template": "{bucket}/{key}",
                "accept_kinds": ["image"],
            },
            "sink": {"type": "files", "path": str(tmp_path / "out"), "linger_ms": 50},
            "ledger": {"path": str(tmp_path / "ledger.db")},
        },
        base_dir=str(tmp_path),
    )
    (tmp_path / "out").mkdir()
    stats: dict[str, int] = {}
    counters = await run_pipeline(cfg, work_seconds=5.0, stats=stats)
    assert counters.delivered == 1 and len(rows(tmp_path / "out")) == 1
    assert stats["extended"] >= 2 and stats["received"] - stats["skipped"] == 1  # received once
    assert queue_counts(sqs, queue) == (0, 0)
