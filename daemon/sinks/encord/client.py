"""Signed requests to Encord's v2 API, and what each answer means (ref/encord.md 1.2, 3.3).

One call = a token from the sink's :class:`~daemon.sinks.endpoint.Endpoint` -> the exact body
bytes signed (``workers.platforms.encord.signing``) -> one request whose path and query are sent
pre-encoded, exactly as signed. No retries here: the answer is sorted once and raised for the
Deliverer (the daemon's one retry policy):

==========================  ==============================================================
2xx JSON                    the body
401 / 403                   :class:`CredentialsError` (wrong key, wrong region, no access)
404                         :class:`NotFound` (the caller knows whether that is a folder or a job)
400 / 413 / 422             :class:`PermanentError` with the status (the Deliverer splits)
408 / 429 / 5xx, HTML 2xx   :class:`TransientError` with the parsed ``Retry-After``
no answer                   :class:`Unanswered` (``sent`` says whether the request left)
==========================  ==============================================================

Messages quote Encord's own error text (sanitized) and the request's trace id; never a header.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

import aiohttp
from yarl import URL

from daemon.sinks.base import CredentialsError, PermanentError, TransientError
from daemon.sinks.endpoint import Endpoint
from daemon.sinks.http import _read_bounded, error_text, sanitize
from workers.classify import BodyKind, body_kind
from workers.platforms.encord.signing import Signer
from workers.retry import parse_retry_after

API = "/v2/public/"
USER_AGENT = "ingestd/0.1 (+encord-sink)"


class NotFound(PermanentError):
    """HTTP 404: the folder or the job named in the path does not exist (for this key)."""


class Unanswered(TransientError):
    """No answer: ``sent`` is False only when the connection was never made."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class EncordClient:
    def __init__(
        self,
        *,
        base: str,
        signer: Signer,
        session: aiohttp.ClientSession,
        endpoint: Endpoint,
        request_timeout: float,
        retry_after_cap: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._base = base.rstrip("/")
        self._signer = signer
        self._session = session
        self.endpoint = endpoint
        self._timeout = request_timeout
        self._retry_after_cap = retry_after_cap
        self._clock = clock
        self.requests = 0

    def __repr__(self) -> str:
        return f"<EncordClient {self._base} {self._signer!r} requests={self.requests}>"

    async def call(
        self, method: str, path: str, *, query: str = "", body: bytes = b"", wait: float = 0.0
    ) -> bytes:
        """One signed request to ``/v2/public/<path>?<query>`` (both already URL-encoded).

        ``wait``: seconds the server may hold the request (a long poll) on top of the timeout.
        """
        target = API + path + (f"?{query}" if query else "")
        headers = self._signer.headers(method, target, body, int(self._clock()))
        trace = secrets.token_hex(16)
        headers["X-Cloud-Trace-Context"] = f"{trace}/1;o=1"
        headers["User-Agent"] = USER_AGENT
        headers["Accept"] = "application/json"
        if body:
            headers["Content-Type"] = "application/json"
        what = f"{method} {path} (trace {trace})"
        await self.endpoint.request_slot()
        self.requests += 1
        timeout = aiohttp.ClientTimeout(total=self._timeout + wait)
        try:
            async with self._session.request(
                method,
                URL(self._base + target, encoded=True),
                data=body or None,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
            ) as resp:
                data = await _read_bounded(resp)
                status, ctype, retry_after = (
                    resp.status,
                    resp.headers.get("Content-Type", ""),
                    resp.headers.get("Retry-After"),
                )
        except aiohttp.ClientConnectorError as e:
            raise Unanswered(f"Encord {what}: cannot connect: {sanitize(str(e))}", sent=False) from None
        except TimeoutError:
            raise Unanswered(f"Encord {what}: no answer within {timeout.total} s", sent=True) from None
        except (aiohttp.ClientError, OSError) as e:
            raise Unanswered(f"Encord {what}: {type(e).__name__}: {sanitize(str(e))}", sent=True) from None
        return self._sort(what, status, ctype, retry_after, data)

    def _sort(self, what: str, status: int, ctype: str, retry_after: str | None, data: bytes) -> bytes:
        kind = body_kind(ctype, data)
        if 200 <= status < 300 and kind is not BodyKind.HTML:
            return data
        text = error_text(kind, data) if data else "(empty body)"
        message = f"Encord answered HTTP {status} to {what}: {text}"
        if status in (401, 403):
            hint = "check sink.private_key_secret, the key's access and sink.endpoint (the region)"
            raise CredentialsError(f"Encord refused our credentials: {message}; {hint}", status=status)
        if status == 404:
            raise NotFound(message, status=404)
        if status in (408, 425, 429) or status >= 500 or 200 <= status < 300:
            ra = parse_retry_after(retry_after, now_epoch=self._clock(), cap=self._retry_after_cap)
            raise TransientError(message, retry_after=ra, status=status)
        raise PermanentError(message, status=status)
