"""The reader threads of a log stream, and the feed between them and the actor.

The blocking reads of a :class:`~actorpool.logs.stream.LogStream` never happen
on its mailbox thread: reader threads, each on a dedicated connection
(:func:`actorpool.transport.client.make_client`, never a request-pool slot), parse the
daemon's frames into lines and hand them over through a small shared buffer
(:class:`Feed`); the actor batches them into chunks and keeps answering
meanwhile. Readers tell the actor only through :mod:`actorpool.logs.protocol`.

Readers and why there are several
---------------------------------
The daemon delivers stdout and stderr out of timestamp order (by up to tens
of milliseconds), so one ``since`` cursor shared by both sources loses lines
on resume. A followed non-TTY container therefore has **one follow stream and
one cursor per source** (stdout-only and stderr-only, :class:`Follower`). The
starting window (``since``/``tail``) is read once, with both sources in one
non-follow request (:class:`WindowReader`; a per-source read would make the
daemon scan the log file twice), and the per-source followers start from the
cursors it leaves. A TTY container has a single source. A late subscriber's
history is read by a :class:`HistoryReader` of its own.

Exactly-once resume
-------------------
Every reader keeps a cursor per source (:mod:`actorpool.logs.cursors`) and
resumes from it, skipping the lines it already delivered.

After every end of a follow stream the reader inspects the container (a cut
stream and a finished one look the same): unreachable daemon = disconnected
(retry with jittered exponential backoff, give up after
``streams.give_up_after`` with :class:`~actorpool.messages.LogStreamError`);
404 = removed; running = cut or restarted, so catch up and follow again;
not running = exited, so read what is left after the cursor, wait
:data:`RESTART_GRACE` for a ``docker restart`` to bring it back, and end.

Catching up uses non-follow reads with ``since=cursor`` and
``tail=streams.resume_tail`` (a bounded read: ``tail=all`` with ``since``
scans the whole log file). If the read does not reach back to the cursor
(more than ``resume_tail`` lines, of both sources, were written meanwhile),
the tail is multiplied by 8 and the read repeated, up to ``tail=all``; the
cost grows with the gap, not with the file. Only when even ``tail=all`` does
not contain the cursor line (the log file was rotated or truncated past it)
are lines lost: that is counted (``StreamStats.resume_gaps``) and logged.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, Literal

import pykka

from actorpool.config import Config
from actorpool.engine.scheduler import Scheduler
from actorpool.errors import (
    Conflict,
    NotFound,
    StreamError,
)
from actorpool.logs.context import FailureStreak, GiveUp, StreamContext, transient
from actorpool.logs.cursors import Cursor, Source, advance
from actorpool.logs.protocol import (
    FLUSH,
    HistoryDone,
    HistoryLines,
    LogSubscriber,
    ReaderDone,
    WindowDone,
)
from actorpool.messages import InspectContainer, LogLine
from actorpool.transport.client import close_quietly, make_client
from actorpool.transport.decoder import LogDecoder
from actorpool.transport.frames import format_since
from actorpool.transport.logread import open_logs

if TYPE_CHECKING:
    from docker import APIClient

__all__ = [
    "RESTART_GRACE",
    "Feed",
    "Follower",
    "HistoryReader",
    "Reader",
    "WindowReader",
]

logger = logging.getLogger(__name__)

#: Seconds a stream whose container exited waits for it to run again (``docker restart``
#: stops, then starts: the container is "exited" for a few hundred ms in between).
RESTART_GRACE: Final = 1.0
_GRACE_STEPS: Final = (0.2, 0.3, 0.5)  # re-inspects within RESTART_GRACE

_SLICE: Final = 0.25  # longest a blocked thread waits before re-checking that it should stop
_ESCALATION: Final = 8  # a catch-up read that misses its cursor retries with 8x the tail
_MAX_TAIL: Final = 1_000_000  # past this the catch-up reads with tail=all


class _Stopped(Exception):
    """The reader was told to stop."""


class _Gap(Exception):
    """A resume read did not reach back to its cursor."""


class Feed:
    """Lines read and not yet fanned out: readers push, the actor takes.

    Pushing wakes the actor with a ``Flush`` at once when a batch is full,
    otherwise after ``batch_max_delay`` (one timer per batch), so many reads
    of a few lines cost one message. A push waits while the feed holds
    ``cap`` lines or the actor paused it (backpressure).
    """

    def __init__(self, actor: pykka.ActorRef[Any], scheduler: Scheduler, config: Config) -> None:
        self._actor = actor
        self._scheduler = scheduler
        self._batch = config.streams.batch_max_lines
        self._delay = config.streams.batch_max_delay
        self._cap = 4 * self._batch
        self.cond = threading.Condition()
        self._lines: list[LogLine] = []
        self._paused = False
        self._closed = False
        self._kicked = False
        self._armed = False

    def push(self, lines: list[LogLine], stop: threading.Event) -> None:
        """Add lines (blocks while full or paused); raises _Stopped when told to stop."""
        with self.cond:
            while (
                self._paused or (self._lines and len(self._lines) + len(lines) > self._cap)
            ) and not self._closed:
                if stop.is_set():
                    raise _Stopped
                self.cond.wait(_SLICE)
            if self._closed or stop.is_set():
                raise _Stopped
            self._lines.extend(lines)
            kick = arm = False
            if len(self._lines) >= self._batch or self._delay <= 0:
                if not self._kicked:
                    self._kicked = kick = True
            elif not self._armed:
                self._armed = arm = True
        if kick:
            self._tell()
        elif arm:
            self._scheduler.tell_later(self._delay, self._actor, FLUSH)

    def _tell(self) -> None:
        with contextlib.suppress(pykka.ActorDeadError):
            self._actor.tell(FLUSH)

    def take(self) -> list[LogLine]:
        """Everything pushed so far (the actor's side)."""
        with self.cond:
            lines, self._lines = self._lines, []
            self._kicked = False
            self._armed = False
            self.cond.notify_all()
        return lines

    def set_paused(self, paused: bool) -> None:
        if paused == self._paused:
            return
        with self.cond:
            self._paused = paused
            self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self._closed = True
            self.cond.notify_all()


class _Skipper:
    """Drops what a resumed read repeats: the lines up to one source's cursor.

    Strict (the default) raises :class:`_Gap` when the read turns out not to
    reach back to the cursor; lenient (the last resort, ``tail=all``) records
    the gap and goes on.
    """

    __slots__ = ("done", "gap", "left", "lenient", "ts")

    def __init__(self, cursor: Cursor, *, lenient: bool = False) -> None:
        self.ts, self.left = cursor
        self.lenient = lenient
        self.done = False
        self.gap = False

    def filter(self, lines: list[LogLine]) -> list[LogLine]:
        ts = self.ts
        for i, line in enumerate(lines):
            t = line.timestamp
            if t < ts:
                continue
            if t == ts and self.left > 0:
                self.left -= 1
                continue
            if self.left > 0:
                if not self.lenient:
                    raise _Gap
                self.gap = True
            self.done = True
            return lines[i:]
        return []

    def finish(self) -> None:
        """The read ended: were the cursor's lines all seen?"""
        if not self.done and self.left > 0:
            if not self.lenient:
                raise _Gap
            self.gap = True


class Reader(threading.Thread):
    """Base of the threads that read from the daemon for one LogStream.

    Owns a dedicated client, the current raw stream (so :meth:`stop` can shut
    its socket from another thread) and the cursors of the sources it reads.
    Lines go to the feed; the end goes to the actor as ``ReaderDone``.
    """

    def __init__(
        self,
        ctx: StreamContext,
        feed: Feed,
        actor: pykka.ActorRef[Any],
        *,
        name: str,
        container_id: str,
        tty: bool,
        cursors: Mapping[str, Cursor] | None = None,
    ) -> None:
        super().__init__(name=f"actorpool-logs-{container_id[:12]}-{name}", daemon=True)
        self.key = name
        self._ctx = ctx
        self._feed = feed
        self._actor = actor
        self._cid = container_id
        self._tty = tty
        self.cursors: dict[str, Cursor] = dict(cursors or {})
        self._stop_event = threading.Event()
        self._lock = threading.Lock()
        self._stream: Any = None
        self._client: APIClient | None = None
        self._last: LogDecoder | None = None  # the last read's decoder (holds an unfinished line)
        self._opened = False  # the last _read got the daemon's answer

    # -- control (any thread) --

    def stop(self) -> None:
        """Stop soon: shut the current stream's socket and wake any wait."""
        self._stop_event.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            try:
                stream.close()
            except Exception:  # closing a dying stream may raise; it is closed either way
                logger.debug("closing a log stream failed", exc_info=True)
        with self._feed.cond:
            self._feed.cond.notify_all()

    # -- thread body --

    def run(self) -> None:
        reason, error = "stopped", None
        try:
            reason = self._run()
        except _Stopped:
            reason = "stopped"
        except GiveUp as exc:
            reason, error = "error", f"container {self._cid[:12]}: {exc}"
        except Exception as exc:
            if not self._stop_event.is_set():
                logger.warning("log reader for %s failed: %s", self._cid[:12], exc, exc_info=True)
                reason, error = "error", f"container {self._cid[:12]}: {exc}"
        finally:
            self._drop_client()
        with contextlib.suppress(pykka.ActorDeadError):
            self._actor.tell(ReaderDone(self.key, reason, error))

    def _run(self) -> str:
        raise NotImplementedError

    # -- helpers --

    def _check_stop(self) -> None:
        if self._stop_event.is_set():
            raise _Stopped

    def _wait(self, seconds: float) -> None:
        if self._stop_event.wait(seconds):
            raise _Stopped

    def _get_client(self) -> APIClient:
        if self._client is None:
            self._client = make_client(self._ctx.config, timeout=self._ctx.config.api.timeout)
        return self._client

    def _read(
        self,
        *,
        stdout: bool,
        stderr: bool,
        follow: bool,
        since: float | str | None,
        tail: int | Literal["all"],
        skip: _Skipper | None = None,
        resumed: bool = False,
    ) -> LogDecoder:
        """One request: open, decode, deliver until the daemon ends it; return its decoder."""
        client = self._get_client()
        stream = open_logs(
            client,
            self._cid,
            stdout=stdout,
            stderr=stderr,
            follow=follow,
            since=since,
            tail=tail,
            timestamps=True,
            tty=self._tty,
            buffer_size=self._ctx.config.performance.buffer_size,
        )
        with self._lock:
            if self._stop_event.is_set():
                stream.close()
                raise _Stopped
            self._stream = stream
        self._opened = True
        decoder = stream.decoder(max_line_size=self._ctx.config.streams.max_line_size)
        try:
            seen = 0
            for lines in stream.batches(decoder):
                if lines:
                    if skip is not None and not skip.done:
                        lines = skip.filter(lines)
                    if lines:
                        if decoder.truncated != seen:
                            # Counted as delivered, not as decoded: a resume re-reads lines.
                            seen = decoder.truncated
                            self._count_truncated(sum(1 for line in lines if line.truncated))
                        self._deliver(lines, resumed=resumed)
        finally:
            with self._lock:
                self._stream = None
            stream.close()
        self._check_stop()
        if stream.end_reason != "complete":
            # Cut (daemon gone, reset, read timeout) or closed under us: not an end of the log.
            raise stream.error or StreamError(
                f"the log stream of {self._cid[:12]} ended before its end ({stream.end_reason})"
            )
        self._last = decoder
        return decoder

    def _count_truncated(self, n: int) -> None:
        if not n:
            return
        self._ctx.counters.add(truncated_lines=n)
        if self._ctx.metrics is not None:
            self._ctx.metrics.truncated_line(n)

    def _deliver(self, lines: list[LogLine], *, resumed: bool = False) -> None:
        advance(self.cursors, lines)
        self._feed.push(lines, self._stop_event)
        if resumed:
            self._ctx.counters.add(resumed_lines=len(lines))
            if self._ctx.metrics is not None:
                self._ctx.metrics.resumed_lines(len(lines))

    def _flush_last(self) -> None:
        """Deliver the unfinished last line of a log that ended for good."""
        if self._last is not None:
            lines = self._last.flush()
            self._last = None
            if lines:
                self._deliver(lines)

    def _inspect(self, streak: FailureStreak) -> str:
        """Ask the daemon about the container: running, exited or removed.

        Retries while the daemon is unreachable (backoff; raises GiveUp).
        """
        while True:
            self._check_stop()
            try:
                info = InspectContainer(self._cid).execute(self._get_client())
            except Exception as exc:
                error = self._ctx.error(exc, "inspect_container")
                if isinstance(error, NotFound):
                    return "removed"
                if not transient(error):
                    raise error from exc
                self._drop_client()
                self._wait(streak.failed(error))
                continue
            streak.reset()
            state = info.get("State") or {}
            if state.get("Running") or state.get("Restarting"):
                return "running"
            return "exited"

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        close_quietly(client, "log stream client")

    def _catch_up(
        self, source: Source, start: tuple[float | str | None, int | Literal["all"]]
    ) -> None:
        """Read what the daemon has after ``source``'s cursor (non-follow, verified).

        Without a cursor (nothing of this source delivered yet) it reads the
        source's starting window ``start`` instead.
        """
        stdout = source == "stdout" or self._tty
        stderr = source == "stderr" or self._tty
        cursor = self.cursors.get(source)
        if cursor is None:
            self._read(stdout=stdout, stderr=stderr, follow=False, since=start[0], tail=start[1])
            return
        tail: int | Literal["all"] = self._ctx.config.streams.resume_tail
        while True:
            skipper = _Skipper(cursor, lenient=tail == "all")
            try:
                self._read(
                    stdout=stdout,
                    stderr=stderr,
                    follow=False,
                    since=format_since(cursor[0]),
                    tail=tail,
                    skip=skipper,
                    resumed=True,
                )
                skipper.finish()
            except _Gap:
                tail = _escalate(tail)
                continue
            if skipper.gap:
                self._ctx.counters.add(resume_gaps=1)
                logger.warning(
                    "container %s %s: the log no longer holds the last delivered line "
                    "(rotated or truncated?); lines written between it and the oldest line "
                    "still in the log may be missing",
                    self._cid[:12],
                    source,
                )
            return


class WindowReader(Reader):
    """Reads a stream's starting window (``since``/``tail``) in one non-follow request.

    Both sources come in one request (file order: per source, in order), so
    the daemon scans the log once. For a followed container it then hands
    its cursors to the per-source followers (``WindowDone``); for a one-shot
    read (``follow=False``) it is the whole job, resuming source by source
    after a cut.
    """

    def __init__(
        self,
        ctx: StreamContext,
        feed: Feed,
        actor: pykka.ActorRef[Any],
        *,
        container_id: str,
        tty: bool,
        sources: tuple[Source, ...],
        since: float | str | None,
        tail: int | Literal["all"],
        follow: bool,
    ) -> None:
        super().__init__(ctx, feed, actor, name="window", container_id=container_id, tty=tty)
        self._sources = sources
        self._since = since
        self._tail = tail
        self._follow = follow

    def _run(self) -> str:
        complete = False
        try:
            self._read(
                stdout="stdout" in self._sources or self._tty,
                stderr="stderr" in self._sources or self._tty,
                follow=False,
                since=self._since,
                tail=self._tail,
            )
            complete = True
        except (_Stopped, GiveUp):
            raise
        except Exception as exc:
            error = self._ctx.error(exc, "container_logs")
            if _gone(error):
                return "removed"
            if not transient(error):
                raise error from exc
        if self._follow:
            with contextlib.suppress(pykka.ActorDeadError):
                self._actor.tell(WindowDone(dict(self.cursors), complete))
            return "handover"
        if not complete:
            self._resume_one_shot()
        self._flush_last()
        return "completed"

    def _resume_one_shot(self) -> None:
        # A one-shot read was cut: finish it source by source from the cursors.
        streak = FailureStreak(self._ctx.config)
        self._ctx.count_reconnect()
        pending = list(self._sources)
        while pending:
            if self._inspect(streak) == "removed":
                return
            source = pending[0]
            try:
                self._catch_up(source, (self._since, self._tail))
            except (_Stopped, GiveUp):
                raise
            except Exception as exc:
                error = self._ctx.error(exc, "container_logs")
                if _gone(error):
                    return
                if not transient(error):
                    raise error from exc
                continue
            pending.pop(0)


class Follower(Reader):
    """Follows one source of a container, forever resuming from its cursor.

    The loop is a small state machine: ``follow`` (a follow stream, verified
    against the cursor), ``settle`` (the stream ended: inspect),
    ``catch_up`` (non-follow reads up to now after a cut) and ``exited``
    (read the rest, give a restart :data:`RESTART_GRACE`, end).
    """

    def __init__(
        self,
        ctx: StreamContext,
        feed: Feed,
        actor: pykka.ActorRef[Any],
        *,
        container_id: str,
        tty: bool,
        source: Source,
        start: tuple[float | str | None, int | Literal["all"]],
        cursor: Cursor | None,
        resume: bool,
    ) -> None:
        super().__init__(
            ctx,
            feed,
            actor,
            name=source,
            container_id=container_id,
            tty=tty,
            cursors={source: cursor} if cursor is not None else None,
        )
        self._source: Source = source
        self._start = start
        self._resume = resume

    def _run(self) -> str:
        streak = FailureStreak(self._ctx.config)
        idle = FailureStreak(self._ctx.config)
        state = "settle" if self._resume else "follow"
        while True:
            self._check_stop()
            if state == "follow":
                began = time.monotonic()
                before = self.cursors.get(self._source)
                try:
                    self._follow()
                except _Gap:
                    state = "catch_up"
                    continue
                except (_Stopped, GiveUp):
                    raise
                except Exception as exc:
                    error = self._ctx.error(exc, "container_logs")
                    if _gone(error):
                        return "removed"
                    if not transient(error):
                        raise error from exc
                if self.cursors.get(self._source) == before and time.monotonic() - began < 1.0:
                    # Ended at once with nothing new (restarting, or flapping): slow down.
                    self._wait(idle.failed(StreamError("the log stream ended at once")) / 2)
                else:
                    idle.reset()
                state = "settle"
            elif state == "settle":
                verdict = self._inspect(streak)
                if verdict == "removed":
                    return "removed"
                if verdict == "exited":
                    state = "exited"
                else:
                    self._ctx.count_reconnect()
                    self._wait(self._ctx.reconnect_wait())
                    state = "catch_up"
            elif state == "catch_up":
                outcome = self._catch_up_or_settle()
                if outcome == "removed":
                    return "removed"
                state = "follow" if outcome == "ok" else "settle"
            else:  # exited: what is left after the cursor, then a chance to restart
                outcome = self._catch_up_or_settle()
                if outcome == "removed":
                    return "removed"
                if outcome == "settle":
                    state = "settle"
                    continue
                if self._restarted():
                    self._last = None
                    state = "follow"
                    continue
                self._flush_last()
                return "exited"

    def _follow(self) -> None:
        stdout = self._source == "stdout" or self._tty
        stderr = self._source == "stderr" or self._tty
        cursor = self.cursors.get(self._source)
        if cursor is not None:
            self._read(
                stdout=stdout,
                stderr=stderr,
                follow=True,
                since=format_since(cursor[0]),
                tail=self._ctx.config.streams.resume_tail,
                skip=_Skipper(cursor),
            )
            return
        since, tail = self._start
        opened = time.time_ns()
        self._opened = False
        try:
            self._read(stdout=stdout, stderr=stderr, follow=True, since=since, tail=tail)
        finally:
            if (
                self._opened
                and self.cursors.get(self._source) is None
                and not (since is None and tail == "all")
            ):
                # Nothing delivered yet: a reconnect starts where this stream started (never
                # later), reading a bounded tail.
                start = since if since is not None else format_since(opened)
                self._start = (start, self._ctx.config.streams.resume_tail)

    def _catch_up_or_settle(self) -> str:
        """Catch up: "ok", "settle" (the daemon could not be reached) or "removed"."""
        try:
            self._catch_up(self._source, self._start)
        except (_Stopped, GiveUp):
            raise
        except Exception as exc:
            error = self._ctx.error(exc, "container_logs")
            if _gone(error):
                return "removed"
            if not transient(error):
                raise error from exc
            return "settle"
        return "ok"

    def _restarted(self) -> bool:
        for step in _GRACE_STEPS:
            self._wait(step)
            try:
                state = InspectContainer(self._cid).execute(self._get_client()).get("State") or {}
            except Exception:
                return False
            if state.get("Running") or state.get("Restarting"):
                return True
        return False


class HistoryReader(Reader):
    """Reads a late subscriber's history (one non-follow request) for that subscriber only."""

    def __init__(
        self,
        ctx: StreamContext,
        feed: Feed,
        actor: pykka.ActorRef[Any],
        *,
        container_id: str,
        tty: bool,
        subscriber: LogSubscriber,
        sources: tuple[Source, ...],
        credit: threading.Semaphore,
    ) -> None:
        super().__init__(
            ctx, feed, actor, name=f"history-{subscriber.id}", container_id=container_id, tty=tty
        )
        self._sub = subscriber
        self._sources = sources
        self._credit = credit
        self._batch: list[LogLine] = []

    def run(self) -> None:
        error: str | None = None
        try:
            self._read(
                stdout="stdout" in self._sources or self._tty,
                stderr="stderr" in self._sources or self._tty,
                follow=False,
                since=self._sub.since,
                tail=self._sub.tail,
            )
            self._send()
        except _Stopped:
            return
        except Exception as exc:
            error = str(self._ctx.error(exc, "container_logs"))
        finally:
            self._drop_client()
        with contextlib.suppress(pykka.ActorDeadError):
            self._actor.tell(HistoryDone(self._sub.id, dict(self.cursors), error))

    def _deliver(self, lines: list[LogLine], *, resumed: bool = False) -> None:
        advance(self.cursors, lines)
        self._batch.extend(lines)
        if len(self._batch) >= self._ctx.config.streams.batch_max_lines:
            self._send()

    def _send(self) -> None:
        size = self._ctx.config.streams.batch_max_lines
        while self._batch:
            part, self._batch = self._batch[:size], self._batch[size:]
            while not self._credit.acquire(timeout=_SLICE):
                self._check_stop()
            self._check_stop()
            with contextlib.suppress(pykka.ActorDeadError):
                self._actor.tell(HistoryLines(self._sub.id, tuple(part)))


def _gone(error: BaseException) -> bool:
    """The container is gone or going: 404, or 409 "dead or marked for removal"."""
    return isinstance(error, NotFound | Conflict)


def _escalate(tail: int | Literal["all"]) -> int | Literal["all"]:
    """The next, larger tail for a catch-up read that missed its cursor."""
    if tail == "all" or tail * _ESCALATION > _MAX_TAIL:
        return "all"
    return tail * _ESCALATION
