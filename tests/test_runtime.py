"""Starting and stopping a pool: configuration sources, shutdown, and no actor left behind."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pykka
import pytest

import actorpool
from actorpool.config import Config
from actorpool.errors import ConfigError, PoolStopped
from actorpool.messages import Execute, ListContainers, Ping, SubscribeLogs

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
        assert pool.config.pool.socket_path == sandbox.url
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
    assert b'docker_operations_total{operation="ping",outcome="ok"}' in text_a
    assert b'operation="ping"' not in text_b
