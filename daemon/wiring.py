"""Factories: from a Config to the pipeline's parts. Long-lived clients open in an AsyncExitStack."""

from __future__ import annotations

import time
from contextlib import AsyncExitStack
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver

from daemon.build import Builder, file_url
from daemon.config import Config, resolve
from daemon.delivery import Deliverer as DeliveryDeliverer
from daemon.delivery import DeliveryLimits
from daemon.jobs import Job, ObjectRef
from daemon.ledger_store import open_store
from daemon.metrics import Metrics
from daemon.pipeline import Pipeline, Prober, Settings
from daemon.sinks.base import Deliverer
from daemon.sinks.files import FilesSink
from daemon.sinks.http import open_http_deliverer
from daemon.sources.base import Source
from daemon.sources.listing import Checkpoints, open_listing_source
from daemon.sources.manifest import ManifestSource
from daemon.sources.redis_streams import open_redis_source
from daemon.sources.spool import SpoolSource
from daemon.sources.sqs import open_sqs_source
from daemon.watchdog import ProgressMonitor
from workers.batching import JSON_ARRAY, NDJSON
from workers.payloads.keys import check_key, make_key
from workers.probe.engine import probe
from workers.probe.media import MediaInfo
from workers.reads import UrlFenced
from workers.reads.fence import Fence
from workers.reads.file import FileReader
from workers.reads.http import HttpReader
from workers.reads.s3 import ChainCredentials, S3Reads, http_session
from workers.urls import S3UrlSigner, virtual_hosted_url


class WiringError(Exception):
    pass


def key_maker(cfg: Config):  # type: ignore[no-untyped-def]
    template = cfg.target.global_key_template
    labelbox = cfg.target.platform == "labelbox"

    def key_for(ref: ObjectRef) -> str:
        given = (ref.metadata or {}).get("global_key")
        if given is not None:
            if labelbox and (v := check_key(given)) is not None:
                raise ValueError(f"{v.message}: {v.actual!r}")
            return str(given)
        fields = {
            "bucket": ref.bucket or "",
            "key": ref.key,
            "version": ref.version or "",
            "etag": (ref.etag or "").strip('"'),
            "origin": ref.origin,
            "path": ref.path or "",
            "url": ref.url or "",
        }
        return make_key(template, fields)

    return key_for


class UrlMaker:
    """The URL handed to the platform for each object (sync: called by the build stage).

    ``file``: ``url_prefix`` + the relative path. ``url``: as given. ``s3``: by
    ``[target] url_mode``: ``presign`` (SigV4 query signature, byte-identical to botocore's,
    with the credentials the S3 reader last used: reading an object always precedes building
    its URL), ``virtual-hosted`` (for IAM delegated access; dotted buckets are refused with the
    reason), or ``as-is`` (``s3://``: refused by the https rule, with the reason).
    """

    def __init__(self, cfg: Config, credentials: ChainCredentials | None = None) -> None:
        self.prefix = cfg.source.url_prefix
        self.mode = cfg.target.url_mode
        self.expires = cfg.target.url_expires
        self.region = cfg.aws.region
        self.credentials = credentials
        # the platform fetches the object: sign for the public endpoint, not the one we read from
        self.signer = S3UrlSigner(
            region=cfg.aws.region,
            endpoint_url=cfg.target.url_endpoint,
            addressing_style="path" if cfg.target.url_endpoint else "virtual",
        )

    def __call__(self, ref: ObjectRef) -> str:
        if ref.origin == "url":
            assert ref.url is not None
            return ref.url
        if ref.origin == "file":
            if not self.prefix:
                raise ValueError("source.url_prefix is required to publish local files")
            return file_url(self.prefix, ref.key)
        assert ref.bucket is not None
        if self.mode == "virtual-hosted":
            return virtual_hosted_url(ref.bucket, ref.key, region=self.region)
        if self.mode == "as-is":
            return f"s3://{ref.bucket}/{ref.key}"
        creds = self.credentials.current if self.credentials is not None else None
        if creds is None:
            raise ValueError("no AWS credentials to presign with (the standard chain gave none)")
        return self.signer.presign_get(creds, ref.bucket, ref.key, expires=self.expires, now=time.time())


async def open_source(
    cfg: Config, stack: AsyncExitStack, *, once: bool, checkpoints: Checkpoints | None = None
) -> Source:
    s = cfg.source
    if s.type == "sqs":
        return await open_sqs_source(cfg, stack, once=once)
    if s.type == "redis":
        return await open_redis_source(cfg, stack, once=once)
    if s.type == "s3-listing":
        if checkpoints is None:
            checkpoints = await open_store(cfg, stack)
        return await open_listing_source(cfg, stack, checkpoints)
    if s.type == "spool":
        return SpoolSource(
            resolve(cfg, s.path), once=once, poll_interval=s.poll_interval, stable_seconds=s.stable_seconds
        )
    if s.type == "manifest":
        return ManifestSource(resolve(cfg, s.path), fmt=s.manifest_format)
    raise WiringError(f"source.type {s.type!r} is not available in this build")


async def make_sink(cfg: Config, stack: AsyncExitStack) -> Deliverer:
    """The configured sink behind the daemon's one delivery policy (``daemon.delivery``)."""
    k = cfg.sink
    if k.type == "files":
        return FilesSink(resolve(cfg, k.path), cfg.target.platform)
    if k.type == "http":
        return await open_http_deliverer(k, stack)
    raise WiringError(f"sink.type {k.type!r} is not available in this build")


def reload_sink(deliverer: Deliverer, cfg: Config) -> None:
    """SIGHUP: new rate limits and concurrency for a running sink; work in flight continues."""
    if isinstance(deliverer, DeliveryDeliverer):
        deliverer.reload(DeliveryLimits.from_config(cfg.sink))


QUEUE_SOURCES = ("sqs", "redis", "s3-listing")


def probe_fence(cfg: Config) -> Fence:
    """The fence for URLs and buckets named by messages (``[probe] allowed_hosts/buckets``)."""
    s = cfg.source
    hosts = cfg.probe.allowed_hosts
    if hosts is None:
        prefix_host = urlsplit(s.url_prefix).hostname if s.url_prefix else None
        hosts = [prefix_host] if prefix_host and s.type in QUEUE_SOURCES else ["*"]
    buckets = cfg.probe.allowed_buckets
    if buckets is None:
        buckets = [s.bucket] if s.bucket else ["*"]
    endpoint = urlsplit(cfg.aws.endpoint_url).hostname if cfg.aws.endpoint_url else None
    return Fence(hosts=hosts, buckets=buckets, trusted=[endpoint] if endpoint else [])


async def make_prober(
    cfg: Config,
    stack: AsyncExitStack,
    credentials: ChainCredentials | None = None,
    *,
    dns: AbstractResolver | None = None,
) -> Prober:
    """The probe with the reader each origin needs: pread for files, ranged GETs for URLs and
    for S3 (URLs presigned by our signer, through one long-lived session opened on first use).

    URLs and buckets named by messages pass :func:`probe_fence`; ``dns`` replaces the system
    resolver behind the fence (tests)."""
    head = cfg.probe.head_bytes
    creds = credentials or ChainCredentials()
    fence = probe_fence(cfg)
    opened: list[aiohttp.ClientSession] = []

    async def session() -> aiohttp.ClientSession:
        if not opened:
            opened.append(
                await stack.enter_async_context(
                    http_session(cfg.probe.concurrency, timeout=cfg.probe.timeout, fence=fence, dns=dns)
                )
            )
        return opened[0]

    s3_reads: list[S3Reads] = []

    async def s3() -> S3Reads:
        if not s3_reads:
            signer = S3UrlSigner(
                region=cfg.aws.region,
                endpoint_url=cfg.aws.endpoint_url,
                addressing_style=cfg.aws.addressing_style,
            )
            s3_reads.append(S3Reads(await session(), signer, creds))
        return s3_reads[0]

    async def prober(job: Job) -> MediaInfo:
        ref = job.ref
        if ref.origin == "file":
            assert ref.path is not None
            reader = FileReader(ref.path)
            try:
                return await probe(reader, head_bytes=head)
            finally:
                reader.close()
        if ref.origin == "url":
            assert ref.url is not None
            http = HttpReader(await session(), ref.url, size=ref.size, fence=fence)
            return await probe(http, head_bytes=head)
        assert ref.bucket is not None
        if (refusal := fence.bucket(ref.bucket)) is not None:
            raise UrlFenced(refusal)
        reads = await s3()
        return await probe(reads.reader(ref.bucket, ref.key, size=ref.size, etag=ref.etag), head_bytes=head)

    return prober


def settings(cfg: Config) -> Settings:
    k = cfg.sink
    return Settings(
        probe_workers=cfg.probe.concurrency,
        # the delivery gate (AIMD, reloadable) bounds real concurrency; enough workers are kept
        # for a SIGHUP to raise max_concurrency up to 16 without a restart
        deliver_workers=max(k.max_concurrency, 16) if k.type != "files" else 1,
        queue_size=cfg.pipeline.queue_size,
        max_in_flight=cfg.pipeline.max_in_flight,
        max_items=k.max_items,
        max_bytes=k.max_bytes,
        linger=k.linger_ms / 1000,
        framing=NDJSON if k.type == "http" else JSON_ARRAY,
        drain_timeout=cfg.pipeline.drain_timeout,
    )


async def build_pipeline(
    cfg: Config,
    stack: AsyncExitStack,
    *,
    once: bool,
    prober: Prober | None = None,
    metrics: Metrics | None = None,
    monitor: ProgressMonitor | None = None,
) -> Pipeline:
    """The pipeline for ``cfg``; ``prober`` replaces the real probe (benchmarks of the pipeline)."""
    ledger = await open_store(cfg, stack)
    sink = await make_sink(cfg, stack)
    credentials = ChainCredentials()
    builder = Builder(
        platform=cfg.target.platform,
        accept_kinds=cfg.target.accept_kinds,
        strict=cfg.target.strict_access,
        make_url=UrlMaker(cfg, credentials),
    )
    return Pipeline(
        source=await open_source(cfg, stack, once=once, checkpoints=ledger),
        deliverer=sink,
        ledger=ledger,
        prober=prober or await make_prober(cfg, stack, credentials),
        builder=builder,
        key_for=key_maker(cfg),
        settings=settings(cfg),
        metrics=metrics,
        monitor=monitor,
    )


def output_folder(cfg: Config) -> Path:
    return resolve(cfg, cfg.sink.path)


async def probe_dependencies(cfg: Config) -> list[tuple[str, str | None]]:
    """Reach the real ledger, sink and source (``ingestd check``): (what, error or None)."""
    results: list[tuple[str, str | None]] = []
    async with AsyncExitStack() as stack:
        try:
            await (await open_store(cfg, stack)).stats()
            results.append(("ledger open", None))
        except Exception as e:  # any failure here is the answer to "can the ledger be opened"
            results.append(("ledger open", f"{type(e).__name__}: {e}"))
        for name, opener in (("sink reachable", make_sink), ("source reachable", _source_for_check)):
            try:
                part = await opener(cfg, stack)
                check = getattr(part, "check", None)
                if check is not None:
                    await check()
                results.append((name, None))
            except Exception as e:  # reported, not raised: check lists every problem at once
                results.append((name, f"{type(e).__name__}: {e}"))
    return results


async def _source_for_check(cfg: Config, stack: AsyncExitStack) -> Source:
    return await open_source(cfg, stack, once=True)
