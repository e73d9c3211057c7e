"""Factories: from a Config to the pipeline's parts. Long-lived clients open in an AsyncExitStack."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import aiohttp
from aiohttp.abc import AbstractResolver

from daemon.core.config import Config, resolve
from daemon.core.jobs import ObjectRef
from daemon.ledger.store import LedgerStore, open_store
from daemon.ops.metrics import Metrics
from daemon.ops.watchdog import ProgressMonitor
from daemon.pipeline.annotate import Annotator, OntologySource
from daemon.pipeline.build import Builder, file_url
from daemon.pipeline.pipeline import Pipeline
from daemon.pipeline.stages import Prober, Settings
from daemon.service.fences import path_fence, probe_fence
from daemon.sinks.base import Deliverer
from daemon.sinks.delivery import Deliverer as DeliveryDeliverer
from daemon.sinks.delivery import DeliveryLimits
from daemon.sinks.encord.sink import open_encord_deliverer
from daemon.sinks.files import FilesSink
from daemon.sinks.http import open_http_deliverer
from daemon.sinks.labelbox import UrlRefresher, labelbox_limits, open_labelbox_deliverer
from daemon.sinks.labelbox.project import ProjectRows
from daemon.sources.base import Source
from daemon.sources.listing import Checkpoints, open_listing_source
from daemon.sources.manifest import ManifestSource
from daemon.sources.redis_streams import open_redis_source
from daemon.sources.spool import SpoolSource
from daemon.sources.sqs import open_sqs_source
from workers.annotations.ontology import load_ontology
from workers.batching import JSON_ARRAY, NDJSON
from workers.payloads.keys import check_key, key_from, make_key
from workers.probe.engine import probe
from workers.probe.media import MediaInfo
from workers.reads import RangeReader, ReadError, UrlFenced
from workers.reads.file import FileReader
from workers.reads.http import HttpReader
from workers.reads.s3 import ChainCredentials, S3Reads, http_session, range_client
from workers.urls import S3UrlSigner, virtual_hosted_url


class WiringError(Exception):
    pass


def key_maker(cfg: Config):  # type: ignore[no-untyped-def]
    template = cfg.target.global_key_template
    labelbox = cfg.target.platform == "labelbox"
    only_key = template == "{key}"  # the default: the object key is the rendered template

    def key_for(ref: ObjectRef) -> str:
        given = (ref.metadata or {}).get("global_key")
        if given is not None:
            if labelbox and (v := check_key(given)) is not None:
                raise ValueError(f"{v.message}: {v.actual!r}")
            return str(given)
        if only_key:
            return key_from(ref.key, template)
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
    if s.type in ("spool", "manifest") and not resolve(cfg, s.path).exists():
        raise WiringError(f"source.path: {resolve(cfg, s.path)} does not exist")
    if s.type == "spool":
        return SpoolSource(
            resolve(cfg, s.path), once=once, poll_interval=s.poll_interval, stable_seconds=s.stable_seconds
        )
    if s.type == "manifest":
        return ManifestSource(resolve(cfg, s.path), fmt=s.manifest_format)
    raise WiringError(f"source.type {s.type!r} is not available in this build")


async def make_sink(cfg: Config, stack: AsyncExitStack, ledger: LedgerStore | None = None) -> Deliverer:
    """The configured sink behind the daemon's one delivery policy (``daemon.sinks.delivery``).
    ``ledger`` lets a platform sink resume its tasks and keep URL expiries; ``None`` for checks."""
    k = cfg.sink
    if k.type == "files":
        return FilesSink(
            resolve(cfg, k.path), cfg.target.platform, rows_per_file=cfg.annotations.rows_per_file
        )
    if k.type == "http":
        return await open_http_deliverer(k, stack)
    if k.type == "labelbox":
        return await open_labelbox_deliverer(
            k, cfg.target, stack, ledger, expiries=ledger, annotations=cfg.annotations, aws=cfg.aws
        )
    if k.type == "encord":  # job ids are checkpoints in the ledger (a restart resumes the poll)
        return await open_encord_deliverer(cfg, stack, ledger or await open_store(cfg, stack))
    raise WiringError(f"sink.type {k.type!r} is not available in this build")


def url_refresher(cfg: Config, deliverer: Deliverer, ledger: LedgerStore) -> UrlRefresher | None:
    """The labelbox URL refresher, when rows are upserted with presigned URLs (else ``None``)."""
    k, t = cfg.sink, cfg.target
    if k.type != "labelbox" or not k.upsert or t.url_mode != "presign" or k.url_refresh_margin <= 0:
        return None
    return UrlRefresher(
        deliverer,
        ledger,
        ChainCredentials().get,
        margin=k.url_refresh_margin,
        expires=t.url_expires,
        interval=min(300.0, k.url_refresh_margin / 4),
    )


def reload_sink(deliverer: Deliverer, cfg: Config) -> None:
    """SIGHUP: new rate limits and concurrency for a running sink; work in flight continues."""
    if isinstance(deliverer, DeliveryDeliverer):
        k = cfg.sink
        deliverer.reload(labelbox_limits(k) if k.type == "labelbox" else DeliveryLimits.from_config(k))


class Readers:
    """Readers for every origin: pread for files, ranged GETs for URLs (one aiohttp session) and
    for S3 (URLs presigned by our signer, one RangeClient); both opened on first use, on ``stack``.

    URLs and buckets named by messages pass :func:`probe_fence`, local paths :func:`path_fence`;
    ``dns`` replaces the system resolver behind the fence (tests)."""

    def __init__(
        self,
        cfg: Config,
        stack: AsyncExitStack,
        credentials: ChainCredentials | None = None,
        *,
        dns: AbstractResolver | None = None,
    ) -> None:
        self.cfg = cfg
        self.stack = stack
        self.head = cfg.probe.head_bytes
        self.credentials = credentials or ChainCredentials()
        self.fence = probe_fence(cfg)
        self.paths = path_fence(cfg)  # local paths entries may name ([probe] allowed_roots)
        self.dns = dns
        self._session: aiohttp.ClientSession | None = None
        self._s3: S3Reads | None = None

    async def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = await self.stack.enter_async_context(
                http_session(
                    self.cfg.probe.concurrency, timeout=self.cfg.probe.timeout, fence=self.fence, dns=self.dns
                )
            )
        return self._session

    async def s3(self) -> S3Reads:
        if self._s3 is None:
            a, p = self.cfg.aws, self.cfg.probe
            signer = S3UrlSigner(
                region=a.region, endpoint_url=a.endpoint("s3"), addressing_style=a.addressing_style
            )
            client = range_client(p.concurrency, timeout=p.timeout, fence=self.fence, dns=self.dns)
            self._s3 = S3Reads(await self.stack.enter_async_context(client), signer, self.credentials)
        return self._s3

    @asynccontextmanager
    async def open(self, ref: ObjectRef) -> AsyncIterator[RangeReader]:
        if ref.origin == "file":
            assert ref.path is not None
            reader = FileReader(ref.path, fence=self.paths)
            try:
                yield reader
            finally:
                reader.close()
        elif ref.origin == "url":
            assert ref.url is not None
            yield HttpReader(await self.session(), ref.url, size=ref.size, fence=self.fence)
        else:
            yield self._s3_reader(ref, await self.s3())

    def _s3_reader(self, ref: ObjectRef, s3: S3Reads) -> RangeReader:
        assert ref.bucket is not None
        if (refusal := self.fence.bucket(ref.bucket)) is not None:
            raise UrlFenced(refusal)
        return s3.reader(ref.bucket, ref.key, size=ref.size, etag=ref.etag)

    async def probe(self, ref: ObjectRef) -> MediaInfo:
        if ref.origin == "s3":  # the hot path: an S3 reader holds nothing to close (no context)
            return await probe(self._s3_reader(ref, await self.s3()), head_bytes=self.head)
        async with self.open(ref) as reader:
            return await probe(reader, head_bytes=self.head)

    async def read_all(self, ref: ObjectRef, limit: int) -> bytes:
        async with self.open(ref) as reader:
            size = await reader.size()
            if size > limit:
                raise ReadError(
                    f"{reader.name}: {size} bytes, more than {limit} to read whole", transient=False
                )
            return await reader.read(0, size) if size else b""


def make_annotator(
    cfg: Config, readers: Readers, ledger: LedgerStore, ontologies: OntologySource | None = None
) -> Annotator | None:
    """The annotation stage for ``[annotations]`` (None when disabled); a target that cannot
    take annotations gets one that dead-letters every sidecar with the reason. ``ontologies``:
    the Labelbox project's ontology (used unless ``[annotations] ontology`` names a file)."""
    a = cfg.annotations
    if not a.enabled or not a.suffixes:
        return None
    refuse = None
    if cfg.target.platform != "labelbox":
        refuse = f"annotation sidecars are Labelbox NDJSON; target.platform is {cfg.target.platform!r}"
    elif cfg.sink.type == "labelbox" and not cfg.target.project:
        refuse = "annotations are imported into a Labelbox project: set [target] project"
    elif cfg.sink.type not in ("files", "labelbox"):
        refuse = f"annotations are written by the files sink; sink.type is {cfg.sink.type!r}"
    ontology = None
    if a.ontology:
        try:
            ontology = load_ontology(resolve(cfg, a.ontology).read_bytes())
        except (OSError, ValueError) as e:
            raise WiringError(f"annotations.ontology: {e}") from None
    return Annotator(
        a,
        key_for=key_maker(cfg),
        ledger=ledger,
        reads=readers,
        ontology=ontology,
        refuse=refuse,
        ontologies=None if a.ontology else ontologies,
    )


def project_ontology(deliverer: object) -> OntologySource | None:
    """The labelbox sink's project ontology reader, when the sink imports into a project."""
    project = getattr(getattr(deliverer, "sink", None), "project", None)
    return project.ontology if isinstance(project, ProjectRows) else None


def settings(cfg: Config) -> Settings:
    k = cfg.sink
    return Settings(
        probe_workers=cfg.probe.concurrency,
        # the delivery gate (AIMD, reloadable) bounds real concurrency; enough workers are kept
        # for a SIGHUP to raise max_concurrency up to 16 without a restart
        deliver_workers=max(k.max_concurrency, k.tasks_in_flight, 16) if k.type != "files" else 1,
        queue_size=cfg.pipeline.queue_size,
        max_in_flight=cfg.pipeline.max_in_flight,
        max_items=k.max_items,
        max_bytes=k.max_bytes,
        linger=k.linger_ms / 1000,
        framing=NDJSON if k.type == "http" else JSON_ARRAY,
        drain_timeout=cfg.pipeline.drain_timeout,
        recheck=(k.credentials_recheck_seconds, k.credentials_recheck_max_seconds),
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
    sink = await make_sink(cfg, stack, ledger)
    if isinstance(sink, FilesSink):
        sink.remove_leftovers()  # what a write killed mid-way left behind
    credentials = ChainCredentials()
    readers = Readers(cfg, stack, credentials)
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
        prober=prober or (lambda job: readers.probe(job.ref)),
        builder=builder,
        key_for=key_maker(cfg),
        settings=settings(cfg),
        metrics=metrics,
        monitor=monitor,
        annotator=make_annotator(cfg, readers, ledger, project_ontology(sink)),
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
