"""The elastic pool: the load monitor alone, then growing, shrinking and recycling for real."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import actorpool
from actorpool.config import Config
from actorpool.messages import ContainerStats, Execute, ListContainers, PoolStatus
from actorpool.pool.scaling import LoadMonitor

from helpers import wait_until

MakeConfig = Callable[..., Config]


def monitor(**kw: Any) -> LoadMonitor:
    args = {"threshold": 0.75, "window": 1.0, "idle_window": 2.0, "growth": 2.0}
    args |= {"min_size": 2, "max_size": 8} | kw
    return LoadMonitor(**args)


def drive(m: LoadMonitor, size: int, load: float, start: float, seconds: float) -> list[Any]:
    """Hold ``load`` for ``seconds`` with ticks every 0.1 s; apply decisions; return them."""
    decisions = []
    t = start
    while t < start + seconds - 1e-9:
        m.update(t, busy=round(load * size), waiting=0, size=size)
        t += 0.1
        d = m.tick(t, size)
        if d is not None:
            decisions.append(d)
            size = d.to_size
    return decisions


def test_grows_only_after_a_whole_window_of_high_load() -> None:
    m = monitor()
    assert drive(m, 2, 1.0, 0.0, 0.9) == []
    (d,) = drive(m, 2, 1.0, 0.9, 0.2)
    assert (d.direction, d.from_size, d.to_size) == ("up", 2, 4)
    assert "load" in d.reason


def test_a_short_burst_does_not_grow_the_pool() -> None:
    m = monitor()
    drive(m, 2, 0.2, 0.0, 3.0)
    assert drive(m, 2, 1.0, 3.0, 0.5) == []
    assert drive(m, 2, 0.2, 3.5, 3.0) == []


def test_steady_load_between_the_thresholds_never_resizes() -> None:
    m = monitor()
    # 0.5 is below the grow threshold and above the shrink threshold (0.375): hysteresis.
    assert drive(m, 4, 0.5, 0.0, 60.0) == []


def test_steady_high_load_grows_to_max_and_stays_without_flapping() -> None:
    m = monitor()
    decisions = drive(m, 2, 1.0, 0.0, 30.0)
    sizes = [d.to_size for d in decisions]
    assert sizes == [4, 8]
    assert all(d.direction == "up" for d in decisions)


def test_shrinks_step_by_step_to_min_after_idle_window() -> None:
    m = monitor()
    decisions = drive(m, 8, 0.0, 0.0, 20.0)
    assert [d.to_size for d in decisions] == [4, 2]
    gaps = [b.time - a.time for a, b in itertools.pairwise(decisions)]
    assert all(g >= 2.0 - 1e-6 for g in gaps), "each step waits a whole idle window"


@pytest.mark.slow  # a load run: scripts/test.sh --quick leaves it out
def test_load_ramp_grows_to_max_and_returns_to_min_without_flapping(
    make_config: MakeConfig, make_container: Callable[..., str]
) -> None:
    cid = make_container("sleep 300")
    config = make_config(
        pool={
            "min_pool_size": 2,
            "initial_pool_size": 2,
            "max_pool_size": 8,
            "pool_growth_factor": 2.0,
            "load_window": 0.6,
            "idle_timeout": 1.2,
            "health_check_interval": 30,
        }
    )
    trace: list[int] = []
    stop_trace = threading.Event()
    with actorpool.start(config) as pool:

        def sample() -> None:
            while not stop_trace.is_set():
                trace.append(pool.router.ask(PoolStatus(), timeout=5).size)
                time.sleep(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:

            def caller(stop: threading.Event) -> None:
                while not stop.is_set():
                    pool.router.ask(ListContainers(all=True), timeout=30)

            def run_callers(n: int, seconds: float) -> None:
                stop = threading.Event()
                with ThreadPoolExecutor(n) as ex:
                    for _ in range(n):
                        ex.submit(caller, stop)
                    time.sleep(seconds)
                    stop.set()

            run_callers(1, 1.5)
            run_callers(32, 4.0)
            assert max(trace) == 8, trace
            run_callers(1, 6.0)
            wait_until(lambda: pool.router.ask(PoolStatus()).size == 2, timeout=10)
        finally:
            stop_trace.set()
            sampler.join(10)
        report = pool.router.ask(PoolStatus())
        assert pool.router.ask(ContainerStats(cid))["id"] == cid
    assert all(2 <= s <= 8 for s in trace), trace
    # No flapping: the size rises to its peak and then only falls.
    peak = trace.index(max(trace))
    assert trace[: peak + 1] == sorted(trace[: peak + 1]), trace
    assert trace[peak:] == sorted(trace[peak:], reverse=True), trace
    ups = [d for d in report.scaling if d.direction == "up"]
    downs = [d for d in report.scaling if d.direction == "down"]
    assert ups
    assert downs
    assert all("load" in d.reason for d in report.scaling)


@pytest.mark.slow  # a load run: scripts/test.sh --quick leaves it out
def test_recycling_under_load_loses_no_call(make_config: MakeConfig) -> None:
    config = make_config(
        pool={
            "min_pool_size": 3,
            "initial_pool_size": 3,
            "max_pool_size": 3,
            "max_connection_age": 0.4,
            "connection_lifetime": 0.8,
            "health_check_interval": 30,
        }
    )
    with actorpool.start(config) as pool:
        errors: list[BaseException] = []
        done = 0
        lock = threading.Lock()

        made = 0
        until = time.monotonic() + 3.0  # several lifetimes of every connection

        def caller(_: int) -> None:
            nonlocal done, made
            while time.monotonic() < until:
                with lock:
                    made += 1
                try:
                    assert isinstance(pool.router.ask(ListContainers(all=True), timeout=20), list)
                    with lock:
                        done += 1
                except BaseException as exc:
                    errors.append(exc)
                time.sleep(0.01)

        with ThreadPoolExecutor(6) as ex:
            list(ex.map(caller, range(6)))
        assert errors == []
        assert done == made
        assert done > 100
        recycled = pool.metrics.value("docker_recovery_operations_total", kind="recycle")
        assert recycled is not None
        assert recycled >= 3
        # Connections keep being recycled (one may be on its way back right now): the pool
        # returns to its size, and none is older than its lifetime allows.
        wait_until(lambda: pool.router.ask(PoolStatus()).size == 3, 5)
        assert all(c.age < 2.0 for c in pool.router.ask(PoolStatus()).connections)


def test_an_idle_connection_above_min_is_closed_but_a_busy_one_is_not(
    make_config: MakeConfig,
) -> None:
    config = make_config(
        pool={
            "min_pool_size": 1,
            "initial_pool_size": 3,
            "max_pool_size": 3,
            "idle_timeout": 0.5,
            "load_window": 5,
            "health_check_interval": 30,
        }
    )
    gate = threading.Event()
    with actorpool.start(config) as pool:
        slow = pool.router.ask(Execute(lambda _c: gate.wait(10), timeout=15), block=False)
        wait_until(lambda: pool.router.ask(PoolStatus()).size == 1, timeout=10)
        report = pool.router.ask(PoolStatus())
        assert report.connections[0].in_use, "the busy connection is the one kept"
        gate.set()
        assert slow.get(timeout=10) is True
