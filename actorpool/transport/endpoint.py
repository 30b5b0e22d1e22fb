"""Which Docker endpoint to talk to, and why: the docker CLI's own resolution rules.

:func:`resolve_endpoint` decides the daemon's address, its TLS material and the API
version the way ``docker`` 28 does (measured against the CLI in 24 scenarios), from
docker-py's own pieces (``docker.utils.parse_host`` to validate an address,
``docker.context.config.get_context_id`` to find a context in the store). First match wins:

1. an explicit host (``-H``, ``docker.pool.socket_path``); with an explicit context too
   it is an error, as ``docker -H … --context …`` is;
2. an explicit context (``--context``, ``docker.pool.context``), which beats ``DOCKER_HOST``;
3. ``DOCKER_HOST``;
4. ``DOCKER_CONTEXT``;
5. ``currentContext`` in ``$DOCKER_CONFIG/config.json`` (``DOCKER_CONFIG`` defaults to
   ``~/.docker``; ``docker context use`` writes it);
6. ``unix:///var/run/docker.sock``.

The context named ``default`` is "``DOCKER_HOST``, else the default socket". TLS for it
(rules 1, 3, 6) comes from explicit options if any are given, else from
``DOCKER_TLS_VERIFY`` (any non-empty value: TLS and verify the daemon with ``ca.pem``),
``DOCKER_TLS`` (TLS without verification) and ``DOCKER_CERT_PATH`` (default: the docker
config directory) holding ``ca.pem`` and, optionally, ``cert.pem`` and ``key.pem``. A
named context brings its own TLS files and ignores those variables, like the CLI.

``tcp://host`` without a port means port 2376 with TLS and 2375 without (the docker
CLI uses 2375 in both cases; the Docker documentation says 2376 for TLS).

Why not ``docker.from_env()`` or ``docker.context.ContextAPI``: they look for contexts
next to whichever ``config.json`` exists (relative to the working directory when none
does), silently downgrade a context holding only a CA (or skip-verify with a client
certificate) to plain HTTP, ignore an unknown context name, mix environment TLS into a
context's host, and never read ``DOCKER_API_VERSION``.
"""

from __future__ import annotations

import json
import os
import pwd
import re
from collections.abc import Mapping

import attrs
from docker.context.config import get_context_id
from docker.errors import DockerException
from docker.utils import parse_host

from actorpool.config import DEFAULT_SOCKET, Config, normalize_socket_path
from actorpool.errors import ConfigError

__all__ = [
    "DEFAULT_SOURCE",
    "DEFAULT_TCP_PORT",
    "DEFAULT_TLS_PORT",
    "Endpoint",
    "daemon_url",
    "endpoint_for",
    "resolve_endpoint",
]

DEFAULT_TCP_PORT = 2375
"""The port of a ``tcp://host`` without one, without TLS."""

DEFAULT_TLS_PORT = 2376
"""The port of a ``tcp://host`` without one, with TLS (the docker CLI would use 2375)."""

DEFAULT_SOURCE = "by default: no DOCKER_HOST, DOCKER_CONTEXT or current docker context"
"""``Endpoint.source`` when nothing named an endpoint: the default socket."""

_API_VERSION = re.compile(r"^1\.\d{1,2}$")


@attrs.frozen
class Endpoint:
    """A resolved Docker endpoint: where, how (TLS, API version) and why.

    Attributes:
        url: The address as the docker CLI shows it: ``unix:///path``,
            ``tcp://host:port`` (port always present), ``ssh://[user@]host[:port]``.
        source: Why this address, e.g. ``"from DOCKER_CONTEXT=prod"``.
        context: The docker context's name (``"default"`` unless a named context was used).
        tls: Whether to speak TLS (tcp only).
        tls_verify: Whether to verify the daemon's certificate (with ``ca_cert``, or the
            system's CAs when there is none).
        ca_cert: The CA certificate file that verifies the daemon.
        client_cert: The client certificate file (with ``client_key``).
        client_key: The client key file.
        tls_source: Where the TLS settings came from (empty without TLS).
        api_version: ``"auto"`` (negotiate with the daemon) or a pinned ``"1.NN"``.
        api_version_source: Where ``api_version`` came from.
    """

    url: str
    source: str
    context: str = "default"
    tls: bool = False
    tls_verify: bool = False
    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    tls_source: str = ""
    api_version: str = "auto"
    api_version_source: str = "the default"

    @property
    def base_url(self) -> str:
        """The address docker-py takes (``https://`` for a TLS tcp endpoint)."""
        if self.tls and self.url.startswith("tcp://"):
            return "https://" + self.url.removeprefix("tcp://")
        return self.url

    @property
    def is_ssh(self) -> bool:
        """Whether the daemon is reached through ``ssh``."""
        return self.url.startswith("ssh://")

    def describe(self) -> str:
        """One line for people: the address, TLS, API version and why this endpoint."""
        parts = [self.url]
        if self.tls:
            how = "verified with " + (self.ca_cert or "the system CAs") if self.tls_verify else ""
            cert = f", client certificate {self.client_cert}" if self.client_cert else ""
            parts.append(f"TLS ({how or 'not verified'}{cert}; {self.tls_source})")
        version = "negotiated" if self.api_version == "auto" else self.api_version
        parts.append(f"API {version} ({self.api_version_source})")
        return f"{parts[0]} {self.source}; " + "; ".join(parts[1:])


@attrs.frozen
class _Tls:
    verify: bool
    ca_cert: str | None
    client_cert: str | None
    client_key: str | None
    source: str


def resolve_endpoint(
    host: str | None = None,
    context: str | None = None,
    *,
    host_source: str = "-H",
    context_source: str = "--context",
    api_version: str = "auto",
    api_version_source: str = "docker.api.version",
    tls_verify: bool = False,
    ca_cert: str | None = None,
    client_cert: str | None = None,
    client_key: str | None = None,
    tls_source: str = "docker.api.tls_*",
    environ: Mapping[str, str] | None = None,
) -> Endpoint:
    """Resolve the endpoint as the docker CLI would (see the module docstring for the order).

    Usable once per named endpoint: everything it reads is in its arguments and ``environ``.

    Args:
        host: An explicit address (like ``docker -H``), or ``None``.
        context: An explicit context name (like ``docker --context``), or ``None``.
        host_source: How the user gave ``host``, named in ``source`` and errors.
        context_source: How the user gave ``context``, likewise.
        api_version: ``"auto"`` (negotiate; ``DOCKER_API_VERSION`` may pin one) or an
            explicit ``"1.NN"``, which beats ``DOCKER_API_VERSION``.
        api_version_source: How the user gave an explicit ``api_version``.
        tls_verify: Explicit TLS options for a host (like ``--tlsverify`` and
            ``--tlscacert``/``--tlscert``/``--tlskey``): any of them given replaces the
            ``DOCKER_TLS*`` variables. A CA or client certificate implies verification.
        ca_cert: See ``tls_verify``.
        client_cert: See ``tls_verify``; needs ``client_key``.
        client_key: See ``tls_verify``.
        tls_source: How the user gave the explicit TLS options.
        environ: The environment (``os.environ`` by default).

    Raises:
        ConfigError: Conflicting or invalid settings, an unknown context, TLS material
            that is missing; the message names the flag, variable or file.
    """
    env = os.environ if environ is None else environ
    if host and context:
        msg = f"conflicting options: cannot specify both {host_source} and {context_source}"
        raise ConfigError(msg)
    version = _api_version(api_version, api_version_source, env)
    explicit = None
    if tls_verify or ca_cert or client_cert or client_key:
        if (client_cert is None) != (client_key is None):
            raise ConfigError(
                f"{tls_source}: a client certificate needs its key, and a key its cert"
            )
        verify = tls_verify or ca_cert is not None or client_cert is not None
        explicit = _Tls(verify, ca_cert, client_cert, client_key, f"from {tls_source}")
    if host:
        return _default_context(host, host_source, f"from {host_source}", explicit, version, env)
    if context:
        name, source = context, f"from {context_source}={context}"
    elif env.get("DOCKER_HOST"):
        return _default_context(
            env["DOCKER_HOST"], "DOCKER_HOST", "from DOCKER_HOST", explicit, version, env
        )
    elif env.get("DOCKER_CONTEXT"):
        name, source = env["DOCKER_CONTEXT"], f"from DOCKER_CONTEXT={env['DOCKER_CONTEXT']}"
    else:
        name, source = _current_context(env)
    if name == "default":
        if env.get("DOCKER_HOST"):
            where = f"from DOCKER_HOST ({source.removeprefix('from ')} is the default context)"
            return _default_context(
                env["DOCKER_HOST"], "DOCKER_HOST", where, explicit, version, env
            )
        return _default_context(DEFAULT_SOCKET, "the default", source, explicit, version, env)
    if explicit is not None:
        msg = (
            f"{tls_source}: TLS options do not apply to docker context {name!r} "
            f"({source}); a context brings its own TLS material"
        )
        raise ConfigError(msg)
    return _named_context(name, source, version, env)


def endpoint_for(
    config: Config,
    *,
    host_source: str = "docker.pool.socket_path",
    context_source: str = "docker.pool.context",
    environ: Mapping[str, str] | None = None,
) -> Endpoint:
    """The endpoint ``config`` names: its ``docker.pool`` and ``docker.api`` keys, then the env.

    ``docker.pool.socket_path`` stands where ``-H`` stands in the docker CLI's order and
    ``docker.pool.context`` where ``--context`` does; both unset, the environment and the
    current docker context decide. ``docker.api.version`` pinned beats
    ``DOCKER_API_VERSION``; ``auto`` lets it pin.

    Args:
        config: The configuration of one endpoint's pool.
        host_source: How the user gave ``socket_path`` (the CLI passes ``"-H"``).
        context_source: How the user gave ``context`` (the CLI passes ``"--context"``).
        environ: The environment (``os.environ`` by default).
    """
    api = config.api
    return resolve_endpoint(
        config.pool.socket_path,
        config.pool.context,
        host_source=host_source,
        context_source=context_source,
        api_version=api.version,
        tls_verify=api.tls_verify,
        ca_cert=api.tls_ca_cert,
        client_cert=api.tls_client_cert,
        client_key=api.tls_client_key,
        environ=environ,
    )


def daemon_url(config: Config) -> str:
    """The address ``config``'s endpoint resolves to, for messages (never raises)."""
    try:
        return endpoint_for(config).url
    except ConfigError:
        pool = config.pool
        if pool.socket_path:
            return pool.socket_path
        return f"context {pool.context}" if pool.context else "the default endpoint"


def _api_version(value: str, source: str, env: Mapping[str, str]) -> tuple[str, str]:
    if value != "auto":
        return value, f"from {source}"
    pinned = env.get("DOCKER_API_VERSION", "")
    if not pinned:
        return "auto", f"negotiated: {source} is auto and DOCKER_API_VERSION is unset"
    if not _API_VERSION.match(pinned):
        raise ConfigError(
            f"DOCKER_API_VERSION: must be an API version such as '1.44', got {pinned!r}"
        )
    return pinned, "from DOCKER_API_VERSION"


def _home(env: Mapping[str, str]) -> str:
    # The docker CLI (homedir.Get) uses $HOME, else the passwd entry.
    return env.get("HOME") or pwd.getpwuid(os.getuid()).pw_dir


def _config_dir(env: Mapping[str, str]) -> str:
    """``$DOCKER_CONFIG``, else ``~/.docker`` (whether or not a config.json exists there)."""
    return env.get("DOCKER_CONFIG") or os.path.join(_home(env), ".docker")


def _current_context(env: Mapping[str, str]) -> tuple[str, str]:
    path = os.path.join(_config_dir(env), "config.json")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        data = {}
    except (OSError, ValueError) as exc:  # the docker CLI refuses a broken config.json too
        raise ConfigError(f"{path}: cannot read the docker CLI's configuration: {exc}") from exc
    name = data.get("currentContext") if isinstance(data, dict) else None
    if isinstance(name, str) and name:
        return name, f"from the current context {name!r} in {path}"
    return "default", DEFAULT_SOURCE


def _address(addr: str, key: str, tls: bool) -> str:
    """``addr`` normalised (default tcp port added) and validated by docker-py's parse_host."""
    url = normalize_socket_path(addr, key)
    if url.startswith("tcp://") and not re.search(r":\d+$", url.removeprefix("tcp://")):
        url = f"{url}:{DEFAULT_TLS_PORT if tls else DEFAULT_TCP_PORT}"
    try:
        parse_host(url, False, tls=tls)
    except DockerException as exc:
        raise ConfigError(f"{key}: {exc}, got {addr!r}") from None
    return url


def _default_context(
    addr: str,
    key: str,
    source: str,
    explicit: _Tls | None,
    version: tuple[str, str],
    env: Mapping[str, str],
) -> Endpoint:
    tls = explicit if explicit is not None else _env_tls(env)
    url = _address(addr, key, tls is not None)
    return _endpoint(url, source, "default", tls, version)


def _endpoint(
    url: str, source: str, context: str, tls: _Tls | None, version: tuple[str, str]
) -> Endpoint:
    ep = Endpoint(url, source, context, api_version=version[0], api_version_source=version[1])
    if tls is None or not url.startswith("tcp://"):
        return ep  # TLS applies to tcp only (docker-py ignores it for unix and ssh too)
    return attrs.evolve(
        ep,
        tls=True,
        tls_verify=tls.verify,
        ca_cert=tls.ca_cert,
        client_cert=tls.client_cert,
        client_key=tls.client_key,
        tls_source=tls.source,
    )


def _env_tls(env: Mapping[str, str]) -> _Tls | None:
    # Any non-empty DOCKER_TLS_VERIFY, "0" included, means verify (the CLI and docker-py agree);
    # DOCKER_CERT_PATH alone does not turn TLS on (the CLI; docker-py differs).
    verify = bool(env.get("DOCKER_TLS_VERIFY"))
    if not verify and not env.get("DOCKER_TLS"):
        return None
    if env.get("DOCKER_CERT_PATH"):
        where, directory = "DOCKER_CERT_PATH", env["DOCKER_CERT_PATH"]
    else:
        where, directory = "the docker config directory", _config_dir(env)
    ca, cert, key = (os.path.join(directory, f) for f in ("ca.pem", "cert.pem", "key.pem"))
    if verify and not os.path.isfile(ca):
        raise ConfigError(
            f"DOCKER_TLS_VERIFY is set but {ca} does not exist; set DOCKER_CERT_PATH to the "
            "directory holding ca.pem (and cert.pem, key.pem)"
        )
    pair = os.path.isfile(cert) and os.path.isfile(key)  # optional, as in the CLI
    variable = "DOCKER_TLS_VERIFY" if verify else "DOCKER_TLS"
    return _Tls(
        verify,
        ca if verify else None,
        cert if pair else None,
        key if pair else None,
        f"from {variable}, files in {where} {directory}",
    )


def _named_context(
    name: str, source: str, version: tuple[str, str], env: Mapping[str, str]
) -> Endpoint:
    store = os.path.join(_config_dir(env), "contexts")
    cid = get_context_id(name)
    meta_path = os.path.join(store, "meta", cid, "meta.json")
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
    except FileNotFoundError:
        msg = (
            f"context {name!r} ({source}) not found: no {meta_path}; "
            "list the contexts with `docker context ls`"
        )
        raise ConfigError(msg) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"context {name!r}: cannot read {meta_path}: {exc}") from exc
    docker_ep = (
        ((meta.get("Endpoints") or {}).get("docker") or {}) if isinstance(meta, dict) else {}
    )
    host = docker_ep.get("Host") or DEFAULT_SOCKET
    skip = bool(docker_ep.get("SkipTLSVerify", False))
    tls_dir = os.path.join(store, "tls", cid, "docker")
    ca, cert, key = (os.path.join(tls_dir, f) for f in ("ca.pem", "cert.pem", "key.pem"))
    has = {p: os.path.isfile(p) for p in (ca, cert, key)}
    tls = None
    if any(has.values()) or skip:
        # The CLI uses whichever files the context has; docker-py's Context demands all three
        # and silently speaks plain HTTP otherwise.
        tls = _Tls(
            not skip,
            ca if has[ca] and not skip else None,
            cert if has[cert] and has[key] else None,
            key if has[cert] and has[key] else None,
            f"from context {name!r} in {store}",
        )
    url = _address(host, f"context {name!r} ({meta_path})", tls is not None)
    return _endpoint(url, source, name, tls, version)
