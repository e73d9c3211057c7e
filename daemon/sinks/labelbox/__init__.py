"""``[sink] type = "labelbox"``: data rows created through Labelbox's GraphQL API.

Thin I/O over ``workers/platforms/labelbox``: :mod:`.client` (one session, a rate-limit token per
request, answers sorted), :mod:`.tasks` (one paced poller for every task in flight), :mod:`.sink`
(a batch -> one upload task, resumed from the ledger after a crash), and with ``[target] project``
:mod:`.project` (accepted rows into the project's batches) and :mod:`.imports` (annotation items
imported exactly once; large ones through :mod:`.staging`, an S3 object we wrote, presigned).
:func:`open_labelbox_deliverer` builds the whole path behind the daemon's one delivery policy.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import AsyncExitStack

import aiohttp
from aiobotocore.session import get_session

from daemon.core.aws import aws_client
from daemon.core.config import AnnotationsConfig, AwsConfig, SinkConfig, TargetConfig
from daemon.core.secrets import load_secret
from daemon.sinks.delivery import Deliverer, DeliveryLimits
from daemon.sinks.labelbox.client import LabelboxClient
from daemon.sinks.labelbox.imports import Importer, ImportSettings
from daemon.sinks.labelbox.project import ProjectRows, ProjectSettings
from daemon.sinks.labelbox.refresher import UrlExpiries, UrlRefresher
from daemon.sinks.labelbox.sink import Checkpoints, LabelboxSink, Settings
from daemon.sinks.labelbox.staging import Stager
from daemon.sinks.labelbox.tasks import TaskPoller

DEFAULT_ENDPOINT = "https://api.labelbox.com/graphql"

__all__ = ["DEFAULT_ENDPOINT", "LabelboxSink", "UrlRefresher", "labelbox_limits", "open_labelbox_deliverer"]


def labelbox_limits(cfg: SinkConfig) -> DeliveryLimits:
    """The delivery limits of ``[sink] type = "labelbox"``: the org's budget per minute, one call per
    task (so a call's latency is the task's, never a reason to shrink concurrency)."""
    return DeliveryLimits(
        requests_per_second=cfg.requests_per_minute / 60,
        max_concurrency=cfg.tasks_in_flight,
        max_retries=cfg.max_retries,
        retry_budget=cfg.retry_budget,
        retry_after_cap=cfg.retry_after_cap,
        deadline=cfg.task_deadline + max(60.0, 4 * cfg.request_timeout),
        latency_tolerance=math.inf,
    )


async def open_labelbox_deliverer(
    cfg: SinkConfig,
    target: TargetConfig,
    stack: AsyncExitStack,
    checkpoints: Checkpoints | None,
    *,
    expiries: UrlExpiries | None = None,
    environ: dict[str, str] | None = None,
    clock: Callable[[], float] = time.monotonic,
    poll_interval: float | None = None,
    annotations: AnnotationsConfig | None = None,
    aws: AwsConfig | None = None,
) -> Deliverer:
    """The session (closed by ``stack``), client, poller and sink behind a :class:`Deliverer`.

    ``poll_interval`` overrides the configured pace (in-process tests only; the configuration
    refuses less than 2 s)."""
    api_key = load_secret(cfg.api_key_secret, environ)
    limits = labelbox_limits(cfg)
    endpoint = Deliverer.endpoint_for("labelbox", limits, clock)
    session = await stack.enter_async_context(
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300), cookie_jar=aiohttp.DummyCookieJar()
        )
    )
    client = LabelboxClient(
        url=cfg.endpoint or DEFAULT_ENDPOINT,
        api_key=api_key,
        session=session,
        endpoint=endpoint,
        request_timeout=cfg.request_timeout,
        upload_timeout=max(cfg.request_timeout, 120.0),
        retry_after_cap=cfg.retry_after_cap,
    )
    poller = TaskPoller(client, interval=cfg.poll_interval if poll_interval is None else poll_interval)
    settings = Settings(dataset=target.dataset, upsert=cfg.upsert, task_deadline=cfg.task_deadline)
    sink = LabelboxSink(client, poller, checkpoints, settings, expiries=expiries)
    if target.project:  # without a ledger (ingestd check) only the project read is possible
        interval = poller.interval
        sink.project = ProjectRows(
            client,
            poller,
            checkpoints,
            ProjectSettings(
                project=target.project,
                priority=target.priority,
                consensus_labels=target.consensus_labels,
                consensus_coverage=target.consensus_coverage,
                batch_async_at=target.batch_async_at,
                interval=interval,
                processed_deadline=cfg.task_deadline,
                task_deadline=cfg.task_deadline,
            ),
            sink.row_ids,
        )
        a = annotations or AnnotationsConfig()
        stager = None
        if target.annotation_staging:
            aws, session = aws or AwsConfig(), get_session()  # one session: the client and our signer
            stager = Stager(
                target.annotation_staging,
                aws=aws,
                url_endpoint=target.url_endpoint,
                expires=target.annotation_staging_expires,
                client=await aws_client(stack, aws, "s3", session=session, attempts=1),  # our retry policy
                session=session,
            )
        sink.importer = Importer(
            client,
            sink.project,
            ImportSettings(
                kind=a.kind,
                rows_per_file=a.rows_per_file,
                inline_bytes=target.annotation_inline_bytes,
                interval=interval,
                deadline=cfg.task_deadline,
            ),
            stager=stager,
        )
    stack.push_async_callback(sink.aclose)
    return Deliverer(sink, endpoint, limits, clock=clock, split_on=())
