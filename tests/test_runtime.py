"""Starting and stopping a pool: configuration sources, shutdown, and no actor left behind."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import pykka
import pytest

import actorpool
from actorpool.config import Config
from actorpool.errors import ActorPoolError, ConfigError, FanOutError, PoolStopped
from actorpool.messages import Execute, ListContainers, Ping, SubscribeLogs
from actorpool.testing.sandbox import IMAGE, Sandbox
from actorpool.transport.endpoint import endpoint_for

from helpers import wait_until

MakeConfig = Callable[..., Config]


class Sink(pykka.ThreadingActor):
    def __init__(self) -> None:
        super().__init__()
        self.got: list[Any] = []

    def on_receive(self, message: Any) -> Any:
        if message == "get":
            return list(self.got)
        self.got.append(message)
        return None


def actor_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if "Actor" in t.name]


def test_start_with_none_uses_docker_host(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", sandbox.url)
    with actorpool.start() as pool:
        assert endpoint_for(pool.config).url == sandbox.url
        assert endpoint_for(pool.config).source == "from DOCKER_HOST"
        assert pool.router.ask(Ping()) is True


def test_start_with_a_yaml_path(sandbox: Any, tmp_path: Any) -> None:
    path = tmp_path / "pool.yaml"
    path.write_text(
        f"docker:\n  pool:\n    socket_path: {sandbox.url}\n    pool_size: 2\n"
        "    min_pool_size: 1\n  monitoring:\n    enabled: false\n"
    )
    with actorpool.start(path) as pool:
        assert pool.status().size == 2


def test_start_rejects_what_is_not_a_config() -> None:
    with pytest.raises(ConfigError, match="takes a Config, a path or None"):
        actorpool.start(42)  # type: ignore[arg-type]


def test_stop_fails_waiting_calls_and_leaves_no_actor_thread(make_config: MakeConfig) -> None:
    before = set(actor_threads())
    config = make_config(pool={"min_pool_size": 1, "initial_pool_size": 1, "max_pool_size": 1})
    pool = actorpool.start(config)
    gate = threading.Event()
    running = pool.router.ask(Execute(lambda _c: gate.wait(3), timeout=10), block=False)
    wait_until(lambda: pool.status().connections[0].in_use, timeout=5)
    queued = [pool.router.ask(Ping(timeout=10), block=False) for _ in range(3)]
    stopper = threading.Thread(target=pool.stop)
    stopper.start()
    for fut in queued:
        with pytest.raises(PoolStopped):
            fut.get(timeout=5)
    with pytest.raises(PoolStopped):
        running.get(timeout=5)
    gate.set()
    stopper.join(15)
    assert not stopper.is_alive()
    wait_until(lambda: set(actor_threads()) <= before, timeout=10)
    assert not any(t.name == "actorpool-scheduler" for t in threading.enumerate())
    with pytest.raises(PoolStopped, match="start a new one"):
        pool.router.ask(Ping())
    pool.stop()  # idempotent


def test_status_counts_streams(make_config: MakeConfig, make_container: Callable[..., str]) -> None:
    cid = make_container("sh -c 'while true; do echo hi; sleep 1; done'")
    sink = Sink.start()
    try:
        with actorpool.start(make_config()) as pool:
            assert pool.status().streams == 0
            sub = pool.router.ask(SubscribeLogs(cid, subscriber=sink))
            assert sub.id
            assert pool.status().streams == 1
            assert isinstance(pool.router.ask(ListContainers()), list)
    finally:
        sink.stop()


def test_an_embedded_pool_opens_no_port_unless_listen_is_set(make_config: MakeConfig) -> None:
    import threading

    with actorpool.start(make_config(monitoring={"enabled": True})) as pool:
        assert pool.router.ask(Ping()) is True
        assert pool.metrics_address is None
        assert not [t for t in threading.enumerate() if t.name.startswith("actorpool-metrics")]
        assert "docker_pool_build_info" in pool.metrics.render()  # still counted, just not served


def test_metrics_endpoint_serves_the_pools_own_registry(make_config: MakeConfig) -> None:
    import urllib.request

    config = make_config(monitoring={"enabled": True, "listen": "127.0.0.1:0"})
    with actorpool.start(config) as a, actorpool.start(config) as b:
        assert a.router.ask(Ping()) is True
        time.sleep(0.1)
        addr_a, addr_b = a.metrics_address, b.metrics_address
        assert addr_a is not None
        assert addr_b is not None
        assert addr_a != addr_b
        text_a = urllib.request.urlopen(f"http://{addr_a[0]}:{addr_a[1]}/metrics", timeout=5).read()
        text_b = urllib.request.urlopen(f"http://{addr_b[0]}:{addr_b[1]}/metrics", timeout=5).read()
    assert b'docker_operations_total{endpoint="default",operation="ping",outcome="ok"}' in text_a
    assert b'operation="ping"' not in text_b


# --- several endpoints: one frozen, one restarted ------------------------------------------


def _latencies(pool: actorpool.Pool, endpoints: list[str], seconds: float) -> list[float]:
    """Time ``ListContainers`` round-robin over ``endpoints`` for ``seconds``; all must succeed."""
    took: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for name in endpoints:
            began = time.monotonic()
            assert len(pool.router.ask(ListContainers(endpoint=name, timeout=10))) == 1
            took.append(time.monotonic() - began)
    return took


def _answers(pool: actorpool.Pool, name: str) -> bool:
    try:
        return pool.router.ask(Ping(endpoint=name, timeout=2)) is True
    except ActorPoolError:
        return False


def test_a_frozen_and_a_restarted_daemon_never_slow_the_other_endpoints(
    private_sandboxes: Callable[[int], list[Sandbox]], make_config: MakeConfig
) -> None:
    daemons = private_sandboxes(4)
    names = [f"d{i}" for i in range(4)]
    for daemon in daemons:
        client = daemon.client()
        try:
            cid = client.create_container(
                IMAGE, ["sleep", "600"], host_config={"NetworkMode": "none"}
            )
            client.start(cid["Id"])
        finally:
            client.close()
    config = make_config(endpoints=dict(zip(names, daemons, strict=True)))
    with actorpool.start(config) as pool:
        assert pool.endpoints == tuple(names)
        baseline = _latencies(pool, ["d1", "d2", "d3"], 2.0)

        # d0 frozen: callers pile up on it while the others are timed.
        daemons[0].pause()
        try:
            stuck = [
                pool.router.ask(ListContainers(endpoint="d0", timeout=6), block=False)
                for _ in range(8)
            ]
            during = _latencies(pool, ["d1", "d2", "d3"], 2.0)
            began = time.monotonic()
            with pytest.raises(FanOutError) as info:
                pool.router.ask(ListContainers(timeout=1.5))
            fan_out_took = time.monotonic() - began
            for future in stuck:
                with pytest.raises(ActorPoolError):
                    future.get(timeout=10)
        finally:
            daemons[0].resume()
        assert set(info.value.failures) == {"d0"}
        assert sorted(c["Endpoint"] for c in info.value.partial) == ["d1", "d2", "d3"]
        assert fan_out_took < 1.5 + 1.0  # its deadline, and slack for a loaded machine
        # Their latency does not change: a coupled pool would show the frozen daemon's 6 s.
        assert max(during) < 3.0, max(during)
        assert statistics.median(during) < 3 * statistics.median(baseline) + 0.1
        wait_until(lambda: _answers(pool, "d0"), timeout=30, message="d0 answers after SIGCONT")

        # d1 restarted while the others keep answering, without one error.
        timed: list[float] = []
        errors: list[BaseException] = []
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                try:
                    timed.extend(_latencies(pool, ["d0", "d2", "d3"], 0.2))
                except BaseException as exc:
                    errors.append(exc)
                    return

        worker = threading.Thread(target=load)
        worker.start()
        try:
            daemons[1].restart()
            wait_until(lambda: _answers(pool, "d1"), timeout=30, message="d1 answers again")
        finally:
            stop.set()
            worker.join(30)
        assert errors == []
        assert timed
        assert max(timed) < 3.0, max(timed)
        assert len(pool.router.ask(ListContainers(endpoint="d1"))) == 1  # live-restore kept it
        for name in ("d0", "d2", "d3"):
            assert pool.status(endpoint=name).restarts == 0
        assert pool.router.ask(Ping()) == dict.fromkeys(names, True)
