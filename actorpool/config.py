"""The configuration schema: frozen attrs classes loaded from YAML.

Every option lives under the root key ``docker`` in one of eight sections
(``pool``, ``api``, ``performance``, ``circuit_breaker``, ``rate_limit``,
``monitoring``, ``streams``, ``health``), plus ``endpoints``: named daemons,
each with its own pool (:class:`EndpointConfig`; none means one endpoint named
``default`` at ``docker.pool.socket_path``). Each section is a frozen attrs class whose
validators raise :class:`~actorpool.errors.ConfigError` naming the full key
path, the value and the rule, so ``attrs.evolve(cfg.pool, min_pool_size=0)``
fails as clearly as a bad YAML file does. Durations are stored as float
seconds; in YAML (and in ``evolve``) they may also be written ``"250ms"``,
``"5s"``, ``"5m"``, ``"1h"`` or compound, ``"1h30m"`` (see :func:`parse_duration`).

The top-level ``config.yaml`` of the repository lists every option with its
default.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import re
from collections.abc import Callable, Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import attrs
import yaml

from actorpool.errors import ConfigError
from actorpool.observe.log import redact_text
from actorpool.observe.metrics import parse_listen

__all__ = [
    "DEFAULT_ENDPOINT",
    "DEFAULT_MONITOR_LISTEN",
    "DEFAULT_SOCKET",
    "ApiConfig",
    "CircuitBreakerConfig",
    "Config",
    "EndpointConfig",
    "HealthConfig",
    "MonitoringConfig",
    "PerformanceConfig",
    "PoolConfig",
    "RateLimitConfig",
    "StreamsConfig",
    "config_to_dict",
    "load_config",
    "normalize_socket_path",
    "parse_duration",
    "parse_duration_ns",
]

logger = logging.getLogger(__name__)

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
"""The daemon address when nothing names one (no socket_path, context, DOCKER_HOST...)."""

DEFAULT_ENDPOINT = "default"
"""The name of the one endpoint of a configuration without ``docker.endpoints``."""

_ENDPOINT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_ENDPOINT_RULE = (
    "must be an endpoint name: 1-64 letters, digits, '_', '.', ':' or '-', "
    "starting with a letter or digit"
)
_NUMBER = r"(?:\d+(?:\.\d+)?|\.\d+)"
_BARE_SECONDS = re.compile(rf"^{_NUMBER}$")
_COMPOUND = re.compile(rf"^(?:\s*{_NUMBER}\s*(?:ms|h|m|s))+$")
_PART = re.compile(rf"({_NUMBER})\s*(ms|h|m|s)")
_UNIT_SECONDS = {"ms": Fraction(1, 1000), "s": Fraction(1), "m": Fraction(60), "h": Fraction(3600)}

DEFAULT_MONITOR_LISTEN = "127.0.0.1:19323"
"""Where ``actorpool monitor`` serves metrics when ``docker.monitoring.listen`` is unset.

An embedded pool opens no port unless asked. The port is outside 9100-9999,
which Prometheus' list of default exporter ports has handed out in full (9323
is dockerd's own ``metrics-addr``), and below Linux's ephemeral range
(32768-60999), so an outgoing connection never holds it.
"""
_API_VERSION = re.compile(r"^1\.\d{1,2}$")
# The docker CLI's rule for context names (cli/command/context: validateContextName).
_CONTEXT_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.+-]*$")
_METRIC_PREFIX = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_DURATION_RULE = "must be a duration such as '250ms', '5s', '1h30m' or a number of seconds"

# YAML spellings accepted for a field under another name; both may be given only if equal.
_ALIASES = {"pool": {"pool_size": "initial_pool_size", "retry_delay": "initial_retry_delay"}}

# Options that files written for earlier versions may still hold: loading warns and ignores them.
_REMOVED = {
    "performance": {
        "keep_alive": "HTTP connections are always reused: each connection actor keeps its socket",
    },
    "monitoring": {
        "metrics_interval": "the pool gauges are set on every change and at least once a second",
    },
}

_MAX_KEEPIDLE = 32767  # Linux refuses a larger TCP_KEEPIDLE (and so every connection)

_Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def _fail(key_path: str, rule: str, value: object) -> ConfigError:
    return ConfigError(f"{key_path}: {rule}, got {_show(value)}", key_path=key_path)


def _show(value: object) -> str:
    # bool is an int subclass: saying so explains why `true` is refused for a count.
    if isinstance(value, bool):
        return f"{value!r} (a boolean)"
    if isinstance(value, str):
        # A URL may carry a password (tcp://user:pw@host): never echo it back.
        return repr(redact_text(value))
    if isinstance(value, int | float) or value is None:
        return repr(value)
    return f"{value!r} (a {type(value).__name__})"


def parse_duration(value: object, key_path: str) -> float:
    """Parse a duration into float seconds: every duration option and flag goes through here.

    Args:
        value: A number of seconds (int or float, not bool), a bare numeric string
            (seconds), or number-unit parts with units ``ms``, ``s``, ``m``, ``h``:
            ``"250ms"``, ``"5s"``, ``"1h30m"``, ``"1m30.5s"``, ``"2h5m10s500ms"``.
        key_path: The option (or flag) being parsed, named in the error.

    Raises:
        ConfigError: ``value`` is not a finite, non-negative duration.
    """
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < math.inf:
        return float(value)  # the common case (defaults, evolve, dumped configs): no Fraction
    seconds = _exact_seconds(value, key_path)
    try:
        # float(Fraction) rounds once, so "0.1" and "100ms" give exactly float("0.1").
        return float(seconds)
    except OverflowError:
        raise _fail(key_path, _DURATION_RULE, value) from None


def parse_duration_ns(value: object, key_path: str) -> int:
    """Parse a duration like :func:`parse_duration`, into exact integer nanoseconds.

    For callers that do arithmetic with nanosecond timestamps (``--since 1h30m``), where
    float seconds since 1970 cannot hold a nanosecond.

    Raises:
        ConfigError: ``value`` is not a finite, non-negative duration.
    """
    return round(_exact_seconds(value, key_path) * 1_000_000_000)


def _exact_seconds(value: object, key_path: str) -> Fraction:
    seconds: Fraction | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if math.isfinite(value):
            seconds = Fraction(value)
    elif isinstance(value, str):
        text = value.strip()
        if _BARE_SECONDS.match(text):
            seconds = Fraction(text)
        elif _COMPOUND.match(text):
            seconds = sum(
                (Fraction(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(text)),
                Fraction(0),
            )
    if seconds is None:
        raise _fail(key_path, _DURATION_RULE, value)
    if seconds < 0:
        raise _fail(key_path, "must not be negative", value)
    return seconds


def normalize_socket_path(value: object, key_path: str) -> str:
    """Normalise a daemon address as the docker CLI's ``-H`` takes it.

    An absolute socket path becomes ``"unix:///abs/path"``; ``tcp://host[:port]`` and
    ``ssh://[user@]host[:port]`` keep their form. A tcp address may leave the port out:
    :func:`actorpool.transport.endpoint.resolve_endpoint` then picks 2376 with TLS, 2375
    without (the docker CLI picks 2375 either way).

    Args:
        value: An absolute socket path or a ``unix://``, ``tcp://`` or ``ssh://`` URL.
        key_path: The option (or flag, or environment variable) being parsed, named in the error.

    Raises:
        ConfigError: Another scheme, a relative path, or a tcp/ssh URL without a host or
            with a path or query (or, for ssh, a password: ssh uses keys).
    """
    rule = (
        "must be an absolute unix socket path, 'unix:///abs/path', 'tcp://host[:port]' "
        "or 'ssh://[user@]host[:port]'"
    )
    if not isinstance(value, str) or not value:
        raise _fail(key_path, rule, value)
    path = value.removeprefix("unix://")
    if path.startswith("/"):
        # normpath keeps a leading "//" (POSIX allows it a meaning); a socket path never needs it.
        return "unix:///" + os.path.normpath(path).lstrip("/")
    if value.startswith("unix://"):
        raise _fail(key_path, "the unix socket path must be absolute", value)
    scheme = value.partition("://")[0]
    if scheme in ("tcp", "ssh"):
        net_rule = f"a {scheme} address must be exactly '{scheme}://" + (
            "host[:port]'" if scheme == "tcp" else "[user@]host[:port]'"
        )
        try:
            url = urlsplit(value)
            host, port = url.hostname, url.port
        except ValueError:
            raise _fail(key_path, net_rule, value) from None
        if not host or url.path not in ("", "/") or url.query or url.fragment:
            raise _fail(key_path, net_rule, value)
        if scheme == "ssh" and url.password is not None:
            raise _fail(key_path, net_rule, value)
        netloc = f"[{host}]" if ":" in host else host
        user = f"{url.username}@" if scheme == "ssh" and url.username else ""
        return f"{scheme}://{user}{netloc}" + ("" if port is None else f":{port}")
    raise _fail(key_path, rule, value)


class _Section:
    """Base of every section: knows its key path so validators can name it."""

    _path: ClassVar[str]

    def key_path(self) -> str:
        """Where this section lives in the YAML document (named in errors)."""
        return type(self)._path


def _key(inst: _Section, attr: attrs.Attribute[Any]) -> str:
    return f"{inst.key_path()}.{attr.name}"


def _seconds(value: object) -> Any:
    # Best effort only: the validator re-parses and raises with the key path.
    try:
        return parse_duration(value, "")
    except ConfigError:
        return value


def _to_float(value: object) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _socket(value: object) -> Any:
    try:
        return normalize_socket_path(value, "")
    except ConfigError:
        return value


def _duration(*, allow_zero: bool = False) -> _Validator:
    def check(inst: _Section, attr: attrs.Attribute[Any], value: object) -> None:
        seconds = parse_duration(value, _key(inst, attr))
        if seconds == 0 and not allow_zero:
            raise _fail(_key(inst, attr), "must be a positive duration", value)

    return check


def _integer(minimum: int) -> _Validator:
    def check(inst: _Section, attr: attrs.Attribute[Any], value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise _fail(_key(inst, attr), f"must be an integer >= {minimum}", value)

    return check


def _number(minimum: float, *, strict: bool = False) -> _Validator:
    bound = f"> {minimum}" if strict else f">= {minimum}"

    def check(inst: _Section, attr: attrs.Attribute[Any], value: object) -> None:
        if (
            not isinstance(value, float)
            or not math.isfinite(value)
            or (value <= minimum if strict else value < minimum)
        ):
            raise _fail(_key(inst, attr), f"must be a number {bound}", value)

    return check


def _fraction(inst: _Section, attr: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, float) or not 0.0 < value <= 1.0:
        raise _fail(_key(inst, attr), "must be a number in (0, 1]", value)


def _boolean(inst: _Section, attr: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise _fail(_key(inst, attr), "must be true or false", value)


def _one_of(*choices: str) -> _Validator:
    def check(inst: _Section, attr: attrs.Attribute[Any], value: object) -> None:
        if value not in choices or not isinstance(value, str):
            raise _fail(_key(inst, attr), f"must be one of {', '.join(map(repr, choices))}", value)

    return check


def _socket_url(inst: _Section, attr: attrs.Attribute[Any], value: object) -> None:
    normalize_socket_path(value, _key(inst, attr))


def _optional(check: _Validator) -> _Validator:
    def optional(inst: _Section, attr: attrs.Attribute[Any], value: object) -> None:
        if value is not None:
            check(inst, attr, value)

    return optional


def _context_name(inst: _Section, attr: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not _CONTEXT_NAME.match(value):
        rule = "must be a docker context name (letters, digits, '_', '.', '+', '-')"
        raise _fail(_key(inst, attr), rule, value)


def _api_version(inst: _Section, attr: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, float):
        # YAML reads `version: 1.40` as the float 1.4, which would silently mean 1.4.
        raise _fail(
            _key(inst, attr), 'must be a quoted string such as "1.40" (YAML read a float)', value
        )
    if not isinstance(value, str) or not (value == "auto" or _API_VERSION.match(value)):
        raise _fail(_key(inst, attr), "must be 'auto' or an API version such as '1.40'", value)


def _existing_file(inst: _Section, attr: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value:
        raise _fail(_key(inst, attr), "must be a file path or null", value)
    if not os.path.isfile(value):
        raise _fail(_key(inst, attr), "must name an existing file (no such file)", value)


def _listen(inst: _Section, attr: attrs.Attribute[Any], value: object) -> None:
    if value is not None:  # unset: no metrics endpoint
        parse_listen(value, _key(inst, attr))


def _metric_prefix(inst: _Section, attr: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not _METRIC_PREFIX.match(value):
        rule = "must be a Prometheus metric-name prefix (letters, digits, '_'; no leading digit)"
        raise _fail(_key(inst, attr), rule, value)


def _not_above(inst: _Section, low: str, high: str) -> None:
    low_value, high_value = getattr(inst, low), getattr(inst, high)
    if low_value > high_value:
        path = type(inst)._path
        rule = f"must be <= {path}.{high} ({high_value!r})"
        raise _fail(f"{path}.{low}", rule, low_value)


def _dur(default: float, *, allow_zero: bool = False) -> Any:
    return attrs.field(
        default=default, converter=_seconds, validator=_duration(allow_zero=allow_zero)
    )


@attrs.frozen
class PoolConfig(_Section):
    """``docker.pool``: how many connections, how they are checked, retried and replaced."""

    _path: ClassVar[str] = "docker.pool"

    socket_path: str | None = attrs.field(
        default=None, converter=_socket, validator=_optional(_socket_url)
    )
    context: str | None = attrs.field(default=None, validator=_optional(_context_name))
    min_pool_size: int = attrs.field(default=5, validator=_integer(1))
    max_pool_size: int = attrs.field(default=20, validator=_integer(1))
    initial_pool_size: int = attrs.field(default=10, validator=_integer(1))
    pool_growth_factor: float = attrs.field(
        default=1.5, converter=_to_float, validator=_number(1.0)
    )
    health_check_interval: float = _dur(30.0)
    health_check_timeout: float = _dur(10.0)
    unhealthy_threshold: int = attrs.field(default=3, validator=_integer(1))
    recovery_check_interval: float = _dur(60.0)
    connection_timeout: float = _dur(30.0)
    idle_timeout: float = _dur(300.0)
    max_connection_age: float = _dur(3600.0)
    connection_lifetime: float = _dur(7200.0)
    max_retries: int = attrs.field(default=5, validator=_integer(0))
    initial_retry_delay: float = _dur(1.0)
    max_retry_delay: float = _dur(30.0)
    retry_multiplier: float = attrs.field(default=2.0, converter=_to_float, validator=_number(1.0))
    jitter: bool = attrs.field(default=True, validator=_boolean)
    max_queue: int = attrs.field(default=1000, validator=_integer(0))
    max_restarts: int = attrs.field(default=10, validator=_integer(0))
    restart_window: float = _dur(60.0)
    load_threshold: float = attrs.field(default=0.75, converter=_to_float, validator=_fraction)
    load_window: float = _dur(10.0)

    def __attrs_post_init__(self) -> None:
        _not_above(self, "min_pool_size", "max_pool_size")
        _not_above(self, "min_pool_size", "initial_pool_size")
        _not_above(self, "initial_pool_size", "max_pool_size")
        _not_above(self, "initial_retry_delay", "max_retry_delay")
        if self.socket_path is not None and self.context is not None:
            rule = (
                f"cannot be set together with {self._path}.socket_path (like docker's -H "
                "and --context); keep one"
            )
            raise _fail(f"{self._path}.context", rule, self.context)


@attrs.frozen
class ApiConfig(_Section):
    """``docker.api``: API version, per-request timeout and TLS for tcp hosts."""

    _path: ClassVar[str] = "docker.api"

    version: str = attrs.field(default="auto", validator=_api_version)
    timeout: float = _dur(30.0)
    tls_verify: bool = attrs.field(default=False, validator=_boolean)
    tls_ca_cert: str | None = attrs.field(default=None, validator=_existing_file)
    tls_client_cert: str | None = attrs.field(default=None, validator=_existing_file)
    tls_client_key: str | None = attrs.field(default=None, validator=_existing_file)

    def __attrs_post_init__(self) -> None:
        if (self.tls_client_cert is None) != (self.tls_client_key is None):
            given = "tls_client_cert" if self.tls_client_key is None else "tls_client_key"
            missing = "tls_client_key" if given == "tls_client_cert" else "tls_client_cert"
            rule = f"needs {self._path}.{missing} too (a client certificate comes with its key)"
            raise _fail(f"{self._path}.{given}", rule, getattr(self, given))

    @property
    def uses_tls(self) -> bool:
        """Whether any TLS option is set."""
        files = (self.tls_ca_cert, self.tls_client_cert, self.tls_client_key)
        return self.tls_verify or any(f is not None for f in files)


@attrs.frozen
class PerformanceConfig(_Section):
    """``docker.performance``: stream limits and socket tuning."""

    _path: ClassVar[str] = "docker.performance"

    max_concurrent_streams: int = attrs.field(default=100, validator=_integer(1))
    buffer_size: int = attrs.field(default=65536, validator=_integer(1))
    tcp_keep_alive: float = _dur(7200.0)

    def __attrs_post_init__(self) -> None:
        if not 1.0 <= self.tcp_keep_alive <= _MAX_KEEPIDLE:
            rule = f"must be between 1s and {_MAX_KEEPIDLE}s (the kernel's TCP_KEEPIDLE range)"
            raise _fail(f"{self._path}.tcp_keep_alive", rule, self.tcp_keep_alive)


@attrs.frozen
class CircuitBreakerConfig(_Section):
    """``docker.circuit_breaker``: per-connection breaker thresholds."""

    _path: ClassVar[str] = "docker.circuit_breaker"

    enabled: bool = attrs.field(default=True, validator=_boolean)
    failure_threshold: int = attrs.field(default=5, validator=_integer(1))
    success_threshold: int = attrs.field(default=3, validator=_integer(1))
    timeout: float = _dur(60.0)
    half_open_max_calls: int = attrs.field(default=10, validator=_integer(1))


@attrs.frozen
class RateLimitConfig(_Section):
    """``docker.rate_limit``: a token bucket in front of the pool."""

    _path: ClassVar[str] = "docker.rate_limit"

    enabled: bool = attrs.field(default=True, validator=_boolean)
    requests_per_second: float = attrs.field(
        default=100.0, converter=_to_float, validator=_number(0.0, strict=True)
    )
    burst_size: int = attrs.field(default=20, validator=_integer(1))


@attrs.frozen
class MonitoringConfig(_Section):
    """``docker.monitoring``: the Prometheus endpoint (none unless ``listen`` is set)."""

    _path: ClassVar[str] = "docker.monitoring"

    enabled: bool = attrs.field(default=True, validator=_boolean)
    detailed_metrics: bool = attrs.field(default=True, validator=_boolean)
    listen: str | None = attrs.field(default=None, validator=_listen)
    namespace: str = attrs.field(default="docker", validator=_metric_prefix)

    @property
    def serves(self) -> bool:
        """Whether a pool with this configuration opens a metrics endpoint."""
        return self.enabled and self.listen is not None

    @property
    def listen_address(self) -> tuple[str, int] | None:
        """``listen`` as ``(host, port)``, IPv6 brackets removed; ``None`` when unset."""
        return None if self.listen is None else parse_listen(self.listen, f"{self._path}.listen")


@attrs.frozen
class StreamsConfig(_Section):
    """``docker.streams``: log and event streams, their buffers and reconnects."""

    _path: ClassVar[str] = "docker.streams"

    subscriber_buffer: int = attrs.field(default=64, validator=_integer(1))
    overflow_policy: str = attrs.field(default="block", validator=_one_of("block", "drop_oldest"))
    max_line_size: int = attrs.field(default=1048576, validator=_integer(1))
    batch_max_lines: int = attrs.field(default=1000, validator=_integer(1))
    batch_max_delay: float = _dur(0.05, allow_zero=True)
    reconnect_initial_delay: float = _dur(0.1)
    reconnect_max_delay: float = _dur(5.0)
    give_up_after: float = _dur(300.0)
    resume_tail: int = attrs.field(default=10000, validator=_integer(1))

    def __attrs_post_init__(self) -> None:
        _not_above(self, "reconnect_initial_delay", "reconnect_max_delay")


@attrs.frozen
class HealthConfig(_Section):
    """``docker.health``: the weighted health checks and the failure predictor."""

    _path: ClassVar[str] = "docker.health"

    ping_weight: float = attrs.field(default=1.0, converter=_to_float, validator=_number(0.0))
    list_latency_weight: float = attrs.field(
        default=0.5, converter=_to_float, validator=_number(0.0)
    )
    events_weight: float = attrs.field(default=0.5, converter=_to_float, validator=_number(0.0))
    latency_threshold: float = _dur(1.0)
    trend_window: int = attrs.field(default=8, validator=_integer(4))
    trend_ratio: float = attrs.field(
        default=2.0, converter=_to_float, validator=_number(1.0, strict=True)
    )
    trend_floor: float = _dur(0.02)
    degraded_score: float = attrs.field(default=0.5, converter=_to_float, validator=_fraction)

    def __attrs_post_init__(self) -> None:
        if self.ping_weight + self.list_latency_weight + self.events_weight <= 0:
            raise _fail(f"{self._path}.ping_weight", "at least one check weight must be > 0", 0)


def _endpoint_name(inst: _Section, attr: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not _ENDPOINT_NAME.match(value):
        raise _fail("docker.endpoints", _ENDPOINT_RULE, value)


@attrs.frozen
class EndpointConfig(_Section):
    """``docker.endpoints.NAME``: one daemon of several, with its own pool.

    ``host`` or ``context`` (a docker context, resolved as the docker CLI does)
    names the daemon; exactly one is required. Every other key left out (``None``) takes the
    value of ``docker.api`` (version, TLS) or ``docker.pool`` (sizes); every
    other option (retries, breakers, rate limit, streams...) is the same for
    all endpoints, but each endpoint applies it to its own pool.
    """

    _path: ClassVar[str] = "docker.endpoints"

    name: str = attrs.field(validator=_endpoint_name)
    host: str | None = attrs.field(
        default=None, converter=_socket, validator=_optional(_socket_url), kw_only=True
    )
    context: str | None = attrs.field(
        default=None, validator=_optional(_context_name), kw_only=True
    )
    version: str | None = attrs.field(default=None, validator=_optional(_api_version))
    tls_verify: bool | None = attrs.field(default=None, validator=_optional(_boolean))
    tls_ca_cert: str | None = attrs.field(default=None, validator=_existing_file)
    tls_client_cert: str | None = attrs.field(default=None, validator=_existing_file)
    tls_client_key: str | None = attrs.field(default=None, validator=_existing_file)
    min_pool_size: int | None = attrs.field(default=None, validator=_optional(_integer(1)))
    initial_pool_size: int | None = attrs.field(default=None, validator=_optional(_integer(1)))
    max_pool_size: int | None = attrs.field(default=None, validator=_optional(_integer(1)))

    def __attrs_post_init__(self) -> None:
        if (self.host is None) == (self.context is None):
            rule = "needs exactly one of host and context (the daemon of this endpoint)"
            raise _fail(f"{self.key_path()}.host", rule, self.host)

    def key_path(self) -> str:
        return f"{self._path}.{self.name}"

    def apply(self, pool: PoolConfig, api: ApiConfig) -> tuple[PoolConfig, ApiConfig]:
        """``docker.pool`` and ``docker.api`` with this endpoint's keys put in."""
        sizes = ("min_pool_size", "initial_pool_size", "max_pool_size")
        tls = ("version", "tls_verify", "tls_ca_cert", "tls_client_cert", "tls_client_key")
        pool_changes: dict[str, Any] = {k: getattr(self, k) for k in sizes}
        api_changes: dict[str, Any] = {k: getattr(self, k) for k in tls}
        pool_changes = {k: v for k, v in pool_changes.items() if v is not None}
        api_changes = {k: v for k, v in api_changes.items() if v is not None}
        return (
            attrs.evolve(pool, socket_path=self.host, context=self.context, **pool_changes),
            attrs.evolve(api, **api_changes),
        )


_SECTIONS: dict[str, type[Any]] = {
    "pool": PoolConfig,
    "api": ApiConfig,
    "performance": PerformanceConfig,
    "circuit_breaker": CircuitBreakerConfig,
    "rate_limit": RateLimitConfig,
    "monitoring": MonitoringConfig,
    "streams": StreamsConfig,
    "health": HealthConfig,
}


def _to_tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value)


def _endpoint_list(inst: _Section, attr: attrs.Attribute[Any], value: object) -> None:
    """``Config.endpoints``: endpoint configurations with distinct names."""
    seen: set[str] = set()
    for endpoint in value if isinstance(value, tuple) else ():
        if not isinstance(endpoint, EndpointConfig):
            raise _fail("docker.endpoints", "must hold EndpointConfig entries", endpoint)
        if endpoint.name in seen:
            raise _fail("docker.endpoints", "names must be distinct", endpoint.name)
        seen.add(endpoint.name)


def _section(cls: type[_Section]) -> _Validator:
    def check(inst: _Section, attr: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, cls):
            raise _fail(_key(inst, attr), f"must be a {cls.__name__}", value)

    return check


@attrs.frozen
class Config(_Section):
    """The whole configuration (root key ``docker``).

    ``Config()`` is the documented defaults. The configuration never reads the
    environment: ``DOCKER_HOST``, ``DOCKER_CONTEXT``, ``DOCKER_API_VERSION`` and the TLS
    variables apply when a client is built, as the docker CLI applies them
    (:func:`actorpool.transport.endpoint.endpoint_for`).
    """

    _path: ClassVar[str] = "docker"

    pool: PoolConfig = attrs.field(factory=PoolConfig, validator=_section(PoolConfig))
    api: ApiConfig = attrs.field(factory=ApiConfig, validator=_section(ApiConfig))
    performance: PerformanceConfig = attrs.field(
        factory=PerformanceConfig, validator=_section(PerformanceConfig)
    )
    circuit_breaker: CircuitBreakerConfig = attrs.field(
        factory=CircuitBreakerConfig, validator=_section(CircuitBreakerConfig)
    )
    rate_limit: RateLimitConfig = attrs.field(
        factory=RateLimitConfig, validator=_section(RateLimitConfig)
    )
    monitoring: MonitoringConfig = attrs.field(
        factory=MonitoringConfig, validator=_section(MonitoringConfig)
    )
    streams: StreamsConfig = attrs.field(factory=StreamsConfig, validator=_section(StreamsConfig))
    health: HealthConfig = attrs.field(factory=HealthConfig, validator=_section(HealthConfig))
    endpoints: tuple[EndpointConfig, ...] = attrs.field(
        default=(), converter=_to_tuple, validator=_endpoint_list
    )

    def __attrs_post_init__(self) -> None:
        if self.endpoints:
            for key in ("socket_path", "context"):
                if getattr(self.pool, key) is not None:
                    rule = "cannot be set with docker.endpoints; give each endpoint its host"
                    raise _fail(f"docker.pool.{key}", rule, getattr(self.pool, key))
            for endpoint in self.endpoints:
                self.for_endpoint(endpoint.name)  # validates the combination
            return
        self._check_tls()

    def _check_tls(self) -> None:
        socket_path, context = self.pool.socket_path, self.pool.context
        tcp = socket_path is None or socket_path.startswith("tcp://")
        if self.api.uses_tls and (context is not None or not tcp):
            set_ = [a.name for a in attrs.fields(ApiConfig) if a.name.startswith("tls_")]
            name = next(n for n in set_ if getattr(self.api, n) not in (None, False))
            rule = (
                f"TLS applies only to tcp:// hosts but docker.pool.socket_path is "
                f"{socket_path!r}; remove the TLS options or use tcp://host[:port]"
                if context is None
                else f"a docker context brings its own TLS material (docker.pool.context is "
                f"{context!r}); remove the TLS options"
            )
            raise _fail(f"docker.api.{name}", rule, getattr(self.api, name))

    @property
    def endpoint_names(self) -> tuple[str, ...]:
        """The endpoints' names in configuration order (``("default",)`` without endpoints)."""
        return tuple(e.name for e in self.endpoints) or (DEFAULT_ENDPOINT,)

    def for_endpoint(self, name: str) -> Config:
        """The single-endpoint configuration one endpoint's pool runs with.

        ``docker.pool`` and ``docker.api`` with the endpoint's host, version, TLS
        and pool sizes put in; every other section as it is.

        Raises:
            ConfigError: No endpoint of that name, or the combination is invalid
                (e.g. TLS options for a unix socket); the message names the endpoint.
        """
        if not self.endpoints and name == DEFAULT_ENDPOINT:
            return self
        endpoint = next((e for e in self.endpoints if e.name == name), None)
        if endpoint is None:
            names = ", ".join(map(repr, self.endpoint_names))
            raise ConfigError(f"docker.endpoints: no endpoint named {name!r}; known: {names}")
        try:
            pool, api = endpoint.apply(self.pool, self.api)
            return attrs.evolve(self, pool=pool, api=api, endpoints=())
        except ConfigError as exc:
            raise ConfigError(f"{endpoint.key_path()}: {exc}") from exc

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> Config:
        """Build and validate a configuration from parsed YAML.

        Args:
            data: The whole document, ``{"docker": {section: {key: value}}}``;
                ``None`` or ``{}`` gives the defaults.

        Raises:
            ConfigError: Anything is unknown, of the wrong type or out of range;
                it carries every problem found, not only the first.
        """
        problems: list[ConfigError] = []
        config = _build(data, problems)
        if config is None:
            raise _combined([str(p) for p in problems], problems[0].key_path)
        return config


def _endpoints(value: object, problems: list[ConfigError]) -> tuple[EndpointConfig, ...]:
    entries = _mapping(value, "docker.endpoints", problems)
    valid = [a.name for a in attrs.fields(EndpointConfig) if a.name != "name"]
    result = []
    for name, keys in entries.items():
        if not isinstance(name, str) or not _ENDPOINT_NAME.match(name):
            problems.append(_fail("docker.endpoints", _ENDPOINT_RULE, name))
            continue
        path = f"docker.endpoints.{name}"
        values = dict(_mapping(keys, path, problems))
        before = len(problems)
        _check_keys(values, valid, path, f"{path}.", problems)
        if "host" not in values and "context" not in values:
            message = f"{path}.host: is required, or context (the daemon of this endpoint)"
            problems.append(ConfigError(message, key_path=f"{path}.host"))
        if len(problems) > before:
            continue
        try:
            result.append(EndpointConfig(name=name, **values))
        except ConfigError as error:
            problems.append(error)
    return tuple(result)


def _build(data: Mapping[str, Any] | None, problems: list[ConfigError]) -> Config | None:
    """The configuration of ``data``, or ``None`` with every problem added to ``problems``."""
    before = len(problems)
    root = _mapping(data, "the configuration root", problems)
    _check_keys(root, ["docker"], "the configuration root", "", problems)
    docker = _mapping(root.get("docker"), "docker", problems)
    _check_keys(docker, [*_SECTIONS, "endpoints"], "docker", "docker.", problems)
    endpoints = _endpoints(docker.get("endpoints"), problems)
    sections = {name: _section_of(name, docker.get(name), problems) for name in _SECTIONS}
    if len(problems) > before:
        return None
    try:
        return Config(**sections, endpoints=endpoints)
    except ConfigError as error:
        problems.append(error)
        return None


def _section_of(name: str, raw: object, problems: list[ConfigError]) -> Any:
    """Section ``name`` of ``raw``; each field is checked on its own, so every problem shows."""
    cls, path = _SECTIONS[name], f"docker.{name}"
    values = dict(_mapping(raw, path, problems))
    for key, why in _REMOVED.get(name, {}).items():
        if key in values:
            del values[key]
            logger.warning(
                "%s.%s is no longer an option and is ignored (%s); delete it from the file",
                path,
                key,
                why,
            )
    fields = {field.name: field for field in attrs.fields(cls)}
    aliases = _ALIASES.get(name, {})
    before = len(problems)
    _check_keys(values, [*fields, *aliases], path, f"{path}.", problems)
    _resolve_aliases(values, aliases, path, problems)
    defaults = cls()
    for key, value in values.items():
        field = fields.get(key)
        if field is None:
            continue  # an unknown key, reported above
        try:
            converted = field.converter(value) if callable(field.converter) else value
            if field.validator is not None:
                field.validator(defaults, field, converted)
        except ConfigError as error:
            problems.append(error)
    if len(problems) > before:
        return defaults  # a check across fields would only blame the defaults now
    try:
        return cls(**{key: value for key, value in values.items() if key in fields})
    except ConfigError as error:
        problems.append(error)
        return defaults


def _combined(problems: list[str], key_path: str | None, heading: str = "") -> ConfigError:
    """One error for ``problems`` (one line each); its message is the problem when alone."""
    if len(problems) == 1:
        return ConfigError(problems[0], key_path=key_path)
    listed = "\n".join(f"  {problem}" for problem in problems)
    message = f"{heading or 'the configuration'}: {len(problems)} problems:\n{listed}"
    return ConfigError(message, problems=tuple(problems), key_path=key_path)


def _mapping(value: object, what: str, problems: list[ConfigError]) -> Mapping[Any, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.append(_fail(what, "must be a mapping of keys to values", value))
        return {}
    return value


def _check_keys(
    values: Mapping[Any, Any],
    valid: list[str],
    what: str,
    prefix: str,
    problems: list[ConfigError],
) -> None:
    for key in values:
        if key in valid:
            continue
        close = difflib.get_close_matches(str(key), valid, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"valid keys: {', '.join(valid)}"
        message = f"{prefix}{key}: unknown key in {what}; {hint}"
        problems.append(ConfigError(message, key_path=f"{prefix}{key}"))


def _resolve_aliases(
    values: dict[Any, Any], aliases: Mapping[str, str], path: str, problems: list[ConfigError]
) -> None:
    for alias, name in aliases.items():
        if alias not in values:
            continue
        value = values.pop(alias)
        if name in values and _comparable(values[name], name) != _comparable(value, name):
            message = (
                f"{path}.{alias}: is an alias of {path}.{name} and both are set to different "
                f"values ({value!r} and {values[name]!r}); keep only one"
            )
            problems.append(ConfigError(message, key_path=f"{path}.{alias}"))
        values.setdefault(name, value)


def _comparable(value: object, name: str) -> object:
    return _seconds(value) if name.endswith("_delay") else value


def _key_lines(node: yaml.Node | None) -> tuple[dict[str, int], list[tuple[int, ConfigError]]]:
    """The line (1-based) of every key of a document by key path, and its duplicate keys.

    PyYAML silently keeps the last of two equal keys; the node tree still has
    both, so a duplicate is found here, with its line.
    """
    lines: dict[str, int] = {}
    duplicates: list[tuple[int, ConfigError]] = []
    todo: list[tuple[yaml.Node, str]] = [] if node is None else [(node, "")]
    while todo:
        current, path = todo.pop()
        if not isinstance(current, yaml.MappingNode):
            continue
        for key_node, value_node in current.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.value == "<<":
                continue
            key_path = f"{path}{key_node.value}"
            line = key_node.start_mark.line + 1
            if key_path in lines:
                message = f"{key_path}: duplicate key (also at line {lines[key_path]}); keep one"
                duplicates.append((line, ConfigError(message, key_path=key_path)))
                continue
            lines[key_path] = line
            todo.append((value_node, f"{key_path}."))
    return lines, duplicates


def _line_of(key_path: str | None, lines: Mapping[str, int]) -> int:
    """The line of ``key_path`` or of its nearest ancestor in the file; 0 if none is."""
    path = key_path or ""
    while path:
        if path in lines:
            return lines[path]
        path = path.rpartition(".")[0]
    return 0


def load_config(
    path: str | os.PathLike[str] | None = None,
) -> Config:
    """Load a YAML configuration file; no path (or an empty file) gives the defaults.

    Args:
        path: The YAML file, or ``None`` for the defaults.

    Raises:
        ConfigError: The file is missing, unreadable, not valid YAML or not a valid
            configuration. It carries every problem of the file, in file order, each
            as ``FILE:LINE: key.path: rule, got value``.
    """
    if path is None:
        return Config()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the configuration file: {exc}") from exc
    loader = yaml.SafeLoader(text)  # safe: no arbitrary objects
    try:
        node = loader.get_single_node()
        data = None if node is None else loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: invalid YAML{where}: {exc.problem or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    finally:
        loader.dispose()
    lines, placed = _key_lines(node)
    problems: list[ConfigError] = []
    config = _build(data, problems)
    if config is not None and not placed:
        return config
    placed += [(_line_of(error.key_path, lines), error) for error in problems]
    placed.sort(key=lambda item: item[0])  # stable: problems on one line keep their order
    texts = [f"{path}:{line}: {error}" if line else f"{path}: {error}" for line, error in placed]
    raise _combined(texts, placed[0][1].key_path, heading=str(path))


def config_to_dict(config: Config) -> dict[str, Any]:
    """The effective configuration as plain YAML-dumpable data under ``docker``.

    Durations are float seconds; TLS options are the paths, never the files' contents.
    ``Config.from_mapping(config_to_dict(c)) == c``.
    """
    docker: dict[str, Any] = {
        name: attrs.asdict(getattr(config, name), recurse=False) for name in _SECTIONS
    }
    docker["endpoints"] = {
        e.name: {k: v for k, v in attrs.asdict(e).items() if k != "name" and v is not None}
        for e in config.endpoints
    }
    return {"docker": docker}
