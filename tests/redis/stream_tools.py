"""Tools the Redis source tests share: a reader that keeps its iterator, stream helpers."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from daemon.sources.redis_streams import RedisMessage, RedisStreamSource
from tests.conftest import require_tool


class Reader:
    """Pulls batches from one source's iterator, keeping the iterator across calls."""

    def __init__(self, source: RedisStreamSource) -> None:
        self.source = source
        self.it = source.batches().__aiter__()

    async def take(self, n: int, timeout: float = 10.0) -> list[RedisMessage]:
        """At least ``n`` messages (fails the test if they do not come within ``timeout``)."""
        got: list[RedisMessage] = []
        async with asyncio.timeout(timeout):
            while len(got) < n:
                got.extend(await anext(self.it))
        return got

    async def rest(self, timeout: float = 10.0) -> list[RedisMessage]:
        """Everything until the iterator ends (once mode), acking each message as it comes."""
        got: list[RedisMessage] = []
        async with asyncio.timeout(timeout):
            async for batch in self.it:
                got.extend(batch)
                for m in batch:
                    await m.ack()
        return got


async def add(client: Redis, stream: str, *bodies: bytes | str) -> list[str]:
    ids = []
    for b in bodies:
        eid = await client.xadd(stream, {"body": b})
        ids.append(eid.decode())
    return ids


async def pending_ids(client: Redis, stream: str, group: str = "g", consumer: str | None = None) -> list[str]:
    rows = await client.xpending_range(stream, group, min="-", max="+", count=10_000, consumername=consumer)
    return [r["message_id"].decode() for r in rows]


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Poll ``check`` until true; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.01)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def stop_redis(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
