"""JSON and text records: exact fields, and reading them back into positions."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actorpool.cli.records import RecordEncoder, format_time, replay
from actorpool.logs.cursors import advance
from actorpool.messages import LogLine, LogPosition, LogStreamStarted
from actorpool.transport.frames import parse_timestamp

CID = "c" * 64
META = LogStreamStarted(CID, "web-1", "nginx:1.27", {"com.docker.compose.project": "shop"})


@given(st.integers(0, 4_102_444_800 * 10**9 - 1))
def test_times_are_rfc3339_with_nanoseconds_and_parse_back_exactly(ns: int) -> None:
    text = format_time(ns)
    assert parse_timestamp(text.encode()) == ns
    seconds = datetime.datetime.fromisoformat(text[:19] + "+00:00").timestamp()
    assert int(seconds) == ns // 10**9


@given(st.text(max_size=50), st.sampled_from(["stdout", "stderr"]), st.booleans())
def test_a_json_record_holds_every_field_and_any_text(text: str, stream: str, cut: bool) -> None:
    encoder = RecordEncoder("json", endpoints=True)
    encoder.started(attrs.evolve(META, endpoint="edge"))
    line = LogLine(stream, 1_700_000_000_123_456_789, text.encode("utf-8", "surrogatepass"), cut)  # type: ignore[arg-type]
    raw = encoder.encode(CID, [line], "edge")
    assert raw.endswith(b"\n")
    assert raw.count(b"\n") == 1
    record = json.loads(raw)
    expected = {
        "time": "2023-11-14T22:13:20.123456789Z",
        "container_id": CID,
        "container_name": "web-1",
        "image": "nginx:1.27",
        "stream": stream,
        "line": line.text,
        "labels": {"com.docker.compose.project": "shop"},
        "endpoint": "edge",
    }
    if cut:
        expected["truncated"] = True
    assert record == expected
    assert list(record)[:7] == list(expected)[:7]


def test_no_endpoint_field_for_a_single_daemon_and_text_records() -> None:
    encoder = RecordEncoder("json")
    encoder.started(META)
    assert "endpoint" not in json.loads(encoder.encode(CID, [LogLine("stdout", 5, b"x")]))
    text = RecordEncoder("text", timestamps=True)
    text.started(META)
    assert text.encode(CID, [LogLine("stderr", 5, b"hi")]) == (
        b"1970-01-01T00:00:00.000000005Z web-1 | hi\n"
    )


def _lines(n: int) -> list[LogLine]:
    # Several lines share a timestamp, both sources interleave.
    return [
        LogLine("stdout" if i % 3 else "stderr", 1_000 + i // 4, f"l{i}".encode()) for i in range(n)
    ]


def test_replay_advances_positions_exactly_as_delivery_did_and_cuts_a_torn_record(
    tmp_path: Path,
) -> None:
    encoder = RecordEncoder("json")
    encoder.started(META)
    lines = _lines(40)
    path = tmp_path / "out.jsonl"
    head, tail = encoder.encode(CID, lines[:17]), encoder.encode(CID, lines[17:])
    path.write_bytes(head + tail + encoder.encode(CID, [LogLine("stdout", 9_999, b"torn")])[:-9])
    cursors: dict[str, tuple[int, int]] = {}
    advance(cursors, lines[:17])
    saved = {CID: LogPosition.from_cursors(cursors), "other": LogPosition((1, 1), None)}
    replayed = replay(path, len(head), saved)
    advance(cursors, lines[17:])
    assert replayed.positions == {CID: LogPosition.from_cursors(cursors), "other": saved["other"]}
    assert replayed.records == 23
    assert replayed.end == len(head) + len(tail) == path.stat().st_size
    assert replayed.torn > 0


def test_with_several_endpoints_records_and_positions_are_kept_per_endpoint(
    tmp_path: Path,
) -> None:
    encoder = RecordEncoder("json", endpoints=True)
    for endpoint in ("a", "default"):
        encoder.started(attrs.evolve(META, endpoint=endpoint, name=f"web-{endpoint}"))
    path = tmp_path / "out.jsonl"
    line = LogLine("stdout", 7, b"x")
    path.write_bytes(encoder.encode(CID, [line], "a") + encoder.encode(CID, [line, line]))
    records = [json.loads(r) for r in path.read_bytes().splitlines()]
    assert [(r["endpoint"], r["container_name"]) for r in records] == [
        ("a", "web-a"),
        ("default", "web-default"),
        ("default", "web-default"),
    ]
    assert replay(path, 0, {}).positions == {
        f"a/{CID}": LogPosition((7, 1), None),
        CID: LogPosition((7, 2), None),
    }


def test_replay_refuses_a_line_that_is_not_a_record(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    encoder = RecordEncoder("json")
    encoder.started(META)
    good = encoder.encode(CID, _lines(2))
    path.write_bytes(good + b"hello world\n")
    with pytest.raises(ValueError, match=f"byte {len(good)} is not a JSON log record"):
        replay(path, 0, {})
    assert path.read_bytes() == good + b"hello world\n"


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["stdout", "stderr"]),
            st.integers(0, 2**62),
            st.binary(max_size=12) | st.text(max_size=8).map(str.encode) | st.just(b"a\nb"),
            st.booleans(),
        ),
        max_size=8,
    )
)
def test_a_chunk_encodes_as_its_lines_do_one_by_one_whichever_path_it_takes(
    raw: list[tuple[str, int, bytes, bool]],
) -> None:
    # Plain lines take a fast path (bytes as they are); any other line sends its whole
    # chunk down the general one. Both must write the same records.
    encoder = RecordEncoder("json")
    encoder.started(attrs.evolve(META, labels={"k%": "100%"}))
    lines = [LogLine(s, t, d, cut) for s, t, d, cut in raw]  # type: ignore[arg-type]
    chunk = encoder.encode(CID, lines)
    assert chunk == b"".join(encoder.encode(CID, [line]) for line in lines)
    records = [json.loads(r) for r in chunk.splitlines()]
    assert [r["line"] for r in records] == [line.text for line in lines]
    assert [r["labels"] for r in records] == [{"k%": "100%"}] * len(lines)
