"""Factories: from a Config to the pipeline's parts. Long-lived clients open in an AsyncExitStack."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp

from daemon.build import Builder, file_url
from daemon.config import Config, resolve
from daemon.delivery import Deliverer as DeliveryDeliverer
from daemon.delivery import DeliveryLimits
from daemon.jobs import Job, ObjectRef
from daemon.ledger_store import open_store
from daemon.metrics import Metrics
from daemon.pipeline import Deliverer, Pipeline, Prober, Settings
from daemon.sinks.files import FilesSink
from daemon.sinks.http import open_http_deliverer
from daemon.sources.base import Source
from daemon.sources.manifest import ManifestSource
from daemon.sources.spool import SpoolSource
from daemon.watchdog import ProgressMonitor
from workers.batching import JSON_ARRAY, NDJSON
from workers.payloads.keys import check_key, make_key
from workers.probe.engine import probe
from workers.probe.media import MediaInfo
from workers.reads.file import FileReader
from workers.reads.http import HttpReader


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


def url_maker(cfg: Config):  # type: ignore[no-untyped-def]
    prefix = cfg.source.url_prefix

    def make_url(ref: ObjectRef) -> str:
        if ref.origin == "url":
            assert ref.url is not None
            return ref.url
        if ref.origin == "file":
            if not prefix:
                raise ValueError("source.url_prefix is required to publish local files")
            return file_url(prefix, ref.key)
        raise ValueError(f"no URL maker for origin {ref.origin!r}")

    return make_url


async def open_source(cfg: Config, stack: AsyncExitStack, *, once: bool) -> Source:
    s = cfg.source
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


async def make_prober(cfg: Config, stack: AsyncExitStack) -> Prober:
    head = cfg.probe.head_bytes
    session: aiohttp.ClientSession | None = None

    async def http_session() -> aiohttp.ClientSession:
        nonlocal session
        if session is None:
            connector = aiohttp.TCPConnector(limit=cfg.probe.concurrency, ttl_dns_cache=300)
            session = await stack.enter_async_context(
                aiohttp.ClientSession(
                    connector=connector,
                    cookie_jar=aiohttp.DummyCookieJar(),
                    timeout=aiohttp.ClientTimeout(total=cfg.probe.timeout),
                    auto_decompress=False,
                )
            )
        return session

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
            return await probe(HttpReader(await http_session(), ref.url, size=ref.size), head_bytes=head)
        raise WiringError(f"no reader for origin {ref.origin!r} in this build")

    return prober


def settings(cfg: Config) -> Settings:
    k = cfg.sink
    return Settings(
        probe_workers=cfg.probe.concurrency,
        deliver_workers=k.max_concurrency if k.type != "files" else 1,
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
    builder = Builder(
        platform=cfg.target.platform,
        accept_kinds=cfg.target.accept_kinds,
        strict=cfg.target.strict_access,
        make_url=url_maker(cfg),
    )
    return Pipeline(
        source=await open_source(cfg, stack, once=once),
        deliverer=sink,
        ledger=ledger,
        prober=prober or await make_prober(cfg, stack),
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
