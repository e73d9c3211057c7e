"""``[sink] type = "labelbox"``: configuration rules and the delivery limits it yields."""

from __future__ import annotations

import math
from typing import Any

import pytest

from daemon.core.config import ConfigError, from_dict
from daemon.service.runner import Service
from daemon.service.wiring import settings, url_refresher
from daemon.sinks.endpoint import DeliveryStats
from daemon.sinks.labelbox import labelbox_limits
from workers.limits import CircuitState


def cfg(**sink: Any) -> dict[str, Any]:
    return {
        "source": {"type": "manifest", "path": "m.ndjson"},
        "target": {"platform": "labelbox", "dataset": "ds-1"},
        "sink": {"type": "labelbox", **sink},
    }


class TestLabelboxConfig:
    def test_defaults(self) -> None:
        """The issue's example needs only the type and the dataset; the rest has defaults."""
        k = from_dict(cfg()).sink
        assert (k.endpoint, k.api_key_secret, k.requests_per_minute) == ("", "labelbox_api_key", 1500.0)
        assert (k.tasks_in_flight, k.upsert, k.poll_interval) == (4, False, 2.0)

    @pytest.mark.parametrize(
        ("sink", "target", "match"),
        [
            ({"poll_interval": 1.0}, {}, "sink.poll_interval: must be >= 2"),
            ({"tasks_in_flight": 0}, {}, "sink.tasks_in_flight"),
            ({"requests_per_minute": 0}, {}, "sink.requests_per_minute"),
            ({"max_items": 150_001}, {}, "sink.max_items: must be <= 150000"),
            ({"endpoint": "ftp://x"}, {}, "sink.endpoint"),
            ({}, {"dataset": ""}, "target.dataset: required"),
            ({}, {"platform": "encord"}, "target.platform"),
            ({"upsert": True, "url_refresh_margin": 7200}, {"url_expires": 3600}, "sink.url_refresh_margin"),
            ({"max_items": 10_000}, {}, r"pipeline.max_in_flight: must be >= .* \(40000\)"),
        ],
    )
    def test_rules_name_the_key(self, sink: dict[str, Any], target: dict[str, Any], match: str) -> None:
        """Each rule's error names the key and the bound."""
        raw = cfg(**sink)
        raw["target"].update(target)
        with pytest.raises(ConfigError, match=match):
            from_dict(raw)

    def test_delivery_limits_follow_the_org_budget_and_tasks_in_flight(self) -> None:
        """Requests per minute become the endpoint's rate; concurrency is tasks in flight, never
        shrunk by a task's long latency; the pipeline keeps enough deliver workers."""
        c = from_dict(cfg(requests_per_minute=5000, tasks_in_flight=24, task_deadline=600, max_items=100))
        limits = labelbox_limits(c.sink)
        assert limits.requests_per_second == pytest.approx(5000 / 60)
        assert limits.max_concurrency == 24 and math.isinf(limits.latency_tolerance)
        assert limits.deadline >= 600
        assert settings(c).deliver_workers >= 24


class _Polling:
    """A deliverer whose one call lasts long but keeps sending requests (a task being polled)."""

    def __init__(self) -> None:
        self.stats = DeliveryStats(sink="labelbox")

    def circuit(self) -> CircuitState:
        return CircuitState.CLOSED


def test_a_long_task_being_polled_is_not_a_wedge() -> None:
    """While polls keep answering "still running" the busy deliver stage counts as progressing;
    when they stop it is a wedge after stall_after."""
    svc = Service(from_dict(cfg()), None, once=False)
    d = _Polling()
    stage = svc.monitor.stage("deliver")
    stage.busy = True
    for t in range(0, 600, 30):  # ten minutes of one call, a poll between ticks
        d.stats.platform_waits += 1
        svc._observe_delivery(d)
        assert svc.monitor.check(float(t)).ok
    svc._observe_delivery(d)
    assert not svc.monitor.check(600 + svc.monitor.stall_after + 1).ok


def test_the_refresher_runs_only_for_presigned_upserts() -> None:
    """The daemon starts the URL refresher for upsert + presigned URLs, and for nothing else."""
    deliverer, ledger = object(), object()
    on = url_refresher(from_dict(cfg(upsert=True)), deliverer, ledger)  # type: ignore[arg-type]
    assert on is not None and on.margin == 86400 and on.expires == 7 * 24 * 3600
    assert url_refresher(from_dict(cfg()), deliverer, ledger) is None  # type: ignore[arg-type]
    raw = cfg(upsert=True)
    raw["target"]["url_mode"] = "virtual-hosted"
    assert url_refresher(from_dict(raw), deliverer, ledger) is None  # type: ignore[arg-type]
