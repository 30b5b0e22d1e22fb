"""Health checks, recovery and restarts, against a private daemon we pause, kill and restart."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import actorpool
from actorpool.config import Config
from actorpool.errors import (
    ActorPoolError,
    NoHealthyConnections,
    RequestTimeout,
)
from actorpool.messages import Execute, ListContainers, Ping, PoolStatus
from actorpool.runtime import Pool
from actorpool.testing.faultproxy import FaultProxy
from actorpool.testing.sandbox import Sandbox

from helpers import wait_until

MakeConfig = Callable[..., Config]

FAST_HEALTH = {
    "health_check_interval": 0.3,
    "health_check_timeout": 0.25,
    "unhealthy_threshold": 2,
    "recovery_check_interval": 1.0,
    "initial_retry_delay": 0.05,
    "max_retry_delay": 0.2,
}


def status(pool: Pool) -> Any:
    return pool.router.ask(PoolStatus(), timeout=5)


def test_paused_daemon_calls_end_by_deadline_then_the_pool_recovers(
    private_sandbox: Sandbox, make_config: MakeConfig
) -> None:
    config = make_config(private_sandbox, pool={**FAST_HEALTH, "initial_pool_size": 4})
    with actorpool.start(config) as pool:
        assert pool.router.ask(Ping()) is True
        private_sandbox.pause()
        try:
            deadline = 0.8

            def call(_: int) -> tuple[type[BaseException] | None, float]:
                start = time.monotonic()
                try:
                    pool.router.ask(ListContainers(timeout=deadline))
                except ActorPoolError as exc:
                    return type(exc), time.monotonic() - start
                return None, time.monotonic() - start

            with ThreadPoolExecutor(8) as ex:
                outcomes = list(ex.map(call, range(16)))
            for error, took in outcomes:
                assert error in (RequestTimeout, NoHealthyConnections), error
                assert took < deadline + 0.5, f"a call outlived its deadline: {took:.2f}s"
            wait_until(lambda: status(pool).healthy == 0, timeout=10)
            with pytest.raises(NoHealthyConnections, match="4 of 4 unhealthy"):
                pool.router.ask(Ping(timeout=2))
            assert status(pool).degraded
        finally:
            private_sandbox.resume()
        resumed = time.monotonic()
        wait_until(lambda: status(pool).healthy == 4, timeout=10)
        recovered_in = time.monotonic() - resumed
        assert recovered_in <= config.pool.recovery_check_interval + 1.0, recovered_in
        assert pool.router.ask(Ping()) is True
        assert not status(pool).degraded


def test_daemon_killed_and_restarted_calls_succeed_again(
    private_sandbox: Sandbox, make_config: MakeConfig
) -> None:
    config = make_config(private_sandbox, pool=FAST_HEALTH)
    with actorpool.start(config) as pool:
        assert pool.router.ask(Ping()) is True
        private_sandbox.kill()
        with pytest.raises(ActorPoolError):
            pool.router.ask(Ping(timeout=2))
        private_sandbox.start()
        wait_until(lambda: _ping_ok(pool), timeout=15)
        wait_until(lambda: status(pool).healthy == status(pool).size, timeout=10)
        assert pool.router.ask(ListContainers(all=True)) is not None


def _ping_ok(pool: Pool) -> bool:
    try:
        return bool(pool.router.ask(Ping(timeout=1)))
    except ActorPoolError:
        return False


def test_connection_actor_stopped_mid_call_the_call_answers_and_pool_is_back_to_size(
    sandbox: Sandbox, make_config: MakeConfig
) -> None:
    with FaultProxy(sandbox.socket_path) as proxy:
        config = make_config(
            pool={
                **FAST_HEALTH,
                "socket_path": proxy.url,
                "health_check_interval": 30,
                "min_pool_size": 2,
                "initial_pool_size": 2,
            }
        )
        with actorpool.start(config) as pool:
            assert pool.router.ask(Ping()) is True
            proxy.mode = "blackhole"  # the next request hangs in the daemon's (proxy's) hands
            fut = pool.router.ask(ListContainers(timeout=10), block=False)
            wait_until(lambda: any(c.in_use for c in status(pool).connections), timeout=5)
            busy = next(c.id for c in status(pool).connections if c.in_use)
            victim = pool.connections()[busy]
            victim.stop(block=False)  # queued behind the hung call
            proxy.mode = "pass"
            proxy.reset_all()  # the hung call fails with a reset: retried on the other connection
            assert isinstance(fut.get(timeout=10), list)
            wait_until(lambda: not victim.is_alive(), timeout=5)
            wait_until(lambda: pool.connections()[busy] is not victim, timeout=5)
            report = status(pool)
            assert report.size == 2
            assert report.restarts == 1
            assert pool.router.ask(Ping()) is True


def test_a_crashed_connection_actor_is_replaced(sandbox: Sandbox, make_config: MakeConfig) -> None:
    config = make_config(pool={"min_pool_size": 2, "initial_pool_size": 3})
    with actorpool.start(config) as pool:
        victim = pool.connections()["c1"]
        victim.tell("not a message it knows")  # an error in a tell() kills a Pykka actor
        wait_until(lambda: not victim.is_alive(), timeout=5)
        wait_until(lambda: pool.connections()["c1"].is_alive(), timeout=5)
        report = status(pool)
        assert report.size == 3
        assert report.restarts == 1
        restarts = pool.metrics.value("docker_recovery_operations_total", kind="restart")
        assert restarts == 1


def test_restart_intensity_is_bounded_and_the_pool_reports_degraded(
    sandbox: Sandbox, make_config: MakeConfig
) -> None:
    config = make_config(
        pool={"min_pool_size": 1, "initial_pool_size": 3, "max_restarts": 2, "restart_window": 60}
    )
    with actorpool.start(config) as pool:
        for _ in range(3):
            ref = pool.connections()["c0"]
            ref.tell("crash")
            wait_until(lambda ref=ref: not ref.is_alive(), timeout=5)
            time.sleep(0.2)
        wait_until(lambda: status(pool).degraded, timeout=5)
        report = status(pool)
        assert report.restarts == 2
        assert report.size == 2, "the third crash is not restarted within the window"
        assert pool.router.ask(Ping()) is True, "the rest of the pool still serves"


def test_a_busy_connection_is_not_probed_behind_its_call(
    sandbox: Sandbox, make_config: MakeConfig
) -> None:
    config = make_config(
        pool={**FAST_HEALTH, "min_pool_size": 1, "initial_pool_size": 1, "max_pool_size": 1}
    )
    gate = threading.Event()
    with actorpool.start(config) as pool:
        fut = pool.router.ask(Execute(lambda _c: gate.wait(5), timeout=10), block=False)
        time.sleep(1.5)  # several health-check intervals while the call runs
        report = status(pool)
        assert report.connections[0].healthy
        assert report.connections[0].consecutive_failures == 0
        gate.set()
        assert fut.get(timeout=5) is True
        checks = pool.metrics.value("docker_health_check_duration_seconds_count")
        wait_until(
            lambda: (
                (pool.metrics.value("docker_health_check_duration_seconds_count") or 0)
                > (checks or 0)
            ),
            timeout=5,
        )
