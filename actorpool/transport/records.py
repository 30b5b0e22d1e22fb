"""The decoded record of one log line, and the exact position of a reader in a log.

They live here, below :mod:`actorpool.messages` (which re-exports both), because
the decoders in this package build lines and the messages module imports this
package to run requests: defining them in either of the other places would
close a cycle. A :class:`LogPosition` travels on every ``LogChunk`` and goes
back in as ``SubscribeLogs(resume=...)``, so it sits next to the line it
points at.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final, Literal, NamedTuple

import attrs

__all__ = ["POSITION_VERSION", "LogLine", "LogPosition"]


class LogLine(NamedTuple):
    """One log line.

    A named tuple rather than an attrs class like the messages that carry it: a
    busy container makes hundreds of thousands of lines a second, and a tuple is
    built in a fifth of the time of a frozen attrs instance (~0.15 µs against
    ~0.9 µs here), which is what keeps a subscriber at the daemon's pace. It is
    just as immutable; it also compares equal to a plain tuple of its fields.

    Attributes:
        stream: ``"stdout"`` or ``"stderr"``.
        timestamp: The daemon's timestamp in nanoseconds since the epoch (0 when unknown).
        data: The line's bytes without the trailing newline.
        truncated: True when the line was longer than ``streams.max_line_size`` and was cut.
    """

    stream: Literal["stdout", "stderr"]
    timestamp: int
    data: bytes
    truncated: bool = False

    @property
    def text(self) -> str:
        """The line decoded as UTF-8, bad bytes replaced."""
        return self.data.decode("utf-8", "replace")


#: The version prefix of an encoded :class:`LogPosition` (bumped when the encoding changes).
POSITION_VERSION: Final = 1
_POSITION = re.compile(r"^(stdout|stderr)=(0|[1-9]\d{0,18}):([1-9]\d{0,18})$")
_MAX_NS: Final = (1 << 63) - 1


def _cursor(_inst: object, attr: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    ok = (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(x, int) and not isinstance(x, bool) for x in value)
        and 0 <= value[0] <= _MAX_NS
        and 1 <= value[1] <= _MAX_NS
    )
    if not ok:
        msg = f"{attr.name} must be None or (timestamp ns >= 0, count >= 1) as ints, got {value!r}"
        raise ValueError(msg)


@attrs.frozen
class LogPosition:
    """Where a reader is in one container's log, to the line: an exact resume point.

    Per source, the cursor of the last line handled: the daemon's nanosecond
    timestamp of that line and how many lines of that source handled so far
    carry exactly that timestamp (the daemon's ``since`` is inclusive, and
    several lines may share a timestamp). ``None``: no line of that source
    yet. Treat it as opaque: keep it with :meth:`encode`, restore it with
    :meth:`decode`, and hand it back as ``SubscribeLogs(resume=...)``.

    The encoding is versioned (``"v1;stdout=TS:N;stderr=TS:N"``), so a value
    that is not one (a foreign or damaged file) is a :class:`PositionError`,
    never a silent start from zero.
    """

    stdout: tuple[int, int] | None = attrs.field(default=None, validator=_cursor)
    stderr: tuple[int, int] | None = attrs.field(default=None, validator=_cursor)

    @classmethod
    def from_cursors(cls, cursors: Mapping[str, tuple[int, int]]) -> LogPosition:
        """The position of per-source cursors (``{"stdout": (ts, n), ...}``)."""
        return cls(cursors.get("stdout"), cursors.get("stderr"))

    def cursors(self) -> dict[str, tuple[int, int]]:
        """The per-source cursors, sources without a line left out."""
        out: dict[str, tuple[int, int]] = {}
        if self.stdout is not None:
            out["stdout"] = self.stdout
        if self.stderr is not None:
            out["stderr"] = self.stderr
        return out

    def encode(self) -> str:
        """This position as a short, versioned string (ASCII, no spaces or quotes)."""
        parts = [f"v{POSITION_VERSION}"]
        parts.extend(f"{source}={ts}:{n}" for source, (ts, n) in self.cursors().items())
        return ";".join(parts)

    @classmethod
    def decode(cls, text: object) -> LogPosition:
        """The position :meth:`encode` wrote.

        Raises:
            PositionError: ``text`` is not an encoded position of a version this
                actorpool reads; the message says what is wrong.
        """
        from actorpool.errors import PositionError

        if not isinstance(text, str):
            msg = f"a log position must be a string like 'v1;stdout=TS:N', got {text!r:.80}"
            raise PositionError(msg)
        version, _, rest = text.partition(";")
        if version != f"v{POSITION_VERSION}":
            if re.fullmatch(r"v\d{1,6}", version):
                msg = (
                    f"log position {text!r:.80} has version {version[1:]}; this actorpool "
                    f"reads version {POSITION_VERSION} (written by another release?)"
                )
            else:
                msg = f"{text!r:.80} is not an actorpool log position (no 'v1;' prefix)"
            raise PositionError(msg)
        cursors: dict[str, tuple[int, int]] = {}
        for part in rest.split(";") if rest else ():
            match = _POSITION.match(part)
            if match is None or match[1] in cursors:
                msg = f"log position {text!r:.80}: bad or repeated part {part!r:.40}"
                raise PositionError(msg)
            ts, n = int(match[2]), int(match[3])
            if ts > _MAX_NS or not 1 <= n <= _MAX_NS:
                msg = f"log position {text!r:.80}: {part!r:.40} is out of range"
                raise PositionError(msg)
            cursors[match[1]] = (ts, n)
        return cls.from_cursors(cursors)
