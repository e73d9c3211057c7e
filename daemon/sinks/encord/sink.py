"""The ``encord`` sink: each batch is one Encord ``data-upload-jobs`` job, polled to its end.

``deliver(batch)``::

    checkpoint "encord.job:<batch id>" (in the ledger)
      ""/absent  -> POST storage/folders/<folder>/data-upload-jobs   (checkpoint "sent" first)
      "sent"     -> the same, logged: an earlier create got no answer, the re-send relies on
                    skipDuplicateUrls (a URL the lost job registered comes back as a duplicate)
      <job uuid> -> resume polling that job (after a crash, a lost poll, a Retry-After)
    job uuid -> checkpoint, *then* long polls ``?timeoutSeconds=N`` until DONE/ERROR/CANCELLED
    -> per object: accepted / duplicate (skipped URL) / rejected with Encord's unit error
    -> checkpoint cleared ("")

The create POST is never retried inside one call; the Deliverer's next attempt re-enters
``deliver``, which finds the checkpoint: "sent" stays after no answer or a 5xx (the job may
exist), and is cleared after a refusal (429, 4xx) or a connection never made. A poll that fails
leaves the job id in place, so the retry polls the same job. A 404 for the job (it expired) sets
"sent": the next attempt re-sends. The integration title is resolved to its hash once
(``cloud-integrations``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Protocol
from urllib.parse import quote

import aiohttp
import structlog

from daemon.core.config import Config, ConfigError
from daemon.core.secrets import load_secret
from daemon.sinks.base import Batch, CredentialsError, ItemResult, PermanentError, TransientError
from daemon.sinks.delivery import Deliverer, DeliveryLimits
from daemon.sinks.encord.client import EncordClient, NotFound, Unanswered
from daemon.sinks.endpoint import Endpoint
from workers.payloads.encord import GROUP
from workers.platforms.encord import responses
from workers.platforms.encord.payload import Sent, upload_job
from workers.platforms.encord.responses import ResponseError
from workers.platforms.encord.signing import KeyProblem, Signer, load_private_key

log = structlog.get_logger()

DEFAULT_ENDPOINT = "https://api.encord.com"
POLL_SECONDS = 30  # per long poll: below the watchdog's stall_seconds default (45 s)
SENT = "sent"


class Checkpoints(Protocol):
    """The ledger's named checkpoints (``LedgerStore.get_checkpoint`` / ``put_checkpoint``)."""

    async def get_checkpoint(self, name: str) -> str | None: ...

    async def put_checkpoint(self, name: str, value: str) -> None: ...


class EncordSink:
    name = "encord"

    def __init__(
        self, *, client: EncordClient, checkpoints: Checkpoints, folder: str, integration: str
    ) -> None:
        self._client = client
        self._ckpt = checkpoints
        self.folder = folder
        self.integration = integration
        self._integration_hash: str | None = None
        self._resolving = asyncio.Lock()  # concurrent first batches resolve it once
        self.poll_seconds = POLL_SECONDS
        self.jobs_created = 0

    def __repr__(self) -> str:
        return f"<EncordSink folder={self.folder} jobs_created={self.jobs_created} {self._client!r}>"

    @property
    def _jobs_path(self) -> str:
        return f"storage/folders/{quote(self.folder, safe='')}/data-upload-jobs"

    async def deliver(self, batch: Batch) -> list[ItemResult]:
        items = [(i.key, i.kind, i.body) for i in batch.items if i.kind in GROUP]
        refused = [
            ItemResult(
                key=i.key, status="rejected", reason=f"Encord registers video, image and audio, not {i.kind}"
            )
            for i in batch.items
            if i.kind not in GROUP
        ]
        if not items:
            return refused
        try:
            body, sent = upload_job(
                items, integration_hash=await self._resolve_integration(), file_name=f"ingestd-{batch.id}"
            )
        except ValueError as e:  # a body that is not an encoded Item: a bug upstream
            raise PermanentError(f"batch {batch.id}: {e}") from None
        name = f"encord.job:{batch.id}"
        job = await self._ckpt.get_checkpoint(name) or ""
        if job in ("", SENT):
            job = await self._create(batch, body, name, resend=job == SENT)
        else:
            log.info("encord.job.resumed", batch_id=batch.id, job=job, items=len(batch.items))
        state = await self._wait(batch, name, job)
        await self._ckpt.put_checkpoint(name, "")
        return [*self._results(batch, job, sent, state), *refused]

    async def _create(self, batch: Batch, body: bytes, name: str, *, resend: bool) -> str:
        if resend:
            log.warning(
                "encord.job.resend",
                batch_id=batch.id,
                items=len(batch.items),
                reason="an earlier create for this batch got no answer; the job may exist: "
                "re-sending relies on skipDuplicateUrls",
            )
        await self._ckpt.put_checkpoint(name, SENT)
        try:
            data = await self._client.call("POST", self._jobs_path, body=body)
        except Unanswered as e:
            if e.sent:
                log.warning(
                    "encord.job.create_unanswered",
                    batch_id=batch.id,
                    reason=str(e),
                    next="the re-send relies on skipDuplicateUrls",
                )
            else:
                await self._ckpt.put_checkpoint(name, "")
            raise
        except (TransientError, PermanentError) as e:
            if e.status is not None and e.status < 500:  # a refusal: no job was made
                await self._ckpt.put_checkpoint(name, "")
            if isinstance(e, NotFound):
                raise CredentialsError(f"Encord storage folder {self.folder} (target.dataset): {e}") from None
            raise
        try:
            job = responses.job_id(data)
        except ResponseError as e:
            raise TransientError(f"Encord job creation for batch {batch.id}: {e}") from None
        await self._ckpt.put_checkpoint(name, job)
        self.jobs_created += 1
        log.info("encord.job.created", batch_id=batch.id, job=job, items=len(batch.items), folder=self.folder)
        return job

    async def _wait(self, batch: Batch, name: str, job: str) -> responses.JobStatus:
        path = f"{self._jobs_path}/{quote(job, safe='')}"
        while True:
            try:
                data = await self._client.call(
                    "GET", path, query=f"timeoutSeconds={self.poll_seconds}", wait=self.poll_seconds
                )
            except NotFound as e:
                await self._ckpt.put_checkpoint(name, SENT)
                raise TransientError(
                    f"Encord job {job} of batch {batch.id} is gone ({e}); "
                    "the re-send relies on skipDuplicateUrls"
                ) from None
            try:
                state = responses.job_status(data)
            except ResponseError as e:
                raise TransientError(f"Encord job {job}: {e}") from None
            if state.terminal:
                return state
            self._client.endpoint.stats.platform_waits += 1  # the watchdog: waiting by choice
            log.debug("encord.job.pending", batch_id=batch.id, job=job, pending=state.units_pending_count)

    def _results(
        self, batch: Batch, job: str, sent: list[Sent], state: responses.JobStatus
    ) -> list[ItemResult]:
        out = [
            ItemResult(key=o.key, status=o.status, reason=o.reason) for o in responses.outcomes(sent, state)
        ]
        counts = {
            s: sum(r.status == s for r in out) for s in ("accepted", "duplicate", "rejected", "retryable")
        }
        log.info(
            "encord.job.finished",
            batch_id=batch.id,
            job=job,
            status=state.status,
            errors=state.errors[:3],
            **counts,
        )
        return out

    async def _resolve_integration(self) -> str:
        async with self._resolving:
            return self._integration_hash or await self._lookup_integration()

    async def _lookup_integration(self) -> str:
        found = responses.integrations(await self._client.call("GET", "cloud-integrations"))
        match = responses.find_integration(found, self.integration)
        if match is None:
            titles = sorted(i.title for i in found)[:20]
            raise CredentialsError(
                f"Encord cloud integration {self.integration!r} (target.integration) not found "
                f"or ambiguous for this key; integrations visible: {titles}"
            )
        self._integration_hash = match.integration_uuid
        return match.integration_uuid

    async def check(self) -> None:
        """An authenticated read of the folder, then the integration: raise naming what is missing."""
        path = f"storage/folders/{quote(self.folder, safe='')}"
        try:
            folder = responses.folder(await self._client.call("GET", path))
        except NotFound as e:
            raise CredentialsError(
                f"Encord storage folder {self.folder} (target.dataset) not found: {e}"
            ) from None
        except ResponseError as e:
            raise TransientError(f"Encord storage folder {self.folder}: {e}") from None
        await self._resolve_integration()
        log.info(
            "encord.ready", folder=self.folder, folder_name=folder.name, integration=self._integration_hash
        )


async def open_encord_deliverer(
    cfg: Config,
    stack: AsyncExitStack,
    checkpoints: Checkpoints,
    *,
    environ: dict[str, str] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Deliverer:
    """The whole ``[sink] type = "encord"`` path: key, session, endpoint, sink and the Deliverer."""
    k = cfg.sink
    try:
        signer = Signer(load_private_key(load_secret(k.private_key_secret, environ)))
    except KeyProblem as e:
        raise ConfigError(f"sink.private_key_secret: secret {k.private_key_secret!r}: {e}") from None
    limits = DeliveryLimits.from_config(k)
    endpoint: Endpoint = Deliverer.endpoint_for("encord", limits, clock)
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
    session = await stack.enter_async_context(
        aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
    )
    client = EncordClient(
        base=k.endpoint or DEFAULT_ENDPOINT,
        signer=signer,
        session=session,
        endpoint=endpoint,
        request_timeout=k.request_timeout,
        retry_after_cap=k.retry_after_cap,
    )
    sink = EncordSink(
        client=client, checkpoints=checkpoints, folder=cfg.target.dataset, integration=cfg.target.integration
    )
    return Deliverer(sink, endpoint, limits, clock=clock)
