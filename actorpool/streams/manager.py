"""The stream manager: log subscriptions, event subscriptions and FollowContainers.

The router forwards :class:`~actorpool.messages.SubscribeLogs`,
:class:`~actorpool.messages.Unsubscribe`,
:class:`~actorpool.messages.SubscribeEvents` and
:class:`~actorpool.messages.FollowContainers` here (``ask(..., block=False)``)
and hands the caller the future this actor returns: a subscribe answers with
a :class:`~actorpool.engine.future.ReplyFuture` completed once the subscription is
really in place (the container inspected, the event stream open), so
``SubscribeLogs`` for an unknown container raises
:class:`~actorpool.errors.NotFound` to the caller.

The manager owns every stream actor:

- one :class:`~actorpool.logs.stream.LogStream` per followed container, shared by
  all of that container's follow subscribers (a ``follow=False`` subscription
  gets a one-off stream of its own);
- one :class:`~actorpool.events.stream.EventStream` per distinct filter set;
- one :class:`~actorpool.events.follow.Follow` per FollowContainers subscription.

Log and event streams together are capped by
``performance.max_concurrent_streams`` (past it a subscribe raises
:class:`~actorpool.errors.TooManyStreams`). A log stream holds up to two daemon
connections (stdout and stderr are followed separately, see
:mod:`actorpool.logs.readers`), an event stream one. Blocking Docker calls
(inspect, list, ping) run on a few worker threads
(:class:`~actorpool.logs.context.BlockingCalls`), never on an actor thread;
every follow stream of every log stream is read by the manager's one
:class:`~actorpool.transport.readloop.ReadLoop` thread.

Supervision: Pykka restarts nothing, so the manager does. A stream actor
that fails hands its subscriptions back from its ``on_failure``
(:class:`~actorpool.logs.protocol.StreamFailed`,
:class:`~actorpool.events.stream.EventStreamFailed`) and the manager starts a
replacement: a log stream from the cursors of the lines each subscriber was
really sent (the dead stream tracked them per subscriber, so nothing is lost
or repeated), an event stream with the same filters, after which
FollowContainers subscriptions get :class:`~actorpool.events.stream.EventsReconnected`
and re-list the containers that started meanwhile. Every tell to a stream
actor is guarded: a dead entry is dropped or replaced, never used again.

``StreamManager`` also answers :class:`StreamStats` with a
:class:`StreamStatsReport` of plain counts.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import attrs
import pykka

from actorpool.config import Config
from actorpool.engine.actor import Actor
from actorpool.engine.future import ReplyFuture
from actorpool.engine.ratelimit import SharedBucket
from actorpool.engine.scheduler import Scheduler
from actorpool.errors import (
    BadRequest,
    PoolStopped,
    StreamError,
    TooManyStreams,
    UnknownMessage,
)
from actorpool.events.follow import (
    FOLLOW_EVENT_FILTERS,
    Follow,
    FollowGone,
    FollowSubscribe,
    FollowSubscribeFailed,
)
from actorpool.events.stream import (
    AddEventSubscriber,
    EventsReady,
    EventsReconnected,
    EventStream,
    EventStreamFailed,
    EventSubscriber,
    EventSubscriptionsClosed,
    RemoveEventSubscriber,
    canonical_filters,
)
from actorpool.logs.context import BlockingCalls, StreamContext, StreamCounters
from actorpool.logs.protocol import (
    AddSubscriber,
    LogSubscriber,
    RemoveSubscriber,
    Reroute,
    StreamFailed,
    SubscriptionEnded,
    SubscriptionsClosed,
)
from actorpool.logs.stream import LogStream
from actorpool.messages import (
    FollowContainers,
    InspectContainer,
    LogStreamEnded,
    LogStreamError,
    LogStreamStarted,
    StreamStats,
    StreamStatsReport,
    SubscribeEvents,
    SubscribeLogs,
    Subscription,
    Unsubscribe,
)
from actorpool.observe.metrics import PoolMetrics
from actorpool.pool.protocol import FillPoolStatus
from actorpool.transport.readloop import ReadLoop

if TYPE_CHECKING:
    from docker import APIClient

__all__ = ["StreamManager"]

logger = logging.getLogger(__name__)

_STOP_TIMEOUT: Final = 5.0  # seconds on_stop waits for all stream actors together


@attrs.define
class _StreamEntry:
    ref: pykka.ActorRef[Any]
    subs: set[str] = attrs.field(factory=set)


@attrs.define
class _SubEntry:
    kind: str  # logs | events | follow
    key: str = ""  # the stream's key (logs, events)
    follow: str | None = None  # the owning FollowContainers subscription
    # What the stream was told, kept until it dies or confirms: a message told to a stream
    # as it fails is dropped with its mailbox, so its failure report cannot list it.
    spec: Any = None  # the LogSubscriber / EventSubscriber handed to the stream
    ready: Any = None  # an event subscription's ready callback
    removing: str | None = None  # told to remove it, with this reason


@attrs.frozen
class _Resolved:
    """An inspect for a log subscription finished (on a worker thread)."""

    spec: LogSubscriber
    container: str
    follow: bool
    reply: ReplyFuture | None
    info: Mapping[str, Any] | None
    error: BaseException | None
    whole_seconds: bool = False  # the engine stamps log lines to the second (Podman)


class StreamManager(Actor):
    """Places subscriptions on stream actors and owns their lifecycle.

    Start with :meth:`start(config, scheduler, metrics) <pykka.Actor.start>`;
    ``stop()`` stops every stream actor, closes every socket, joins every
    reader (with timeouts), stops the read loop and sends subscribers
    ``LogStreamEnded(reason="pool stopped")``.
    """

    def __init__(
        self,
        config: Config,
        scheduler: Scheduler,
        metrics: PoolMetrics | None = None,
        endpoint: str = "default",
    ) -> None:
        super().__init__()
        self._config = config
        self._ctx = StreamContext(
            config=config,
            scheduler=scheduler,
            metrics=metrics,
            counters=StreamCounters(),
            calls=BlockingCalls(config),
            reconnects=(
                SharedBucket(config.rate_limit.requests_per_second, config.rate_limit.burst_size)
                if config.rate_limit.enabled
                else None
            ),
            reads=ReadLoop(buffer_size=config.performance.buffer_size),
            endpoint=endpoint,
        )
        self._logs: dict[str, _StreamEntry] = {}
        self._events: dict[str, _StreamEntry] = {}
        # Event streams whose last subscriber is being removed (they end themselves), by urn:
        # a new subscription to the same filters gets a fresh stream, not one that is ending.
        self._events_ending: dict[str, _StreamEntry] = {}
        self._follows: dict[str, pykka.ActorRef[Any]] = {}
        self._follow_requests: dict[str, FollowContainers] = {}
        self._subs: dict[str, _SubEntry] = {}
        self._pending: dict[str, ReplyFuture] = {}
        self._ids = itertools.count(1)
        self._prefix = f"{os.getpid():x}-{id(self) & 0xFFFF:x}"
        self._stopping = False

    # -- lifecycle --

    def on_stop(self) -> None:
        self._stopping = True
        for reply in self._pending.values():
            reply.try_set_exception(
                PoolStopped("the pool stopped before the subscription was placed")
            )
        self._pending.clear()
        futures: list[Any] = []
        for follow_id, ref in list(self._follows.items()):
            self._end_follow_subscriber(follow_id, "pool stopped")
            futures.append(_stop(ref))
        for entry in [*self._logs.values(), *self._events.values(), *self._events_ending.values()]:
            futures.append(_stop(entry.ref))
        deadline = time.monotonic() + _STOP_TIMEOUT
        for future in futures:
            if future is None:
                continue
            try:
                future.get(timeout=max(0.05, deadline - time.monotonic()))
            except pykka.Timeout:
                logger.warning("a stream actor did not stop within %s s", _STOP_TIMEOUT)
            except pykka.ActorDeadError:
                pass
        self._follows.clear()
        self._logs.clear()
        self._events.clear()
        self._events_ending.clear()
        self._subs.clear()
        self._ctx.calls.shutdown()
        if self._ctx.reads is not None:
            self._ctx.reads.close()

    # -- messages --

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, SubscribeLogs):
            return self._subscribe_logs(message)
        if isinstance(message, Unsubscribe):
            return self._unsubscribe(message.subscription_id)
        if isinstance(message, SubscribeEvents):
            return self._subscribe_events(message)
        if isinstance(message, FollowContainers):
            return self._follow(message)
        if isinstance(message, StreamStats):
            return self._stats()
        if isinstance(message, FillPoolStatus):
            stats = self._stats()
            report = attrs.evolve(
                message.report,
                streams=stats.log_streams + stats.event_streams,
                log_streams=stats.log_streams,
                event_streams=stats.event_streams,
            )
            message.future.try_set(report)
            return None
        if isinstance(message, _Resolved):
            self._resolved(message)
        elif isinstance(message, StreamFailed):
            self._log_stream_failed(message)
        elif isinstance(message, EventStreamFailed):
            self._event_stream_failed(message)
        elif isinstance(message, SubscriptionsClosed):
            self._log_subs_closed(message)
        elif isinstance(message, EventSubscriptionsClosed):
            self._event_subs_closed(message)
        elif isinstance(message, Reroute):
            self._reroute(message.subscriber)
        elif isinstance(message, FollowSubscribe):
            self._follow_subscribe(message)
        elif isinstance(message, FollowGone):
            if message.follow_id in self._follows:
                self._end_follow(message.follow_id, None)
        else:
            msg = (
                f"the stream manager does not understand {type(message).__name__}; it takes "
                "SubscribeLogs, Unsubscribe, SubscribeEvents, FollowContainers and StreamStats"
            )
            raise UnknownMessage(msg)
        return None

    def _new_id(self, kind: str) -> str:
        # The endpoint comes first: the pool's front door routes Unsubscribe by it.
        return f"{self._ctx.endpoint}/{kind}-{self._prefix}-{next(self._ids)}"

    def _deadline(self) -> float:
        return time.monotonic() + self._config.api.timeout

    # -- logs --

    def _subscribe_logs(self, message: SubscribeLogs) -> ReplyFuture:
        if not (message.stdout or message.stderr):
            msg = "SubscribeLogs with stdout=False and stderr=False would receive nothing"
            raise BadRequest(msg)
        sub_id = self._new_id("logs")
        spec = LogSubscriber(
            id=sub_id,
            public_id=sub_id,
            ref=message.subscriber,
            stdout=message.stdout,
            stderr=message.stderr,
            since=message.since,
            tail=message.tail,
            resume=None if message.resume is None else message.resume.cursors(),
        )
        reply = ReplyFuture(self._deadline())
        self._pending[sub_id] = reply
        self._resolve(spec, message.container, message.follow, reply)
        return reply

    def _resolve(
        self, spec: LogSubscriber, container: str, follow: bool, reply: ReplyFuture | None
    ) -> None:
        me = self.actor_ref

        dialect = self._ctx.dialect

        def inspect(client: APIClient) -> tuple[Mapping[str, Any], bool]:
            info: Mapping[str, Any] = InspectContainer(container).execute(client)
            return info, dialect.get(client).whole_seconds

        def done(
            result: tuple[Mapping[str, Any], bool] | None, error: BaseException | None
        ) -> None:
            info, whole = result if result is not None else (None, False)
            try:
                me.tell(_Resolved(spec, container, follow, reply, info, error, whole))
            except pykka.ActorDeadError:
                if reply is not None:
                    reply.try_set_exception(PoolStopped("the pool stopped"))

        self._ctx.calls.submit(inspect, done)

    def _resolved(self, message: _Resolved) -> None:
        spec = message.spec
        reply = message.reply
        self._pending.pop(spec.id, None)
        if self._stopping:
            return
        if message.error is not None or message.info is None:
            error = self._ctx.error(
                message.error or RuntimeError("inspect returned nothing"), "inspect_container"
            )
            self._place_failed(spec, message.container, reply, error)
            return
        follow_id = self._follow_of(spec) if spec.owner is not None else None
        if spec.owner is not None and (follow_id is None or follow_id not in self._follows):
            return  # its FollowContainers subscription ended meanwhile
        info = message.info
        cid = str(info["Id"])
        tty = bool((info.get("Config") or {}).get("Tty"))
        key = cid if message.follow else f"once:{spec.id}"
        late = message.whole_seconds and (spec.tail != 0 or spec.since is not None)
        if (spec.resume is not None or late) and key in self._logs:
            # A resume starts at its own position: a stream of its own, like a restarted one.
            # So does a late subscriber's history on an engine that stamps lines to the second:
            # the lines of one second cannot be told apart to join it to the live ones.
            key = f"{cid}~{next(self._ids)}"
        entry = self._logs.get(key)
        if entry is not None and not _tell_ok(entry.ref, AddSubscriber(spec)):
            # Its stream died; its own subscriptions come back through StreamFailed.
            del self._logs[key]
            entry = None
        if entry is None:
            if self._stream_count() >= self._config.performance.max_concurrent_streams:
                self._place_failed(spec, cid, reply, self._too_many())
                return
            ref = LogStream.start(
                self._ctx,
                key=key,
                container_id=cid,
                tty=tty,
                follow=message.follow,
                manager=self.actor_ref,
                first=spec,
                meta=attrs.evolve(LogStreamStarted.from_inspect(info), endpoint=self._ctx.endpoint),
            )
            entry = self._logs[key] = _StreamEntry(ref)
        entry.subs.add(spec.id)
        self._subs[spec.id] = _SubEntry("logs", key, follow_id, spec=spec)
        if reply is not None:
            reply.try_set(Subscription(spec.id, "logs", cid))

    def _follow_of(self, spec: LogSubscriber) -> str | None:
        return spec.public_id if spec.public_id != spec.id else None

    def _place_failed(
        self, spec: LogSubscriber, container: str, reply: ReplyFuture | None, error: BaseException
    ) -> None:
        if reply is not None:
            reply.try_set_exception(error)
            return
        if spec.owner is not None:
            _tell(spec.owner, FollowSubscribeFailed(spec.id, container, error))
            return
        # A rerouted subscription: its caller has its Subscription already.
        self._subs.pop(spec.id, None)
        _tell(
            spec.ref,
            LogStreamError(container, str(error), spec.public_id, endpoint=self._ctx.endpoint),
        )

    def _too_many(self) -> TooManyStreams:
        limit = self._config.performance.max_concurrent_streams
        return TooManyStreams(
            f"{self._stream_count()} log and event streams are open and "
            f"docker.performance.max_concurrent_streams is {limit}: unsubscribe from some "
            "(Unsubscribe(id)) or raise the limit"
        )

    def _stream_count(self) -> int:
        return len(self._logs) + len(self._events)

    def _log_subs_closed(self, message: SubscriptionsClosed) -> None:
        entry = self._logs.get(message.key)
        for sub_id in message.subscription_ids:
            self._subs.pop(sub_id, None)
            if entry is not None:
                entry.subs.discard(sub_id)
        if message.finished and entry is not None:
            del self._logs[message.key]
            _stop(entry.ref)

    def _reroute(self, spec: LogSubscriber) -> None:
        sub = self._subs.get(spec.id)
        if sub is None or self._stopping:
            return  # unsubscribed meanwhile
        old = self._logs.get(sub.key)
        if old is not None:
            old.subs.discard(spec.id)
        if not sub.key.startswith("once:"):  # one-off streams never take a second subscriber
            self._resolve(spec, _container_of(sub.key), True, None)

    # -- unsubscribe --

    def _unsubscribe(self, sub_id: str) -> bool:
        sub = self._subs.get(sub_id)
        if sub is None:
            return False
        if sub.kind == "logs":
            entry = self._logs.get(sub.key)
            if entry is not None:
                self._remove_log_sub(entry, sub_id, "unsubscribed")
            return True
        if sub.kind == "events":
            entry = self._events.get(sub.key)
            if entry is not None:
                self._remove_event_sub(entry, sub_id, "unsubscribed")
            return True
        self._end_follow(sub_id, "unsubscribed")
        return True

    # -- events --

    def _subscribe_events(self, message: SubscribeEvents) -> ReplyFuture:
        sub_id = self._new_id("events")
        reply = ReplyFuture(self._deadline())
        subscriber = EventSubscriber(sub_id, sub_id, message.subscriber)
        filters = dict(message.filters) if message.filters else None

        def ready(error: BaseException | None) -> None:
            if error is None:
                reply.try_set(Subscription(sub_id, "events"))
            else:
                reply.try_set_exception(error)

        if not self._add_event_subscriber(subscriber, filters, ready):
            reply.try_set_exception(self._too_many())
        return reply

    def _add_event_subscriber(
        self,
        subscriber: EventSubscriber,
        filters: Mapping[str, Any] | None,
        ready: Any,
        follow: str | None = None,
    ) -> bool:
        key = canonical_filters(filters)
        entry = self._events.get(key)
        if entry is not None and self._ending(entry):
            del self._events[key]
            self._events_ending[entry.ref.actor_urn] = entry
            entry = None
        if entry is None:
            if self._stream_count() >= self._config.performance.max_concurrent_streams:
                return False
            ref = EventStream.start(self._ctx, key=key, filters=filters, manager=self.actor_ref)
            entry = self._events[key] = _StreamEntry(ref)
        if not _tell_ok(entry.ref, AddEventSubscriber(subscriber, ready)):
            # Its stream died (its subscriptions come back through EventStreamFailed).
            ref = EventStream.start(self._ctx, key=key, filters=filters, manager=self.actor_ref)
            entry = self._events[key] = _StreamEntry(ref)
            _tell(entry.ref, AddEventSubscriber(subscriber, ready))
        entry.subs.add(subscriber.id)
        self._subs[subscriber.id] = _SubEntry("events", key, follow, spec=subscriber, ready=ready)
        return True

    def _ending(self, entry: _StreamEntry) -> bool:
        """The event stream is about to end itself: every subscriber is gone or being removed.

        An entry with no subscriber left is ending too: the stream reports the last removal
        and its own end in two messages, and a subscription taken between them must not join
        a stream that has already ended.
        """
        subs = (self._subs.get(sub_id) for sub_id in entry.subs)
        return all(sub is None or sub.removing is not None for sub in subs)

    def _event_subs_closed(self, message: EventSubscriptionsClosed) -> None:
        entry = self._events_ending.get(message.stream_urn)
        current = entry is None
        if current:
            entry = self._events.get(message.key)
            if entry is not None and message.stream_urn not in ("", entry.ref.actor_urn):
                entry = None
        for sub_id in message.subscription_ids:
            self._subs.pop(sub_id, None)
            if entry is not None:
                entry.subs.discard(sub_id)
        if message.finished and entry is not None:
            if current:
                del self._events[message.key]
            else:
                del self._events_ending[message.stream_urn]
            _stop(entry.ref)
            for sub_id in entry.subs:  # subscriptions that never got a reply
                self._subs.pop(sub_id, None)

    # -- follow --

    def _follow(self, message: FollowContainers) -> ReplyFuture:
        if not (message.stdout or message.stderr):
            msg = "FollowContainers with stdout=False and stderr=False would receive nothing"
            raise BadRequest(msg)
        follow_id = self._new_id("follow")
        reply = ReplyFuture(self._deadline())
        ref = Follow.start(
            self._ctx, follow_id=follow_id, request=message, manager=self.actor_ref, reply=reply
        )
        self._follows[follow_id] = ref
        self._follow_requests[follow_id] = message
        self._subs[follow_id] = _SubEntry("follow", "", follow_id)
        events_id = f"{follow_id}/events"
        subscriber = EventSubscriber(events_id, follow_id, ref, reconnects=True)

        def ready(error: BaseException | None) -> None:
            _tell(ref, EventsReady(events_id, error))

        if not self._add_event_subscriber(
            subscriber, dict(FOLLOW_EVENT_FILTERS), ready, follow=follow_id
        ):
            self._end_follow(follow_id, None)
            reply.try_set_exception(self._too_many())
            return reply
        return reply

    def _follow_subscribe(self, message: FollowSubscribe) -> None:
        ref = self._follows.get(message.follow_id)
        if ref is None or self._stopping:
            return
        follow = self._follow_requests.get(message.follow_id)
        if follow is None:
            return
        spec = LogSubscriber(
            id=message.subscription_id,
            public_id=message.follow_id,
            ref=follow.subscriber,
            stdout=follow.stdout,
            stderr=follow.stderr,
            since=message.since,
            tail=message.tail,  # type: ignore[arg-type]
            owner=ref,
            resume=message.resume,
        )
        self._resolve(spec, message.container_id, True, None)

    def _end_follow(self, follow_id: str, reason: str | None) -> None:
        """End a FollowContainers subscription: its containers, its events, its actor."""
        ref = self._follows.pop(follow_id, None)
        self._subs.pop(follow_id, None)
        for sub_id, sub in list(self._subs.items()):
            if sub.follow != follow_id:
                continue
            if sub.kind == "logs":
                entry = self._logs.get(sub.key)
                if entry is not None:
                    self._remove_log_sub(entry, sub_id, reason or "unsubscribed")
            elif sub.kind == "events":
                entry = self._events.get(sub.key)
                if entry is not None:
                    self._remove_event_sub(entry, sub_id, reason or "unsubscribed")
        if reason is not None:
            self._end_follow_subscriber(follow_id, reason)
        self._follow_requests.pop(follow_id, None)
        if ref is not None:
            _stop(ref)

    def _end_follow_subscriber(self, follow_id: str, reason: str) -> None:
        request = self._follow_requests.get(follow_id)
        if request is not None:
            _tell(
                request.subscriber,
                LogStreamEnded("", reason, follow_id, endpoint=self._ctx.endpoint),
            )

    # -- supervision --

    def _remove_log_sub(self, entry: _StreamEntry, sub_id: str, reason: str) -> None:
        self._mark_removing(sub_id, reason)
        if not _tell_ok(entry.ref, RemoveSubscriber(sub_id, reason)):
            # The stream died: forget the subscription, so that the restart ends it instead.
            entry.subs.discard(sub_id)
            self._subs.pop(sub_id, None)

    def _mark_removing(self, sub_id: str, reason: str) -> None:
        sub = self._subs.get(sub_id)
        if sub is not None:
            sub.removing = reason

    def _lost(self, entry: _StreamEntry | None, reported: set[str]) -> list[_SubEntry]:
        """Subscriptions of a dead stream that its failure report does not list."""
        if entry is None:
            return []
        subs = (self._subs.get(sub_id) for sub_id in sorted(entry.subs - reported))
        return [sub for sub in subs if sub is not None and sub.spec is not None]

    def _remove_event_sub(self, entry: _StreamEntry, sub_id: str, reason: str) -> None:
        self._mark_removing(sub_id, reason)
        if not _tell_ok(entry.ref, RemoveEventSubscriber(sub_id, reason)):
            entry.subs.discard(sub_id)
            self._subs.pop(sub_id, None)

    def _log_stream_failed(self, message: StreamFailed) -> None:
        """A log stream died: start new ones from what each subscriber was sent."""
        entry = self._logs.get(message.key)
        if entry is not None and entry.ref.actor_urn == message.stream_urn:
            del self._logs[message.key]
        else:
            entry = None
        cid = message.container_id
        # Added as it died: never sent anything, so they start from their own since/tail.
        lost = [sub.spec for sub in self._lost(entry, {s.id for s in message.subscribers})]
        specs: list[LogSubscriber] = []
        for spec in (*message.subscribers, *lost):
            sub = self._subs.get(spec.id)
            if sub is not None and sub.removing is None:
                specs.append(spec)
                continue
            # Unsubscribed while (or just before) its stream died.
            reason = "unsubscribed" if sub is None else sub.removing or "unsubscribed"
            self._subs.pop(spec.id, None)
            _tell(
                spec.ref, LogStreamEnded(cid, reason, spec.public_id, endpoint=self._ctx.endpoint)
            )
            if spec.owner is not None and sub is not None:
                _tell(spec.owner, SubscriptionEnded(spec.id, cid, reason, dict(spec.resume or {})))
        if self._stopping or not message.follow:
            reason = "pool stopped" if self._stopping else "stream failed"
            for spec in specs:
                self._subs.pop(spec.id, None)
                _tell(
                    spec.ref,
                    LogStreamEnded(cid, reason, spec.public_id, endpoint=self._ctx.endpoint),
                )
                if spec.owner is not None:
                    _tell(spec.owner, SubscriptionEnded(spec.id, cid, reason, spec.resume or {}))
            return
        logger.warning(
            "the log stream of container %s failed; restarting it for %d subscriber(s)",
            cid[:12],
            len(specs),
        )
        groups: dict[tuple[Any, ...], list[LogSubscriber]] = {}
        for spec in specs:
            groups.setdefault(_resume_key(spec), []).append(spec)
        for group in groups.values():
            key = cid if cid not in self._logs else f"{cid}~{next(self._ids)}"
            ref = LogStream.start(
                self._ctx,
                key=key,
                container_id=cid,
                tty=message.tty,
                follow=True,
                manager=self.actor_ref,
                first=group[0],
                more=tuple(group[1:]),
                meta=message.meta,
            )
            self._logs[key] = _StreamEntry(ref, {spec.id for spec in group})
            for spec in group:
                self._subs[spec.id].key = key
                self._subs[spec.id].spec = spec

    def _event_stream_failed(self, message: EventStreamFailed) -> None:
        """An event stream died: start a new one and hand it the subscriptions."""
        self._events_ending.pop(message.stream_urn, None)
        entry = self._events.get(message.key)
        dead = entry if entry is not None and entry.ref.actor_urn == message.stream_urn else None
        if dead is not None:
            del self._events[message.key]
            entry = None
        reported = {sub.id for sub in message.subscribers} | {s.id for s, _ in message.waiting}
        lost = [(sub.spec, sub.ready) for sub in self._lost(dead, reported)]

        for sub_id in reported | {sub.id for sub, _ in lost}:
            entry_of = self._subs.get(sub_id)
            if entry_of is not None and entry_of.removing is not None:
                del self._subs[sub_id]  # unsubscribed as its stream died: ended below
        subs = [sub for sub in message.subscribers if sub.id in self._subs]
        waiting = [(sub, ready) for sub, ready in (*message.waiting, *lost) if sub.id in self._subs]
        for sub in message.subscribers:
            if sub.id not in self._subs:  # unsubscribed while its stream was dead
                _tell(
                    sub.ref,
                    LogStreamEnded("", "unsubscribed", sub.public_id, endpoint=self._ctx.endpoint),
                )
        for sub, ready in (*message.waiting, *lost):
            if sub.id not in self._subs:
                ready(StreamError("the event subscription ended (unsubscribed)"))
        if self._stopping:
            for sub in subs:
                _tell(
                    sub.ref,
                    LogStreamEnded("", "pool stopped", sub.public_id, endpoint=self._ctx.endpoint),
                )
            for _, ready in waiting:
                ready(PoolStopped("the pool stopped before the event stream opened"))
            return
        if not (subs or waiting):
            return  # every subscription had ended: a new stream would have no one to end it
        logger.warning(
            "an event stream failed; restarting it for %d subscriber(s)", len(subs) + len(waiting)
        )
        if entry is None:
            ref = EventStream.start(
                self._ctx, key=message.key, filters=message.filters, manager=self.actor_ref
            )
            entry = self._events[message.key] = _StreamEntry(ref)
        adds = [(sub, _reopened(sub, self._ctx.endpoint)) for sub in subs] + waiting
        for sub, ready in adds:
            _tell(entry.ref, AddEventSubscriber(sub, ready))
            entry.subs.add(sub.id)
            self._subs[sub.id].key = message.key
            self._subs[sub.id].spec, self._subs[sub.id].ready = sub, ready

    # -- stats --

    def _stats(self) -> StreamStatsReport:
        counts = self._ctx.counters.snapshot()
        return StreamStatsReport(
            log_streams=len(self._logs),
            event_streams=len(self._events),
            follows=len(self._follows),
            subscriptions=len(self._subs),
            max_streams=self._config.performance.max_concurrent_streams,
            **counts,
        )


def _reopened(sub: EventSubscriber, endpoint: str) -> Any:
    """The on_ready of a subscription moved to a restarted event stream."""

    def ready(error: BaseException | None) -> None:
        if error is not None:
            _tell(sub.ref, LogStreamError("", str(error), sub.public_id, endpoint=endpoint))
        elif sub.reconnects:
            _tell(sub.ref, EventsReconnected(sub.id))

    return ready


def _resume_key(spec: LogSubscriber) -> tuple[Any, ...]:
    """Subscriptions restarted from the same cursors can share one stream."""
    cursors = tuple(sorted((spec.resume or {}).items()))
    if cursors:
        return (cursors,)
    return ((), spec.since, spec.tail)  # sent nothing: starts from its own since/tail


def _container_of(key: str) -> str:
    """The container of a follow stream's key (a restart's extra streams are ``id~n``)."""
    return key.partition("~")[0]


def _tell_ok(ref: pykka.ActorRef[Any], message: Any) -> bool:
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        return False
    return True


def _tell(ref: pykka.ActorRef[Any], message: Any) -> None:
    with contextlib.suppress(pykka.ActorDeadError):
        ref.tell(message)


def _stop(ref: pykka.ActorRef[Any]) -> Any:
    try:
        return ref.stop(block=False)
    except pykka.ActorDeadError:
        return None
