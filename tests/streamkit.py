"""Shared pieces of the stream tests: a recording subscriber and a stream-manager harness."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import pykka

from actorpool.config import Config
from actorpool.engine.scheduler import Scheduler
from actorpool.messages import LogChunk
from actorpool.streams.manager import StreamManager


class Collector(pykka.ThreadingActor):
    """A subscriber that appends every message to a list the test reads."""

    def __init__(self, sink: list[Any], delay: float = 0.0) -> None:
        super().__init__()
        self.sink = sink
        self.delay = delay

    def on_receive(self, message: Any) -> None:
        if self.delay and isinstance(message, LogChunk):
            time.sleep(self.delay)  # a deliberately slow subscriber (test only)
        self.sink.append(message)


def ask(ref: pykka.ActorRef[Any], message: Any, timeout: float = 20.0) -> Any:
    """Ask the manager and follow the reply future, like the router's futures do."""
    value = ref.ask(message, timeout=timeout)
    while isinstance(value, pykka.Future):
        value = value.get(timeout=timeout)
    return value


class StreamHarness:
    """Starts stream managers and subscribers for one test; stops them all at teardown."""

    def __init__(self, make_config: Callable[..., Config]) -> None:
        self._make_config = make_config
        self._actors: list[pykka.ActorRef[Any]] = []
        self._schedulers: list[Scheduler] = []

    def manager(self, sandbox: Any = None, **sections: Any) -> pykka.ActorRef[Any]:
        scheduler = Scheduler()
        self._schedulers.append(scheduler)
        ref = StreamManager.start(self._make_config(sandbox, **sections), scheduler, None)
        self._actors.append(ref)
        return ref

    def subscriber(self, delay: float = 0.0) -> tuple[pykka.ActorRef[Any], list[Any]]:
        sink: list[Any] = []
        ref = Collector.start(sink, delay)
        self._actors.append(ref)
        return ref, sink

    def close(self) -> None:
        for ref in reversed(self._actors):
            with contextlib.suppress(pykka.ActorDeadError):
                ref.stop(timeout=10)
        for scheduler in self._schedulers:
            scheduler.stop()
