"""One followed container: a stream actor that fans its log lines out to every subscriber.

Each followed container has exactly one :class:`LogStream` actor, shared by
all of its subscribers (three subscribers, one set of daemon streams). The
reads never happen on the actor's mailbox thread: readers
(:mod:`actorpool.logs.readers`; their follow streams are read by the pool's
one read-loop thread), each on a dedicated connection, parse the
daemon's frames into lines and hand them over through a small shared buffer;
the actor batches them into :class:`~actorpool.messages.LogChunk` messages
and keeps answering meanwhile. A followed non-TTY container has one follow
stream and one exact resume cursor (:mod:`actorpool.logs.cursors`) per source;
:mod:`actorpool.logs.readers` explains why, and how a cut stream resumes with
no gap and no duplicate. The messages it exchanges with the manager and its
readers are in :mod:`actorpool.logs.protocol`.

Backpressure
------------
A subscriber may have at most ``streams.subscriber_buffer`` messages in its
mailbox (``subscriber.actor_inbox.qsize()``, public in Pykka 4.5; this needs no
cooperation from the subscriber). Chunks beyond that wait in a per-subscriber
outbox drained every few milliseconds. With ``overflow_policy: block`` a full
outbox pauses the readers (they stop reading, the daemon buffers); with
``drop_oldest`` the outbox keeps the newest ``subscriber_buffer`` chunks and
drops (and counts) the oldest. Either way memory per subscriber is bounded.

Late subscribers
----------------
A subscriber joining a running stream with a ``since``/``tail`` of its own
gets its history from a one-off non-follow read on a thread of its own,
then the live lines; live lines that arrive while the history is read are
held and deduplicated against the history's last line per source, so the
join has no gap and no duplicate. A subscriber asking only for new lines
(``tail=0``, no ``since``), or joining before anything was delivered with the
same ``since``/``tail`` as the first one, joins the live stream directly.

Crash and restart
-----------------
Pykka does not restart a failed actor. A LogStream that fails hands its
subscriptions to the manager (:class:`~actorpool.logs.protocol.StreamFailed`,
from ``on_failure``) instead of ending them; each carries ``resume``: the
cursors of the lines that subscriber was really *sent* (tracked per
subscriber on every send, a few operations per chunk; lines still in an
outbox or the feed were not sent). The manager starts a new stream from
those cursors, one per distinct set of cursors (usually one), so every
subscriber continues with no gap and no duplicate. A subscriber that was
sent nothing restarts from its own ``since``/``tail``.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import operator
import threading
import time
from collections.abc import Iterable
from typing import Any, Final, Literal

import attrs
import pykka

from actorpool.engine.actor import Actor
from actorpool.logs.context import StreamContext
from actorpool.logs.cursors import Cursor, Source, advance, since_ns
from actorpool.logs.protocol import (
    FLUSH,
    AddSubscriber,
    HistoryDone,
    HistoryLines,
    LogSubscriber,
    ReaderDone,
    RemoveSubscriber,
    Reroute,
    StreamFailed,
    SubscriptionEnded,
    SubscriptionsClosed,
    WindowDone,
)
from actorpool.logs.readers import Feed, Follower, HistoryReader, Reader, WindowReader
from actorpool.messages import (
    LogChunk,
    LogLine,
    LogPosition,
    LogStreamEnded,
    LogStreamError,
    LogStreamStarted,
)
from actorpool.transport.frames import format_since

__all__ = ["LogStream"]

logger = logging.getLogger(__name__)

_DRAIN_INTERVAL: Final = 0.01  # how often full outboxes are retried
_NEW_SOURCE_MARGIN: Final = 1_000_000_000  # 1 s in ns; see WindowDone handling
_JOIN_TIMEOUT: Final = 2.0  # seconds on_stop waits for its readers (together)
_LAST: Final = 1 << 62  # a count above any real one
_DATA: Final = operator.attrgetter("data")


class _Drain:
    """Timer -> actor: retry the outboxes."""


_DRAIN: Final = _Drain()


_Out = tuple[LogChunk, int]  # a chunk and its payload bytes


class _Sub:
    """A subscriber as the stream actor tracks it."""

    __slots__ = (
        "credit",
        "ending",
        "error",
        "floors",
        "held",
        "hist_out",
        "history",
        "outbox",
        "pos",
        "sent",
        "sources",
        "spec",
    )

    def __init__(self, spec: LogSubscriber, sources: frozenset[str]) -> None:
        self.spec = spec
        self.sources = sources
        self.outbox: collections.deque[_Out] = collections.deque()
        self.history: HistoryReader | None = None
        self.hist_out: collections.deque[_Out] = collections.deque()
        self.held: collections.deque[tuple[LogLine, ...]] = collections.deque()
        self.pos: dict[str, Cursor] = {}  # position of the last live line, while floors exist
        self.floors: dict[str, Cursor] | None = None  # drop live lines at or before these
        self.credit: threading.Semaphore | None = None
        self.ending: str | None = None
        self.error: str | None = None
        self.sent: dict[str, Cursor] = dict(spec.resume or {})  # cursors of what it was told


class LogStream(Actor):
    """The stream actor of one container (or of one one-shot ``follow=False`` read).

    Started by :class:`~actorpool.streams.manager.StreamManager` with its first
    subscriber; more join with :class:`~actorpool.logs.protocol.AddSubscriber`,
    leave with :class:`~actorpool.logs.protocol.RemoveSubscriber`. Reports ended
    subscriptions to the manager (:class:`~actorpool.logs.protocol.SubscriptionsClosed`)
    and to their owners (:class:`~actorpool.logs.protocol.SubscriptionEnded`).
    """

    def __init__(
        self,
        ctx: StreamContext,
        *,
        key: str,
        container_id: str,
        tty: bool,
        follow: bool,
        manager: pykka.ActorRef[Any],
        first: LogSubscriber,
        more: tuple[LogSubscriber, ...] = (),
        meta: LogStreamStarted | None = None,
    ) -> None:
        super().__init__()
        self._meta = meta
        self._more = more
        self._ctx = ctx
        self._key = key
        self._cid = container_id
        self._tty = tty
        self._follow = follow
        self._manager = manager
        self._first = first
        streams = ctx.config.streams
        self._bound = streams.subscriber_buffer
        self._block = streams.overflow_policy == "block"
        self._batch = streams.batch_max_lines
        self._feed: Feed | None = None
        self._subs: dict[str, _Sub] = {}
        self._readers: dict[str, Reader] = {}
        self._history: dict[str, HistoryReader] = {}
        self._sources: set[str] = set()
        self._delivered: dict[str, Cursor] = dict(first.resume or {})  # a resume: its cursors
        # Sources the starting window had no line of: the other source's last line there.
        self._anchors: dict[Source, tuple[Source, int]] = {}
        self._reasons: list[tuple[str, str | None]] = []
        self._exit_code: int | None = None  # the container's, once a reader saw it exit
        self._waiting_window = False
        self._since = first.since
        self._tail = first.tail
        self._drain_armed = False
        self._finished = False  # the stream takes no more subscribers
        self._announced = False  # the manager was told it can stop this actor
        self._readers_done = False

    # -- lifecycle --

    def on_start(self) -> None:
        self._feed = Feed(self.actor_ref, self._ctx.scheduler, self._ctx.config)
        if self._ctx.metrics is not None:
            self._ctx.metrics.stream_opened("logs")
        self._add(self._first)
        for spec in self._more:
            self._add(spec)

    def on_stop(self) -> None:
        self._shutdown("pool stopped")

    def on_failure(self, *args: Any) -> None:
        # Pykka has no supervision: hand the subscriptions to the manager, which starts a
        # new stream from what each subscriber was really sent. Only if it is gone too,
        # end them here.
        self._stop_threads()
        specs = tuple(
            attrs.evolve(
                sub.spec,
                resume=dict(sub.sent),
                anchors={s: a for s, a in self._anchors.items() if s not in sub.sent} or None,
            )
            for sub in self._subs.values()
        )
        failed = StreamFailed(
            self._key, self.actor_urn, self._cid, self._tty, self._follow, specs, self._meta
        )
        try:
            self._manager.tell(failed)
        except pykka.ActorDeadError:
            self._shutdown("stream failed")
            return
        self._subs.clear()
        if not self._finished:
            self._finished = True
            if self._ctx.metrics is not None:
                self._ctx.metrics.stream_closed("logs")

    def _stop_threads(self) -> None:
        feed = self._feed
        if feed is not None:
            feed.close()
        threads: list[Reader] = [*self._readers.values(), *self._history.values()]
        for thread in threads:
            thread.stop()
        deadline = time.monotonic() + _JOIN_TIMEOUT
        for thread in threads:
            if thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                logger.warning("log reader %s did not stop within %s s", thread.name, _JOIN_TIMEOUT)
        self._readers.clear()
        self._history.clear()

    def _shutdown(self, reason: str) -> None:
        self._stop_threads()
        for sub in list(self._subs.values()):
            self._end(sub, reason, None, notify_manager=False)
        if not self._finished:
            self._finished = True
            if self._ctx.metrics is not None:
                self._ctx.metrics.stream_closed("logs")

    # -- messages --

    def on_receive(self, message: Any) -> Any:
        if message is FLUSH:
            self._flush()
        elif message is _DRAIN:
            self._drain_armed = False
            self._drain()
        elif isinstance(message, HistoryLines):
            self._history_lines(message)
        elif isinstance(message, ReaderDone):
            self._reader_done(message)
        elif isinstance(message, WindowDone):
            self._window_done(message)
        elif isinstance(message, HistoryDone):
            self._history_done(message)
        elif isinstance(message, AddSubscriber):
            if self._finished:
                with contextlib.suppress(pykka.ActorDeadError):
                    self._manager.tell(Reroute(message.subscriber))
            else:
                self._add(message.subscriber)
        elif isinstance(message, RemoveSubscriber):
            sub = self._subs.get(message.subscription_id)
            if sub is not None:
                self._end(sub, message.reason, None)
                self._maybe_finish()
            return sub is not None
        else:
            from actorpool.errors import UnknownMessage

            msg = f"LogStream does not understand {type(message).__name__}"
            raise UnknownMessage(msg)
        return None

    # -- subscribers --

    def _wants(self, spec: LogSubscriber) -> frozenset[str]:
        if self._tty:
            return frozenset({"stdout"}) if (spec.stdout or spec.stderr) else frozenset()
        wants = set()
        if spec.stdout:
            wants.add("stdout")
        if spec.stderr:
            wants.add("stderr")
        return frozenset(wants)

    def _add(self, spec: LogSubscriber) -> None:
        wants = self._wants(spec)
        sub = _Sub(spec, wants)
        self._subs[spec.id] = sub
        if self._meta is not None:
            # Before any chunk: this actor is the only sender of this subscription's chunks (a
            # dead subscriber is noticed, and ended, at its first chunk).
            with contextlib.suppress(pykka.ActorDeadError):
                spec.ref.tell(attrs.evolve(self._meta, subscription_id=spec.public_id))
        first = not self._sources and not self._readers
        if first:
            self._start_readers(spec, wants)
            return
        existing = _sources_of(wants & self._sources)
        new = _sources_of(wants - self._sources)
        if spec.resume is not None and spec in self._more:
            # A restarted subscription with the same cursors as the first: joins live.
            for source in new:
                self._resume_follower(spec, source)
            return
        for source in new:
            self._start_follower(source, (spec.since, spec.tail), None, resume=False)
        if existing and self._needs_history(spec, existing):
            self._start_history(sub, existing)

    def _needs_history(self, spec: LogSubscriber, sources: tuple[str, ...]) -> bool:
        if spec.tail == 0 and spec.since is None:
            return False
        nothing_yet = not any(s in self._delivered for s in sources)
        return not (nothing_yet and spec.since == self._since and spec.tail == self._tail)

    def _start_readers(self, spec: LogSubscriber, wants: frozenset[str]) -> None:
        assert self._feed is not None
        sources = _sources_of(wants)
        if not sources:
            self._sources.add("stdout")
            sources = ("stdout",)
        if spec.resume:
            for source in sources:
                self._resume_follower(spec, source)
            return
        if not self._follow or (len(sources) > 1 and spec.tail != 0 and not self._tty):
            reader = WindowReader(
                self._ctx,
                self._feed,
                self.actor_ref,
                container_id=self._cid,
                tty=self._tty,
                sources=sources,
                since=spec.since,
                tail=spec.tail,
                follow=self._follow,
            )
            self._sources.update(sources)
            self._waiting_window = self._follow
            self._readers[reader.key] = reader
            reader.start()
            return
        for source in sources:
            self._start_follower(source, (spec.since, spec.tail), None, resume=False)

    def _resume_follower(self, spec: LogSubscriber, source: Source) -> None:
        """Start ``source``'s follower after the cursor ``spec.resume`` has for it.

        A source without one starts from ``since``/``tail``, or, when the crashed
        stream it comes from had anchored it, from its anchor, as then.
        """
        cursor = (spec.resume or {}).get(source)
        anchor = None if cursor is not None else (spec.anchors or {}).get(source)
        start: tuple[float | str | None, int | Literal["all"]] = (spec.since, spec.tail)
        if anchor is not None:
            start = self._anchored_start(spec.since, anchor[1])
            self._anchors[source] = anchor
        self._start_follower(source, start, cursor, resume=True, anchor=anchor)

    def _anchored_start(
        self, since: float | str | None, last: int
    ) -> tuple[float | str | None, int | Literal["all"]]:
        """Where a source anchored at the other's line stamped ``last`` starts reading.

        Its lines after the window are newer than that line, give or take the
        daemon's out-of-order delivery between sources (tens of ms): a margin
        before it, within ``since``.
        """
        floor = since_ns(since) or 0
        margin = format_since(max(floor, last - _NEW_SOURCE_MARGIN))
        return (margin, self._ctx.config.streams.resume_tail)

    def _start_follower(
        self,
        source: Source,
        start: tuple[float | str | None, int | Literal["all"]],
        cursor: Cursor | None,
        *,
        resume: bool,
        anchor: tuple[Source, int] | None = None,
    ) -> None:
        assert self._feed is not None
        follower = Follower(
            self._ctx,
            self._feed,
            self.actor_ref,
            container_id=self._cid,
            tty=self._tty,
            source=source,
            start=start,
            cursor=cursor,
            resume=resume,
            anchor=anchor,
        )
        self._sources.add(source)
        self._readers[follower.key] = follower
        follower.start()

    def _window_done(self, message: WindowDone) -> None:
        self._readers.pop("window", None)
        self._waiting_window = False
        if self._finished or self._feed is None:
            return
        cursors = message.cursors
        streams = self._ctx.config.streams
        for source in _sources_of(self._sources):
            cursor = cursors.get(source)
            anchor: tuple[Source, int] | None = None
            if cursor is not None:
                start: tuple[float | str | None, int | Literal["all"]] = (self._since, self._tail)
            elif message.complete and cursors:
                # This source had no line in the window: the other source's last line there
                # anchors it (the follower starts exactly after it; see Follower).
                other = max(_sources_of(cursors), key=lambda name: cursors[name][0])
                anchor = (other, cursors[other][0])
                self._anchors[source] = anchor
                start = self._anchored_start(self._since, anchor[1])
            elif message.complete and self._since is None:
                # A complete, empty window of both sources with no since: the log was empty.
                # Everything in it now came after the window; a bounded tail could miss some.
                start = (None, "all")
            elif message.complete:
                tail = self._tail if self._tail != "all" else streams.resume_tail
                start = (self._since, min(tail, streams.resume_tail))
            else:
                start = (self._since, self._tail)
            self._start_follower(source, start, cursor, resume=not message.complete, anchor=anchor)

    def _start_history(self, sub: _Sub, sources: tuple[str, ...]) -> None:
        assert self._feed is not None
        sub.pos = {s: c for s, c in self._delivered.items() if s in sources}
        sub.credit = threading.Semaphore(self._bound)
        reader = HistoryReader(
            self._ctx,
            self._feed,
            self.actor_ref,
            container_id=self._cid,
            tty=self._tty,
            subscriber=sub.spec,
            sources=sources,  # type: ignore[arg-type]
            credit=sub.credit,
        )
        sub.history = reader
        self._history[sub.spec.id] = reader
        self._ctx.counters.add(history_reads=1)
        reader.start()

    def _history_lines(self, message: HistoryLines) -> None:
        sub = self._subs.get(message.subscription_id)
        if sub is None:
            return
        chunk = LogChunk(self._cid, message.lines, sub.spec.public_id, endpoint=self._ctx.endpoint)
        sub.hist_out.append((chunk, _nbytes(message.lines)))
        self._drain_sub(sub)
        self._after_send()

    def _history_done(self, message: HistoryDone) -> None:
        self._history.pop(message.subscription_id, None)
        sub = self._subs.get(message.subscription_id)
        if sub is None:
            return
        sub.history = None
        if message.error is not None:
            self._ctx.counters.add(resume_gaps=1)
            logger.warning(
                "container %s: history read for subscription %s failed (%s); it continues "
                "with the live lines",
                self._cid[:12],
                sub.spec.id,
                message.error,
            )
        since = since_ns(sub.spec.since)
        floors: dict[str, Cursor] = {}
        for source in sub.sources:
            end = message.ends.get(source)
            if end is not None:
                floors[source] = end
            elif since is not None:
                floors[source] = (since - 1, _LAST)  # i.e. drop lines stamped before since
        sub.floors = floors or None
        kept = _above_floors(sub, [line for batch in sub.held for line in batch])
        sub.held.clear()
        for i in range(0, len(kept), self._batch):
            part = tuple(kept[i : i + self._batch])
            sub.outbox.append(
                (
                    LogChunk(self._cid, part, sub.spec.public_id, endpoint=self._ctx.endpoint),
                    _nbytes(part),
                )
            )
        self._drain_sub(sub)
        self._after_send()

    # -- fan-out --

    def _flush(self) -> None:
        if self._feed is None:
            return
        lines = self._feed.take()
        if not lines:
            return
        advance(self._delivered, lines)
        both = len(self._sources) > 1
        for i in range(0, len(lines), self._batch):
            part = tuple(lines[i : i + self._batch])
            nbytes = -1
            for sub in list(self._subs.values()):
                if sub.ending is not None:
                    continue
                mine = part
                if both and len(sub.sources) < 2:
                    mine = tuple(line for line in part if line.stream in sub.sources)
                    if not mine:
                        continue
                    size = _nbytes(mine)
                else:
                    if nbytes < 0:
                        nbytes = _nbytes(part)
                    size = nbytes
                if sub.floors is not None and sub.history is None:
                    # Live lines the subscriber's history read already delivered.
                    mine = tuple(_above_floors(sub, mine))
                    if not mine:
                        continue
                    size = _nbytes(mine)
                if sub.history is not None:
                    sub.held.append(mine)
                    if len(sub.held) > self._bound and not self._block:
                        sub.held.popleft()
                        self._dropped(1)
                    self._ctx.counters.peak("peak_buffered_chunks", len(sub.held))
                    continue
                self._send(
                    sub,
                    LogChunk(self._cid, mine, sub.spec.public_id, endpoint=self._ctx.endpoint),
                    size,
                )
        self._after_send()

    def _send(self, sub: _Sub, chunk: LogChunk, nbytes: int) -> None:
        idle = not sub.outbox and not sub.hist_out and sub.history is None
        if idle and _queued(sub.spec.ref) < self._bound:
            self._tell(sub, chunk, nbytes)
            return
        sub.outbox.append((chunk, nbytes))
        if not self._block and len(sub.outbox) > self._bound:
            sub.outbox.popleft()
            self._dropped(1)
        self._ctx.counters.peak("peak_buffered_chunks", len(sub.outbox))

    def _tell(self, sub: _Sub, chunk: LogChunk, nbytes: int) -> bool:
        sent = dict(sub.sent)
        advance(sent, chunk.lines)
        chunk = attrs.evolve(chunk, position=_position(sent))
        try:
            sub.spec.ref.tell(chunk)
        except pykka.ActorDeadError:
            self._end(sub, "subscriber gone", None, tell=False)
            return False
        sub.sent = sent
        n = len(chunk.lines)
        self._ctx.counters.add(lines_delivered=n, bytes_delivered=nbytes)
        if self._ctx.metrics is not None:
            self._ctx.metrics.lines_delivered(n, nbytes)
        return True

    def _dropped(self, n: int) -> None:
        self._ctx.counters.add(dropped_chunks=n)
        if self._ctx.metrics is not None:
            self._ctx.metrics.dropped_chunks(self._ctx.config.streams.overflow_policy, n)

    def _drain_sub(self, sub: _Sub) -> None:
        if sub.ending is None and not sub.outbox and not sub.hist_out:
            return
        room = self._bound - _queued(sub.spec.ref)
        while room > 0 and sub.hist_out:
            chunk, nbytes = sub.hist_out.popleft()
            if sub.credit is not None:
                sub.credit.release()
            if not self._tell(sub, chunk, nbytes):
                return
            room -= 1
        if sub.history is None:
            while room > 0 and sub.outbox:
                chunk, nbytes = sub.outbox.popleft()
                if not self._tell(sub, chunk, nbytes):
                    return
                room -= 1
        if (
            sub.ending is not None
            and sub.history is None
            and not sub.outbox
            and not sub.hist_out
            and sub.spec.id in self._subs
        ):
            self._end(sub, sub.ending, sub.error)

    def _drain(self) -> None:
        for sub in list(self._subs.values()):
            self._drain_sub(sub)
        self._after_send()
        self._maybe_finish()

    def _after_send(self) -> None:
        pending = False
        full = False
        for sub in self._subs.values():
            if sub.outbox or sub.hist_out or (sub.ending is not None and sub.history is None):
                pending = True
            if len(sub.outbox) >= self._bound or len(sub.held) >= self._bound:
                full = True
        if self._feed is not None:
            self._feed.set_paused(self._block and full)
        if pending and not self._drain_armed:
            self._drain_armed = True
            self._ctx.scheduler.tell_later(_DRAIN_INTERVAL, self.actor_ref, _DRAIN)

    # -- endings --

    def _reader_done(self, message: ReaderDone) -> None:
        reader = self._readers.pop(message.name, None)
        if reader is None or message.reason == "handover":
            return
        if message.name == "window":
            self._waiting_window = False
        self._flush()
        if message.reason != "stopped":
            self._reasons.append((message.reason, message.error))
        if message.exit_code is not None:
            self._exit_code = message.exit_code
        if self._readers or self._waiting_window:
            return
        self._readers_done = True
        reason, error = _final_reason(self._reasons)
        for sub in self._subs.values():
            if sub.ending is None:
                sub.ending, sub.error = reason, error
        self._finished = True
        self._drain()

    def _end(
        self,
        sub: _Sub,
        reason: str,
        error: str | None,
        *,
        tell: bool = True,
        notify_manager: bool = True,
    ) -> None:
        """End one subscription now: its pending chunks are dropped."""
        self._subs.pop(sub.spec.id, None)
        history = self._history.pop(sub.spec.id, None)
        if history is not None:
            history.stop()
        spec = sub.spec
        if tell:
            end: LogStreamEnded | LogStreamError
            if error is not None:
                end = LogStreamError(self._cid, error, spec.public_id, endpoint=self._ctx.endpoint)
            else:
                code = self._exit_code if reason == "exited" else None
                end = LogStreamEnded(
                    self._cid, reason, spec.public_id, exit_code=code, endpoint=self._ctx.endpoint
                )
            with contextlib.suppress(pykka.ActorDeadError):
                spec.ref.tell(end)
        if spec.owner is not None:
            with contextlib.suppress(pykka.ActorDeadError):
                spec.owner.tell(
                    SubscriptionEnded(
                        spec.id, self._cid, "error" if error else reason, dict(self._delivered)
                    )
                )
        if notify_manager:
            with contextlib.suppress(pykka.ActorDeadError):
                self._manager.tell(SubscriptionsClosed(self._key, (spec.id,), finished=False))

    def _maybe_finish(self) -> None:
        """No subscriber left: stop reading and let the manager stop this actor."""
        if self._subs or self._announced:
            return
        self._finished = True
        self._announced = True
        for thread in [*self._readers.values(), *self._history.values()]:
            thread.stop()
        if self._feed is not None:
            self._feed.close()
        with contextlib.suppress(pykka.ActorDeadError):
            self._manager.tell(SubscriptionsClosed(self._key, (), finished=True))


def _position(cursors: dict[str, Cursor]) -> LogPosition:
    return LogPosition(cursors.get("stdout"), cursors.get("stderr"))


def _sources_of(names: Iterable[str]) -> tuple[Source, ...]:
    """The sources among ``names``, stdout first."""
    present = set(names)
    out: list[Source] = []
    if "stdout" in present:
        out.append("stdout")
    if "stderr" in present:
        out.append("stderr")
    return tuple(out)


def _queued(ref: pykka.ActorRef[Any]) -> int:
    """Messages waiting in an actor's mailbox (``actor_inbox``: a Queue or SimpleQueue)."""
    size = getattr(ref.actor_inbox, "qsize", None)
    return int(size()) if size is not None else 0


def _nbytes(lines: Iterable[LogLine]) -> int:
    return sum(map(len, map(_DATA, lines)))  # C loops: a chunk of 1000 lines in ~30 µs


def _final_reason(reasons: list[tuple[str, str | None]]) -> tuple[str, str | None]:
    for reason, error in reasons:
        if reason == "error":
            return reason, error or "the log stream failed"
    names = {reason for reason, _ in reasons}
    for reason in ("removed", "exited", "completed"):
        if reason in names:
            return reason, None
    return "pool stopped", None


def _above_floors(sub: _Sub, lines: Iterable[LogLine]) -> list[LogLine]:
    """The live lines after a late subscriber's history, per source; retires passed floors.

    Positions are ``(timestamp, n-th line of the source with that timestamp)``,
    counted from the stream's position when the subscriber joined.
    """
    floors = sub.floors
    if floors is None:
        return list(lines)
    pos = sub.pos
    kept: list[LogLine] = []
    for line in lines:
        source = line.stream
        prev = pos.get(source)
        k = prev[1] + 1 if prev is not None and prev[0] == line.timestamp else 1
        pos[source] = (line.timestamp, k)
        floor = floors.get(source)
        if floor is not None:
            if (line.timestamp, k) <= floor:
                continue
            del floors[source]  # positions only grow: this source is past its history
        kept.append(line)
    if not floors:
        sub.floors = None
    return kept
