"""Property tests of the pure log-stream decoders in actorpool.transport.frames.

The encoders below reproduce what dockerd 20.10 sends (checked on the real
daemon by tests/transport/test_logread.py): one frame per log message, messages cut
into 16384-byte pieces that all carry the line's timestamp, and for TTY
containers the same messages unframed with CRLF line ends.
"""

from __future__ import annotations

import calendar
import datetime
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actorpool.errors import StreamError
from actorpool.messages import LogLine
from actorpool.transport.frames import (
    MAX_FRAME_SIZE,
    ChunkedDecoder,
    FrameError,
    FrameParser,
    LineAssembler,
    MultiplexedDecoder,
    TtyAssembler,
    format_since,
    parse_timestamp,
)

from encoders import BASE_NS, PIECE, chunked, frame, line_contents, messages, rfc3339, split_at

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- FrameParser -----------------------------------------------------------------------------


frames_strategy = st.lists(
    st.tuples(
        st.integers(0, 2),
        st.one_of(st.binary(max_size=64), st.binary(min_size=1000, max_size=40000)),
    ),
    max_size=30,
)


@SETTINGS
@given(frames=frames_strategy, cuts=st.lists(st.integers(0, 10**7), max_size=40))
def test_frames_split_anywhere_decode_like_one_feed(
    frames: list[tuple[int, bytes]], cuts: list[int]
) -> None:
    data = b"".join(frame(sid, payload) for sid, payload in frames)
    whole = FrameParser()
    assert whole.feed(data) == frames
    assert whole.pending == 0
    parser = FrameParser()
    got: list[tuple[int, bytes]] = []
    for piece in split_at(data, cuts):
        got.extend(parser.feed(piece))
    assert got == frames
    assert parser.pending == 0
    assert parser.offset == len(data)


@SETTINGS
@given(frames=frames_strategy.filter(bool), data=st.data())
def test_truncated_frame_stays_pending(
    frames: list[tuple[int, bytes]], data: st.DataObject
) -> None:
    encoded = [frame(sid, payload) for sid, payload in frames]
    stream = b"".join(encoded)
    keep = data.draw(st.integers(0, len(stream) - 1))
    parser = FrameParser()
    got = parser.feed(stream[:keep])
    complete, size = 0, 0
    while complete < len(encoded) and size + len(encoded[complete]) <= keep:
        size += len(encoded[complete])
        complete += 1
    assert got == frames[:complete]
    assert parser.pending == keep - size
    # The rest completes them, one byte at a time even.
    rest = [parser.feed(stream[i : i + 1]) for i in range(keep, len(stream))]
    assert [f for r in rest for f in r] == frames[complete:]
    assert parser.pending == 0


@st.composite
def bad_headers(draw: st.DrawFn) -> tuple[bytes, str]:
    kind = draw(st.sampled_from(["stream", "padding", "length"]))
    sid = draw(st.integers(0, 2))
    padding = b"\0\0\0"
    length = draw(st.integers(0, 1000))
    if kind == "stream":
        sid = draw(st.integers(3, 255))
    elif kind == "padding":
        padding = draw(st.binary(min_size=3, max_size=3).filter(lambda b: b != b"\0\0\0"))
    else:
        length = draw(st.integers(MAX_FRAME_SIZE + 1, 2**32 - 1))
    return bytes([sid]) + padding + struct.pack(">L", length), kind


@SETTINGS
@given(
    good=frames_strategy,
    bad=bad_headers(),
    tail=st.binary(max_size=100),
    cuts=st.lists(st.integers(0, 10**6), max_size=5),
)
def test_bad_header_raises_frame_error_with_offset(
    good: list[tuple[int, bytes]],
    bad: tuple[bytes, str],
    tail: bytes,
    cuts: list[int],
) -> None:
    header, _kind = bad
    prefix = b"".join(frame(sid, payload) for sid, payload in good)
    parser = FrameParser()
    pieces = split_at(prefix + header + tail, cuts)

    def feed_all() -> None:
        for piece in pieces:
            parser.feed(piece)

    with pytest.raises(FrameError) as caught:
        feed_all()
    assert f"offset {len(prefix)}:" in str(caught.value)
    assert header.hex(" ") in str(caught.value)
    assert isinstance(caught.value, StreamError)
    # The parser stays failed: nothing after a bad header can be trusted.
    with pytest.raises(FrameError):
        parser.feed(frame(1, b"ok\n"))


def test_tty_bytes_read_as_frames_fail_at_offset_zero() -> None:
    with pytest.raises(FrameError, match=r"offset 0: 32 30 32 34 .*TTY"):
        FrameParser().feed(b"2024-05-01T12:00:00.000000000Z hello\r\n")


def test_zero_length_and_stdin_frames_pass_through() -> None:
    assert FrameParser().feed(frame(0, b"") + frame(0, b"x")) == [(0, b""), (0, b"x")]


# --- ChunkedDecoder --------------------------------------------------------------------------


@SETTINGS
@given(
    bodies=st.lists(
        st.one_of(st.binary(min_size=1, max_size=60), st.binary(min_size=1000, max_size=70000)),
        max_size=20,
    ),
    cuts=st.lists(st.integers(0, 10**7), max_size=40),
    upper=st.booleans(),
    extension=st.booleans(),
    after=st.binary(max_size=10),
)
def test_chunked_body_split_anywhere_decodes_exactly(
    bodies: list[bytes], cuts: list[int], upper: bool, extension: bool, after: bytes
) -> None:
    data = chunked(bodies, upper=upper, extension=extension)
    decoder = ChunkedDecoder()
    got = []
    for piece in split_at(data + after, cuts):
        got.append(decoder.feed(piece))
    assert b"".join(got) == b"".join(bodies)
    assert decoder.done


@SETTINGS
@given(bodies=st.lists(st.binary(min_size=1, max_size=100), min_size=1, max_size=5), data=st.data())
def test_chunked_body_cut_short_is_not_done(bodies: list[bytes], data: st.DataObject) -> None:
    encoded = chunked(bodies)
    keep = data.draw(st.integers(0, len(encoded) - 4))  # before the last chunk's "0\r\n"
    decoder = ChunkedDecoder()
    got = decoder.feed(encoded[:keep])
    assert b"".join(bodies).startswith(got)
    assert not decoder.done


@pytest.mark.parametrize("size_line", [b"zz\r\n", b"-5\r\n", b"1" * 2000])
def test_bad_chunk_size_is_a_frame_error(size_line: bytes) -> None:
    with pytest.raises(FrameError, match="chunk-size line"):
        ChunkedDecoder().feed(size_line)


# --- LineAssembler ---------------------------------------------------------------------------


@SETTINGS
@given(
    contents=st.lists(line_contents(), max_size=8),
    timestamps=st.booleans(),
    max_line_size=st.one_of(st.integers(1, 100), st.integers(PIECE - 50, 4 * PIECE)),
)
def test_pieces_reassemble_into_lines_and_long_lines_are_cut(
    contents: list[bytes], timestamps: bool, max_line_size: int
) -> None:
    stamps = [BASE_NS + 1_000 * i + 7 for i in range(len(contents))]
    assembler = LineAssembler("stderr", timestamps=timestamps, max_line_size=max_line_size)
    got: list[LogLine] = []
    for content, ts in zip(contents, stamps, strict=True):
        for message in messages(content, ts if timestamps else None):
            got.extend(assembler.feed(message))
    expected = [
        LogLine(
            "stderr",
            ts if timestamps else 0,
            content[:max_line_size],
            len(content) > max_line_size,
        )
        for content, ts in zip(contents, stamps, strict=True)
    ]
    assert got == expected
    assert assembler.truncated == sum(len(c) > max_line_size for c in contents)
    assert assembler.flush() == []


@SETTINGS
@given(contents=st.lists(line_contents(), min_size=1, max_size=5), timestamps=st.booleans())
def test_several_messages_in_one_payload(contents: list[bytes], timestamps: bool) -> None:
    prefix = rfc3339(BASE_NS) + b" " if timestamps else b""
    payload = b"".join(prefix + c + b"\n" for c in contents)
    assembler = LineAssembler("stdout", timestamps=timestamps, max_line_size=10 * PIECE)
    ts = BASE_NS if timestamps else 0
    assert assembler.feed(payload) == [LogLine("stdout", ts, c) for c in contents]


def test_flush_returns_a_line_left_without_newline() -> None:
    assembler = LineAssembler("stdout", timestamps=True, max_line_size=100)
    assert assembler.feed(rfc3339(BASE_NS) + b" no newline") == []
    assert assembler.pending == len(b"no newline")
    assert assembler.flush() == [LogLine("stdout", BASE_NS, b"no newline")]
    assert assembler.flush() == []


def test_line_exactly_at_the_limit_is_not_truncated_even_across_pieces() -> None:
    assembler = LineAssembler("stdout", timestamps=False, max_line_size=10)
    assert assembler.feed(b"0123456789") == []
    assert assembler.feed(b"\n") == [LogLine("stdout", 0, b"0123456789")]
    assert assembler.feed(b"0123456789") == []
    assert assembler.feed(b"X") == [LogLine("stdout", 0, b"0123456789", True)]
    assert assembler.feed(b"rest of it\nnext\n") == [LogLine("stdout", 0, b"next")]
    assert assembler.truncated == 1


def test_message_without_timestamp_is_a_frame_error() -> None:
    assembler = LineAssembler("stdout", timestamps=True, max_line_size=100)
    with pytest.raises(
        FrameError, match="without a timestamp prefix: b'no-space-in-the-first-forty"
    ):
        assembler.feed(b"no-space-in-the-first-forty-bytes-of-this-message at all\n")
    with pytest.raises(
        FrameError, match="valid timestamp prefix: not an RFC 3339 timestamp: b'hello'"
    ):
        assembler.feed(b"hello world\n")
    with pytest.raises(FrameError, match="valid timestamp"):
        assembler.feed(b"2024-99-01T12:00:00.000000000Z hello\n")


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="stream"):
        LineAssembler("stdin", timestamps=True, max_line_size=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_line_size"):
        LineAssembler("stdout", timestamps=True, max_line_size=0)
    with pytest.raises(ValueError, match="max_line_size"):
        TtyAssembler(timestamps=True, max_line_size=-1)


# --- MultiplexedDecoder ---------------------------------------------------------------------


@SETTINGS
@given(
    lines=st.lists(st.tuples(st.sampled_from([1, 2, 0]), line_contents()), max_size=12),
    timestamps=st.booleans(),
    max_line_size=st.one_of(st.integers(1, 100), st.integers(PIECE - 50, 4 * PIECE)),
    cuts=st.lists(st.integers(0, 10**6), max_size=30),
    odd=st.booleans(),
    last=st.binary(max_size=20).map(lambda b: b.replace(b"\n", b"")),
)
def test_multiplexed_decoder_matches_parser_and_assemblers(
    lines: list[tuple[int, bytes]],
    timestamps: bool,
    max_line_size: int,
    cuts: list[int],
    odd: bool,
    last: bytes,
) -> None:
    # Pieces of stdout and stderr lines interleave, as the daemon's two copiers do.
    queues: dict[int, list[bytes]] = {1: [], 2: []}
    frames = []
    for i, (sid, content) in enumerate(lines):
        ts = BASE_NS + i * 1_000_003 if timestamps else None
        msgs = messages(content, ts)
        if odd and ts is not None:  # a valid RFC 3339 form other than the daemon's
            msgs = [rfc3339(ts)[:-1].replace(b"T", b"t") + b"+00:00" + m[30:] for m in msgs]
        queues[max(sid, 1)].extend(frame(sid, m) for m in msgs)
        if i % 3 == 2:
            frames.extend(queues[1] + queues[2])
            queues = {1: [], 2: []}
    frames.extend(queues[1] + queues[2])
    if last:
        frames.append(frame(2, (rfc3339(BASE_NS) + b" " if timestamps else b"") + last))
    data = b"".join(frames)

    parser = FrameParser()
    out = LineAssembler("stdout", timestamps=timestamps, max_line_size=max_line_size)
    err = LineAssembler("stderr", timestamps=timestamps, max_line_size=max_line_size)
    expected: list[LogLine] = []
    for sid, payload in parser.feed(data):
        (err if sid == 2 else out).feed_into(payload, expected)
    expected += out.flush() + err.flush()

    decoder = MultiplexedDecoder(timestamps=timestamps, max_line_size=max_line_size)
    got: list[LogLine] = []
    for piece in split_at(data, cuts):
        decoder.feed_into(piece, got)
    assert decoder.pending == 0
    assert decoder.offset == len(data)
    got += decoder.flush()
    assert got == expected
    assert [line.data for line in got if not line.truncated and line.stream == "stdout"] == [
        c for sid, c in lines if sid != 2 and len(c) <= max_line_size
    ]
    assert decoder.truncated == out.truncated + err.truncated


def test_multiplexed_decoder_bad_header_names_the_offset() -> None:
    decoder = MultiplexedDecoder(timestamps=False, max_line_size=100)
    good = frame(1, b"a\n") + frame(2, b"b\n")
    assert decoder.feed(good[:5]) == []
    with pytest.raises(FrameError, match=f"offset {len(good)}:"):
        decoder.feed(good[5:] + b"\x07\0\0\0\0\0\0\1x")
    cut = MultiplexedDecoder(timestamps=False, max_line_size=9)
    assert cut.feed(b"\1\0\0") == []
    with pytest.raises(FrameError, match="ended inside a frame"):
        cut.flush()


# --- TtyAssembler ----------------------------------------------------------------------------


@st.composite
def tty_contents(draw: st.DrawFn) -> bytes:
    content = draw(line_contents())
    if draw(st.booleans()):
        content += b"\r"  # a program that printed "\r\n" (the TTY makes it "\r\r\n")
    return content


@SETTINGS
@given(
    contents=st.lists(tty_contents(), max_size=6),
    timestamps=st.booleans(),
    max_line_size=st.one_of(st.integers(1, 100), st.integers(PIECE - 50, 4 * PIECE)),
    cuts=st.lists(st.integers(0, 10**6), max_size=30),
    last=st.binary(max_size=20).map(lambda b: b.replace(b"\n", b"")),
)
def test_tty_lines_split_anywhere_reassemble(
    contents: list[bytes],
    timestamps: bool,
    max_line_size: int,
    cuts: list[int],
    last: bytes,
) -> None:
    stamps = [BASE_NS + 1_000_000 * i for i in range(len(contents) + 1)]
    stream = b"".join(
        m
        for content, ts in zip(contents, stamps, strict=False)
        for m in messages(content, ts if timestamps else None, newline=b"\r\n")
    )
    if last:  # output left without a newline at the end (the daemon's final partial message)
        stream += (rfc3339(stamps[-1]) + b" " if timestamps else b"") + last
    assembler = TtyAssembler(timestamps=timestamps, max_line_size=max_line_size)
    got: list[LogLine] = []
    for piece in split_at(stream, cuts):
        got.extend(assembler.feed(piece))
    got.extend(assembler.flush())
    expected_contents = [*contents, last] if last else contents
    expected = [
        LogLine(
            "stdout",
            ts if timestamps else 0,
            content[:max_line_size],
            len(content) > max_line_size,
        )
        for content, ts in zip(expected_contents, stamps, strict=False)
    ]
    assert got == expected
    assert assembler.truncated == sum(e.truncated for e in expected)


def test_tty_strips_one_cr_and_keeps_bare_cr() -> None:
    assembler = TtyAssembler(timestamps=False, max_line_size=100)
    assert assembler.feed(b"a\rb\r\nc\r\r\n\r\n") == [
        LogLine("stdout", 0, b"a\rb"),
        LogLine("stdout", 0, b"c\r"),
        LogLine("stdout", 0, b""),
    ]


def test_tty_timestamp_split_across_feeds() -> None:
    data = rfc3339(BASE_NS + 5) + b" hello\r\n"
    assembler = TtyAssembler(timestamps=True, max_line_size=100)
    assert assembler.feed(data[:10]) == []
    assert assembler.feed(data[10:31]) == []
    assert assembler.feed(data[31:]) == [LogLine("stdout", BASE_NS + 5, b"hello")]


def test_tty_stream_ending_inside_a_timestamp_is_a_frame_error() -> None:
    assembler = TtyAssembler(timestamps=True, max_line_size=100)
    assembler.feed(b"2024-05-01T12:00")
    with pytest.raises(FrameError, match="inside a timestamp"):
        assembler.flush()


def test_tty_long_incomplete_line_is_cut_while_it_arrives() -> None:
    # Memory stays bounded: the cut happens before the newline arrives.
    assembler = TtyAssembler(timestamps=False, max_line_size=1000)
    got = []
    for _ in range(10):
        got.extend(assembler.feed(b"x" * 500))
    assert got == [LogLine("stdout", 0, b"x" * 1000, True)]
    assert assembler.pending < 2000
    assert assembler.feed(b"yy\r\nnext\r\n") == [LogLine("stdout", 0, b"next")]


# --- timestamps ------------------------------------------------------------------------------


@settings(max_examples=300)
@given(
    when=st.datetimes(
        min_value=datetime.datetime(1970, 1, 1), max_value=datetime.datetime(9999, 12, 31)
    ),
    nanos=st.integers(0, 10**9 - 1),
)
def test_parse_timestamp_of_the_daemon_format(when: datetime.datetime, nanos: int) -> None:
    text = f"{when:%Y-%m-%dT%H:%M:%S}.{nanos:09d}Z".encode()
    expected = calendar.timegm(when.timetuple()) * 10**9 + nanos
    assert parse_timestamp(text) == expected
    assert parse_timestamp(text) == expected  # the cached path gives the same
    assert rfc3339(expected) == text


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        (b"2024-05-01T12:00:00Z", BASE_NS),
        (b"2024-05-01T12:00:00.5Z", BASE_NS + 500_000_000),
        (b"2024-05-01T12:00:00.000000001Z", BASE_NS + 1),
        (b"2024-05-01T12:00:00.123456789Z", BASE_NS + 123_456_789),
        (b"2024-05-01T14:00:00.25+02:00", BASE_NS + 250_000_000),
        (b"2024-05-01T11:30:00-00:30", BASE_NS),
    ],
)
def test_parse_timestamp_other_rfc3339_forms(text: bytes, ns: int) -> None:
    assert parse_timestamp(text) == ns


@pytest.mark.parametrize(
    "text",
    [
        b"",
        b"garbage",
        b"2024-13-01T12:00:00.000000000Z",
        b"2024-02-30T12:00:00.000000000Z",
        b"2024-05-01T12:00:00.1234567890Z",
        b"2024-05-01T12:00:00.12345678_Z",
        b"2024-05-01T12:00:00.+12345678Z",
        b"2024-05-01T12:00:00",
    ],
)
def test_parse_timestamp_rejects_garbage(text: bytes) -> None:
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_timestamp(text)


@given(ns=st.integers(0, 2**63))
def test_format_since_is_exact(ns: int) -> None:
    text = format_since(ns)
    seconds, _, nanos = text.partition(".")
    assert len(nanos) == 9
    assert int(seconds) * 10**9 + int(nanos) == ns


@pytest.mark.parametrize("bad", [-1, 1.5, True, "1"])
def test_format_since_rejects_non_ns(bad: object) -> None:
    with pytest.raises(ValueError, match="nanoseconds"):
        format_since(bad)  # type: ignore[arg-type]
