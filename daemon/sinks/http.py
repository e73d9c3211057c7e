"""The ``http`` sink: each batch is one NDJSON POST to ``[sink] url``.

Request::

    POST <url>
    Content-Type: application/x-ndjson
    Idempotency-Key: <batch.id>          (a pure function of the item keys: a repeat is recognisable)
    <[sink] headers> <[sink] secret_headers, values read with secrets.load_secret>

    <item body>\\n<item body>\\n...

Response (what the endpoint may answer; see ``workers/classify.py`` for every status):

* 2xx with a JSON object holding ``results`` -> per-item outcomes, honoured as given::

      {"results": [{"key": "k1", "status": "accepted"},
                   {"key": "k2", "status": "duplicate"},
                   {"key": "k3", "status": "rejected", "reason": "field x: must be ..."},
                   {"key": "k4", "status": "retryable", "reason": "index busy"}]}

  ``status`` is ``accepted | duplicate | rejected | retryable``; an item of the batch missing from
  ``results`` is ``retryable``; unknown keys are ignored.
* any other 2xx -> every item accepted; 409 -> every item duplicate (already there).
* 401/403 -> :class:`CredentialsError` (nothing is dead-lettered: delivery stops until fixed).
* 400/413/422 -> :class:`PermanentError` with the status (the Deliverer splits multi-item batches);
  other permanent statuses likewise; transient ones -> :class:`TransientError` carrying the parsed
  ``Retry-After``. Messages quote the server's error text, sanitized and truncated.

The body never exceeds ``max_bytes``: the pipeline batches with ``workers.batching.NDJSON`` framing
(one newline per item, no overhead) and the sink refuses a larger body with a 413-like
:class:`PermanentError` rather than sending it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from typing import Any, Literal

import aiohttp
import msgspec
from yarl import URL

from daemon.core.config import SinkConfig
from daemon.core.secrets import load_secret
from daemon.sinks.base import Batch, CredentialsError, ItemResult, PermanentError, TransientError
from daemon.sinks.delivery import Deliverer, DeliveryLimits
from daemon.sinks.endpoint import Endpoint
from workers.classify import BodyKind, Verdict, body_kind, classify
from workers.retry import parse_retry_after

MAX_RESPONSE_BYTES = 8 * 1024 * 1024  # a results body for 1,000 items is ~100 KB
MAX_REASON_CHARS = 300
CREDENTIAL_STATUSES = frozenset({401, 403})  # the endpoint refuses us, not the items


class _ItemOutcome(msgspec.Struct, frozen=True):
    key: str
    status: Literal["accepted", "duplicate", "rejected", "retryable"]
    reason: str | None = None


_TAGS = re.compile(r"<(script|style)\b.*?</\1>|<[^>]*>", re.IGNORECASE | re.DOTALL)
_SPACE = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def sanitize(text: str, limit: int = MAX_REASON_CHARS) -> str:
    """Server text fit for a reason and a log line: no markup, no control characters, bounded."""
    text = _SPACE.sub(" ", _CONTROL.sub(" ", _TAGS.sub(" ", text))).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def error_text(kind: BodyKind, body: bytes) -> str:
    """The server's own words: a JSON error's message field, else the page's text."""
    if kind is BodyKind.JSON:
        try:
            doc = msgspec.json.decode(body)
        except msgspec.DecodeError:
            doc = None
        msg = _message_of(doc)
        if msg:
            return sanitize(msg)
    return sanitize(body[:65536].decode("utf-8", "replace"))


def _message_of(doc: Any) -> str | None:
    if isinstance(doc, str):
        return doc
    if isinstance(doc, dict):
        for field in ("message", "error", "detail", "reason", "errors"):
            if field in doc:
                found = _message_of(doc[field])
                if found:
                    return found
    if isinstance(doc, list) and doc:
        return "; ".join(filter(None, (_message_of(d) for d in doc[:5]))) or None
    return None


class HttpSink:
    """One long-lived ``ClientSession``; build it with :func:`open_http_sink`."""

    def __init__(
        self,
        *,
        name: str,
        url: str,
        headers: Mapping[str, str],
        session: aiohttp.ClientSession,
        endpoint: Endpoint,
        max_bytes: int,
        request_timeout: float,
        retry_after_cap: float,
        overrides: Mapping[int, Verdict] | None = None,
    ) -> None:
        self.name = name
        self._url = URL(url)
        self._where = f"{self._url.host}{self._url.path}"  # no query string: it may hold a token
        self._headers = {**headers, "Content-Type": "application/x-ndjson"}
        self._session = session
        self._endpoint = endpoint
        self._max_bytes = max_bytes
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._retry_after_cap = retry_after_cap
        self._overrides = dict(overrides or {})

    async def deliver(self, batch: Batch) -> list[ItemResult]:
        body = b"\n".join([i.body for i in batch.items]) + b"\n"
        if len(body) > self._max_bytes:
            raise PermanentError(
                f"batch {batch.id}: body of {len(body)} bytes exceeds sink.max_bytes={self._max_bytes}",
                status=413,
            )
        await self._endpoint.request_slot(items=len(batch.items))
        headers = {**self._headers, "Idempotency-Key": batch.id}
        try:
            async with self._session.post(
                self._url, data=body, headers=headers, timeout=self._timeout, allow_redirects=False
            ) as resp:
                data = await _read_bounded(resp)
                return self._interpret(batch, resp.status, resp.headers, data)
        except TimeoutError:
            raise TransientError(f"POST {self._where}: no answer within {self._timeout.total} s") from None
        except (aiohttp.ClientError, OSError) as e:
            raise TransientError(f"POST {self._where}: {type(e).__name__}: {sanitize(str(e))}") from None

    def _interpret(
        self, batch: Batch, status: int, headers: Mapping[str, str], data: bytes
    ) -> list[ItemResult]:
        kind = body_kind(headers.get("Content-Type", ""), data)
        verdict = classify(status, kind, self._overrides)
        if verdict is Verdict.ACCEPTED:
            return self._accepted(batch, status, kind, data)
        if verdict is Verdict.DUPLICATE:
            return [ItemResult(key=i.key, status="duplicate") for i in batch.items]
        text = error_text(kind, data) if data else "(empty body)"
        message = f"HTTP {status} from {self._where}: {text}"
        if status in CREDENTIAL_STATUSES and status not in self._overrides:
            raise CredentialsError(message, status=status)
        if verdict is Verdict.TRANSIENT:
            ra = parse_retry_after(
                headers.get("Retry-After"), now_epoch=time.time(), cap=self._retry_after_cap
            )
            raise TransientError(message, retry_after=ra, status=status)
        raise PermanentError(message, status=status)

    def _accepted(self, batch: Batch, status: int, kind: BodyKind, data: bytes) -> list[ItemResult]:
        if kind is not BodyKind.JSON:
            return [ItemResult(key=i.key, status="accepted") for i in batch.items]
        try:
            doc = msgspec.json.decode(data)
        except msgspec.DecodeError as e:
            raise TransientError(f"HTTP {status} from {self._where}: body is not valid JSON ({e})") from None
        if not isinstance(doc, dict) or "results" not in doc:
            return [ItemResult(key=i.key, status="accepted") for i in batch.items]
        try:
            outcomes = msgspec.convert(doc["results"], list[_ItemOutcome])
        except msgspec.ValidationError as e:
            raise TransientError(f"HTTP {status} from {self._where}: malformed results: {e}") from None
        by_key = {o.key: o for o in outcomes}
        out: list[ItemResult] = []
        for item in batch.items:
            o = by_key.get(item.key)
            if o is None:
                out.append(ItemResult(key=item.key, status="retryable", reason="no result for this key"))
            elif o.status in ("rejected", "retryable"):
                out.append(ItemResult(key=item.key, status=o.status, reason=sanitize(o.reason or o.status)))
            else:
                out.append(ItemResult(key=item.key, status=o.status))
        return out

    async def check(self) -> None:
        """Readiness and ``ingestd check``: the request deliveries make (a POST with the same
        headers) with an empty NDJSON body, no items. No answer or a 5xx raises
        :class:`TransientError`; 401/403 :class:`CredentialsError`; 404/405 (wrong URL)
        :class:`PermanentError`. Any other answer (a 2xx, or a 400 refusing an empty batch) shows
        the endpoint is there and takes our credentials.

        While the endpoint is paused by a ``Retry-After`` it answered recently, so it is reachable:
        no request is sent (and the check does not wait out the pause).
        """
        if self._endpoint.paused_for() > 0:
            return
        await self._endpoint.request_slot()
        try:
            async with self._session.post(
                self._url, data=b"", headers=self._headers, timeout=self._timeout, allow_redirects=False
            ) as resp:
                status, data = resp.status, await _read_bounded(resp)
                kind = body_kind(resp.headers.get("Content-Type", ""), data)
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise TransientError(f"sink {self.name}: {self._where} unreachable: {type(e).__name__}") from None
        text = error_text(kind, data) if data else "(empty body)"
        message = f"sink {self.name}: POST {self._where} answered HTTP {status}: {text}"
        if status >= 500:
            raise TransientError(message, status=status)
        if status in CREDENTIAL_STATUSES:
            raise CredentialsError(f"{message} (credentials refused)", status=status)
        if status in (404, 405):
            raise PermanentError(message, status=status)


async def _read_bounded(resp: aiohttp.ClientResponse) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(65536):
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_RESPONSE_BYTES:
            break
    return b"".join(chunks)


def sink_headers(cfg: SinkConfig, environ: dict[str, str] | None = None) -> dict[str, str]:
    """Configured headers plus secret headers (values from ``load_secret``; never logged)."""
    headers = dict(cfg.headers)
    for header, secret in cfg.secret_headers.items():
        headers[header] = load_secret(secret, environ)
    return headers


async def open_http_sink(
    cfg: SinkConfig,
    endpoint: Endpoint,
    stack: AsyncExitStack,
    *,
    name: str = "http",
    environ: dict[str, str] | None = None,
    overrides: Mapping[int, Verdict] | None = None,
) -> HttpSink:
    """Open the session (closed by ``stack``) and build the sink."""
    headers = sink_headers(cfg, environ)
    # the Deliverer's adaptive gate bounds concurrency; the connector only reuses connections
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
    session = await stack.enter_async_context(
        aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
    )
    return HttpSink(
        name=name,
        url=cfg.url,
        headers=headers,
        session=session,
        endpoint=endpoint,
        max_bytes=cfg.max_bytes,
        request_timeout=cfg.request_timeout,
        retry_after_cap=cfg.retry_after_cap,
        overrides=overrides,
    )


async def open_http_deliverer(
    cfg: SinkConfig,
    stack: AsyncExitStack,
    *,
    name: str = "http",
    environ: dict[str, str] | None = None,
    limits: DeliveryLimits | None = None,
    overrides: Mapping[int, Verdict] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Deliverer:
    """The whole ``[sink] type = "http"`` delivery path: endpoint, sink and the Deliverer around it."""
    limits = limits or DeliveryLimits.from_config(cfg)
    endpoint = Deliverer.endpoint_for(name, limits, clock)
    sink = await open_http_sink(cfg, endpoint, stack, name=name, environ=environ, overrides=overrides)
    return Deliverer(sink, endpoint, limits, clock=clock)
