"""The http sink against the fault server: request format and the mapping of every answer."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from email.utils import format_datetime

import msgspec
import pytest
import structlog

from daemon.core.config import SinkConfig
from daemon.sinks.base import Batch, BatchItem, PermanentError, TransientError
from daemon.sinks.delivery import DeliveryLimits
from daemon.sinks.endpoint import Endpoint
from daemon.sinks.http import HttpSink, open_http_deliverer, open_http_sink, sanitize
from workers.classify import Verdict

from .fault_server import FaultServer

ENV = {"INGESTD_SECRET_INGEST_TOKEN": "s3cr3t-token"}


def item(key: str, pad: int = 0) -> BatchItem:
    return BatchItem(key, "IMAGE", msgspec.json.encode({"key": key, "pad": "x" * pad}))


def batch(n: int, prefix: str = "k") -> Batch:
    return Batch.of([item(f"{prefix}{i}") for i in range(n)])


def sink_config(url: str, **kw: object) -> SinkConfig:
    return msgspec.structs.replace(
        SinkConfig(type="http", url=url, request_timeout=0.5),
        headers={"X-Tenant": "t1"},
        secret_headers={"Authorization": "ingest_token"},
        **kw,
    )


@pytest.fixture
async def sink(server: FaultServer) -> AsyncIterator[HttpSink]:
    async with AsyncExitStack() as stack:
        endpoint = Endpoint("http", requests_per_second=1000.0, burst=100.0)
        yield await open_http_sink(sink_config(server.url), endpoint, stack, environ=ENV)


async def test_posts_ndjson_with_idempotency_key_and_headers(server: FaultServer, sink: HttpSink) -> None:
    b = batch(3)
    results = await sink.deliver(b)
    assert [r.status for r in results] == ["accepted"] * 3
    h = server.last_headers
    assert h["Content-Type"] == "application/x-ndjson"
    assert h["Idempotency-Key"] == b.id
    assert h["X-Tenant"] == "t1"
    assert h["Authorization"] == "s3cr3t-token"
    assert server.last_body == b"".join(i.body + b"\n" for i in b.items)


async def test_same_keys_same_idempotency_key(server: FaultServer, sink: HttpSink) -> None:
    await sink.deliver(batch(2))
    results = await sink.deliver(batch(2))
    assert server.hits[0].idempotency_key == server.hits[1].idempotency_key
    assert [r.status for r in results] == ["duplicate", "duplicate"]


async def test_per_item_results_are_honoured(server: FaultServer, sink: HttpSink) -> None:
    server.bad_keys = {"k1": "field <b>width</b>: must be > 0, got -3"}
    results = {r.key: r for r in await sink.deliver(batch(3))}
    assert results["k0"].status == "accepted"
    assert results["k1"].status == "rejected"
    assert results["k1"].reason == "field width : must be > 0, got -3"
    assert "k1" not in server.stored


async def test_409_means_every_item_duplicate(server: FaultServer, sink: HttpSink) -> None:
    server.faults.append("409")
    assert {r.status for r in await sink.deliver(batch(4))} == {"duplicate"}


async def test_413_html_page_is_permanent_with_the_server_text(server: FaultServer, sink: HttpSink) -> None:
    server.max_body = 100
    with pytest.raises(
        PermanentError, match=r"HTTP 413 from 127.0.0.1/ingest: 413 Request Entity Too Large"
    ) as e:
        await sink.deliver(batch(10))
    assert e.value.status == 413
    assert "<" not in str(e.value)


async def test_422_quotes_the_json_message(server: FaultServer, sink: HttpSink) -> None:
    server.bad_mode, server.bad_keys = "422", {"k2": "url: must be https"}
    with pytest.raises(PermanentError, match=r"HTTP 422 .*: item k2: url: must be https") as e:
        await sink.deliver(batch(3))
    assert e.value.status == 422


@pytest.mark.parametrize(
    ("fault", "status", "text"),
    [
        ("500", 500, "injected 500"),
        ("502", 502, "injected 502"),
        ("503", 503, "injected 503"),
        ("429", 429, "injected 429"),
        ("html502", 502, "502 Bad Gateway"),
        ("html200", 200, "Please log in"),
        ("badjson", None, "not valid JSON"),
        ("reset", None, "ServerDisconnectedError"),
        ("hang", None, "no answer within 0.5 s"),
    ],
)
async def test_transient_answers(
    server: FaultServer, sink: HttpSink, fault: str, status: int | None, text: str
) -> None:
    server.faults.append(fault)
    with pytest.raises(TransientError, match=text) as e:
        await sink.deliver(batch(2))
    assert e.value.status == status
    assert e.value.retry_after is None


async def test_retry_after_seconds_and_date(server: FaultServer, sink: HttpSink) -> None:
    server.faults.append("429:7")
    with pytest.raises(TransientError) as e:
        await sink.deliver(batch(1))
    assert e.value.retry_after == 7.0
    when = format_datetime(datetime.fromtimestamp(time.time() + 30, UTC), usegmt=True)
    server.faults.append(f"503:{when}")
    with pytest.raises(TransientError) as e:
        await sink.deliver(batch(1))
    assert e.value.retry_after is not None and 28.0 <= e.value.retry_after <= 30.0
    server.faults.append("503:86400")
    with pytest.raises(TransientError) as e:
        await sink.deliver(batch(1))
    assert e.value.retry_after == 300.0  # sink.retry_after_cap


async def test_a_body_over_max_bytes_is_never_sent(server: FaultServer) -> None:
    async with AsyncExitStack() as stack:
        endpoint = Endpoint("http", requests_per_second=1000.0)
        cfg = sink_config(server.url, max_bytes=2048)
        sink = await open_http_sink(cfg, endpoint, stack, environ=ENV)
        with pytest.raises(PermanentError, match=r"body of 3\d{3} bytes exceeds sink.max_bytes=2048") as e:
            await sink.deliver(Batch.of([item("a", 1500), item("b", 1500)]))
        assert e.value.status == 413
        assert server.hits == []


async def test_overrides_change_the_meaning_of_a_status(server: FaultServer) -> None:
    async with AsyncExitStack() as stack:
        endpoint = Endpoint("http", requests_per_second=1000.0)
        overrides = {503: Verdict.PERMANENT}
        sink = await open_http_sink(
            sink_config(server.url), endpoint, stack, environ=ENV, overrides=overrides
        )
        server.faults.append("503")
        with pytest.raises(PermanentError, match="injected 503"):
            await sink.deliver(batch(1))


async def test_check_reachable_and_unreachable(server: FaultServer, sink: HttpSink) -> None:
    await sink.check()
    assert server.heads == 1 and server.hits == []  # a HEAD, not an ingest request
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connection refused
        async with AsyncExitStack() as stack:
            endpoint = Endpoint("http", requests_per_second=1000.0)
            cfg = sink_config(f"http://127.0.0.1:{port}/ingest")
            dead = await open_http_sink(cfg, endpoint, stack, environ=ENV)
            with pytest.raises(TransientError, match=r"127.0.0.1/ingest unreachable: ClientConnectorError"):
                await dead.check()


async def test_missing_secret_names_the_secret(server: FaultServer) -> None:
    async with AsyncExitStack() as stack:
        endpoint = Endpoint("http", requests_per_second=1000.0)
        with pytest.raises(Exception, match="secret 'ingest_token'") as e:
            await open_http_sink(sink_config(server.url), endpoint, stack, environ={})
        assert "s3cr3t" not in str(e.value)


def test_sanitize_strips_markup_controls_and_truncates() -> None:
    assert sanitize("<html><script>x()</script><b>bad</b>\x00\r\n row</html>") == "bad row"
    assert len(sanitize("y" * 1000)) == 300
    assert sanitize("y" * 1000).endswith("...")


async def test_logs_and_reasons_never_carry_the_secret(server: FaultServer) -> None:
    limits = DeliveryLimits(requests_per_second=1000.0, max_retries=2, backoff_base=0.001, backoff_cap=0.01)
    server.faults.extend(["503", "html502", "reset", "422"])
    async with AsyncExitStack() as stack:
        d = await open_http_deliverer(sink_config(server.url), stack, environ=ENV, limits=limits)
        with structlog.testing.capture_logs() as logs:
            first = await d.deliver(batch(2))
            second = await d.deliver(batch(1, prefix="z"))
    assert server.last_headers["Authorization"] == "s3cr3t-token"  # it was sent...
    assert logs and not any("s3cr3t" in repr(e) for e in logs)  # ...and never logged
    assert first[0].status == "retryable" and "s3cr3t" not in (first[0].reason or "")
    assert second[0].status == "rejected" and "s3cr3t" not in (second[0].reason or "")


async def test_check_does_not_wait_out_a_retry_after_pause(server: FaultServer) -> None:
    async with AsyncExitStack() as stack:
        endpoint = Endpoint("http", requests_per_second=1000.0)
        sink = await open_http_sink(sink_config(server.url), endpoint, stack, environ=ENV)
        endpoint.pause(3600.0)
        await asyncio.wait_for(sink.check(), 5)
        assert server.heads == 0
