"""Bad input, tried for real: wrong messages, unknown ids, and daemon addresses that lead nowhere.

Every case must end in a typed error, and within its deadline: each call is
timed from the caller's side and may overrun its ``timeout`` by at most
:data:`TOLERANCE` (thread scheduling on a shared 2-core machine). The frame
parser's own fuzzing lives in ``tests/test_frames.py``.
"""

from __future__ import annotations

import contextlib
import math
import os
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
    Ping,
    Request,
    SubscribeEvents,
    SubscribeLogs,
    Unsubscribe,
    Version,
)
from actorpool.pool import Pool

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


# (what, build, exception type, the field the message must name)
BAD_MESSAGES: list[tuple[str, Callable[[], object], type[Exception], str]] = [
    ("Request timeout 0", lambda: Request(timeout=0), ValueError, "timeout"),
    ("Ping negative timeout", lambda: Ping(timeout=-1), ValueError, "timeout"),
    ("Ping timeout as text", lambda: Ping(timeout="5"), ValueError, "timeout"),  # type: ignore[arg-type]
    ("Ping timeout True", lambda: Ping(timeout=True), ValueError, "timeout"),
    ("Ping timeout NaN", lambda: Ping(timeout=math.nan), ValueError, "timeout"),
    ("Version timeout list", lambda: Version(timeout=[1]), ValueError, "timeout"),  # type: ignore[arg-type]
    ("Info timeout -inf", lambda: Info(timeout=-math.inf), ValueError, "timeout"),
    ("ListContainers all='yes'", lambda: ListContainers(all="yes"), TypeError, "all"),  # type: ignore[arg-type]
    ("ListContainers filters list", lambda: ListContainers(filters=["a=b"]), ValueError, "filters"),  # type: ignore[arg-type]
    ("ListContainers filters int key", lambda: ListContainers(filters={1: "x"}), ValueError, "filters"),  # type: ignore[dict-item]
    ("ListContainers limit 0", lambda: ListContainers(limit=0), ValueError, "limit"),
    ("ListContainers limit text", lambda: ListContainers(limit="3"), TypeError, "limit"),  # type: ignore[arg-type]
    ("ListContainers limit True", lambda: ListContainers(limit=True), TypeError, "limit"),
    ("InspectContainer empty", lambda: InspectContainer(""), ValueError, "container"),
    ("InspectContainer None", lambda: InspectContainer(None), ValueError, "container"),  # type: ignore[arg-type]
    ("InspectContainer path", lambda: InspectContainer("../../etc/passwd"), ValueError, "container"),
    ("InspectContainer space", lambda: InspectContainer("a b"), ValueError, "container"),
    ("InspectContainer too long", lambda: InspectContainer("a" * 300), ValueError, "container"),
    ("InspectContainer query", lambda: InspectContainer("x?all=1"), ValueError, "container"),
    ("ContainerStats int", lambda: ContainerStats(42), ValueError, "container"),  # type: ignore[arg-type]
    ("ContainerLogs empty id", lambda: ContainerLogs(""), ValueError, "container"),
    ("ContainerLogs stdout text", lambda: ContainerLogs("c", stdout="no"), TypeError, "stdout"),  # type: ignore[arg-type]
    ("ContainerLogs stderr None", lambda: ContainerLogs("c", stderr=None), TypeError, "stderr"),  # type: ignore[arg-type]
    ("ContainerLogs timestamps 1", lambda: ContainerLogs("c", timestamps=1), TypeError, "timestamps"),  # type: ignore[arg-type]
    ("ContainerLogs since True", lambda: ContainerLogs("c", since=True), ValueError, "since"),
    ("ContainerLogs since list", lambda: ContainerLogs("c", since=[1]), ValueError, "since"),  # type: ignore[arg-type]
    ("ContainerLogs until object", lambda: ContainerLogs("c", until=object()), ValueError, "until"),  # type: ignore[arg-type]
    ("ContainerLogs tail -1", lambda: ContainerLogs("c", tail=-1), ValueError, "tail"),
    ("ContainerLogs tail text", lambda: ContainerLogs("c", tail="some"), ValueError, "tail"),  # type: ignore[arg-type]
    ("ContainerLogs tail True", lambda: ContainerLogs("c", tail=True), ValueError, "tail"),
    ("ListImages all 1", lambda: ListImages(all=1), TypeError, "all"),  # type: ignore[arg-type]
    ("Execute not callable", lambda: Execute(42), TypeError, "fn"),  # type: ignore[arg-type]
    ("SubscribeLogs empty id", lambda: SubscribeLogs("", _ref()), ValueError, "container"),
    ("SubscribeLogs subscriber str", lambda: SubscribeLogs("c", "me"), ValueError, "subscriber"),  # type: ignore[arg-type]
    ("SubscribeLogs stdout 0", lambda: SubscribeLogs("c", _ref(), stdout=0), TypeError, "stdout"),  # type: ignore[arg-type]
    ("SubscribeLogs since dict", lambda: SubscribeLogs("c", _ref(), since={}), ValueError, "since"),  # type: ignore[arg-type]
    ("SubscribeLogs tail -5", lambda: SubscribeLogs("c", _ref(), tail=-5), ValueError, "tail"),
    ("SubscribeLogs follow text", lambda: SubscribeLogs("c", _ref(), follow="y"), TypeError, "follow"),  # type: ignore[arg-type]
    ("Unsubscribe int", lambda: Unsubscribe(5), TypeError, "subscription_id"),  # type: ignore[arg-type]
    ("Unsubscribe None", lambda: Unsubscribe(None), TypeError, "subscription_id"),  # type: ignore[arg-type]
    ("SubscribeEvents no ref", lambda: SubscribeEvents(None), ValueError, "subscriber"),  # type: ignore[arg-type]
    ("SubscribeEvents filters str", lambda: SubscribeEvents(_ref(), filters="type=container"), ValueError, "filters"),  # type: ignore[arg-type]
    ("FollowContainers ref str", lambda: FollowContainers("me"), ValueError, "subscriber"),  # type: ignore[arg-type]
    ("FollowContainers filters list", lambda: FollowContainers(_ref(), filters=[("a", "b")]), ValueError, "filters"),  # type: ignore[arg-type]
    ("FollowContainers stderr 1", lambda: FollowContainers(_ref(), stderr=1), TypeError, "stderr"),  # type: ignore[arg-type]
    ("FollowContainers tail text", lambda: FollowContainers(_ref(), tail="x"), ValueError, "tail"),  # type: ignore[arg-type]
]  # fmt: skip

#: Message classes a user sends; each must appear in BAD_MESSAGES.
SENT_BY_USERS = {
    "Request", "Ping", "Version", "Info", "ListContainers", "InspectContainer",
    "ContainerStats", "ContainerLogs", "ListImages", "Execute", "SubscribeLogs",
    "Unsubscribe", "SubscribeEvents", "FollowContainers",
}  # fmt: skip
#: Records actorpool builds and sends (replies, chunks, alerts): not user input, so not
#: validated, but frozen so that one receiver cannot change what another sees.
BUILT_BY_ACTORPOOL = {
    "ConnectionStatus", "PoolStatusReport", "HealthAlert", "LogLine", "LogChunk",
    "LogStreamEnded", "LogStreamError", "DockerEvent", "Subscription",
}  # fmt: skip


def test_every_message_class_is_covered() -> None:
    """A message class added later must be classified here (and its bad input tried)."""
    classes = {name for name in messages.__all__ if isinstance(getattr(messages, name), type)}
    assert classes == SENT_BY_USERS | BUILT_BY_ACTORPOOL | {"PoolStatus"}
    tried = {build().__class__.__name__ for _, build, _, _ in _GOOD}
    assert tried == SENT_BY_USERS
    covered = {what.split()[0] for what, _, _, _ in BAD_MESSAGES}
    assert covered == SENT_BY_USERS


# A valid instance of each class in BAD_MESSAGES, so a bad field is the only thing wrong.
_GOOD: list[tuple[str, Callable[[], object], type[Exception], str]] = [
    ("Request", lambda: Request(timeout=1), Exception, ""),
    ("Ping", lambda: Ping(timeout=0.5), Exception, ""),
    ("Version", lambda: Version(), Exception, ""),
    ("Info", lambda: Info(timeout=math.inf), Exception, ""),
    ("ListContainers", lambda: ListContainers(all=True, filters={"label": ["a=b"]}, limit=3), Exception, ""),
    ("InspectContainer", lambda: InspectContainer("/web_1.blue-2"), Exception, ""),
    ("ContainerStats", lambda: ContainerStats(MISSING_ID), Exception, ""),
    ("ContainerLogs", lambda: ContainerLogs("c", since="1700000000.000000001", tail=0), Exception, ""),
    ("ListImages", lambda: ListImages(all=True), Exception, ""),
    ("Execute", lambda: Execute(len), Exception, ""),
    ("SubscribeLogs", lambda: SubscribeLogs("c", _ref(), since=1.5, tail="all"), Exception, ""),
    ("Unsubscribe", lambda: Unsubscribe("logs-1"), Exception, ""),
    ("SubscribeEvents", lambda: SubscribeEvents(_ref(), filters={"type": "container"}), Exception, ""),
    ("FollowContainers", lambda: FollowContainers(_ref(), filters=None, tail=10), Exception, ""),
]  # fmt: skip


@pytest.mark.parametrize(("what", "build"), [(w, b) for w, b, _, _ in _GOOD], ids=[w for w, *_ in _GOOD])
def test_valid_messages_are_accepted(what: str, build: Callable[[], object]) -> None:
    assert type(build()).__name__ == what


@pytest.mark.parametrize(
    ("build", "error", "field"),
    [(b, e, f) for _, b, e, f in BAD_MESSAGES],
    ids=[w for w, *_ in BAD_MESSAGES],
)
def test_a_bad_field_fails_in_the_callers_thread_naming_the_field(
    build: Callable[[], object], error: type[Exception], field: str
) -> None:
    with pytest.raises(error) as caught:
        build()
    assert type(caught.value) is not Exception
    text = str(caught.value)
    assert f"'{field}'" in text or f"{field} " in text or text.startswith(field), text


def test_messages_and_records_are_frozen() -> None:
    line = messages.LogLine("stdout", 1, b"x")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        line.data = b"y"  # type: ignore[misc]
    ping = Ping(timeout=1)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        ping.timeout = 2  # type: ignore[misc]
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


@pytest.mark.parametrize(
    "message",
    [
        ContainerLogs(MISSING_ID, since="yesterday", timeout=3),
        ListContainers(filters={"no-such-filter": ["x"]}, timeout=3),
    ],
    ids=["since-garbage", "unknown-filter"],
)
def test_values_the_daemon_rejects_are_bad_requests(
    pool: Pool, make_container: Callable[..., str], message: Any
) -> None:
    if isinstance(message, ContainerLogs):
        message = attrs.evolve(message, container=make_container("true", start=False))
    outcome, seconds = timed_ask(pool, message)
    assert isinstance(outcome, BadRequest), outcome
    assert 400 <= (outcome.status or 0) < 500
    assert seconds <= message.timeout + TOLERANCE


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


REFUSING = ["regular-file", "directory", "missing", "bound-not-listening", "closed-socket", "tcp-refused"]  # fmt: skip


def check_unreachable(error: object) -> None:
    """The typed error of a daemon that refuses (or has no) connections."""
    assert isinstance(error, RetriesExhausted | NoHealthyConnections | DockerUnavailable), error
    if isinstance(error, RetriesExhausted):
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


@pytest.mark.parametrize("version", ["1.41", "auto"])
def test_a_tcp_host_that_never_answers_times_out_by_the_deadline(
    version: str, make_config: MakeConfig
) -> None:
    with silent_tcp_listener() as port:
        config = make_config(
            f"tcp://127.0.0.1:{port}",
            api={"version": version, "timeout": 3.0},
            pool={"connection_timeout": 5.0},
        )
        began = time.monotonic()
        pool = actorpool.start(config)
        started = time.monotonic() - began
        try:
            assert started <= START_LIMIT
            for message in (Ping(timeout=1.5), InspectContainer(MISSING_ID, timeout=1.5)):
                outcome, seconds = timed_ask(pool, message)
                assert isinstance(outcome, RequestTimeout | NoHealthyConnections), outcome
                assert seconds <= 1.5 + TOLERANCE, (message, seconds)
        finally:
            began = time.monotonic()
            pool.stop()
            stopped = time.monotonic() - began
        # A connection stuck on the silent host is bounded by its own timeout, not by luck.
        assert stopped <= config.pool.connection_timeout + TOLERANCE


def test_start_with_the_default_config_and_a_dead_docker_host_returns_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    began = time.monotonic()
    pool = actorpool.start()
    try:
        assert time.monotonic() - began <= START_LIMIT
        assert pool.config.pool.socket_path == f"unix://{tmp_path}/nothing.sock"
        outcome, seconds = timed_ask(pool, Ping(timeout=2))
        check_unreachable(outcome)
        assert seconds <= 2 + TOLERANCE
    finally:
        pool.stop()


def test_the_errors_are_actorpool_errors() -> None:
    # Callers can catch the whole family at once; the typed errors above all belong to it.
    for error in (NotFound, BadRequest, RequestTimeout, RetriesExhausted, NoHealthyConnections):
        assert issubclass(error, ActorPoolError)
    assert os.path.exists("/proc/self")  # the fd and thread checks above rely on procfs
