"""Encoders reproducing what dockerd sends in a log response, for the decoder tests.

Checked against the real daemon by tests/transport/test_logread.py: one frame per log
message, messages cut into 16384-byte pieces that all carry the line's
timestamp, for TTY containers the same messages unframed with CRLF line
ends, and under both one HTTP chunk per message.
"""

from __future__ import annotations

import datetime
import itertools
import random
import struct

from hypothesis import strategies as st

PIECE = 16384  # the json-file log driver's message size
BASE_NS = 1_714_564_800 * 10**9  # 2024-05-01T12:00:00Z


def frame(stream_id: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream_id, len(payload)) + payload


def rfc3339(ns: int) -> bytes:
    seconds, nanos = divmod(ns, 10**9)
    when = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return f"{when:%Y-%m-%dT%H:%M:%S}.{nanos:09d}Z".encode()


def messages(content: bytes, ts: int | None, *, newline: bytes = b"\n") -> list[bytes]:
    """The log messages the daemon stores for one line: 16 KiB pieces, the last with the newline.

    ``newline`` is what ends the line in the container's output: for a TTY
    the CR is part of the last message's content, so it may fall in a piece.
    """
    body = content + newline[:-1]
    full = len(body) // PIECE
    pieces = [body[i * PIECE : (i + 1) * PIECE] for i in range(full)]
    pieces.append(body[full * PIECE :] + b"\n")
    prefix = b"" if ts is None else rfc3339(ts) + b" "
    return [prefix + piece for piece in pieces]


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@st.composite
def line_contents(draw: st.DrawFn) -> bytes:
    """Bytes without a newline: mostly short, sometimes over one or several 16 KiB pieces."""
    size = draw(
        st.one_of(
            st.integers(0, 80),
            st.integers(PIECE - 2, PIECE + 2),
            st.integers(PIECE, 3 * PIECE + 100),
        )
    )
    seed = draw(st.integers(0, 2**32))
    data = random.Random(seed).randbytes(size)
    return data.replace(b"\n", b"n")


def chunked(bodies: list[bytes], *, upper: bool = False, extension: bool = False) -> bytes:
    out = []
    for body in bodies:
        size = f"{len(body):X}" if upper else f"{len(body):x}"
        out.append(
            size.encode() + (b";name=value" if extension else b"") + b"\r\n" + body + b"\r\n"
        )
    return b"".join(out) + b"0\r\n\r\n"
