"""Log lines as records the CLI writes (JSON lines or plain text), and reading them back.

One JSON object per line, keys in this order::

    {"time": "2026-01-31T12:00:00.123456789Z", "container_id": "...",
     "container_name": "web-1", "image": "nginx:1.27", "stream": "stdout",
     "line": "GET / 200", "labels": {"com.docker.compose.project": "shop"}}

``time`` is the daemon's own timestamp (RFC 3339, UTC, always nine digits),
``"truncated": true`` is added to a line cut at ``streams.max_line_size`` and
``"endpoint"`` when the lines come from several daemons (``docker.endpoints``). Everything
that is the same for all lines of a container is encoded once, when its
``LogStreamStarted`` arrives, so a line costs a timestamp, one C-level string
escape and a join: the writer keeps up with the daemon.

Reading back (:func:`replay`) is how a restarted monitor learns what it
wrote after its last saved positions: each record holds its container, source
and exact timestamp, which is all a cursor is (see :mod:`actorpool.cli.writer`).
"""

from __future__ import annotations

import json
import operator
import os
import re
import time
from collections.abc import Mapping, Sequence
from json.encoder import encode_basestring
from pathlib import Path
from typing import Final, Literal

from actorpool.logs.cursors import Cursor, advance
from actorpool.messages import LogLine, LogPosition, LogStreamStarted, position_key
from actorpool.transport.frames import parse_timestamp

__all__ = ["Format", "RecordEncoder", "Replayed", "format_time", "replay"]

Format = Literal["json", "text"]

_NS: Final = 1_000_000_000
_READ: Final = 1 << 20
_DATA: Final = operator.attrgetter("data")
_TRUNCATED: Final = operator.attrgetter("truncated")
# Bytes a JSON string cannot hold as they are.
_SPECIAL: Final = re.compile(rb'["\\\x00-\x1f\x7f-\xff]')


class _Seconds:
    """The ``YYYY-MM-DDTHH:MM:SS`` part of a timestamp, cached for the last second seen."""

    __slots__ = ("second", "text")

    def __init__(self) -> None:
        self.second = -1
        self.text = ""

    def __call__(self, second: int) -> str:
        if second != self.second:
            self.second = second
            self.text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return self.text


def format_time(ns: int, _seconds: _Seconds = _Seconds()) -> str:  # noqa: B008 (a cache)
    """RFC 3339 in UTC with nanoseconds, as the daemon writes it."""
    second, nanos = divmod(ns, _NS)
    return f"{_seconds(second)}.{nanos:09d}Z"


class RecordEncoder:
    """Turns a container's lines into the bytes of its records.

    Args:
        fmt: ``json`` (one object per line) or ``text`` (``name | line``).
        endpoints: Lines of several daemons go to one output: each record names
            its endpoint (a JSON ``endpoint`` field; ``endpoint/name`` in text).
        timestamps: Text records start with the time.
        several: The pool has several endpoints: each record names its container's
            (``LogStreamStarted.endpoint``): JSON's ``endpoint``, text's ``endpoint/name |``.
    """

    def __init__(self, fmt: Format, *, endpoints: bool = False, timestamps: bool = False):
        self.fmt = fmt
        self.endpoints = endpoints
        self.timestamps = timestamps
        self._parts: dict[str, tuple[str, str]] = {}
        self._fast: dict[str, dict[str, bytes]] = {}  # per container, per source: a % format
        self._seconds = _Seconds()

    def started(self, meta: LogStreamStarted) -> None:
        """Remember who a container is (name, image, labels) for its records."""
        cid = position_key(meta.endpoint, meta.container_id)
        if self.fmt == "text":
            shown = f"{meta.endpoint}/{meta.name}" if self.endpoints else meta.name
            self._parts[cid] = (f"{shown} | ", "")
            return
        mid = (
            f'","container_id":{encode_basestring(meta.container_id)},'
            f'"container_name":{encode_basestring(meta.name)},'
            f'"image":{encode_basestring(meta.image)},"stream":"'
        )
        labels = json.dumps(dict(meta.labels), ensure_ascii=False, sort_keys=True)
        tail = f',"labels":{labels}'
        if self.endpoints:
            tail += f',"endpoint":{encode_basestring(meta.endpoint)}'
        self._parts[cid] = (mid, tail)
        self._fast[cid] = {
            source: (
                '{"time":"%s.%09dZ'
                + f'{mid}{source}","line":"'.replace("%", "%%")
                + '%s"'
                + f"{tail}}}\n".replace("%", "%%")
            ).encode()
            for source in ("stdout", "stderr")
        }

    def encode(
        self, container_id: str, lines: Sequence[LogLine], endpoint: str = "default"
    ) -> bytes:
        """The records of ``lines`` of one container (of ``endpoint``), newline-terminated."""
        key = position_key(endpoint, container_id)
        parts = self._parts.get(key)
        if parts is None:  # no LogStreamStarted (a library user's stream): the id will do
            meta = LogStreamStarted(container_id, container_id[:12], "", {}, endpoint=endpoint)
            self.started(meta)
            parts = self._parts[key]
        first, last = parts
        seconds = self._seconds
        out: list[str] = []
        if self.fmt == "text":
            for line in lines:
                stamp = ""
                if self.timestamps:
                    second, nanos = divmod(line.timestamp, _NS)
                    stamp = f"{seconds(second)}.{nanos:09d}Z "
                cut = " [truncated]" if line.truncated else ""
                out.append(f"{stamp}{first}{line.data.decode('utf-8', 'replace')}{cut}\n")
            return "".join(out).encode()
        if not any(map(_TRUNCATED, lines)) and not _SPECIAL.search(b"".join(map(_DATA, lines))):
            return self._encode_plain(key, lines)
        for line in lines:
            second, nanos = divmod(line.timestamp, _NS)
            text = encode_basestring(line.data.decode("utf-8", "replace"))
            end = ',"truncated":true}\n' if line.truncated else "}\n"
            out.append(
                f'{{"time":"{seconds(second)}.{nanos:09d}Z{first}{line.stream}","line":'
                f"{text}{last}{end}"
            )
        return "".join(out).encode()

    def _encode_plain(self, key: str, lines: Sequence[LogLine]) -> bytes:
        # Printable ASCII without quotes or backslashes (most log lines): the bytes go into
        # the record as they are, one %-format per line (about 4x faster than the general way).
        formats = self._fast[key]
        out: list[bytes] = []
        append = out.append
        last_second = -1
        stamp = b""
        for line in lines:
            second, nanos = divmod(line.timestamp, _NS)
            if second != last_second:
                last_second = second
                stamp = self._seconds(second).encode()
            append(formats[line.stream] % (stamp, nanos, line.data))
        return b"".join(out)


class Replayed:
    """What :func:`replay` found after an offset of the output file.

    Attributes:
        positions: The positions, advanced over every complete record.
        records: Complete records read.
        end: The offset after the last complete record (the file's new end).
        torn: Bytes of a record cut short at the end (removed from the file).
    """

    def __init__(self, positions: dict[str, LogPosition], records: int, end: int, torn: int):
        self.positions = positions
        self.records = records
        self.end = end
        self.torn = torn


def _record_cursor(raw: bytes) -> tuple[str, LogLine]:
    data = json.loads(raw)
    cid = data["container_id"]
    stream = data["stream"]
    endpoint = data.get("endpoint", "default")
    if not isinstance(cid, str) or stream not in ("stdout", "stderr") or not endpoint:
        msg = "container_id, stream or endpoint missing"
        raise ValueError(msg)
    key = position_key(str(endpoint), cid)
    return key, LogLine(stream, parse_timestamp(str(data["time"]).encode()), b"")


def replay(path: Path, offset: int, positions: Mapping[str, LogPosition]) -> Replayed:
    """Advance ``positions`` over the JSON records of ``path`` after byte ``offset``.

    A record cut short at the very end (the monitor died inside a write) is
    cut off the file: it was never wholly written, and its line is read
    again from the daemon.

    Raises:
        ValueError: A complete line after ``offset`` is not a record of this
            writer (the message gives its offset).
    """
    cursors: dict[str, dict[str, Cursor]] = {}
    records = 0
    pos = offset
    with path.open("rb") as file:
        file.seek(offset)
        rest = b""
        while True:
            block = file.read(_READ)
            if not block:
                break
            rest += block
            lines = rest.split(b"\n")
            rest = lines.pop()
            for raw in lines:
                try:
                    cid, line = _record_cursor(raw)
                except (ValueError, KeyError, TypeError, AttributeError) as error:
                    msg = f"byte {pos} is not a JSON log record of actorpool ({error})"
                    raise ValueError(msg) from None
                own = cursors.get(cid)
                if own is None:
                    start = positions.get(cid)
                    own = cursors[cid] = start.cursors() if start is not None else {}
                advance(own, (line,))
                records += 1
                pos += len(raw) + 1
    if rest:
        os.truncate(path, pos)
    out = dict(positions)
    for cid, own in cursors.items():
        out[cid] = LogPosition.from_cursors(own)
    return Replayed(out, records, pos, len(rest))
