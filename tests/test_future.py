"""Reply futures: unwrapping for callers, first-writer-wins for the pool."""

from __future__ import annotations

import threading
import time

import pytest
from pykka import Timeout

from actorpool.errors import NotFound, RequestTimeout
from actorpool.future import ReplyFuture, UnwrappingFuture


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
    monkeypatch.setattr("actorpool.future.DEADLINE_GRACE", 0.1)
    fut = ReplyFuture(time.monotonic() + 0.1)
    start = time.monotonic()
    with pytest.raises(RequestTimeout, match="did not answer by the request's deadline"):
        fut.get()
    assert 0.15 < time.monotonic() - start < 2
