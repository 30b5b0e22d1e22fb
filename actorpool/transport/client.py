"""Building docker-py clients for a resolved endpoint, with the API version negotiated.

Every connection actor and every stream actor owns one client made here, so
the endpoint (:mod:`actorpool.transport.endpoint`), TLS, API version and
timeouts are decided in a single place.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import socket
import urllib.parse
import warnings
from collections.abc import Mapping
from typing import Any

import docker
import docker.tls
from docker.constants import MINIMUM_DOCKER_API_VERSION
from urllib3.connection import HTTPConnection
from urllib3.exceptions import InsecureRequestWarning

from actorpool.config import Config
from actorpool.errors import ConfigError
from actorpool.transport import direct
from actorpool.transport.endpoint import Endpoint, endpoint_for

__all__ = [
    "NEWEST_API_VERSION",
    "EngineClient",
    "close_quietly",
    "connect",
    "keepalive_options",
    "make_client",
    "negotiate_api_version",
    "tls_warning",
]

logger = logging.getLogger(__name__)

NEWEST_API_VERSION = "1.52"
"""The newest Engine API version actorpool speaks (Engine 29.0's; tested through a
version-gating proxy, :mod:`actorpool.testing.versiongate`). Negotiation never asks
for more, so a newer daemon is spoken to in a dialect actorpool knows."""


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


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def negotiate_api_version(server: Mapping[str, Any]) -> str:
    """The API version to speak with a daemon, from its ``GET /version`` answer.

    The daemon's ``ApiVersion`` capped at :data:`NEWEST_API_VERSION`, and never below
    its ``MinAPIVersion`` (a daemon whose floor is above what actorpool knows would
    refuse anything older anyway). This is the docker CLI's rule, with actorpool's
    newest version in place of the CLI's.
    """
    newest = str(server.get("ApiVersion") or MINIMUM_DOCKER_API_VERSION)
    chosen = min(newest, NEWEST_API_VERSION, key=_version_key)
    floor = server.get("MinAPIVersion")
    if isinstance(floor, str) and floor and _version_key(floor) > _version_key(chosen):
        chosen = floor
    return chosen


class EngineClient(docker.APIClient):  # type: ignore[misc]
    """docker-py's ``APIClient`` for one :class:`Endpoint`, its API version decided.

    Two differences from ``docker.APIClient(base_url=…, tls=…, version="auto")``:

    * ``trust_env`` is off: requests would otherwise let ``REQUESTS_CA_BUNDLE`` or
      ``CURL_CA_BUNDLE`` replace the configured CA for every request (psf/requests#3829;
      many machines export them), and ``HTTP(S)_PROXY`` reroute the daemon's traffic.
      (The docker CLI does honour proxy variables for tcp daemons; actorpool does not.)
    * ``auto`` negotiates (:func:`negotiate_api_version`) instead of taking the
      daemon's version verbatim, and ``DOCKER_API_VERSION`` was already applied by the
      endpoint's resolution.

    ``ssh://`` endpoints go through paramiko (``pip install 'actorpool[ssh]'``), not the
    ``ssh`` binary: paramiko honours the request timeout (the shell-out path hangs on a
    frozen daemon) and measured 10-40x more requests per second here. It reads
    ``~/.ssh/config`` (host name, port, user, identity file) and ``~/.ssh/known_hosts``.

    TCP sockets get keep-alive after ``tcp_keep_alive`` idle seconds
    (:func:`keepalive_options`).

    Attributes:
        endpoint: The endpoint it talks to.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        timeout: float,
        tcp_keep_alive: float | None = None,
        max_pool_size: int = 1,
        negotiate_timeout: float | None = None,
    ) -> None:
        if endpoint.is_ssh and importlib.util.find_spec("paramiko") is None:
            msg = (
                f"{endpoint.url} ({endpoint.source}) needs paramiko for ssh:// endpoints; "
                "install it with: pip install 'actorpool[ssh]'"
            )
            raise ConfigError(msg)
        tls: docker.tls.TLSConfig | bool = False
        if endpoint.tls:
            pair = (endpoint.client_cert, endpoint.client_key)
            tls = docker.tls.TLSConfig(
                client_cert=pair if endpoint.client_cert and endpoint.client_key else None,
                ca_cert=endpoint.ca_cert,
                verify=endpoint.tls_verify,
            )
        auto = endpoint.api_version == "auto"
        super().__init__(
            base_url=endpoint.base_url,
            # Pinned at first, so the constructor sends nothing; "auto" is asked below.
            version=MINIMUM_DOCKER_API_VERSION if auto else endpoint.api_version,
            timeout=timeout,
            tls=tls,
            max_pool_size=max_pool_size,
            use_ssh_client=False,
        )
        self.trust_env = False
        self.endpoint = endpoint
        if endpoint.tls and not endpoint.tls_verify:
            _quiet_unverified(self.base_url)
        if tcp_keep_alive is not None and endpoint.url.startswith("tcp://"):
            # urllib3 hands connection_pool_kw to every pool (and so socket) it creates later;
            # docker-py's TLS adapter takes no socket_options argument, so set it here for both.
            pool_kw = self.get_adapter(self.base_url).poolmanager.connection_pool_kw
            pool_kw["socket_options"] = keepalive_options(tcp_keep_alive)
        if auto:
            # The version is asked for within the caller's own bound when it has a tighter one
            # (a liveness ping built on a fresh client must fail at its timeout, not api.timeout).
            self.timeout = timeout if negotiate_timeout is None else min(timeout, negotiate_timeout)
            try:
                self._version = self._negotiate()
            except BaseException:
                close_quietly(self)
                raise
            self.timeout = timeout

    def close(self) -> None:
        """Close the direct GETs' socket (:mod:`actorpool.transport.direct`), then docker-py's."""
        direct.close(self)
        super().close()

    def _negotiate(self) -> str:
        # Through transport.direct: on a unix socket, the socket the pool's own GETs reuse
        # (docker-py would open one per URL). /_ping's Api-Version header (as the docker CLI
        # negotiates) is enough unless the daemon is newer than actorpool: then its floor,
        # from /version, matters too.
        newest = direct.api_version(self)
        if newest is not None and _version_key(newest) <= _version_key(NEWEST_API_VERSION):
            return newest
        server = direct.get(
            self, "/version", versioned=False, fallback=lambda: self.version(api_version=False)
        )
        return negotiate_api_version(server)


def connect(
    endpoint: Endpoint,
    *,
    timeout: float,
    tcp_keep_alive: float | None = None,
    negotiate_timeout: float | None = None,
) -> EngineClient:
    """A client for ``endpoint``; with ``auto`` it asks the daemon, so it can raise.

    Callers treat a failure like any failed call (:func:`actorpool.transport.classify.classify`).
    """
    return EngineClient(
        endpoint,
        timeout=timeout,
        tcp_keep_alive=tcp_keep_alive,
        negotiate_timeout=negotiate_timeout,
    )


def make_client(
    config: Config, *, timeout: float | None = None, negotiate_timeout: float | None = None
) -> EngineClient:
    """A client for the endpoint ``config`` names (:func:`endpoint_for`).

    Args:
        config: The pool's configuration (of one endpoint).
        timeout: Seconds for each request; default ``api.timeout``.
        negotiate_timeout: A tighter bound for the version request of ``api.version: auto``.

    Raises:
        ConfigError: The endpoint cannot be resolved (unknown context, missing TLS files).
    """
    return connect(
        endpoint_for(config),
        timeout=config.api.timeout if timeout is None else timeout,
        tcp_keep_alive=config.performance.tcp_keep_alive,
        negotiate_timeout=negotiate_timeout,
    )


def tls_warning(endpoint: Endpoint) -> str | None:
    """The warning to log once per pool when a tcp host is used without TLS verification."""
    if not endpoint.url.startswith("tcp://") or endpoint.tls_verify:
        return None
    how = "TLS, the daemon not verified" if endpoint.tls else "plain HTTP"
    return (
        f"talking to {endpoint.url} ({endpoint.source}) without TLS verification ({how}); set "
        "DOCKER_TLS_VERIFY=1 "
        "and DOCKER_CERT_PATH, or docker.api.tls_verify and docker.api.tls_ca_cert, to verify it"
    )


def _quiet_unverified(base_url: str) -> None:
    """Silence urllib3's per-request ``InsecureRequestWarning`` for this one host.

    urllib3 makes that warning ``always``, so a context with ``SkipTLSVerify`` printed
    it on every request; the pool says it once itself (:func:`tls_warning`). The filter
    names the host, so other hosts of the process keep urllib3's warning.
    """
    host = urllib.parse.urlsplit(base_url).hostname or ""
    warnings.filterwarnings(
        "ignore",
        message=f"Unverified HTTPS request is being made to host '{re.escape(host)}'",
        category=InsecureRequestWarning,
    )


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
