"""What the delivery and platform benches share: work sent with a fixed number in flight, a
checkpoint store in memory, the "every item accepted" check, and bare multipart POSTs (the
baseline loop against the local Labelbox server)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import aiohttp

from daemon.sinks.base import ItemResult

T = TypeVar("T")


async def fan_out(work: Sequence[T], concurrency: int, send: Callable[[T], Awaitable[object]]) -> float:
    """Send every piece of ``work`` (in order) with ``concurrency`` workers; the seconds taken."""
    queue = list(reversed(work))

    async def worker() -> None:
        while queue:
            await send(queue.pop())

    started = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        for _ in range(concurrency):
            tg.create_task(worker())
    return time.perf_counter() - started


def all_accepted(results: Sequence[ItemResult], what: str = "not accepted") -> None:
    """A bench measures delivered work only: any other outcome ends it."""
    if refused := next((r for r in results if r.status != "accepted"), None):
        raise RuntimeError(f"{what}: {refused}")


class MemoryCheckpoints:
    """The ledger's checkpoint calls, kept in a dict (the platform sinks' only ledger needs)."""

    def __init__(self, values: dict[str, str] | None = None) -> None:
        self.values = dict(values or {})

    async def get_checkpoint(self, name: str) -> str | None:
        return self.values.get(name)

    async def put_checkpoint(self, name: str, value: str) -> None:
        self.values[name] = value


async def bare_posts(
    url: str, bodies: Sequence[tuple[str, bytes]], *, api_key: str, concurrency: int
) -> float:
    """POST each (content type, body) with a bearer key from a plain aiohttp loop; seconds taken."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def send(part: tuple[str, bytes]) -> None:
            ctype, body = part
            headers = {"Authorization": f"Bearer {api_key}", "Content-Type": ctype}
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()

        return await fan_out(bodies, concurrency, send)
