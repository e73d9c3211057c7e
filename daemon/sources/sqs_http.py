"""A thin SQS client for the source's hot calls: JSON protocol over its own connection pool.

``ReceiveMessage``, ``DeleteMessageBatch`` and ``ChangeMessageVisibilityBatch`` take the same
keyword arguments and return the same dicts as aiobotocore's client, at a fraction of its CPU per
call (no event hooks, no parameter/model machinery): a request is a msgspec-encoded body, our own
SigV4 header signature (:mod:`workers.sigv4`, identical to botocore's) and one POST, through the
small HTTP/1.1 client of the probe (:mod:`workers.reads.h1pool`, half aiohttp's CPU per request;
an aiohttp session works the same). The calls are safe to repeat, which that client does once
on a kept-alive connection found closed before any byte of the answer. The endpoint,
region and credential chain are the aiobotocore client's (:func:`open_thin_sqs`), so both clients
talk to the same place as the same principal; aiobotocore stays for every other call.

No retries here: a failed call raises :class:`workers.sqs_wire.SqsError` (network failures too,
``kind="network"``) and the source's callers decide (receivers back off, deletes are retried).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import aiohttp

from workers.reads.h1 import H1Error
from workers.reads.h1pool import RangeClient
from workers.reads.s3 import ChainCredentials, CredentialSource
from workers.sigv4 import HeaderSigner
from workers.sqs_wire import HOT_ACTIONS, SqsError, decode_response, encode_request, headers_for

MAX_ANSWER = 16 << 20  # ten 256 KiB messages with their attributes are far below this


class ThinSqs:
    """See the module docstring. No I/O in the constructor; time is injected (epoch seconds)."""

    def __init__(
        self,
        http: RangeClient | aiohttp.ClientSession,
        endpoint_url: str,
        *,
        region: str,
        credentials: CredentialSource,
        read_timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._http = http
        self._url = endpoint_url.rstrip("/") + "/"
        self._signer = HeaderSigner(self._url, region=region, service="sqs")
        self._credentials = credentials
        self._clock = clock
        self._timeout = aiohttp.ClientTimeout(total=read_timeout, sock_connect=5)
        self._headers = {a: headers_for(a) for a in HOT_ACTIONS}

    async def call(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        body = encode_request(params)
        creds = await self._credentials.get()
        headers = self._signer.sign(creds, "POST", self._headers[action], body, now=self._clock())
        try:
            if isinstance(self._http, RangeClient):
                answer = await self._http.request("POST", self._url, headers, body, cap=MAX_ANSWER)
                raw, status = answer.body, answer.status
                query_error = answer.headers.get("x-amzn-query-error")
            else:
                async with self._http.post(self._url, data=body, headers=headers, timeout=self._timeout) as r:
                    raw = await r.read()
                    status, query_error = r.status, r.headers.get("x-amzn-query-error")
        except (aiohttp.ClientError, TimeoutError, OSError, H1Error) as e:
            raise SqsError(type(e).__name__, str(e)[:200], status=0, kind="network") from None
        if isinstance(self._http, RangeClient) and answer.truncated:
            raise SqsError("H1Error", f"answer longer than {MAX_ANSWER} bytes", status=0, kind="network")
        return decode_response(status, query_error, raw)

    async def receive_message(self, **params: Any) -> dict[str, Any]:
        return await self.call("ReceiveMessage", params)

    async def delete_message_batch(self, **params: Any) -> dict[str, Any]:
        return await self.call("DeleteMessageBatch", params)

    async def change_message_visibility_batch(self, **params: Any) -> dict[str, Any]:
        return await self.call("ChangeMessageVisibilityBatch", params)


async def open_thin_sqs(
    client: Any, session: Any, stack: AsyncExitStack, *, connections: int, read_timeout: float
) -> ThinSqs:
    """A :class:`ThinSqs` at the aiobotocore ``client``'s endpoint and region, with the credential
    chain of its ``session`` (refreshed by botocore when near expiry), over one pool opened on
    ``stack`` (its own: long polls must not hold the probe's connections)."""
    http = await stack.enter_async_context(
        RangeClient(limit=connections, timeout=read_timeout, connect_timeout=5)
    )
    return ThinSqs(
        http,
        client.meta.endpoint_url,
        region=client.meta.region_name,
        credentials=ChainCredentials(session),
        read_timeout=read_timeout,
    )
