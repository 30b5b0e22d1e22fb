"""Building docker-py clients from the configuration.

Every connection actor and every stream actor owns one client made here, so
TLS, API version and timeouts are decided in a single place.
"""

from __future__ import annotations

import logging
import socket

import docker
import docker.tls
from docker.constants import MINIMUM_DOCKER_API_VERSION
from urllib3.connection import HTTPConnection

from actorpool.config import Config

__all__ = ["close_quietly", "keepalive_options", "make_client", "tls_warning"]

logger = logging.getLogger(__name__)


def tls_warning(config: Config) -> str | None:
    """The warning to log once per pool when a tcp host is used without TLS verification."""
    if not config.pool.socket_path.startswith("tcp://"):
        return None
    api = config.api
    if api.tls_verify or api.tls_ca_cert is not None or api.tls_client_cert is not None:
        return None
    return (
        f"talking to {config.pool.socket_path} without TLS verification; set "
        "docker.api.tls_verify and docker.api.tls_ca_cert to verify the daemon"
    )


def keepalive_options(idle: float) -> list[tuple[int, int, int]]:
    """Socket options that turn on TCP keep-alive after ``idle`` seconds without traffic.

    A followed log or event stream of a quiet container can stay silent for hours;
    over TCP, a peer that vanished without a reset (host crash, NAT entry expired)
    would leave it waiting forever. Keep-alive probes make the kernel notice and
    fail the read, and the stream reconnects. Probe interval and count stay the
    system's (``net.ipv4.tcp_keepalive_intvl`` / ``_probes``).
    """
    options = [*HTTPConnection.default_socket_options, (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    if hasattr(socket, "TCP_KEEPIDLE"):  # Linux; macOS names it TCP_KEEPALIVE
        options.append((socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, max(1, round(idle))))
    return options


def make_client(config: Config, *, timeout: float | None = None) -> docker.APIClient:
    """Create a docker-py ``APIClient`` for ``config``'s daemon.

    With ``api.version: auto`` the constructor asks the daemon for its version,
    so it can raise when the daemon is down; callers treat that like any
    failed call. TLS applies to ``tcp://`` hosts only: it verifies the server
    when ``tls_verify`` is set or a CA certificate is given (the pool warns
    once, via :func:`tls_warning`, when a tcp host is used without it). TCP
    sockets get keep-alive after ``performance.tcp_keep_alive`` idle seconds.

    Args:
        config: The pool's configuration.
        timeout: Seconds for each request; default ``api.timeout``.
    """
    url = config.pool.socket_path
    api = config.api
    tls: docker.tls.TLSConfig | bool = False
    if url.startswith("tcp://"):
        # Certificates given means TLS, and TLS here always verifies the daemon unless told not to
        # by tls_verify: false with no certificate at all.
        verify = api.tls_verify or api.tls_ca_cert is not None or api.tls_client_cert is not None
        client_cert = (
            (api.tls_client_cert, api.tls_client_key)
            if api.tls_client_cert and api.tls_client_key
            else None
        )
        if verify or client_cert:
            tls = docker.tls.TLSConfig(
                client_cert=client_cert, ca_cert=api.tls_ca_cert, verify=api.tls_ca_cert or verify
            )
            url = "https://" + url.removeprefix("tcp://")
    auto = api.version == "auto"
    client = docker.APIClient(
        base_url=url,
        # "auto" asks the daemon: done below, once the environment can no longer interfere.
        version=MINIMUM_DOCKER_API_VERSION if auto else api.version,
        timeout=api.timeout if timeout is None else timeout,
        tls=tls,
        max_pool_size=1,
    )
    # REQUESTS_CA_BUNDLE and friends must not override the configured CA (or proxy a daemon).
    client.trust_env = False
    if config.pool.is_tcp:
        # urllib3 hands connection_pool_kw to every pool (and so socket) it creates later;
        # docker-py's TLS adapter takes no socket_options argument, so set it here for both.
        pool_kw = client.get_adapter(client.base_url).poolmanager.connection_pool_kw
        pool_kw["socket_options"] = keepalive_options(config.performance.tcp_keep_alive)
    if auto:
        client._version = client._retrieve_server_version()  # docker-py's own "auto"
    return client


def close_quietly(client: docker.APIClient | None, what: str = "client") -> None:
    """Close ``client`` (if any); a failure is logged at debug level, never raised.

    Clients are closed on the way out (a failed call, a stopping actor), often
    after their socket already broke: closing is cleanup and must not turn
    into an error of its own.
    """
    if client is None:
        return
    try:
        client.close()
    except Exception:
        logger.debug("closing a %s failed", what, exc_info=True)
