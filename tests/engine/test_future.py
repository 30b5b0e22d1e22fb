"""Reply futures: unwrapping for callers, first-writer-wins for the pool."""

from __future__ import annotations

import threading
import time

import pytest
from pykka import Timeout

from actorpool.engine.future import ReplyFuture, UnwrappingFuture
from actorpool.errors import NotFound, RequestTimeout


def test_unwrapping_future_follows_nested_futures() -> None:
    inner = ReplyFuture(time.monotonic() + 5)
    outer = UnwrappingFuture()
    outer.set(inner)
    threading.Timer(0.05, lambda: inner.try_set([1, 2])).start()
    assert outer.get(timeout=2) == [1, 2]


def test_unwrapping_future_raises_the_inner_error() -> None:
    inner = ReplyFuture(time.monotonic() + 5)
    inner.try_set_exception(NotFound("no such container", status=404))
    outer = UnwrappingFuture()
    outer.set(inner)
    with pytest.raises(NotFound, match="no such container"):
        outer.get(timeout=1)


def test_unwrapping_timeout_covers_the_whole_chain() -> None:
    inner = ReplyFuture(time.monotonic() + 60)
    outer = UnwrappingFuture()
    outer.set(inner)
    start = time.monotonic()
    with pytest.raises(Timeout):
        outer.get(timeout=0.1)
    assert time.monotonic() - start < 1


def test_first_writer_wins() -> None:
    fut = ReplyFuture(time.monotonic() + 5)
    assert fut.try_set("first")
    assert not fut.try_set("second")
    assert not fut.try_set_exception(RuntimeError("late"))
    assert fut.get(timeout=1) == "first"
    assert fut.done


def test_get_without_timeout_ends_after_deadline_and_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("actorpool.engine.future.DEADLINE_GRACE", 0.1)
    fut = ReplyFuture(time.monotonic() + 0.1)
    start = time.monotonic()
    with pytest.raises(RequestTimeout, match="did not answer by the request's deadline"):
        fut.get()
    assert 0.15 < time.monotonic() - start < 2


def test_derived_futures_follow_the_reply() -> None:
    fut = ReplyFuture(time.monotonic() + 5)
    doubled = fut.map(lambda x: x * 2)
    threading.Timer(0.05, lambda: fut.try_set(21)).start()
    assert doubled.get(timeout=2) == 42
    assert fut.get(timeout=0) == 21


def test_many_waiters_all_get_the_answer() -> None:
    fut = ReplyFuture(time.monotonic() + 5)
    got: list[object] = []
    waiters = [threading.Thread(target=lambda: got.append(fut.get(timeout=5))) for _ in range(4)]
    for w in waiters:
        w.start()
    fut.try_set("x")
    for w in waiters:
        w.join(5)
    assert got == ["x"] * 4


def test_pykka_set_twice_raises_queue_full() -> None:
    import queue

    fut = ReplyFuture(time.monotonic() + 5)
    fut.set(1)
    with pytest.raises(queue.Full):
        fut.set(2)
    with pytest.raises(queue.Full):
        fut.set_exception((RuntimeError, RuntimeError("late"), None))
    assert fut.get(timeout=0) == 1


def test_probe_with_zero_timeout_before_the_answer() -> None:
    fut = ReplyFuture(time.monotonic() + 5)
    with pytest.raises(Timeout):
        fut.get(timeout=0)
