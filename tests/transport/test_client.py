"""Clients built from the configuration: TCP keep-alive on tcp:// hosts, against a real daemon."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest

import actorpool
from actorpool.config import Config
from actorpool.messages import Ping
from actorpool.testing.faultproxy import FaultProxy
from actorpool.testing.sandbox import Sandbox
from actorpool.transport.client import NEWEST_API_VERSION, make_client, negotiate_api_version

from helpers import wait_until

MakeConfig = Callable[..., Config]


def client_sockets(client: docker.APIClient) -> list[socket.socket]:
    """The sockets the client's connection pools hold (idle between requests)."""
    pools = client.get_adapter(client.base_url).poolmanager.pools
    found = []
    for key in pools.keys():  # noqa: SIM118 (the container refuses plain iteration)
        for conn in list(pools[key].pool.queue):
            if conn is not None and conn.sock is not None:
                found.append(conn.sock)
    return found


def keepalive(sock: socket.socket) -> tuple[int, int]:
    return (
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
        sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
    )


def test_tcp_sockets_get_keepalive_after_the_configured_idle_time(
    sandbox: Sandbox, make_config: MakeConfig
) -> None:
    with FaultProxy(sandbox.socket_path, tcp=True) as proxy:
        config = make_config(proxy.url, performance={"tcp_keep_alive": "1m17s"})
        client = make_client(config)
        try:
            assert client.ping() is True
            assert client.containers(all=True) is not None
            sockets = client_sockets(client)
            assert sockets, "the client kept no socket to the daemon"
            assert {keepalive(s) for s in sockets} == {(1, 77)}
            # The sockets Nagle would slow down stay as urllib3 makes them.
            assert all(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for s in sockets)
        finally:
            client.close()


def keepalive_timers(port: int) -> list[float]:
    """Seconds left on the keep-alive timer of each established socket to loopback ``port``.

    From the kernel's own table (/proc/net/tcp): timer kind 2 is keep-alive; a
    socket without keep-alive has no timer while idle (kind 0).
    """
    timers = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote_port = int(fields[2].split(":")[1], 16)
        kind, when = fields[5].split(":")
        if remote_port == port and fields[3] == "01":  # ESTABLISHED
            timers.append(int(when, 16) / 100 if kind == "02" else -1.0)
    return timers


def test_a_pool_over_tcp_arms_keepalive_on_its_sockets(
    sandbox: Sandbox, make_config: MakeConfig
) -> None:
    with FaultProxy(sandbox.socket_path, tcp=True) as proxy:
        assert proxy.port is not None
        config = make_config(
            proxy.url, pool={"health_check_interval": 60}, performance={"tcp_keep_alive": 30}
        )
        with actorpool.start(config) as pool:
            size = config.pool.initial_pool_size
            # One request per connection (the least used goes first), so each holds a socket.
            for _ in range(size):
                assert pool.router.ask(Ping(), timeout=10) is True
            port = proxy.port

            def all_armed() -> list[float]:
                # A socket with a request in flight shows its retransmit timer instead.
                timers = keepalive_timers(port)
                return timers if len(timers) >= size and all(0 <= t <= 30 for t in timers) else []

            wait_until(all_armed, 10, message="every pool socket with keep-alive armed")


def test_unix_sockets_are_left_alone(sandbox: Sandbox, make_config: MakeConfig) -> None:
    client = make_client(make_config(sandbox))
    try:
        assert client.ping() is True
        pool_kw: dict[str, Any] = client.get_adapter(client.base_url).poolmanager.connection_pool_kw
        assert "socket_options" not in pool_kw
    finally:
        client.close()


def test_tls_clients_get_keepalive_too(make_config: MakeConfig) -> None:
    # docker-py mounts its own TLS adapter; it must carry the same options (no connection made).
    config = make_config(
        "tcp://127.0.0.1:1",
        api={"version": "1.41", "tls_verify": True},
        performance={"tcp_keep_alive": 9},
    )
    client = make_client(config)
    try:
        assert client.base_url.startswith("https://")
        pool_kw = client.get_adapter(client.base_url).poolmanager.connection_pool_kw
        assert (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1) in pool_kw["socket_options"]
        assert (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 9) in pool_kw["socket_options"]
    finally:
        client.close()


# --------------------------------------------------------------------------- API version


@pytest.mark.parametrize(
    ("server", "chosen"),
    [
        ({"ApiVersion": "1.41", "MinAPIVersion": "1.12"}, "1.41"),  # dockerd 20.10
        ({"ApiVersion": "1.52", "MinAPIVersion": "1.44"}, "1.52"),  # Engine 29
        ({"ApiVersion": "1.60", "MinAPIVersion": "1.44"}, NEWEST_API_VERSION),  # capped
        ({"ApiVersion": "1.70", "MinAPIVersion": "1.60"}, "1.60"),  # never below the floor
        ({"ApiVersion": "1.9", "MinAPIVersion": "1.9"}, "1.9"),  # numeric, not text, order
    ],
)
def test_negotiation_caps_at_the_newest_known_and_respects_the_floor(
    server: dict[str, str], chosen: str
) -> None:
    assert negotiate_api_version(server) == chosen
