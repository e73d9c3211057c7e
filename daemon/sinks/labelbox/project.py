"""Accepted data rows into the project's batches (``[target] project``; shared/ref/labelbox.md 1.5,
A2.1-A2.2).

:meth:`ProjectRows.place` takes rows (global key, media kind) Labelbox has created and answers,
per key, ``None`` (in the project) or why it cannot be:

1. rows the ledger already shows in the project (checkpoint ``labelbox.in_project:<folded key>``)
   are done; a row whose media kind differs from the project's is refused naming both;
2. the processed check is polled every ``interval`` seconds until Labelbox has processed all of
   them (failed processing counts as processed), at most ``processed_deadline`` seconds, then the
   batch is retried (transient);
3. fewer than ``batch_async_at`` rows: ``createBatchV2`` (``failedDataRowIds`` are refused with
   their ids mapped back to keys); otherwise ``createEmptyBatch`` + ``addDataRowsToBatchAsync``,
   the task id recorded in the ledger before it is polled, then the batch's ``size`` read;
4. batch names are a pure function of the keys: ``RESOURCE_CONFLICT`` on a retry means the first
   attempt created the batch, ``No valid data rows to add`` means every row is already batched:
   both are successes; rows in ``failedDataRowIds`` of a batch of several are asked for again one
   by one, since a row already in a batch of the project may be listed there (unverified): alone,
   "nothing to add" makes it a success and another failure refuses it;
5. every placed row gets its ledger checkpoint (what the annotation imports wait for).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

import msgspec
import structlog

from daemon.sinks.base import PermanentError, TransientError
from daemon.sinks.labelbox.client import GraphqlRefusal, LabelboxClient
from daemon.sinks.labelbox.tasks import TaskPoller
from workers.platforms.labelbox import project as prj
from workers.platforms.labelbox.project import ProjectView

log = structlog.get_logger()


class Checkpoints(Protocol):
    async def get_checkpoint(self, name: str) -> str | None: ...

    async def put_checkpoint(self, name: str, value: str) -> None: ...


class ProjectSettings(msgspec.Struct, frozen=True, kw_only=True):
    project: str
    priority: int = 5
    consensus_labels: int = 0
    consensus_coverage: float = 0.0
    batch_async_at: int = prj.SYNC_BATCH_ROWS
    interval: float = 5.0  # between processed checks
    processed_deadline: float = 3600.0  # the SDK's wait
    task_deadline: float = 1800.0


def in_project_name(key: str) -> str:
    return f"labelbox.in_project:{key.casefold()}"


RowIds = Callable[[list[str]], Awaitable[dict[str, str]]]  # keys -> {data row id: key}


class ProjectRows:
    def __init__(
        self,
        client: LabelboxClient,
        poller: TaskPoller,
        checkpoints: Checkpoints | None,
        settings: ProjectSettings,
        row_ids: RowIds,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.client = client
        self.poller = poller
        self._ckpt = checkpoints
        self.s = settings
        self._row_ids = row_ids
        self._sleep = sleep
        self._view: ProjectView | None = None
        self._reading = asyncio.Lock()
        self.project_reads = 0
        self.batches_created = 0
        self.rows_placed = 0

    async def view(self, *, fresh: bool = False) -> ProjectView:
        """The project (read once; again when ``fresh``); concurrent callers share one read."""
        seen = self._view
        async with self._reading:
            if self._view is not None and (not fresh or self._view is not seen):
                return self._view
            data = await self.client.query(prj.PROJECT, {"projectId": self.s.project}, prj.ProjectData)
            self.project_reads += 1
            if data.project is None:
                raise PermanentError(f"Labelbox project {self.s.project!r} not found")
            self._view = data.project
        return self._view

    async def ontology(self, fresh: bool = False) -> bytes | None:
        """The project's normalized ontology (read once; ``fresh`` after a miss)."""
        return (await self.view(fresh=fresh)).ontology_json()

    @property
    def ckpt(self) -> Checkpoints:
        if self._ckpt is None:
            raise PermanentError("labelbox project opened without a ledger (check only)")
        return self._ckpt

    async def placed(self, key: str) -> bool:
        return bool(await self.ckpt.get_checkpoint(in_project_name(key)))

    async def place(self, rows: list[tuple[str, str]]) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        todo: list[str] = []
        media = (await self.view()).mediaType
        for key, kind in rows:
            if key in out:
                continue
            if await self.placed(key):
                out[key] = None
            elif (why := prj.media_mismatch(kind, media)) is not None:
                out[key] = f"{why} (project {self.s.project})"
            else:
                out[key] = None
                todo.append(key)
        for i in range(0, len(todo), prj.MAX_BATCH_ROWS):
            chunk = todo[i : i + prj.MAX_BATCH_ROWS]
            await self._wait_processed(chunk)
            refused = await (self._sync(chunk) if len(chunk) < self.s.batch_async_at else self._async(chunk))
            out.update(refused)
            for key in chunk:
                if key not in refused:
                    await self.ckpt.put_checkpoint(in_project_name(key), prj.batch_name(chunk))
                    self.rows_placed += 1
        return out

    async def _wait_processed(self, keys: list[str]) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + self.s.processed_deadline
        for i in range(0, len(keys), prj.PROCESSED_KEYS):
            part = keys[i : i + prj.PROCESSED_KEYS]
            while not (await self.client.query(prj.PROCESSED, {"globalKeys": part}, prj.ProcessedData)).done:
                if loop.time() >= end:
                    raise TransientError(
                        f"Labelbox has not processed {len(part)} rows after {self.s.processed_deadline} s"
                    )
                self.client.endpoint.stats.platform_waits += 1
                await self._sleep(self.s.interval)

    def _consensus(self) -> dict[str, object] | None:
        return prj.consensus_input(self.s.consensus_labels, self.s.consensus_coverage)

    async def _sync(self, keys: list[str]) -> dict[str, str]:
        name = prj.batch_name(keys)
        variables = prj.create_batch_variables(
            self.s.project, name, keys, priority=self.s.priority, consensus=self._consensus()
        )
        try:
            data = await self.client.query(prj.CREATE_BATCH, variables, prj.CreateBatchData)
        except GraphqlRefusal as e:
            if e.code == "RESOURCE_CONFLICT" or prj.NOTHING_TO_ADD in str(e):
                log.info("labelbox.batch_exists", project=self.s.project, batch=name, rows=len(keys))
                return {}
            raise
        created = data.project.createBatchV2
        self.batches_created += 1
        log.info("labelbox.batch_created", batch=name, rows=len(keys), failed=len(created.failedDataRowIds))
        if not created.failedDataRowIds:
            return {}
        ids = await self._row_ids(keys)
        failed = {ids[i]: i for i in created.failedDataRowIds if i in ids}
        if len(keys) > 1:
            # Whether Labelbox lists rows already in a batch of the project among failedDataRowIds
            # when they come with new rows is not known (labelbox.md A2.2/A2.7; the test server can
            # answer both ways): each failed row is asked for alone, where "nothing to add" says
            # it is already in the project (a success) and another failure refuses it
            log.info("labelbox.batch_rows_recheck", batch=name, rows=len(failed))
            refused: dict[str, str] = {}
            for key in sorted(failed):
                refused |= await self._sync([key])
            return refused
        reason = f"Labelbox did not add the row to project {self.s.project} (failedDataRowIds)"
        return {key: f"{reason}: {i}" for key, i in failed.items()}

    async def _async(self, keys: list[str]) -> dict[str, str]:
        name = prj.batch_name(keys)
        ckpt = f"labelbox.batch_task:{name}"
        task_id = await self.ckpt.get_checkpoint(ckpt)
        if not task_id:
            batch_id = await self._empty_batch(name)
            variables = prj.add_rows_variables(self.s.project, batch_id, keys, priority=self.s.priority)
            data = await self.client.query(prj.ADD_TO_BATCH, variables, prj.AddToBatchData)
            task_id = data.project.addDataRowsToBatchAsync.taskId
            await self.ckpt.put_checkpoint(ckpt, task_id)
        try:
            async with asyncio.timeout(self.s.task_deadline):
                view = await self.poller.wait(task_id)
        except TimeoutError:
            raise TransientError(f"Labelbox batch task {task_id} still running") from None
        if view is None or view.status != "COMPLETE":
            await self.ckpt.put_checkpoint(ckpt, "")  # the next attempt adds the rows again
            status = view.status if view is not None else "unreadable"
            raise TransientError(f"Labelbox batch task {task_id} ended {status}: {view and view.errors}")
        found = await self._batch(name)
        size = found.size if found is not None else None
        if size is not None and size < len(keys):
            log.warning("labelbox.batch_short", batch=name, sent=len(keys), size=size)
        log.info("labelbox.batch_filled", batch=name, task=task_id, rows=len(keys), size=size)
        return {}

    async def _empty_batch(self, name: str) -> str:
        variables = prj.empty_batch_variables(self.s.project, name, self._consensus())
        try:
            data = await self.client.query(prj.CREATE_EMPTY_BATCH, variables, prj.EmptyBatchData)
        except GraphqlRefusal as e:
            if e.code != "RESOURCE_CONFLICT":
                raise
            found = await self._batch(name)
            if found is None:
                raise TransientError(f"Labelbox batch {name} exists but cannot be read") from None
            return found.id
        self.batches_created += 1
        return data.project.createEmptyBatch.id

    async def _batch(self, name: str) -> prj.BatchView | None:
        variables = {"projectId": self.s.project, "name": name}
        return (await self.client.query(prj.BATCH_BY_NAME, variables, prj.BatchByNameData)).first()
