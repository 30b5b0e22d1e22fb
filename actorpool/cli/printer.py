"""What the ``actorpool`` command writes to the terminal, and the actor that writes it.

:class:`Output` turns log lines into text: stdout lines to stdout and stderr
lines to stderr, prefixed by a coloured, aligned container name when there are
several, with optional timestamps. :class:`LinePrinter` is the subscriber
actor the pool's log streams send their ``LogChunk`` messages to; it is the
only writer once it runs, so lines of different containers never interleave
mid-line. :func:`table`, :func:`health_table` and :func:`health_line` format
``ps`` and ``health``.

This is apart from :mod:`actorpool.cli.main` because it is the one part of the
command line with state and an actor of its own, and it needs neither a
parser nor a daemon: it can be read, and tested, on its own. The commands
decide *what* to print; this module decides *how* it looks.
"""

from __future__ import annotations

import datetime
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TextIO

import attrs

from actorpool.engine.actor import Actor
from actorpool.messages import (
    LogChunk,
    LogLine,
    LogStreamEnded,
    LogStreamError,
    PoolStatusReport,
)

__all__ = [
    "GetStats",
    "LinePrinter",
    "Names",
    "Output",
    "PrinterStats",
    "Status",
    "colour_level",
    "health_line",
    "health_table",
    "short",
    "table",
]

# The reason of the LogStreamEnded every stream sends when the pool stops: not news.
_POOL_STOPPED = "pool stopped"

# Name colours, in order of first appearance (docker compose's palette).
_PALETTE = ("36", "33", "32", "35", "34", "96", "93", "92", "95", "94")

# A level word near the start of a line ("ERROR [http] ...", "2024-01-31 12:00 WARN x",
# "level=error"), and its colour: errors red, warnings yellow, debug dim.
_LEVEL = re.compile(
    r"^(.{0,48}?)\b(FATAL|CRITICAL|ERROR|WARNING|WARN|INFO|DEBUG|TRACE)\b",
    re.IGNORECASE,
)
_LEVEL_COLOURS = {
    "FATAL": "1;31", "CRITICAL": "1;31", "ERROR": "31",
    "WARNING": "33", "WARN": "33", "INFO": "", "DEBUG": "2", "TRACE": "2",
}  # fmt: skip


# --------------------------------------------------------------------------- output


def _colour_enabled(stream: TextIO) -> bool:
    # https://no-color.org: any non-empty NO_COLOR turns colour off; FORCE_COLOR
    # (https://force-color.org) turns it on for a pipe (CI logs, `less -R`). NO_COLOR
    # wins when both are set, as in CPython's own colouring.
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    if os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def colour_level(text: str) -> str:
    """``text`` with its level word (ERROR, WARN, ...) coloured, if it has one near the start."""
    match = _LEVEL.match(text)
    if match is None:
        return text
    colour = _LEVEL_COLOURS[match[2].upper()]
    if not colour:
        return text
    return f"{match[1]}\x1b[{colour}m{match[2]}\x1b[0m{text[match.end() :]}"


def _format_timestamp(ns: int) -> str:
    seconds, nanos = divmod(ns, 1_000_000_000)
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{nanos:09d}Z"


class Output:
    """Writes log lines: stdout lines to stdout, stderr lines to stderr, name-prefixed.

    Colour is decided per stream (a TTY, or ``FORCE_COLOR``; never with
    ``NO_COLOR``), so ``actorpool logs x 2>err.txt`` keeps colour codes out of
    the file. With colour, container names and the lines' levels are coloured.
    Not thread-safe: once a :class:`LinePrinter` writes to it, every line goes
    through that actor (``Status`` for actorpool's own lines).
    """

    def __init__(
        self,
        *,
        prefix: bool,
        timestamps: bool,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
    ) -> None:
        self.stdout = sys.stdout if stdout is None else stdout
        self.stderr = sys.stderr if stderr is None else stderr
        self.prefix = prefix
        self.timestamps = timestamps
        self._colour = {
            "stdout": _colour_enabled(self.stdout),
            "stderr": _colour_enabled(self.stderr),
        }
        self._colours: dict[str, str] = {}
        self._width = 0

    def reserve(self, names: Iterable[str]) -> None:
        """Widen the name column for ``names`` now, so later lines stay aligned."""
        self._width = max([self._width, *(len(name) for name in names)])

    def _prefix(self, name: str, stream: str) -> str:
        if not self.prefix:
            return ""
        colour = self._colours.setdefault(name, _PALETTE[len(self._colours) % len(_PALETTE)])
        self._width = max(self._width, len(name))
        label = f"{name:<{self._width}} | "
        return f"\x1b[{colour}m{label}\x1b[0m" if self._colour[stream] else label

    def lines(self, name: str, lines: Sequence[LogLine], *, flush: bool = True) -> int:
        """Write ``lines`` of container ``name``; return how many were written.

        ``flush`` (the default) pushes them out at once, as following needs;
        a one-off dump of a log flushes once at the end instead.
        """
        touched: set[TextIO] = set()
        for line in lines:
            target = self.stderr if line.stream == "stderr" else self.stdout
            stamp = (
                f"{_format_timestamp(line.timestamp)} "
                if self.timestamps and line.timestamp
                else ""
            )
            cut = " [truncated]" if line.truncated else ""
            text = colour_level(line.text) if self._colour[line.stream] else line.text
            target.write(f"{self._prefix(name, line.stream)}{stamp}{text}{cut}\n")
            touched.add(target)
        if flush:
            for target in touched:
                target.flush()
        return len(lines)

    def notice(self, name: str, text: str) -> None:
        """A line about a stream (ended, failed), on stderr, dimmed on a TTY."""
        body = f"-- {text}"
        if self._colour["stderr"]:
            body = f"\x1b[2m{body}\x1b[0m"
        self.stderr.write(f"{self._prefix(name, 'stderr')}{body}\n")
        self.stderr.flush()

    def status(self, text: str) -> None:
        """A line of actorpool's own (startup, health summary) on stderr."""
        if self._colour["stderr"]:
            text = f"\x1b[1m{text}\x1b[0m"
        self.stderr.write(f"{text}\n")
        self.stderr.flush()


# --------------------------------------------------------------------------- the printer actor


@attrs.frozen
class Names:
    """Tell the printer the names of containers (id -> name)."""

    names: Mapping[str, str]


@attrs.frozen
class Status:
    """Tell the printer to print one of actorpool's own lines (a health summary) on stderr."""

    text: str


@attrs.frozen
class GetStats:
    """Ask the printer for a :class:`PrinterStats`."""


@attrs.frozen
class PrinterStats:
    """What a :class:`LinePrinter` has seen so far.

    Attributes:
        lines: Lines printed.
        streaming: Containers whose stream delivered and has not ended.
        ended: Streams that ended (any reason).
        failed: Streams that gave up with an error.
        broken: The output was closed (e.g. a pipe to ``head``); nothing more is printed.
    """

    lines: int
    streaming: int
    ended: int
    failed: int
    broken: bool


class LinePrinter(Actor):
    """A subscriber actor that prints the ``LogChunk`` messages the pool sends it.

    The pool's streams name containers by id. Chunks of a container whose
    name the printer does not know yet are held, and ``resolve(id)`` is
    called once (from the printer's thread; it must not block): whoever
    resolves it tells the printer ``Names`` and the held chunks are printed
    in order. Resolving is done by the CLI's main thread, because an actor
    must never wait on another actor's reply.

    Args:
        output: Where lines go.
        names: Known container names by id.
        resolve: Called with an unknown container id; ``None`` prints short ids.
        expect: Set ``done`` once this many streams have ended (``logs -f``).
        done: Set when ``expect`` streams ended or the output broke.
        notices: Print a line on stderr when a stream ends.
    """

    def __init__(
        self,
        output: Output,
        *,
        names: Mapping[str, str] | None = None,
        resolve: Callable[[str], None] | None = None,
        expect: int | None = None,
        done: threading.Event | None = None,
        notices: bool = False,
    ) -> None:
        super().__init__()
        self._output = output
        self._names = dict(names or {})
        output.reserve(self._names.values())
        self._resolve = resolve
        self._expect = expect
        self._done = done
        self._notices = notices
        self._held: dict[str, list[Any]] = {}
        self._streaming: set[str] = set()
        self._lines = 0
        self._ended = 0
        self._failed = 0
        self._broken = False

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, LogChunk | LogStreamEnded | LogStreamError):
            self._stream_message(message)
        elif isinstance(message, Names):
            self._names.update(message.names)
            self._output.reserve(message.names.values())
            for cid in message.names:
                for held in self._held.pop(cid, []):
                    self._stream_message(held)
        elif isinstance(message, Status):
            self._guarded(self._output.status, message.text)
        elif isinstance(message, GetStats):
            return PrinterStats(
                self._lines, len(self._streaming), self._ended, self._failed, self._broken
            )
        return None

    def _stream_message(self, message: LogChunk | LogStreamEnded | LogStreamError) -> None:
        cid = message.container_id
        if not cid:  # the end of a FollowContainers subscription as a whole
            self._guarded(self._print, "actorpool", message)
            return
        if cid in self._held:
            self._held[cid].append(message)
            return
        name = self._names.get(cid)
        if name is None and self._resolve is not None:
            self._held[cid] = [message]
            self._resolve(cid)
            return
        self._guarded(self._print, name or cid[:12], message)

    def _guarded(self, write: Callable[..., None], *args: Any) -> None:
        try:
            write(*args)
        except OSError:  # stdout closed (a pipe to `head`): stop printing, let the CLI end
            self._broken = True
            if self._done is not None:
                self._done.set()

    def _print(self, name: str, message: LogChunk | LogStreamEnded | LogStreamError) -> None:
        cid = message.container_id
        if isinstance(message, LogChunk):
            if self._broken:
                return
            self._streaming.add(cid)
            self._lines += self._output.lines(name, message.lines)
            return
        self._streaming.discard(cid)
        self._ended += 1
        if isinstance(message, LogStreamError):
            self._failed += 1
            self._output.notice(name, f"log stream failed: {message.error}")
        elif self._notices and message.reason != _POOL_STOPPED:
            code = "" if message.exit_code is None else f" {message.exit_code}"
            self._output.notice(name, f"log stream ended ({message.reason}{code})")
        if self._expect is not None and self._ended >= self._expect and self._done is not None:
            self._done.set()


# --------------------------------------------------------------------------- tables


def short(text: str, width: int, no_trunc: bool) -> str:
    """``text`` cut to ``width`` characters with an ellipsis, unless ``no_trunc`` (``ps``)."""
    return text if no_trunc or len(text) <= width else text[: width - 1] + "…"


def table(rows: Sequence[Sequence[str]]) -> str:
    """``rows`` (the first is the header) as aligned columns, like ``docker ps`` prints them."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _ago(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def health_table(report: PoolStatusReport) -> str:
    """One row per connection of ``report``: health, breaker, score, usage and age."""
    now = time.time()
    rows = [
        (
            "CONNECTION",
            "HEALTH",
            "BREAKER",
            "SCORE",
            "IN USE",
            "USES",
            "FAILURES",
            "AGE",
            "LAST USED",
        )
    ]
    for c in report.connections:
        rows.append(
            (
                c.id,
                c.state,
                c.breaker,
                f"{c.score:.2f}",
                "yes" if c.in_use else "no",
                str(c.usage_count),
                str(c.consecutive_failures),
                _ago(c.age),
                "never" if c.last_used is None else _ago(max(0.0, now - c.last_used)) + " ago",
            )
        )
    return table(rows)


def health_line(report: PoolStatusReport, failures: Sequence[str] = ()) -> str:
    """The pool in one line; ``DEGRADED`` when it is, or when any of ``failures`` (pings) failed."""
    state = "DEGRADED" if report.degraded or report.healthy == 0 or failures else "ok"
    breakers = sum(c.breaker == "open" for c in report.connections)
    return (
        f"pool {state}: {report.size} connections (min {report.min_size}, max "
        f"{report.max_size}), {report.healthy} healthy, score {report.score:.2f}, {breakers} "
        f"breakers open, load {report.load:.2f}, queue {report.queue_length}, "
        f"{report.restarts} restarts"
    )
