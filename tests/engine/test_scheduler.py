"""The pool's timer thread."""

from __future__ import annotations

import threading
import time
from typing import Any

import pykka

from actorpool.engine.scheduler import Scheduler


class Recorder(pykka.ThreadingActor):
    def __init__(self) -> None:
        super().__init__()
        self.got: list[tuple[Any, float]] = []

    def on_receive(self, message: Any) -> Any:
        if message == "get":
            return list(self.got)
        self.got.append((message, time.monotonic()))
        return None


def test_calls_run_in_time_order() -> None:
    sched = Scheduler()
    try:
        order: list[int] = []
        done = threading.Event()
        sched.call_later(0.06, lambda: (order.append(3), done.set()))
        sched.call_later(0.02, lambda: order.append(1))
        sched.call_later(0.04, lambda: order.append(2))
        assert done.wait(2)
        assert order == [1, 2, 3]
    finally:
        sched.stop()


def test_cancelled_call_does_not_run() -> None:
    sched = Scheduler()
    try:
        ran = threading.Event()
        handle = sched.call_later(0.05, ran.set)
        handle.cancel()
        sentinel = threading.Event()
        sched.call_later(0.1, sentinel.set)
        assert sentinel.wait(2)
        assert not ran.is_set()
    finally:
        sched.stop()


def test_tell_later_delivers_to_actor_and_ignores_dead_ones() -> None:
    sched = Scheduler()
    ref = Recorder.start()
    try:
        start = time.monotonic()
        sched.tell_later(0.05, ref, "hello")
        dead = Recorder.start()
        dead.stop()
        sched.tell_later(0.0, dead, "lost")  # must not raise in the scheduler thread
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and not ref.ask("get"):
            time.sleep(0.01)
        ((msg, at),) = ref.ask("get")
        assert msg == "hello"
        assert at - start >= 0.045
    finally:
        ref.stop()
        sched.stop()


def test_a_failing_callback_does_not_kill_the_thread() -> None:
    sched = Scheduler()
    try:
        after = threading.Event()
        sched.call_later(0.0, lambda: 1 / 0)  # type: ignore[func-returns-value]
        sched.call_later(0.02, after.set)
        assert after.wait(2)
    finally:
        sched.stop()


def test_stop_ends_the_thread_and_drops_pending_calls() -> None:
    sched = Scheduler(name="sched-under-test")
    ran = threading.Event()
    sched.call_later(0.2, ran.set)
    sched.stop()
    assert not any(t.name == "sched-under-test" for t in threading.enumerate())
    time.sleep(0.3)
    assert not ran.is_set()
    handle = sched.call_later(0, ran.set)
    assert handle.cancelled
