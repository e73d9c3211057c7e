"""A small HTTP/1.1 client for ranged GETs (and the SQS source's POSTs): keep-alive connections
driven by an asyncio protocol around the sans-I/O :class:`~workers.reads.h1.ResponseParser`.

Why not aiohttp here: a 64 KiB range GET through aiohttp costs ~185 µs of CPU, through this
~90 µs (``bench range_client``), and the probe makes one or two per object. aiohttp stays for
everything else (URLs named by messages with their redirects, the sinks, SQS).

Per request it does only what changes per request: an :class:`Origin` (``scheme://authority``
parsed once, its ``Host``/``User-Agent`` lines checked and joined once) is the pool's key, and
:meth:`RangeClient.fetch` takes one with the target (path and query), so a caller that signs
its own URLs (:mod:`workers.reads.s3`) hands over the parts and nothing is parsed back;
:meth:`RangeClient.get` and :meth:`RangeClient.request` take URLs. ``bench s3_read`` has the
cost of an S3 read through it next to a bare asyncio client.

What it keeps of the aiohttp session it replaces (``workers.reads.s3.http_session``):

* TLS with certificate and host name verification (``ssl.create_default_context()`` unless a
  context is given); no proxies (the aiohttp session did not trust the environment either);
* host names resolve through ``resolver`` (the probe's :class:`~workers.reads.http.FencedResolver`:
  only addresses the fence allows come back, and the connection goes to exactly those: no
  second lookup); IP literals are not resolved (as aiohttp's connector); answers cached
  ``dns_ttl`` seconds;
* at most ``limit`` requests in flight (each on its own connection), idle connections reused;
  a reused connection the server had closed is replaced once, before any byte of the answer;
* a total ``timeout`` per request (connect included) and ``connect_timeout`` per connection;
  the answer's deadline is checked by one sweep of the requests in flight every ``timeout / 10``
  (at most 1 s; no timer per request), so a request fails at most that much after its timeout;
* the body is never read past ``cap(status)`` bytes; such a connection is closed, not reused.

Errors: ``TimeoutError``, ``OSError`` (connection; :class:`FencedAddress` from the resolver),
:class:`~workers.reads.h1.H1Error` (a malformed answer). Redirects are not followed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

from workers.reads.h1 import Response, ResponseParser, request_with
from workers.reads.h1conn import Connection, Disconnected, Origin

Cap = Callable[[int], int] | int
RECV_BUFFER = 256 * 1024  # bytes one read may bring (uvloop's own read buffer is as large)


class Resolver(Protocol):
    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = ...) -> list[Any]:
        """aiohttp's ``AbstractResolver.resolve``: dicts with ``host`` and ``port``."""
        ...

    async def close(self) -> None: ...


class RangeClient:
    """See the module docstring. ``async with RangeClient(...) as c: await c.get(url, ...)``."""

    def __init__(
        self,
        *,
        limit: int = 64,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        resolver: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
        dns_ttl: float = 300.0,
        user_agent: str = "ingestd",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = max(1, limit)
        self.timeout = timeout
        self.connect_timeout = min(connect_timeout, timeout)
        self._resolver = resolver
        self._ssl = ssl_context
        self._dns_ttl = dns_ttl
        self._agent = user_agent
        self._clock = clock
        self._free = self.limit  # requests that may start now (a Semaphore's locked() costs a genexpr)
        self._queue: deque[asyncio.Future[None]] = deque()  # requests waiting for one, first first
        self._idle: dict[tuple[str, str, int], list[Connection]] = {}
        self._dns: dict[tuple[str, int], tuple[float, list[tuple[str, int]]]] = {}
        self._origins: dict[str, Origin] = {}
        self._busy: set[Connection] = set()  # connections with a request in flight, swept for deadlines
        self._sweep_every = min(1.0, timeout / 10)
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._recv = bytearray(RECV_BUFFER)  # every connection's reads land here (Connection)
        self._view = memoryview(self._recv)

    async def __aenter__(self) -> RangeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        self._closed = True
        for conns in self._idle.values():
            for c in conns:
                c.close()
        self._idle.clear()
        for c in list(self._busy):
            c.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._resolver is not None:
            await self._resolver.close()

    @property
    def idle(self) -> int:
        """Open connections waiting for a request (tests, metrics)."""
        return sum(len(v) for v in self._idle.values())

    def origin(self, origin: str) -> Origin:
        """``scheme://authority`` (http or https, no path), parsed once and kept (a few per process)."""
        found = self._origins.get(origin)
        if found is None:
            parts = urlsplit(origin)
            if parts.path or parts.query or parts.fragment:
                raise ValueError(f"not an origin (scheme://authority): {origin!r}")
            found = self._origin(parts.scheme, parts.netloc)
        return found

    def _origin(self, scheme: str, netloc: str) -> Origin:
        name = f"{scheme}://{netloc}"
        found = self._origins.get(name)
        if found is None:
            parts = urlsplit(name)
            host = parts.hostname
            if scheme not in ("http", "https") or not host:
                raise ValueError(f"not an http(s) URL: {scheme}://{netloc}")
            default = 443 if scheme == "https" else 80
            port = parts.port or default
            authority = f"[{host}]" if ":" in host else host
            if parts.port is not None and port != default:
                authority = f"{authority}:{port}"
            found = Origin(scheme, host, port, authority, self._agent)
            if len(self._origins) < 1024:
                self._origins[name] = found
        return found

    async def get(
        self, url: str, headers: Mapping[str, str] | None = None, *, cap: Cap = 1 << 20
    ) -> Response:
        """GET ``url`` (http or https; path and query already encoded) with ``headers``."""
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return await self.fetch(self._origin(parts.scheme, parts.netloc), target, headers, cap=cap)

    async def request(
        self, method: str, url: str, headers: Mapping[str, str] | None = None, body: bytes = b"", *, cap: Cap
    ) -> Response:
        """One request. Only for requests that may be repeated: a kept-alive connection found
        closed before any byte of the answer is replaced and the request sent again."""
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        origin = self._origin(parts.scheme, parts.netloc)
        return await self.fetch(origin, target, headers, method=method, body=body, cap=cap)

    async def fetch(
        self,
        origin: Origin,
        target: str,
        headers: Mapping[str, str] | None = None,
        *,
        method: str = "GET",
        body: bytes = b"",
        cap: Cap = 1 << 20,
    ) -> Response:
        """:meth:`request` of ``target`` (path and query, encoded) at an :meth:`origin`: no URL
        to parse again (the probe's S3 reads)."""
        if self._closed:
            raise RuntimeError("RangeClient is closed")
        fixed = origin.bare if headers and "User-Agent" in headers else origin.fields
        data = request_with(fixed, target, headers, method, body)
        key = origin.key
        loop = self._loop
        if loop is None:  # looked up once: each lookup is a getpid() (CPython 3.11)
            loop = self._loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout  # one total timeout: slot wait, connect, answer
        if self._free > 0:
            self._free -= 1  # no waiter can be queued then (a release hands its slot to one)
        else:
            await self._wait_slot(loop, deadline)
        try:
            for attempt in (0, 1):
                conn, reused = await self._take(key, deadline)
                try:
                    answer = await self._exchange(conn, data, cap, method == "HEAD", deadline)
                except Disconnected:
                    # a kept-alive connection the server had closed: once more on a new one
                    if reused and not conn.got_bytes and attempt == 0:
                        continue
                    raise
                if answer.reusable and conn.alive and not self._closed:
                    self._idle.setdefault(key, []).append(conn)
                else:
                    conn.close()
                return answer
        finally:
            self._release_slot()
        raise AssertionError("unreachable")  # pragma: no cover

    async def _wait_slot(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        """Until a finished request hands over its slot (in the order of asking), or the deadline."""
        handed: asyncio.Future[None] = loop.create_future()
        self._queue.append(handed)
        try:
            async with asyncio.timeout_at(deadline):
                await handed
        except BaseException:
            if handed.done() and not handed.cancelled():
                self._release_slot()  # handed over as this one gave up: to the next
            else:
                handed.cancel()  # dropped from the queue by the next release
            raise

    def _release_slot(self) -> None:
        queue = self._queue
        while queue:
            handed = queue.popleft()
            if not handed.done():
                handed.set_result(None)
                return
        self._free += 1

    async def _exchange(
        self, conn: Connection, data: bytes, cap: Cap, head: bool, deadline: float
    ) -> Response:
        conn.deadline = deadline
        busy = self._busy
        busy.add(conn)
        if self._sweeper is None:
            self._sweeper = conn.loop.call_later(self._sweep_every, self._sweep)
        try:
            return await conn.send(data, ResponseParser(cap, head=head))
        except BaseException:
            conn.close()  # cancelled or failed mid-answer: the connection's state is unknown
            raise
        finally:
            busy.discard(conn)

    def _sweep(self) -> None:
        """Fail the requests in flight past their deadline; again later while any is in flight."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        for conn in [c for c in self._busy if c.deadline <= now]:
            conn.time_out()
        self._sweeper = loop.call_later(self._sweep_every, self._sweep) if self._busy else None

    async def _take(self, key: tuple[str, str, int], deadline: float) -> tuple[Connection, bool]:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if conn.alive:
                return conn, True
        async with asyncio.timeout_at(deadline):
            return await self._connect(*key), False

    async def _connect(self, scheme: str, host: str, port: int) -> Connection:
        context = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        loop = asyncio.get_running_loop()
        error: OSError | None = None
        for address, to_port in await self._addresses(host, port):
            try:
                async with asyncio.timeout(self.connect_timeout):
                    _, conn = await loop.create_connection(
                        lambda: Connection(self._recv, self._view),
                        address,
                        to_port,
                        ssl=context,
                        server_hostname=host if context else None,
                    )
                return conn
            except TimeoutError:
                error = TimeoutError(f"connect to {host}:{port} ({address}) timed out")
            except OSError as e:
                error = e
        assert error is not None
        raise error

    async def _addresses(self, host: str, port: int) -> list[tuple[str, int]]:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            return [(host, port)]  # an IP literal is not resolved (the URL's own check covers it)
        now = self._clock()
        cached = self._dns.get((host, port))
        if cached is not None and cached[0] > now:
            return cached[1]
        if self._resolver is None:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            addresses = [(str(a[4][0]), port) for a in infos]
        else:
            found = await self._resolver.resolve(host, port, socket.AF_UNSPEC)
            addresses = [(str(r["host"]), int(r["port"])) for r in found]
        if not addresses:
            raise OSError(f"{host} resolved to no address")
        self._dns[(host, port)] = (now + self._dns_ttl, addresses)
        return addresses


__all__ = ["Disconnected", "Origin", "RangeClient", "Resolver"]
