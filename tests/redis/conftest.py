"""A real redis-server on 127.0.0.1 (random free port) for the session; sources made per test."""

from __future__ import annotations

import itertools
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from daemon.sources.redis_streams import RedisStreamSource, make_client
from tests.conftest import require_tool
from tests.redis.stream_tools import free_port

_names = itertools.count()


def start_redis(port: int) -> subprocess.Popen[bytes]:
    """``redis-server`` on ``port`` without persistence; returns once it answers PING."""
    proc = subprocess.Popen(
        [
            require_tool("redis-server"),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
                c.sendall(b"PING\r\n")
                if c.recv(16).startswith(b"+PONG"):
                    return proc
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"redis-server did not answer PING on port {port}")
        time.sleep(0.02)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    port = free_port()
    proc = start_redis(port)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    c = make_client(redis_url)
    try:
        yield c
    finally:
        await c.aclose()


@pytest.fixture
def stream() -> str:
    return f"test-stream-{next(_names)}"


SourceMaker = Callable[..., Awaitable[RedisStreamSource]]


@pytest.fixture
async def make_source(redis_url: str, stream: str, tmp_path: Path) -> AsyncIterator[SourceMaker]:
    """``await make_source(consumer=..., **overrides)``: a started source, closed after the test."""
    async with AsyncExitStack() as stack:

        async def make(**kw: Any) -> RedisStreamSource:
            c = make_client(redis_url)
            stack.push_async_callback(c.aclose)
            opts: dict[str, Any] = {
                "stream": stream,
                "group": "g",
                "consumer": f"c{next(_names)}",
                "once": False,
                "visibility": 30.0,
                "max_deliveries": 5,
                "max_in_flight": 1000,
                "base": tmp_path,
                "block": 0.05,
            } | kw
            return await stack.enter_async_context(RedisStreamSource(c, **opts))

        yield make
