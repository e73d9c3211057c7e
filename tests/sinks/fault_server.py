"""A fault-injecting NDJSON ingest endpoint on 127.0.0.1, counting every request.

The server runs its own event loop in a thread, so its arrival stamps are not delayed by the
client's callbacks queued on the test's loop (that delay would blur the rate measurement).

Each request is logged as a :class:`Hit` (arrival time, Idempotency-Key, items, bytes, answer).
Items are stored by key at most once; a repeat is answered ``duplicate`` (the server's own
dedupe, like a platform's global keys), so tests can assert exactly-once storage.

Faults, taken one per request from :attr:`FaultServer.faults` (a script) or from
:attr:`FaultServer.plan` (a function of the request number and arrival time):

``400`` | ``401`` | ``403`` | ``409`` | ``422`` | ``429`` | ``500`` | ``502`` | ``503`` (a JSON error; any of
them as ``<status>:<Retry-After value>`` adds the header) | ``html502`` (an HTML error page) |
``html200`` (a captive-portal page with 200) | ``hang`` (no answer until the test ends) |
``reset`` (connection aborted, nothing stored) | ``lost`` (items stored, then the connection is
aborted: the answer is lost) | ``badjson`` (200 claiming JSON, not JSON).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import msgspec
from aiohttp import web


@dataclass(frozen=True)
class Hit:
    t: float  # time.monotonic() at arrival
    idempotency_key: str
    items: int
    nbytes: int
    answer: str  # HTTP status or the fault name
    keys: tuple[str, ...] = ()  # the items' keys, when the body could be read as NDJSON items


class _Line(msgspec.Struct):
    key: str


_HTML_502 = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
_HTML_413 = (
    b"<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n"
    b"<center><h1>413 Request Entity Too Large</h1></center>\r\n</body>\r\n</html>\r\n"
)


@dataclass
class FaultServer:
    faults: deque[str] = field(default_factory=deque)
    plan: Callable[[int, float], str | None] | None = None
    max_body: int | None = None  # 413 (an nginx-style HTML page) above this many bytes
    bad_keys: dict[str, str] = field(default_factory=dict)  # item key -> server's reason
    bad_mode: str = "items"  # "items": per-item rejected results; "422": whole batch refused
    key_field: str = "key"  # the field of each NDJSON line that names the item (Labelbox rows: global_key)
    hits: list[Hit] = field(default_factory=list)
    stored: dict[str, bytes] = field(default_factory=dict)
    deliveries: Counter[str] = field(default_factory=Counter)  # key -> times it arrived and was new
    lost_keys: set[str] = field(default_factory=set)  # stored by a request whose answer was lost
    delay: float = 0.0  # seconds each answer takes (to observe concurrency)
    in_flight: int = 0
    max_in_flight: int = 0
    last_headers: dict[str, str] = field(default_factory=dict)
    last_body: bytes = b""
    heads: int = 0  # readiness probes (HEAD) received
    max_lag: float = 0.0  # worst lateness of the server loop's timers: how late a stamp can be
    url: str = ""

    def __post_init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._release: asyncio.Event | None = None

    async def start(self) -> str:
        started: concurrent.futures.Future[str] = concurrent.futures.Future()
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(started),), daemon=True)
        self._thread.start()
        self.url = await asyncio.wrap_future(started)
        return self.url

    async def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10)

    async def _serve(self, started: concurrent.futures.Future[str]) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping, self._release = asyncio.Event(), asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/ingest", self._ingest)
        app.router.add_route("HEAD", "/ingest", self._head)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        try:
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
        except BaseException as e:
            started.set_exception(e)
            raise
        started.set_result(f"http://127.0.0.1:{runner.addresses[0][1]}/ingest")
        lag = asyncio.create_task(self._watch_lag())
        await self._stopping.wait()
        lag.cancel()
        self._release.set()
        await runner.cleanup()

    async def _watch_lag(self) -> None:
        async for late in loop_lag():
            self.max_lag = max(self.max_lag, late)

    def _next_fault(self) -> str | None:
        if self.faults:
            return self.faults.popleft()
        if self.plan is not None:
            return self.plan(len(self.hits), time.monotonic())
        return None

    async def _head(self, request: web.Request) -> web.Response:
        self.heads += 1
        return web.Response(status=204)

    async def _ingest(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        body = await request.read()
        self.last_headers, self.last_body = dict(request.headers), body
        if self.delay:
            await asyncio.sleep(self.delay)
        fault = self._next_fault()
        lines = [ln for ln in body.split(b"\n") if ln]
        ikey = request.headers.get("Idempotency-Key", "")
        try:
            keys = self._keys(lines)
        except (msgspec.DecodeError, msgspec.ValidationError, KeyError, TypeError):
            keys = []

        def hit(answer: str) -> None:
            self.hits.append(Hit(arrived, ikey, len(lines), len(body), answer, tuple(keys)))

        if self.max_body is not None and len(body) > self.max_body:
            hit("413")
            return web.Response(status=413, body=_HTML_413, content_type="text/html")
        if fault is not None:
            hit(fault)
            return await self._fault(request, fault, lines)
        keys = self._keys(lines)
        if self.bad_mode == "422":
            bad = [k for k in keys if k in self.bad_keys]
            if bad:
                hit("422")
                return web.json_response({"message": f"item {bad[0]}: {self.bad_keys[bad[0]]}"}, status=422)
        hit("200")
        return web.json_response({"results": self._store(keys, lines)})

    def _keys(self, lines: list[bytes]) -> list[str]:
        if self.key_field == "key":
            return [msgspec.json.decode(ln, type=_Line).key for ln in lines]
        return [str(msgspec.json.decode(ln)[self.key_field]) for ln in lines]

    def _store(self, keys: list[str], lines: list[bytes]) -> list[dict[str, str]]:
        results = []
        for k, ln in zip(keys, lines, strict=True):
            if k in self.bad_keys:
                results.append({"key": k, "status": "rejected", "reason": self.bad_keys[k]})
            elif k in self.stored:
                results.append({"key": k, "status": "duplicate"})
            else:
                self.stored[k] = ln
                self.deliveries[k] += 1
                results.append({"key": k, "status": "accepted"})
        return results

    async def _fault(self, request: web.Request, fault: str, lines: list[bytes]) -> web.Response:
        name, _, arg = fault.partition(":")
        if name in ("400", "401", "403", "409", "422", "429", "500", "502", "503"):
            headers = {"Retry-After": arg} if arg else {}
            return web.json_response(
                {"error": {"message": f"injected {name}"}}, status=int(name), headers=headers
            )
        if name == "html502":
            return web.Response(status=502, body=_HTML_502, content_type="text/html")
        if name == "html200":
            return web.Response(
                status=200, body=b"<html><body>Please log in</body></html>", content_type="text/html"
            )
        if name == "badjson":
            return web.Response(status=200, body=b'{"results": [', content_type="application/json")
        if name == "hang":
            assert self._release is not None
            await self._release.wait()
            return web.Response(status=599)
        if name == "lost":
            for r in self._store(self._keys(lines), lines):
                if r["status"] == "accepted":
                    self.lost_keys.add(r["key"])
        assert request.transport is not None
        request.transport.abort()
        return web.Response(status=599)  # never written: the connection is gone


@asynccontextmanager
async def running_server() -> AsyncIterator[FaultServer]:
    """A started :class:`FaultServer`, stopped on exit."""
    srv = FaultServer()
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


def max_in_window(times: list[float], window: float) -> int:
    """The largest number of arrivals within any half-open interval of ``window`` seconds."""
    ts = sorted(times)
    best = lo = 0
    for hi, t in enumerate(ts):
        while t - ts[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def loop_lag(period: float = 0.002) -> AsyncIterator[float]:
    """How late each of a stream of short timers fires on the running loop (seconds)."""
    while True:
        due = time.monotonic() + period
        await asyncio.sleep(period)
        yield max(0.0, time.monotonic() - due)
