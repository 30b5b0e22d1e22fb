"""LogDecoder: its fast path gives exactly what the layer-by-layer state machines give."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actorpool.messages import LogLine
from actorpool.transport.decoder import LogDecoder
from actorpool.transport.frames import ChunkedDecoder, FrameError, MultiplexedDecoder, TtyAssembler

from encoders import BASE_NS, chunked, frame, line_contents, messages, rfc3339, split_at

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def reference(body: bytes, *, tty: bool, max_line_size: int) -> list[LogLine]:
    """The state machines alone, the whole body in one feed."""
    payload = ChunkedDecoder().feed(body)
    decoder: MultiplexedDecoder | TtyAssembler
    if tty:
        decoder = TtyAssembler(timestamps=True, max_line_size=max_line_size)
    else:
        decoder = MultiplexedDecoder(timestamps=True, max_line_size=max_line_size)
    out: list[LogLine] = []
    decoder.feed_into(payload, out)
    return out + decoder.flush()


def decode(pieces: list[bytes], *, tty: bool, max_line_size: int) -> tuple[list[LogLine], int]:
    decoder = LogDecoder(tty=tty, timestamps=True, max_line_size=max_line_size, chunked=True)
    out: list[LogLine] = []
    for piece in pieces:
        decoder.feed_into(piece, out)
    assert decoder.done
    return out + decoder.flush(), decoder.truncated


def body_of(lines: list[tuple[int, bytes]], *, odd: set[int], two_per_chunk: set[int]) -> bytes:
    """A chunked multiplexed body, one chunk per message except where told otherwise."""
    chunks: list[bytes] = []
    for i, (sid, content) in enumerate(lines):
        ts = BASE_NS + i * 1_000_003
        msgs = messages(content, ts)
        if i in odd:  # a valid RFC 3339 form other than the daemon's: the fast path declines
            msgs = [rfc3339(ts)[:-4] + b"Z" + m[30:] for m in msgs]
        framed = [frame(sid, m) for m in msgs]
        if i in two_per_chunk and chunks:
            chunks[-1] += b"".join(framed)
        else:
            chunks.extend(framed)
    return chunked(chunks)


@SETTINGS
@given(
    lines=st.lists(
        st.tuples(
            st.sampled_from([0, 1, 1, 1, 2, 2]),
            st.one_of(
                line_contents(),
                # a line made of what framing looks like (but a newline): stays one line's data
                st.just(b"29\r\x01\x00\x00\x00\x00\x00\x00!2024-05-01T12:00:00.000000000Z x\r"),
            ),
        ),
        max_size=25,
    ),
    max_line_size=st.one_of(st.integers(1, 100), st.integers(16_000, 70_000)),
    cuts=st.lists(st.integers(0, 10**7), max_size=30),
    odd=st.sets(st.integers(0, 24), max_size=4),
    two_per_chunk=st.sets(st.integers(0, 24), max_size=4),
)
def test_any_body_split_anywhere_decodes_like_the_state_machines(
    lines: list[tuple[int, bytes]],
    max_line_size: int,
    cuts: list[int],
    odd: set[int],
    two_per_chunk: set[int],
) -> None:
    body = body_of(lines, odd=odd, two_per_chunk=two_per_chunk)
    got, truncated = decode(split_at(body, cuts), tty=False, max_line_size=max_line_size)
    assert got == reference(body, tty=False, max_line_size=max_line_size)
    assert truncated == sum(line.truncated for line in got)
    kept = [c for _, c in lines if len(c) <= max_line_size]
    assert [line.data for line in got if not line.truncated] == kept


def test_a_daemon_body_in_socket_sized_reads() -> None:
    # The common case only (one whole line per chunk), read the way a socket returns it.
    rng = random.Random(7)
    lines = [(rng.choice([1, 2]), b"%d" % i * rng.randint(1, 9)) for i in range(5000)]
    body = body_of(lines, odd=set(), two_per_chunk=set())
    for size in (7, 1000, 16384, 65536):
        pieces = [body[i : i + size] for i in range(0, len(body), size)]
        got, _ = decode(pieces, tty=False, max_line_size=1 << 20)
        assert got == reference(body, tty=False, max_line_size=1 << 20)
        assert [(line.stream, line.data) for line in got] == [
            ("stderr" if sid == 2 else "stdout", c) for sid, c in lines
        ]


@SETTINGS
@given(
    contents=st.lists(line_contents(), max_size=10),
    cuts=st.lists(st.integers(0, 10**7), max_size=20),
)
def test_a_tty_body_decodes_like_the_tty_assembler(contents: list[bytes], cuts: list[int]) -> None:
    msgs = [
        m for i, c in enumerate(contents) for m in messages(c, BASE_NS + i * 1_000, newline=b"\r\n")
    ]
    body = chunked(msgs)
    got, _ = decode(split_at(body, cuts), tty=True, max_line_size=1 << 20)
    assert got == reference(body, tty=True, max_line_size=1 << 20)


def test_an_unchunked_body_is_decoded_as_is() -> None:
    data = b"".join(frame(1, m) for i in range(3) for m in messages(b"x%d" % i, BASE_NS + i))
    decoder = LogDecoder(tty=False, timestamps=True, max_line_size=100, chunked=False)
    assert [line.data for line in decoder.feed(data)] == [b"x0", b"x1", b"x2"]
    assert not decoder.done


def test_bytes_after_the_last_chunk_are_ignored() -> None:
    body = chunked([frame(1, m) for m in messages(b"only", BASE_NS)])
    decoder = LogDecoder(tty=False, timestamps=True, max_line_size=100, chunked=True)
    assert [line.data for line in decoder.feed(body + b"garbage\r\n")] == [b"only"]
    assert decoder.done
    assert decoder.feed(b"more") == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"zz\r\nxx\r\n", "chunk-size line"),
        (chunked([b"\x07\x00\x00\x00\x00\x00\x00\x01x"]), "bad log frame header"),
        (chunked([frame(1, b"no timestamp here at all, not even one\n")]), "timestamp"),
    ],
)
def test_broken_bodies_raise_frame_errors(body: bytes, message: str) -> None:
    decoder = LogDecoder(tty=False, timestamps=True, max_line_size=100, chunked=True)
    with pytest.raises(FrameError, match=message):
        decoder.feed(body)


def test_a_body_ending_inside_a_chunk_cannot_be_flushed() -> None:
    body = chunked([frame(1, m) for m in messages(b"cut", BASE_NS)])
    decoder = LogDecoder(tty=False, timestamps=True, max_line_size=100, chunked=True)
    assert decoder.feed(body[:20]) == []
    assert not decoder.done
    with pytest.raises(FrameError, match="inside a chunk"):
        decoder.flush()
