"""Log streams, events and container following (work in progress by the streams helper)."""

from __future__ import annotations

from typing import Any

import pykka

__all__ = ["StreamManager"]


class StreamManager(pykka.ThreadingActor):
    """Placeholder until the real stream manager lands."""

    def __init__(self, config: Any, scheduler: Any, metrics: Any = None) -> None:
        super().__init__()
        self._config = config

    def on_receive(self, message: Any) -> Any:
        from actorpool.errors import UnknownMessage

        raise UnknownMessage(f"stream manager not implemented yet: {message!r}")
