"""Exact resume cursors (actorpool.logs.cursors): pure functions, no daemon needed."""

from __future__ import annotations

from actorpool.logs.cursors import advance, since_ns
from actorpool.messages import LogLine


def test_advance_counts_lines_sharing_the_last_timestamp_per_source() -> None:
    cursors: dict[str, tuple[int, int]] = {}
    batch = [
        LogLine("stdout", 5, b"a"),
        LogLine("stderr", 6, b"x"),
        LogLine("stdout", 7, b"b"),
        LogLine("stdout", 7, b"c"),
    ]
    advance(cursors, batch)
    assert cursors == {"stdout": (7, 2), "stderr": (6, 1)}
    advance(cursors, [LogLine("stdout", 7, b"d")])  # the run continues across batches
    assert cursors["stdout"] == (7, 3)
    advance(cursors, [LogLine("stdout", 8, b"e")])
    assert cursors["stdout"] == (8, 1)


def test_advance_skips_the_other_source_inside_a_run() -> None:
    cursors: dict[str, tuple[int, int]] = {"stderr": (3, 1)}
    batch = [
        LogLine("stdout", 9, b"a"),
        LogLine("stderr", 9, b"x"),
        LogLine("stdout", 9, b"b"),
        LogLine("stdout", 9, b"c"),
    ]
    advance(cursors, batch)
    assert cursors == {"stdout": (9, 3), "stderr": (9, 1)}
    advance(cursors, [LogLine("stderr", 9, b"y")])  # stdout untouched by a stderr-only batch
    assert cursors == {"stdout": (9, 3), "stderr": (9, 2)}
    advance(cursors, [])
    assert cursors == {"stdout": (9, 3), "stderr": (9, 2)}


def test_since_ns_reads_both_forms_exactly() -> None:
    assert since_ns("1700000000.000000123") == 1_700_000_000_000_000_123
    assert since_ns("1700000000") == 1_700_000_000 * 10**9
    assert since_ns(1700000000) == 1_700_000_000 * 10**9
    assert since_ns(None) is None
