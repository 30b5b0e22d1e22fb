"""The layers of the log wire formats (chunking, frames, timestamps), each undone by a pure step.

The daemon sends a non-TTY container's logs as *frames*: an 8-byte header
(``>BxxxL``: stream id 0 stdin, 1 stdout, 2 stderr; three zero bytes; payload
length) followed by the payload. Each frame carries one log message: a whole
line with its ``"\\n"``, or one 16 KiB piece of a longer line (only the last
piece ends with ``"\\n"``), or the output a container left without a final
newline. With ``timestamps=1`` every message, and so every piece, starts with
the message's RFC 3339 timestamp (always 9 fractional digits, UTC, ``Z``) and
a space; all the pieces of one line carry the first piece's timestamp.

A TTY container's logs are not framed at all: the raw bytes, lines ending in
``"\\r\\n"``, every message again prefixed with its timestamp when asked.

Under both, the HTTP body is chunked with one chunk per message;
:class:`ChunkedDecoder` undoes that over whole socket reads.

Everything here is pure (no I/O) and incremental, so a reader can feed bytes
exactly as they come off the socket, in pieces of any size. The hot paths
avoid per-byte Python work: headers are unpacked with one
:meth:`struct.Struct.unpack_from` call, lines are found with
:meth:`bytes.find`, and the seconds part of timestamps is cached.

Example::

    parser = FrameParser()
    out = LineAssembler("stdout", timestamps=True, max_line_size=1 << 20)
    for stream_id, payload in parser.feed(chunk):
        lines = out.feed(payload)
"""

from __future__ import annotations

import calendar
import datetime
import re
import struct
from typing import Final, Literal

from actorpool.errors import StreamError
from actorpool.transport.records import LogLine

__all__ = [
    "MAX_CHUNK_LINE",
    "MAX_FRAME_SIZE",
    "STREAM_NAMES",
    "ChunkedDecoder",
    "FrameError",
    "FrameParser",
    "LineAssembler",
    "MultiplexedDecoder",
    "TtyAssembler",
    "chunk_size",
    "format_since",
    "parse_timestamp",
    "seconds_of",
]

#: A frame announcing a longer payload is garbage: the daemon never sends more than 16 KiB
#: of log message (plus its timestamp) in one frame; 64 MiB leaves room for other producers.
MAX_FRAME_SIZE: Final = 64 * 1024 * 1024

#: The LogLine stream name for each frame stream id. Docker's own ``stdcopy`` treats
#: stdin (0) as stdout, and so does this module.
STREAM_NAMES: Final[tuple[Literal["stdout", "stderr"], ...]] = ("stdout", "stdout", "stderr")

_HEADER: Final = struct.Struct(">LL")
_HEADER_SIZE: Final = 8
# The first header word is ``stream_id << 24 | padding``: valid words are 0, 1 << 24, 2 << 24.
_PADDING_MASK: Final = 0x00FFFFFF
_MAX_WORD: Final = 0x02000000

_NS: Final = 1_000_000_000
# Builds a LogLine without NamedTuple's Python-level __new__ (half the cost on hot paths).
_new = tuple.__new__
_NL: Final = b"\n"
_CR: Final = 13
_SPACE: Final = 32
_ZULU: Final = 90
_DOT: Final = 46
# "2024-05-01T12:00:00.123456789Z": the daemon's fixed format.
_FIXED_TS_LEN: Final = 30
# Any RFC 3339 timestamp is shorter than this; used to bound the search for its end.
_MAX_TS_LEN: Final = 40
# A TTY line at least this long may hold the daemon's continuation prefixes (its log driver
# splits messages at 16 KiB, larger for some drivers, never smaller).
_TTY_PIECE: Final = 16 * 1024

_SECONDS_RE: Final = re.compile(rb"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)")
_GENERAL_TS_RE: Final = re.compile(
    rb"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d\d):(\d\d))"
)
#: A chunk-size line longer than this is not HTTP.
MAX_CHUNK_LINE: Final = 1024
_SECONDS_CACHE: dict[bytes, int] = {}
_SECONDS_CACHE_MAX: Final = 4096


class FrameError(StreamError):
    """The daemon's log stream is not what the protocol says (bad frame, chunk or timestamp).

    The stream cannot be trusted past this point: close it and reopen it (resuming
    with ``since``). A bad header at offset 0 usually means a TTY container was
    read as a multiplexed one.
    """


# --- timestamps ------------------------------------------------------------------------------


def _seconds(prefix: bytes) -> int:
    match = _SECONDS_RE.fullmatch(prefix)
    if match is None:
        msg = f"not an RFC 3339 date and time: {prefix!r}"
        raise ValueError(msg)
    # datetime validates the ranges (month 13, Feb 30) that timegm would silently roll over.
    year, month, day, hour, minute, second = (int(x) for x in match.groups())
    try:
        datetime.datetime(year, month, day, hour, minute, second, tzinfo=datetime.UTC)
    except ValueError as exc:
        msg = f"not an RFC 3339 date and time: {prefix!r} ({exc})"
        raise ValueError(msg) from None
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))


def seconds_of(prefix: bytes) -> int:
    """Unix seconds of a ``YYYY-MM-DDTHH:MM:SS`` (UTC) prefix, cached per distinct second.

    Raises:
        ValueError: Not such a prefix, or not a valid date and time.
    """
    seconds = _SECONDS_CACHE.get(prefix)
    if seconds is None:
        seconds = _seconds(prefix)
        if len(_SECONDS_CACHE) >= _SECONDS_CACHE_MAX:
            _SECONDS_CACHE.clear()
        _SECONDS_CACHE[prefix] = seconds
    return seconds


def parse_timestamp(value: bytes) -> int:
    """Return a daemon timestamp as integer nanoseconds since the Unix epoch.

    The daemon's own format (``2024-05-01T12:00:00.123456789Z``, always 9 digits)
    takes a fast path that caches the seconds part per distinct second, since
    consecutive log lines share it. Any other RFC 3339 form (fewer digits, an
    offset instead of ``Z``) is parsed by the slow path, exactly.

    Args:
        value: The timestamp's bytes, without the trailing space.

    Raises:
        ValueError: ``value`` is not an RFC 3339 timestamp.
    """
    if len(value) == _FIXED_TS_LEN and value[29] == _ZULU and value[19] == _DOT:
        fraction = value[20:29]
        if fraction.isdigit():
            return seconds_of(value[:19]) * _NS + int(fraction)
    return _parse_general(value)


def _parse_general(value: bytes) -> int:
    match = _GENERAL_TS_RE.fullmatch(value)
    if match is None:
        msg = f"not an RFC 3339 timestamp: {value[:_MAX_TS_LEN]!r}"
        raise ValueError(msg)
    year, month, day, hour, minute, second, fraction, _z, sign, off_h, off_m = match.groups()
    seconds = _seconds(b"%s-%s-%sT%s:%s:%s" % (year, month, day, hour, minute, second))
    if sign is not None:
        offset = int(off_h) * 3600 + int(off_m) * 60
        seconds -= offset if sign == b"+" else -offset
    nanos = int(fraction.ljust(9, b"0")) if fraction else 0
    return seconds * _NS + nanos


def format_since(ns: int) -> str:
    """Format nanoseconds since the epoch as the daemon's exact ``since``/``until`` string.

    The daemon's ``since`` is inclusive, so resuming after a line stamped ``T``
    asks for ``format_since(T + 1)``. Sending this string (never a float, whose
    ~240 ns error loses or repeats lines) is what makes a resume exact.

    Raises:
        ValueError: ``ns`` is negative or not an int.
    """
    if isinstance(ns, bool) or not isinstance(ns, int) or ns < 0:
        msg = f"format_since needs a non-negative int of nanoseconds, got {ns!r}"
        raise ValueError(msg)
    seconds, nanos = divmod(ns, _NS)
    return f"{seconds}.{nanos:09d}"


def _timestamp_end(data: bytes, start: int) -> int:
    """Return the index of the space ending the timestamp at ``data[start:]``, or -1."""
    end = start + _FIXED_TS_LEN
    if len(data) > end and data[end] == _SPACE:
        return end
    return data.find(b" ", start, start + _MAX_TS_LEN)


def _no_timestamp(data: bytes, start: int) -> FrameError:
    msg = (
        f"log message without a timestamp prefix: {data[start : start + _MAX_TS_LEN]!r}; the "
        "stream was opened with timestamps=True, so the daemon should prefix every message"
    )
    return FrameError(msg)


def _timestamp_at(data: bytes, start: int, end: int) -> int:
    try:
        return parse_timestamp(data[start:end])
    except ValueError as exc:
        msg = (
            f"log message without a valid timestamp prefix: {exc}; the stream was opened with "
            "timestamps=True, so the daemon should prefix every message"
        )
        raise FrameError(msg) from exc


# --- frames ----------------------------------------------------------------------------------


class FrameParser:
    """Split the multiplexed byte stream into ``(stream_id, payload)`` frames, incrementally.

    Bytes may arrive split anywhere (inside a header, inside a payload); an
    incomplete frame is held until the rest arrives, in a list of pieces so a
    large frame costs one join, not one copy per feed.

    A bad header raises :class:`FrameError` naming the offset and bytes seen;
    the parser then stays failed (every later :meth:`feed` raises the same
    error), because nothing after a bad header can be trusted.
    """

    __slots__ = ("_error", "_held", "_need", "_offset", "_pieces")

    def __init__(self) -> None:
        self._pieces: list[bytes] = []  # the held bytes: an incomplete frame's start
        self._held = 0  # total length of _pieces
        self._need = 0  # bytes needed before the first held frame is complete
        self._offset = 0  # stream offset of the first held byte
        self._error: FrameError | None = None

    @property
    def pending(self) -> int:
        """Bytes held: the start of a frame whose remainder has not arrived yet."""
        return self._held

    @property
    def offset(self) -> int:
        """Stream offset of the first byte not yet returned as part of a frame."""
        return self._offset

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Add bytes; return the frames they complete, in order.

        Raises:
            FrameError: A header with a stream id above 2, nonzero padding or a
                length over :data:`MAX_FRAME_SIZE`.
        """
        if self._error is not None:
            raise self._error
        if self._pieces:
            self._pieces.append(data)
            self._held += len(data)
            if self._held < self._need:
                return []
            data = b"".join(self._pieces)
            self._pieces.clear()
        frames: list[tuple[int, bytes]] = []
        append = frames.append
        unpack = _HEADER.unpack_from
        end = len(data)
        pos = 0
        while end - pos >= _HEADER_SIZE:
            word, length = unpack(data, pos)
            if word & _PADDING_MASK or word > _MAX_WORD or length > MAX_FRAME_SIZE:
                raise self._fail(data, pos)
            start = pos + _HEADER_SIZE
            pos = start + length
            if pos > end:
                pos = start - _HEADER_SIZE
                break
            append((word >> 24, data[start:pos]))
        self._offset += pos
        if pos < end:
            rest = data[pos:] if pos else data
            self._pieces.append(rest)
            self._held = len(rest)
            if len(rest) >= _HEADER_SIZE:
                self._need = _HEADER_SIZE + _HEADER.unpack_from(rest)[1]
            else:
                self._need = _HEADER_SIZE
        else:
            self._held = 0
        return frames

    def _fail(self, data: bytes, pos: int) -> FrameError:
        header = data[pos : pos + _HEADER_SIZE]
        word, length = _HEADER.unpack_from(header)
        msg = (
            f"bad log frame header at stream offset {self._offset + pos}: {header.hex(' ')} "
            f"(stream id {word >> 24}, padding 0x{word & _PADDING_MASK:06x}, length {length}); "
            f"a header needs stream id 0-2, zero padding and length <= {MAX_FRAME_SIZE}. "
            "Was a TTY container read as a multiplexed one?"
        )
        self._error = FrameError(msg)
        self._pieces.clear()
        self._held = 0
        return self._error


# --- HTTP chunked transfer coding ------------------------------------------------------------


class ChunkedDecoder:
    """Undo HTTP/1.1 chunked transfer coding, incrementally, over reads of any size.

    The daemon flushes every log message as its own HTTP chunk (``2d\\r\\n``,
    45 bytes, ``\\r\\n``), so decoding chunk by chunk through urllib3 costs a
    Python-level read per line. This decodes a whole socket read per call,
    with one loop step per chunk in the common case (the chunk and its CRLF
    inside the read). Trailers after the last chunk are not read: the caller
    closes the connection.

    Attributes:
        done: The last (zero-size) chunk was seen; later bytes are ignored.
    """

    __slots__ = ("_left", "_line", "_skip", "done")

    def __init__(self) -> None:
        self._left = 0  # payload bytes of the current chunk still to come
        self._skip = 0  # bytes of the CRLF after a chunk's payload still to skip
        self._line = b""  # a chunk-size line split across reads
        self.done = False

    @property
    def pending(self) -> bool:
        """Inside a chunk: its size line, payload or CRLF has not all arrived yet."""
        return bool(self._left or self._skip or self._line)

    def feed(self, data: bytes) -> bytes:
        """Add raw body bytes; return the payload bytes they carry (maybe ``b""``).

        Raises:
            FrameError: A chunk-size line that is not a hex number, or too long.
        """
        if self.done:
            return b""
        parts: list[bytes] = []
        end = len(data)
        pos = 0
        left = self._left
        skip = self._skip
        while pos < end:
            if left:
                stop = pos + left
                if stop <= end:
                    parts.append(data[pos:stop])
                    pos = stop
                    left = 0
                    skip = 2
                else:
                    parts.append(data[pos:] if pos else data)
                    left = stop - end
                    pos = end
            elif skip:
                step = min(skip, end - pos)
                pos += step
                skip -= step
            else:
                newline = data.find(_NL, pos)
                if newline < 0:
                    self._line += data[pos:]
                    if len(self._line) > MAX_CHUNK_LINE:
                        raise _bad_chunk(self._line)
                    break
                if self._line:
                    left = chunk_size(self._line + data[pos:newline])
                    self._line = b""
                else:
                    try:
                        left = int(data[pos:newline], 16)  # int() ignores the CR
                    except ValueError:
                        left = chunk_size(data[pos:newline])
                    if left < 0:
                        raise _bad_chunk(data[pos:newline])
                pos = newline + 1
                if left == 0:  # the last chunk: the body is complete
                    self.done = True
                    break
                stop = pos + left
                if stop + 2 <= end:  # the common case: the whole chunk and its CRLF are here
                    parts.append(data[pos:stop])
                    pos = stop + 2
                    left = 0
        self._left = left
        self._skip = skip
        if not parts:
            return b""
        return parts[0] if len(parts) == 1 else b"".join(parts)


def _bad_chunk(line: bytes) -> FrameError:
    return FrameError(
        f"bad HTTP chunk-size line in the log stream: {line[:64]!r}; "
        "the response is not valid chunked transfer coding"
    )


def chunk_size(line: bytes) -> int:
    """The size a chunk-size line (without its LF; extensions allowed) announces.

    Raises:
        FrameError: Not a non-negative hex number, or a line over :data:`MAX_CHUNK_LINE`.
    """
    try:
        size = int(line.split(b";", 1)[0].strip(), 16)
    except ValueError:
        raise _bad_chunk(line) from None
    if size < 0 or len(line) > MAX_CHUNK_LINE:
        raise _bad_chunk(line)
    return size


# --- lines -----------------------------------------------------------------------------------


class LineAssembler:
    """Turn one source's frame payloads into :class:`LogLine` records.

    Each payload is a run of messages; with ``timestamps`` each message starts
    with a timestamp and a space. A message ending in ``"\\n"`` completes a
    line; one without (a 16 KiB piece, or output left without a newline) is
    held and joined with the following pieces, whose own timestamp prefixes are
    dropped: the line keeps its first piece's timestamp.

    A line longer than ``max_line_size`` bytes is cut at that size and returned
    with ``truncated=True`` as soon as the limit is passed (so memory stays
    bounded), the rest of it is discarded up to its newline, and
    :attr:`truncated` counts such lines.

    Attributes:
        stream: ``"stdout"`` or ``"stderr"``: the name put on every line.
        timestamps: Whether messages carry a timestamp prefix.
        max_line_size: The longest line kept whole, in bytes (without the newline).
        truncated: How many lines were cut so far.
    """

    __slots__ = (
        "_busy",
        "_discarding",
        "_fast_max",
        "_parts",
        "_size",
        "_ts",
        "max_line_size",
        "stream",
        "timestamps",
        "truncated",
    )

    def __init__(
        self, stream: Literal["stdout", "stderr"], *, timestamps: bool, max_line_size: int
    ) -> None:
        if stream not in ("stdout", "stderr"):
            msg = f"stream must be 'stdout' or 'stderr', got {stream!r}"
            raise ValueError(msg)
        _check_max_line_size(max_line_size)
        self.stream: Literal["stdout", "stderr"] = stream
        self.timestamps = timestamps
        self.max_line_size = max_line_size
        self.truncated = 0
        self._parts: list[bytes] = []  # pieces of the pending line
        self._size = 0  # bytes in _parts
        self._ts = 0  # timestamp of the pending line
        self._discarding = False  # dropping the rest of a cut line up to its newline
        self._busy = False  # _parts or _discarding: a line is in progress
        # The longest payload of one whole stamped line that needs no cut.
        self._fast_max = max_line_size + _FIXED_TS_LEN + 2

    @property
    def pending(self) -> int:
        """Bytes of an incomplete line held (0 while discarding a cut line's rest)."""
        return self._size

    @property
    def busy(self) -> bool:
        """A line is in progress (pieces held, or a cut line's rest being dropped)."""
        return self._busy

    def feed(self, payload: bytes) -> list[LogLine]:
        """Add one frame payload; return the lines it completes (or cuts), in order.

        Raises:
            FrameError: ``timestamps`` is on and a message lacks a valid timestamp.
        """
        out: list[LogLine] = []
        self.feed_into(payload, out)
        return out

    def feed_into(self, payload: bytes, out: list[LogLine]) -> None:
        """Like :meth:`feed`, appending to ``out`` (saves a list per frame on hot paths)."""
        end = len(payload)
        timestamps = self.timestamps
        if (
            timestamps
            and not self._busy
            and _FIXED_TS_LEN < end <= self._fast_max
            and payload[_FIXED_TS_LEN] == _SPACE
            and payload.find(_NL, _FIXED_TS_LEN) == end - 1
        ):
            # The daemon's common case, inlined: one whole line in the fixed timestamp format.
            seconds = _SECONDS_CACHE.get(payload[:19])
            fraction = payload[20:29]
            if seconds is not None and payload[29] == _ZULU and fraction.isdigit():
                out.append(
                    _new(
                        LogLine,
                        (
                            self.stream,
                            seconds * _NS + int(fraction),
                            payload[_FIXED_TS_LEN + 1 : end - 1],
                            False,
                        ),
                    )
                )
                return
        pos = 0
        while pos < end:
            if timestamps:
                space = _timestamp_end(payload, pos)
                if space < 0:
                    raise _no_timestamp(payload, pos)
                # A continuation piece repeats the line's timestamp: no need to parse it.
                ts = self._ts if self._busy else _timestamp_at(payload, pos, space)
                start = space + 1
            else:
                ts = 0
                start = pos
            newline = payload.find(_NL, start)
            if newline < 0:
                self._piece(payload[start:], ts, out)
                return
            if not self._busy and newline - start <= self.max_line_size:
                # The common case: a whole line in one message.
                out.append(_new(LogLine, (self.stream, ts, payload[start:newline], False)))
            else:
                self._piece(payload[start:newline], ts, out)
                self._end_line(out)
            pos = newline + 1

    def flush(self) -> list[LogLine]:
        """Return the incomplete line held at the end of the stream, if any, and reset."""
        out: list[LogLine] = []
        self._end_line(out)
        return out

    def _piece(self, data: bytes, ts: int, out: list[LogLine]) -> None:
        # Add a piece of the current line (no newline in it).
        if self._discarding:
            return
        if not self._parts:
            self._ts = ts
            self._busy = True
        room = self.max_line_size - self._size
        if len(data) > room:
            self._parts.append(data[:room])
            out.append(LogLine(self.stream, self._ts, b"".join(self._parts), True))
            self.truncated += 1
            self._parts.clear()
            self._size = 0
            self._discarding = True
            return
        self._parts.append(data)
        self._size += len(data)

    def _end_line(self, out: list[LogLine]) -> None:
        # The current line ended (newline seen, or end of stream).
        self._busy = False
        if self._discarding:
            self._discarding = False
            return
        if self._parts:
            out.append(LogLine(self.stream, self._ts, b"".join(self._parts)))
            self._parts.clear()
            self._size = 0


class TtyAssembler:
    """Turn a TTY container's raw log bytes into :class:`LogLine` records (all ``stdout``).

    There is no framing: lines end with ``"\\n"`` (a ``"\\r"`` before it is
    dropped too, since a TTY writes ``"\\r\\n"``), and bytes are split wherever
    the socket split them. With ``timestamps`` every message starts with a
    timestamp and a space; a line longer than the log driver's message size
    (16 KiB for json-file) comes as several messages that all carry the line's
    first timestamp, and since nothing marks where a piece ends in an unframed
    stream, the exact ``timestamp + " "`` of the line is removed wherever it
    occurs inside a line of at least 16 KiB. Limitation: output a TTY
    container left without a final newline before it stopped is joined with
    the first line it prints after a restart (the stream has no boundary to
    tell them apart).

    Lines over ``max_line_size`` are cut, flagged and counted like
    :class:`LineAssembler` does.
    """

    __slots__ = (
        "_data",
        "_discarding",
        "_prefix",
        "_scan",
        "_start",
        "_ts",
        "max_line_size",
        "stream",
        "timestamps",
        "truncated",
    )

    def __init__(self, *, timestamps: bool, max_line_size: int) -> None:
        _check_max_line_size(max_line_size)
        self.stream: Literal["stdout", "stderr"] = "stdout"
        self.timestamps = timestamps
        self.max_line_size = max_line_size
        self.truncated = 0
        self._data = b""  # unconsumed bytes, starting at the current line's start
        self._start = -1  # index of the current line's content in _data, -1 before its timestamp
        self._scan = 0  # where to resume looking for the newline in _data
        self._ts = 0
        self._prefix = b""  # a long line's timestamp and space, exactly as received
        self._discarding = False

    @property
    def pending(self) -> int:
        """Bytes held: the start of an incomplete line."""
        return len(self._data)

    def feed(self, data: bytes) -> list[LogLine]:
        """Add raw bytes; return the lines they complete (or cut), in order.

        Raises:
            FrameError: ``timestamps`` is on and a message lacks a valid timestamp.
        """
        out: list[LogLine] = []
        self.feed_into(data, out)
        return out

    def feed_into(self, data: bytes, out: list[LogLine]) -> None:
        """Like :meth:`feed`, appending to ``out``."""
        if self._data:
            data = self._data + data
        end = len(data)
        pos = 0  # start of the current line (its timestamp)
        start = self._start
        scan = self._scan
        timestamps = self.timestamps
        limit = self.max_line_size
        cache = _SECONDS_CACHE
        while pos < end:
            if self._discarding:
                newline = data.find(_NL, pos)
                if newline < 0:
                    pos = end
                    break
                self._discarding = False
                pos = newline + 1
                start = -1
                continue
            if start < 0:
                if not timestamps:
                    start = pos
                elif (
                    end - pos > _FIXED_TS_LEN
                    and data[pos + _FIXED_TS_LEN] == _SPACE
                    and data[pos + 29] == _ZULU
                    and (seconds := cache.get(data[pos : pos + 19])) is not None
                    and (fraction := data[pos + 20 : pos + 29]).isdigit()
                ):
                    # The fixed format with a cached second, inlined (the per-line hot path).
                    self._ts = seconds * _NS + int(fraction)
                    start = pos + _FIXED_TS_LEN + 1
                else:
                    space = _timestamp_end(data, pos)
                    if space < 0:
                        if end - pos < _MAX_TS_LEN:
                            break  # the timestamp's rest has not arrived
                        raise _no_timestamp(data, pos)
                    self._ts = _timestamp_at(data, pos, space)
                    start = space + 1
                scan = start
            newline = data.find(_NL, scan)
            if newline < 0:
                # Bound the memory held: cut once the line is surely longer than the limit,
                # leaving room for a continuation prefix straddling the cut.
                if end - start > limit + _MAX_TS_LEN + 1 and self._cut(data, pos, start, out):
                    pos = end
                    start = -1
                else:
                    scan = end
                break
            if newline - start <= limit and newline - start < _TTY_PIECE:
                stop = newline - 1 if newline > start and data[newline - 1] == _CR else newline
                out.append(_new(LogLine, ("stdout", self._ts, data[start:stop], False)))
            else:
                self._prefix = data[pos:start]
                self._emit_long(data[start:newline], out, newline=True)
            pos = newline + 1
            start = -1
        self._data = data[pos:] if pos < end else b""
        self._start = start - pos if start >= 0 else -1
        self._scan = scan - pos if start >= 0 else 0

    def flush(self) -> list[LogLine]:
        """Return the incomplete line held at the end of the stream, if any, and reset."""
        out: list[LogLine] = []
        if not self._discarding and self._data:
            if self._start >= 0:
                self._prefix = self._data[: self._start]
                self._emit_long(self._data[self._start :], out, newline=False)
            else:
                # Bytes too short to hold a timestamp: the stream was cut inside one.
                msg = f"log stream ended inside a timestamp prefix: {self._data!r}"
                raise FrameError(msg)
        self._data = b""
        self._start = -1
        self._scan = 0
        self._discarding = False
        return out

    def _strip_prefixes(self, content: bytes) -> bytes:
        if not self.timestamps or len(content) < _TTY_PIECE:
            return content
        prefix = self._prefix
        return content.replace(prefix, b"") if prefix in content else content

    def _emit_long(self, content: bytes, out: list[LogLine], *, newline: bool) -> None:
        # A line's whole content without its newline: drop the continuation prefixes
        # first, since a piece may end with the CR of the CRLF.
        content = self._strip_prefixes(content)
        if newline and content.endswith(b"\r"):
            content = content[:-1]
        if len(content) > self.max_line_size:
            out.append(LogLine("stdout", self._ts, content[: self.max_line_size], True))
            self.truncated += 1
        else:
            out.append(LogLine("stdout", self._ts, content))

    def _cut(self, data: bytes, pos: int, start: int, out: list[LogLine]) -> bool:
        # An incomplete line past the limit: cut it if, without its continuation
        # prefixes, it is still over the limit. Returns whether it was cut.
        self._prefix = data[pos:start]
        content = self._strip_prefixes(data[start:])
        if len(content) <= self.max_line_size + _MAX_TS_LEN:
            return False
        out.append(LogLine("stdout", self._ts, content[: self.max_line_size], True))
        self.truncated += 1
        self._discarding = True
        return True


class MultiplexedDecoder:
    """A :class:`FrameParser` feeding one :class:`LineAssembler` per source.

    The whole non-TTY decoding in one object: raw body bytes in, lines out
    in arrival order, with the cut-line count and end-of-stream checks.
    (Fusing the frame loop with the line fast path was measured: no faster
    than these calls on CPython 3.11, so the layers stay separate.)

    Attributes:
        stdout: The stdout (and stdin) lines' assembler.
        stderr: The stderr lines' assembler.
    """

    __slots__ = ("_feeds", "_parser", "stderr", "stdout")

    def __init__(self, *, timestamps: bool, max_line_size: int) -> None:
        self.stdout = LineAssembler("stdout", timestamps=timestamps, max_line_size=max_line_size)
        self.stderr = LineAssembler("stderr", timestamps=timestamps, max_line_size=max_line_size)
        self._parser = FrameParser()
        # Indexed by frame stream id; stdin (0) counts as stdout, as in Docker's stdcopy.
        self._feeds = (self.stdout.feed_into, self.stdout.feed_into, self.stderr.feed_into)

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held."""
        return self._parser.pending

    @property
    def offset(self) -> int:
        """Stream offset of the first byte not yet decoded as part of a frame."""
        return self._parser.offset

    @property
    def truncated(self) -> int:
        """Lines cut at ``max_line_size`` so far, both sources."""
        return self.stdout.truncated + self.stderr.truncated

    def feed(self, data: bytes) -> list[LogLine]:
        """Add raw stream bytes; return the lines they complete, in arrival order.

        Raises:
            FrameError: A bad frame header, or a message without its timestamp.
        """
        out: list[LogLine] = []
        self.feed_into(data, out)
        return out

    def feed_into(self, data: bytes, out: list[LogLine]) -> None:
        """Like :meth:`feed`, appending to ``out``."""
        feeds = self._feeds
        for stream_id, payload in self._parser.feed(data):
            feeds[stream_id](payload, out)

    def flush(self) -> list[LogLine]:
        """Return the incomplete lines held at the end of a complete stream.

        Raises:
            FrameError: The stream ended inside a frame.
        """
        if self._parser.pending:
            msg = (
                f"the log stream ended inside a frame ({self._parser.pending} bytes of it "
                f"held at offset {self._parser.offset})"
            )
            raise FrameError(msg)
        return self.stdout.flush() + self.stderr.flush()


def _check_max_line_size(value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        msg = f"max_line_size must be a positive number of bytes, got {value!r}"
        raise ValueError(msg)
