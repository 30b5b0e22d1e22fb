"""Weighted health: scores, the failure predictor, and alerts from a real, misbehaving daemon."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pykka
import pytest

import actorpool
from actorpool.config import Config, HealthConfig
from actorpool.errors import ActorPoolError
from actorpool.messages import HealthAlert, Ping, PoolStatus
from actorpool.pool.health import CheckResult, HealthTracker, default_checks
from actorpool.testing.faultproxy import FaultProxy
from actorpool.testing.sandbox import Sandbox

from helpers import wait_until

MakeConfig = Callable[..., Config]


def ok(name: str = "ping", weight: float = 1.0) -> CheckResult:
    return CheckResult(name, weight, True, 0.001)


def bad(name: str = "ping", weight: float = 1.0) -> CheckResult:
    return CheckResult(name, weight, False, 0.001, "refused")


def tracker(**kw: Any) -> HealthTracker:
    return HealthTracker(HealthConfig(**{"trend_window": 4, **kw}), threshold=2)


def test_score_is_the_weighted_share_of_passing_checks() -> None:
    t = tracker()
    t.round((ok("ping", 1.0), bad("list_latency", 0.5), ok("events", 0.5)), 0.01)
    assert t.score == pytest.approx(0.75)
    assert t.state == "degrading"
    assert t.failures == 0, "a round scoring 0.5 or more is not a failure"


def test_unhealthy_after_threshold_failing_rounds_then_recovers_on_a_passing_one() -> None:
    t = tracker()
    assert t.round((bad(),), 0.01) == "degrading"
    assert t.round((bad(),), 0.01) == "unhealthy"
    assert t.score == 0.0
    assert t.call_succeeded() == "unhealthy", "only a passing round brings it back"
    assert t.round((ok(),), 0.01) == "healthy"


def test_predictor_flags_rising_latency_before_anything_fails() -> None:
    t = tracker(trend_ratio=2.0, trend_floor=0.005)
    for latency in (0.01, 0.01):
        assert t.round((ok(),), latency) == "healthy"
    t.round((ok(),), 0.03)
    assert t.round((ok(),), 0.04) == "degrading"
    assert "latency rising" in t.reason
    for _ in range(4):
        t.round((ok(),), 0.01)
    assert t.state == "healthy"


def test_latencies_under_the_floor_never_count_as_degrading() -> None:
    t = tracker(trend_floor=0.02)
    for latency in (0.001, 0.001, 0.009, 0.01):
        t.round((ok(),), latency)
    assert t.state == "healthy"


def test_weight_zero_leaves_a_check_out() -> None:
    names = [c.name for c in default_checks(HealthConfig(events_weight=0.0))]
    assert names == ["ping", "list_latency"]


class Recorder(pykka.ThreadingActor):
    def __init__(self) -> None:
        super().__init__()
        self.alerts: list[HealthAlert] = []

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, HealthAlert):
            self.alerts.append(message)
            return None
        return list(self.alerts)


@pytest.fixture
def recorder() -> Iterator[pykka.ActorRef[Any]]:
    ref = Recorder.start()
    yield ref
    ref.stop()


def seq(ref: pykka.ActorRef[Any], kind: str) -> list[str]:
    return [a.new for a in ref.ask("get") if a.kind == kind]


def one_slot(proxy: FaultProxy, **pool: Any) -> dict[str, Any]:
    return {
        "socket_path": proxy.url,
        "min_pool_size": 1,
        "initial_pool_size": 1,
        "max_pool_size": 1,
        "health_check_interval": 0.1,
        "health_check_timeout": 0.5,
        "unhealthy_threshold": 2,
        "recovery_check_interval": 0.5,
        "max_retries": 0,
        **pool,
    }


def test_a_slowing_daemon_is_flagged_degrading_before_the_breaker_opens(
    sandbox: Sandbox, make_config: MakeConfig, recorder: pykka.ActorRef[Any]
) -> None:
    with FaultProxy(sandbox.socket_path) as proxy:
        config = make_config(
            pool=one_slot(proxy, unhealthy_threshold=50),
            health={"trend_window": 6, "trend_ratio": 2.0, "trend_floor": 0.02},
            circuit_breaker={"failure_threshold": 3, "timeout": 30},
        )
        with actorpool.start(config, alerts=recorder) as pool:
            time.sleep(1.0)  # a window of fast rounds
            proxy.latency = 0.05  # the daemon slows down, every call still succeeds
            wait_until(lambda: "degrading" in seq(recorder, "connection"), timeout=10)
            assert pool.router.ask(PoolStatus()).connections[0].breaker == "closed"
            assert seq(recorder, "breaker") == []
            assert pool.router.ask(Ping(timeout=5)) is True
            proxy.latency = 1.0  # now too slow for the callers' deadlines: calls fail

            def fail_once() -> bool:
                # Three failures on the connection open the breaker; under load a call can
                # also expire queued behind a health check, which does not count: call again.
                with pytest.raises(ActorPoolError):
                    pool.router.ask(Ping(timeout=0.3))
                return "opened" in seq(recorder, "breaker")

            wait_until(fail_once, timeout=20, message="the breaker to open")
            proxy.latency = 0.0
        alerts = recorder.ask("get")
        first_degrading = next(
            i for i, a in enumerate(alerts) if a.kind == "connection" and a.new == "degrading"
        )
        opened = next(i for i, a in enumerate(alerts) if a.kind == "breaker" and a.new == "opened")
        assert first_degrading < opened
        assert "latency rising" in alerts[first_degrading].detail
        assert alerts[first_degrading].subject == "c0"


def test_alerts_follow_unhealthy_recovered_and_pool_degraded_recovered(
    sandbox: Sandbox, make_config: MakeConfig, recorder: pykka.ActorRef[Any]
) -> None:
    with FaultProxy(sandbox.socket_path) as proxy:
        config = make_config(pool=one_slot(proxy))
        with actorpool.start(config, alerts=recorder) as pool:
            assert pool.router.ask(Ping()) is True
            proxy.mode = "reset"
            proxy.reset_all()
            wait_until(lambda: "unhealthy" in seq(recorder, "connection"), timeout=10)
            wait_until(lambda: pool.router.ask(PoolStatus()).degraded, timeout=5)
            proxy.mode = "pass"
            wait_until(lambda: "recovered" in seq(recorder, "connection"), timeout=10)
            wait_until(lambda: not pool.router.ask(PoolStatus()).degraded, timeout=5)
            assert pool.router.ask(Ping()) is True
        conn = seq(recorder, "connection")
        assert conn.index("unhealthy") < conn.index("recovered")
        assert seq(recorder, "pool") == ["degraded", "recovered"]
        report_alerts = recorder.ask("get")
        assert all(a.time > 0 for a in report_alerts)


def test_a_callable_alert_target_and_custom_checks(
    make_config: MakeConfig,
) -> None:
    got: list[HealthAlert] = []

    class AlwaysFails:
        name = "custom"
        weight = 1.0

        def run(self, client: Any, timeout: float) -> None:
            raise RuntimeError("custom check says no")

    config = make_config(pool={"min_pool_size": 1, "initial_pool_size": 1, "max_pool_size": 1})
    with actorpool.start(config, health_checks=[AlwaysFails()], alerts=got.append) as pool:
        wait_until(lambda: any(a.new == "unhealthy" for a in got), timeout=10)
        status = pool.router.ask(PoolStatus())
        assert status.connections[0].state == "unhealthy"
        assert "custom check says no" in next(a.detail for a in got if a.new == "unhealthy")
