"""One thread that reads every followed log stream: non-blocking sockets, one selector.

A blocking reader costs a thread per open log stream, and a followed
container holds one or two streams for as long as it runs: hundreds of
threads that mostly wait. A :class:`ReadLoop` instead watches every follow
stream's socket with one :mod:`selectors` selector (epoll on Linux) on one
thread, reads what is there with a non-blocking ``recv``, feeds the stream's
own :class:`~actorpool.transport.decoder.LogDecoder` (the same incremental
decoder a blocking read uses, so the lines are the same) and hands the lines
to the stream's :class:`LineSink`. Decoding runs on that one thread either
way: with the GIL, more threads would not decode faster, only switch more.

A stream joins with :meth:`ReadLoop.add`, which takes the body over from
the :class:`~actorpool.transport.logread.RawLogStream` after its headers
(:meth:`~actorpool.transport.logread.RawLogStream.detach`: bytes the
connection already buffered are decoded first). It leaves when the body
ends (``complete``), when the connection fails (``cut``), or when the stream
is closed from any thread (``closed``: :meth:`RawLogStream.close` shuts the
socket down and tells the loop); either way the loop releases the response
and calls :meth:`LineSink.ended` once. A stream that cannot be read this way
(TLS, SSH, an unchunked body) is refused and read by a thread as before.

Backpressure: a sink that returns ``False`` from :meth:`LineSink.lines` has
its socket taken out of the selector (nothing more is read, the daemon and
the kernel buffer) until it calls :meth:`ReadLoop.resume`. At most one read
(``buffer_size`` bytes) is decoded past the sink's limit.

Like a blocking reader, the loop waits :data:`~actorpool.transport.logread.DEFAULT_COALESCE`
after a round in which every read was short, so the daemon's
one-message-per-write output is read in batches of many lines per system
call instead of one or two (a line's latency grows by at most that pause).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import selectors
import socket
import threading
import time
from typing import TYPE_CHECKING, Final, Literal, Protocol

from actorpool.transport.frames import FrameError
from actorpool.transport.logread import DEFAULT_COALESCE, body_cut

if TYPE_CHECKING:
    from actorpool.transport.decoder import LogDecoder
    from actorpool.transport.logread import EndReason, RawLogStream
    from actorpool.transport.records import LogLine

__all__ = ["LineSink", "ReadLoop", "Watch"]

logger = logging.getLogger(__name__)

_SELECT_TIMEOUT: Final = 1.0  # the loop re-checks its commands at least this often
_SHORT_READ: Final = 16  # a read shorter than buffer_size / 16 is short (as in logread)
_JOIN_TIMEOUT: Final = 2.0


class LineSink(Protocol):
    """Where a watched stream's lines go: on the loop's thread, so never blocking."""

    def lines(self, lines: list[LogLine], watch: Watch) -> bool:
        """Take the lines of one read; ``False``: stop reading until ``watch.resume()``.

        An exception ends the stream (``closed``) and is handed to :meth:`ended`.
        """
        ...

    def ended(self, error: BaseException | None) -> None:
        """The stream ended (its ``end_reason`` says how; its response is released).

        ``error`` is what :meth:`lines` or the decoder raised (a broken body:
        :class:`~actorpool.transport.frames.FrameError`), else ``None``.
        """
        ...


class Watch:
    """One stream the loop reads (made by :meth:`ReadLoop.add`)."""

    __slots__ = (
        "active",
        "decoder",
        "initial",
        "loop",
        "paused",
        "registered",
        "sink",
        "sock",
        "stream",
    )

    def __init__(
        self,
        loop: ReadLoop,
        stream: RawLogStream,
        sock: socket.socket,
        decoder: LogDecoder,
        sink: LineSink,
        initial: bytes,
    ) -> None:
        self.loop = loop
        self.stream = stream
        self.sock = sock
        self.decoder = decoder
        self.sink = sink
        self.initial = initial
        self.active = True
        self.paused = False
        self.registered = False

    def resume(self) -> None:
        """Read this paused stream again (any thread): its sink has room."""
        self.loop.resume(self)

    def cancel(self) -> None:
        """End this stream as ``closed`` (any thread; :meth:`RawLogStream.close` calls it)."""
        self.loop._post("cancel", self)


_Command = tuple[Literal["add", "resume", "cancel"], Watch]


class ReadLoop:
    """Reads many log streams on one thread (started with the first stream).

    Thread-safe: :meth:`add`, :meth:`resume` and :meth:`close` may be called
    from any thread; everything else happens on the loop's thread.

    Args:
        buffer_size: The most bytes asked of a socket per read.
        coalesce: Seconds to wait after a round of short reads (0: never).
        name: The thread's name.
    """

    def __init__(
        self,
        *,
        buffer_size: int,
        coalesce: float = DEFAULT_COALESCE,
        name: str = "actorpool-log-reads",
    ) -> None:
        self._size = buffer_size
        self._short = max(1, buffer_size // _SHORT_READ)
        self._coalesce = coalesce
        self._name = name
        self._lock = threading.Lock()
        self._commands: collections.deque[_Command] = collections.deque()
        self._thread: threading.Thread | None = None
        self._selector: selectors.BaseSelector | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._woken = False
        self._closed = False
        self._watches: set[Watch] = set()

    @property
    def streams(self) -> int:
        """Streams being read now (paused ones included)."""
        return len(self._watches)

    # -- any thread --

    def add(self, stream: RawLogStream, decoder: LogDecoder, sink: LineSink) -> Watch | None:
        """Read ``stream`` (fresh from ``open_logs``) on the loop from now on.

        Returns:
            The watch (for :meth:`resume`), or ``None`` when the stream cannot
            be read without blocking (see :meth:`RawLogStream.detach`) or the
            loop is closed: read it some other way.
        """
        with self._lock:
            if self._closed:
                return None
            self._ensure_thread()
        sock = stream.socket
        if sock is None:
            return None
        watch = Watch(self, stream, sock, decoder, sink, b"")
        initial = stream.detach(watch.cancel)
        if initial is None:
            return None
        watch.initial = initial
        if not self._post("add", watch):
            # Closed in between (the pool is stopping): nobody will read it.
            stream.close()
            stream.end_detached("closed", None)
            return None
        return watch

    def resume(self, watch: Watch) -> None:
        """Read a paused stream again (its sink has room)."""
        self._post("resume", watch)

    def close(self) -> None:
        """End every stream (``closed``) and stop the thread (joined, with a timeout)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is None:
            return
        self._wake()
        thread.join(_JOIN_TIMEOUT)
        if thread.is_alive():
            logger.warning("the log read loop did not stop within %s s", _JOIN_TIMEOUT)

    # -- internals --

    def _ensure_thread(self) -> None:
        # Under self._lock.
        if self._thread is not None:
            return
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def _post(self, kind: Literal["add", "resume", "cancel"], watch: Watch) -> bool:
        with self._lock:
            if self._closed:
                return False
            self._commands.append((kind, watch))
        self._wake()
        return True

    def _wake(self) -> None:
        with self._lock:
            if self._woken or self._wake_w is None:
                return
            self._woken = True
            wake = self._wake_w
        with contextlib.suppress(OSError):  # full (the loop is awake anyway) or closed
            wake.send(b"\0")

    def _run(self) -> None:
        selector = self._selector
        assert selector is not None
        try:
            while True:
                if self._do_commands():
                    break
                read = short = 0
                for key, _ in selector.select(_SELECT_TIMEOUT):
                    watch: Watch | None = key.data
                    if watch is None:
                        self._drain_wake()
                        continue
                    n = self._read(watch)
                    read += 1
                    if n < self._short:
                        short += 1
                if read and short == read and self._coalesce:
                    time.sleep(self._coalesce)
        except Exception:  # never expected: end every stream rather than leave them hanging
            logger.exception("the log read loop failed; its streams end as cut")
        finally:
            for watch in list(self._watches):
                self._end(watch, "closed", None)
            selector.close()
            for sock in (self._wake_r, self._wake_w):
                if sock is not None:
                    sock.close()

    def _drain_wake(self) -> None:
        assert self._wake_r is not None
        with self._lock:
            self._woken = False
        with contextlib.suppress(OSError):
            while self._wake_r.recv(4096):
                pass

    def _do_commands(self) -> bool:
        """Run the queued commands; True when the loop should stop."""
        while True:
            with self._lock:
                if not self._commands:
                    return self._closed
                kind, watch = self._commands.popleft()
            if not watch.active:
                continue
            if kind == "add":
                self._watches.add(watch)
                if watch.stream.closed:
                    self._end(watch, "closed", None)
                    continue
                initial, watch.initial = watch.initial, b""
                if initial:
                    self._take(watch, initial)
                if watch.active and not watch.paused:
                    self._register(watch)
            elif kind == "resume":
                if watch.paused:
                    watch.paused = False
                    self._register(watch)
            else:
                self._end(watch, "closed", None)

    def _register(self, watch: Watch) -> None:
        assert self._selector is not None
        try:
            self._selector.register(watch.sock, selectors.EVENT_READ, watch)
        except (OSError, ValueError) as exc:  # the socket is already closed
            self._end(watch, "cut", exc)
            return
        watch.registered = True

    def _read(self, watch: Watch) -> int:
        try:
            data = watch.sock.recv(self._size)
        except (BlockingIOError, InterruptedError):
            return self._size  # a spurious wake-up: no reason to pause
        except OSError as exc:
            self._end(watch, "cut", exc)
            return 0
        if not data:
            if watch.decoder.done:
                self._end(watch, "complete", None)
            else:
                self._end(watch, "cut", body_cut(watch.stream))
            return 0
        watch.stream.bytes_read += len(data)
        self._take(watch, data)
        return len(data)

    def _take(self, watch: Watch, data: bytes) -> None:
        lines: list[LogLine] = []
        try:
            watch.decoder.feed_into(data, lines)
        except FrameError as exc:
            self._end(watch, "cut", exc, raised=exc)
            return
        room = True
        if lines:
            try:
                room = watch.sink.lines(lines, watch)
            except Exception as exc:  # handed to the sink's owner through ended()
                self._end(watch, "closed", None, raised=exc)
                return
        if watch.decoder.done:
            self._end(watch, "complete", None)
        elif not room and not watch.paused:
            watch.paused = True
            if watch.registered:
                assert self._selector is not None
                self._selector.unregister(watch.sock)
                watch.registered = False

    def _end(
        self,
        watch: Watch,
        reason: EndReason,
        error: BaseException | None,
        *,
        raised: BaseException | None = None,
    ) -> None:
        if not watch.active:
            return
        watch.active = False
        self._watches.discard(watch)
        if watch.registered:
            assert self._selector is not None
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(watch.sock)
            watch.registered = False
        watch.stream.end_detached(reason, error)
        try:
            watch.sink.ended(raised)
        except Exception:
            logger.exception("a log stream's end handler failed")
