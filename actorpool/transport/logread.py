"""One log request: opened through the client's session, its body read in bulk, cancellable.

docker-py's ``logs(stream=True)`` yields one frame per item (dropping which
stream it came from) and reads TTY logs one byte per item; both cost far more
than the daemon's own pace. Here the request is made through the client's
own session (so TLS, API version and socket settings are the client's), but
the body is read in large pieces straight from the connection's buffered
socket, HTTP chunking is undone in bulk, and :mod:`actorpool.transport.frames` turns
the bytes into :class:`~actorpool.messages.LogLine` records.

A :class:`RawLogStream` knows how it ended (:attr:`RawLogStream.end_reason`),
because a stream reader must tell these apart:

``"complete"``
    The daemon ended the body properly (every line was sent; with
    ``follow`` the container stopped, or the daemon shut down cleanly).
``"closed"``
    :meth:`RawLogStream.close` was called (from any thread).
``"cut"``
    The connection failed or ended before the body's end (daemon killed,
    socket reset, read timeout); :attr:`RawLogStream.error` holds the cause.

None of these raise from :meth:`RawLogStream.chunks`: the loop simply ends
and the reader looks at ``end_reason``. Only a stream that breaks the
protocol raises (:class:`~actorpool.transport.frames.FrameError`). :func:`read_logs`
turns a cut into the underlying exception, so the pool retries it.

Example::

    raw = open_logs(client, cid, stdout=True, stderr=True, follow=True,
                    since=None, tail="all", tty=False)
    # another thread may call raw.close() at any time
    for batch in iter_lines(raw, max_line_size=1 << 20):
        handle(batch)
    if raw.end_reason == "cut":
        reconnect()
"""

from __future__ import annotations

import contextlib
import decimal
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

import requests.exceptions
import urllib3.exceptions

from actorpool.transport import direct
from actorpool.transport.decoder import LogDecoder
from actorpool.transport.frames import ChunkedDecoder, FrameError, format_since

if TYPE_CHECKING:
    from docker import APIClient

    from actorpool.messages import ContainerLogs
    from actorpool.transport.records import LogLine

__all__ = [
    "DEFAULT_BUFFER_SIZE",
    "DEFAULT_COALESCE",
    "DEFAULT_MAX_LINE_SIZE",
    "EndReason",
    "LineReader",
    "RawLogStream",
    "body_cut",
    "iter_lines",
    "open_logs",
    "read_logs",
    "time_param",
]

#: Bytes asked of the socket per read; a read returns what is there, up to this.
DEFAULT_BUFFER_SIZE: Final = 65536
#: Seconds a reader waits after a short read so the daemon's small writes coalesce.
#: Short, because the daemon's writes block early: it writes every log message on its own,
#: a unix socket charges each write a few hundred bytes of kernel memory, so ~16 KB
#: (~270 one-line messages, about 1 ms of a fast writer's output) fill it. Measured on
#: 1 M followed lines: 0.5 ms gives 15% more lines/s than 1 ms (2 ms: 20% fewer) for the
#: same CPU, and 0 (no pause) doubles the CPU.
DEFAULT_COALESCE: Final = 0.0005
# A read shorter than buffer_size / _SHORT_READ counts as short (is followed by a pause).
_SHORT_READ: Final = 16
#: The default cut for lines (``docker.streams.max_line_size``).
DEFAULT_MAX_LINE_SIZE: Final = 1024 * 1024

EndReason = Literal["complete", "closed", "cut"]

_T = TypeVar("_T")


def _same(data: bytes) -> bytes:
    return data


def _never() -> bool:
    return False


# Content types of API >= 1.42 daemons (20.10 sends none, so the caller must know TTY-ness).
_RAW_STREAM: Final = "application/vnd.docker.raw-stream"
_MULTIPLEXED: Final = "application/vnd.docker.multiplexed-stream"
_NS: Final = decimal.Decimal(1_000_000_000)
_DETACH_READ: Final = 1 << 20  # > any buffered reader's buffer (http.client: 8 KiB)
# What a read on a dying connection raises (urllib3's errors are not OSErrors).
_READ_ERRORS: Final = (OSError, requests.exceptions.RequestException, urllib3.exceptions.HTTPError)


class RawLogStream:
    """One open ``GET /containers/{id}/logs`` response, read as raw byte chunks.

    Made by :func:`open_logs`. Iterate :meth:`chunks` from one thread; call
    :meth:`close` from any thread, any number of times. The response is
    released when the iteration ends (or at :meth:`close` when nobody
    iterates).

    Attributes:
        container: The container id or name the logs are of.
        tty: The container has a TTY: the body is raw bytes, not frames.
        timestamps: Every message starts with the daemon's timestamp.
        follow: The daemon keeps the stream open for new output.
        buffer_size: The most bytes asked of the socket per read.
        coalesce: Seconds to wait after a short read before the next one (see :func:`open_logs`).
        end_reason: How the stream ended (see the module docstring), ``None`` while open.
        error: What cut the stream, when ``end_reason == "cut"``.
        bytes_read: Bytes read off the socket so far (HTTP chunking included).
    """

    def __init__(
        self,
        response: requests.Response,
        *,
        container: str,
        tty: bool,
        timestamps: bool,
        follow: bool,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        coalesce: float = DEFAULT_COALESCE,
    ) -> None:
        self.container = container
        self.tty = tty
        self.timestamps = timestamps
        self.follow = follow
        self.buffer_size = buffer_size
        self.coalesce = coalesce
        self.end_reason: EndReason | None = None
        self.error: BaseException | None = None
        self.bytes_read = 0
        self._response = response
        self._sock = _response_socket(response)
        # Decided before anything reads the body (http.client would start on the chunks).
        self._chunked = _chunked_body(response) is not None
        self._lock = threading.Lock()
        self._closed = False
        self._reading = False
        self._released = False
        self._on_close: Callable[[], None] | None = None  # set while a ReadLoop reads it

    def __repr__(self) -> str:
        state = self.end_reason or ("closing" if self._closed else "open")
        kind = "tty" if self.tty else "multiplexed"
        return f"<RawLogStream {self.container[:12]} {kind} follow={self.follow} {state}>"

    def __enter__(self) -> RawLogStream:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """:meth:`close` was called: whatever ends the iteration now, it was us."""
        return self._closed

    def close(self) -> None:
        """End the stream; safe from any thread, idempotent.

        Shuts the socket down, which wakes a reader blocked in :meth:`chunks`
        within milliseconds (closing the response would wait for the next
        data, and releasing the connection of a live stream to the pool
        corrupts the pool). The reader then ends with ``end_reason ==
        "closed"`` and releases the response itself.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            reading = self._reading
            on_close = self._on_close
        _shutdown(self._sock, self._response)
        if on_close is not None:
            on_close()  # a paused detached stream has no reader to notice the shutdown
        elif not reading:
            self._finish("closed", None)
            self._release()

    @property
    def socket(self) -> socket.socket | None:
        """The connection's socket (unix, TCP or TLS), or None when it cannot be reached."""
        return self._sock

    def detach(self, on_close: Callable[[], None]) -> bytes | None:
        """Hand the body to a non-blocking reader (:class:`~actorpool.transport.readloop.ReadLoop`).

        The socket turns non-blocking and from now on the caller reads it
        (``socket.recv``) and feeds a :meth:`decoder`; :meth:`close` calls
        ``on_close`` (from the closing thread) so the reader ends the stream
        even while it does not watch the socket. Ends with :meth:`end_detached`.

        Returns:
            The body bytes the connection's buffered reader already holds
            (read along with the headers; they come before anything
            ``recv`` returns), or ``None`` when the stream cannot be read this
            way: not chunked, no plain socket (TLS keeps bytes of its own
            that a selector does not see; SSH has no socket), or already
            closed or being read. Then read it with :meth:`batches` as usual.
        """
        sock = self._sock
        if sock is None or isinstance(sock, ssl.SSLSocket) or not self._chunked:
            return None
        fp = _chunked_body(self._response)
        if fp is None:
            return None
        with self._lock:
            if self._reading or self._closed or self.end_reason is not None:
                return None
            self._reading = True
            self._on_close = on_close
        sock.setblocking(False)
        try:
            # Everything buffered at once (read1 returns what the buffer holds when it holds
            # anything, and the buffer is smaller than this); an empty buffer tries one
            # non-blocking read of the socket, whose b"" means "nothing yet" or the end --
            # either way the next recv tells.
            data: bytes = fp.read1(_DETACH_READ) or b""
        except _READ_ERRORS:
            data = b""  # the next recv raises it again
        self.bytes_read += len(data)
        return data

    def end_detached(self, reason: EndReason, error: BaseException | None) -> None:
        """The non-blocking reader is done: record how the body ended, release the response."""
        self._finish("closed" if self._closed and reason != "complete" else reason, error)
        with self._lock:
            self._reading = False
            self._on_close = None
        self._release()

    @property
    def chunked(self) -> bool:
        """The body is read raw, HTTP chunked coding included (the daemon's usual answer)."""
        return self._chunked

    def decoder(self, *, max_line_size: int) -> LogDecoder:
        """A :class:`~actorpool.transport.decoder.LogDecoder` for this body, for :meth:`batches`."""
        return LogDecoder(
            tty=self.tty,
            timestamps=self.timestamps,
            max_line_size=max_line_size,
            chunked=self._chunked,
        )

    def chunks(self) -> Iterator[bytes]:
        """Yield the body's bytes (chunking undone) as they come, up to :attr:`buffer_size` a read.

        A read returns what the socket holds (it never waits to fill the
        buffer), so a follow stream's new line is yielded as soon as it
        arrives; after a read shorter than 1/16 of the buffer the next
        read waits :attr:`coalesce` seconds first, so the daemon's
        one-message-per-write output is read in batches. This blocks: run it
        in a thread of its own, never in an actor.

        The iteration ends without raising when the body is complete, when
        :meth:`close` was called, or when the connection is cut;
        :attr:`end_reason` says which.

        Raises:
            FrameError: The HTTP chunked encoding is broken.
            RuntimeError: Another iteration is already running.
        """
        if not self._chunked:
            return self._iterate(_same, _never)
        dechunk = ChunkedDecoder()
        return self._iterate(dechunk.feed, lambda: dechunk.done)

    def batches(self, decoder: LogDecoder) -> Iterator[list[LogLine]]:
        """Like :meth:`chunks`, but yield the lines ``decoder`` makes of each read (if any).

        ``decoder`` comes from :meth:`decoder`; it also undoes the chunked
        coding, in the same pass. Ends, raises and blocks like :meth:`chunks`
        (a :class:`~actorpool.transport.frames.FrameError` ends the stream as ``"cut"``).
        """

        def decode(data: bytes) -> list[LogLine]:
            lines: list[LogLine] = []
            decoder.feed_into(data, lines)
            return lines

        return self._iterate(decode, lambda: decoder.done)

    def _iterate(
        self, consume: Callable[[bytes], _T], finished: Callable[[], bool]
    ) -> Iterator[_T]:
        # The one read loop: consume() runs inside it, so its errors end the stream as "cut".
        with self._lock:
            if self._reading:
                msg = f"{self!r} is already being read; iterate chunks() from one place only"
                raise RuntimeError(msg)
            if self._closed or self.end_reason is not None:
                if self.end_reason is None:
                    self._finish("closed", None)
                return
            self._reading = True
        try:
            fp = _chunked_body(self._response) if self._chunked else None
            for data in self._reads(fp):
                item = consume(data)
                if item:
                    yield item
                if finished():
                    break
            else:
                if fp is not None:  # the connection ended before the last chunk
                    self._finish("closed" if self._closed else "cut", body_cut(self))
        except _READ_ERRORS as exc:
            self._finish("closed" if self._closed else "cut", exc)
        except FrameError as exc:
            self._finish("cut", exc)
            raise
        else:
            self._finish("closed" if self._closed else "complete", None)
        finally:
            with self._lock:
                self._reading = False
            if self.end_reason is None:  # the consumer stopped iterating (generator closed)
                self._finish("closed", None)
            self._release()

    def _reads(self, fp: Any) -> Iterator[bytes]:
        # Chunked: straight off the connection's buffered socket, around urllib3 (which would
        # read chunk by chunk). Not chunked: urllib3 frames the body; read1 returns what is there.
        read = fp.read1 if fp is not None else self._response.raw.read1
        size = self.buffer_size
        short, pause = size // _SHORT_READ, self.coalesce
        while True:
            data = read(size)
            if not data:
                return
            self.bytes_read += len(data)
            yield data
            if len(data) < short and pause and not self._closed:
                time.sleep(pause)

    def _finish(self, reason: EndReason, error: BaseException | None) -> None:
        if self.end_reason is None:
            self.end_reason = reason
            self.error = error if reason == "cut" else None

    def _release(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
        # The body was consumed around urllib3 (or abandoned): close the connection
        # instead of handing it back to the pool with an unknown state.
        try:
            self._response.close()
        except (*_READ_ERRORS, AttributeError):
            pass


def body_cut(stream: RawLogStream) -> BaseException:
    """The error of a chunked body whose connection ended before its last chunk."""
    return requests.exceptions.ChunkedEncodingError(
        f"the daemon's log stream of {stream.container[:12]} ended before its last chunk "
        f"(after {stream.bytes_read} bytes): the daemon went away or cut the connection"
    )


def _chunked_body(response: requests.Response) -> Any:
    """The buffered socket reader under a chunked response nobody has read from, else None."""
    original = getattr(response.raw, "_fp", None)  # http.client.HTTPResponse
    if original is None or not getattr(original, "chunked", False):
        return None
    if getattr(original, "chunk_left", None) is not None:
        return None  # http.client already started on the body
    fp = getattr(original, "fp", None)
    return fp if fp is not None and hasattr(fp, "read1") else None


def _response_socket(response: requests.Response) -> socket.socket | None:
    """The socket under a docker-py response (unix, TCP or TLS), or None (e.g. SSH)."""
    original = getattr(response.raw, "_fp", None)
    fp = getattr(original, "fp", None)
    raw = getattr(fp, "raw", None)  # socket.SocketIO
    sock = getattr(raw, "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


def _shutdown(sock: socket.socket | None, response: requests.Response) -> None:
    if sock is not None:
        # Already closed or reset is fine: the reader is waking up anyway.
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        return
    try:  # urllib3 >= 2.3 knows how to shut its socket down
        response.raw.shutdown()
    except (AttributeError, ValueError, RuntimeError, OSError):
        response.close()


# --- opening -----------------------------------------------------------------------------


def time_param(value: float | str | None) -> str | None:
    """Return ``since``/``until`` as the exact string the daemon should get.

    A string is passed as is (the daemon's ``"seconds.nanoseconds"`` or
    RFC 3339); an int is whole seconds; a float is converted from its shortest
    decimal form (``1714564800.5`` -> ``"1714564800.500000000"``), never by
    docker-py, which floors datetimes to seconds and loses ~240 ns on floats.

    Raises:
        ValueError: A negative or non-finite number, or a bool.
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        msg = f"since/until must be a Unix time in seconds or a string, got {value!r}"
        raise ValueError(msg)
    if isinstance(value, int):
        ns = value * 1_000_000_000
    else:
        try:
            ns = int((decimal.Decimal(repr(value)) * _NS).to_integral_value(decimal.ROUND_CEILING))
        except (decimal.InvalidOperation, ValueError, OverflowError):
            ns = -1
    if ns < 0:
        msg = f"since/until must be a finite, non-negative Unix time, got {value!r}"
        raise ValueError(msg)
    return format_since(ns)


def open_logs(
    client: APIClient,
    container: str,
    *,
    stdout: bool = True,
    stderr: bool = True,
    follow: bool = False,
    since: float | str | None = None,
    until: float | str | None = None,
    tail: int | Literal["all"] = "all",
    timestamps: bool = True,
    details: bool = False,
    tty: bool | None = None,
    buffer_size: int = DEFAULT_BUFFER_SIZE,
    coalesce: float = DEFAULT_COALESCE,
) -> RawLogStream:
    """Open ``GET /containers/{container}/logs`` and return the unread stream.

    Args:
        client: The docker-py client whose connection carries the stream; for
            ``follow`` give a client of its own (the stream holds the connection).
        container: Container id or name.
        stdout: Include the container's stdout.
        stderr: Include the container's stderr.
        follow: Keep the stream open for new output until the container stops.
        since: Only messages stamped at or after this (inclusive); see :func:`time_param`.
        until: Only messages stamped at or before this (inclusive too, on dockerd 20.10).
        tail: ``"all"`` or the number of last log messages to start with.
        timestamps: Ask the daemon to prefix every message with its timestamp.
        details: Ask the daemon to prefix every message with the extra attributes its log
            driver was given (``--log-opt labels=…``/``env=…``), as ``docker logs --details``.
        tty: Whether the container has a TTY (from its inspect record). ``None``
            inspects the container first: dockerd 20.10 sends no content type
            that would tell the two body formats apart. A daemon that does
            send one (API >= 1.42) is believed over this argument.
        buffer_size: The most bytes asked of the socket per read.
        coalesce: Seconds to wait after a read shorter than ``buffer_size / 16``
            before reading again. The daemon writes (and flushes) every log
            message on its own, so a reader that keeps up reads ~5 messages
            per system call; measured on 1 M followed lines, waiting 0.5 ms
            halves the reading's CPU time (~2.1 s to ~1.1 s) and yields 20%
            more lines a second, while waiting longer lets the socket fill and
            stalls the daemon (see :data:`DEFAULT_COALESCE`). A reader that
            falls behind gets long reads and never waits. It delays a follow
            stream's next line by at most this much. 0 disables it.

    Raises:
        docker.errors.NotFound: No such container.
        docker.errors.APIError: Any other HTTP error.
        requests.exceptions.RequestException: The daemon cannot be reached.
    """
    if isinstance(buffer_size, bool) or not isinstance(buffer_size, int) or buffer_size < 1:
        msg = f"buffer_size must be a positive number of bytes, got {buffer_size!r}"
        raise ValueError(msg)
    if isinstance(coalesce, bool) or not isinstance(coalesce, int | float) or not coalesce >= 0:
        msg = f"coalesce must be a non-negative number of seconds, got {coalesce!r}"
        raise ValueError(msg)
    if tail != "all" and (isinstance(tail, bool) or not isinstance(tail, int) or tail < 0):
        msg = f"tail must be 'all' or a non-negative number of lines, got {tail!r}"
        raise ValueError(msg)
    params: dict[str, str | int] = {
        "stdout": int(stdout),
        "stderr": int(stderr),
        "follow": int(follow),
        "timestamps": int(timestamps),
        "tail": str(tail),
    }
    if details:
        params["details"] = 1
    since_s, until_s = time_param(since), time_param(until)
    if since_s is not None:
        params["since"] = since_s
    if until_s is not None:
        params["until"] = until_s
    if tty is None:
        tty = bool(
            direct.get(
                client,
                "/containers/{0}/json",
                container,
                fallback=lambda: client.inspect_container(container),
            )["Config"]["Tty"]
        )
    response = client._get(
        client._url("/containers/{0}/logs", container), params=params, stream=True
    )
    try:
        client._raise_for_status(response)
    except BaseException:
        response.close()
        raise
    content_type = response.headers.get("Content-Type", "")
    if content_type.startswith(_RAW_STREAM):
        tty = True
    elif content_type.startswith(_MULTIPLEXED):
        tty = False
    stream = RawLogStream(
        response,
        container=container,
        tty=tty,
        timestamps=timestamps,
        follow=follow,
        buffer_size=buffer_size,
        coalesce=coalesce,
    )
    if follow and stream._sock is not None:
        # A follow stream waits for new output as long as it takes; the client's read
        # timeout would cut a quiet container. close() is how a follow stream ends.
        stream._sock.settimeout(None)
    return stream


# --- lines -------------------------------------------------------------------------------


class LineReader:
    """Iterator of a :class:`RawLogStream`'s lines in batches; made by :func:`iter_lines`.

    Attributes:
        raw: The stream read.
        max_line_size: Lines longer than this many bytes are cut.
    """

    def __init__(self, raw: RawLogStream, *, max_line_size: int) -> None:
        self.raw = raw
        self.max_line_size = max_line_size
        self._decoder = raw.decoder(max_line_size=max_line_size)
        self._batches = self._read()

    def __iter__(self) -> LineReader:
        return self

    def __next__(self) -> list[LogLine]:
        return next(self._batches)

    @property
    def truncated(self) -> int:
        """How many lines were cut at ``max_line_size`` so far."""
        return self._decoder.truncated

    def _read(self) -> Iterator[list[LogLine]]:
        yield from self.raw.batches(self._decoder)
        if self.raw.end_reason == "complete":
            try:
                batch = self._decoder.flush()
            except FrameError as exc:
                msg = f"the log stream of {self.raw.container[:12]} is broken: {exc}"
                raise FrameError(msg) from exc
            if batch:
                yield batch


def iter_lines(raw: RawLogStream, *, max_line_size: int) -> LineReader:
    """Iterate the stream's lines, one non-empty batch per raw chunk, in arrival order.

    Lines of one source are in the daemon's order; stdout and stderr are
    interleaved as they arrived (a line split in pieces counts when its last
    piece arrives). An incomplete last line is yielded only when the stream
    is ``"complete"``: after a cut or a close it is dropped, because resuming
    with ``since`` (inclusive) at its timestamp re-reads it whole. The
    returned :class:`LineReader` also counts the lines cut at ``max_line_size``.

    Raises:
        FrameError: (while iterating) The body is not valid frames (or
            timestamps) for its kind.
    """
    return LineReader(raw, max_line_size=max_line_size)


def read_logs(
    client: APIClient, request: ContainerLogs, *, max_line_size: int = DEFAULT_MAX_LINE_SIZE
) -> tuple[LogLine, ...]:
    """Read a container's logs so far (no follow), for :class:`ContainerLogs`.

    Without ``request.timestamps`` every line's timestamp is 0.

    Raises:
        docker.errors.NotFound: No such container.
        requests.exceptions.RequestException: The daemon went away or timed
            out mid-body (the stream's cause is re-raised so the pool
            classifies and retries it).
        FrameError: The body broke the protocol.
    """
    raw = open_logs(
        client,
        request.container,
        stdout=request.stdout,
        stderr=request.stderr,
        follow=False,
        since=request.since,
        until=request.until,
        tail=request.tail,
        timestamps=request.timestamps,
        details=request.details,
    )
    lines: list[LogLine] = []
    with raw:
        for batch in iter_lines(raw, max_line_size=max_line_size):
            lines.extend(batch)
    if raw.end_reason != "complete":
        raise raw.error or body_cut(raw)
    return tuple(lines)
