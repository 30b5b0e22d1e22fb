"""Security defaults: loopback metrics, verified TLS, and no secret in any output.

What counts as a *secret* here: private key material (the contents of
``tls_client_key``), passwords and tokens (registry credentials passed
through ``Execute``, the ``X-Registry-Auth`` header that carries them, a
password in a ``tcp://user:password@host`` address). Not secrets: file
paths (``actorpool config check`` shows the TLS paths on purpose, so an
operator can see which files are used), host names, ports, container ids.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.server
import json
import logging
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import actorpool
from actorpool import cli
from actorpool.config import DEFAULT_MONITOR_LISTEN, Config, load_config
from actorpool.errors import ActorPoolError, ConfigError, DockerUnavailable
from actorpool.messages import Execute, Ping
from actorpool.testing.pki import Pki, make_pki
from actorpool.transport.client import make_client

from helpers import restored_logging

MakeConfig = Callable[..., Config]
REPO = Path(__file__).resolve().parent.parent
TOLERANCE = 1.0


# --------------------------------------------------------------------------- metrics endpoint


def test_no_metrics_port_by_default_and_the_monitors_default_is_loopback() -> None:
    assert Config().monitoring.listen is None
    assert load_config(REPO / "config.yaml").monitoring.listen is None
    assert DEFAULT_MONITOR_LISTEN.startswith("127.0.0.1:")


def _listeners(port: int) -> list[str]:
    """Local addresses with a listening TCP socket on ``port`` (from /proc/net/tcp{,6})."""
    found: list[str] = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                address, hex_port = fields[1].split(":")
                if int(hex_port, 16) == port and fields[3] == "0A":  # 0A = LISTEN
                    found.append(_decode_address(address, width))
    return found


def _decode_address(hex_address: str, width: int) -> str:
    raw = bytes.fromhex(hex_address)
    # /proc prints each 32-bit word in host (little-endian) order.
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    family = socket.AF_INET if width == 8 else socket.AF_INET6
    return socket.inet_ntop(family, words)


def _other_local_addresses() -> list[str]:
    """This host's IPv4 addresses other than loopback (may be none in a sandboxed box)."""
    addresses: set[str] = set()
    with contextlib.suppress(OSError):
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            addresses.add(str(info[4][0]))
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, timeout=5
        ).stdout
        addresses.update(line.split()[3].split("/")[0] for line in out.splitlines())
    return sorted(a for a in addresses if not a.startswith("127."))


def test_a_started_pool_serves_metrics_on_loopback_only(make_config: MakeConfig) -> None:
    host = DEFAULT_MONITOR_LISTEN.rpartition(":")[0]
    config = make_config(monitoring={"enabled": True, "listen": f"{host}:0"})
    with actorpool.start(config) as pool:
        address = pool.metrics_address
        assert address is not None
        assert address[0] == "127.0.0.1"
        port = address[1]
        assert _listeners(port) == ["127.0.0.1"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            assert reply.status == 200
            assert b"docker_pool_size" in reply.read()
        for other in _other_local_addresses():
            with socket.socket() as probe:
                probe.settimeout(2)
                assert probe.connect_ex((other, port)) != 0, f"metrics answer on {other}"


# --------------------------------------------------------------------------- TLS material


def key_material(pki: Pki) -> str:
    """A recognisable piece of the client's private key (the base64 body's middle)."""
    body = "".join(
        line
        for line in pki.client_key.read_text().splitlines()
        if line and not line.startswith("-----")
    )
    return body[len(body) // 3 : len(body) // 3 + 32]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def tcp_config(make_config: MakeConfig, port: int = 1, **api: Any) -> Config:
    # make_client never connects with a fixed API version, so port 1 (nothing there) is fine.
    return make_config(f"tcp://127.0.0.1:{port}", api={"version": "1.41", **api})


# --------------------------------------------------------------------------- make_client


def test_a_ca_certificate_means_the_daemon_is_verified(pki: Pki, make_config: MakeConfig) -> None:
    client = make_client(tcp_config(make_config, tls_ca_cert=str(pki.ca)))
    try:
        assert client.base_url.startswith("https://127.0.0.1:")
        assert client.verify == str(pki.ca)
        assert client.cert is None
    finally:
        client.close()


def test_tls_verify_without_a_ca_uses_the_system_trust_store(make_config: MakeConfig) -> None:
    client = make_client(tcp_config(make_config, tls_verify=True))
    try:
        assert client.base_url.startswith("https://")
        assert client.verify is True
    finally:
        client.close()


def test_client_certificates_are_presented_and_the_daemon_verified(
    pki: Pki, make_config: MakeConfig
) -> None:
    config = tcp_config(
        make_config,
        tls_ca_cert=str(pki.ca),
        tls_client_cert=str(pki.client_cert),
        tls_client_key=str(pki.client_key),
    )
    client = make_client(config)
    try:
        assert client.cert == (str(pki.client_cert), str(pki.client_key))
        assert client.verify == str(pki.ca)
    finally:
        client.close()


def test_client_certificates_alone_still_verify_the_daemon(
    pki: Pki, make_config: MakeConfig, caplog: pytest.LogCaptureFixture
) -> None:
    """Giving certificates means TLS; TLS means verifying the daemon unless told not to.

    With a client certificate but no CA (and ``tls_verify`` left at its default)
    the daemon must be checked against the system trust store, not accepted blindly.
    """
    config = tcp_config(
        make_config, tls_client_cert=str(pki.client_cert), tls_client_key=str(pki.client_key)
    )
    client = make_client(config)
    try:
        assert client.base_url.startswith("https://")
        assert client.cert == (str(pki.client_cert), str(pki.client_key))
        assert client.verify, "TLS with client certificates but no server verification"
    finally:
        client.close()


def _tls_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "without TLS verification" in r.getMessage()
    ]


def test_a_tcp_host_without_verification_logs_a_warning_once_per_pool(
    make_config: MakeConfig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    config = tcp_config(make_config, tls_verify=False)
    client = make_client(config)
    try:
        assert client.base_url.startswith("http://")  # plain HTTP: hence the warning
    finally:
        client.close()
    with actorpool.start(config) as pool, contextlib.suppress(ActorPoolError):
        pool.router.ask(Ping(timeout=1))  # connections are built: still one warning
    warnings = _tls_warnings(caplog)
    assert len(warnings) == 1, warnings
    assert "tcp://127.0.0.1:1" in warnings[0]
    assert "tls_verify" in warnings[0]


def test_verified_tcp_and_unix_sockets_need_no_warning(
    pki: Pki, make_config: MakeConfig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    for config in (make_config(), tcp_config(make_config, tls_ca_cert=str(pki.ca))):
        with actorpool.start(config):
            pass
    assert _tls_warnings(caplog) == []


# --------------------------------------------------------------------------- a real TLS daemon


class _OkHandler(http.server.BaseHTTPRequestHandler):
    """Answers every GET like dockerd's /_ping."""

    def do_GET(self) -> None:
        body = b"OK"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Api-Version", "1.41")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def tls_daemon(pki: Pki) -> Iterator[int]:
    """A loopback HTTPS server with our CA's certificate that requires a client certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(pki.ca)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OkHandler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _ping(config: Config, timeout: float = 3.0) -> tuple[Any, float]:
    began = time.monotonic()
    with actorpool.start(config) as pool:
        try:
            outcome: Any = pool.router.ask(Ping(timeout=timeout))
        except Exception as exc:
            outcome = exc
    return outcome, time.monotonic() - began


def _causes(error: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    cur: BaseException | None = error
    while cur is not None and cur not in found:
        found.append(cur)
        cur = cur.__cause__
    return found


def test_tls_against_a_real_server_verifies_both_ways(
    pki: Pki,
    make_config: MakeConfig,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):  # see the next test
        monkeypatch.delenv(name, raising=False)
    client = {"tls_client_cert": str(pki.client_cert), "tls_client_key": str(pki.client_key)}
    with tls_daemon(pki) as port:
        right = tcp_config(make_config, port, tls_ca_cert=str(pki.ca), **client)
        outcome, _ = _ping(right)
        assert outcome is True  # the handshake works: the failures below are the checks
        for api in (
            {"tls_ca_cert": str(pki.other_ca), **client},  # a daemon we cannot vouch for
            {"tls_verify": True, **client},  # not in the system trust store either
        ):
            outcome, seconds = _ping(tcp_config(make_config, port, **api), timeout=2.0)
            assert isinstance(outcome, ActorPoolError), (api, outcome)
            assert any(isinstance(e, DockerUnavailable) for e in _causes(outcome)) or (
                "healthy" in str(outcome)
            ), outcome
            assert seconds <= 2.0 + 3.0  # the call's deadline, plus starting and stopping a pool
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert key_material(pki) not in text


def test_the_configured_ca_wins_over_requests_ca_bundle(
    pki: Pki, make_config: MakeConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``tls_ca_cert`` says which CA may vouch for the daemon; the environment cannot widen it.

    requests replaces a session's ``verify`` with ``REQUESTS_CA_BUNDLE`` (or
    ``CURL_CA_BUNDLE``) on every request when that is set, as it is on many
    machines (this one included): the configured CA would then be ignored.
    """
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki.ca))  # trusts the daemon's real CA
    client = {"tls_client_cert": str(pki.client_cert), "tls_client_key": str(pki.client_key)}
    with tls_daemon(pki) as port:
        # The configuration trusts only another CA: the daemon must be refused.
        config = tcp_config(make_config, port, tls_ca_cert=str(pki.other_ca), **client)
        outcome, _ = _ping(config, timeout=2.0)
    assert outcome is not True, "talked to a daemon the configured CA does not vouch for"
    assert isinstance(outcome, ActorPoolError), outcome


# --------------------------------------------------------------------------- secrets


def _run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with restored_logging():  # main() logs to the captured stderr of this test only
        code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out + err


def test_config_check_shows_key_paths_but_never_key_material(
    pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "actorpool.yaml"
    path.write_text(
        "docker:\n"
        "  pool:\n"
        "    socket_path: tcp://127.0.0.1:2376\n"
        "  api:\n"
        f"    tls_ca_cert: {pki.ca}\n"
        f"    tls_client_cert: {pki.client_cert}\n"
        f"    tls_client_key: {pki.client_key}\n"
    )
    code, output = _run_cli(["config", "check", str(path)], capsys)
    assert code == 0, output
    assert str(pki.client_key) in output  # the path is shown on purpose
    assert key_material(pki) not in output
    assert "PRIVATE KEY" not in output


def test_a_password_in_the_daemon_url_is_never_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = "hunter2-u5Kq9Zx"
    good = tmp_path / "good.yaml"
    good.write_text(f"docker:\n  pool:\n    socket_path: tcp://admin:{token}@127.0.0.1:2376\n")
    code, output = _run_cli(["config", "check", str(good)], capsys)
    assert code == 0, output
    assert token not in output
    # The same address with a path is invalid: the error must not repeat the password.
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"docker:\n  pool:\n    socket_path: tcp://admin:{token}@127.0.0.1/x\n")
    code, output = _run_cli(["config", "check", str(bad)], capsys)
    assert code != 0
    assert "socket_path" in output
    assert token not in output, output
    with pytest.raises(ConfigError) as caught:
        Config.from_mapping(
            {"docker": {"pool": {"socket_path": f"tcp://admin:{token}@127.0.0.1/x"}}}
        )
    assert token not in str(caught.value)


def _login(client: Any, *, username: str, password: str) -> Any:
    # A loopback registry where nothing listens: the daemon fails at once.
    return client.login(username=username, password=password, registry="http://127.0.0.1:1")


def _pull(client: Any, *, auth: dict[str, str]) -> Any:
    return client.pull("127.0.0.1:1/actorpool/nothing", tag="latest", auth_config=auth)


def test_registry_credentials_through_execute_stay_secret(
    make_config: MakeConfig, caplog: pytest.LogCaptureFixture
) -> None:
    """The password goes to the daemon and nowhere else: not in errors, logs, status, metrics.

    The functions are ``functools.partial`` objects whose repr contains the
    password, so logging a request's repr anywhere would be caught too.
    """
    caplog.set_level(logging.DEBUG)  # every logger, docker-py and urllib3 included
    password = "s3cr3t-Pa55-7Qw"
    auth = {"username": "soak", "password": password}
    header = base64.urlsafe_b64encode(json.dumps(auth).encode()).decode()
    seen: list[str] = []
    with actorpool.start(make_config()) as pool:
        for fn in (
            functools.partial(_login, username="soak", password=password),
            functools.partial(_pull, auth=auth),
        ):
            assert password in repr(fn)  # the trap is armed
            began = time.monotonic()
            with pytest.raises(Exception, match=r"127\.0\.0\.1:1") as caught:
                pool.router.ask(Execute(fn, timeout=20))
            assert time.monotonic() - began <= 20 + TOLERANCE
            for error in _causes(caught.value):
                seen.extend((str(error), repr(error), str(getattr(error, "explanation", ""))))
        seen.append(repr(pool.status()))
        seen.append(pool.metrics.render())
    seen.extend(r.getMessage() for r in caplog.records)
    seen.extend(str(r.__dict__) for r in caplog.records)
    joined = "\n".join(seen)
    assert "127.0.0.1:1" in joined  # the failures were observed
    assert password not in joined
    assert header not in joined
    assert header.rstrip("=") not in joined
