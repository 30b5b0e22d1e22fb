"""The messages users send to the router, and the plain-data replies they get.

Every message is a frozen attrs class validated at construction, so a wrong
type or value fails in the caller's thread with a clear error instead of
inside an actor. Requests know how to run themselves on a docker-py
``APIClient`` (:meth:`Request.execute`); only a connection actor ever calls
that, with the client it owns. Replies are the Docker API's JSON (dicts and
lists) or frozen attrs records: nothing in a reply refers to a client.

Endpoints: every request takes ``endpoint=`` (a name from ``docker.endpoints``).
A pool of one endpoint needs none. On a pool of several, a request about one
object (a container, an ``Execute``) must name its endpoint (else
:class:`~actorpool.errors.EndpointRequired`: ids are unique per daemon only,
so actorpool never guesses); a request whose class has ``fan_out`` set
(``ListContainers``, ``ListImages``, ``Info``, ``Version``, ``Ping``,
``PoolStatus``, ``StreamStats``) goes to every endpoint when ``endpoint`` is
``None``: ``"merge"`` replies one list whose items carry an ``"Endpoint"``
key, ``"map"`` a mapping endpoint name -> reply. Streams say where they come
from: :class:`LogChunk`, :class:`LogStreamEnded`, :class:`LogStreamError`,
:class:`DockerEvent` and :class:`HealthAlert` carry their ``endpoint``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal, Protocol, runtime_checkable

import attrs
import docker.utils
from attrs import validators as v

from actorpool.transport import direct
from actorpool.transport.records import LogLine, LogPosition

if TYPE_CHECKING:
    from docker import APIClient
    from pykka import ActorRef

__all__ = [
    "ConnectionStatus",
    "ContainerLogs",
    "ContainerStats",
    "DockerEvent",
    "Execute",
    "FollowContainers",
    "HealthAlert",
    "Info",
    "InspectContainer",
    "ListContainers",
    "ListImages",
    "LogChunk",
    "LogLine",
    "LogPosition",
    "LogStreamEnded",
    "LogStreamError",
    "LogStreamStarted",
    "Ping",
    "PoolStatus",
    "PoolStatusReport",
    "PositionStore",
    "Request",
    "ScalingDecision",
    "StreamStats",
    "StreamStatsReport",
    "SubscribeEvents",
    "SubscribeLogs",
    "Subscription",
    "Unsubscribe",
    "Version",
    "position_key",
    "split_position_key",
]

# An endpoint name, as docker.endpoints allows it (the pool checks that it exists).
_ENDPOINT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
# A container reference: a full or short hex id, or a name as Docker allows it.
_CONTAINER_REF = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}$")


def _positive_timeout(_inst: object, attr: attrs.Attribute[Any], value: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        msg = f"{attr.name} must be a positive number of seconds or None, got {value!r}"
        raise ValueError(msg)


def _container_ref(_inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not _CONTAINER_REF.match(value):
        msg = (
            f"{attr.name} must be a container id or name (letters, digits, '_', '.', '-'), "
            f"got {value!r}"
        )
        raise ValueError(msg)


def _filters(_inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        msg = f"{attr.name} must be a mapping of filter name to value(s), got {value!r}"
        raise ValueError(msg)


def _freeze_filters(value: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    # Lists inside filters are turned into tuples so the message stays immutable.
    if value is None or not isinstance(value, Mapping):
        return value
    return {k: tuple(x) if isinstance(x, list) else x for k, x in value.items()}


def _plain_filters(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    return {k: list(x) if isinstance(x, tuple) else x for k, x in value.items()}


def _limit(_inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    msg = f"{attr.name} must be None or a positive number of containers, got {value!r}"
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(msg)
    if value <= 0:
        raise ValueError(msg)


def _tail(_inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    if value == "all" or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return
    msg = f"{attr.name} must be 'all' or a non-negative number of lines, got {value!r}"
    raise ValueError(msg)


_EXACT_TIME = re.compile(r"^\d+(\.\d{1,9})?$")


def _since(_inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if isinstance(value, str):
        ok = bool(_EXACT_TIME.match(value))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        ok = math.isfinite(value) and value >= 0
    else:
        ok = False
    if not ok:
        msg = (
            f"{attr.name} must be None, a Unix time in seconds or 'seconds.nanoseconds', "
            f"got {value!r}"
        )
        raise ValueError(msg)


def _endpoint(_inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    if value is None or (isinstance(value, str) and _ENDPOINT_NAME.match(value)):
        return
    msg = f"{attr.name} must be None or an endpoint name from docker.endpoints, got {value!r}"
    raise ValueError(msg)


def _endpoint_names(value: object) -> Any:
    # One name may be given as a string; the tuple keeps the message immutable.
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple | set | frozenset):
        return tuple(value)
    return value


def _endpoint_tuple(inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, tuple) or not value:
        msg = f"{attr.name} must be None (every endpoint) or endpoint names, got {value!r}"
        raise ValueError(msg)
    for name in value:
        if name is None:
            raise ValueError(f"{attr.name} must not contain None, got {value!r}")
        _endpoint(inst, attr, name)


def _actor_ref(_inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    if not (hasattr(value, "tell") and hasattr(value, "actor_inbox")):
        msg = f"{attr.name} must be a pykka ActorRef (the subscriber actor), got {value!r}"
        raise ValueError(msg)


@attrs.frozen
class Request:
    """Base of every request the router runs on a pooled connection.

    Attributes:
        timeout: The request's deadline in seconds from when the router gets it;
            ``None`` means ``docker.api.timeout``. Retries never go past it.
        endpoint: Which endpoint (``docker.endpoints``) runs it; see the module docstring.
        fan_out: ``"merge"`` or ``"map"`` when ``endpoint=None`` on a pool of several
            endpoints asks every endpoint; ``""`` when the request needs an endpoint.
    """

    operation: ClassVar[str] = "request"
    fan_out: ClassVar[str] = ""
    timeout: float | None = attrs.field(default=None, validator=_positive_timeout, kw_only=True)
    endpoint: str | None = attrs.field(default=None, validator=_endpoint, kw_only=True)

    def execute(self, client: APIClient) -> Any:
        """Run the request on ``client``; called only by the connection actor that owns it."""
        raise NotImplementedError


@attrs.frozen
class Ping(Request):
    """Check that the daemon answers. Replies ``True``."""

    operation: ClassVar[str] = "ping"
    fan_out: ClassVar[str] = "map"

    def execute(self, client: APIClient) -> bool:
        # docker-py's ping() is True exactly when the body is "OK".
        body = direct.get(
            client, "/_ping", as_json=False, fallback=lambda: "OK" if client.ping() else ""
        )
        return bool(body == "OK")


@attrs.frozen
class Version(Request):
    """The daemon's version record (``GET /version``)."""

    operation: ClassVar[str] = "version"
    fan_out: ClassVar[str] = "map"

    def execute(self, client: APIClient) -> dict[str, Any]:
        return dict(direct.get(client, "/version", fallback=client.version))


@attrs.frozen
class Info(Request):
    """System-wide information (``GET /info``)."""

    operation: ClassVar[str] = "info"
    fan_out: ClassVar[str] = "map"

    def execute(self, client: APIClient) -> dict[str, Any]:
        return dict(direct.get(client, "/info", fallback=client.info))


@attrs.frozen
class ListContainers(Request):
    """List containers (``GET /containers/json``).

    Attributes:
        all: Include stopped containers.
        filters: Docker filters, e.g. ``{"label": ["app=web"], "status": "running"}``.
        limit: Return at most this many of the most recent containers.
    """

    operation: ClassVar[str] = "list_containers"
    fan_out: ClassVar[str] = "merge"
    all: bool = attrs.field(default=False, validator=v.instance_of(bool))
    filters: Mapping[str, Any] | None = attrs.field(
        default=None, converter=_freeze_filters, validator=_filters
    )
    limit: int | None = attrs.field(default=None, validator=_limit)

    def execute(self, client: APIClient) -> list[dict[str, Any]]:
        filters = _plain_filters(self.filters)
        limit = self.limit or -1
        # The query docker-py's containers() sends, for the same answer on either path.
        params = {
            "limit": limit,
            "all": 1 if self.all else 0,
            "size": 0,
            "trunc_cmd": 0,
            "filters": docker.utils.convert_filters(filters) if filters else None,
        }
        return list(
            direct.get(
                client,
                "/containers/json",
                params=params,
                fallback=lambda: client.containers(all=self.all, filters=filters, limit=limit),
            )
        )


@attrs.frozen
class InspectContainer(Request):
    """One container's full record (``GET /containers/{id}/json``)."""

    operation: ClassVar[str] = "inspect_container"
    container: str = attrs.field(validator=_container_ref)

    def execute(self, client: APIClient) -> dict[str, Any]:
        return dict(
            direct.get(
                client,
                "/containers/{0}/json",
                self.container,
                fallback=lambda: client.inspect_container(self.container),
            )
        )


@attrs.frozen
class ContainerStats(Request):
    """One resource-usage sample of a container (the daemon takes 1-2 s to answer)."""

    operation: ClassVar[str] = "container_stats"
    container: str = attrs.field(validator=_container_ref)

    def execute(self, client: APIClient) -> dict[str, Any]:
        return dict(client.stats(self.container, stream=False))


@attrs.frozen
class ContainerLogs(Request):
    """A container's logs so far, without following. Replies a tuple of :class:`LogLine`.

    Attributes:
        since: Only lines at or after this time: Unix seconds, or the daemon's exact
            ``"seconds.nanoseconds"`` string.
        until: Only lines at or before this time (inclusive), same forms as ``since``.
        tail: ``"all"`` or the number of last lines.
        timestamps: Ask the daemon for timestamps (``LogLine.timestamp`` is 0 without).
        details: Prefix each line with its log driver's extra attributes (``--details``).
    """

    operation: ClassVar[str] = "container_logs"
    container: str = attrs.field(validator=_container_ref)
    stdout: bool = attrs.field(default=True, validator=v.instance_of(bool))
    stderr: bool = attrs.field(default=True, validator=v.instance_of(bool))
    timestamps: bool = attrs.field(default=True, validator=v.instance_of(bool))
    since: float | str | None = attrs.field(default=None, validator=_since)
    until: float | str | None = attrs.field(default=None, validator=_since)
    tail: int | Literal["all"] = attrs.field(default="all", validator=_tail)
    details: bool = attrs.field(default=False, validator=v.instance_of(bool))

    def execute(self, client: APIClient) -> tuple[LogLine, ...]:
        from actorpool.transport.logread import read_logs

        lines: tuple[LogLine, ...] = read_logs(client, self)
        return lines


@attrs.frozen
class ListImages(Request):
    """List images (``GET /images/json``)."""

    operation: ClassVar[str] = "list_images"
    fan_out: ClassVar[str] = "merge"
    all: bool = attrs.field(default=False, validator=v.instance_of(bool))

    def execute(self, client: APIClient) -> list[dict[str, Any]]:
        params = {"only_ids": 0, "all": 1 if self.all else 0}
        return list(
            direct.get(
                client, "/images/json", params=params, fallback=lambda: client.images(all=self.all)
            )
        )


@attrs.frozen
class Execute(Request):
    """Run ``fn(api_client)`` on a pooled connection under the pool's retry and breaker rules.

    For calls the message set does not cover. ``fn`` runs in the connection
    actor's thread and must return plain data: never the client, nor a stream
    or object bound to it.
    """

    operation: ClassVar[str] = "execute"
    fn: Callable[[APIClient], Any] = attrs.field(validator=v.is_callable())

    def execute(self, client: APIClient) -> Any:
        return self.fn(client)


@attrs.frozen
class PoolStatus:
    """Ask the router for a :class:`PoolStatusReport`. Answered by the router itself."""

    fan_out: ClassVar[str] = "map"
    endpoint: str | None = attrs.field(default=None, validator=_endpoint, kw_only=True)


@attrs.frozen
class ConnectionStatus:
    """One pooled connection as the router sees it.

    ``state`` is healthy, degrading or unhealthy; ``score`` the weighted share of
    health checks its last round passed.
    """

    id: str
    healthy: bool
    breaker: str
    in_use: bool
    usage_count: int
    age: float
    last_used: float | None
    consecutive_failures: int
    state: str = "healthy"
    score: float = 1.0


@attrs.frozen
class PoolStatusReport:
    """The pool as a whole: reply to :class:`PoolStatus`.

    ``load`` is (busy + waiting) / size over the last scaling tick, ``score`` the
    mean health score of the connections, ``scaling`` the last resize decisions
    with their reasons, oldest first. ``streams`` is ``log_streams`` (one per
    followed container) plus ``event_streams`` (one per filter set).
    """

    connections: tuple[ConnectionStatus, ...]
    size: int
    min_size: int
    max_size: int
    healthy: int
    queue_length: int
    restarts: int
    degraded: bool
    streams: int = 0
    log_streams: int = 0
    event_streams: int = 0
    load: float = 0.0
    score: float = 1.0
    scaling: tuple[ScalingDecision, ...] = ()


@attrs.frozen
class ScalingDecision:
    """One resize: when, which way, from and to what size, and why."""

    time: float
    direction: str
    from_size: int
    to_size: int
    reason: str
    load: float


@attrs.frozen
class StreamStats:
    """Ask the stream manager for a :class:`StreamStatsReport`."""

    fan_out: ClassVar[str] = "map"
    endpoint: str | None = attrs.field(default=None, validator=_endpoint, kw_only=True)


@attrs.frozen
class StreamStatsReport:
    """Plain counts about the pool's streams (for PoolStatus and the CLI health line).

    Attributes:
        log_streams: Log stream actors (one per followed container, plus one-off reads).
        event_streams: Event stream actors (one per distinct filter set).
        follows: FollowContainers subscriptions.
        subscriptions: Log, event and follow subscriptions.
        max_streams: ``performance.max_concurrent_streams``.
        lines_delivered, bytes_delivered: Sent to subscribers (a line sent to two counts twice).
        reconnects: Streams reopened after the daemon cut them.
        resumed_lines: Lines read by catch-up reads after a cut.
        resume_gaps: Resumes that could not prove they lost nothing (see logreaders).
        truncated_lines: Lines cut at ``streams.max_line_size``.
        dropped_chunks: Chunks dropped by ``overflow_policy: drop_oldest``.
        history_reads: One-off history reads for subscribers that joined a running stream.
        peak_buffered_chunks: The most chunks ever held for one subscriber (outbox), a
            check that a slow subscriber's memory stays bounded.
    """

    log_streams: int
    event_streams: int
    follows: int
    subscriptions: int
    max_streams: int
    lines_delivered: int
    bytes_delivered: int
    reconnects: int
    resumed_lines: int
    resume_gaps: int
    truncated_lines: int
    dropped_chunks: int
    history_reads: int
    peak_buffered_chunks: int


@attrs.frozen
class HealthAlert:
    """A health transition, sent to the alert actor (or callable) given to ``actorpool.start``.

    Attributes:
        kind: ``connection`` (``subject`` is its id; states healthy, degrading,
            unhealthy, recovered), ``breaker`` (opened, half_open, closed) or
            ``pool`` (degraded, recovered).
        subject: The connection id, or ``"pool"``.
        old: The state before.
        new: The state now.
        detail: Why, in words.
        time: Unix time of the transition.
        endpoint: The endpoint whose pool it is.
    """

    kind: str
    subject: str
    old: str
    new: str
    detail: str = ""
    time: float = 0.0
    endpoint: str = "default"


# --- log streams and events ---------------------------------------------------------------


@attrs.frozen
class LogChunk:
    """A batch of consecutive lines of one container, sent to a subscriber.

    ``position`` is where this subscriber is in the container's log after the
    chunk's last line (every source it follows). Keep it once the lines are
    handled (:meth:`LogPosition.encode`); ``SubscribeLogs(resume=position)``
    continues exactly after it, in this process or another.
    """

    container_id: str
    lines: tuple[LogLine, ...]
    subscription_id: str = ""
    position: LogPosition | None = None
    endpoint: str = "default"


_COMPOSE_PROJECT: Final = "com.docker.compose.project"
_COMPOSE_SERVICE: Final = "com.docker.compose.service"


@attrs.frozen
class LogStreamStarted:
    """Who a stream's lines come from: sent once per stream, before its first chunk.

    Attributes:
        container_id: The full id.
        name: The container's name (without Docker's leading ``/``).
        image: The image as the container was created from it (``Config.Image``).
        labels: The container's labels.
        tty: Whether it runs with a TTY (then every line is ``stdout``).
        subscription_id: As on the chunks.
        endpoint: As on the chunks.
    """

    container_id: str
    name: str
    image: str
    labels: Mapping[str, str]
    tty: bool = False
    subscription_id: str = ""
    endpoint: str = "default"

    @property
    def compose_project(self) -> str | None:
        """The docker compose project (label ``com.docker.compose.project``), if any."""
        return self.labels.get(_COMPOSE_PROJECT)

    @property
    def compose_service(self) -> str | None:
        """The docker compose service (label ``com.docker.compose.service``), if any."""
        return self.labels.get(_COMPOSE_SERVICE)

    @classmethod
    def from_inspect(cls, info: Mapping[str, Any], subscription_id: str = "") -> LogStreamStarted:
        """Built from the daemon's container record (``GET /containers/{id}/json``)."""
        config = info.get("Config") or {}
        labels = config.get("Labels") or {}
        return cls(
            container_id=str(info.get("Id", "")),
            name=str(info.get("Name") or "").lstrip("/"),
            image=str(config.get("Image") or info.get("Image") or ""),
            labels={str(k): str(v) for k, v in labels.items()},
            tty=bool(config.get("Tty")),
            subscription_id=subscription_id,
        )


@attrs.frozen
class LogStreamEnded:
    """The stream ended for good; ``reason`` is exited, removed, unsubscribed or pool stopped.

    ``exit_code`` is the container's exit code when the reason is ``exited`` (and
    the daemon said it), else ``None``.
    """

    container_id: str
    reason: str
    subscription_id: str = ""
    exit_code: int | None = None
    endpoint: str = "default"


@attrs.frozen
class LogStreamError:
    """The stream gave up (e.g. the daemon stayed unreachable); ``error`` says why."""

    container_id: str
    error: str
    subscription_id: str = ""
    endpoint: str = "default"


@attrs.frozen
class DockerEvent:
    """One event from the daemon's event stream."""

    type: str
    action: str
    id: str
    attributes: Mapping[str, str]
    time_ns: int
    endpoint: str = "default"


@attrs.frozen
class Subscription:
    """Reply to a subscribe request: keep ``id`` to unsubscribe.

    An id names its endpoint (``"web1/logs-..."``); a subscription over several
    endpoints has one id joining theirs with ``+``, and ``Unsubscribe`` of it
    ends them all.
    """

    id: str
    kind: str
    target: str = ""


@attrs.frozen
class SubscribeLogs:
    """Follow one container's logs and send them to ``subscriber`` as :class:`LogChunk`.

    The subscriber gets :class:`LogStreamStarted` first, then the chunks. With
    ``resume`` (a chunk's :attr:`LogChunk.position`) it continues exactly after
    that line, ignoring ``since`` and ``tail`` for the sources the position
    knows; a source it does not know starts from ``since``/``tail``.
    """

    container: str = attrs.field(validator=_container_ref)
    subscriber: ActorRef[Any] = attrs.field(validator=_actor_ref)
    stdout: bool = attrs.field(default=True, validator=v.instance_of(bool))
    stderr: bool = attrs.field(default=True, validator=v.instance_of(bool))
    since: float | str | None = attrs.field(default=None, validator=_since)
    tail: int | Literal["all"] = attrs.field(default="all", validator=_tail)
    follow: bool = attrs.field(default=True, validator=v.instance_of(bool))
    resume: LogPosition | None = attrs.field(
        default=None, validator=v.optional(v.instance_of(LogPosition))
    )
    endpoint: str | None = attrs.field(default=None, validator=_endpoint, kw_only=True)

    def __attrs_post_init__(self) -> None:
        if self.resume is not None and not self.follow:
            msg = "SubscribeLogs(resume=...) continues a followed stream; it needs follow=True"
            raise ValueError(msg)


@attrs.frozen
class Unsubscribe:
    """Stop a subscription; its subscriber gets ``LogStreamEnded(reason="unsubscribed")``."""

    subscription_id: str = attrs.field(validator=v.instance_of(str))


@attrs.frozen
class SubscribeEvents:
    """Send the daemon's events matching ``filters`` to ``subscriber`` as :class:`DockerEvent`.

    ``endpoints``: the endpoints to cover (a name or several); ``None``, every one.
    """

    subscriber: ActorRef[Any] = attrs.field(validator=_actor_ref)
    filters: Mapping[str, Any] | None = attrs.field(
        default=None, converter=_freeze_filters, validator=_filters
    )
    endpoints: tuple[str, ...] | None = attrs.field(
        default=None, converter=_endpoint_names, validator=_endpoint_tuple, kw_only=True
    )


def position_key(endpoint: str, container_id: str) -> str:
    """A container's key in a :class:`PositionStore`: its id, prefixed by a named endpoint.

    Container ids are per daemon. With the one ``default`` endpoint the key is
    the bare id (so a single-daemon store stays readable); with named
    endpoints it is ``"endpoint/id"``. :func:`split_position_key` undoes it.
    """
    return container_id if endpoint == "default" else f"{endpoint}/{container_id}"


def split_position_key(key: str) -> tuple[str, str]:
    """``(endpoint, container id)`` of a :func:`position_key`."""
    endpoint, sep, cid = key.rpartition("/")
    return (endpoint, cid) if sep else ("default", key)


@runtime_checkable
class PositionStore(Protocol):
    """Where a FollowContainers subscriber keeps each container's :class:`LogPosition`.

    The subscriber calls :meth:`update` once it has *handled* a chunk (written
    it out, committed it): a position saved before that would lose the chunk
    in a crash, one saved much later repeats lines. ``FollowContainers``
    reads :meth:`positions` once, at its start, and continues every container
    it knows exactly after its position. Keys are :func:`position_key`:
    the container id, prefixed by its endpoint when it is not ``default``.
    ``actorpool.logs.positions`` has a
    file implementation.
    """

    def positions(self) -> Mapping[str, LogPosition]:
        """Container id -> position, as known now."""
        ...

    def baseline(self) -> int | None:
        """Unix time (ns) since which containers the store does not know are read in full.

        ``None`` for a new store: such containers then start from the
        request's ``tail``, as without a store.
        """
        ...

    def update(self, container_id: str, position: LogPosition) -> None:
        """Record that everything up to ``position`` of this container was handled."""
        ...

    def forget(self, container_id: str) -> None:
        """Drop a container (it was removed: there is nothing more to read)."""
        ...


_EXCLUDE_KEYS: Final = frozenset({"label", "name", "image"})


def _exclude(inst: object, attr: attrs.Attribute[Any], value: Mapping[str, Any] | None) -> None:
    _filters(inst, attr, value)
    if value is None:
        return
    wrong = sorted(set(value) - _EXCLUDE_KEYS)
    if wrong:
        msg = f"{attr.name} takes the keys label, name and image, got {wrong}"
        raise ValueError(msg)
    for key, item in value.items():
        items = item if isinstance(item, tuple) else (item,)
        if not items or not all(isinstance(x, str) and x for x in items):
            msg = f"{attr.name}[{key!r}] must be a non-empty string or list of them, got {item!r}"
            raise ValueError(msg)


def _positions(_inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, PositionStore):
        msg = f"{attr.name} must be a PositionStore (positions, baseline, update, forget)"
        raise ValueError(msg)


@attrs.frozen
class FollowContainers:
    """Follow the logs of every running container matching ``filters``, now and later.

    Attributes:
        filters: Docker list filters (``{"label": ["app=web"]}``), evaluated by the daemon.
        exclude: Containers matching any of these are not followed: ``label``
            (``key`` or ``key=value``), ``name`` and ``image`` (shell-style
            patterns, e.g. ``"db-*"``).
        name: Only containers whose name matches this shell-style pattern.
        positions: Continue every container the store knows exactly after its
            position, including containers that exited meanwhile (read to their
            end); the subscriber updates the store as it handles chunks.
        endpoints: The endpoints to cover (a name or several); ``None``, every one.
    """

    subscriber: ActorRef[Any] = attrs.field(validator=_actor_ref)
    filters: Mapping[str, Any] | None = attrs.field(
        default=None, converter=_freeze_filters, validator=_filters
    )
    stdout: bool = attrs.field(default=True, validator=v.instance_of(bool))
    stderr: bool = attrs.field(default=True, validator=v.instance_of(bool))
    tail: int | Literal["all"] = attrs.field(default="all", validator=_tail)
    exclude: Mapping[str, Any] | None = attrs.field(
        default=None, converter=_freeze_filters, validator=_exclude, kw_only=True
    )
    name: str | None = attrs.field(
        default=None, validator=v.optional(v.instance_of(str)), kw_only=True
    )
    positions: PositionStore | None = attrs.field(
        default=None, validator=_positions, kw_only=True, eq=False
    )
    endpoints: tuple[str, ...] | None = attrs.field(
        default=None, converter=_endpoint_names, validator=_endpoint_tuple, kw_only=True
    )
