"""The service's view of delivery: a deliberate wait (Retry-After pause, open circuit, backoff)
is not a wedge, so the watchdog keeps pinging; an open circuit makes /readyz false."""

from __future__ import annotations

from dataclasses import dataclass, field

from daemon.core.config import from_dict
from daemon.service.runner import Service
from daemon.sinks.endpoint import DeliveryStats
from workers.limits import CircuitState


@dataclass
class FakeEndpoint:
    pause: float = 0.0

    def paused_for(self) -> float:
        return self.pause


@dataclass
class FakeDeliverer:
    stats: DeliveryStats = field(default_factory=lambda: DeliveryStats(sink="http"))
    endpoint: FakeEndpoint = field(default_factory=FakeEndpoint)
    state: CircuitState = CircuitState.CLOSED

    def circuit(self) -> CircuitState:
        return self.state


def service() -> Service:
    return Service(from_dict({"source": {"type": "spool", "path": "."}}), None, once=False)


class TestDeliberateWaits:
    def test_a_retry_after_pause_counts_as_progress(self) -> None:
        """While the endpoint is paused by Retry-After, a busy deliver stage never looks wedged."""
        svc, d = service(), FakeDeliverer()
        stage = svc.monitor.stage("deliver")
        stage.busy = True
        d.endpoint.pause = 120.0
        for t in range(0, 600, 30):  # ten minutes of ticks, far past stall_after
            svc._observe_delivery(d)
            assert svc.monitor.check(float(t)).ok

    def test_a_platform_job_still_running_counts_as_progress(self) -> None:
        """Polls answered "still running" (an Encord job) keep a long-busy deliver stage alive."""
        svc, d = service(), FakeDeliverer()
        stage = svc.monitor.stage("deliver")
        stage.busy = True
        for t in range(0, 600, 30):
            d.stats.platform_waits += 1
            svc._observe_delivery(d)
            assert svc.monitor.check(float(t)).ok

    def test_a_busy_stage_with_no_pause_and_no_retries_is_a_wedge(self) -> None:
        """Without a deliberate wait the same stage is reported wedged after stall_after."""
        svc, d = service(), FakeDeliverer()
        stage = svc.monitor.stage("deliver")
        stage.busy = True
        svc._observe_delivery(d)
        assert svc.monitor.check(0.0).ok
        svc._observe_delivery(d)
        assert not svc.monitor.check(svc.monitor.stall_after + 1).ok

    def test_an_open_circuit_makes_the_daemon_not_ready(self) -> None:
        """An open delivery circuit is a readiness problem and a metric; closing it clears both."""
        svc, d = service(), FakeDeliverer(state=CircuitState.OPEN)
        svc._observe_delivery(d)
        assert "circuit open: http" in svc.readiness.problems() and svc.metrics.circuits["http"] is True
        d.state = CircuitState.CLOSED
        svc._observe_delivery(d)
        assert "circuit open: http" not in svc.readiness.problems() and svc.metrics.circuits["http"] is False
