"""Cost of the per-object instrumentation calls, against a plain dict increment.

At 20,000 objects/s every object passes several stages, each reporting an outcome, and the
watchdog handle is bumped as often. A call costing 1 µs would be 2 % of a core per call site;
the facade must stay near the floor, which is a Python function doing ``d[k] += 1``.

Figures (ns per call, lower is better, each against the dict baseline of the same run):

* ``metrics.object_done``: the facade call the pipeline makes per object and stage;
* ``prometheus_client labels().inc()``: the obvious alternative, for scale (why the facade
  keeps plain dicts and renders metric families only at scrape time);
* ``watchdog StageProgress.progress``: the progress counter the watchdog reads.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from bench.harness import Figure
from daemon.ops.metrics import (
    BATCH_BYTES_BUCKETS,
    BATCH_ITEMS_BUCKETS,
    LATENCY_BUCKETS,
    OUTCOMES,
    STAGES,
    Metrics,
)
from daemon.ops.watchdog import ProgressMonitor

BUDGET_NS = 1000.0  # 2 % of one core per call site at 20,000 objects/s


def _ns_per_call(fn: Callable[[], None], calls: int, repeats: int) -> float:
    """Best of ``repeats`` runs of ``calls`` calls (the least disturbed by a noisy machine)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter_ns() - t0) / calls)
    return best


def run(quick: bool) -> list[Figure]:
    calls, repeats = (200_000, 5) if quick else (1_000_000, 9)

    plain: dict[tuple[str, str], int] = {("probe", "ok"): 0}

    def dict_inc(stage: str = "probe", outcome: str = "ok") -> None:
        plain[stage, outcome] += 1

    metrics = Metrics("bench")

    def facade() -> None:
        metrics.object_done("probe", "ok")

    counter = Counter("bench_objects", "bench", ["stage", "outcome"], registry=CollectorRegistry())

    def prom_labels() -> None:
        counter.labels("probe", "ok").inc()

    stage = ProgressMonitor(stall_after=30).stage("probe")

    def progress() -> None:
        stage.progress()

    baseline = _ns_per_call(dict_inc, calls, repeats)
    measured = {
        "metrics.object_done": _ns_per_call(facade, calls, repeats),
        "prometheus_client labels().inc()": _ns_per_call(prom_labels, calls, repeats),
        "watchdog StageProgress.progress": _ns_per_call(progress, calls, repeats),
    }
    assert metrics.objects["probe", "ok"] == calls * repeats  # the facade really counted
    figures = [
        Figure(
            name=name,
            value=round(ns, 1),
            unit="ns/call",
            baseline=round(baseline, 1),
            baseline_name="function doing dict[k] += 1",
            target=BUDGET_NS if name != "prometheus_client labels().inc()" else None,
            higher_is_better=False,
            note=f"{ns * 20_000 / 1e7:.2f} % of a core per call site at 20,000 objects/s",
        )
        for name, ns in measured.items()
    ]
    scrape = _ns_per_call(_render(metrics), 200 if quick else 1000, 3)
    native = _ns_per_call(_render_native(), 200 if quick else 1000, 3)
    figures.append(
        Figure(
            name="metrics.exposition (one /metrics scrape)",
            value=round(scrape / 1000, 1),
            unit="us/scrape",
            baseline=round(native / 1000, 1),
            baseline_name="same series as native prometheus_client Counter/Histogram objects",
            higher_is_better=False,
            note="paid once per scrape (every 15-60 s), not per object",
        )
    )
    return figures


def _render(metrics: Metrics) -> Callable[[], None]:
    def render() -> None:
        metrics.exposition()

    return render


def _render_native() -> Callable[[], None]:
    """The same 49 objects series and three histograms, held by prometheus-client itself."""
    registry = CollectorRegistry()
    objects = Counter("ingestd_objects", "x", ["stage", "outcome"], registry=registry)
    for stage in STAGES:
        for outcome in OUTCOMES:
            objects.labels(stage, outcome).inc()
    for name, buckets in (
        ("ingestd_batch_items", BATCH_ITEMS_BUCKETS),
        ("ingestd_batch_bytes", BATCH_BYTES_BUCKETS),
        ("ingestd_delivery_latency_seconds", LATENCY_BUCKETS),
    ):
        Histogram(name, "x", buckets=buckets, registry=registry).observe(1.0)

    def render() -> None:
        generate_latest(registry)

    return render


if __name__ == "__main__":
    for f in run(quick=True):
        print(f)
