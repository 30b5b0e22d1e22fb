"""The messages of a log stream: manager <-> stream, and readers -> stream.

A :class:`~actorpool.logs.stream.LogStream` talks to two kinds of party. The
stream manager (:mod:`actorpool.streams.manager`) hands it subscribers
(:class:`AddSubscriber`, :class:`RemoveSubscriber`) and hears back which
subscriptions ended (:class:`SubscriptionsClosed`), which arrived too late
(:class:`Reroute`) and, from a crashed stream, which to restart
(:class:`StreamFailed`); a subscription's owner (FollowContainers) hears
:class:`SubscriptionEnded`. Its readers (:mod:`actorpool.logs.readers`)
wake it when lines wait in the feed (:data:`FLUSH`) and report their ends
(:class:`ReaderDone`, :class:`WindowDone`, :class:`HistoryLines`,
:class:`HistoryDone`); those are internal to the log stream, not part of
actorpool's API. They all live here so that the actor and its readers share
them without importing each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

import attrs
import pykka

from actorpool.logs.cursors import Cursor, Source
from actorpool.messages import LogLine, LogStreamStarted

__all__ = [
    "FLUSH",
    "AddSubscriber",
    "Flush",
    "HistoryDone",
    "HistoryLines",
    "LogSubscriber",
    "ReaderDone",
    "RemoveSubscriber",
    "Reroute",
    "StreamFailed",
    "SubscriptionEnded",
    "SubscriptionsClosed",
    "WindowDone",
]

# --- manager <-> stream --------------------------------------------------------------------


@attrs.frozen
class LogSubscriber:
    """One subscription to one container's logs, as the manager hands it to a stream.

    Attributes:
        id: The subscription's own id (unique).
        public_id: The id put on the chunks and end messages (a FollowContainers
            subscription's id for the containers it follows).
        ref: The subscriber actor.
        stdout, stderr: The sources it wants.
        since, tail: Where its history starts (as in SubscribeLogs).
        owner: Told :class:`SubscriptionEnded` when this subscription ends (FollowContainers).
        resume: Per-source cursors to start after (a followed container that restarted).
        anchors: For a source ``resume`` lacks, the other source's line its
            starting window ended with (a crashed stream's; see
            :class:`~actorpool.logs.readers.Follower`).
    """

    id: str
    public_id: str
    ref: pykka.ActorRef[Any]
    stdout: bool = True
    stderr: bool = True
    since: float | str | None = None
    tail: int | Literal["all"] = "all"
    owner: pykka.ActorRef[Any] | None = None
    resume: Mapping[str, Cursor] | None = None
    anchors: Mapping[Source, tuple[Source, int]] | None = None


@attrs.frozen
class AddSubscriber:
    """Manager -> stream: one more subscriber."""

    subscriber: LogSubscriber


@attrs.frozen
class RemoveSubscriber:
    """Manager -> stream: end this subscription now (``LogStreamEnded(reason)`` is sent)."""

    subscription_id: str
    reason: str = "unsubscribed"


@attrs.frozen
class SubscriptionsClosed:
    """Stream -> manager: these subscriptions ended; ``finished``: the stream takes no more."""

    key: str
    subscription_ids: tuple[str, ...]
    finished: bool


@attrs.frozen
class Reroute:
    """Stream -> manager: a subscriber arrived after the stream finished; place it again."""

    subscriber: LogSubscriber


@attrs.frozen
class StreamFailed:
    """A crashed stream -> manager: restart these subscriptions (``resume`` = what each got).

    Sent from :meth:`~actorpool.logs.stream.LogStream.on_failure`, after the dead stream stopped its
    readers and *without* ending its subscriptions. Each subscriber's
    ``resume`` holds the cursors of the lines it was really sent (lines still
    in its outbox or in the feed were not), so a stream started from them
    continues with no gap and no duplicate.
    """

    key: str
    stream_urn: str
    container_id: str
    tty: bool
    follow: bool
    subscribers: tuple[LogSubscriber, ...]
    meta: LogStreamStarted | None = None


@attrs.frozen
class SubscriptionEnded:
    """Stream -> a subscription's owner: it ended (reason as in LogStreamEnded, or "error")."""

    subscription_id: str
    container_id: str
    reason: str
    cursors: Mapping[str, Cursor]


# --- readers -> stream (internal) ---------------------------------------------------------


class Flush:
    """Reader -> actor: lines are waiting in the feed."""


FLUSH: Final = Flush()


@attrs.frozen
class ReaderDone:
    """Reader -> actor: a reader ended, and why."""

    name: str
    reason: str  # exited | removed | completed | error | stopped
    error: str | None = None
    exit_code: int | None = None  # the container's, when the reason is exited


@attrs.frozen
class WindowDone:
    """Window reader -> actor: the starting window was read; start the followers here."""

    cursors: Mapping[str, Cursor]
    complete: bool


@attrs.frozen
class HistoryLines:
    """History reader -> actor: a batch of one late subscriber's history."""

    subscription_id: str
    lines: tuple[LogLine, ...]


@attrs.frozen
class HistoryDone:
    """History reader -> actor: a late subscriber's history ended (``ends``: its last lines)."""

    subscription_id: str
    ends: Mapping[str, Cursor]
    error: str | None = None
