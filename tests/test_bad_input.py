"""Bad input, tried for real: wrong messages, unknown ids, and daemon addresses that lead nowhere.

Every case must end in a typed error, and within its deadline: each call is
timed from the caller's side and may overrun its ``timeout`` by at most
:data:`TOLERANCE` (thread scheduling on a shared 2-core machine). The frame
parser's own fuzzing lives in ``tests/transport/test_frames.py``.
"""

from __future__ import annotations

import contextlib
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pykka
import pytest

import actorpool
from actorpool import messages
from actorpool.config import Config
from actorpool.errors import (
    ActorPoolError,
    BadRequest,
    DockerUnavailable,
    NoHealthyConnections,
    NotFound,
    PoolStopped,
    RequestTimeout,
    RetriesExhausted,
    UnknownMessage,
)
from actorpool.messages import (
    ContainerLogs,
    ContainerStats,
    Execute,
    FollowContainers,
    Info,
    InspectContainer,
    ListContainers,
    ListImages,
    LogPosition,
    Ping,
    Request,
    SubscribeEvents,
    SubscribeLogs,
    Unsubscribe,
    Version,
)
from actorpool.runtime import Pool
from actorpool.transport.endpoint import daemon_url

MakeConfig = Callable[..., Config]

#: Seconds a call may return after its deadline and still count as on time.
TOLERANCE = 1.0
#: ``actorpool.start()`` must return within this, whatever the daemon address.
START_LIMIT = 3.0
MISSING_ID = "0123456789abcdef" * 4


class Sink(pykka.ThreadingActor):
    """A subscriber that keeps what it gets."""

    def __init__(self) -> None:
        super().__init__()
        self.got: list[Any] = []

    def on_receive(self, message: Any) -> None:
        self.got.append(message)


@pytest.fixture
def sink() -> Iterator[pykka.ActorRef[Any]]:
    ref = Sink.start()
    yield ref
    with contextlib.suppress(pykka.ActorDeadError):
        ref.stop()


@pytest.fixture
def pool(make_config: MakeConfig) -> Iterator[Pool]:
    with actorpool.start(make_config()) as p:
        yield p


def timed_ask(pool: Pool, message: Any) -> tuple[Any, float]:
    """Ask with no timeout of our own (the pool's deadline must bound it): (outcome, seconds)."""
    began = time.monotonic()
    try:
        outcome: Any = pool.router.ask(message)
    except Exception as exc:
        outcome = exc
    return outcome, time.monotonic() - began


def chain(error: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    cur: BaseException | None = error
    while cur is not None and cur not in found:
        found.append(cur)
        cur = cur.__cause__
    return found


# --------------------------------------------------------------------------- messages


def _ref() -> Any:
    # Validators only look at the shape of a ref; a stopped actor's ref is one.
    ref = Sink.start()
    ref.stop()
    return ref


# (what, build, exception type(s), the field the message must name)
BadType = type[Exception] | tuple[type[Exception], ...]
BAD_MESSAGES: list[tuple[str, Callable[[], object], BadType, str]] = [
    ("Request timeout 0", lambda: Request(timeout=0), ValueError, "timeout"),
    ("Ping negative timeout", lambda: Ping(timeout=-1), ValueError, "timeout"),
    ("Ping timeout as text", lambda: Ping(timeout="5"), ValueError, "timeout"),
    ("Ping timeout True", lambda: Ping(timeout=True), ValueError, "timeout"),
    ("Ping timeout NaN", lambda: Ping(timeout=math.nan), ValueError, "timeout"),
    ("Version timeout list", lambda: Version(timeout=[1]), ValueError, "timeout"),
    ("Info timeout -inf", lambda: Info(timeout=-math.inf), ValueError, "timeout"),
    ("ListContainers all='yes'", lambda: ListContainers(all="yes"), TypeError, "all"),
    ("ListContainers filters list", lambda: ListContainers(filters=["a=b"]), ValueError, "filters"),
    (
        "ListContainers filters int key",
        lambda: ListContainers(filters={1: "x"}),
        ValueError,
        "filters",
    ),
    ("ListContainers limit 0", lambda: ListContainers(limit=0), ValueError, "limit"),
    ("ListContainers limit text", lambda: ListContainers(limit="3"), TypeError, "limit"),
    (
        "ListContainers limit True",
        lambda: ListContainers(limit=True),
        (TypeError, ValueError),
        "limit",
    ),
    ("InspectContainer empty", lambda: InspectContainer(""), ValueError, "container"),
    ("InspectContainer None", lambda: InspectContainer(None), ValueError, "container"),
    (
        "InspectContainer path",
        lambda: InspectContainer("../../etc/passwd"),
        ValueError,
        "container",
    ),
    ("InspectContainer space", lambda: InspectContainer("a b"), ValueError, "container"),
    ("InspectContainer too long", lambda: InspectContainer("a" * 300), ValueError, "container"),
    ("InspectContainer query", lambda: InspectContainer("x?all=1"), ValueError, "container"),
    ("ContainerStats int", lambda: ContainerStats(42), ValueError, "container"),
    ("ContainerLogs empty id", lambda: ContainerLogs(""), ValueError, "container"),
    ("ContainerLogs stdout text", lambda: ContainerLogs("c", stdout="no"), TypeError, "stdout"),
    ("ContainerLogs stderr None", lambda: ContainerLogs("c", stderr=None), TypeError, "stderr"),
    (
        "ContainerLogs timestamps 1",
        lambda: ContainerLogs("c", timestamps=1),
        TypeError,
        "timestamps",
    ),
    ("ContainerLogs since True", lambda: ContainerLogs("c", since=True), ValueError, "since"),
    ("ContainerLogs since list", lambda: ContainerLogs("c", since=[1]), ValueError, "since"),
    ("ContainerLogs since NaN", lambda: ContainerLogs("c", since=math.nan), ValueError, "since"),
    ("ContainerLogs since negative", lambda: ContainerLogs("c", since=-5), ValueError, "since"),
    (
        "ContainerLogs since word",
        lambda: ContainerLogs("c", since="yesterday"),
        ValueError,
        "since",
    ),
    ("ContainerLogs until inf", lambda: ContainerLogs("c", until=math.inf), ValueError, "until"),
    ("ContainerLogs until object", lambda: ContainerLogs("c", until=object()), ValueError, "until"),
    ("ContainerLogs tail -1", lambda: ContainerLogs("c", tail=-1), ValueError, "tail"),
    ("ContainerLogs tail text", lambda: ContainerLogs("c", tail="some"), ValueError, "tail"),
    ("ContainerLogs tail True", lambda: ContainerLogs("c", tail=True), ValueError, "tail"),
    ("ListImages all 1", lambda: ListImages(all=1), TypeError, "all"),
    ("Execute not callable", lambda: Execute(42), TypeError, "fn"),
    ("SubscribeLogs empty id", lambda: SubscribeLogs("", _ref()), ValueError, "container"),
    ("SubscribeLogs subscriber str", lambda: SubscribeLogs("c", "me"), ValueError, "subscriber"),
    ("SubscribeLogs stdout 0", lambda: SubscribeLogs("c", _ref(), stdout=0), TypeError, "stdout"),
    ("SubscribeLogs since dict", lambda: SubscribeLogs("c", _ref(), since={}), ValueError, "since"),
    (
        "SubscribeLogs since word",
        lambda: SubscribeLogs("c", _ref(), since="1h ago"),
        ValueError,
        "since",
    ),
    ("SubscribeLogs tail -5", lambda: SubscribeLogs("c", _ref(), tail=-5), ValueError, "tail"),
    (
        "SubscribeLogs follow text",
        lambda: SubscribeLogs("c", _ref(), follow="y"),
        TypeError,
        "follow",
    ),
    ("Unsubscribe int", lambda: Unsubscribe(5), TypeError, "subscription_id"),
    ("Unsubscribe None", lambda: Unsubscribe(None), TypeError, "subscription_id"),
    ("SubscribeEvents no ref", lambda: SubscribeEvents(None), ValueError, "subscriber"),
    (
        "SubscribeEvents filters str",
        lambda: SubscribeEvents(_ref(), filters="type=container"),
        ValueError,
        "filters",
    ),
    ("FollowContainers ref str", lambda: FollowContainers("me"), ValueError, "subscriber"),
    (
        "FollowContainers filters list",
        lambda: FollowContainers(_ref(), filters=[("a", "b")]),
        ValueError,
        "filters",
    ),
    ("FollowContainers stderr 1", lambda: FollowContainers(_ref(), stderr=1), TypeError, "stderr"),
    ("FollowContainers tail text", lambda: FollowContainers(_ref(), tail="x"), ValueError, "tail"),
    (
        "FollowContainers exclude status",
        lambda: FollowContainers(_ref(), exclude={"status": "exited"}),
        ValueError,
        "exclude",
    ),
    (
        "FollowContainers exclude empty",
        lambda: FollowContainers(_ref(), exclude={"label": ""}),
        ValueError,
        "exclude",
    ),
    ("FollowContainers name 5", lambda: FollowContainers(_ref(), name=5), TypeError, "name"),
    (
        "FollowContainers positions dict",
        lambda: FollowContainers(_ref(), positions={}),
        ValueError,
        "positions",
    ),
    (
        "SubscribeLogs resume text",
        lambda: SubscribeLogs("c", _ref(), resume="v1;stdout=1:1"),
        TypeError,
        "resume",
    ),
    ("LogPosition count 0", lambda: LogPosition(stdout=(5, 0)), ValueError, "stdout"),
    ("LogPosition negative", lambda: LogPosition(stderr=(-1, 1)), ValueError, "stderr"),
    ("LogPosition floats", lambda: LogPosition(stdout=(1.5, 1)), ValueError, "stdout"),
    ("LogPosition list", lambda: LogPosition(stdout=[1, 1]), ValueError, "stdout"),
]

#: Message classes a user sends; each must appear in BAD_MESSAGES.
SENT_BY_USERS = {
    "Request",
    "Ping",
    "Version",
    "Info",
    "ListContainers",
    "InspectContainer",
    "ContainerStats",
    "ContainerLogs",
    "ListImages",
    "Execute",
    "SubscribeLogs",
    "Unsubscribe",
    "SubscribeEvents",
    "FollowContainers",
    "LogPosition",
}
#: Records actorpool builds and sends (replies, chunks, alerts): not user input, so not
#: validated, but frozen so that one receiver cannot change what another sees.
BUILT_BY_ACTORPOOL = {
    "ConnectionStatus",
    "PoolStatusReport",
    "HealthAlert",
    "LogLine",
    "LogChunk",
    "LogStreamEnded",
    "LogStreamError",
    "LogStreamStarted",
    "DockerEvent",
    "Subscription",
    "ScalingDecision",
    "StreamStatsReport",
}


def test_every_message_class_is_covered() -> None:
    """A message class added later must be classified here (and its bad input tried)."""
    classes = {name for name in messages.__all__ if isinstance(getattr(messages, name), type)}
    # PositionStore is a protocol a user implements, not a message.
    exempt = {"PoolStatus", "StreamStats", "PositionStore"}
    assert classes == SENT_BY_USERS | BUILT_BY_ACTORPOOL | exempt
    tried = {build().__class__.__name__ for _, build in _GOOD}
    assert tried == SENT_BY_USERS
    covered = {what.split()[0] for what, _, _, _ in BAD_MESSAGES}
    assert covered == SENT_BY_USERS


# A valid instance of each class in BAD_MESSAGES, so a bad field is the only thing wrong.
_GOOD: list[tuple[str, Callable[[], object]]] = [
    ("Request", lambda: Request(timeout=1)),
    ("Ping", lambda: Ping(timeout=0.5)),
    ("Version", lambda: Version()),
    ("Info", lambda: Info(timeout=30)),
    ("ListContainers", lambda: ListContainers(all=True, filters={"label": ["a=b"]}, limit=3)),
    ("InspectContainer", lambda: InspectContainer("/web_1.blue-2")),
    ("ContainerStats", lambda: ContainerStats(MISSING_ID)),
    ("ContainerLogs", lambda: ContainerLogs("c", since="1700000000.000000001", tail=0)),
    ("ListImages", lambda: ListImages(all=True)),
    ("Execute", lambda: Execute(len)),
    ("SubscribeLogs", lambda: SubscribeLogs("c", _ref(), since=1.5, tail="all")),
    ("Unsubscribe", lambda: Unsubscribe("logs-1")),
    ("SubscribeEvents", lambda: SubscribeEvents(_ref(), filters={"type": "container"})),
    ("FollowContainers", lambda: FollowContainers(_ref(), filters=None, tail=10)),
    ("LogPosition", lambda: LogPosition(stdout=(5, 1), stderr=None)),
]


@pytest.mark.parametrize(("what", "build"), _GOOD, ids=[w for w, _ in _GOOD])
def test_valid_messages_are_accepted(what: str, build: Callable[[], object]) -> None:
    assert type(build()).__name__ == what


@pytest.mark.parametrize(
    ("build", "error", "field"),
    [(b, e, f) for _, b, e, f in BAD_MESSAGES],
    ids=[w for w, *_ in BAD_MESSAGES],
)
def test_a_bad_field_fails_in_the_callers_thread_naming_the_field(
    build: Callable[[], object], error: BadType, field: str
) -> None:
    """Wrong types and values fail at construction, never later inside an actor.

    ``since``/``until`` must be a finite, non-negative Unix time or the daemon's
    ``"seconds.nanoseconds"``: anything else is refused later (a ValueError from
    the connection actor) or by the daemon with HTTP 500, an error about that
    request alone (the connection stays healthy).
    """
    with pytest.raises(error) as caught:
        build()
    text = str(caught.value)
    assert f"'{field}'" in text or f"{field} " in text or text.startswith(field), text


def test_messages_and_records_are_frozen() -> None:
    line = messages.LogLine("stdout", 1, b"x")
    with pytest.raises(AttributeError):  # a named tuple (built faster than an attrs class)
        line.data = b"y"
    ping = Ping(timeout=1)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        ping.timeout = 2
    # Filters are frozen too: the caller's list is copied, not shared.
    labels = ["app=web"]
    request = ListContainers(filters={"label": labels})
    labels.append("tier=db")
    assert request.filters == {"label": ("app=web",)}


def test_the_router_answers_junk_with_unknown_message_and_lives(pool: Pool) -> None:
    for junk in ("hello", 42, None, object(), messages.LogLine("stdout", 0, b"x")):
        with pytest.raises(UnknownMessage, match="does not handle"):
            pool.router.ask(junk, timeout=5)
        pool.router.tell(junk)  # by tell, a Pykka actor would die of an exception
    assert pool.router.ask(Ping(timeout=5)) is True


def test_the_abstract_request_fails_cleanly(pool: Pool) -> None:
    outcome, seconds = timed_ask(pool, Request(timeout=3))
    assert isinstance(outcome, NotImplementedError), outcome
    assert seconds <= 3 + TOLERANCE
    assert pool.router.ask(Ping(timeout=5)) is True


# --------------------------------------------------------------------------- unknown ids


@pytest.mark.parametrize(
    "message",
    [
        InspectContainer(MISSING_ID, timeout=3),
        InspectContainer("no-such-container", timeout=3),
        ContainerStats(MISSING_ID, timeout=3),
        ContainerLogs(MISSING_ID, timeout=3),
    ],
    ids=["inspect-id", "inspect-name", "stats", "logs"],
)
def test_unknown_containers_are_not_found_within_the_deadline(pool: Pool, message: Any) -> None:
    outcome, seconds = timed_ask(pool, message)
    assert isinstance(outcome, NotFound), outcome
    assert message.container in str(outcome)
    assert outcome.status == 404
    assert seconds <= message.timeout + TOLERANCE
    # Never retried, never held against the connection.
    assert all(c.consecutive_failures == 0 for c in pool.status().connections)


def test_subscribing_to_an_unknown_container_is_not_found(
    pool: Pool, sink: pykka.ActorRef[Any]
) -> None:
    began = time.monotonic()
    with pytest.raises(NotFound):
        pool.router.ask(SubscribeLogs(MISSING_ID, sink))
    assert time.monotonic() - began <= pool.config.api.timeout + TOLERANCE
    assert sink.proxy().got.get(timeout=5) == []


def test_a_filter_the_daemon_rejects_is_a_bad_request_never_retried(pool: Pool) -> None:
    message = ListContainers(filters={"no-such-filter": ["x"]}, timeout=3)
    outcome, seconds = timed_ask(pool, message)
    assert isinstance(outcome, BadRequest), outcome
    assert outcome.status == 400
    assert "no-such-filter" in str(outcome)
    assert seconds <= message.timeout + TOLERANCE
    assert all(c.consecutive_failures == 0 for c in pool.status().connections)


# --------------------------------------------------------------------------- dead addresses


@contextlib.contextmanager
def silent_tcp_listener() -> Iterator[int]:
    """A loopback TCP listener that accepts connections and never answers; yields its port."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept, name="silent-listener", daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        server.close()


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def dead_address(kind: str, tmp_path: Path) -> Iterator[str]:
    """A daemon address where nothing answers, of the given kind."""
    path = tmp_path / "docker.sock"
    if kind == "regular-file":
        path.write_text("not a socket\n")
        yield f"unix://{path}"
    elif kind == "directory":
        path.mkdir()
        yield f"unix://{path}"
    elif kind == "missing":
        yield f"unix://{path}"
    elif kind in ("bound-not-listening", "closed-socket"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(path))
        if kind == "closed-socket":
            sock.close()
        try:
            yield f"unix://{path}"
        finally:
            sock.close()
    elif kind == "tcp-refused":
        yield f"tcp://127.0.0.1:{free_tcp_port()}"
    else:
        msg = f"unknown kind {kind}"
        raise AssertionError(msg)


REFUSING = [
    "regular-file",
    "directory",
    "missing",
    "bound-not-listening",
    "closed-socket",
    "tcp-refused",
]


def check_unreachable(error: object, *, deadline_ok: bool = False) -> None:
    """The typed error of a daemon that refuses (or has no) connections.

    ``deadline_ok``: with production retry delays (1 s, 2 s, ...) the deadline
    may come before the retries run out: ``RequestTimeout`` chaining the
    ``DockerUnavailable`` is then the right answer.
    """
    allowed: tuple[type[Exception], ...] = (
        RetriesExhausted,
        NoHealthyConnections,
        DockerUnavailable,
    )
    if deadline_ok:
        allowed += (RequestTimeout,)
    assert isinstance(error, allowed), error
    if isinstance(error, RetriesExhausted | RequestTimeout):
        assert any(isinstance(e, DockerUnavailable) for e in chain(error)), chain(error)
    assert "Docker" in str(error) or "daemon" in str(error)


@pytest.mark.parametrize("kind", REFUSING)
def test_a_dead_socket_gets_a_typed_error_within_the_deadline(
    kind: str, tmp_path: Path, make_config: MakeConfig
) -> None:
    with dead_address(kind, tmp_path) as url:
        config = make_config(url, api={"timeout": 3.0})
        began = time.monotonic()
        pool = actorpool.start(config)
        started = time.monotonic() - began
        try:
            assert started <= START_LIMIT
            for message in (Ping(timeout=2), ListContainers(timeout=2), Ping(timeout=2)):
                outcome, seconds = timed_ask(pool, message)
                check_unreachable(outcome)
                assert seconds <= 2 + TOLERANCE, (kind, message, seconds)
        finally:
            began = time.monotonic()
            pool.stop()
            assert time.monotonic() - began <= START_LIMIT


def pool_threads() -> list[str]:
    """Names of live threads that belong to a pool (actors, readers, the scheduler)."""
    prefixes = ("RouterActor", "ConnectionActor", "SupervisorActor", "StreamManager", "actorpool-")
    return [
        t.name
        for t in threading.enumerate()
        if t.name.startswith(prefixes) and not t.name.startswith("actorpool-metrics")
    ]


@pytest.mark.parametrize("version", ["1.41", "auto"])
def test_a_tcp_host_that_never_answers_times_out_by_the_deadline(
    version: str, make_config: MakeConfig
) -> None:
    """Calls end by their deadline, and so does ``pool.stop()``.

    ``Pool.stop`` promises that a connection stuck in a Docker call is bounded by
    that call's deadline: here the longest is a health probe's
    (``health_check_timeout``, 2 s), well below ``connection_timeout`` (6 s). With
    ``api.version: auto`` docker-py asks the daemon for its version while the
    client is built, which must be bounded the same way.
    """
    with silent_tcp_listener() as port:
        config = make_config(
            f"tcp://127.0.0.1:{port}",
            api={"version": version, "timeout": 3.0},
            pool={"connection_timeout": 6.0, "health_check_timeout": 2.0},
        )
        began = time.monotonic()
        pool = actorpool.start(config)
        started = time.monotonic() - began
        try:
            assert started <= START_LIMIT
            outcome, seconds = timed_ask(pool, InspectContainer(MISSING_ID, timeout=1.5))
            assert isinstance(outcome, RequestTimeout | NoHealthyConnections), outcome
            assert seconds <= 1.5 + TOLERANCE
        finally:
            began = time.monotonic()
            pool.stop()
            stopped = time.monotonic() - began
            left = pool_threads()
            # Whatever the outcome, leave no thread behind for the next test.
            deadline = time.monotonic() + config.pool.connection_timeout + 2
            while pool_threads() and time.monotonic() < deadline:
                time.sleep(0.05)
        bound = max(1.5, config.pool.health_check_timeout) + TOLERANCE
        assert stopped <= bound, f"pool.stop() took {stopped:.1f}s; threads left: {left}"
        assert left == []


def test_a_call_in_flight_when_the_pool_stops_ends_quietly(
    make_config: MakeConfig, caplog: pytest.LogCaptureFixture
) -> None:
    """The caller gets ``PoolStopped`` at once; the stuck call ends by its deadline.

    When it ends, the connection actor reports to a router that is gone: that
    must not crash the actor (Pykka logs "Unhandled exception" for a crash).
    """
    with silent_tcp_listener() as port:
        config = make_config(f"tcp://127.0.0.1:{port}", api={"version": "1.41"})
        pool = actorpool.start(config)
        try:
            future = pool.router.ask(InspectContainer(MISSING_ID, timeout=2.0), block=False)
            time.sleep(0.3)  # the request is on a connection, waiting for the silent host
        finally:
            began = time.monotonic()
            pool.stop()
            stopped = time.monotonic() - began
        with pytest.raises(ActorPoolError) as caught:
            future.get(timeout=5)
        assert isinstance(caught.value, PoolStopped | RequestTimeout), caught.value
        assert stopped <= 2.0 + TOLERANCE
        deadline = time.monotonic() + 5
        while pool_threads() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pool_threads() == []
        crashes = [
            r.getMessage() for r in caplog.records if "Unhandled exception" in r.getMessage()
        ]
        assert crashes == []


def test_start_with_production_defaults_and_a_dead_docker_host_returns_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``DOCKER_HOST`` names a dead socket; every other setting is the production default.

    (Except the metrics port: 0, so the test cannot collide with a running monitor.)
    """
    url = f"unix://{tmp_path}/nothing.sock"
    monkeypatch.setenv("DOCKER_HOST", url)
    config = Config()
    config = attrs.evolve(config, monitoring=attrs.evolve(config.monitoring, listen="127.0.0.1:0"))
    began = time.monotonic()
    pool = actorpool.start(config)
    try:
        assert time.monotonic() - began <= START_LIMIT
        assert daemon_url(pool.config) == url
        outcome, seconds = timed_ask(pool, Ping(timeout=2))
        check_unreachable(outcome, deadline_ok=True)
        assert isinstance(outcome, ActorPoolError)
        assert seconds <= 2 + TOLERANCE
    finally:
        began = time.monotonic()
        pool.stop()
        assert time.monotonic() - began <= START_LIMIT
