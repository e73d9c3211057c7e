"""Prometheus metrics: a typed facade the pipeline calls, and its registry.

Naming follows prometheus.io/docs/practices/naming: the ``ingestd_`` prefix, base units
(seconds, bytes), ``_total`` counters, ``_info``-style build metadata. Labels come from small
closed sets (stage, outcome, sink, queue, rule): never an object key, id or URL.

Cost: the per-object calls (:meth:`Metrics.object_done`, :meth:`Metrics.probe_cost`,
:meth:`Metrics.queue_depth`, ...) are one dict or attribute update; the values are turned into
metric families only when ``/metrics`` is scraped (a custom collector). Histograms are fed per
batch, where prometheus-client's own types cost nothing that matters. The daemon is one event
loop, so the facade is not locked: call it from the loop thread only.

A dedicated :class:`~prometheus_client.CollectorRegistry` (never the global default one) keeps
several daemons in one test process independent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal, get_args

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

Stage = Literal["source", "intake", "probe", "build", "batch", "deliver", "commit"]
Outcome = Literal["ok", "duplicate", "skipped", "rejected", "retried", "dead_lettered", "failed"]
STAGES: tuple[str, ...] = get_args(Stage)
OUTCOMES: tuple[str, ...] = get_args(Outcome)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

BATCH_ITEMS_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
BATCH_BYTES_BUCKETS = tuple(float(1024 * 4**i) for i in range(10))  # 1 KiB .. 256 MiB
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Metrics:
    """Every figure the daemon exports. One instance per process (or per test)."""

    def __init__(self, version: str, *, clock: Callable[[], float] = time.time) -> None:
        self.version = version
        self._clock = clock
        # Live values, read by the collector at scrape time.
        self.objects: dict[tuple[str, str], int] = {(s, o): 0 for s in STAGES for o in OUTCOMES}
        self.probe_bytes = 0
        self.probe_requests = 0
        self.dead_letters: dict[tuple[str, str], int] = {}
        self.retries: dict[str, int] = {}
        self.ratelimit_wait: dict[str, float] = {}
        self.concurrency: dict[str, int] = {}
        self.circuits: dict[str, bool] = {}
        self.queues: dict[str, int] = {}
        self.annotation_imports: dict[str, int] = {}  # import jobs by state (labelbox projects)
        self.annotation_lines: dict[str, int] = {}  # annotation lines by outcome
        self.annotations_waiting = 0  # parked in the waiting room for their media
        self.annotations_waiting_oldest = 0.0  # seconds the oldest of them has waited
        self.in_flight = 0
        self.ledger_lag = 0.0
        self.last_success = 0.0
        self.loop_lag = 0.0
        self.intake_paused = False  # the sink refuses our credentials: intake pulls nothing
        # called before every read: the owner refreshes the gauges (queue depths, in flight,
        # delivery figures) from the live structures, so a scrape never shows stale values
        self.on_read: Callable[[], None] | None = None

        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_LiveCollector(self))
        self._batch_items = Histogram(
            "ingestd_batch_items",
            "Items per batch handed to the sink.",
            buckets=BATCH_ITEMS_BUCKETS,
            registry=self.registry,
        )
        self._batch_bytes = Histogram(
            "ingestd_batch_bytes",
            "Encoded payload bytes per batch handed to the sink.",
            buckets=BATCH_BYTES_BUCKETS,
            registry=self.registry,
        )
        self._latency = Histogram(
            "ingestd_delivery_latency_seconds",
            "Time from handing a batch to the sink to its final per-item results, retries included.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    # -- per object ------------------------------------------------------------------------
    def object_done(self, stage: Stage, outcome: Outcome, n: int = 1) -> None:
        """``n`` objects left ``stage`` with ``outcome``."""
        self.objects[stage, outcome] += n

    def probe_cost(self, bytes_read: int, requests: int) -> None:
        """One probe's cost (``MediaInfo.bytes_read``, ``MediaInfo.requests``)."""
        self.probe_bytes += bytes_read
        self.probe_requests += requests

    def dead_letter(self, stage: Stage, rule: str) -> None:
        """One dead letter; ``rule`` is the rule id (``labelbox.url.https``), never a value."""
        k = (stage, rule)
        self.dead_letters[k] = self.dead_letters.get(k, 0) + 1

    def queue_depth(self, queue: str, depth: int) -> None:
        self.queues[queue] = depth

    def set_in_flight(self, n: int) -> None:
        """Messages received from the source and not yet final."""
        self.in_flight = n

    # -- per batch / per request -----------------------------------------------------------
    def batch_sent(self, items: int, nbytes: int) -> None:
        self._batch_items.observe(items)
        self._batch_bytes.observe(nbytes)

    def delivered(self, latency_seconds: float, *, success: bool = True) -> None:
        """A batch got its final results after ``latency_seconds``; success stamps the time."""
        self._latency.observe(latency_seconds)
        if success:
            self.last_success = self._clock()

    def retry(self, sink: str) -> None:
        self.retries[sink] = self.retries.get(sink, 0) + 1

    def ratelimit_waited(self, sink: str, seconds: float) -> None:
        self.ratelimit_wait[sink] = self.ratelimit_wait.get(sink, 0.0) + seconds

    def concurrency_limit(self, sink: str, limit: int) -> None:
        self.concurrency[sink] = limit

    def circuit(self, sink: str, is_open: bool) -> None:
        self.circuits[sink] = is_open

    def set_ledger_lag(self, seconds: float) -> None:
        """Event time to ledger commit of the most recently committed object."""
        self.ledger_lag = seconds

    def set_loop_lag(self, seconds: float) -> None:
        self.loop_lag = seconds

    # -- reading ---------------------------------------------------------------------------
    def exposition(self) -> bytes:
        """The Prometheus text format of everything above."""
        if self.on_read is not None:
            self.on_read()
        return generate_latest(self.registry)

    def snapshot(self) -> dict[str, Any]:
        """Live figures for ``/status`` (non-zero object counts only)."""
        if self.on_read is not None:
            self.on_read()
        by_stage: dict[str, dict[str, int]] = {}
        for (stage, outcome), n in self.objects.items():
            if n:
                by_stage.setdefault(stage, {})[outcome] = n
        return {
            "objects": by_stage,
            "in_flight": self.in_flight,
            "queues": dict(self.queues),
            "probe": {"bytes_read": self.probe_bytes, "requests": self.probe_requests},
            "retries": dict(self.retries),
            "open_circuits": sorted(s for s, o in self.circuits.items() if o),
            "dead_letters": sum(self.dead_letters.values()),
            "annotation_imports": dict(self.annotation_imports),
            "annotation_lines": dict(self.annotation_lines),
            "annotations_waiting": {
                "count": self.annotations_waiting,
                "oldest_seconds": round(self.annotations_waiting_oldest, 1),
            },
            "last_success_timestamp": self.last_success or None,
            "intake_paused": self.intake_paused,
        }


class _LiveCollector(Collector):
    """Turns the facade's plain values into metric families, at scrape time only."""

    def __init__(self, m: Metrics) -> None:
        self.m = m

    def collect(self) -> Iterable[Metric]:
        return list(self._families())

    def _families(self) -> Iterator[Metric]:
        m = self.m
        f = CounterMetricFamily(
            "ingestd_objects", "Objects that left a stage, by outcome.", labels=["stage", "outcome"]
        )
        for (stage, outcome), n in m.objects.items():
            f.add_metric([stage, outcome], n)
        yield f
        yield CounterMetricFamily(
            "ingestd_probe_bytes_read", "Bytes read to probe media headers.", value=m.probe_bytes
        )
        yield CounterMetricFamily(
            "ingestd_probe_requests", "Read requests made to probe media headers.", value=m.probe_requests
        )
        f = CounterMetricFamily(
            "ingestd_dead_letters", "Objects dead-lettered, by stage and rule.", labels=["stage", "rule"]
        )
        for (stage, rule), n in m.dead_letters.items():
            f.add_metric([stage, rule], n)
        yield f
        yield _by_sink(
            CounterMetricFamily, "ingestd_delivery_retries", "Delivery attempts retried.", m.retries
        )
        yield _by_sink(
            CounterMetricFamily,
            "ingestd_ratelimit_wait_seconds",
            "Time spent waiting for the sink's rate limiter.",
            m.ratelimit_wait,
        )
        yield _by_sink(
            GaugeMetricFamily,
            "ingestd_concurrency_limit",
            "Current adaptive limit of concurrent requests to the sink.",
            m.concurrency,
        )
        yield _by_sink(
            GaugeMetricFamily,
            "ingestd_circuit_open",
            "1 while deliveries to the sink are suspended by its circuit breaker.",
            {k: int(v) for k, v in m.circuits.items()},
        )
        for name, doc, label, values in (
            ("ingestd_annotation_imports", "Annotation import jobs by state.", "state", m.annotation_imports),
            ("ingestd_annotation_lines", "Annotation lines by outcome.", "outcome", m.annotation_lines),
        ):
            f = CounterMetricFamily(name, doc, labels=[label])
            for k, n in values.items():
                f.add_metric([k], n)
            yield f
        q = GaugeMetricFamily("ingestd_queue_depth", "Objects waiting in a stage queue.", labels=["queue"])
        for name, depth in m.queues.items():
            q.add_metric([name], depth)
        yield q
        yield GaugeMetricFamily(
            "ingestd_annotations_waiting",
            "Annotations waiting for their media to be final.",
            value=m.annotations_waiting,
        )
        yield GaugeMetricFamily(
            "ingestd_annotations_waiting_oldest_seconds",
            "How long the oldest waiting annotation has waited (0 = none).",
            value=m.annotations_waiting_oldest,
        )
        yield GaugeMetricFamily(
            "ingestd_in_flight_messages", "Source messages received and not yet final.", value=m.in_flight
        )
        yield GaugeMetricFamily(
            "ingestd_ledger_lag_seconds",
            "Event time to ledger commit of the most recently committed object.",
            value=m.ledger_lag,
        )
        yield GaugeMetricFamily(
            "ingestd_last_success_timestamp_seconds",
            "Unix time of the last batch delivered successfully (0 = none yet).",
            value=m.last_success,
        )
        yield GaugeMetricFamily(
            "ingestd_intake_paused",
            "1 while intake pulls nothing because the sink refuses our credentials.",
            value=int(m.intake_paused),
        )
        yield GaugeMetricFamily(
            "ingestd_event_loop_lag_seconds",
            "How late the event loop woke the last lag probe.",
            value=m.loop_lag,
        )
        info = GaugeMetricFamily(
            "ingestd_build_info", "Always 1; the version is the label.", labels=["version"]
        )
        info.add_metric([m.version], 1)
        yield info


def _by_sink(
    kind: type[CounterMetricFamily] | type[GaugeMetricFamily],
    name: str,
    doc: str,
    values: dict[str, int] | dict[str, float],
) -> Metric:
    f = kind(name, doc, labels=["sink"])
    for sink, v in values.items():
        f.add_metric([sink], v)
    return f
