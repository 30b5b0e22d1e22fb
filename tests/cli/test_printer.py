"""The terminal side of the command line, without a daemon: output format and the printer actor.

``tests/cli/test_main.py`` runs the real command against a daemon; these check
the pieces of :mod:`actorpool.cli.printer` directly, with in-memory streams.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from typing import Any, cast

import pykka
import pytest

from actorpool.cli.printer import (
    GetStats,
    LinePrinter,
    Names,
    Output,
    PrinterStats,
    Status,
    health_line,
    short,
    table,
)
from actorpool.messages import (
    ConnectionStatus,
    LogChunk,
    LogLine,
    LogStreamEnded,
    LogStreamError,
    PoolStatusReport,
)

CID_A = "a" * 64
CID_B = "b" * 64


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Closed(io.StringIO):
    """A stdout whose reader went away (``| head``)."""

    def write(self, s: str) -> int:
        raise BrokenPipeError


def _line(text: str, stream: str = "stdout", timestamp: int = 0) -> LogLine:
    return LogLine(stream, timestamp, text.encode())  # type: ignore[arg-type]


@pytest.fixture
def streams() -> tuple[io.StringIO, io.StringIO]:
    return io.StringIO(), io.StringIO()


@pytest.fixture
def colour_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")


# --------------------------------------------------------------------------- Output


def test_output_splits_streams_aligns_names_and_shows_timestamps(
    streams: tuple[io.StringIO, io.StringIO],
) -> None:
    out, err = streams
    output = Output(prefix=True, timestamps=True, stdout=out, stderr=err)
    output.reserve(["web", "database"])
    written = output.lines("web", (_line("up", timestamp=1706702400_123456789),))
    output.lines("database", (_line("oops", "stderr"), _line("x" * 3)))
    output.lines("web", (LogLine("stdout", 0, b"long", truncated=True),))
    assert written == 1
    assert out.getvalue().splitlines() == [
        "web      | 2024-01-31T12:00:00.123456789Z up",
        "database | xxx",
        "web      | long [truncated]",
    ]
    assert err.getvalue() == "database | oops\n"


def test_output_without_prefix_prints_the_bare_lines(
    streams: tuple[io.StringIO, io.StringIO],
) -> None:
    out, err = streams
    output = Output(prefix=False, timestamps=False, stdout=out, stderr=err)
    output.lines("web", (_line("one", timestamp=1706702400_000000000),))
    output.notice("web", "log stream ended (exited)")
    assert out.getvalue() == "one\n"
    assert err.getvalue() == "-- log stream ended (exited)\n"


def test_output_colours_each_stream_that_is_a_tty(colour_allowed: None) -> None:
    out, err = _Tty(), io.StringIO()
    output = Output(prefix=True, timestamps=False, stdout=out, stderr=err)
    output.lines("a", (_line("1"),))
    output.lines("bb", (_line("2"), _line("3", "stderr")))
    output.status("started")
    assert out.getvalue().splitlines() == ["\x1b[36ma | \x1b[0m1", "\x1b[33mbb | \x1b[0m2"]
    assert err.getvalue().splitlines() == ["bb | 3", "started"]  # not a TTY: plain


def test_no_color_turns_colour_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    out = _Tty()
    Output(prefix=True, timestamps=False, stdout=out, stderr=_Tty()).lines("a", (_line("1"),))
    assert out.getvalue() == "a | 1\n"


# --------------------------------------------------------------------------- tables


def test_table_aligns_columns_and_short_cuts_with_an_ellipsis() -> None:
    assert table([("ID", "NAME"), ("abc", "x"), ("d", "longer")]).splitlines() == [
        "ID    NAME",
        "abc   x",
        "d     longer",
    ]
    assert short("sleep 600000", 8, no_trunc=False) == "sleep 6…"
    assert short("sleep 600000", 8, no_trunc=True) == "sleep 600000"
    assert short("sleep", 8, no_trunc=False) == "sleep"


def test_health_line_says_degraded_when_a_ping_failed() -> None:
    connection = ConnectionStatus("c1", True, "open", False, 3, 12.0, None, 0)
    report = PoolStatusReport((connection,), 1, 1, 2, 1, 0, 0, False)
    assert health_line(report) == (
        "pool ok: 1 connections (min 1, max 2), 1 healthy, score 1.00, 1 breakers open, "
        "load 0.00, queue 0, 0 restarts"
    )
    assert health_line(report, ["ping: timed out"]).startswith("pool DEGRADED: ")


# --------------------------------------------------------------------------- LinePrinter


def _stats(printer: pykka.ActorRef[Any]) -> PrinterStats:
    # Answered after every message told before it: the actor's mailbox is FIFO.
    return cast(PrinterStats, printer.ask(GetStats()))


@pytest.fixture
def printers() -> Iterator[list[pykka.ActorRef[Any]]]:
    started: list[pykka.ActorRef[Any]] = []
    yield started
    for ref in started:
        ref.stop()


def test_printer_holds_lines_of_an_unknown_container_until_it_is_named(
    streams: tuple[io.StringIO, io.StringIO], printers: list[pykka.ActorRef[Any]]
) -> None:
    out, err = streams
    asked: list[str] = []
    output = Output(prefix=True, timestamps=False, stdout=out, stderr=err)
    printer = LinePrinter.start(output, names={CID_A: "known"}, resolve=asked.append)
    printers.append(printer)
    printer.tell(LogChunk(CID_B, (_line("held 1"),)))
    printer.tell(LogChunk(CID_B, (_line("held 2"),)))
    printer.tell(LogChunk(CID_A, (_line("now"),)))
    stats = _stats(printer)
    assert (asked, out.getvalue(), stats.lines) == ([CID_B], "known | now\n", 1)
    printer.tell(Names({CID_B: "later"}))
    printer.tell(Status("actorpool: a line of our own"))
    stats = _stats(printer)
    assert out.getvalue().splitlines() == ["known | now", "later | held 1", "later | held 2"]
    assert err.getvalue() == "actorpool: a line of our own\n"
    assert stats == PrinterStats(lines=3, streaming=2, ended=0, failed=0, broken=False)


def test_printer_sets_done_when_the_expected_streams_ended(
    streams: tuple[io.StringIO, io.StringIO], printers: list[pykka.ActorRef[Any]]
) -> None:
    out, err = streams
    done = threading.Event()
    output = Output(prefix=False, timestamps=False, stdout=out, stderr=err)
    printer = LinePrinter.start(output, expect=2, done=done, notices=True)
    printers.append(printer)
    printer.tell(LogChunk(CID_A, (_line("1"),)))
    printer.tell(LogStreamEnded(CID_A, "exited", exit_code=3))
    assert not _stats(printer).broken
    assert not done.is_set()
    printer.tell(LogStreamError(CID_B, "gave up"))
    assert done.wait(5)
    stats = _stats(printer)
    assert stats == PrinterStats(lines=1, streaming=0, ended=2, failed=1, broken=False)
    assert err.getvalue().splitlines() == [
        "-- log stream ended (exited 3)",
        "-- log stream failed: gave up",
    ]


def test_printer_does_not_announce_the_end_of_streams_when_the_pool_stops(
    streams: tuple[io.StringIO, io.StringIO], printers: list[pykka.ActorRef[Any]]
) -> None:
    out, err = streams
    output = Output(prefix=False, timestamps=False, stdout=out, stderr=err)
    printer = LinePrinter.start(output, notices=True)
    printers.append(printer)
    printer.tell(LogStreamEnded(CID_A, "pool stopped"))
    assert _stats(printer).ended == 1
    assert err.getvalue() == ""


def test_printer_stops_printing_and_sets_done_when_stdout_is_closed(
    printers: list[pykka.ActorRef[Any]],
) -> None:
    done = threading.Event()
    output = Output(prefix=False, timestamps=False, stdout=_Closed(), stderr=io.StringIO())
    printer = LinePrinter.start(output, done=done)
    printers.append(printer)
    printer.tell(LogChunk(CID_A, (_line("1"),)))
    assert done.wait(5)
    printer.tell(LogChunk(CID_A, (_line("2"),)))
    assert _stats(printer) == PrinterStats(lines=0, streaming=1, ended=0, failed=0, broken=True)
