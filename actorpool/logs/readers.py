"""The readers of a log stream, and the feed between them and the actor.

The reads of a :class:`~actorpool.logs.stream.LogStream` never happen on its
mailbox thread: readers, each on a dedicated connection
(:func:`actorpool.transport.client.make_client`, never a request-pool slot), parse the
daemon's frames into lines and hand them over through a small shared buffer
(:class:`Feed`); the actor batches them into chunks and keeps answering
meanwhile. Readers tell the actor only through :mod:`actorpool.logs.protocol`.

Threads
-------
A reader runs on a short-lived thread of its own only while it has blocking
work: opening a stream, a non-follow read, an inspect, a backoff. A
:class:`Follower`'s follow stream, which lasts as long as the container
runs, is read by the pool's one read loop
(:class:`~actorpool.transport.readloop.ReadLoop`, reached through
:attr:`StreamContext.reads <actorpool.logs.context.StreamContext.reads>`):
so a followed container costs no thread but its actor's. The loop never
blocks on the feed: :meth:`Feed.offer` takes a read's lines and says when
the feed is full (or paused by the actor), and the loop stops reading that
socket until the feed calls it back.

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
A source with no cursor yet is checked against an *anchor* instead, the
other source's last line in the starting window (see :class:`Follower`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
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
from actorpool.logs.cursors import Cursor, Source, advance, since_ns
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
from actorpool.transport.dialect import DOCKER
from actorpool.transport.frames import format_since
from actorpool.transport.logread import RawLogStream, open_logs
from actorpool.transport.readloop import Watch

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
# How far the daemon may write a line after one of the other source stamped later (ns):
# bounds the search for a quiet source's last line before its anchor (Follower).
_DISORDER: Final = 100_000_000


class _Stopped(Exception):
    """The reader was told to stop."""


class _Gap(Exception):
    """A resume read did not reach back to its cursor."""


class _Exited(Exception):
    """A follow stream opened on a container that is no longer running (see Dialect)."""


class _AnchorMissed(Exception):
    """A cursorless read's ``tail`` may not reach back to its anchor: read again with more."""


class Feed:
    """Lines read and not yet fanned out: readers push, the actor takes.

    Pushing wakes the actor with a ``Flush`` at once when a batch is full,
    otherwise after ``batch_max_delay`` (one timer per batch), so many reads
    of a few lines cost one message. The feed holds about ``cap`` lines: a
    blocking reader's :meth:`push` waits while it is full or the actor paused
    it (backpressure); the read loop's :meth:`offer` never waits but says
    "no more" and is called back when there is room again.
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
        self._waiting: list[Callable[[], None]] = []  # offers told "no more", to call back

    def push(self, lines: list[LogLine], stop: threading.Event) -> None:
        """Add lines (blocks while full or paused); raises _Stopped when told to stop."""
        with self.cond:
            while self._full(len(lines)) and not self._closed:
                if stop.is_set():
                    raise _Stopped
                self.cond.wait(_SLICE)
            if self._closed or stop.is_set():
                raise _Stopped
            self._lines.extend(lines)
            kick, arm = self._wake()
        self._kick(kick, arm)

    def offer(self, lines: list[LogLine], resume: Callable[[], None]) -> bool:
        """Add lines without waiting; ``False``: full or paused, ``resume()`` comes with room.

        The lines are taken either way (at most one read past the limit).
        """
        with self.cond:
            if self._closed:
                return True
            self._lines.extend(lines)
            kick, arm = self._wake()
            room = not self._full(0)
            if not room:
                self._waiting.append(resume)
        self._kick(kick, arm)
        return room

    def _full(self, adding: int) -> bool:
        # Under the lock. A push into an empty feed always fits (a read's lines go in whole).
        return self._paused or bool(self._lines and len(self._lines) + adding > self._cap)

    def _wake(self) -> tuple[bool, bool]:
        # Under the lock: wake the actor now (a full batch) or arm the batch timer.
        if len(self._lines) >= self._batch or self._delay <= 0:
            if not self._kicked:
                self._kicked = True
                return True, False
        elif not self._armed:
            self._armed = True
            return False, True
        return False, False

    def _kick(self, kick: bool, arm: bool) -> None:
        if kick:
            with contextlib.suppress(pykka.ActorDeadError):
                self._actor.tell(FLUSH)
        elif arm:
            self._scheduler.tell_later(self._delay, self._actor, FLUSH)

    def take(self) -> list[LogLine]:
        """Everything pushed so far (the actor's side)."""
        with self.cond:
            lines, self._lines = self._lines, []
            self._kicked = False
            self._armed = False
            self.cond.notify_all()
            waiting = self._release()
        for resume in waiting:
            resume()
        return lines

    def set_paused(self, paused: bool) -> None:
        if paused == self._paused:
            return
        with self.cond:
            self._paused = paused
            self.cond.notify_all()
            waiting = self._release()
        for resume in waiting:
            resume()

    def _release(self) -> list[Callable[[], None]]:
        # Under the lock: the offers to call back, if there is room now.
        if not self._waiting or self._full(0):
            return []
        waiting, self._waiting = self._waiting, []
        return waiting

    def close(self) -> None:
        with self.cond:
            self._closed = True
            self._waiting.clear()
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


class _Body:
    """One response being read: its stream, decoder, skipper, and the cut lines counted so far."""

    __slots__ = ("decoder", "resumed", "seen", "skip", "stream")

    def __init__(
        self, stream: RawLogStream, max_line_size: int, skip: _Skipper | None, resumed: bool
    ) -> None:
        self.stream = stream
        self.decoder = stream.decoder(max_line_size=max_line_size)
        self.skip = skip
        self.resumed = resumed
        self.seen = 0


class Reader:
    """Base of what reads from the daemon for one LogStream.

    Owns a dedicated client, the current raw stream (so :meth:`stop` can shut
    its socket from another thread) and the cursors of the sources it reads.
    Lines go to the feed; the end goes to the actor as ``ReaderDone``. It
    runs on a thread of its own while it has blocking work (a non-follow
    read, an inspect, a backoff); a :class:`Follower` hands its follow stream
    to the pool's :class:`~actorpool.transport.readloop.ReadLoop` and has no
    thread while it follows. :meth:`is_alive` and :meth:`join` are about the
    reader, not any one thread.
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
        self.key = name
        self.name = f"actorpool-logs-{container_id[:12]}-{name}"
        self._ctx = ctx
        self._feed = feed
        self._actor = actor
        self._cid = container_id
        self._tty = tty
        self.cursors: dict[str, Cursor] = dict(cursors or {})
        self._stop_event = threading.Event()
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._stream: RawLogStream | None = None
        self._client: APIClient | None = None
        self._last: LogDecoder | None = None  # the last read's decoder (holds an unfinished line)
        self._opened = False  # the last _read got the daemon's answer
        self._exit_code: int | None = None  # State.ExitCode of the last inspect that saw it end
        self._dialect = DOCKER  # the daemon's, known once the first client is made
        # A line of the *other* source that every undelivered line of a cursorless source
        # follows in the log file (see Follower): how its bounded reads are checked.
        self._anchor: tuple[Source, int] | None = None

    # -- control (any thread) --

    def start(self) -> None:
        """Start reading (on a thread of its own)."""
        self._spawn()

    def is_alive(self) -> bool:
        """Started and not finished (``ReaderDone`` not sent yet)."""
        return not self._done.is_set()

    def join(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the reader to finish."""
        self._done.wait(timeout)

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

    # -- the work --

    def _spawn(self) -> None:
        threading.Thread(target=self._phase, name=self.name, daemon=True).start()

    def _phase(self) -> None:
        """Run :meth:`_run` on this thread until it ends, or hands over to the read loop."""
        reason, error = "stopped", None
        try:
            outcome = self._run()
            if outcome is None:
                return  # following on the read loop; nothing here may touch the reader now
            reason = outcome
        except _Stopped:
            reason = "stopped"
        except GiveUp as exc:
            reason, error = "error", f"container {self._cid[:12]}: {exc}"
        except Exception as exc:
            if not self._stop_event.is_set():
                logger.warning("log reader for %s failed: %s", self._cid[:12], exc, exc_info=True)
                reason, error = "error", f"container {self._cid[:12]}: {exc}"
        self._finish(reason, error)

    def _finish(self, reason: str, error: str | None) -> None:
        self._drop_client()
        exit_code = self._exit_code if reason == "exited" else None
        with contextlib.suppress(pykka.ActorDeadError):
            self._actor.tell(ReaderDone(self.key, reason, error, exit_code))
        self._done.set()

    def _run(self) -> str | None:
        """The reader's work: its end reason, or None when the read loop took over."""
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
            client = make_client(self._ctx.config, timeout=self._ctx.config.api.timeout)
            try:
                self._dialect = self._ctx.dialect.get(client)
            except BaseException:
                close_quietly(client, "log stream client")
                raise
            self._client = client
        return self._client

    def _resume_tail(self) -> int | Literal["all"]:
        """The ``tail`` of a resume read: bounded, unless whole-second stamps forbid it.

        With whole-second timestamps (Podman) a bounded tail may start inside the
        cursor's second, and the skipper would then skip lines never delivered.
        """
        self._get_client()  # makes the dialect known (a fresh reader has not asked yet)
        return "all" if self._dialect.whole_seconds else self._ctx.config.streams.resume_tail

    def _check_still_running(self, stream: RawLogStream) -> None:
        """On an engine whose follow of an exited container is broken: is it still running?

        Asked after the follow stream's answer came: a container running now was
        running when the daemon chose how to serve the follow. Raises _Exited.
        """
        try:
            state = InspectContainer(self._cid).execute(self._get_client()).get("State") or {}
        except BaseException:
            stream.close()
            raise
        if not (state.get("Running") or state.get("Restarting")):
            stream.close()
            raise _Exited

    def _check_anchor(self, stream: RawLogStream, tail: int) -> None:
        """A cursorless follow just opened with ``tail``: did that tail reach the anchor?

        Asked after the follow's answer came: the daemon fixes where a read
        starts before it answers, so an anchor within the last ``tail`` lines
        now was within them when the follow started. Raises _AnchorMissed.
        """
        try:
            within = self._anchor_within(tail)
        except BaseException:
            stream.close()
            raise
        if not within:
            stream.close()
            raise _AnchorMissed

    def _anchor_within(self, tail: int) -> bool:
        """Is the anchor line among the log's last ``tail`` lines (of both sources)?

        One read of both sources from the anchor's timestamp answers it: its
        first line of the anchor's source is the anchor exactly when the tail
        reaches it. Both sources, because dockerd (20.10, measured) counts
        ``tail`` over both whichever are asked for, and an engine counting only
        the sources asked for would then count at least as many for one.
        Read only until that first line.
        """
        assert self._anchor is not None
        source, ts = self._anchor
        stream = open_logs(
            self._get_client(),
            self._cid,
            stdout=True,
            stderr=True,
            follow=False,
            since=format_since(ts),
            tail=tail,
            timestamps=True,
            tty=self._tty,
            buffer_size=self._ctx.config.performance.buffer_size,
        )
        with self._lock:
            stopped = self._stop_event.is_set()
            outer, self._stream = self._stream, stream
        try:
            if stopped:
                raise _Stopped
            decoder = stream.decoder(max_line_size=self._ctx.config.streams.max_line_size)
            for lines in stream.batches(decoder):
                first = next((line for line in lines if line.stream == source), None)
                if first is not None:
                    return first.timestamp <= ts
            self._check_stop()
            return False
        finally:
            with self._lock:
                self._stream = outer
            stream.close()

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
        detach: bool = False,
        into: list[LogLine] | None = None,
        probe: bool = False,
    ) -> bool:
        """One request: open, decode, deliver until the daemon ends it.

        With ``detach`` the body goes to the read loop when it can
        (:meth:`_detach`); then this returns True at once and the calling
        thread must leave the reader alone. Otherwise it returns False once
        the body was read to its end. With ``into`` the lines are collected
        there instead of delivered; a ``probe`` (lines looked at, never
        delivered) counts no cut line. A cursorless follow with an anchor is
        checked (:meth:`_check_anchor`) before anything of it is read.
        """
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
        if follow and not self._dialect.follow_exited:
            self._check_still_running(stream)
        if follow and skip is None and self._anchor is not None and tail != "all":
            self._check_anchor(stream, tail)
        self._opened = True
        body = _Body(stream, self._ctx.config.streams.max_line_size, skip, resumed)
        if detach and self._detach(body):
            return True
        try:
            for lines in stream.batches(body.decoder):
                kept = lines if probe else self._accept(body, lines)
                if kept and into is not None:
                    into.extend(kept)
                elif kept:
                    self._deliver(kept, resumed=resumed)
        finally:
            with self._lock:
                self._stream = None
            stream.close()
        self._body_ended(body)
        return False

    def _detach(self, body: _Body) -> bool:
        """Hand ``body`` to the read loop; False when it must be read here (only Follower can)."""
        return False

    def _accept(self, body: _Body, lines: list[LogLine]) -> list[LogLine]:
        """The lines of one read to deliver: after the resume cursor; cut lines counted."""
        if body.skip is not None and not body.skip.done:
            lines = body.skip.filter(lines)
        if lines and body.decoder.truncated != body.seen:
            # Counted as delivered, not as decoded: a resume re-reads lines.
            body.seen = body.decoder.truncated
            self._count_truncated(sum(1 for line in lines if line.truncated))
        return lines

    def _body_ended(self, body: _Body) -> None:
        """A body was read to its end: raise unless the daemon really ended it."""
        self._check_stop()
        stream = body.stream
        if stream.end_reason != "complete":
            # Cut (daemon gone, reset, read timeout) or closed under us: not an end of the log.
            raise stream.error or StreamError(
                f"the log stream of {self._cid[:12]} ended before its end ({stream.end_reason})"
            )
        self._last = body.decoder

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
            code = state.get("ExitCode")
            self._exit_code = code if isinstance(code, int) else None
            return "exited"

    def _read_failed(self, exc: Exception) -> BaseException:
        """The typed error of a failed log read, raised unless the caller can act on it.

        A gone container (the caller ends) or a transient failure (it reads
        again) comes back; anything else is raised.
        """
        error = self._ctx.error(exc, "container_logs")
        if not _gone(error) and not transient(error):
            raise error from exc
        return error

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
        tail = self._resume_tail()
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
        self._kept: list[LogLine] | None = None  # the window's lines, when its cursors need them

    def _run(self) -> str:
        complete = False
        streak = FailureStreak(self._ctx.config)
        while True:
            try:
                self._get_client()  # makes the dialect known
                if self._follow and self._tail != "all" and self._dialect.whole_seconds:
                    self._kept = []
                self._read(
                    stdout="stdout" in self._sources or self._tty,
                    stderr="stderr" in self._sources or self._tty,
                    follow=False,
                    since=self._since,
                    tail=self._tail,
                )
                complete = True
                if self._kept and self.cursors:
                    self._count_last_second()
            except (_Stopped, GiveUp):
                raise
            except Exception as exc:
                error = self._read_failed(exc)
                if _gone(error):
                    return "removed"
                if not self.cursors:
                    # Nothing delivered yet: the window again, whole, after a pause (the
                    # cursors of a cut one would resume source by source instead).
                    self._drop_client()
                    self._wait(streak.failed(error))
                    continue
            break
        if self._follow:
            with contextlib.suppress(pykka.ActorDeadError):
                self._actor.tell(WindowDone(dict(self.cursors), complete))
            return "handover"
        if not complete:
            self._resume_one_shot()
        self._flush_last()
        return "completed"

    def _deliver(self, lines: list[LogLine], *, resumed: bool = False) -> None:
        if self._kept is not None:
            self._kept.extend(lines)
        super()._deliver(lines, resumed=resumed)

    def _count_last_second(self) -> None:
        """Count each cursor's lines from the start of its second (whole-second stamps).

        A cursor counts the lines of its timestamp it has seen; a window cut
        by its tail may start inside that second, and with whole-second
        stamps (Podman) hundreds of lines share it: the followers would skip
        too few and repeat the window. One read from the earliest cursor's
        second finds the window's lines from there, in order, and counts
        from the second's first line to the window's last. Not found (the
        log rotated meanwhile): the cursors stay as they are.
        """
        assert self._kept is not None
        start = min(ts for ts, _ in self.cursors.values())
        block = [line for line in self._kept if line.timestamp >= start]
        self._kept = None
        lines: list[LogLine] = []
        self._read(
            stdout="stdout" in self._sources,
            stderr="stderr" in self._sources,
            follow=False,
            since=format_since(start),
            tail="all",
            into=lines,
            probe=True,
        )
        n = len(block)
        first = block[0]
        for i in range(len(lines) - n + 1):
            if lines[i] == first and lines[i : i + n] == block:
                counted: dict[str, Cursor] = {}
                advance(counted, lines[: i + n])
                self.cursors.update((s, c) for s, c in counted.items() if s in self.cursors)
                return

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
                if _gone(self._read_failed(exc)):
                    return
                continue
            pending.pop(0)


class Follower(Reader):
    """Follows one source of a container, forever resuming from its cursor.

    The loop is a small state machine: ``follow`` (a follow stream, verified
    against the cursor), ``settle`` (the stream ended: inspect),
    ``catch_up`` (non-follow reads up to now after a cut) and ``exited``
    (read the rest, give a restart :data:`RESTART_GRACE`, end).

    Only ``follow`` lasts: once its stream is open, the follower hands it to
    the pool's read loop (:class:`~actorpool.transport.readloop.ReadLoop`)
    and its thread ends; the loop decodes the stream and calls :meth:`lines`
    (cursor, feed) and, at its end, :meth:`ended`, which starts a new thread
    to go on with the state machine from ``follow``'s outcome. The follower
    is on exactly one thread or in the loop at any time, never both.

    A source with no cursor yet (nothing of it delivered) has nothing to
    check its bounded reads against, and the daemon's ``tail`` counts the
    lines of both sources: a busy other source can push this one's new lines
    out of it. A follower started after a starting window in which only the
    other source had lines therefore gets that source's last line as its
    *anchor*: its lines before the anchor in the log were outside the
    window, those after it are new. Its last line before the anchor, found
    by :meth:`_place_anchor`, becomes its cursor. Without one, each bounded
    read without a cursor is checked to reach back to the anchor
    (:meth:`_anchor_within`), and read again with a larger tail if not,
    before any of its lines is delivered.
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
        anchor: tuple[Source, int] | None = None,
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
        self._anchor = anchor
        self._placed = False  # the anchor was looked at once (_place_anchor)
        self._state = "settle" if resume else "follow"
        self._streak = FailureStreak(ctx.config)
        self._idle = FailureStreak(ctx.config)
        self._began = 0.0  # when the current follow stream was asked for
        self._before: Cursor | None = None  # the cursor then
        self._opened_at = 0  # the same, in ns since the epoch
        self._body: _Body | None = None  # the follow body the read loop has
        self._error: BaseException | None = None  # what ended it, from the loop

    def _run(self) -> str | None:
        while True:
            self._check_stop()
            state = self._state
            if state == "follow":
                try:
                    if self._body is None:
                        self._began = time.monotonic()
                        self._before = self.cursors.get(self._source)
                        if self._follow():
                            return None  # the read loop has it; ended() brings us back
                    else:
                        self._follow_ended()
                except _Gap:
                    self._state = "catch_up"
                    continue
                except _AnchorMissed:
                    since, tail = self._start
                    self._start = (since, _escalate(tail))
                    continue
                except _Exited:
                    self._state = "exited"  # read what is left without follow
                    continue
                except (_Stopped, GiveUp):
                    raise
                except Exception as exc:
                    if _gone(self._read_failed(exc)):
                        return "removed"
                quick = time.monotonic() - self._began < 1.0
                if self.cursors.get(self._source) == self._before and quick:
                    # Ended at once with nothing new (restarting, or flapping): slow down.
                    self._wait(self._idle.failed(StreamError("the log stream ended at once")) / 2)
                else:
                    self._idle.reset()
                self._state = "settle"
            elif state == "settle":
                verdict = self._inspect(self._streak)
                if verdict == "removed":
                    return "removed"
                if verdict == "exited":
                    self._state = "exited"
                else:
                    self._ctx.count_reconnect()
                    self._wait(self._ctx.reconnect_wait())
                    self._state = "catch_up"
            elif state == "catch_up":
                outcome = self._catch_up_or_settle()
                if outcome == "removed":
                    return "removed"
                self._state = "follow" if outcome == "ok" else "settle"
            else:  # exited: what is left after the cursor, then a chance to restart
                outcome = self._catch_up_or_settle()
                if outcome == "removed":
                    return "removed"
                if outcome == "settle":
                    self._state = "settle"
                    continue
                if self._restarted():
                    self._last = None
                    self._state = "follow"
                    continue
                self._flush_last()
                return "exited"

    def _follow(self) -> bool:
        """Open the follow stream: True when the read loop took it, else it was read here."""
        stdout = self._source == "stdout" or self._tty
        stderr = self._source == "stderr" or self._tty
        self._prepare_anchor()
        cursor = self.cursors.get(self._source)
        if cursor is not None:
            return self._read(
                stdout=stdout,
                stderr=stderr,
                follow=True,
                since=format_since(cursor[0]),
                tail=self._resume_tail(),
                skip=_Skipper(cursor),
                detach=True,
            )
        since, tail = self._start
        self._opened_at = time.time_ns()
        self._opened = False
        detached = False
        try:
            detached = self._read(
                stdout=stdout, stderr=stderr, follow=True, since=since, tail=tail, detach=True
            )
        finally:
            if not detached:
                self._fix_start()
        return detached

    def _prepare_anchor(self) -> None:
        """Once, before the first read: place the anchor (:meth:`_place_anchor`).

        On an engine with whole-second stamps (Podman) a line cannot be placed
        within its second, nor a bounded read checked: the source reads
        everything from its ``since`` instead.
        """
        if self._anchor is None or self._placed:
            return
        self._get_client()  # makes the dialect known
        if self._dialect.whole_seconds:
            self._anchor = None
            self._placed = True
            self._start = (self._start[0], "all")
            return
        self._place_anchor()

    def _place_anchor(self) -> None:
        """Find this source's last line before the anchor: from then on, that is its cursor.

        Every line of this source before the anchor was outside the starting
        window, every one after it is new: its last line before the anchor
        splits them exactly, and makes this follower resume like any other.
        Reads of both sources from a little before the follower's ``since``
        (``_DISORDER``), the tail grown x8 until one holds that line or
        everything from there: a source with no line in it has none at or
        after ``since`` before the anchor, and keeps the anchor (its reads
        from ``since`` then start exactly after it).
        """
        assert self._anchor is not None
        other, ts = self._anchor
        floor = max(0, (since_ns(self._start[0]) or 0) - _DISORDER)
        tail: int | Literal["all"] = self._ctx.config.streams.resume_tail
        while True:
            lines: list[LogLine] = []
            self._read(
                stdout=True,
                stderr=True,
                follow=False,
                since=format_since(floor),
                tail=tail,
                into=lines,
                probe=True,
            )
            at = next(
                (
                    i
                    for i in range(len(lines) - 1, -1, -1)
                    if lines[i].stream == other and lines[i].timestamp == ts
                ),
                None,
            )
            before = [] if at is None else [x for x in lines[:at] if x.stream == self._source]
            if before or tail == "all" or len(lines) < tail:
                break
            tail = _escalate(tail)
        self._last = None  # not this source's read: nothing of it to flush at the end
        self._placed = True
        if before:
            advance(self.cursors, before)
            self._anchor = None

    def _fix_start(self) -> None:
        since, tail = self._start
        if (
            self._opened
            and self.cursors.get(self._source) is None
            and not (since is None and tail == "all")
        ):
            # Nothing delivered yet: a reconnect starts where this stream started (never
            # later), reading a bounded tail.
            start = since if since is not None else format_since(self._opened_at)
            tail = "all" if self._dialect.whole_seconds else self._ctx.config.streams.resume_tail
            self._start = (start, tail)

    def _follow_ended(self) -> None:
        """The read loop ended the follow stream: raise as a read here would have."""
        body, error = self._body, self._error
        self._body = self._error = None
        assert body is not None
        try:
            if error is not None:
                raise error
            self._body_ended(body)
        finally:
            self._fix_start()

    # -- the read loop's side (its thread; never blocks) --

    def _detach(self, body: _Body) -> bool:
        loop = self._ctx.reads
        if loop is None:
            return False
        self._body = body
        if loop.add(body.stream, body.decoder, self) is None:
            self._body = None
            return False
        return True

    def lines(self, lines: list[LogLine], watch: Watch) -> bool:
        """The read loop decoded ``lines`` of the follow stream; False: the feed is full."""
        body = self._body
        assert body is not None
        kept = self._accept(body, lines)  # raises _Gap: the loop ends the stream and says so
        if not kept:
            return True
        advance(self.cursors, kept)
        return self._feed.offer(kept, watch.resume)

    def ended(self, error: BaseException | None) -> None:
        """The read loop ended the follow stream: go on with the state machine on a thread."""
        with self._lock:
            self._stream = None
        self._error = error
        body = self._body
        closed = body is not None and body.stream.end_reason == "closed" and error is None
        if self._stop_event.is_set() or closed:
            # Stopped (closed by stop(), or by the loop as the pool stops): nothing blocks.
            self._finish("stopped", None)
            return
        self._spawn()

    def _catch_up_or_settle(self) -> str:
        """Catch up: "ok", "settle" (the daemon could not be reached) or "removed"."""
        try:
            self._prepare_anchor()
            if (
                self._anchor is not None
                and self._start[1] != "all"
                and self.cursors.get(self._source) is None
            ):
                self._anchored_catch_up()
            else:
                self._catch_up(self._source, self._start)
        except (_Stopped, GiveUp):
            raise
        except Exception as exc:
            if _gone(self._read_failed(exc)):
                return "removed"
            return "settle"
        return "ok"

    def _anchored_catch_up(self) -> None:
        """A cursorless source's catch-up: read, check the tail reached the anchor, deliver.

        Held back until checked: a tail that fell short is read again with
        more (x8), and lines delivered before the missing ones would be out
        of order. The tail that sufficed is the next follow's.
        """
        since, tail = self._start
        stdout, stderr = self._source == "stdout", self._source == "stderr"
        while True:
            lines: list[LogLine] = []
            self._read(
                stdout=stdout,
                stderr=stderr,
                follow=False,
                since=since,
                tail=tail,
                into=lines,
                probe=True,  # cut lines are counted once, as delivered, below
            )
            if tail == "all" or self._anchor_within(tail):
                break
            tail = _escalate(tail)
        self._start = (since, tail)
        self._count_truncated(sum(1 for line in lines if line.truncated))
        if lines:
            self._deliver(lines)

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

    def _phase(self) -> None:
        try:
            error = self._history()
        except _Stopped:
            return
        finally:
            self._drop_client()
            self._done.set()
        with contextlib.suppress(pykka.ActorDeadError):
            self._actor.tell(HistoryDone(self._sub.id, dict(self.cursors), error))

    def _history(self) -> str | None:
        """Read and send the history; the error that ended it, if any."""
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
            raise
        except Exception as exc:
            return str(self._ctx.error(exc, "container_logs"))
        return None

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
