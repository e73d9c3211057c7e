"""Task tracking: every task in flight is read by one paced poller, several per request.

``await poller.wait(task_id)`` returns the task once it is finished (``COMPLETE``, ``FAILED``,
``CANCELED``), or ``None`` when Labelbox does not show it to us (tasks are readable only by the
user who created them). One background loop reads all waited-for tasks every ``interval``
seconds (>= 2 s in configuration, the SDK's own floor), coalescing up to ``PER_REQUEST`` tasks into
one request with GraphQL aliases; so each task is read at most once per interval whatever the
number of tasks. A read that fails transiently (rate limited, 5xx, no answer) is simply the
missed tick of a schedule: the next tick reads again, after any ``Retry-After`` pause. Refused
credentials or a permanent error end every wait with that error. Waits are bounded by the
caller (``asyncio.timeout``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from daemon.sinks.base import CredentialsError, PermanentError, TransientError
from daemon.sinks.labelbox.client import LabelboxClient
from workers.platforms.labelbox import graphql as gql

log = structlog.get_logger()

PER_REQUEST = 20  # tasks per status request (kept small: Labelbox limits query complexity)


class TaskPoller:
    def __init__(
        self,
        client: LabelboxClient,
        *,
        interval: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._client = client
        self.interval = interval
        self._sleep = sleep
        self._waiters: dict[str, list[asyncio.Future[gql.TaskView | None]]] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self.user_id: str | None = None
        self.reads = 0

    async def wait(self, task_id: str) -> gql.TaskView | None:
        fut: asyncio.Future[gql.TaskView | None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(task_id, []).append(fut)
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.create_task(self._run(), name="labelbox-task-poller")
        try:
            return await fut
        finally:
            waiting = self._waiters.get(task_id)
            if waiting is not None and fut in waiting:
                waiting.remove(fut)
                if not waiting:
                    del self._waiters[task_id]

    async def aclose(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)

    async def _run(self) -> None:
        try:
            while self._waiters:
                await self._sleep(self.interval)
                ids = list(self._waiters)
                for i in range(0, len(ids), PER_REQUEST):
                    await self._tick(ids[i : i + PER_REQUEST])
        except Exception as e:  # a bug here must not leave the waiting batches hanging
            log.exception("labelbox.poller_failed")
            self._fail(list(self._waiters), e)

    async def _tick(self, ids: list[str]) -> None:
        try:
            await self._read(ids)
        except (CredentialsError, PermanentError) as e:
            self._fail(ids, e)
        except TransientError as e:
            if e.retry_after is not None:
                self._client.endpoint.pause(e.retry_after)
            log.info("labelbox.poll_missed", tasks=len(ids), reason=str(e))

    async def _read(self, ids: list[str]) -> None:
        if self.user_id is None:
            self.user_id = (await self._client.query(gql.USER, {}, gql.UserData)).user.id
        self.reads += 1
        query = gql.tasks_query(ids)
        variables = gql.tasks_variables(self.user_id, ids)
        answer = await self._client.answer(query, variables)
        try:
            views = gql.decode_tasks(answer, ids)
        except gql.ProtocolError as e:
            raise TransientError(f"Labelbox task read: {e}") from None
        for tid, view in views.items():
            if view is None or view.finished:
                self._resolve(tid, view)
            else:  # still running on Labelbox: waiting by choice, not a wedge (the watchdog)
                self._client.endpoint.stats.platform_waits += 1

    def _resolve(self, task_id: str, view: gql.TaskView | None) -> None:
        for fut in self._waiters.pop(task_id, []):
            if not fut.done():
                fut.set_result(view)

    def _fail(self, ids: list[str], error: Exception) -> None:
        for tid in ids:
            for fut in self._waiters.pop(tid, []):
                if not fut.done():
                    fut.set_exception(error)
