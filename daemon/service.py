"""Process lifecycle of ``ingestd run``: uvloop, signals, drain, the --once summary.

SIGTERM/SIGINT: drain (stop pulling, finish or release in-flight work, flush, commit) and
exit 0 within ``pipeline.drain_timeout``. A second signal stops at once (messages not final
are released). Unexpected errors propagate: the process exits non-zero, loudly.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from contextlib import AsyncExitStack
from typing import Any, TextIO

import msgspec
import structlog
import uvloop

from daemon.config import Config
from daemon.pipeline import Pipeline
from daemon.tracker import Counters
from daemon.wiring import build_pipeline

log = structlog.get_logger()


class Summary(msgspec.Struct, kw_only=True):
    seen: int
    delivered: int
    duplicates: int
    dead_lettered: int
    gone: int
    unfinished: int
    retried: int
    batches: int
    probe_bytes: int
    probe_requests: int
    elapsed_s: float
    objects_per_s: float


def summarize(c: Counters, elapsed: float) -> Summary:
    final = c.delivered + c.duplicates + c.dead + c.gone
    return Summary(
        seen=c.seen,
        delivered=c.delivered,
        duplicates=c.duplicates,
        dead_lettered=c.dead,
        gone=c.gone,
        unfinished=max(0, c.seen - final),
        retried=c.retried,
        batches=c.batches,
        probe_bytes=c.probe_bytes,
        probe_requests=c.probe_requests,
        elapsed_s=round(elapsed, 3),
        objects_per_s=round(c.seen / elapsed, 1) if elapsed > 0 else 0.0,
    )


async def _progress(pipeline: Pipeline, out: TextIO, started: float) -> None:
    """A one-line progress display for terminals (``--once`` over large inputs)."""
    c = pipeline.counters
    while True:
        await asyncio.sleep(0.25)
        el = time.monotonic() - started
        out.write(
            f"\r{c.seen:>10,} seen  {c.delivered:>10,} delivered  {c.duplicates:>8,} dup  "
            f"{c.dead:>7,} dead  {c.seen / el if el else 0:>9,.0f}/s "
        )
        out.flush()


def _install_signals(pipeline: Pipeline, main: asyncio.Task[Any]) -> None:
    loop = asyncio.get_running_loop()

    def on_stop(signame: str) -> None:
        if pipeline.stopping:
            log.warning("second signal: stopping now", signal=signame)
            main.cancel()
            return
        log.info("signal received, draining", signal=signame)
        pipeline.stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_stop, sig.name)


async def run_pipeline(cfg: Config, *, once: bool) -> tuple[Summary, bool]:
    started = time.monotonic()
    async with AsyncExitStack() as stack:
        pipeline = await build_pipeline(cfg, stack, once=once)
        main = asyncio.current_task()
        assert main is not None
        _install_signals(pipeline, main)
        progress = None
        if once and sys.stderr.isatty():
            progress = asyncio.create_task(_progress(pipeline, sys.stderr, started))
        try:
            counters = await pipeline.run()
        finally:
            if progress is not None:
                progress.cancel()
                sys.stderr.write("\n")
        return summarize(counters, time.monotonic() - started), pipeline.drained


def run(cfg: Config, *, once: bool) -> int:
    summary, drained = uvloop.run(run_pipeline(cfg, once=once))
    log.info("run finished", **msgspec.structs.asdict(summary))
    if once:
        sys.stdout.buffer.write(msgspec.json.encode(summary) + b"\n")
        sys.stdout.flush()
    return 0 if drained and (summary.unfinished == 0 or not once) else 1
