"""The live metrics endpoint of a pool doing real work, checked by promtool."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pykka
import pytest

import actorpool
from actorpool.config import Config
from actorpool.errors import ActorPoolError, NotFound
from actorpool.messages import InspectContainer, ListContainers, Ping, SubscribeLogs
from actorpool.testing.faultproxy import FaultProxy
from actorpool.testing.sandbox import Sandbox

from helpers import wait_until
from promtool import promtool_check, scrape

MakeConfig = Callable[..., Config]

SEED_NAMES = [
    "docker_pool_connections_active",
    "docker_pool_connections_total",
    "docker_pool_connections_healthy",
    "docker_pool_utilization",
    "docker_connection_duration_seconds",
    "docker_health_check_duration_seconds",
    "docker_operation_latency_seconds",
    "docker_pool_wait_duration_seconds",
    "docker_connection_errors_total",
    "docker_health_check_failures_total",
    "docker_recovery_operations_total",
    "docker_circuit_breaker_state",
]


class Sink(pykka.ThreadingActor):
    def on_receive(self, message: Any) -> None:
        return None


def value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        sample_labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(sample_labels.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_live_endpoint_passes_promtool_and_counts_the_work_done(
    sandbox: Sandbox, make_config: MakeConfig, make_container: Callable[..., str]
) -> None:
    cid = make_container("sh -c 'while true; do echo tick; sleep 0.2; done'")
    with FaultProxy(sandbox.socket_path) as proxy:
        config = make_config(
            pool={
                "socket_path": proxy.url,
                "max_retries": 1,
                "initial_retry_delay": 0.01,
                "max_retry_delay": 0.02,
                "unhealthy_threshold": 50,
            },
            monitoring={"enabled": True, "listen": "127.0.0.1:0"},
            circuit_breaker={"enabled": False},
        )
        sink = Sink.start()
        try:
            with actorpool.start(config) as pool:
                assert pool.metrics_address is not None
                for _ in range(25):
                    assert pool.router.ask(Ping()) is True
                for _ in range(5):
                    assert isinstance(pool.router.ask(ListContainers()), list)
                with pytest.raises(NotFound):
                    pool.router.ask(InspectContainer("no-such-container"))
                pool.router.ask(SubscribeLogs(cid, subscriber=sink))
                proxy.mode = "status503"  # injected faults: the daemon "fails" with 503
                proxy.reset_all()  # kept-alive connections reconnect, into the 503s
                for _ in range(3):
                    with pytest.raises(ActorPoolError):
                        pool.router.ask(Ping(timeout=5))
                proxy.mode = "pass"
                wait_until(
                    lambda: value(scrape(pool.metrics_address), "docker_stream_lines_total") > 0,
                    timeout=10,
                )
                text = scrape(pool.metrics_address)
        finally:
            sink.stop()
    rc, output = promtool_check(text)
    assert rc == 0, output
    for name in SEED_NAMES:
        assert re.search(rf"^# TYPE {name} ", text, re.M), f"{name} missing"
    ok_pings = value(text, "docker_operations_total", operation="ping", outcome="ok")
    assert ok_pings >= 25
    assert value(text, "docker_operations_total", operation="list_containers", outcome="ok") == 5
    assert (
        value(text, "docker_operations_total", operation="inspect_container", outcome="NotFound")
        == 1
    )
    # 3 failed requests, each tried twice: every 503 is counted as a connection error.
    assert value(text, "docker_connection_errors_total") >= 6
    assert value(text, "docker_request_retries_total", operation="ping") >= 3
    assert value(text, "docker_pool_connections_total") >= 4
    assert value(text, "docker_streams_active") >= 1
    assert value(text, "docker_operation_latency_seconds_count", operation="ping") >= 25
