"""Prometheus metrics of one pool, and the HTTP endpoint that serves them.

Each :class:`PoolMetrics` owns its own :class:`~prometheus_client.CollectorRegistry`,
so two pools in one process never collide and a test can read one pool's
numbers without the process-wide default registry. The core calls the small
methods below; every one is cheap (a dict lookup and a lock, no I/O) and
thread-safe, so actors call them inline.

Methods the core calls (label values must come from a small fixed vocabulary,
never from exception messages, container ids or request ids)::

    observe_operation(operation, seconds, outcome)  # each attempt on a connection; outcome: ok
                                                   # or the typed error's class name
    request_finished(operation, seconds, outcome)   # once per request, as the caller saw it
    observe_wait(seconds)                          # a request waited for a free connection
    rate_limited_wait(seconds)                     # the rate limiter held a request back
    retry(operation)                               # a failed attempt is about to be retried
    connection_error(kind)                         # the typed error's class name
    connection_opened(conn_id)                     # a connection joined (its breaker: closed)
    connection_closed(conn_id, lifetime_seconds)   # it left; also forgets its series
    forget_connection(conn_id)                     # drop its per-connection series (idempotent)
    health_check(conn_id, seconds, ok)             # one health check finished
    recovery(kind)                                 # restart|reconnect|recycle
    breaker_transition(conn_id, old, new)          # states: closed|open|half_open
    set_pool(*, size, min_size, max_size, active, healthy, queue_length)
    scaling_event(direction, reason)               # direction: up|down
    stream_opened(kind="logs"), stream_closed(kind="logs")  # kind: logs|events
    lines_delivered(n, nbytes)                     # lines (and bytes) sent to subscribers
    stream_reconnect()                             # a stream reopened after a cut
    resumed_lines(n)                               # lines recovered by resuming after a cut
    truncated_line(n=1)                            # lines cut at streams.max_line_size
    dropped_chunks(policy, n)                      # chunks dropped by the overflow policy
    render() -> str                                # the text exposition (tests, CLI)

Metric names (default namespace ``docker``; ``monitoring.namespace`` replaces it):

- Every series has an ``endpoint`` label (``default`` for a single-endpoint pool).
- ``docker_endpoint_up``: 1 while the endpoint has a healthy connection, 0 while it has none
  (the ``DockerEndpointDown`` alert).
- Pool gauges: ``docker_pool_size``, ``docker_pool_min_size``, ``docker_pool_max_size``,
  ``docker_pool_connections_active`` (in use), ``docker_pool_connections_healthy``,
  ``docker_pool_utilization`` (active / size, 0..1), ``docker_pool_queue_length``.
- ``docker_pool_connections_total`` is a **counter**: connections the pool has opened since it
  started. The seed's name ends in ``_total``, which Prometheus reserves for counters:
  ``promtool check metrics`` rejects a gauge so named ("non-counter metrics should not have
  _total suffix", exit 3). The number of connections in the pool is ``docker_pool_size``.
- ``docker_connection_duration_seconds`` (histogram): how long a connection lived, observed
  when it is closed (``connection_closed``); its ``_count`` is the connections closed.
- Histograms: ``docker_operation_latency_seconds{operation}`` (one daemon call, per attempt),
  ``docker_request_duration_seconds{operation}`` (a request end to end: queue, retries, backoff),
  ``docker_health_check_duration_seconds``, ``docker_pool_wait_duration_seconds``,
  ``docker_rate_limit_wait_duration_seconds`` (its ``_count`` is the rate-limited waits).
- Counters: ``docker_operations_total{operation,outcome}`` (attempts),
  ``docker_requests_total{operation,outcome}`` (requests, including those failed before any
  attempt, e.g. ``NoHealthyConnections``, ``PoolExhausted``),
  ``docker_connection_errors_total{kind}``, ``docker_request_retries_total{operation}``,
  ``docker_health_check_failures_total`` (``{connection}`` when detailed),
  ``docker_recovery_operations_total{kind}``,
  ``docker_circuit_breaker_transitions_total{from_state,to_state}``,
  ``docker_pool_scaling_events_total{direction,reason}``.
- Breakers: ``docker_circuit_breaker_state{connection,state}`` is a state set (one series per
  state, 1 for the current one), exposed only when ``detailed`` is on because it carries the
  connection id; ``docker_circuit_breaker_connections{state}`` (always on) counts the
  connections in each state, which is what dashboards and alerts use.
- Streams: ``docker_streams_active{kind}``, ``docker_streams_opened_total{kind}``,
  ``docker_stream_lines_total``, ``docker_stream_bytes_total``,
  ``docker_stream_reconnects_total``, ``docker_stream_resumed_lines_total``,
  ``docker_stream_truncated_lines_total``, ``docker_stream_dropped_chunks_total{policy}``.

- ``docker_pool_build_info{version}`` is always 1; its label is actorpool's version.

Counters and histograms also expose prometheus_client's ``*_created`` timestamps.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import re
import socket
import threading
from types import TracebackType
from typing import Final, TypeVar, cast
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.exposition import ThreadingWSGIServer, make_wsgi_app
from prometheus_client.metrics import MetricWrapperBase

from actorpool._version import __version__
from actorpool.errors import ActorPoolError, ConfigError

__all__ = [
    "BREAKER_STATES",
    "CONNECTION_LIFETIME_BUCKETS",
    "HEALTH_CHECK_BUCKETS",
    "LATENCY_BUCKETS",
    "WAIT_BUCKETS",
    "MetricsServer",
    "MetricsServerError",
    "PoolMetrics",
    "parse_listen",
]

_M = TypeVar("_M", bound=MetricWrapperBase)

#: Docker API calls: a ping takes ~1 ms, an inspect a few ms, a one-shot stats 1-2 s,
#: and the default request timeout is 30 s; the top bucket catches the slow tail.
LATENCY_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
#: Health checks are pings bounded by ``health_check_timeout`` (10 s by default).
HEALTH_CHECK_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
#: Waiting for a connection or a rate-limiter token: zero when the pool keeps up,
#: up to the request's deadline when it does not.
WAIT_BUCKETS: Final = (
    0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
#: Connection lifetimes: seconds (failures) to ``connection_lifetime`` (2 h by default) and beyond.
CONNECTION_LIFETIME_BUCKETS: Final = (
    1.0, 10.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0,
)  # fmt: skip

#: The circuit breaker states, as label values.
BREAKER_STATES: Final = ("closed", "open", "half_open")
_SCALING_DIRECTIONS: Final = ("up", "down")
_NAMESPACE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _breaker_state(state: str) -> str:
    normalised = state.strip().lower().replace("-", "_")
    if normalised not in BREAKER_STATES:
        msg = f"unknown circuit breaker state {state!r}; expected one of {BREAKER_STATES}"
        raise ValueError(msg)
    return normalised


class PoolMetrics:
    """Every metric of one pool, registered in the pool's own registry.

    Every series carries an ``endpoint`` label: a pool of several endpoints
    (``docker.endpoints``) has one registry, and each endpoint's actors record
    through their own view of it (:meth:`for_endpoint`), which shares the
    metric families and fills in the label.

    Args:
        namespace: Prefix of every metric name (``monitoring.namespace``).
        detailed: Add per-connection series (``monitoring.detailed_metrics``). Off, no label
            carries a connection id, so the number of series does not grow with the pool.
        registry: Registry to register in; a new one by default. Passing the same registry
            twice fails with ``ValueError`` (duplicated timeseries) rather than mixing pools.
        endpoint: The ``endpoint`` label of what this object records.

    Raises:
        ConfigError: The namespace is not a valid Prometheus name prefix.
    """

    def __init__(
        self,
        namespace: str = "docker",
        detailed: bool = True,
        registry: CollectorRegistry | None = None,
        *,
        endpoint: str = "default",
    ) -> None:
        if not isinstance(namespace, str) or not _NAMESPACE.match(namespace):
            msg = (
                f"docker.monitoring.namespace must be a Prometheus name prefix "
                f"(letters, digits and '_', not starting with a digit), got {namespace!r}"
            )
            raise ConfigError(msg)
        self.namespace = namespace
        self.detailed = detailed
        self.registry = CollectorRegistry() if registry is None else registry
        self.endpoint = endpoint
        self._lock = threading.Lock()
        self._breakers: dict[str, str] = {}
        # Children of the per-request series, by (metric, labels): prometheus_client's labels()
        # validates and locks on every call, and the router records four series per request.
        self._children: dict[tuple[str, tuple[str, ...]], MetricWrapperBase] = {}
        ns, reg = namespace, self.registry

        # Which actorpool serves these numbers: a dashboard can tell versions apart.
        self._build = Info(
            "pool_build",
            "The version of actorpool (always 1).",
            ["endpoint"],
            namespace=ns,
            registry=reg,
        )

        # Pool shape, set by the router on every change and on every scaling tick (<= 1 s).
        self._size = Gauge(
            "pool_size", "Connections in the pool.", ["endpoint"], namespace=ns, registry=reg
        )
        self._min_size = Gauge(
            "pool_min_size",
            "Configured minimum pool size.",
            ["endpoint"],
            namespace=ns,
            registry=reg,
        )
        self._max_size = Gauge(
            "pool_max_size",
            "Configured maximum pool size.",
            ["endpoint"],
            namespace=ns,
            registry=reg,
        )
        self._active = Gauge(
            "pool_connections_active",
            "Connections currently running a request.",
            ["endpoint"],
            namespace=ns,
            registry=reg,
        )
        self._healthy = Gauge(
            "pool_connections_healthy",
            "Connections whose last health check passed.",
            ["endpoint"],
            namespace=ns,
            registry=reg,
        )
        self._utilization = Gauge(
            "pool_utilization",
            "Fraction of the pool's connections in use (active / size, 0 to 1).",
            ["endpoint"],
            namespace=ns,
            registry=reg,
        )
        self._queue = Gauge(
            "pool_queue_length",
            "Requests waiting for a free connection.",
            ["endpoint"],
            namespace=ns,
            registry=reg,
        )
        self._opened = Counter(
            "pool_connections",
            "Connections the pool has opened since it started.",
            ["endpoint"],
            namespace=ns,
            registry=reg,
        )
        self._lifetime = Histogram(
            "connection_duration_seconds",
            "How long a connection lived, observed when it left the pool.",
            ["endpoint"],
            namespace=ns,
            registry=reg,
            buckets=CONNECTION_LIFETIME_BUCKETS,
        )
        self._scaling = Counter(
            "pool_scaling_events",
            "Times the pool grew or shrank.",
            ["endpoint", "direction", "reason"],
            namespace=ns,
            registry=reg,
        )

        # Requests.
        self._latency = Histogram(
            "operation_latency_seconds",
            "Time a Docker API call took on a connection, per operation.",
            ["endpoint", "operation"],
            namespace=ns,
            registry=reg,
            buckets=LATENCY_BUCKETS,
        )
        self._operations = Counter(
            "operations",
            "Docker API calls made, per operation and outcome.",
            ["endpoint", "operation", "outcome"],
            namespace=ns,
            registry=reg,
        )
        self._request_duration = Histogram(
            "request_duration_seconds",
            "Time from a request's arrival to its answer (queue, attempts, backoff).",
            ["endpoint", "operation"],
            namespace=ns,
            registry=reg,
            buckets=LATENCY_BUCKETS,
        )
        self._requests = Counter(
            "requests",
            "Requests answered, per operation and outcome (ok or the error class name).",
            ["endpoint", "operation", "outcome"],
            namespace=ns,
            registry=reg,
        )
        self._wait = Histogram(
            "pool_wait_duration_seconds",
            "Time a request waited for a free connection.",
            ["endpoint"],
            namespace=ns,
            registry=reg,
            buckets=WAIT_BUCKETS,
        )
        self._rate_wait = Histogram(
            "rate_limit_wait_duration_seconds",
            "Time the rate limiter held a request back (count: rate-limited waits).",
            ["endpoint"],
            namespace=ns,
            registry=reg,
            buckets=WAIT_BUCKETS,
        )
        self._retries = Counter(
            "request_retries",
            "Failed attempts that were retried, per operation.",
            ["endpoint", "operation"],
            namespace=ns,
            registry=reg,
        )
        self._errors = Counter(
            "connection_errors",
            "Errors talking to the daemon, per kind.",
            ["endpoint", "kind"],
            namespace=ns,
            registry=reg,
        )

        # Health and recovery.
        self._hc_duration = Histogram(
            "health_check_duration_seconds",
            "Time a health check took.",
            ["endpoint"],
            namespace=ns,
            registry=reg,
            buckets=HEALTH_CHECK_BUCKETS,
        )
        self._hc_failures = Counter(
            "health_check_failures",
            "Health checks that failed.",
            ["endpoint", "connection"] if detailed else ["endpoint"],
            namespace=ns,
            registry=reg,
        )
        self._recovery = Counter(
            "recovery_operations",
            "Recovery actions taken (restart, reconnect, recycle).",
            ["endpoint", "kind"],
            namespace=ns,
            registry=reg,
        )

        # Circuit breakers.
        self._breaker_state = Gauge(
            "circuit_breaker_state",
            "Circuit breaker state of each connection (state set: 1 for the current state).",
            ["endpoint", "connection", "state"],
            namespace=ns,
            registry=reg,
        )
        self._breaker_counts = Gauge(
            "circuit_breaker_connections",
            "Connections whose circuit breaker is in each state.",
            ["endpoint", "state"],
            namespace=ns,
            registry=reg,
        )
        self._breaker_transitions = Counter(
            "circuit_breaker_transitions",
            "Circuit breaker state changes.",
            ["endpoint", "from_state", "to_state"],
            namespace=ns,
            registry=reg,
        )

        # Streams.
        self._streams = Gauge(
            "streams_active",
            "Open log and event streams.",
            ["endpoint", "kind"],
            namespace=ns,
            registry=reg,
        )
        self._streams_opened = Counter(
            "streams_opened", "Streams opened.", ["endpoint", "kind"], namespace=ns, registry=reg
        )
        self._lines = Counter(
            "stream_lines",
            "Log lines delivered to subscribers.",
            ["endpoint"],
            namespace=ns,
            registry=reg,
        )
        self._bytes = Counter(
            "stream_bytes",
            "Bytes of log lines delivered to subscribers.",
            ["endpoint"],
            namespace=ns,
            registry=reg,
        )
        self._reconnects = Counter(
            "stream_reconnects",
            "Streams reopened after a cut.",
            ["endpoint"],
            namespace=ns,
            registry=reg,
        )
        self._resumed = Counter(
            "stream_resumed_lines",
            "Lines recovered by resuming a stream after a cut.",
            ["endpoint"],
            namespace=ns,
            registry=reg,
        )
        self._truncated = Counter(
            "stream_truncated_lines",
            "Lines cut at streams.max_line_size.",
            ["endpoint"],
            namespace=ns,
            registry=reg,
        )
        self._dropped = Counter(
            "stream_dropped_chunks",
            "Chunks dropped by a subscriber's overflow policy.",
            ["endpoint", "policy"],
            namespace=ns,
            registry=reg,
        )
        self._up = Gauge(
            "endpoint_up",
            "1 while the endpoint has a healthy connection, 0 while it has none.",
            ["endpoint"],
            namespace=ns,
            registry=reg,
        )
        self._start_endpoint()

    def _start_endpoint(self) -> None:
        self._build.labels(self.endpoint).info({"version": __version__})
        # Series that must exist from the start, so rate() and alerts see them from 0.
        for metric in vars(self).values():
            if (
                isinstance(metric, MetricWrapperBase)
                and metric is not self._build
                and metric._labelnames == ("endpoint",)
            ):
                metric.labels(self.endpoint)
        for state in BREAKER_STATES:
            self._breaker_counts.labels(self.endpoint, state).set(0)
        for kind in ("logs", "events"):
            self._streams.labels(self.endpoint, kind).set(0)

    def for_endpoint(self, endpoint: str) -> PoolMetrics:
        """A view recording with ``endpoint`` as its label, in the same registry.

        The metric families are shared; what is per endpoint (breaker states,
        the cached children) is the view's own. Make one view per endpoint, once
        (the pool does): a new view starts its endpoint's gauges from zero.
        """
        view = copy.copy(self)
        view.endpoint = endpoint
        view._lock = threading.Lock()
        view._breakers = {}
        view._children = {}
        view._start_endpoint()
        return view

    # --- requests --------------------------------------------------------------------------

    def observe_operation(self, operation: str, seconds: float, outcome: str) -> None:
        """Record one attempt of a Docker API call on a connection.

        ``outcome`` is ``ok`` or the typed error's class name. A retried request
        calls this once per attempt; see :meth:`request_finished` for the request.
        """
        self._child(self._latency, "latency", operation).observe(seconds)
        self._child(self._operations, "operations", operation, outcome).inc()

    def request_finished(self, operation: str, seconds: float, outcome: str) -> None:
        """Record one request's answer as its caller saw it, once per request.

        ``seconds`` runs from the router receiving the request to the answer;
        ``outcome`` is ``ok`` or the class name of the error the caller got.
        """
        self._child(self._request_duration, "duration", operation).observe(seconds)
        self._child(self._requests, "requests", operation, outcome).inc()

    def _child(self, metric: _M, name: str, *labels: str) -> _M:
        # Operations and outcomes (error class names) are few, so the cache stays small.
        key = (name, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(self.endpoint, *labels)
        return cast(_M, child)

    def observe_wait(self, seconds: float) -> None:
        """Record how long a request waited in the queue for a free connection."""
        self._wait.labels(self.endpoint).observe(seconds)

    def rate_limited_wait(self, seconds: float) -> None:
        """Record that the rate limiter held a request back for ``seconds``."""
        self._rate_wait.labels(self.endpoint).observe(seconds)

    def retry(self, operation: str) -> None:
        """Count a failed attempt of ``operation`` that is going to be retried."""
        self._retries.labels(self.endpoint, operation).inc()

    def connection_error(self, kind: str) -> None:
        """Count an error talking to the daemon (``kind``: error class name, never a message)."""
        self._errors.labels(self.endpoint, kind).inc()

    # --- connections -----------------------------------------------------------------------

    def connection_opened(self, conn_id: str) -> None:
        """Count a new connection and start its breaker series in the closed state."""
        self._opened.labels(self.endpoint).inc()
        if self.detailed:
            # Create the child now so rate() sees the series from 0, not from its first failure.
            self._hc_failures.labels(self.endpoint, conn_id)
        self._set_breaker(conn_id, "closed")

    def connection_closed(self, conn_id: str, lifetime_seconds: float) -> None:
        """Record how long a connection lived and forget its per-connection series."""
        self._lifetime.labels(self.endpoint).observe(lifetime_seconds)
        self.forget_connection(conn_id)

    def forget_connection(self, conn_id: str) -> None:
        """Remove every series labelled with ``conn_id`` so departed connections do not leak.

        Safe to call twice or for a connection never seen.
        """
        with self._lock:
            if self._breakers.pop(conn_id, None) is not None:
                self._refresh_breaker_counts()
            if self.detailed:
                for state in BREAKER_STATES:
                    _remove(self._breaker_state, self.endpoint, conn_id, state)
                _remove(self._hc_failures, self.endpoint, conn_id)

    def health_check(self, conn_id: str, seconds: float, ok: bool) -> None:
        """Record one health check of ``conn_id``: its duration and whether it failed.

        A late result for a connection already forgotten is counted without its
        connection label, so it cannot bring a departed connection's series back.
        """
        self._hc_duration.labels(self.endpoint).observe(seconds)
        if ok:
            return
        if not self.detailed:
            self._hc_failures.labels(self.endpoint).inc()
            return
        with self._lock:
            known = conn_id in self._breakers
        self._hc_failures.labels(self.endpoint, conn_id if known else "").inc()

    def recovery(self, kind: str) -> None:
        """Count a recovery action (``kind``: restart, reconnect, recycle)."""
        self._recovery.labels(self.endpoint, kind).inc()

    def breaker_transition(self, conn_id: str, old: str, new: str) -> None:
        """Record that the breaker of ``conn_id`` went from ``old`` to ``new``.

        States are ``closed``, ``open`` and ``half_open`` (``half-open`` is accepted).
        Only connections announced by :meth:`connection_opened` and not yet
        forgotten get state series; a late transition of a departed connection is
        only counted in the transitions counter.

        Raises:
            ValueError: A state is not one of those.
        """
        old_state, new_state = _breaker_state(old), _breaker_state(new)
        self._breaker_transitions.labels(self.endpoint, old_state, new_state).inc()
        self._set_breaker(conn_id, new_state, only_known=True)

    def _set_breaker(self, conn_id: str, state: str, *, only_known: bool = False) -> None:
        with self._lock:
            if only_known and conn_id not in self._breakers:
                return
            self._breakers[conn_id] = state
            self._refresh_breaker_counts()
            if self.detailed:
                for each in BREAKER_STATES:
                    self._breaker_state.labels(self.endpoint, conn_id, each).set(
                        1 if each == state else 0
                    )

    def _refresh_breaker_counts(self) -> None:
        # Called with self._lock held; the pool has tens of connections, so a recount is cheap
        # and cannot drift the way increments and decrements can.
        counts = dict.fromkeys(BREAKER_STATES, 0)
        for state in self._breakers.values():
            counts[state] += 1
        for state, count in counts.items():
            self._breaker_counts.labels(self.endpoint, state).set(count)

    # --- pool ------------------------------------------------------------------------------

    def set_pool(
        self,
        *,
        size: int,
        min_size: int,
        max_size: int,
        active: int,
        healthy: int,
        queue_length: int,
    ) -> None:
        """Set the pool gauges; the router calls it on every change and every scaling tick."""
        self._size.labels(self.endpoint).set(size)
        self._min_size.labels(self.endpoint).set(min_size)
        self._max_size.labels(self.endpoint).set(max_size)
        self._active.labels(self.endpoint).set(active)
        self._healthy.labels(self.endpoint).set(healthy)
        self._queue.labels(self.endpoint).set(queue_length)
        self._utilization.labels(self.endpoint).set(active / size if size > 0 else 0.0)
        self._up.labels(self.endpoint).set(1 if healthy > 0 else 0)

    def scaling_event(self, direction: str, reason: str) -> None:
        """Count a pool resize (``direction``: up or down; ``reason``: e.g. demand, idle, age).

        Raises:
            ValueError: ``direction`` is not up or down.
        """
        if direction not in _SCALING_DIRECTIONS:
            msg = f"scaling direction must be one of {_SCALING_DIRECTIONS}, got {direction!r}"
            raise ValueError(msg)
        self._scaling.labels(self.endpoint, direction, reason).inc()

    # --- streams ---------------------------------------------------------------------------

    def stream_opened(self, kind: str = "logs") -> None:
        """Count a stream opening (``kind``: logs or events)."""
        self._streams.labels(self.endpoint, kind).inc()
        self._streams_opened.labels(self.endpoint, kind).inc()

    def stream_closed(self, kind: str = "logs") -> None:
        """Count a stream closing for good (not a reconnect)."""
        self._streams.labels(self.endpoint, kind).dec()

    def lines_delivered(self, n: int, nbytes: int) -> None:
        """Count ``n`` lines of ``nbytes`` bytes delivered to subscribers."""
        self._lines.labels(self.endpoint).inc(n)
        self._bytes.labels(self.endpoint).inc(nbytes)

    def stream_reconnect(self) -> None:
        """Count a stream reopened after the daemon cut it."""
        self._reconnects.labels(self.endpoint).inc()

    def resumed_lines(self, n: int) -> None:
        """Count ``n`` lines recovered by resuming a stream after a cut."""
        self._resumed.labels(self.endpoint).inc(n)

    def truncated_line(self, n: int = 1) -> None:
        """Count lines cut because they exceeded ``streams.max_line_size``."""
        self._truncated.labels(self.endpoint).inc(n)

    def dropped_chunks(self, policy: str, n: int) -> None:
        """Count ``n`` chunks dropped by the subscriber overflow ``policy``."""
        self._dropped.labels(self.endpoint, policy).inc(n)

    # --- exposition ------------------------------------------------------------------------

    def value(self, name: str, **labels: str) -> float | None:
        """This endpoint's sample ``name`` with ``labels`` (``None`` if absent): for tests, CLI."""
        return self.registry.get_sample_value(name, {"endpoint": self.endpoint, **labels})

    def render(self) -> str:
        """Return the registry in the Prometheus text format (what a scrape returns)."""
        return generate_latest(self.registry).decode("utf-8")


def _remove(metric: Counter | Gauge, *labelvalues: str) -> None:
    with contextlib.suppress(KeyError):
        metric.remove(*labelvalues)


class MetricsServerError(ActorPoolError):
    """The metrics endpoint could not be started; ``__cause__`` holds the ``OSError``.

    Attributes:
        reason: Why, in a few words ("address in use"), for callers that name the
            setting their own way (the CLI's ``--metrics``).
    """

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message

    def __reduce__(self) -> tuple[object, ...]:
        return type(self), (str(self), self.reason)


def parse_listen(value: object, key_path: str = "docker.monitoring.listen") -> tuple[str, int]:
    """Split a listen address (``host:port``, ``[v6]:port``) into host and port.

    The one parser of listen addresses: the config's validator, the metrics server
    and the CLI's ``--metrics`` all use it, each naming its own key or flag.

    Args:
        value: The address; anything but such a string is refused.
        key_path: The option or flag being parsed, named in the error.

    Raises:
        ConfigError: The value is not ``host:port`` with a port in 0..65535.
    """
    if isinstance(value, str):
        host, sep, port_text = value.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if sep and host and port_text.isdigit() and int(port_text) <= 65535:
            return host, int(port_text)
    msg = (
        f"{key_path}: must be 'host:port' with a port in 0-65535, got {value!r} "
        f"(e.g. 127.0.0.1:19323 or [::1]:19323; port 0 picks a free port)"
    )
    raise ConfigError(msg)


_ERRNO_REASONS: Final = {
    errno.EADDRINUSE: "address in use",
    errno.EADDRNOTAVAIL: "address not available on this host",
    errno.EACCES: "permission denied (ports below 1024 need privileges)",
}


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Scrapes are not worth a log line each."""


class MetricsServer:
    """Serve one registry over HTTP (``/metrics``; any path works) from a daemon thread.

    Built from prometheus_client's WSGI app and threading server, like its
    ``start_http_server``, but with a short poll interval so :meth:`stop` returns
    within ~50 ms instead of up to 0.5 s, and with a named thread. The server
    starts in the constructor so a bad ``monitoring.listen`` fails when the pool
    starts, not at the first scrape.

    Args:
        registry: The registry to serve (``PoolMetrics.registry``).
        listen: ``host:port``; port 0 binds a free port, see :attr:`address` and :attr:`url`.

    Raises:
        ConfigError: ``listen`` is not ``host:port``.
        MetricsServerError: The address cannot be bound (in use, not local, privileged,
            unknown host).
    """

    _POLL_INTERVAL: Final = 0.05

    def __init__(self, registry: CollectorRegistry, listen: str) -> None:
        host, port = parse_listen(listen)

        class _Server(ThreadingWSGIServer):
            pass

        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
            family, _, _, _, sockaddr = infos[0]
            _Server.address_family = family
            server = make_server(
                str(sockaddr[0]), port, make_wsgi_app(registry), _Server, _QuietHandler
            )
        except OSError as exc:
            if isinstance(exc, socket.gaierror):
                reason = f"cannot resolve host {host!r}"
            else:
                reason = _ERRNO_REASONS.get(exc.errno or 0) or exc.strerror or str(exc)
            msg = (
                f"cannot serve metrics on {listen}: {reason} — "
                f"set docker.monitoring.listen or disable monitoring"
            )
            raise MetricsServerError(msg, reason) from exc
        self._server: ThreadingWSGIServer | None = server
        self.host: str = str(sockaddr[0])
        self.port: int = server.server_port
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": self._POLL_INTERVAL},
            name=f"actorpool-metrics-{self.port}",
            daemon=True,
        )
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        """The bound ``(host, port)`` (the real port when ``listen`` asked for port 0)."""
        return self.host, self.port

    @property
    def url(self) -> str:
        """Where to scrape: ``http://host:port/metrics``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    @property
    def running(self) -> bool:
        """Whether the serving thread is alive."""
        return self._server is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, close the socket and join the thread (idempotent).

        ``shutdown`` returns within one poll interval because the serving thread
        was started before the constructor returned.
        """
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        self._thread.join(timeout)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
