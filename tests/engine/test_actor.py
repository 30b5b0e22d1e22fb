"""actorpool's actor base: Pykka's semantics on a faster mailbox."""

from __future__ import annotations

import threading
from typing import Any

import pykka
import pytest

from actorpool.engine.actor import Actor


class _Echo(Actor):
    def __init__(self, gate: threading.Event) -> None:
        super().__init__()
        self.gate = gate

    def on_receive(self, message: Any) -> Any:
        if message == "wait":
            self.gate.wait(5)
        return message


def test_messages_are_answered_in_order() -> None:
    ref = _Echo.start(threading.Event())
    try:
        futures = [ref.ask(i, block=False) for i in range(200)]
        assert [f.get(timeout=5) for f in futures] == list(range(200))
    finally:
        ref.stop()


def test_asks_queued_at_stop_fail_with_actor_dead_error() -> None:
    gate = threading.Event()
    ref = _Echo.start(gate)
    busy = ref.ask("wait", block=False)
    stopping = ref.stop(block=False)
    queued = ref.ask("late", block=False)  # behind the stop: the actor never handles it
    gate.set()
    assert busy.get(timeout=5) == "wait"
    stopping.get(timeout=5)
    with pytest.raises(pykka.ActorDeadError):
        queued.get(timeout=5)
    with pytest.raises(pykka.ActorDeadError):
        ref.tell("after")
