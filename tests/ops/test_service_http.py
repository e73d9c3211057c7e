"""The operations endpoint on a real aiohttp server on 127.0.0.1, scraped like Prometheus does."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from daemon.ops.health import LoopLag, Operations, Readiness, serve, watch
from daemon.ops.metrics import Metrics
from daemon.ops.status_client import parse_listen, read_status
from daemon.ops.watchdog import ProgressMonitor


class Endpoint:
    def __init__(self, base: str, ops: Operations, session: aiohttp.ClientSession) -> None:
        self.base, self.ops, self.session = base, ops, session

    async def get(self, path: str) -> tuple[int, bytes]:
        async with self.session.get(self.base + path) as r:
            return r.status, await r.read()

    async def json(self, path: str) -> tuple[int, Any]:
        async with self.session.get(self.base + path) as r:
            return r.status, await r.json()

    async def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample by (name, sorted labels), parsed with Prometheus' own text parser."""
        status, body = await self.get("/metrics")
        assert status == 200
        out = {}
        for family in text_string_to_metric_families(body.decode()):
            for s in family.samples:
                out[s.name, tuple(sorted(s.labels.items()))] = s.value
        return out


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    monitor = ProgressMonitor(stall_after=30)
    ops = Operations(metrics=Metrics("1.2.3"), readiness=Readiness(), monitor=monitor)
    async with AsyncExitStack() as stack:
        host, port = await serve(stack, "127.0.0.1:0", ops)
        assert host == "127.0.0.1" and port > 0
        session = await stack.enter_async_context(aiohttp.ClientSession())
        yield Endpoint(f"http://{host}:{port}", ops, session)


class TestMetrics:
    async def test_counters_move_with_facade_calls(self, endpoint: Endpoint) -> None:
        """Objects, probe cost, retries and dead letters appear in /metrics as the pipeline reports them."""
        m = endpoint.ops.metrics
        before = await endpoint.scrape()
        assert before["ingestd_objects_total", (("outcome", "ok"), ("stage", "probe"))] == 0
        for _ in range(3):
            m.object_done("probe", "ok")
        m.object_done("deliver", "duplicate", 5)
        m.probe_cost(bytes_read=65536, requests=2)
        m.probe_cost(bytes_read=1000, requests=1)
        m.retry("labelbox")
        m.ratelimit_waited("labelbox", 1.5)
        m.dead_letter("build", "labelbox.url.https")
        after = await endpoint.scrape()
        assert after["ingestd_objects_total", (("outcome", "ok"), ("stage", "probe"))] == 3
        assert after["ingestd_objects_total", (("outcome", "duplicate"), ("stage", "deliver"))] == 5
        assert after["ingestd_probe_bytes_read_total", ()] == 66536
        assert after["ingestd_probe_requests_total", ()] == 3
        assert after["ingestd_delivery_retries_total", (("sink", "labelbox"),)] == 1
        assert after["ingestd_ratelimit_wait_seconds_total", (("sink", "labelbox"),)] == 1.5
        assert after["ingestd_dead_letters_total", (("rule", "labelbox.url.https"), ("stage", "build"))] == 1
        assert after["ingestd_build_info", (("version", "1.2.3"),)] == 1

    async def test_histograms_and_gauges(self, endpoint: Endpoint) -> None:
        """Batch sizes and latency are histograms in base units; gauges show the current value."""
        m = endpoint.ops.metrics
        m.batch_sent(items=100, nbytes=50_000)
        m.batch_sent(items=1000, nbytes=900_000)
        m.delivered(0.3)
        m.queue_depth("probe", 17)
        m.set_in_flight(42)
        m.concurrency_limit("labelbox", 6)
        m.circuit("labelbox", True)
        m.set_ledger_lag(2.5)
        m.intake_paused = True
        s = await endpoint.scrape()
        assert s["ingestd_batch_items_count", ()] == 2
        assert s["ingestd_batch_items_sum", ()] == 1100
        assert s["ingestd_batch_items_bucket", (("le", "100.0"),)] == 1
        assert s["ingestd_batch_bytes_sum", ()] == 950_000
        assert s["ingestd_delivery_latency_seconds_bucket", (("le", "0.25"),)] == 0
        assert s["ingestd_delivery_latency_seconds_bucket", (("le", "0.5"),)] == 1
        assert s["ingestd_queue_depth", (("queue", "probe"),)] == 17
        assert s["ingestd_in_flight_messages", ()] == 42
        assert s["ingestd_concurrency_limit", (("sink", "labelbox"),)] == 6
        assert s["ingestd_circuit_open", (("sink", "labelbox"),)] == 1
        assert s["ingestd_ledger_lag_seconds", ()] == 2.5
        assert s["ingestd_intake_paused", ()] == 1
        assert s["ingestd_last_success_timestamp_seconds", ()] > 1.6e9

    async def test_gauges_are_read_at_scrape_time(self, endpoint: Endpoint) -> None:
        """The owner's refresh runs on every scrape and /status, not only on a watchdog tick."""
        m = endpoint.ops.metrics
        depth = [0]

        def refresh() -> None:
            depth[0] += 1
            m.queue_depth("probe", depth[0])

        m.on_read = refresh
        assert (await endpoint.scrape())["ingestd_queue_depth", (("queue", "probe"),)] == 1
        assert (await endpoint.scrape())["ingestd_queue_depth", (("queue", "probe"),)] == 2
        assert (await endpoint.json("/status"))[1]["queues"] == {"probe": 3}

    async def test_names_and_labels_follow_the_conventions(self, endpoint: Endpoint) -> None:
        """Every metric has the ingestd_ prefix and only low-cardinality label names."""
        endpoint.ops.metrics.object_done("commit", "ok")
        endpoint.ops.metrics.queue_depth("deliver", 1)
        names = set()
        labels: set[str] = set()
        for name, lbls in await endpoint.scrape():
            names.add(name)
            labels.update(k for k, _ in lbls)
        assert all(n.startswith("ingestd_") for n in names), names
        assert labels <= {"stage", "outcome", "sink", "queue", "rule", "version", "le"}


class TestReadiness:
    async def test_readyz_flips_with_its_inputs(self, endpoint: Endpoint) -> None:
        """503 with the reasons until source, sink and ledger are fine; 503 again on each problem."""
        r = endpoint.ops.readiness
        status, body = await endpoint.json("/readyz")
        assert status == 503
        assert body["reasons"] == [
            "source unreachable: not checked yet",
            "sink unreachable: not checked yet",
            "ledger not open",
        ]
        r.source(None)
        r.sink(None)
        r.ledger_open = True
        assert await endpoint.json("/readyz") == (200, {"ready": True, "reasons": []})
        r.sink("ConnectionRefusedError: 127.0.0.1:9")
        status, body = await endpoint.json("/readyz")
        assert (status, body["reasons"]) == (503, ["sink unreachable: ConnectionRefusedError: 127.0.0.1:9"])
        r.sink(None)
        r.circuit("labelbox", True)
        assert (await endpoint.json("/readyz"))[1]["reasons"] == ["circuit open: labelbox"]
        r.circuit("labelbox", False)
        assert (await endpoint.json("/readyz"))[0] == 200
        r.credentials("HTTP 401 from x/ingest: Invalid API key")
        r.sink("CredentialsError: HTTP 401")  # the check says so too: one reason, the precise one
        status, body = await endpoint.json("/readyz")
        assert (status, body["reasons"]) == (
            503,
            ["sink refused our credentials: HTTP 401 from x/ingest: Invalid API key"],
        )
        assert (await endpoint.json("/status"))[1]["not_ready_because"] == body["reasons"]
        r.credentials(None)
        r.sink(None)
        r.draining = True
        assert (await endpoint.json("/readyz"))[1]["reasons"] == ["draining"]

    async def test_readyz_follows_a_real_sink_going_away_and_back(self, endpoint: Endpoint) -> None:
        """watch() polls a sink's check(); stopping its server turns /readyz 503, restarting it 200."""

        async def ok(_: web.Request) -> web.Response:
            return web.Response(text="ok")

        async def start_sink(port: int) -> web.AppRunner:
            app = web.Application()
            app.router.add_get("/", ok)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            return runner

        runner = await start_sink(0)
        port = runner.addresses[0][1]

        async def sink_check() -> None:
            async with endpoint.session.get(f"http://127.0.0.1:{port}/") as resp:
                resp.raise_for_status()

        r = endpoint.ops.readiness
        r.source(None)
        r.ledger_open = True
        watcher = asyncio.create_task(watch(sink_check, r.sink, every=0.02, check_timeout=2))

        async def readyz_becomes(code: int) -> dict[str, Any]:
            async with asyncio.timeout(10):
                while True:
                    status, body = await endpoint.json("/readyz")
                    if status == code:
                        return dict(body)
                    await asyncio.sleep(0.02)

        try:
            await readyz_becomes(200)
            await runner.cleanup()  # the sink process goes away: listener and connections
            body = await readyz_becomes(503)
            assert body["reasons"][0].startswith("sink unreachable: ClientConnectorError")
            runner = await start_sink(port)
            await readyz_becomes(200)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await runner.cleanup()

    async def test_watch_reports_a_hung_check(self) -> None:
        """A check that never answers reports a timeout instead of hanging readiness."""
        reports: list[str | None] = []
        done = asyncio.Event()

        async def hangs() -> None:
            await asyncio.Event().wait()

        def report(error: str | None) -> None:
            reports.append(error)
            done.set()

        task = asyncio.create_task(watch(hangs, report, every=10, check_timeout=0.05))
        async with asyncio.timeout(5):
            await done.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert reports == ["no answer within 0.05s"]


class TestLivenessAndStatus:
    async def test_livez_answers_with_the_loop_lag(self, endpoint: Endpoint) -> None:
        """/livez is 200 while the loop-lag probe ticks (the server started it)."""
        lag = endpoint.ops.loop_lag
        lag.every = 0.01
        async with asyncio.timeout(10):
            while lag.last_tick is None:
                await asyncio.sleep(0.01)
        status, body = await endpoint.json("/livez")
        assert status == 200 and body["live"] is True

    async def test_livez_fails_after_a_long_block(self, endpoint: Endpoint) -> None:
        """A loop that was blocked longer than max_lag is reported not live, with the lag."""
        endpoint.ops.loop_lag.observe(expected=100.0, actual=107.5)
        endpoint.ops.clock = lambda: 107.6
        status, body = await endpoint.json("/livez")
        assert status == 503
        assert body["reason"] == "event loop lagged 7.500s (max 5.0s)"

    def test_lag_probe_that_stopped_ticking_is_stale(self) -> None:
        """A probe whose last tick is older than its period plus max_lag means a wedged loop."""
        lag = LoopLag(every=0.5)
        assert lag.stale(0.0, 5.0) is None
        lag.observe(expected=10.0, actual=10.001)
        assert lag.stale(11.0, 5.0) is None
        assert lag.stale(20.0, 5.0) == "lag probe last ticked 9.999s ago"

    async def test_status_has_live_figures(self, endpoint: Endpoint) -> None:
        """/status is JSON with counts by stage and outcome, in-flight, queues, uptime, readiness."""
        m = endpoint.ops.metrics
        m.object_done("deliver", "ok", 9)
        m.set_in_flight(3)
        m.queue_depth("deliver", 2)
        assert endpoint.ops.monitor is not None
        endpoint.ops.monitor.stage_progress("deliver", 9)
        status, body = await endpoint.json("/status")
        assert status == 200
        assert body["objects"] == {"deliver": {"ok": 9}}
        assert body["in_flight"] == 3
        assert body["queues"] == {"deliver": 2}
        assert body["stages"] == {"deliver": {"done": 9, "queued": 0}}
        assert body["version"] == "1.2.3"
        assert body["uptime_seconds"] >= 0
        assert body["ready"] is False and "ledger not open" in body["not_ready_because"]


class TestListen:
    @pytest.mark.parametrize(
        ("listen", "expected"),
        [
            ("127.0.0.1:9464", ("127.0.0.1", 9464)),
            ("[::1]:80", ("::1", 80)),
            ("localhost:0", ("localhost", 0)),
        ],
    )
    def test_host_port(self, listen: str, expected: tuple[str, int]) -> None:
        """IPv4, bracketed IPv6 and names are accepted."""
        assert parse_listen(listen) == expected

    @pytest.mark.parametrize("listen", ["9464", "::1:80", "host:99999", "host:"])
    def test_bad_values_name_the_key(self, listen: str) -> None:
        """A malformed listen address names the config key and the value."""
        with pytest.raises(ValueError, match=r"http\.listen"):
            parse_listen(listen)


class TestReadStatus:
    async def test_reads_the_running_daemons_status(self, endpoint: Endpoint) -> None:
        """ingestd status gets the live figures from the endpoint (a sync call, off the loop here)."""
        endpoint.ops.metrics.object_done("commit", "ok", 11)
        listen = endpoint.base.removeprefix("http://")
        body = await asyncio.to_thread(read_status, listen)
        assert body is not None
        assert body["objects"] == {"commit": {"ok": 11}}

    async def test_nobody_listening_is_none(self) -> None:
        """With no daemon on the address the caller falls back to the ledger's figures."""
        async with AsyncExitStack() as stack:
            ops = Operations(metrics=Metrics("x"), readiness=Readiness())
            _, port = await serve(stack, "127.0.0.1:0", ops)
        assert await asyncio.to_thread(read_status, f"127.0.0.1:{port}", timeout=2.0) is None
