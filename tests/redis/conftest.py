"""A real redis-server on 127.0.0.1 (random free port) for the session; sources made per test."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from daemon.sources.redis_streams import RedisStreamSource, make_client
from tests.redis.stream_tools import free_port, start_redis, stop_redis

_names = itertools.count()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    port = free_port()
    proc = start_redis(port)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_redis(proc)


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
