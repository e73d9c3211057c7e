"""The Labelbox GraphQL client: one long-lived session, a token from the endpoint before every
request, every answer sorted by ``workers.platforms.labelbox.graphql.read_answer``.

Each call either returns the answer's data or raises the sink contract's errors:
rate limited / transient -> :class:`TransientError` (``retry_after`` when Labelbox sent one);
refused -> :class:`CredentialsError` (logged once per refusal, not per request); permanent ->
:class:`PermanentError` with Labelbox's own message. The API key is only ever in the
``Authorization`` header: never in a message, a log line or a dead letter.
"""

from __future__ import annotations

import time
from typing import Any, TypeVar

import aiohttp
import msgspec
import structlog
from yarl import URL

from daemon.sinks.base import CredentialsError, PermanentError, TransientError
from daemon.sinks.endpoint import Endpoint
from workers.platforms.labelbox import graphql as gql
from workers.platforms.labelbox.graphql import Answer, Kind

log = structlog.get_logger()

MAX_ANSWER_BYTES = 64 * 1024 * 1024  # a 5,000-row failure page with specs is a few MB
T = TypeVar("T")


class GraphqlRefusal(PermanentError):
    """A permanent answer with its GraphQL error code (``RESOURCE_CONFLICT``, ``RESOURCE_NOT_FOUND``...)."""

    def __init__(self, message: str, *, code: str | None, status: int | None = None):
        super().__init__(message, status=status)
        self.code = code


class LabelboxClient:
    def __init__(
        self,
        *,
        url: str,
        api_key: str,
        session: aiohttp.ClientSession,
        endpoint: Endpoint,
        request_timeout: float,
        upload_timeout: float,
        retry_after_cap: float,
    ) -> None:
        self._url = URL(url)
        self.where = f"{self._url.host}{self._url.path}"
        self._auth = {"Authorization": f"Bearer {api_key}"}
        self._session = session
        self.endpoint = endpoint
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._upload_timeout = aiohttp.ClientTimeout(total=upload_timeout)
        self._retry_after_cap = retry_after_cap
        self.refused: str | None = None  # Labelbox's message while it refuses our credentials
        self.requests = 0

    async def answer(self, document: str, variables: dict[str, Any]) -> Answer:
        """One GraphQL request; the (ok) answer."""
        body = msgspec.json.encode({"query": document, "variables": variables})
        return await self._post(body, "application/json", self._timeout)

    async def query(self, document: str, variables: dict[str, Any], typ: type[T]) -> T:
        """One GraphQL request; its data decoded as ``typ``."""
        answer = await self.answer(document, variables)
        try:
            return gql.data_as(answer, typ)
        except gql.ProtocolError as e:
            raise TransientError(f"Labelbox at {self.where}: {e}") from None

    async def upload(self, content: bytes, filename: str) -> str:
        """``uploadFile``: the file's Labelbox-hosted URL."""
        ctype, body = gql.upload_body(content, filename=filename)
        return (await self.multipart(ctype, body, gql.UploadFileData)).uploadFile.url

    async def multipart(self, ctype: str, body: bytes, typ: type[T]) -> T:
        """A GraphQL multipart request built by the caller; its data decoded as ``typ``."""
        answer = await self._post(body, ctype, self._upload_timeout)
        try:
            return gql.data_as(answer, typ)
        except gql.ProtocolError as e:
            raise TransientError(f"Labelbox at {self.where}: {e}") from None

    async def fetch_file(self, url: str, limit: int) -> bytes:
        """A result file Labelbox points to (no auth header: the URL is its own credential)."""
        try:
            async with self._session.get(url, timeout=self._timeout, allow_redirects=True) as resp:
                if resp.status >= 400:
                    what = f"result file answered HTTP {resp.status}"
                    if resp.status >= 500 or resp.status == 429:
                        raise TransientError(what, status=resp.status)
                    raise PermanentError(what, status=resp.status)
                return await resp.content.read(limit)
        except TimeoutError:
            raise TransientError("result file: no answer in time") from None
        except (aiohttp.ClientError, OSError) as e:
            raise TransientError(f"result file: {type(e).__name__}") from None

    async def _post(self, body: bytes, ctype: str, limit: aiohttp.ClientTimeout) -> Answer:
        await self.endpoint.request_slot()
        self.requests += 1
        headers = {**self._auth, "Content-Type": ctype, "Accept": "application/json"}
        try:
            async with self._session.post(
                self._url, data=body, headers=headers, timeout=limit, allow_redirects=False
            ) as resp:
                data = await resp.content.read(MAX_ANSWER_BYTES)
                answer = gql.read_answer(
                    resp.status,
                    resp.headers.get("Content-Type", ""),
                    data,
                    retry_after=resp.headers.get("Retry-After"),
                    now_epoch=time.time(),
                    retry_after_cap=self._retry_after_cap,
                )
        except TimeoutError:
            raise TransientError(f"Labelbox at {self.where}: no answer within {limit.total} s") from None
        except (aiohttp.ClientError, OSError) as e:
            raise TransientError(f"Labelbox at {self.where}: {type(e).__name__}") from None
        return self._sorted(answer)

    def _sorted(self, a: Answer) -> Answer:
        if a.kind is Kind.OK:
            if self.refused is not None:
                log.info("labelbox.credentials_accepted", endpoint=self.where)
                self.refused = None
            return a
        text = f"Labelbox at {self.where}: {a.message}"
        if a.kind is Kind.REFUSED:
            if self.refused is None:
                log.error("labelbox.credentials_refused", endpoint=self.where, code=a.code, reason=a.message)
            self.refused = a.message
            raise CredentialsError(f"{text} (credentials refused; nothing dead-lettered)", status=a.status)
        if a.kind is Kind.RATE_LIMITED:
            raise TransientError(f"{text} (rate limited)", retry_after=a.retry_after, status=429)
        if a.kind is Kind.TRANSIENT:
            raise TransientError(text, status=a.status if a.status >= 500 else None)
        raise GraphqlRefusal(text, code=a.code, status=a.status)
