"""Clients for an endpoint, against real daemons: TLS, contexts, keep-alive, the API version."""

from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from urllib3.exceptions import InsecureRequestWarning

import actorpool
from actorpool.config import Config
from actorpool.errors import (
    ApiVersionError,
    DockerUnavailable,
    FanOutError,
    RequestTimeout,
    TLSError,
)
from actorpool.messages import ListContainers, Ping, Version
from actorpool.testing.contexts import docker_context_create, docker_context_use
from actorpool.testing.faultproxy import FaultProxy
from actorpool.testing.pki import Pki, TlsDaemon
from actorpool.testing.sandbox import Sandbox
from actorpool.testing.sshd import PrivateSshd, missing_sshd
from actorpool.testing.versiongate import VersionGate
from actorpool.transport.classify import classify
from actorpool.transport.client import (
    NEWEST_API_VERSION,
    connect,
    make_client,
    negotiate_api_version,
)
from actorpool.transport.endpoint import Endpoint, resolve_endpoint

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


# --------------------------------------------------------------------------- a --tlsverify dockerd


def tls_env(daemon: TlsDaemon, home: Path, **variables: str) -> dict[str, str]:
    return {"HOME": str(home), "DOCKER_HOST": daemon.url, **variables}


def export_tls_env(
    monkeypatch: pytest.MonkeyPatch, daemon: TlsDaemon, home: Path, cert_path: Path
) -> None:
    """DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH in this process's environment."""
    environ = tls_env(daemon, home, DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH=str(cert_path))
    for name, value in environ.items():
        monkeypatch.setenv(name, value)


def ping_and_version(endpoint: Endpoint) -> tuple[bool, str]:
    client = connect(endpoint, timeout=10)
    try:
        return Ping().execute(client), client.api_version
    finally:
        client.close()


def tls_failure(endpoint: Endpoint) -> TLSError:
    """The typed error a ping through ``endpoint`` ends in (classified as the pool does)."""
    with pytest.raises(Exception) as caught:  # noqa: PT011 (classified below)
        ping_and_version(endpoint)
    verdict = classify(caught.value, target=endpoint.url, what="ping")
    assert isinstance(verdict.error, TLSError), verdict.error
    assert (verdict.retryable, verdict.counts) == (False, True)
    return verdict.error


@pytest.fixture
def hostile_ca_bundle(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    """REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE name a CA that did not sign the daemon.

    requests lets either replace a session's configured CA (psf/requests#3829); this
    machine exports both (the system bundle), which fails TLS just as surely.
    """
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki.other_ca))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(pki.other_ca))


@pytest.mark.usefixtures("hostile_ca_bundle")
def test_tls_from_docker_tls_verify_and_docker_cert_path(
    tls_daemon: TlsDaemon, pki: Pki, tmp_path: Path
) -> None:
    environ = tls_env(
        tls_daemon, tmp_path, DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH=str(pki.cert_dir)
    )
    endpoint = resolve_endpoint(environ=environ)
    assert endpoint.base_url == f"https://127.0.0.1:{tls_daemon.port}"
    assert ping_and_version(endpoint) == (True, "1.41")  # negotiated with dockerd 20.10


@pytest.mark.usefixtures("hostile_ca_bundle")
def test_tls_from_the_docker_config_dir_of_a_private_home(
    tls_daemon: TlsDaemon, pki: Pki, tmp_path: Path
) -> None:
    shutil.copytree(pki.cert_dir, tmp_path / ".docker")  # ~/.docker/{ca,cert,key}.pem
    endpoint = resolve_endpoint(environ=tls_env(tls_daemon, tmp_path, DOCKER_TLS_VERIFY="1"))
    assert endpoint.ca_cert == str(tmp_path / ".docker" / "ca.pem")
    assert ping_and_version(endpoint)[0] is True


def test_a_pool_over_tls_from_the_environment(
    tls_daemon: TlsDaemon, pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    export_tls_env(monkeypatch, tls_daemon, tmp_path, pki.cert_dir)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki.other_ca))
    config = Config.from_mapping({"docker": {"pool": {"min_pool_size": 1, "initial_pool_size": 2}}})
    with actorpool.start(config) as pool:
        assert pool.router.ask(Ping(timeout=10)) is True
        assert pool.router.ask(Version(timeout=10))["ApiVersion"] == "1.41"


def test_a_wrong_ca_is_a_tls_error_that_says_so(
    tls_daemon: TlsDaemon, pki: Pki, tmp_path: Path
) -> None:
    environ = tls_env(tls_daemon, tmp_path, DOCKER_TLS_VERIFY="1",
                      DOCKER_CERT_PATH=str(pki.wrong_cert_dir))  # fmt: skip
    error = tls_failure(resolve_endpoint(environ=environ))
    assert "does not verify with the CA actorpool was given" in str(error)
    assert "(unable to get local issuer certificate)" in str(error)  # OpenSSL's words


def test_no_client_certificate_is_a_tls_error_that_says_so(
    tls_daemon: TlsDaemon, pki: Pki, tmp_path: Path
) -> None:
    (tmp_path / "certs").mkdir()
    shutil.copyfile(pki.ca, tmp_path / "certs" / "ca.pem")  # the CA only
    environ = tls_env(tls_daemon, tmp_path, DOCKER_TLS_VERIFY="1",
                      DOCKER_CERT_PATH=str(tmp_path / "certs"))  # fmt: skip
    error = tls_failure(resolve_endpoint(environ=environ))
    assert "the daemon refused the client certificate" in str(error)


def test_a_client_certificate_of_another_ca_is_a_tls_error(
    tls_daemon: TlsDaemon, pki: Pki, tmp_path: Path
) -> None:
    endpoint = resolve_endpoint(
        tls_daemon.url,
        ca_cert=str(pki.ca),
        client_cert=str(pki.other_client_cert),
        client_key=str(pki.other_client_key),
        environ={"HOME": str(tmp_path)},
    )
    error = tls_failure(endpoint)
    assert "signed by the CA of the daemon's --tlscacert" in str(error)


def test_plain_http_to_the_tls_port_is_a_tls_error_never_a_fallback(
    tls_daemon: TlsDaemon, tmp_path: Path
) -> None:
    endpoint = resolve_endpoint(environ=tls_env(tls_daemon, tmp_path))
    assert endpoint.base_url.startswith("tcp://")  # no TLS variables: plain HTTP
    error = tls_failure(endpoint)
    assert "requires TLS but actorpool spoke plain HTTP" in str(error)


def test_the_pool_does_not_retry_a_tls_failure(
    tls_daemon: TlsDaemon, pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    export_tls_env(monkeypatch, tls_daemon, tmp_path, pki.wrong_cert_dir)
    pool_keys = {"min_pool_size": 1, "initial_pool_size": 1, "max_retries": 5}
    config = Config.from_mapping({"docker": {"pool": {**pool_keys, "initial_retry_delay": "1s"}}})
    with actorpool.start(config) as pool:
        began = time.monotonic()
        with pytest.raises(TLSError, match="does not verify with the CA"):
            pool.router.ask(Ping(timeout=20))
        # Five retries would take 1 + 2 + 4 + 8 s at least.
        assert time.monotonic() - began < 5


def test_each_endpoint_keeps_its_own_tls_settings(
    tls_daemon: TlsDaemon, pki: Pki, sandbox: Sandbox, tmp_path: Path
) -> None:
    # Three endpoints in one pool: the same TLS daemon with the right and with a wrong CA,
    # and a plain unix socket. Each connects with its own settings, none borrows another's.
    secure = {
        "host": tls_daemon.url,
        "tls_verify": True,
        "tls_ca_cert": str(pki.ca),
        "tls_client_cert": str(pki.client_cert),
        "tls_client_key": str(pki.client_key),
    }
    pool_keys = {"min_pool_size": 1, "initial_pool_size": 1}
    endpoints = {
        "secure": {**secure, **pool_keys},
        "wrongca": {**secure, "tls_ca_cert": str(pki.other_ca), **pool_keys},
        "local": {"host": sandbox.url, **pool_keys},
    }
    config = Config.from_mapping({"docker": {"endpoints": endpoints, "pool": {"max_retries": 0}}})
    with actorpool.start(config) as pool:
        assert pool.router.ask(Ping(endpoint="secure", timeout=10)) is True
        assert pool.router.ask(Ping(endpoint="local", timeout=10)) is True
        with pytest.raises(TLSError, match="does not verify with the CA"):
            pool.router.ask(Ping(endpoint="wrongca", timeout=10))
        with pytest.raises(FanOutError) as info:
            pool.router.ask(Version(timeout=10))
    assert set(info.value.partial) == {"secure", "local"}
    assert info.value.partial["secure"]["ApiVersion"] == info.value.partial["local"]["ApiVersion"]
    assert set(info.value.failures) == {"wrongca"}
    assert isinstance(info.value.failures["wrongca"], TLSError)


def test_skipping_verification_warns_for_that_host_only_not_per_request(
    tls_daemon: TlsDaemon, pki: Pki, tmp_path: Path
) -> None:
    # A context made with skip-tls-verify, as users make them; urllib3 would warn on every
    # request (the pool logs one warning of its own instead).
    cfg = tmp_path / "dockercfg"
    docker_context_create(
        cfg,
        "skip",
        f"tcp://127.0.0.1:{tls_daemon.port}",
        cert=pki.client_cert,
        key=pki.client_key,
        skip_tls_verify=True,
    )
    environ = {"HOME": str(tmp_path), "DOCKER_CONFIG": str(cfg)}
    quiet = connect(resolve_endpoint(context="skip", environ=environ), timeout=10)
    try:
        assert (quiet.endpoint.tls, quiet.endpoint.tls_verify) == (True, False)
        with warnings.catch_warnings(record=True) as caught:
            for _ in range(3):
                assert Ping().execute(quiet) is True
        assert not [w for w in caught if issubclass(w.category, InsecureRequestWarning)]
    finally:
        quiet.close()
    # The same daemon as "localhost", a host nobody chose to trust blindly: still warned about.
    pair = (str(pki.client_cert), str(pki.client_key))
    tls = docker.tls.TLSConfig(client_cert=pair, verify=False)
    plain = docker.APIClient(f"https://localhost:{tls_daemon.port}", tls=tls, version="1.41")
    plain.trust_env = False  # else REQUESTS_CA_BUNDLE (set on many machines) turns verify on
    try:
        with warnings.catch_warnings(record=True) as caught:
            assert plain.ping() is True
    finally:
        plain.close()
    assert [w for w in caught if issubclass(w.category, InsecureRequestWarning)]


# --------------------------------------------------------------------------- docker contexts


def test_contexts_made_by_the_docker_cli_reach_the_tls_daemon(
    tls_daemon: TlsDaemon, pki: Pki, tmp_path: Path
) -> None:
    cfg = tmp_path / "dockercfg"
    docker_context_create(cfg, "tls", tls_daemon.url, ca=pki.ca, cert=pki.client_cert,
                          key=pki.client_key)  # fmt: skip
    docker_context_create(cfg, "caonly", tls_daemon.url, ca=pki.ca)
    docker_context_create(cfg, "skip", tls_daemon.url, cert=pki.client_cert,
                          key=pki.client_key, skip_tls_verify=True)  # fmt: skip
    docker_context_create(cfg, "unix", tls_daemon.sandbox.url)
    base = {"HOME": str(tmp_path), "DOCKER_CONFIG": str(cfg)}
    # DOCKER_CONTEXT, and the TLS variables of the default context ignored (the CLI's rule).
    wrong = {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(pki.wrong_cert_dir)}
    by_env = resolve_endpoint(environ={**base, **wrong, "DOCKER_CONTEXT": "tls"})
    assert by_env.source == "from DOCKER_CONTEXT=tls"
    assert ping_and_version(by_env)[0] is True
    docker_context_use(cfg, "unix")
    current = resolve_endpoint(environ=base)
    assert current.url == tls_daemon.sandbox.url
    assert ping_and_version(current)[0] is True
    skip = resolve_endpoint(context="skip", environ=base)
    assert ping_and_version(skip)[0] is True  # TLS with a client cert, the daemon unverified
    # A CA-only context speaks TLS (docker-py would speak plain HTTP): this daemon then
    # wants a client certificate.
    caonly = resolve_endpoint(context="caonly", environ=base)
    assert "the daemon refused the client certificate" in str(tls_failure(caonly))


# --------------------------------------------------------------------------- API version floor
# VersionGate stands in for Docker Engine 29 (API 1.44..1.52), which cannot be installed here.


def test_auto_negotiates_the_version_the_gate_serves(version_gate: VersionGate) -> None:
    endpoint = resolve_endpoint(version_gate.url, environ={})
    assert ping_and_version(endpoint) == (True, "1.52")


def test_negotiation_never_asks_for_more_than_actorpool_knows(sandbox: Sandbox) -> None:
    with tempfile.TemporaryDirectory(prefix="apvg-", dir="/tmp") as directory:
        future = VersionGate(sandbox.socket_path, f"{directory}/g.sock", api_version="1.60")
        with future:
            endpoint = resolve_endpoint(future.url, environ={})
            assert ping_and_version(endpoint) == (True, NEWEST_API_VERSION)


def test_a_pinned_version_below_the_floor_is_one_clear_error(
    version_gate: VersionGate, make_config: MakeConfig
) -> None:
    config = make_config(version_gate.url, api={"version": "1.40"}, pool={"max_retries": 3})
    with actorpool.start(config) as pool:
        with pytest.raises(ApiVersionError) as refused:
            pool.router.ask(ListContainers(timeout=10))
        assert str(refused.value) == (
            f"list_containers: Docker at {version_gate.url} refuses API version 1.40 (its "
            "minimum is 1.44) — set docker.api.version to auto to negotiate, or pin a version "
            ">= 1.44 there or in DOCKER_API_VERSION"
        )
        assert refused.value.status == 400
    # Sent once: never retried (the health checks' own pings are refused too).
    lists = [path for path in version_gate.refused if path.startswith("/v1.40/containers/")]
    assert lists == ["/v1.40/containers/json"]


def test_docker_api_version_pins_when_the_config_says_auto(
    version_gate: VersionGate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_API_VERSION", "1.45")
    assert ping_and_version(resolve_endpoint(version_gate.url)) == (True, "1.45")
    monkeypatch.setenv("DOCKER_API_VERSION", "1.41")
    with pytest.raises(docker.errors.APIError) as refused:
        ping_and_version(resolve_endpoint(version_gate.url))
    error = classify(refused.value, target=version_gate.url, what="ping").error
    assert isinstance(error, ApiVersionError)
    assert "refuses API version 1.41 (its minimum is 1.44)" in str(error)


# --------------------------------------------------------------------------- ssh://


@contextlib.contextmanager
def private_sshd(root: Path, docker_host: str) -> Iterator[PrivateSshd]:
    why = missing_sshd()
    if why is not None:
        pytest.skip(f"no private sshd here: {why}")
    with PrivateSshd(root, docker_host) as server:
        yield server


def test_ssh_endpoints_reach_the_daemon_through_paramiko(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with private_sshd(tmp_path / "ssh", sandbox.url) as sshd:
        monkeypatch.setenv("HOME", str(sshd.home))  # paramiko reads ~/.ssh from $HOME
        endpoint = resolve_endpoint(sshd.url, environ={})
        assert ping_and_version(endpoint) == (True, "1.41")
        pool_keys = {"socket_path": sshd.url, "min_pool_size": 1, "initial_pool_size": 2}
        config = Config.from_mapping({"docker": {"pool": pool_keys}})
        with actorpool.start(config) as pool:
            assert isinstance(pool.router.ask(ListContainers(all=True, timeout=20)), list)


def test_ssh_honours_the_request_timeout_on_a_frozen_daemon(
    private_sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why paramiko and not the ssh binary: docker-py's shell-out path ignores timeouts."""
    with private_sshd(tmp_path / "ssh", private_sandbox.url) as sshd:
        monkeypatch.setenv("HOME", str(sshd.home))
        client = connect(resolve_endpoint(sshd.url, environ={}), timeout=3)
        try:
            private_sandbox.pause()
            began = time.monotonic()
            with pytest.raises(Exception) as caught:  # noqa: PT011 (classified below)
                Ping().execute(client)
            assert time.monotonic() - began < 3 + 5
        finally:
            private_sandbox.resume()
            client.close()
        verdict = classify(caught.value, target=sshd.url, what="ping")
        assert isinstance(verdict.error, RequestTimeout), verdict.error


def test_an_unknown_ssh_host_key_is_a_clear_error_not_retried(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with private_sshd(tmp_path / "ssh", sandbox.url) as sshd:
        (sshd.home / ".ssh" / "known_hosts").write_text("")
        monkeypatch.setenv("HOME", str(sshd.home))
        with pytest.raises(Exception) as caught:  # noqa: PT011 (classified below)
            connect(resolve_endpoint(sshd.url, environ={}), timeout=5)
        verdict = classify(caught.value, target=sshd.url, what="ping")
    assert isinstance(verdict.error, DockerUnavailable)
    assert not verdict.retryable
    assert "not found in known_hosts" in str(verdict.error)
    assert "must be in ~/.ssh/known_hosts" in str(verdict.error)
