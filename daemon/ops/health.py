"""The operations endpoint (``[http] listen``): /livez, /readyz, /metrics, /status.

* ``/livez``: the process and its event loop respond. 200 while the loop-lag probe keeps
  ticking on time; 503 (with the lag) when the loop was blocked longer than ``max_lag``.
* ``/readyz``: 200 only when the source and the sink are reachable, the ledger is open, no
  delivery circuit is open and the daemon is not draining; otherwise 503 with the reasons as
  JSON. The pipeline keeps a :class:`Readiness` up to date; this module only reads it.
* ``/metrics``: the Prometheus text format of the daemon's own registry.
* ``/status``: live figures as JSON (``ingestd status`` reads it while the daemon runs).

The server is one long-lived :class:`aiohttp.web.AppRunner`, started with :func:`serve` into
the service's :class:`contextlib.AsyncExitStack`, which cleans it up at shutdown.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import web

from daemon.ops.metrics import CONTENT_TYPE, Metrics
from daemon.ops.status_client import parse_listen
from daemon.ops.watchdog import ProgressMonitor


class Readiness:
    """What ``/readyz`` (and ``READY=1``) depend on. The pipeline sets the fields."""

    def __init__(self) -> None:
        self.source_error: str | None = "not checked yet"
        self.sink_error: str | None = "not checked yet"
        self.ledger_open = False
        self.open_circuits: set[str] = set()
        self.draining = False
        self.changed = asyncio.Event()  # set whenever a check reports (for READY=1)

    def source(self, error: str | None) -> None:
        """The source is reachable (``None``) or why it is not."""
        self.source_error = error
        self.changed.set()

    def sink(self, error: str | None) -> None:
        """The sink is reachable (``None``) or why it is not."""
        self.sink_error = error
        self.changed.set()

    def circuit(self, sink: str, is_open: bool) -> None:
        if is_open:
            self.open_circuits.add(sink)
        else:
            self.open_circuits.discard(sink)

    def problems(self) -> list[str]:
        """Why the daemon is not ready; empty when it is."""
        out = []
        if self.source_error is not None:
            out.append(f"source unreachable: {self.source_error}")
        if self.sink_error is not None:
            out.append(f"sink unreachable: {self.sink_error}")
        if not self.ledger_open:
            out.append("ledger not open")
        out.extend(f"circuit open: {s}" for s in sorted(self.open_circuits))
        if self.draining:
            out.append("draining")
        return out

    @property
    def ready(self) -> bool:
        return not self.problems()


async def watch(
    check: Callable[[], Awaitable[None]],
    report: Callable[[str | None], None],
    *,
    every: float = 10.0,
    check_timeout: float = 5.0,
) -> None:
    """Run ``check`` every ``every`` seconds and ``report`` reachability; until cancelled.

    For readiness: ``watch(sink.check, readiness.sink)``. A check that raises or takes longer
    than ``check_timeout`` reports its error; one that returns reports ``None`` (reachable).
    """
    while True:
        try:
            async with asyncio.timeout(check_timeout):
                await check()
        except TimeoutError:
            report(f"no answer within {check_timeout}s")
        except Exception as e:  # any failure of a reachability check means "not reachable"
            report(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
        else:
            report(None)
        await asyncio.sleep(every)


class LoopLag:
    """Measures how late the event loop wakes a sleeper; its last tick proves liveness."""

    def __init__(self, *, every: float = 0.5, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self.lag = 0.0
        self.last_tick: float | None = None
        self._clock = clock

    def observe(self, expected: float, actual: float) -> None:
        self.lag = max(0.0, actual - expected)
        self.last_tick = actual

    def stale(self, now: float, max_lag: float) -> str | None:
        """Why the loop is not live at ``now``, or ``None`` if it is."""
        if self.last_tick is None:
            return None  # not measured yet: answering the request is the evidence
        if self.lag > max_lag:
            return f"event loop lagged {self.lag:.3f}s (max {max_lag}s)"
        if now - self.last_tick > self.every + max_lag:
            return f"lag probe last ticked {now - self.last_tick:.3f}s ago"
        return None

    async def run(self, metrics: Metrics | None = None) -> None:
        while True:
            expected = self._clock() + self.every
            await asyncio.sleep(self.every)
            self.observe(expected, self._clock())
            if metrics is not None:
                metrics.set_loop_lag(self.lag)


@dataclass(kw_only=True)
class Operations:
    """What the endpoint reports on."""

    metrics: Metrics
    readiness: Readiness
    monitor: ProgressMonitor | None = None
    loop_lag: LoopLag = field(default_factory=LoopLag)
    max_lag: float = 5.0
    started: float = field(default_factory=time.monotonic)
    clock: Callable[[], float] = time.monotonic


_json = msgspec.json.Encoder()


def _respond(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(status=status, body=_json.encode(body), content_type="application/json")


def make_app(ops: Operations) -> web.Application:
    async def livez(_: web.Request) -> web.Response:
        problem = ops.loop_lag.stale(ops.clock(), ops.max_lag)
        if problem:
            return _respond(503, {"live": False, "reason": problem})
        return _respond(200, {"live": True, "loop_lag_seconds": ops.loop_lag.lag})

    async def readyz(_: web.Request) -> web.Response:
        problems = ops.readiness.problems()
        return _respond(503 if problems else 200, {"ready": not problems, "reasons": problems})

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=ops.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def status(_: web.Request) -> web.Response:
        body = ops.metrics.snapshot()
        body["version"] = ops.metrics.version
        body["uptime_seconds"] = round(ops.clock() - ops.started, 3)
        body["ready"] = ops.readiness.ready
        body["not_ready_because"] = ops.readiness.problems()
        if ops.monitor is not None:
            health = ops.monitor.check(ops.clock())
            body["stages"] = {
                name: {"done": done, "queued": ops.monitor.queued().get(name, 0)}
                for name, done in ops.monitor.counts().items()
            }
            body["stalled"] = health.wedged
        return _respond(200, body)

    app = web.Application()
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/status", status)
    return app


async def serve(stack: AsyncExitStack, listen: str, ops: Operations) -> tuple[str, int]:
    """Start the endpoint and the loop-lag probe; the stack stops both. Returns the bound address."""
    host, port = parse_listen(listen)
    runner = web.AppRunner(make_app(ops), access_log=None, handle_signals=False)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    site = web.TCPSite(runner, host, port)
    await site.start()
    lag_task = asyncio.create_task(ops.loop_lag.run(ops.metrics), name="loop-lag")

    async def stop_lag() -> None:
        lag_task.cancel()
        try:
            await lag_task
        except asyncio.CancelledError:
            pass

    stack.push_async_callback(stop_lag)
    sockname = runner.addresses[0]
    return str(sockname[0]), int(sockname[1])
