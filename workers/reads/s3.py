"""RangeReader for S3: ranged GETs of URLs presigned by :mod:`workers.urls`.

aiobotocore's ``get_object`` costs ~1.3 ms of CPU per call (perf.md), about 9x an aiohttp GET of
a presigned URL, so the probe's hot path signs locally and uses one long-lived client: the
daemon's is a :class:`~workers.reads.h1pool.RangeClient` (:func:`range_client`, half aiohttp's
CPU per GET), given the signed origin and target (``S3UrlSigner.presign_target``: no URL to
parse back); an aiohttp session (:func:`http_session`) works the same with the URL. aiobotocore
is used only for credentials (the standard chain, refreshed when they rotate, asked at most once
a second). ``bench s3_read``: ~65-70 µs of CPU per 64 KiB read at 16-64 in flight, ~2x a bare
asyncio client fetching an unsigned URL (~130 µs, 3.3-4.1x, before these were cut).

Status mapping: 206/200 -> bytes; 416 -> end of object; 404 ``NoSuchKey`` -> :class:`ObjectGone`;
403 -> permanent (access denied: the message says which object and which AWS error code), except
``ExpiredToken``/``RequestTimeTooSkewed`` which a retry with fresh credentials/clock can fix;
412 (the object changed since the event: ``If-Match`` on the event's ETag) -> permanent;
429/5xx, timeouts and connection errors -> transient.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, Protocol

import aiohttp
from aiohttp.abc import AbstractResolver

from workers.reads import ObjectGone, ReadError, UrlFenced
from workers.reads.fence import Fence
from workers.reads.h1 import H1Error
from workers.reads.h1pool import RangeClient
from workers.reads.http import FencedAddress, FencedResolver, fenced_error, read_capped
from workers.sigv4 import Credentials
from workers.urls import S3UrlSigner

_CONTENT_RANGE_TOTAL = re.compile(r"/(\d+)\s*$")
_CODE = re.compile(rb"<Code>([^<]{1,64})</Code>")
_ERROR_BODY = 65536
_TRANSIENT_403 = frozenset({"ExpiredToken", "RequestTimeTooSkewed", "TokenRefreshRequired"})


class CredentialSource(Protocol):
    async def get(self) -> Credentials:
        """Current credentials (may refresh them)."""
        ...


class ChainCredentials:
    """Frozen credentials from an aiobotocore session's standard chain, fetched per call.

    The first call resolves the chain (env, config files, SSO, container/instance roles); later
    calls return the frozen set at once unless it is about to expire, when botocore refreshes it.
    botocore is asked at most once per ``recheck`` seconds (its expiry check reads the local time
    zone: ~14 µs, a tenth of a probe's read); in between the last frozen set is returned, so a
    refresh (botocore's start 15 minutes before expiry) is seen up to ``recheck`` seconds late.
    """

    def __init__(
        self, session: Any = None, *, recheck: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._session = session
        self._creds: Any = None
        self._last: tuple[str, str, str | None] | None = None
        self._frozen: Credentials | None = None
        self._recheck = recheck
        self._clock = clock
        self._until = 0.0  # the frozen set is returned without asking botocore until then

    @property
    def current(self) -> Credentials | None:
        """The credentials of the last :meth:`get` (for signing URLs synchronously), if any."""
        return self._frozen

    async def get(self) -> Credentials:
        if self._frozen is not None and self._clock() < self._until:
            return self._frozen
        if self._creds is None:
            if self._session is None:
                from aiobotocore.session import get_session  # noqa: PLC0415 - only when no session is given

                self._session = get_session()
            self._creds = await self._session.get_credentials()
            if self._creds is None:
                raise ReadError("no AWS credentials found in the standard chain", transient=False)
        f = await self._creds.get_frozen_credentials()
        key = (f.access_key, f.secret_key, f.token)
        if key != self._last or self._frozen is None:
            self._last = key
            self._frozen = Credentials(access_key=f.access_key, secret_key=f.secret_key, token=f.token)
        self._until = self._clock() + self._recheck
        return self._frozen


def http_session(
    concurrency: int,
    *,
    timeout: float = 30.0,
    fence: Fence | None = None,
    dns: AbstractResolver | None = None,
) -> aiohttp.ClientSession:
    """The one long-lived session for ranged reads: pool sized to the probe concurrency.

    With a ``fence``, names resolve through :class:`FencedResolver` (only allowed addresses
    are connected to); ``dns`` is the resolver behind it (default: aiohttp's).
    """
    resolver = FencedResolver(fence, dns) if fence is not None else dns
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            limit=concurrency, limit_per_host=concurrency, ttl_dns_cache=300, resolver=resolver
        ),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 10.0)),
    )


def range_client(
    concurrency: int,
    *,
    timeout: float = 30.0,
    fence: Fence | None = None,
    dns: AbstractResolver | None = None,
) -> RangeClient:
    """The probe's client for S3 reads (:mod:`workers.reads.h1pool`, half aiohttp's CPU per GET):
    the same pool size, timeouts and fenced resolver as :func:`http_session`."""
    resolver = FencedResolver(fence, dns) if fence is not None else dns
    return RangeClient(
        limit=concurrency, timeout=timeout, connect_timeout=min(timeout, 10.0), resolver=resolver
    )


class S3Reads:
    """Makes :class:`S3Reader` objects sharing one client (a :class:`RangeClient`, or an aiohttp
    session), one signer and one credential source."""

    def __init__(
        self,
        http: aiohttp.ClientSession | RangeClient,
        signer: S3UrlSigner,
        credentials: CredentialSource,
        *,
        expires: int = 900,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.http = http
        self.signer = signer
        self.credentials = credentials
        self.expires = expires
        self.clock = clock

    def reader(self, bucket: str, key: str, *, size: int | None = None, etag: str | None = None) -> S3Reader:
        return S3Reader(self, bucket, key, size=size, etag=etag)


class S3Reader:
    """One object. ``size`` comes from the event; if unknown the first read learns it."""

    def __init__(self, reads: S3Reads, bucket: str, key: str, *, size: int | None, etag: str | None) -> None:
        self._reads = reads
        self._bucket = bucket
        self._key = key
        self._size = size
        self._etag = etag
        self._if_match = f'"{etag.strip(chr(34))}"' if etag else None  # the read's If-Match, made once
        self.requests = 0

    @property
    def name(self) -> str:
        return f"s3://{self._bucket}/{self._key}"

    async def size(self) -> int:
        if self._size is None:
            await self.read(0, 1)
        assert self._size is not None
        return self._size

    async def read(self, offset: int, length: int) -> bytes:
        if length <= 0 or (self._size is not None and offset >= self._size):
            return b""
        r = self._reads
        http = r.http
        creds, now = await r.credentials.get(), r.clock()
        if isinstance(http, RangeClient):  # signed in two parts: no URL for the client to parse
            origin, target = r.signer.presign_target(
                creds, self._bucket, self._key, expires=r.expires, now=now
            )
        else:
            url = r.signer.presign_get(creds, self._bucket, self._key, expires=r.expires, now=now)
        headers = {"Range": f"bytes={offset}-{offset + length - 1}"}
        if self._if_match is not None:
            headers["If-Match"] = self._if_match
        self.requests += 1

        def cap(status: int) -> int:  # never more than asked for (an error's body: enough for its <Code>)
            return length if status == 206 else offset + length if status == 200 else _ERROR_BODY

        try:
            if isinstance(http, RangeClient):
                answer = await http.fetch(http.origin(origin), target, headers, cap=cap)
                status, body = answer.status, answer.body
                content_range = answer.headers.get("content-range", "")
                cl = answer.headers.get("content-length", "")
                total = int(cl) if cl.isdigit() and cl.isascii() else None
            else:
                async with http.get(url, headers=headers, allow_redirects=False) as resp:
                    status = resp.status
                    body = await read_capped(resp, cap(status))
                    content_range = resp.headers.get("Content-Range", "")
                    total = resp.content_length
        except FencedAddress as e:
            raise UrlFenced(e.refusal) from None
        except aiohttp.ClientConnectorError as e:
            fenced = fenced_error(e)
            if fenced is not None:
                raise fenced from None
            raise ReadError(
                f"{self.name}: read at {offset}: {type(e).__name__}: {e}", transient=True
            ) from None
        except (TimeoutError, OSError, H1Error, aiohttp.ClientError) as e:
            raise ReadError(
                f"{self.name}: read at {offset}: {type(e).__name__}: {e}", transient=True
            ) from None
        if status == 206:
            m = _CONTENT_RANGE_TOTAL.search(content_range)
            if m:
                self._size = int(m.group(1))
            return body
        if status == 200:  # the whole object (a server that ignores Range)
            self._size = total if total is not None else len(body)
            return body[offset : offset + length]
        if status == 416:
            m = _CONTENT_RANGE_TOTAL.search(content_range)
            self._size = int(m.group(1)) if m else offset
            return b""
        raise self._error(status, body, offset)

    def _error(self, status: int, body: bytes, offset: int) -> ReadError:
        m = _CODE.search(body)
        code = m.group(1).decode(errors="replace") if m else ""
        where = f"{self.name}: read at {offset}: HTTP {status}{' ' + code if code else ''}"
        if status == 404 and code in ("NoSuchKey", ""):
            return ObjectGone(f"{self.name}: no such object (404 {code or 'Not Found'})")
        if status == 403 and code not in _TRANSIENT_403:
            return ReadError(
                f"{where}: access denied; the credentials need s3:GetObject on this object "
                "(and kms:Decrypt if it is KMS-encrypted)",
                transient=False,
                status=status,
            )
        if status == 412:
            return ReadError(
                f"{where}: the object changed since the event (ETag mismatch)", transient=False, status=412
            )
        transient = status in (403, 408, 429) or status >= 500
        return ReadError(where, transient=transient, status=status)
