"""The decoded record of one log line, as the wire decoders produce it.

It lives here, below :mod:`actorpool.messages` (which re-exports it), because the
decoders in this package build it and the messages module imports this package
to run requests: defining it in either of the other places would close a cycle.
"""

from __future__ import annotations

from typing import Literal

import attrs

__all__ = ["LogLine"]


@attrs.frozen
class LogLine:
    """One log line.

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
