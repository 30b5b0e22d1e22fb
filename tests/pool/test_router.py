"""The router against a real daemon: results, errors, queueing, retries, breakers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from pykka import Timeout

import actorpool
from actorpool.config import Config
from actorpool.errors import (
    BadResponse,
    NotFound,
    PoolExhausted,
    RequestTimeout,
    RetriesExhausted,
    UnknownMessage,
)
from actorpool.messages import (
    ContainerStats,
    Execute,
    InspectContainer,
    ListContainers,
    Ping,
    PoolStatus,
    PoolStatusReport,
    Version,
)
from actorpool.runtime import Pool
from actorpool.testing.faultproxy import FaultProxy
from actorpool.testing.sandbox import Sandbox

from helpers import wait_until

MakeConfig = Callable[..., Config]


@pytest.fixture
def pool(make_config: MakeConfig) -> Iterator[Pool]:
    with actorpool.start(make_config()) as p:
        yield p


def counter(pool: Pool, name: str, **labels: str) -> float:
    value = pool.metrics.value(name, **labels)
    return value or 0.0


def test_list_containers_matches_what_the_daemon_reports(
    pool: Pool, make_container: Callable[..., str], docker_api: Any
) -> None:
    ids = {make_container("sleep 300") for _ in range(3)}
    ids.add(make_container("true", start=False))
    got = pool.router.ask(ListContainers(all=True))
    assert isinstance(got, list)
    assert {c["Id"] for c in got} == {c["Id"] for c in docker_api.containers(all=True)}
    assert ids <= {c["Id"] for c in got}
    running = {c["Id"] for c in pool.router.ask(ListContainers())}
    assert running == {c["Id"] for c in docker_api.containers()}


def test_replies_are_plain_data(pool: Pool, make_container: Callable[..., str]) -> None:
    cid = make_container("sleep 300")
    record = pool.router.ask(InspectContainer(cid))
    assert type(record) is dict
    assert record["Id"] == cid
    assert pool.router.ask(Ping()) is True
    assert "ApiVersion" in pool.router.ask(Version())


def test_unknown_container_is_not_found_without_retry_or_breaker_change(pool: Pool) -> None:
    with pytest.raises(NotFound, match="not found") as info:
        pool.router.ask(InspectContainer("no-such-container"))
    assert info.value.status == 404
    assert counter(pool, "docker_request_retries_total", operation="inspect_container") == 0
    status = pool.router.ask(PoolStatus())
    assert all(c.breaker == "closed" and c.consecutive_failures == 0 for c in status.connections)
    assert all(c.healthy for c in status.connections)


def test_a_wrong_message_gets_a_clear_error_and_the_router_lives(pool: Pool) -> None:
    with pytest.raises(UnknownMessage, match="does not handle str"):
        pool.router.ask("list containers please")
    pool.router.tell(object())  # by tell: must not kill the router either
    assert pool.router.ask(Ping()) is True


def test_non_blocking_ask_gives_a_future_of_the_plain_result(pool: Pool) -> None:
    futures = [pool.router.ask(Ping(), block=False) for _ in range(20)]
    assert [f.get(timeout=10) for f in futures] == [True] * 20


@pytest.mark.slow  # a load run: scripts/test.sh --quick leaves it out
def test_32_threads_times_200_asks_all_correct(
    make_config: MakeConfig, make_container: Callable[..., str]
) -> None:
    cid = make_container("sleep 300")
    with actorpool.start(make_config(pool={"initial_pool_size": 8, "max_pool_size": 8})) as pool:

        def worker(n: int) -> int:
            ok = 0
            for i in range(200):
                if (n + i) % 2:
                    ok += pool.router.ask(InspectContainer(cid))["Id"] == cid
                else:
                    ok += pool.router.ask(Ping()) is True
            return ok

        with ThreadPoolExecutor(32) as ex:
            results = list(ex.map(worker, range(32)))
        assert results == [200] * 32
        status = pool.router.ask(PoolStatus())
        assert sum(c.usage_count for c in status.connections) == 32 * 200
        # Least-used picking spreads the load over every connection.
        assert min(c.usage_count for c in status.connections) > 0


def test_eight_slow_calls_run_at_once_and_the_router_keeps_answering(
    make_config: MakeConfig, make_container: Callable[..., str]
) -> None:
    cids = [make_container("sleep 300") for _ in range(8)]
    config = make_config(pool={"initial_pool_size": 8, "max_pool_size": 8})
    with actorpool.start(config) as pool:
        start = time.monotonic()
        one = pool.router.ask(ContainerStats(cids[0]))  # one stats call: the daemon samples twice
        single = time.monotonic() - start
        assert "cpu_stats" in one

        start = time.monotonic()
        futures = [pool.router.ask(ContainerStats(c), block=False) for c in cids]
        status_latencies = []
        while not all(_done(f) for f in futures):
            t = time.monotonic()
            report = pool.router.ask(PoolStatus(), timeout=2)
            status_latencies.append(time.monotonic() - t)
            assert isinstance(report, PoolStatusReport)
            time.sleep(0.05)
        results = [f.get(timeout=30) for f in futures]
        elapsed = time.monotonic() - start
    assert all("cpu_stats" in r for r in results)
    assert elapsed < single * 2.5 + 0.5, f"8 calls took {elapsed:.2f}s, one took {single:.2f}s"
    assert status_latencies, "the router was never asked while the calls ran"
    assert max(status_latencies) < 0.5


def _done(fut: Any) -> bool:
    try:
        fut.get(timeout=0)
    except Timeout:
        return False
    except Exception:
        return True
    return True


def test_requests_queue_in_fifo_order_bounded_by_max_queue(make_config: MakeConfig) -> None:
    config = make_config(
        pool={"min_pool_size": 1, "initial_pool_size": 1, "max_pool_size": 1, "max_queue": 3}
    )
    order: list[int] = []
    gate = threading.Event()

    def slow(_client: Any) -> str:
        gate.wait(10)
        return "slow"

    with actorpool.start(config) as pool:
        blocker = pool.router.ask(Execute(slow), block=False)
        wait_until(lambda: pool.router.ask(PoolStatus()).connections[0].in_use, timeout=5)
        queued = [
            pool.router.ask(Execute(lambda _c, i=i: order.append(i) or i), block=False)
            for i in range(3)
        ]
        with pytest.raises(PoolExhausted, match="max_queue"):
            pool.router.ask(Ping())
        assert pool.router.ask(PoolStatus()).queue_length == 3
        gate.set()
        assert blocker.get(timeout=10) == "slow"
        assert [f.get(timeout=10) for f in queued] == [0, 1, 2]
        assert order == [0, 1, 2]
        waited = counter(pool, "docker_pool_wait_duration_seconds_count")
        assert waited >= 4


def test_a_request_ends_by_its_deadline(make_config: MakeConfig) -> None:
    config = make_config(pool={"initial_pool_size": 2, "min_pool_size": 1})
    with actorpool.start(config) as pool:
        start = time.monotonic()
        with pytest.raises(RequestTimeout, match="deadline"):
            pool.router.ask(Execute(lambda _c: time.sleep(3), timeout=0.3))
        assert time.monotonic() - start < 1.0
        assert pool.router.ask(Ping()) is True  # the other connection is free


def test_each_request_keeps_its_own_deadline(make_config: MakeConfig) -> None:
    # One timer serves all deadlines: a short deadline behind a long one, then a long one
    # behind an expired one, must each end on time.
    config = make_config(pool={"initial_pool_size": 3, "min_pool_size": 3})
    with actorpool.start(config) as pool:
        start = time.monotonic()
        slow = pool.router.ask(
            Execute(lambda _c: time.sleep(1.0) or "slow", timeout=5), block=False
        )
        short = pool.router.ask(Execute(lambda _c: time.sleep(3), timeout=0.3), block=False)
        with pytest.raises(RequestTimeout, match=r"0\.3s deadline"):
            short.get(timeout=5)
        assert 0.25 < time.monotonic() - start < 0.8
        later = pool.router.ask(Execute(lambda _c: time.sleep(3), timeout=0.4), block=False)
        with pytest.raises(RequestTimeout, match=r"0\.4s deadline"):
            later.get(timeout=5)
        assert slow.get(timeout=5) == "slow"
        assert pool.router.ask(Ping()) is True


def test_ask_timeout_shortens_the_deadline_and_raises_request_timeout(
    make_config: MakeConfig,
) -> None:
    config = make_config(pool={"initial_pool_size": 2, "min_pool_size": 1})
    with actorpool.start(config) as pool:
        start = time.monotonic()
        with pytest.raises(RequestTimeout, match=r"within its 0\.3s deadline") as caught:
            pool.router.ask(Execute(lambda _c: time.sleep(3), timeout=30), timeout=0.3)
        assert time.monotonic() - start < 1.0
        assert isinstance(caught.value, Timeout)  # what Pykka code catches
        # A longer ask timeout does not lengthen the request's own deadline.
        with pytest.raises(Timeout, match=r"within its 0\.3s deadline"):
            pool.router.ask(Execute(lambda _c: time.sleep(3), timeout=0.3), timeout=5)
        assert pool.router.ask(Ping(), timeout=5) is True


def test_callers_timeouts_drop_their_requests_under_a_frozen_daemon(
    private_sandbox: Sandbox, make_config: MakeConfig
) -> None:
    # 4 connections, 8 callers with timeout=1 against a daemon that accepts and never answers:
    # 4 requests hang on connections, 4 wait in the queue. Each caller gets the pool's typed
    # RequestTimeout near 1 s, and the pool lets go of all 8 (queue and connections).
    size, callers, timeout, grace = 4, 8, 1.0, 0.75
    config = make_config(
        private_sandbox,
        pool={
            "initial_pool_size": size,
            "min_pool_size": size,
            "max_pool_size": size,
            "health_check_interval": 60,  # no health check competes for the connections
            "max_retries": 0,
        },
    )
    with actorpool.start(config) as pool:
        assert all(pool.router.ask(Ping(), timeout=10) is True for _ in range(size))
        private_sandbox.pause()
        try:

            def ask() -> tuple[BaseException | None, float]:
                start = time.monotonic()
                try:
                    pool.router.ask(ListContainers(), timeout=timeout)
                except BaseException as error:
                    return error, time.monotonic() - start
                return None, time.monotonic() - start

            with ThreadPoolExecutor(callers) as executor:
                results = list(executor.map(lambda _: ask(), range(callers)))
            for error, took in results:
                # Queued ones hear it from the router's deadline, running ones from their
                # connection's socket timeout (set to what was left of the deadline).
                assert isinstance(error, RequestTimeout), error
                assert str(error).startswith("list_containers: no answer"), error
                assert timeout - 0.05 <= took <= timeout + grace, took
            status: PoolStatusReport = pool.router.ask(PoolStatus())
            assert status.queue_length == 0
            # The hung calls end with their 1 s socket timeout: every connection comes back.
            wait_until(
                lambda: not any(c.in_use for c in pool.router.ask(PoolStatus()).connections),
                timeout=5,
                message="a connection still holds a dropped request",
            )
        finally:
            private_sandbox.resume()
        assert pool.router.ask(Ping(), timeout=10) is True


def test_reset_connections_are_retried_on_other_connections(
    sandbox: Sandbox, make_config: MakeConfig
) -> None:
    with FaultProxy(sandbox.socket_path) as proxy:
        config = make_config(
            pool={
                "socket_path": proxy.url,
                "initial_retry_delay": 0.01,
                "max_retry_delay": 0.05,
                "max_retries": 10,
                # With 40% of connections reset, three failures in a row (the default) now
                # and then mark all four unhealthy at once, and a pool with no healthy
                # connection fails calls fast by design (tested on its own): this test is
                # about retries moving on, so the connections stay healthy here.
                "unhealthy_threshold": 10,
            },
            circuit_breaker={"enabled": False},
        )
        with actorpool.start(config) as pool:
            proxy.reset_probability = 0.4
            results = []
            for i in range(40):
                if i % 4 == 0:
                    proxy.reset_all()  # cut the kept-alive connections: new ones may be reset
                results.append(pool.router.ask(ListContainers(all=True), timeout=10))
            proxy.reset_probability = 0.0
            assert all(isinstance(r, list) for r in results)
            assert counter(pool, "docker_request_retries_total", operation="list_containers") > 0


def test_an_empty_200_is_a_bad_response_never_retried_nor_held_against_the_connection(
    sandbox: Sandbox, make_config: MakeConfig, make_container: Callable[..., str]
) -> None:
    cid = make_container(["sleep", "60"])
    with FaultProxy(sandbox.socket_path) as proxy:
        config = make_config(
            pool={
                "socket_path": proxy.url,
                "min_pool_size": 2,
                "initial_pool_size": 2,
                "max_pool_size": 2,
                "unhealthy_threshold": 1,
                "health_check_interval": 3600,  # no probe: only the calls judge the connections
            },
            circuit_breaker={"failure_threshold": 1},
        )
        with actorpool.start(config) as pool:
            assert pool.router.ask(Ping(), timeout=10) is True
            proxy.mode = "empty200"
            proxy.reset_all()  # the kept-alive connections would still pass through
            # The direct GET path (inspect) and docker-py's own decoding (stats).
            # The message names the request (or the version probe a new client sends first).
            # Tries are counted by the router's retry counter, not by the proxy's connections:
            # docker-py keeps a socket per URL, so one try may open more than one connection.
            for request, what in ((InspectContainer(cid), "GET /"), (ContainerStats(cid), "")):
                with pytest.raises(BadResponse, match=r"answered .*an empty body") as info:
                    pool.router.ask(request, timeout=30)
                assert str(info.value).startswith((what or "container_stats", "GET /version"))
                operation = type(request).operation
                retries = counter(pool, "docker_request_retries_total", operation=operation)
                assert retries == 0, "one try, never retried"
            status = pool.status()
            assert [(c.state, c.breaker, c.consecutive_failures) for c in status.connections] == [
                ("healthy", "closed", 0)
            ] * 2
            proxy.mode = "pass"
            assert pool.router.ask(InspectContainer(cid), timeout=10)["Id"] == cid


def test_retries_exhausted_chains_the_last_cause(sandbox: Sandbox, make_config: MakeConfig) -> None:
    with FaultProxy(sandbox.socket_path) as proxy:
        config = make_config(
            pool={
                "socket_path": proxy.url,
                "initial_retry_delay": 0.01,
                "max_retry_delay": 0.02,
                "max_retries": 2,
                "unhealthy_threshold": 100,
            },
            circuit_breaker={"enabled": False},
        )
        with actorpool.start(config) as pool:
            proxy.mode = "status503"
            start = time.monotonic()
            with pytest.raises(RetriesExhausted, match="failed 3 times") as info:
                pool.router.ask(Ping(), timeout=5)
            assert time.monotonic() - start < 5
            assert "503" in str(info.value.__cause__)
            assert counter(pool, "docker_request_retries_total", operation="ping") == 2


def test_breaker_goes_closed_open_half_open_closed(
    sandbox: Sandbox, make_config: MakeConfig
) -> None:
    with FaultProxy(sandbox.socket_path) as proxy:
        config = make_config(
            pool={
                "socket_path": proxy.url,
                "min_pool_size": 1,
                "initial_pool_size": 1,
                "max_pool_size": 1,
                "max_retries": 0,
                "unhealthy_threshold": 100,
            },
            circuit_breaker={
                "failure_threshold": 3,
                "success_threshold": 2,
                "timeout": 0.5,
                "half_open_max_calls": 1,
            },
        )
        with actorpool.start(config) as pool:

            def breaker() -> str:
                state: str = pool.router.ask(PoolStatus()).connections[0].breaker
                return state

            assert breaker() == "closed"
            proxy.mode = "status503"
            for _ in range(3):
                with pytest.raises(RetriesExhausted):
                    pool.router.ask(Ping())
            assert breaker() == "open"
            from actorpool.errors import NoHealthyConnections

            with pytest.raises(NoHealthyConnections, match="open circuit breaker"):
                pool.router.ask(Ping())
            proxy.mode = "pass"
            time.sleep(0.6)
            assert breaker() == "half_open"
            assert pool.router.ask(Ping()) is True
            assert breaker() == "half_open"
            assert pool.router.ask(Ping()) is True
            assert breaker() == "closed"
            transitions = {
                (f, t): counter(
                    pool, "docker_circuit_breaker_transitions_total", from_state=f, to_state=t
                )
                for f, t in [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
            }
            assert transitions == dict.fromkeys(transitions, 1.0)
