"""FollowContainers: follow the logs of every matching container, now and later.

A :class:`Follow` actor keeps a set of followed containers for one
subscription. It learns about containers three ways:

1. **At the start** it lists the running containers matching the filters
   (labels, names, images: the daemon evaluates ``ListContainers`` filters,
   so they mean exactly what they mean there) and follows each with the
   request's ``tail``.
2. **Container start events** (a shared ``type=container, event=start`` event
   stream, opened *before* the listing so nothing starts unseen in between):
   for each started container not followed yet it asks the daemon whether
   the container matches (the same list filters plus ``id``, in any state:
   a container that ran for a few milliseconds has exited by the time it is
   asked about, and its lines are read to its end all the same), and
   follows it.
3. **After the event stream reconnects** (the daemon keeps no events across
   its own restart) it lists again and follows whatever it missed.

What matches is the daemon's: ``filters`` are ``ListContainers`` filters.
``exclude`` (labels, name and image patterns) and the ``name`` pattern have
no daemon filter, so they are checked here on the listed records.

With a :class:`~actorpool.messages.PositionStore` (``positions=``) the first
listing includes stopped containers: every container the store knows
continues exactly after its position (a running one follows on, one that
exited while nobody watched is read to its end), a stored container the
daemon no longer has is forgotten, and a container the store does not know
is read from the store's ``baseline()`` on (it started, or produced its
first line, after the store began; a stopped one only if it stopped after
that), or from ``tail`` when the store is new.

Each followed container is an ordinary per-container log subscription whose
chunks carry this subscription's id; the container's stream ends it
(``LogStreamEnded(container, "exited")``) and tells this actor, which drops
the container from the set. A container that runs again is picked up again:
from the cursors of its last stream when it was followed before (no gap, no
duplicate), else from its previous run's ``State.FinishedAt`` (its log file
holds earlier runs too; a few of the previous run's last lines, stamped after
the exit was recorded, may appear), else from its first line.

A crashed log or event stream is the manager's business: it restarts it
(log streams from each subscriber's cursors, the event stream followed by
:class:`~actorpool.events.stream.EventsReconnected`, so this actor re-lists), and
this actor keeps its subscriptions. Every tell it makes is guarded: a dead
manager (the pool stopping) is not an error here.
"""

from __future__ import annotations

import collections
import contextlib
import fnmatch
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import attrs
import pykka

from actorpool.engine.actor import Actor
from actorpool.engine.future import ReplyFuture
from actorpool.errors import NotFound, TooManyStreams, UnknownMessage
from actorpool.events.stream import EventsReady, EventsReconnected
from actorpool.logs.context import StreamContext
from actorpool.logs.cursors import Cursor
from actorpool.logs.protocol import SubscriptionEnded
from actorpool.messages import (
    DockerEvent,
    FollowContainers,
    InspectContainer,
    ListContainers,
    LogStreamEnded,
    LogStreamError,
    Subscription,
    position_key,
    split_position_key,
)
from actorpool.transport.frames import format_since, parse_timestamp

if TYPE_CHECKING:
    from docker import APIClient

__all__ = [
    "FOLLOW_EVENT_FILTERS",
    "Follow",
    "FollowGone",
    "FollowSubscribe",
    "FollowSubscribeFailed",
]

logger = logging.getLogger(__name__)

#: The events every Follow listens to (one shared daemon stream for all of them).
FOLLOW_EVENT_FILTERS: Final[Mapping[str, Any]] = {"type": ("container",), "event": ("start",)}

_REMEMBERED: Final = 10_000  # cursors of exited containers kept for a restart
_NEVER: Final = "0001-01-01T00:00:00Z"  # FinishedAt of a container that never stopped


@attrs.frozen
class FollowSubscribe:
    """Follow -> manager: subscribe the follow's subscriber to one container."""

    follow_id: str
    subscription_id: str
    container_id: str
    since: float | str | None
    tail: int | str
    resume: Mapping[str, Cursor] | None = None


@attrs.frozen
class FollowSubscribeFailed:
    """Manager -> follow: a FollowSubscribe could not be placed."""

    subscription_id: str
    container_id: str
    error: BaseException


@attrs.frozen
class FollowGone:
    """Follow -> manager: this subscription cannot go on (no event stream, subscriber gone)."""

    follow_id: str


@attrs.frozen
class _Listed:
    ids: tuple[str, ...]  # matching containers to follow (running, or stored)
    initial: bool
    error: BaseException | None = None
    gone: tuple[str, ...] = ()  # stored containers the daemon no longer has


@attrs.frozen
class _Checked:
    container_id: str
    matched: bool
    since: str | None = None


class Follow(Actor):
    """One FollowContainers subscription. Started and stopped by the stream manager."""

    def __init__(
        self,
        ctx: StreamContext,
        *,
        follow_id: str,
        request: FollowContainers,
        manager: pykka.ActorRef[Any],
        reply: ReplyFuture,
    ) -> None:
        super().__init__()
        self._ctx = ctx
        self._id = follow_id
        self._request = request
        self._manager = manager
        self._reply = reply
        self._followed: dict[str, str] = {}  # container id -> its subscription id
        self._checking: set[str] = set()
        self._cursors: collections.OrderedDict[str, Mapping[str, Cursor]] = (
            collections.OrderedDict()
        )
        self._counter = 0
        filters = {
            k: list(v) if isinstance(v, tuple) else v for k, v in (request.filters or {}).items()
        }
        self._any_state = dict(filters)  # for the store's stopped containers
        filters.setdefault("status", ["running"])
        self._filters = filters
        self._store = request.positions
        self._baseline: int | None = None
        if self._store is not None:
            self._baseline = self._store.baseline()
            for key, position in self._store.positions().items():
                endpoint, cid = split_position_key(key)
                if endpoint == ctx.endpoint:  # another endpoint's Follow has the others
                    self._cursors[cid] = position.cursors()

    # -- messages --

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, DockerEvent):
            if message.action == "start" and message.id:
                self._check(message.id, started=True)
        elif isinstance(message, SubscriptionEnded):
            self._ended(message)
        elif isinstance(message, _Checked):
            self._checked(message)
        elif isinstance(message, _Listed):
            self._listed(message)
        elif isinstance(message, EventsReady):
            if message.error is not None:
                self._reply.try_set_exception(message.error)
                self._tell_manager(FollowGone(self._id))
            else:
                self._list(initial=True)
        elif isinstance(message, EventsReconnected):
            self._list(initial=False)
        elif isinstance(message, FollowSubscribeFailed):
            self._failed(message)
        elif isinstance(message, LogStreamError):
            # The shared event stream gave up: containers started from now on are not seen.
            self._tell_subscriber(
                LogStreamError("", message.error, self._id, endpoint=self._ctx.endpoint)
            )
        elif isinstance(message, FollowStatus):
            return dict(self._followed)
        elif isinstance(message, LogStreamEnded):
            pass  # the event subscription ended (pool stopping or unsubscribed)
        else:
            msg = f"Follow does not understand {type(message).__name__}"
            raise UnknownMessage(msg)
        return None

    # -- discovery --

    def _list(self, *, initial: bool) -> None:
        filters = self._filters
        wanted = self._wanted
        stored = set(self._cursors) if initial and self._store is not None else set()
        baseline = self._baseline if initial else None
        any_state = self._any_state

        def list_ids(client: APIClient) -> _Listed:
            ids = [
                str(c["Id"]) for c in ListContainers(filters=filters).execute(client) if wanted(c)
            ]
            if not stored and baseline is None:
                return _Listed(tuple(ids), initial)
            # Stored containers that stopped meanwhile are read to their end, and so are
            # unknown ones that stopped after the store began; gone ones are forgotten.
            everything = {str(c["Id"]) for c in ListContainers(all=True).execute(client)}
            for c in ListContainers(all=True, filters=any_state).execute(client):
                cid = str(c["Id"])
                if cid in ids or not wanted(c):
                    continue
                if cid in stored or (
                    baseline is not None and _finished_after(client, cid, baseline)
                ):
                    ids.append(cid)
            return _Listed(tuple(ids), initial, gone=tuple(sorted(stored - everything)))

        me = self.actor_ref

        def done(listed: _Listed | None, error: BaseException | None) -> None:
            with contextlib.suppress(pykka.ActorDeadError):
                me.tell(listed if listed is not None else _Listed((), initial, error))

        self._ctx.calls.submit(list_ids, done)

    def _wanted(self, container: Mapping[str, Any]) -> bool:
        """The ``name`` pattern and ``exclude`` of the request, on a listed container record."""
        names = [str(n).lstrip("/") for n in container.get("Names") or ()]
        pattern = self._request.name
        if pattern is not None and not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            return False
        exclude = self._request.exclude
        if not exclude:
            return True
        labels = container.get("Labels") or {}
        image = str(container.get("Image") or "")
        for key, items in exclude.items():
            for item in items if isinstance(items, tuple) else (items,):
                if key == "label":
                    k, sep, val = item.partition("=")
                    if k in labels and (not sep or labels[k] == val):
                        return False
                elif key == "name":
                    if any(fnmatch.fnmatchcase(n, item) for n in names):
                        return False
                elif fnmatch.fnmatchcase(image, item):
                    return False
        return True

    def _listed(self, message: _Listed) -> None:
        if message.error is not None:
            error = self._ctx.error(message.error, "list_containers")
            if message.initial:
                self._reply.try_set_exception(error)
                self._tell_manager(FollowGone(self._id))
            else:
                logger.warning("follow %s: re-listing containers failed: %s", self._id, error)
            return
        for cid in message.gone:
            self._cursors.pop(cid, None)
            if self._store is not None:
                self._store.forget(position_key(self._ctx.endpoint, cid))
        for cid in message.ids:
            if cid in self._followed or cid in self._checking:
                continue
            if not message.initial:
                self._check(cid)
            elif self._baseline is not None:
                self._subscribe(cid, format_since(self._baseline), "all")
            else:
                self._subscribe(cid, None, self._request.tail)
        if message.initial:
            self._reply.try_set(Subscription(self._id, "follow"))

    def _check(self, cid: str, *, started: bool = False) -> None:
        """Does container ``cid`` match? (and where do its new lines start)

        ``started``: its start event came. It is then followed even if it has
        exited by the time it is checked (a job of a few milliseconds): its
        logs are there to read, and its stream ends at once with "exited".
        Otherwise (a re-list, a stream that saw an exit) only a running one.
        """
        if cid in self._followed or cid in self._checking:
            return
        self._checking.add(cid)
        filters = dict(self._any_state if started else self._filters)
        has_id = "id" in filters
        if not has_id:
            filters["id"] = [cid]
        me = self.actor_ref
        wanted = self._wanted

        def check(client: APIClient) -> _Checked:
            records = ListContainers(all=started, filters=filters).execute(client)
            if cid not in {str(c["Id"]) for c in records if wanted(c)}:
                return _Checked(cid, matched=False)
            state = InspectContainer(cid).execute(client)["State"]
            if not state.get("Running"):
                # It ran and exited since its start event: FinishedAt is this run's end,
                # not the previous run's, so its whole log is read (or from its cursors).
                return _Checked(cid, matched=True, since=None)
            finished = str(state.get("FinishedAt") or _NEVER)
            since = None
            if not finished.startswith("0001-"):
                since = format_since(parse_timestamp(finished.encode()))
            return _Checked(cid, matched=True, since=since)

        def done(result: _Checked | None, error: BaseException | None) -> None:
            if result is None:
                result = _Checked(cid, matched=False)
                if error is not None and not isinstance(
                    self._ctx.error(error, "inspect_container"), NotFound
                ):
                    logger.warning(
                        "follow %s: checking container %s failed: %s", self._id, cid[:12], error
                    )
            with contextlib.suppress(pykka.ActorDeadError):
                me.tell(result)

        self._ctx.calls.submit(check, done)

    def _checked(self, message: _Checked) -> None:
        self._checking.discard(message.container_id)
        if not message.matched or message.container_id in self._followed:
            return
        self._subscribe(message.container_id, message.since, "all")

    def _subscribe(self, cid: str, since: float | str | None, tail: int | str) -> None:
        self._counter += 1
        sub_id = f"{self._id}/{self._counter}"
        self._followed[cid] = sub_id
        resume = self._cursors.pop(cid, None)
        self._tell_manager(FollowSubscribe(self._id, sub_id, cid, since, tail, resume))

    # -- endings --

    def _ended(self, message: SubscriptionEnded) -> None:
        cid = message.container_id
        if self._followed.get(cid) != message.subscription_id:
            return
        del self._followed[cid]
        if not self._request.subscriber.is_alive():
            self._tell_manager(FollowGone(self._id))  # nobody to deliver to any more
            return
        if message.reason == "removed":
            self._cursors.pop(cid, None)
            return
        if message.cursors:
            self._cursors[cid] = message.cursors
            self._cursors.move_to_end(cid)
            while len(self._cursors) > _REMEMBERED:
                self._cursors.popitem(last=False)
        if message.reason == "exited":
            # It may have started again before its stream noticed the exit: its start
            # event was then ignored (still followed), so look again.
            self._check(cid)

    def _failed(self, message: FollowSubscribeFailed) -> None:
        cid = message.container_id
        if self._followed.get(cid) == message.subscription_id:
            del self._followed[cid]
        error = message.error
        if isinstance(error, NotFound):
            if self._store is not None:
                self._store.forget(position_key(self._ctx.endpoint, cid))
            return  # it went away before its stream opened
        if isinstance(error, TooManyStreams):
            logger.warning("follow %s: cannot follow %s: %s", self._id, cid[:12], error)
        self._tell_subscriber(
            LogStreamError(cid, str(error), self._id, endpoint=self._ctx.endpoint)
        )

    def _tell_manager(self, message: Any) -> None:
        # A dead manager means the pool is stopping (or broken): nothing left to ask it.
        with contextlib.suppress(pykka.ActorDeadError):
            self._manager.tell(message)

    def _tell_subscriber(self, message: Any) -> None:
        with contextlib.suppress(pykka.ActorDeadError):
            self._request.subscriber.tell(message)


def _finished_after(client: APIClient, cid: str, ns: int) -> bool:
    """Did the stopped container ``cid`` run after ``ns`` (its ``FinishedAt``)?"""
    try:
        state = InspectContainer(cid).execute(client).get("State") or {}
    except Exception:  # gone meanwhile: nothing to read
        return False
    finished = str(state.get("FinishedAt") or _NEVER)
    return not finished.startswith("0001-") and parse_timestamp(finished.encode()) >= ns


@attrs.frozen
class FollowStatus:
    """Ask a Follow actor which containers it follows (container id -> subscription id)."""
