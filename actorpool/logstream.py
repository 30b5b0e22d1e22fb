"""One followed container: a stream actor that fans its log lines out to every subscriber.

Each followed container has exactly one :class:`LogStream` actor, shared by
all of its subscribers (three subscribers, one set of daemon streams). The
blocking reads never happen on the actor's mailbox thread: reader threads,
each on a dedicated connection (:func:`actorpool.client.make_client`, never a
request-pool slot), parse the daemon's frames into lines and hand them over
through a small shared buffer; the actor batches them into
:class:`~actorpool.messages.LogChunk` messages and keeps answering meanwhile.

Readers and why there are several
---------------------------------
The daemon delivers stdout and stderr out of timestamp order (by up to tens
of milliseconds), so one ``since`` cursor shared by both sources loses lines
on resume. A followed non-TTY container therefore has **one follow stream and
one cursor per source** (stdout-only and stderr-only). The starting window
(``since``/``tail``) is read once, with both sources in one non-follow
request (a per-source read would make the daemon scan the log file twice),
and the per-source followers start from the cursors it leaves. A TTY
container has a single source.

Exactly-once resume
-------------------
A cursor is ``(timestamp, count)``: the last delivered line's timestamp (ns)
and how many delivered lines of that source carry exactly that timestamp. A
resume asks for ``since=timestamp`` (inclusive, sent as the exact
``"seconds.nanoseconds"`` string) and skips the first ``count`` lines stamped
``timestamp``. Seeing those lines again *verifies* the resume: the daemon's
window reached back to the cursor, so nothing in between was lost.

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
subscriptions to the manager (:class:`StreamFailed`, from ``on_failure``)
instead of ending them; each carries ``resume``: the cursors of the lines that
subscriber was really *sent* (tracked per subscriber on every send, a few
operations per chunk; lines still in an outbox or the feed were not sent). The
manager starts a new stream from those cursors, one per distinct set of
cursors (usually one), so every subscriber continues with no gap and no
duplicate. A subscriber that was sent nothing restarts from its own
``since``/``tail``.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import operator
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

import attrs
import pykka

from actorpool.actor import Actor
from actorpool.backoff import backoff_delay
from actorpool.classify import RETRYABLE_STATUS, classify
from actorpool.client import make_client
from actorpool.config import Config
from actorpool.decoder import LogDecoder
from actorpool.errors import (
    Conflict,
    DockerError,
    DockerUnavailable,
    NotFound,
    PoolStopped,
    RequestTimeout,
    StreamError,
)
from actorpool.frames import format_since
from actorpool.logread import open_logs
from actorpool.messages import LogChunk, LogLine, LogStreamEnded, LogStreamError
from actorpool.metrics import PoolMetrics
from actorpool.ratelimit import SharedBucket
from actorpool.scheduler import Scheduler

if TYPE_CHECKING:
    from docker import APIClient

__all__ = [
    "RESTART_GRACE",
    "BlockingCalls",
    "Cursor",
    "FailureStreak",
    "GiveUp",
    "LogStream",
    "LogSubscriber",
    "RemoveSubscriber",
    "Reroute",
    "StreamContext",
    "StreamCounters",
    "StreamFailed",
    "SubscriptionEnded",
    "SubscriptionsClosed",
    "since_ns",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds a stream whose container exited waits for it to run again (``docker restart``
#: stops, then starts: the container is "exited" for a few hundred ms in between).
RESTART_GRACE: Final = 1.0
_GRACE_STEPS: Final = (0.2, 0.3, 0.5)  # re-inspects within RESTART_GRACE

#: A cursor: (timestamp in ns of the last delivered line, lines of that source delivered with
#: exactly that timestamp).
Cursor = tuple[int, int]
Source = Literal["stdout", "stderr"]

_NS: Final = 1_000_000_000
_SLICE: Final = 0.25  # longest a blocked thread waits before re-checking that it should stop
_DRAIN_INTERVAL: Final = 0.01  # how often full outboxes are retried
_ESCALATION: Final = 8  # a catch-up read that misses its cursor retries with 8x the tail
_MAX_TAIL: Final = 1_000_000  # past this the catch-up reads with tail=all
_NEW_SOURCE_MARGIN: Final = 1 * _NS  # see _WindowDone handling
_JOIN_TIMEOUT: Final = 2.0  # seconds on_stop waits for each reader thread
_LAST: Final = 1 << 62  # a count above any real one
_DATA: Final = operator.attrgetter("data")
_STREAM: Final = operator.attrgetter("stream")
_SOURCES: Final = ("stdout", "stderr")

_UNAVAILABLE = (DockerUnavailable, RequestTimeout, StreamError)


def _transient(error: BaseException) -> bool:
    """Worth reconnecting for: the daemon is unreachable, slow, or answered 502/503/504."""
    if isinstance(error, DockerError):
        return error.status in RETRYABLE_STATUS
    return isinstance(error, _UNAVAILABLE)


# --- shared plumbing -----------------------------------------------------------------------


class StreamCounters:
    """Plain counts over every stream of one manager, for ``StreamStats``. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.lines_delivered = 0
        self.bytes_delivered = 0
        self.reconnects = 0
        self.resumed_lines = 0
        self.resume_gaps = 0
        self.truncated_lines = 0
        self.dropped_chunks = 0
        self.history_reads = 0
        self.peak_buffered_chunks = 0

    def peak(self, name: str, value: int) -> None:
        """Raise the named high-water mark to ``value`` if it is higher."""
        if value > getattr(self, name):
            with self._lock:
                if value > getattr(self, name):
                    setattr(self, name, value)

    def add(self, **counts: int) -> None:
        """Add to the named counters."""
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def snapshot(self) -> dict[str, int]:
        """All counters at once."""
        with self._lock:
            return {k: v for k, v in vars(self).items() if not k.startswith("_")}


class BlockingCalls:
    """A few threads for the short blocking Docker calls the stream actors need.

    Actors never block, so ``inspect`` (for a subscribe), ``containers`` (for
    FollowContainers) and liveness pings run here, each thread with a client
    of its own (a dedicated connection, not a request-pool slot). The result
    comes back through ``done(result, error)``, called on the worker thread:
    it must only ``tell`` an actor or complete a future.
    """

    def __init__(self, config: Config, *, workers: int = 4) -> None:
        self._config = config
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="actorpool-streams-io")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._clients: list[APIClient] = []
        self._closed = False

    def _client(self) -> APIClient:
        client: APIClient | None = getattr(self._local, "client", None)
        if client is None:
            client = make_client(self._config, timeout=self._config.api.timeout)
            with self._lock:
                self._clients.append(client)
            self._local.client = client
        return client

    def submit(
        self,
        fn: Callable[[APIClient], T],
        done: Callable[[T | None, BaseException | None], None],
    ) -> None:
        """Run ``fn(client)`` on a worker; then ``done(result, None)`` or ``done(None, error)``."""

        def run() -> None:
            result: T | None = None
            error: BaseException | None = None
            try:
                result = fn(self._client())
            except Exception as exc:  # handed to the caller, who classifies it
                error = exc
            try:
                done(result, error)
            except pykka.ActorDeadError:
                pass
            except Exception:
                logger.exception("stream call completion failed")

        try:
            self._executor.submit(run)
        except RuntimeError:  # shut down
            done(None, PoolStopped("the pool is stopping; the stream request was not run"))

    def shutdown(self) -> None:
        """Drop queued calls and close the clients (a running call fails or finishes)."""
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            try:
                client.close()
            except Exception:  # closing is best effort
                logger.debug("closing a stream client failed", exc_info=True)


@attrs.frozen
class StreamContext:
    """What every stream actor of one manager shares."""

    config: Config
    scheduler: Scheduler
    metrics: PoolMetrics | None
    counters: StreamCounters
    calls: BlockingCalls
    reconnects: SharedBucket | None = None

    def count_reconnect(self) -> None:
        """Count a stream reopened after a cut (counters and metrics)."""
        self.counters.add(reconnects=1)
        if self.metrics is not None:
            self.metrics.stream_reconnect()

    def reconnect_wait(self) -> float:
        """Seconds a reader waits for its turn to reconnect (rate-limited, shared)."""
        return 0.0 if self.reconnects is None else self.reconnects.wait_time()

    def error(self, exc: BaseException, what: str) -> BaseException:
        """The typed actorpool error for ``exc`` (``NotFound``, ``DockerUnavailable``...)."""
        return classify(exc, target=self.config.pool.socket_path, what=what).error


def since_ns(value: float | str | None) -> int | None:
    """A ``since`` value (Unix seconds or ``"seconds.nanoseconds"``) in integer ns."""
    if value is None:
        return None
    if isinstance(value, str):
        seconds, _, fraction = value.partition(".")
        return int(seconds) * _NS + int(fraction[:9].ljust(9, "0") or 0)
    return int(value * _NS)


def advance(cursors: dict[str, Cursor], lines: list[LogLine] | tuple[LogLine, ...]) -> None:
    """Move each source's cursor past ``lines`` (in order per source).

    Only the tail of the batch matters: for each source, its last line's
    timestamp and how many lines of that source in a row (going back, across
    batches) share it. Each source's last line is found by a C-level search
    (a batch of one source would otherwise be walked whole, looking for the
    other), so this costs the length of the final run, not of the batch.
    """
    n = len(lines)
    if not n:
        return
    newest_first = list(map(_STREAM, reversed(lines)))
    for source in _SOURCES:
        try:
            i = n - 1 - newest_first.index(source)
        except ValueError:
            continue
        ts = lines[i].timestamp
        run = 1
        j = i - 1
        while j >= 0:
            other = lines[j]
            if other.stream == source:
                if other.timestamp != ts:
                    break
                run += 1
            j -= 1
        else:
            prev = cursors.get(source)
            if prev is not None and prev[0] == ts:
                run += prev[1]
        cursors[source] = (ts, run)


# --- messages ------------------------------------------------------------------------------


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

    Sent from :meth:`LogStream.on_failure`, after the dead stream stopped its
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


@attrs.frozen
class SubscriptionEnded:
    """Stream -> a subscription's owner: it ended (reason as in LogStreamEnded, or "error")."""

    subscription_id: str
    container_id: str
    reason: str
    cursors: Mapping[str, Cursor]


class _Flush:
    """Reader -> actor: lines are waiting in the feed."""


class _Drain:
    """Timer -> actor: retry the outboxes."""


_FLUSH: Final = _Flush()
_DRAIN: Final = _Drain()


@attrs.frozen
class _ReaderDone:
    name: str
    reason: str  # exited | removed | completed | error | stopped
    error: str | None = None


@attrs.frozen
class _WindowDone:
    cursors: Mapping[str, Cursor]
    complete: bool


@attrs.frozen
class _HistoryLines:
    subscription_id: str
    lines: tuple[LogLine, ...]


@attrs.frozen
class _HistoryDone:
    subscription_id: str
    ends: Mapping[str, Cursor]
    error: str | None = None


# --- reader side ---------------------------------------------------------------------------


class _Stopped(Exception):
    """The reader was told to stop."""


class _Gap(Exception):
    """A resume read did not reach back to its cursor."""


class GiveUp(Exception):
    """The daemon stayed unreachable for ``streams.give_up_after`` seconds."""


class _Feed:
    """Lines read and not yet fanned out: readers push, the actor takes.

    Pushing wakes the actor with a ``_Flush`` at once when a batch is full,
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
            self._scheduler.tell_later(self._delay, self._actor, _FLUSH)

    def _tell(self) -> None:
        with contextlib.suppress(pykka.ActorDeadError):
            self._actor.tell(_FLUSH)

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


class FailureStreak:
    """Consecutive failures to reach the daemon: backoff delays and the give-up deadline."""

    def __init__(self, config: Config) -> None:
        self._streams = config.streams
        self._first: float | None = None
        self._attempt = 0

    def failed(self, error: BaseException) -> float:
        """Count a failure; return the delay before the next attempt (raises GiveUp)."""
        now = time.monotonic()
        if self._first is None:
            self._first = now
        elif now - self._first >= self._streams.give_up_after:
            msg = (
                f"gave up after {now - self._first:.0f} s without reaching the daemon "
                f"(docker.streams.give_up_after): {error}"
            )
            raise GiveUp(msg)
        delay = backoff_delay(
            self._attempt,
            initial=self._streams.reconnect_initial_delay,
            multiplier=2.0,
            maximum=self._streams.reconnect_max_delay,
            jitter=True,
        )
        self._attempt += 1
        # Never sleep past the give-up deadline by much; never spin.
        return max(delay, self._streams.reconnect_initial_delay / 10)

    def reset(self) -> None:
        self._first = None
        self._attempt = 0


class _Reader(threading.Thread):
    """Base of the threads that read from the daemon for one LogStream.

    Owns a dedicated client, the current raw stream (so :meth:`stop` can shut
    its socket from another thread) and the cursors of the sources it reads.
    Lines go to the feed; the end goes to the actor as ``_ReaderDone``.
    """

    def __init__(
        self,
        ctx: StreamContext,
        feed: _Feed,
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
            client, self._client = self._client, None
            if client is not None:
                try:
                    client.close()
                except Exception:
                    logger.debug("closing a log client failed", exc_info=True)
        with contextlib.suppress(pykka.ActorDeadError):
            self._actor.tell(_ReaderDone(self.key, reason, error))

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
                info = self._get_client().inspect_container(self._cid)
            except Exception as exc:
                error = self._ctx.error(exc, "inspect_container")
                if isinstance(error, NotFound):
                    return "removed"
                if not _transient(error):
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
        if client is not None:
            try:
                client.close()
            except Exception:
                logger.debug("closing a log client failed", exc_info=True)

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


class _WindowReader(_Reader):
    """Reads a stream's starting window (``since``/``tail``) in one non-follow request.

    Both sources come in one request (file order: per source, in order), so
    the daemon scans the log once. For a followed container it then hands
    its cursors to the per-source followers (``_WindowDone``); for a one-shot
    read (``follow=False``) it is the whole job, resuming source by source
    after a cut.
    """

    def __init__(
        self,
        ctx: StreamContext,
        feed: _Feed,
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
            if not _transient(error):
                raise error from exc
        if self._follow:
            with contextlib.suppress(pykka.ActorDeadError):
                self._actor.tell(_WindowDone(dict(self.cursors), complete))
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
                if not _transient(error):
                    raise error from exc
                continue
            pending.pop(0)


class _Follower(_Reader):
    """Follows one source of a container, forever resuming from its cursor.

    The loop is a small state machine: ``follow`` (a follow stream, verified
    against the cursor), ``settle`` (the stream ended: inspect),
    ``catch_up`` (non-follow reads up to now after a cut) and ``exited``
    (read the rest, give a restart :data:`RESTART_GRACE`, end).
    """

    def __init__(
        self,
        ctx: StreamContext,
        feed: _Feed,
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
                    if not _transient(error):
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
            if not _transient(error):
                raise error from exc
            return "settle"
        return "ok"

    def _restarted(self) -> bool:
        for step in _GRACE_STEPS:
            self._wait(step)
            try:
                state = (self._get_client().inspect_container(self._cid).get("State")) or {}
            except Exception:
                return False
            if state.get("Running") or state.get("Restarting"):
                return True
        return False


class _HistoryReader(_Reader):
    """Reads a late subscriber's history (one non-follow request) for that subscriber only."""

    def __init__(
        self,
        ctx: StreamContext,
        feed: _Feed,
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
            self._actor.tell(_HistoryDone(self._sub.id, dict(self.cursors), error))

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
                self._actor.tell(_HistoryLines(self._sub.id, tuple(part)))


# --- actor side ----------------------------------------------------------------------------


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
        self.history: _HistoryReader | None = None
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

    Started by :class:`~actorpool.streams.StreamManager` with its first
    subscriber; more join with :class:`AddSubscriber`, leave with
    :class:`RemoveSubscriber`. Reports ended subscriptions to the manager
    (:class:`SubscriptionsClosed`) and to their owners (:class:`SubscriptionEnded`).
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
    ) -> None:
        super().__init__()
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
        self._feed: _Feed | None = None
        self._subs: dict[str, _Sub] = {}
        self._readers: dict[str, _Reader] = {}
        self._history: dict[str, _HistoryReader] = {}
        self._sources: set[str] = set()
        self._delivered: dict[str, Cursor] = dict(first.resume or {})  # a resume: its cursors
        self._reasons: list[tuple[str, str | None]] = []
        self._waiting_window = False
        self._since = first.since
        self._tail = first.tail
        self._drain_armed = False
        self._finished = False  # the stream takes no more subscribers
        self._announced = False  # the manager was told it can stop this actor
        self._readers_done = False

    # -- lifecycle --

    def on_start(self) -> None:
        self._feed = _Feed(self.actor_ref, self._ctx.scheduler, self._ctx.config)
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
        specs = tuple(attrs.evolve(sub.spec, resume=dict(sub.sent)) for sub in self._subs.values())
        failed = StreamFailed(self._key, self.actor_urn, self._cid, self._tty, self._follow, specs)
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
        threads: list[_Reader] = [*self._readers.values(), *self._history.values()]
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
        if message is _FLUSH:
            self._flush()
        elif message is _DRAIN:
            self._drain_armed = False
            self._drain()
        elif isinstance(message, _HistoryLines):
            self._history_lines(message)
        elif isinstance(message, _ReaderDone):
            self._reader_done(message)
        elif isinstance(message, _WindowDone):
            self._window_done(message)
        elif isinstance(message, _HistoryDone):
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
        first = not self._sources and not self._readers
        if first:
            self._start_readers(spec, wants)
            return
        existing = _sources_of(wants & self._sources)
        new = _sources_of(wants - self._sources)
        if spec.resume is not None and spec in self._more:
            # A restarted subscription with the same cursors as the first: joins live.
            for source in new:
                self._start_follower(
                    source, (spec.since, spec.tail), spec.resume.get(source), resume=True
                )
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
                self._start_follower(
                    source, (spec.since, spec.tail), spec.resume.get(source), resume=True
                )
            return
        if not self._follow or (len(sources) > 1 and spec.tail != 0 and not self._tty):
            reader = _WindowReader(
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

    def _start_follower(
        self,
        source: Source,
        start: tuple[float | str | None, int | Literal["all"]],
        cursor: Cursor | None,
        *,
        resume: bool,
    ) -> None:
        assert self._feed is not None
        follower = _Follower(
            self._ctx,
            self._feed,
            self.actor_ref,
            container_id=self._cid,
            tty=self._tty,
            source=source,
            start=start,
            cursor=cursor,
            resume=resume,
        )
        self._sources.add(source)
        self._readers[follower.key] = follower
        follower.start()

    def _window_done(self, message: _WindowDone) -> None:
        self._readers.pop("window", None)
        self._waiting_window = False
        if self._finished or self._feed is None:
            return
        cursors = message.cursors
        streams = self._ctx.config.streams
        for source in _sources_of(self._sources):
            cursor = cursors.get(source)
            if cursor is not None:
                start: tuple[float | str | None, int | Literal["all"]] = (self._since, self._tail)
            elif message.complete and cursors:
                # This source had no line in the window. Its lines after the window are newer
                # than the other source's last line, give or take the daemon's out-of-order
                # delivery between sources (tens of ms): start a margin before it.
                other = max(c[0] for c in cursors.values())
                floor = since_ns(self._since) or 0
                start = (format_since(max(floor, other - _NEW_SOURCE_MARGIN)), streams.resume_tail)
            elif message.complete:
                tail = self._tail if self._tail != "all" else streams.resume_tail
                start = (self._since, min(tail, streams.resume_tail))
            else:
                start = (self._since, self._tail)
            self._start_follower(
                source,
                start,
                cursor,
                resume=not message.complete,
            )

    def _start_history(self, sub: _Sub, sources: tuple[str, ...]) -> None:
        assert self._feed is not None
        sub.pos = {s: c for s, c in self._delivered.items() if s in sources}
        sub.credit = threading.Semaphore(self._bound)
        reader = _HistoryReader(
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

    def _history_lines(self, message: _HistoryLines) -> None:
        sub = self._subs.get(message.subscription_id)
        if sub is None:
            return
        chunk = LogChunk(self._cid, message.lines, sub.spec.public_id)
        sub.hist_out.append((chunk, _nbytes(message.lines)))
        self._drain_sub(sub)
        self._after_send()

    def _history_done(self, message: _HistoryDone) -> None:
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
            sub.outbox.append((LogChunk(self._cid, part, sub.spec.public_id), _nbytes(part)))
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
                self._send(sub, LogChunk(self._cid, mine, sub.spec.public_id), size)
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
        try:
            sub.spec.ref.tell(chunk)
        except pykka.ActorDeadError:
            self._end(sub, "subscriber gone", None, tell=False)
            return False
        advance(sub.sent, chunk.lines)
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

    def _reader_done(self, message: _ReaderDone) -> None:
        reader = self._readers.pop(message.name, None)
        if reader is None or message.reason == "handover":
            return
        if message.name == "window":
            self._waiting_window = False
        self._flush()
        if message.reason != "stopped":
            self._reasons.append((message.reason, message.error))
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
                end = LogStreamError(self._cid, error, spec.public_id)
            else:
                end = LogStreamEnded(self._cid, reason, spec.public_id)
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


def _gone(error: BaseException) -> bool:
    """The container is gone or going: 404, or 409 "dead or marked for removal"."""
    return isinstance(error, NotFound | Conflict)


def _escalate(tail: int | Literal["all"]) -> int | Literal["all"]:
    """The next, larger tail for a catch-up read that missed its cursor."""
    if tail == "all" or tail * _ESCALATION > _MAX_TAIL:
        return "all"
    return tail * _ESCALATION


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
