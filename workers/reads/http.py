"""RangeReader over HTTP(S): ``Range: bytes=a-b`` GETs with one shared aiohttp session.

The object's size comes from the first response's ``Content-Range`` (``bytes a-b/size``), so
the head read also answers ``size()``; a server that ignores Range (200 with the whole body)
is read only up to what was asked and its size taken from ``Content-Length``. 404/410 mean
the object is gone; 5xx, 429 and connection errors are transient.

URLs named by messages are untrusted. With a :class:`~workers.reads.fence.Fence` the reader
checks each URL before requesting it, follows redirects itself (at most ``MAX_REDIRECTS``, each
target checked, the last one remembered), and the session's :class:`FencedResolver` lets the
connector reach only addresses that passed the fence. A response body is never read past what
was asked for (a 206 sending more is cut off).
"""

from __future__ import annotations

import re
import socket
from urllib.parse import urljoin

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from workers.reads import ObjectGone, ReadError, UrlFenced
from workers.reads.fence import Fence, Refusal

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5


def _public(url: str) -> str:
    """The URL without its query string (signatures never reach logs or errors)."""
    return url.split("?", 1)[0]


class FencedAddress(OSError):
    """Every address a host resolved to was refused by the fence (raised by the resolver)."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(str(refusal))
        self.refusal = refusal


class FencedResolver(AbstractResolver):
    """Resolves with ``inner`` and returns only the addresses the fence allows.

    The connector connects to exactly what this returns, so the address checked is the
    address used. When none is left, :class:`FencedAddress` says why the first was refused.
    """

    def __init__(self, fence: Fence, inner: AbstractResolver | None = None) -> None:
        self.fence = fence
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._inner is None:
            self._inner = aiohttp.DefaultResolver()
        found = await self._inner.resolve(host, port, family)
        allowed: list[ResolveResult] = []
        first: Refusal | None = None
        for r in found:
            refusal = self.fence.address(host, r["host"])
            if refusal is None:
                allowed.append(r)
            elif first is None:
                first = refusal
        if not allowed:
            raise FencedAddress(first or Refusal(host=host, reason="resolved to no address"))
        return allowed

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()


def fenced_error(e: aiohttp.ClientConnectorError) -> UrlFenced | None:
    """The fence's refusal behind a connector error, if that is what it was."""
    return UrlFenced(e.os_error.refusal) if isinstance(e.os_error, FencedAddress) else None


async def read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """At most ``limit`` bytes of the body; the rest is never read (the connection is dropped)."""
    buf = bytearray()
    while len(buf) < limit:
        chunk = await resp.content.read(limit - len(buf))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


class HttpReader:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        *,
        size: int | None = None,
        fence: Fence | None = None,
    ) -> None:
        self._session = session
        self._url = url
        self._size = size
        self._fence = fence

    @property
    def name(self) -> str:
        return _public(self._url)

    async def size(self) -> int:
        if self._size is None:
            await self.read(0, 1)
        assert self._size is not None
        return self._size

    def _check(self, url: str) -> None:
        if self._fence is not None and (refusal := self._fence.url(url)) is not None:
            raise UrlFenced(refusal)

    async def read(self, offset: int, length: int) -> bytes:
        if length <= 0:
            return b""
        headers = {"Range": f"bytes={offset}-{offset + length - 1}"}
        try:
            for _ in range(MAX_REDIRECTS + 1):
                self._check(self._url)
                async with self._session.get(self._url, headers=headers, allow_redirects=False) as resp:
                    location = resp.headers.get("Location")
                    if resp.status in _REDIRECTS and location:
                        # followed here, checked like the first URL; later reads go straight there
                        self._url = urljoin(self._url, location)
                        continue
                    return await self._answer(resp, offset, length)
        except aiohttp.ClientConnectorError as e:
            fenced = fenced_error(e)
            if fenced is not None:
                raise fenced from None
            raise ReadError(f"{self.name}: {type(e).__name__}: {e}", transient=True) from None
        except (aiohttp.ClientError, TimeoutError) as e:
            raise ReadError(f"{self.name}: {type(e).__name__}: {e}", transient=True) from None
        raise ReadError(f"{self.name}: more than {MAX_REDIRECTS} redirects", transient=False)

    async def _answer(self, resp: aiohttp.ClientResponse, offset: int, length: int) -> bytes:
        status = resp.status
        if status == 206:
            m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
            if m and m.group(3) != "*":
                self._size = int(m.group(3))
            return await read_capped(resp, length)
        if status == 200:
            # Range ignored: read only the prefix we need, then drop the connection.
            want = offset + length
            buf = await read_capped(resp, want)
            if self._size is None:
                self._size = resp.content_length if resp.content_length is not None else len(buf)
            return buf[offset:want]
        if status == 416:
            if self._size is None:
                m = re.match(r"bytes \*/(\d+)", resp.headers.get("Content-Range", ""))
                self._size = int(m.group(1)) if m else offset
            return b""
        if status in (404, 410):
            raise ObjectGone(f"{self.name}: HTTP {status}")
        transient = status >= 500 or status in (408, 425, 429)
        raise ReadError(f"{self.name}: HTTP {status} for range read", transient=transient, status=status)
