"""Process lifecycle of ``ingestd run``: uvloop, signals, readiness, watchdog, drain, summary.

* READY=1 once the ledger is open and the source and sink answer their checks.
* WATCHDOG=1 only while every stage holding work makes progress (``daemon.ops.watchdog``).
* SIGTERM/SIGINT: STOPPING=1, drain (stop pulling, finish or release in-flight work, flush,
  commit) with EXTEND_TIMEOUT_USEC while it progresses, exit 0 within
  ``pipeline.drain_timeout``. A second signal stops at once (what is not final is released).
* SIGHUP: RELOADING=1, re-read the config file, apply the log level and the sink's rate
  limits and concurrency, re-check refused credentials at once, READY=1. Work in flight is not
  touched.
* Unexpected errors propagate: the process exits non-zero, loudly.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.metadata
import signal
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TextIO

import msgspec
import structlog
import uvloop

from daemon.core.allocator import keep_freed_memory
from daemon.core.config import Config, ConfigError, load
from daemon.core.logs import before_each_line, configure
from daemon.ops.health import Operations, Readiness, serve, watch
from daemon.ops.metrics import Metrics
from daemon.ops.notify import Notifier
from daemon.ops.status_client import LAST_RUN
from daemon.ops.watchdog import ProgressMonitor, extend_stop_while_draining, run_watchdog
from daemon.pipeline.pipeline import Pipeline
from daemon.pipeline.tracker import Counters
from daemon.service.wiring import build_pipeline, reload_sink, url_refresher
from daemon.sinks.base import CredentialsError

log = structlog.get_logger()

GC_YOUNG_THRESHOLD = 20_000


def version() -> str:
    try:
        return importlib.metadata.version("ingestd")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


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
    return Summary(
        seen=c.seen,
        delivered=c.delivered,
        duplicates=c.duplicates,
        dead_lettered=c.dead,
        gone=c.gone,
        unfinished=c.unfinished,
        retried=c.retried,
        batches=c.batches,
        probe_bytes=c.probe_bytes,
        probe_requests=c.probe_requests,
        elapsed_s=round(elapsed, 3),
        objects_per_s=round(c.seen / elapsed, 1) if elapsed > 0 else 0.0,
    )


def _draw(pipeline: Pipeline, out: TextIO, started: float) -> None:
    c = pipeline.counters
    el = time.monotonic() - started
    out.write(
        f"\r{c.seen:>10,} seen  {c.delivered:>10,} delivered  {c.duplicates:>8,} dup  "
        f"{c.dead:>7,} dead  {c.seen / el if el else 0:>9,.0f}/s "
    )
    out.flush()


def _clear_line() -> None:
    sys.stderr.write("\r\x1b[K")  # the progress line is drawn again on its next tick
    sys.stderr.flush()


async def _progress(pipeline: Pipeline, out: TextIO, started: float) -> None:
    """A one-line progress display for terminals (``--once`` over large inputs)."""
    while True:
        _draw(pipeline, out, started)
        await asyncio.sleep(0.25)


async def _credentials_refused(deliverer: object) -> str | None:
    """``--once``: the platform's refusal of our credentials, asked before taking any work (a run
    that cannot deliver anything ends at once, non-zero, and dead-letters nothing)."""
    check = getattr(deliverer, "check", None)
    if check is None:
        return None
    try:
        await check()
    except CredentialsError as e:
        return str(e)
    except Exception:  # other problems are met (and reported) per batch
        return None
    return None


class Service:
    """One run of the daemon: the pipeline plus what systemd and operators see of it."""

    def __init__(self, cfg: Config, config_path: str | None, *, once: bool) -> None:
        self.cfg = cfg
        self.config_path = config_path
        self.once = once
        self.notifier = Notifier.from_env()
        self.metrics = Metrics(version())
        self.readiness = Readiness()
        self.monitor = ProgressMonitor(stall_after=cfg.pipeline.stall_seconds)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_retries = 0
        self.pipeline: Pipeline | None = None
        self.interrupted = False  # a SIGTERM/SIGINT asked for the drain
        self.refused: str | None = None  # the sink refused our credentials (and why)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self) -> tuple[Summary, bool]:
        started = time.monotonic()
        async with AsyncExitStack() as stack:
            p = await build_pipeline(
                self.cfg, stack, once=self.once, metrics=self.metrics, monitor=self.monitor
            )
            self.pipeline = p
            gc.freeze()  # what start-up made lives as long as the process: cyclic GC skips it (perf.md)
            # most per-object containers die young: a collection every 20,000 allocations instead of
            # 700 leaves them freed by refcount before any scan (e2e rig: the GC's time per run
            # 0.23 -> 0.03 s, ~5 µs per object; at most a few MB more of short-lived garbage)
            gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)
            self.metrics.on_read = self._observe  # gauges read at scrape time, watchdog or not
            self.readiness.ledger_open = True
            if self.cfg.http.listen:
                host, port = await serve(
                    stack,
                    self.cfg.http.listen,
                    Operations(metrics=self.metrics, readiness=self.readiness, monitor=self.monitor),
                )
                log.info("operations endpoint listening", host=host, port=port)
            self._install_signals(p)
            endpoint = getattr(p.deliverer, "endpoint", None)
            if endpoint is not None:
                endpoint.on_refused = self._credentials
            sink_check = getattr(p.deliverer, "check", None)
            if sink_check is not None:
                self._spawn(watch(sink_check, self.readiness.sink), "watch-sink")
            else:
                self.readiness.sink(None)
            source_check = getattr(p.source, "check", None)
            if source_check is not None:
                self._spawn(watch(source_check, self.readiness.source), "watch-source")
            else:
                self.readiness.source(None)
            p.counters.remember_final = self.once  # distinct objects over a bounded input only
            self._spawn(self._ready_when_reachable(), "ready")
            if not self.once and (refresher := url_refresher(self.cfg, p.deliverer, p.ledger)) is not None:
                self._spawn(refresher.run(), "url-refresher")
            self._spawn(
                run_watchdog(self.notifier, self.monitor, extra_status=self._status, observe=self._observe),
                "watchdog",
            )
            if self.once and sys.stderr.isatty():
                self._spawn(_progress(p, sys.stderr, started), "progress")
                before_each_line(_clear_line)  # a log line never lands on the progress line
            try:
                if self.once and await _credentials_refused(p.deliverer) is not None:
                    # said once by the endpoint (Endpoint.refuse); nothing taken from the source
                    return summarize(p.counters, time.monotonic() - started), False
                counters = await p.run()
            finally:
                for t in list(self._tasks):
                    t.cancel()
                if self._tasks:
                    await asyncio.wait(self._tasks)
                if self.once and sys.stderr.isatty():
                    before_each_line(None)
                    _draw(p, sys.stderr, started)
                    sys.stderr.write("\n")
            summary = summarize(counters, time.monotonic() - started)
            await self._remember(p, summary)
            log.debug("pipeline ended; closing clients and the ledger", drained=p.drained)
            return summary, p.drained

    async def _remember(self, p: Pipeline, summary: Summary) -> None:
        """Keep the summary in the ledger, so ``status`` shows the run's own figures."""
        record = {"finished_at": round(time.time(), 3), **msgspec.structs.asdict(summary)}
        try:
            await p.ledger.put_checkpoint(LAST_RUN, msgspec.json.encode(record).decode())
        except Exception as e:  # the run's work is committed; its figures are a courtesy
            log.warning("run summary not kept in the ledger", reason=str(e))

    def _credentials(self, refused: str | None) -> None:
        """The sink refuses our credentials (or accepts them again): not ready, intake paused;
        ``--once`` stops."""
        self.readiness.credentials(refused)
        if refused is None:  # told only after a check passed: the sink is reachable now
            self.readiness.sink(None)
        self.refused = refused
        if self.pipeline is not None:
            self.pipeline.pause.refused(refused)  # intake pulls nothing meanwhile (pipeline.pause)
        if refused is not None and self.once and self.pipeline is not None and not self.pipeline.stopping:
            self.pipeline.stop()  # nothing can be delivered: give the objects back and say so

    def _observe(self) -> None:
        if self.pipeline is not None:
            self.pipeline.observe()
            self._observe_delivery(self.pipeline.deliverer)

    def _status(self) -> str:
        if self.pipeline is None:
            return "starting"
        c = self.pipeline.counters
        return f"seen={c.seen} delivered={c.delivered} dead={c.dead} in_flight={self.pipeline.in_flight}"

    def _observe_delivery(self, deliverer: object) -> None:
        """Copy the delivery policy's figures into the metrics and readiness (every tick)."""
        stats = getattr(deliverer, "stats", None)
        circuit = getattr(deliverer, "circuit", None)
        if stats is None or circuit is None:
            return
        m, sink = self.metrics, stats.sink
        m.retries[sink] = stats.retries
        m.ratelimit_wait[sink] = stats.rate_limit_wait_seconds
        m.concurrency_limit(sink, stats.concurrency_limit)
        m.annotation_imports, m.annotation_lines = dict(stats.imports), dict(stats.import_lines)
        is_open = circuit().value == "open"
        m.circuit(sink, is_open)
        self.readiness.circuit(sink, is_open)
        endpoint = getattr(deliverer, "endpoint", None)
        waiting = is_open or (endpoint is not None and endpoint.paused_for() > 0)
        moved = stats.retries + stats.platform_waits
        if waiting or moved != self._last_retries:
            # waiting on the platform by choice (Retry-After, open circuit, backoff, a job still
            # running) is not a wedge: count it as progress so the watchdog keeps pinging
            self.monitor.stage("deliver").progress()
        self._last_retries = moved

    async def _ready_when_reachable(self) -> None:
        while not self.readiness.ready:
            self.readiness.changed.clear()
            await self.readiness.changed.wait()
        self.notifier.ready("running")
        log.info("ready")

    def _install_signals(self, pipeline: Pipeline) -> None:
        loop = asyncio.get_running_loop()
        main = asyncio.current_task()
        assert main is not None

        def on_stop(signame: str) -> None:
            if pipeline.stopping:
                log.warning("second signal: stopping now", signal=signame)
                main.cancel()
                return
            log.info("signal received, draining", signal=signame)
            self.interrupted = True
            self.readiness.draining = True
            self.notifier.stopping("draining")
            self._spawn(extend_stop_while_draining(self.notifier, self.monitor), "extend-stop")
            self._spawn(pipeline.report_drain(), "drain-report")
            pipeline.stop()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_stop, sig.name)
        loop.add_signal_handler(signal.SIGHUP, self.reload)

    def reload(self) -> None:
        """SIGHUP: new log level, rate limits and concurrency; nothing in flight is dropped."""
        if self.config_path is None:
            return
        try:
            with self.notifier.reload_cycle():
                new = load(self.config_path)
                configure(new.log.level)
                if self.pipeline is not None:
                    reload_sink(self.pipeline.deliverer, new)
                    self.pipeline.pause.recheck_now()  # refused credentials: try them again now
                self.cfg = new
                log.info(
                    "configuration reloaded",
                    log_level=new.log.level,
                    requests_per_second=new.sink.requests_per_second,
                    max_concurrency=new.sink.max_concurrency,
                )
        except (ConfigError, ValueError) as e:
            log.error("reload failed; previous settings kept", reason=str(e))


# Exit statuses of ``ingestd run`` (README, "Exit status").
EXIT_OK = 0  # --once: every object final; daemon: stopped and drained
EXIT_UNFINISHED = 1  # some objects not final, the drain deadline passed, or an error
EXIT_USAGE = 2  # bad command line or configuration (argparse and CommandError)
EXIT_INTERRUPTED = 3  # --once stopped by SIGTERM/SIGINT and drained: nothing lost, input not done


def exit_status(
    summary: Summary, *, once: bool, drained: bool, interrupted: bool, refused: bool = False
) -> int:
    if not drained or refused:
        return EXIT_UNFINISHED
    if not once:
        return EXIT_OK
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if summary.unfinished == 0 else EXIT_UNFINISHED


def run(cfg: Config, *, once: bool, config_path: str | Path | None = None) -> int:
    service = Service(cfg, None if config_path is None else str(config_path), once=once)
    keep_freed_memory()  # no page faults per object for buffers freed and taken again
    summary, drained = uvloop.run(service.run())
    # --once prints the summary as its last line: the log line does not repeat it
    log.info("run finished", **({} if once else msgspec.structs.asdict(summary)))
    if once:
        sys.stdout.buffer.write(msgspec.json.encode(summary) + b"\n")
        sys.stdout.flush()
    if service.refused is not None:
        sys.stderr.write(
            f"ingestd: the sink refused our credentials: {service.refused}\n"
            f"ingestd: nothing was dead-lettered for it; {summary.unfinished} object(s) were given back "
            "to the source: fix the credentials and run again\n"
        )
    return exit_status(
        summary,
        once=once,
        drained=drained,
        interrupted=service.interrupted,
        refused=service.refused is not None,
    )
