"""The ``spool`` source: a local folder (recursive); new files are picked up while running.

A file is taken once its size and mtime have held still for ``stable_seconds`` (so a file
still being copied in is not probed half-written). Hidden files and folders (``.name``) and
``*.tmp``/``*.part`` files are ignored. One message per file; the key is the path relative
to the folder. The ledger, not the folder, remembers what was imported: files stay in place
because the URLs handed to the platform point at them.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import msgspec
import structlog

from daemon.core.jobs import ObjectRef
from daemon.sources.local import LocalMessage, Outstanding

log = structlog.get_logger()
IGNORED_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload")
BATCH = 256


class FileState(msgspec.Struct, frozen=True, array_like=True):
    size: int
    mtime_ns: int
    since: float  # when this (size, mtime) was first seen


def settle(prev: FileState | None, size: int, mtime_ns: int, now: float) -> FileState:
    """The file's state after a scan at ``now`` (pure)."""
    if prev is not None and prev.size == size and prev.mtime_ns == mtime_ns:
        return prev
    return FileState(size, mtime_ns, now)


def is_stable(state: FileState, now: float, stable_seconds: float, wall_now: float) -> bool:
    """Stable if unchanged for ``stable_seconds`` since first seen, or last modified that long ago."""
    return now - state.since >= stable_seconds or wall_now - state.mtime_ns / 1e9 >= stable_seconds


def scan(root: Path) -> list[tuple[str, int, int]]:
    """(relative posix path, size, mtime_ns) of every regular file below ``root``, sorted."""
    out: list[tuple[str, int, int]] = []
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            entries = list(os.scandir(d))
        except OSError as err:
            log.warning("spool folder unreadable", path=str(d), reason=err.strerror)
            continue
        for e in entries:
            if e.name.startswith(".") or e.name.endswith(IGNORED_SUFFIXES):
                continue
            try:
                if e.is_dir(follow_symlinks=False):
                    stack.append(Path(e.path))
                elif e.is_file():
                    st = e.stat()
                    out.append((Path(e.path).relative_to(root).as_posix(), st.st_size, st.st_mtime_ns))
            except OSError:
                continue
    out.sort()
    return out


class SpoolSource:
    name = "spool"

    def __init__(
        self,
        root: Path,
        *,
        once: bool,
        poll_interval: float = 1.0,
        stable_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root = root
        self.once = once
        self.poll_interval = poll_interval
        self.stable_seconds = stable_seconds
        self.clock = clock
        self.outstanding = Outstanding()
        self._states: dict[str, FileState] = {}
        self._taken: set[str] = set()
        self._closed = False
        self._all_seen = False

    @property
    def exhausted(self) -> bool:
        return self._all_seen and self.outstanding.idle

    def _ready(self) -> tuple[list[LocalMessage], int]:
        now, wall = self.clock(), time.time()
        ready: list[LocalMessage] = []
        waiting = 0
        states: dict[str, FileState] = {}
        for rel, size, mtime_ns in scan(self.root):
            if rel in self._taken:
                continue
            st = settle(self._states.get(rel), size, mtime_ns, now)
            if is_stable(st, now, self.stable_seconds, wall):
                self._taken.add(rel)
                path = str(self.root / rel)
                ref = ObjectRef(origin="file", key=rel, path=path, size=size)
                ready.append(LocalMessage(id=f"spool:{rel}", refs=[ref]))
            else:
                states[rel] = st
                waiting += 1
        self._states = states
        log.debug("spool scanned", folder=str(self.root), ready=len(ready), settling=waiting)
        return ready, waiting

    async def batches(self) -> AsyncIterator[list[LocalMessage]]:
        if not self.root.is_dir():
            raise FileNotFoundError(f"spool folder {self.root} does not exist")
        while not self._closed:
            ready, waiting = self._ready()
            while not self.outstanding.retries.empty():
                ready.append(self.outstanding.retries.get_nowait())
            for i in range(0, len(ready), BATCH):
                chunk = ready[i : i + BATCH]
                for m in chunk:
                    self.outstanding.handed(m)
                yield chunk
            if self.once and not waiting and not ready:
                self._all_seen = True
                if self.outstanding.count == 0:
                    return
            await self._wait()

    async def _wait(self) -> None:
        # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel that lands in the turn
        # the wait completes (an ack just as the drain began), and the spool polled on
        try:
            async with asyncio.timeout(self.poll_interval):
                await self.outstanding.changed()
        except TimeoutError:
            pass

    async def close(self) -> None:
        self._closed = True
        self.outstanding.cancel()
