"""Ranged GETs: aiohttp as ingestd uses it, aiohttp tuned, and a minimal asyncio HTTP/1.1 client.

The same 64 KiB range of a 100 KiB object from a local nginx, 64 requests in flight, one process,
in alternating rounds; requests/s and CPU µs per request (getrusage). Three clients:

* ``ingestd``: the probe's session (``workers.reads.s3.http_session``: pool sized to the
  concurrency, no cookie jar, no decompression, a session timeout) and the reader's call
  (``Range`` + ``If-Match`` headers, ``allow_redirects=False``, ``read()``);
* ``tuned``: the same session without a timeout (no timer per request), fewer per-call options;
* ``minimal``: keep-alive connections driven by an ``asyncio.Protocol`` that writes a prepared
  request and reads the status, ``Content-Length`` and body. No redirects, chunking, TLS,
  proxies, timeouts or error handling: a floor, not a client we could ship;
* ``range_client``: what the probe uses for S3 since issue #15
  (``workers.reads.s3.range_client``: :mod:`workers.reads.h1pool` with its timeouts, pool limit,
  body cap and sans-I/O parser).

Baseline of each figure: ``ingestd`` (the aiohttp session the probe used before #15). The bench
runs with glibc's allocator defaults; the daemon sets ``daemon.core.allocator`` (a 64 MiB trim
threshold), which takes ~60 µs of page faults off each request of any of these clients.
"""

from __future__ import annotations

import asyncio
import resource
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import uvloop

from bench.harness import Figure
from bench.nginx import nginx
from workers.reads.s3 import http_session, range_client

CONCURRENCY = 64
RANGE = 65536


class Conn(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.transport: asyncio.Transport | None = None
        self._end = -1
        self._start = 0
        self._status = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self._end < 0:
            sep = self.buf.find(b"\r\n\r\n")
            if sep < 0:
                return
            head = bytes(self.buf[:sep]).lower() + b"\r\n"
            at = head.find(b"\r\ncontent-length:") + 17
            self._status = int(head[9:12])
            self._start = sep + 4
            self._end = self._start + int(head[at : head.find(b"\r\n", at)])
        if len(self.buf) >= self._end:
            body = bytes(self.buf[self._start : self._end])
            del self.buf[: self._end]
            self._end = -1
            waiter, self.waiter = self.waiter, None
            if waiter is not None:
                waiter.set_result((self._status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("closed"))

    def request(self, data: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter


async def drive(n: int, one: Callable[[], Awaitable[int]], concurrency: int = CONCURRENCY) -> None:
    """``n`` calls of ``one`` (each a 206) by ``concurrency`` workers."""
    left = n

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            if await one() != 206:
                raise RuntimeError("not a 206")

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def bare_gets(host_port: str, req: bytes, n: int, concurrency: int = CONCURRENCY) -> None:
    """The reference: ``n`` sends of the prepared request ``req`` over ``concurrency`` kept-alive
    connections of the minimal protocol client (:class:`Conn`)."""
    host, port = host_port.split(":")
    loop = asyncio.get_running_loop()
    pool: asyncio.Queue[Conn] = asyncio.Queue()
    for _ in range(concurrency):
        _, proto = await loop.create_connection(Conn, host, int(port))
        pool.put_nowait(proto)

    async def one() -> int:
        conn = await pool.get()
        status, _ = await conn.request(req)
        pool.put_nowait(conn)
        return status

    await drive(n, one, concurrency)
    while not pool.empty():
        c = pool.get_nowait()
        assert c.transport is not None
        c.transport.close()


async def with_ingestd_session(url: str, n: int) -> None:
    async with http_session(CONCURRENCY) as http:
        headers = {"Range": f"bytes=0-{RANGE - 1}", "If-Match": "*"}

        async def one() -> int:
            async with http.get(url, headers=headers, allow_redirects=False) as r:
                await r.read()
                return r.status

        await drive(n, one)


async def with_tuned(url: str, n: int) -> None:
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=CONCURRENCY, ttl_dns_cache=300),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=None),
        skip_auto_headers=("Accept-Encoding", "User-Agent"),
    ) as http:
        headers = {"Range": f"bytes=0-{RANGE - 1}"}

        async def one() -> int:
            async with http.get(url, headers=headers) as r:
                await r.read()
                return r.status

        await drive(n, one)


async def with_minimal(url: str, n: int) -> None:
    host_port = url.split("/")[2]
    path = "/" + url.split("/", 3)[3]
    req = f"GET {path} HTTP/1.1\r\nHost: {host_port}\r\nRange: bytes=0-{RANGE - 1}\r\n\r\n".encode()
    await bare_gets(host_port, req, n)


async def with_range_client(url: str, n: int) -> None:
    async with range_client(CONCURRENCY) as client:
        headers = {"Range": f"bytes=0-{RANGE - 1}", "If-Match": "*"}

        async def one() -> int:
            return (await client.get(url, headers, cap=RANGE)).status

        await drive(n, one)


def _measure(fn: Callable[[str, int], Awaitable[None]], url: str, n: int) -> tuple[float, float]:
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    uvloop.run(fn(url, n))  # type: ignore[arg-type]
    r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return n / (t1 - t0), cpu / n * 1e6


def run(quick: bool) -> list[Figure]:
    n, rounds = (4000, 2) if quick else (20000, 3)
    clients = {
        "ingestd": with_ingestd_session,
        "tuned": with_tuned,
        "minimal": with_minimal,
        "range_client": with_range_client,
    }
    got: dict[str, list[tuple[float, float]]] = {k: [] for k in clients}
    with tempfile.TemporaryDirectory(prefix="ingestd-range-") as tmp:
        (Path(tmp) / "object.bin").write_bytes(bytes(range(256)) * 400)
        with nginx(Path(tmp)) as base:
            url = f"{base}/object.bin"
            for _ in range(rounds):
                for name, fn in clients.items():
                    got[name].append(_measure(fn, url, n))

    def med(name: str, i: int) -> float:
        return statistics.median(r[i] for r in got[name])

    figures = []
    for name in ("tuned", "minimal", "range_client"):
        figures += [
            Figure(
                name=f"range_{name}_requests_per_s",
                value=med(name, 0),
                unit="requests/s",
                baseline=med("ingestd", 0),
                baseline_name="aiohttp as ingestd uses it",
                note=f"{n} x 64 KiB ranges at c={CONCURRENCY}, {rounds} alternating rounds",
            ),
            Figure(
                name=f"range_{name}_cpu_us_per_request",
                value=med(name, 1),
                unit="µs/request",
                baseline=med("ingestd", 1),
                baseline_name="aiohttp as ingestd uses it",
                higher_is_better=False,
            ),
        ]
    return figures
