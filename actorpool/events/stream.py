"""The daemon's event stream as an actor: one daemon stream per distinct filter set.

:class:`EventStream` reads ``GET /events`` on a reader thread with a client of
its own and sends every event to its subscribers as a
:class:`~actorpool.messages.DockerEvent`. Subscribers asking for the same
filters share one stream.

docker-py's ``events()`` cannot be used: it passes ``timeout=None`` (a read
can block forever) and offers no way to end it from another thread. Here the
body is read raw; :meth:`_EventReader.interrupt` shuts the socket down, which
wakes the blocked read within milliseconds.

A stream that goes quiet cannot tell an idle daemon from a hung one, so the
actor pings the daemon every ``pool.health_check_interval`` seconds (off its
own thread); a failed ping cuts the stream, and the reader reconnects with
backoff like after any cut.

Resume: after a cut the stream reopens with ``since`` = the last delivered
event's ``timeNano`` as the exact ``"seconds.nanoseconds"`` string. ``since``
is inclusive, so the last events are replayed and dropped by a small window
of recently seen event keys. The daemon keeps only a short buffer of events
and none across its own restart, so a reconnect is also announced to
subscribers that asked for it (:class:`EventsReconnected`, used by
FollowContainers to re-list the containers and pick up any it missed).
Plain subscribers get the replayed events only; events the daemon no longer
has are not synthesized.

Crash: a failed :class:`EventStream` (Pykka restarts nothing) hands its
subscriptions to the manager (:class:`EventStreamFailed`), which starts a new
stream with the same filters and re-adds them; subscribers with
``reconnects`` then get :class:`EventsReconnected` as after a cut. Plain
subscribers miss the events of the gap (about a millisecond).
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import attrs
import docker.utils
import pykka

from actorpool.engine.actor import Actor
from actorpool.errors import (
    StreamError,
    UnknownMessage,
)
from actorpool.logs.context import FailureStreak, GiveUp, StreamContext, transient
from actorpool.messages import DockerEvent, LogStreamEnded, LogStreamError
from actorpool.transport.client import close_quietly, make_client
from actorpool.transport.dialect import DOCKER
from actorpool.transport.frames import format_since

if TYPE_CHECKING:
    from docker import APIClient

__all__ = [
    "AddEventSubscriber",
    "EventStream",
    "EventStreamFailed",
    "EventSubscriber",
    "EventsReady",
    "EventsReconnected",
    "RemoveEventSubscriber",
    "canonical_filters",
    "parse_event",
]

logger = logging.getLogger(__name__)

_RECENT: Final = 512  # event keys remembered to drop the replay after a resume
_READ_SIZE: Final = 65536
_JOIN_TIMEOUT: Final = 2.0
# --- messages ------------------------------------------------------------------------------


@attrs.frozen
class EventSubscriber:
    """One subscription to an event stream.

    Attributes:
        id: The subscription's id.
        public_id: The id put on the end messages it receives.
        ref: The subscriber actor.
        reconnects: Also send it :class:`EventsReconnected` after every reconnect.
    """

    id: str
    public_id: str
    ref: pykka.ActorRef[Any]
    reconnects: bool = False


@attrs.frozen
class AddEventSubscriber:
    """Manager -> stream. ``on_ready(None)`` once the stream is open, ``on_ready(error)`` if not.

    ``on_ready`` runs on the stream's actor thread: it must only complete a
    future or ``tell`` an actor.
    """

    subscriber: EventSubscriber
    on_ready: Callable[[BaseException | None], None]


@attrs.frozen
class RemoveEventSubscriber:
    """Manager -> stream: end this subscription (it gets ``LogStreamEnded(reason)``)."""

    subscription_id: str
    reason: str = "unsubscribed"


@attrs.frozen
class EventsReady:
    """Told to an internal subscriber (FollowContainers) when its event stream is open."""

    subscription_id: str
    error: BaseException | None = None


@attrs.frozen
class EventsReconnected:
    """Told to subscribers with ``reconnects``: the stream was cut and is open again."""

    subscription_id: str


@attrs.frozen
class EventSubscriptionsClosed:
    """Stream -> manager: these subscriptions ended; ``finished``: stop this stream."""

    key: str
    subscription_ids: tuple[str, ...]
    finished: bool
    stream_urn: str = ""  # which stream of ``key`` (a newer one may serve the key already)


@attrs.frozen
class EventStreamFailed:
    """A crashed stream -> manager: start a new stream for these subscriptions.

    ``subscribers`` were open (the manager re-adds them; those with
    ``reconnects`` get :class:`EventsReconnected` once the new stream is open,
    so FollowContainers re-lists what started meanwhile); ``waiting`` were not
    open yet and keep their ``on_ready``.
    """

    key: str
    stream_urn: str
    filters: Mapping[str, Any] | None
    subscribers: tuple[EventSubscriber, ...]
    waiting: tuple[tuple[EventSubscriber, Callable[[BaseException | None], None]], ...]


@attrs.frozen
class _Opened:
    reconnected: bool


@attrs.frozen
class _OpenFailed:
    error: BaseException


@attrs.frozen
class _Event:
    event: DockerEvent


@attrs.frozen
class _ReaderDone:
    error: str | None


class _Liveness:
    pass


@attrs.frozen
class _LivenessResult:
    ok: bool


_LIVENESS: Final = _Liveness()


# --- helpers -------------------------------------------------------------------------------


def canonical_filters(filters: Mapping[str, Any] | None) -> str:
    """A stable key for a filter set: streams with equal keys are shared."""
    if not filters:
        return "{}"
    plain: dict[str, Any] = {}
    for name, value in filters.items():
        if isinstance(value, list | tuple | set | frozenset):
            plain[name] = sorted(str(v) for v in value)
        else:
            plain[name] = value
    return json.dumps(plain, sort_keys=True, default=str)


def parse_event(data: Mapping[str, Any], endpoint: str = "default") -> DockerEvent:
    """Turn one decoded ``/events`` record into a :class:`DockerEvent`."""
    actor = data.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    time_ns = data.get("timeNano")
    if not isinstance(time_ns, int):
        time_ns = int(data.get("time") or 0) * 1_000_000_000
    return DockerEvent(
        type=str(data.get("Type") or ""),
        action=str(data.get("Action") or data.get("status") or ""),
        id=str(actor.get("ID") or data.get("id") or ""),
        attributes={str(k): str(v) for k, v in attributes.items()},
        time_ns=time_ns,
        endpoint=endpoint,
    )


def _event_key(event: DockerEvent) -> tuple[int, str, str, str]:
    return (event.time_ns, event.type, event.action, event.id)


def _response_socket(response: Any) -> socket.socket | None:
    original = getattr(response.raw, "_fp", None)
    raw = getattr(getattr(original, "fp", None), "raw", None)
    sock = getattr(raw, "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


# --- reader --------------------------------------------------------------------------------


class _EventReader(threading.Thread):
    """Reads ``/events`` for one EventStream, reconnecting until told to stop."""

    def __init__(
        self,
        ctx: StreamContext,
        actor: pykka.ActorRef[Any],
        filters: Mapping[str, Any] | None,
    ) -> None:
        super().__init__(name="actorpool-events", daemon=True)
        self._ctx = ctx
        self._actor = actor
        # convert_filters returns the JSON text the daemon expects; it wraps anything but a
        # list as one value, so the messages' frozen tuples must become lists first.
        self._plain: dict[str, Any] | None = None
        if filters:
            self._plain = {
                k: list(v) if isinstance(v, tuple | set | frozenset) else v
                for k, v in filters.items()
            }
        self._dialect = DOCKER  # the daemon's (Podman spells some event names its own way)
        self._stop_event = threading.Event()
        self._lock = threading.Lock()
        self._response: Any = None
        self._client: APIClient | None = None
        self._last_ns: int | None = None
        self._recent: collections.deque[tuple[int, str, str, str]] = collections.deque()
        self._recent_set: set[tuple[int, str, str, str]] = set()

    def stop(self) -> None:
        """Stop for good (from any thread)."""
        self._stop_event.set()
        self.interrupt()

    def interrupt(self) -> None:
        """Cut the current stream; the reader reconnects unless stopped."""
        with self._lock:
            response = self._response
        if response is None:
            return
        sock = _response_socket(response)
        try:
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
            else:
                response.close()
        except OSError:
            pass

    def run(self) -> None:
        error: str | None = None
        try:
            self._run()
        except GiveUp as exc:
            error = f"the event stream gave up: {exc}"
        except Exception as exc:
            if not self._stop_event.is_set():
                logger.warning("event reader failed: %s", exc, exc_info=True)
                error = f"the event stream failed: {exc}"
        finally:
            self._drop_client()
        if self._stop_event.is_set():
            return
        with contextlib.suppress(pykka.ActorDeadError):
            self._actor.tell(_ReaderDone(error))

    def _run(self) -> None:
        streak = FailureStreak(self._ctx.config)
        opened_once = False
        while not self._stop_event.is_set():
            try:
                response = self._open()
            except Exception as exc:
                error = self._ctx.error(exc, "events")
                if not opened_once:
                    with contextlib.suppress(pykka.ActorDeadError):
                        self._actor.tell(_OpenFailed(error))
                    return
                if not transient(error):
                    raise error from exc
                self._drop_client()
                if self._stop_event.wait(streak.failed(error)):
                    return
                continue
            streak.reset()
            reconnected = opened_once
            opened_once = True
            if reconnected:
                self._ctx.count_reconnect()
            with contextlib.suppress(pykka.ActorDeadError):
                self._actor.tell(_Opened(reconnected))
            try:
                self._read(response)
            except Exception as exc:
                logger.debug("event stream cut: %s", exc)
            finally:
                with self._lock:
                    self._response = None
                response.close()
                self._drop_client()  # the connection is dead or in an unknown state
            if self._stop_event.is_set():
                return
            # Cut (daemon gone or restarting, or a liveness check failed): reconnect soon,
            # spread so many streams do not hit the daemon at once.
            if self._stop_event.wait(streak.failed(StreamError("the event stream ended"))):
                return

    def _open(self) -> Any:
        if self._client is None:
            self._client = make_client(self._ctx.config, timeout=self._ctx.config.api.timeout)
        client = self._client
        self._dialect = self._ctx.dialect.get(client)
        params: dict[str, str] = {}
        filters = self._dialect.filters(self._plain)
        if filters:
            params["filters"] = docker.utils.convert_filters(filters)
        if self._last_ns is None:
            # Until the first event, a reconnect asks from when the first stream opened:
            # an engine that keeps its events across restarts (Podman) replays what
            # happened while it was away.
            self._last_ns = time.time_ns()
        else:
            params["since"] = format_since(self._last_ns)
        response = client._get(client._url("/events"), params=params, stream=True)
        try:
            client._raise_for_status(response)
        except BaseException:
            response.close()
            raise
        sock = _response_socket(response)
        if sock is not None:
            sock.settimeout(None)  # an idle event stream is normal; liveness pings watch it
        with self._lock:
            self._response = response
        if self._stop_event.is_set():
            response.close()
            raise StreamError("the event stream was stopped")
        return response

    def _read(self, response: Any) -> None:
        pending = b""
        for data in response.raw.stream(_READ_SIZE, decode_content=False):
            if self._stop_event.is_set():
                return
            pending += data
            *records, pending = pending.split(b"\n")
            for record in records:
                if record.strip():
                    self._deliver(json.loads(record))

    def _deliver(self, data: Mapping[str, Any]) -> None:
        event = parse_event(data, self._ctx.endpoint)
        action = self._dialect.action(event.action) if event.type == "container" else event.action
        if action != event.action:
            event = attrs.evolve(event, action=action)
        key = _event_key(event)
        if key in self._recent_set:
            return
        self._recent.append(key)
        self._recent_set.add(key)
        if len(self._recent) > _RECENT:
            self._recent_set.discard(self._recent.popleft())
        if self._last_ns is None or event.time_ns > self._last_ns:
            self._last_ns = event.time_ns
        with contextlib.suppress(pykka.ActorDeadError):
            self._actor.tell(_Event(event))

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        close_quietly(client, "event stream client")


# --- actor ---------------------------------------------------------------------------------


class EventStream(Actor):
    """One ``/events`` stream and its subscribers."""

    def __init__(
        self,
        ctx: StreamContext,
        *,
        key: str,
        filters: Mapping[str, Any] | None,
        manager: pykka.ActorRef[Any],
    ) -> None:
        super().__init__()
        self._ctx = ctx
        self._key = key
        self._filters = filters
        self._manager = manager
        self._subs: dict[str, EventSubscriber] = {}
        self._waiting: list[tuple[EventSubscriber, Callable[[BaseException | None], None]]] = []
        self._open = False
        self._finished = False
        self._reader: _EventReader | None = None
        self._liveness_at = 0.0

    def on_start(self) -> None:
        if self._ctx.metrics is not None:
            self._ctx.metrics.stream_opened("events")
        self._reader = _EventReader(self._ctx, self.actor_ref, self._filters)
        self._reader.start()
        self._schedule_liveness()

    def on_stop(self) -> None:
        self._close("pool stopped")

    def on_failure(self, *args: Any) -> None:
        # Pykka has no supervision: hand the subscriptions to the manager, which starts a
        # new stream and re-adds them (reconnecting ones get EventsReconnected). Only if the
        # manager is gone too, end them here.
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.stop()
            reader.join(_JOIN_TIMEOUT)
        failed = EventStreamFailed(
            self._key,
            self.actor_urn,
            self._filters,
            tuple(self._subs.values()),
            tuple(self._waiting),
        )
        try:
            self._manager.tell(failed)
        except pykka.ActorDeadError:
            self._close("stream failed")
            return
        self._subs.clear()
        self._waiting.clear()
        if not self._finished:
            self._finished = True
            if self._ctx.metrics is not None:
                self._ctx.metrics.stream_closed("events")

    def _close(self, reason: str) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.stop()
        for _, ready in self._waiting:
            ready(StreamError(f"the event stream closed before it opened ({reason})"))
        self._waiting.clear()
        subs = list(self._subs.values())
        self._subs.clear()
        for sub in subs:
            with contextlib.suppress(pykka.ActorDeadError):
                sub.ref.tell(LogStreamEnded("", reason, sub.public_id, endpoint=self._ctx.endpoint))
        if not self._finished:
            self._finished = True
            if self._ctx.metrics is not None:
                self._ctx.metrics.stream_closed("events")
        if reader is not None:
            # Joined after the subscribers heard: the end must not wait on a slow reader
            # (an actor that stops handles no more of the events it sends).
            reader.join(_JOIN_TIMEOUT)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Event):
            for sub in list(self._subs.values()):
                self._tell(sub, message.event)
        elif isinstance(message, AddEventSubscriber):
            self._add(message)
        elif isinstance(message, RemoveEventSubscriber):
            return self._remove(message)
        elif isinstance(message, _Opened):
            self._opened(message)
        elif isinstance(message, _OpenFailed):
            self._open_failed(message.error)
        elif isinstance(message, _ReaderDone):
            self._reader_done(message)
        elif message is _LIVENESS:
            self._check_liveness()
        elif isinstance(message, _LivenessResult):
            if not message.ok and self._reader is not None:
                logger.warning("the daemon did not answer a ping; reconnecting the event stream")
                self._reader.interrupt()
        else:
            msg = f"EventStream does not understand {type(message).__name__}"
            raise UnknownMessage(msg)
        return None

    def _add(self, message: AddEventSubscriber) -> None:
        if self._finished:
            message.on_ready(StreamError("the event stream has ended; subscribe again"))
            return
        if self._open:
            self._subs[message.subscriber.id] = message.subscriber
            message.on_ready(None)
        else:
            self._waiting.append((message.subscriber, message.on_ready))

    def _remove(self, message: RemoveEventSubscriber) -> bool:
        sub = self._subs.pop(message.subscription_id, None)
        if sub is None:
            for i, (waiting, ready) in enumerate(self._waiting):
                if waiting.id == message.subscription_id:
                    del self._waiting[i]
                    ready(StreamError(f"the event subscription ended ({message.reason})"))
                    sub = waiting
                    break
        if sub is None:
            return False
        self._tell(
            sub, LogStreamEnded("", message.reason, sub.public_id, endpoint=self._ctx.endpoint)
        )
        self._closed((sub.id,))
        return True

    def _opened(self, message: _Opened) -> None:
        self._open = True
        for sub, ready in self._waiting:
            self._subs[sub.id] = sub
            ready(None)
        self._waiting.clear()
        if message.reconnected:
            for sub in list(self._subs.values()):
                if sub.reconnects:
                    self._tell(sub, EventsReconnected(sub.id))

    def _open_failed(self, error: BaseException) -> None:
        for _, ready in self._waiting:
            ready(error)
        ids = tuple(sub.id for sub, _ in self._waiting)
        self._waiting.clear()
        self._finish(ids)

    def _reader_done(self, message: _ReaderDone) -> None:
        self._reader = None
        ids = tuple(self._subs)
        for sub in list(self._subs.values()):
            if message.error is not None:
                self._tell(
                    sub,
                    LogStreamError("", message.error, sub.public_id, endpoint=self._ctx.endpoint),
                )
            else:
                self._tell(
                    sub, LogStreamEnded("", "ended", sub.public_id, endpoint=self._ctx.endpoint)
                )
        self._subs.clear()
        self._finish(ids)

    def _finish(self, ids: tuple[str, ...]) -> None:
        if self._finished:
            return
        self._finished = True
        if self._ctx.metrics is not None:
            self._ctx.metrics.stream_closed("events")
        with contextlib.suppress(pykka.ActorDeadError):
            self._manager.tell(
                EventSubscriptionsClosed(self._key, ids, finished=True, stream_urn=self.actor_urn)
            )

    def _closed(self, ids: tuple[str, ...]) -> None:
        with contextlib.suppress(pykka.ActorDeadError):
            self._manager.tell(
                EventSubscriptionsClosed(self._key, ids, finished=False, stream_urn=self.actor_urn)
            )
        if self._subs or self._waiting:
            return
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.stop()
        self._finish(())

    def _tell(self, sub: EventSubscriber, message: Any) -> None:
        try:
            sub.ref.tell(message)
        except pykka.ActorDeadError:
            if self._subs.pop(sub.id, None) is not None and not self._finished:
                self._closed((sub.id,))

    def _schedule_liveness(self) -> None:
        interval = self._ctx.config.pool.health_check_interval
        self._ctx.scheduler.tell_later(interval, self.actor_ref, _LIVENESS)

    def _check_liveness(self) -> None:
        if self._finished:
            return
        self._schedule_liveness()
        if not self._open:
            return
        timeout = self._ctx.config.pool.health_check_timeout
        me = self.actor_ref

        def ping(client: APIClient) -> bool:
            response = client._get(client._url("/_ping"), timeout=timeout)
            return bool(response.status_code == 200)

        def done(ok: bool | None, error: BaseException | None) -> None:
            with contextlib.suppress(pykka.ActorDeadError):
                me.tell(_LivenessResult(bool(ok) and error is None))

        self._ctx.calls.submit(ping, done)
