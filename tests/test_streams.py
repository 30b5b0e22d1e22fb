"""The stream manager: placing subscriptions, limits, stats, stopping, and the router path."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pykka
import pytest

import actorpool
from actorpool.config import Config
from actorpool.errors import BadRequest, NotFound, TooManyStreams, UnknownMessage
from actorpool.messages import (
    FollowContainers,
    LogChunk,
    LogStreamEnded,
    SubscribeEvents,
    SubscribeLogs,
    Subscription,
    Unsubscribe,
)
from actorpool.scheduler import Scheduler
from actorpool.streams import StreamManager, StreamStats, StreamStatsReport

from helpers import wait_until

LOOP = "i=0; while true; do echo tick $i; i=$((i+1)); usleep 20000; done"


class Collector(pykka.ThreadingActor):
    def __init__(self, sink: list[Any]) -> None:
        super().__init__()
        self.sink = sink

    def on_receive(self, message: Any) -> None:
        self.sink.append(message)


def ask(ref: pykka.ActorRef[Any], message: Any, timeout: float = 20.0) -> Any:
    value = ref.ask(message, timeout=timeout)
    while isinstance(value, pykka.Future):
        value = value.get(timeout=timeout)
    return value


class Harness:
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

    def subscriber(self) -> tuple[pykka.ActorRef[Any], list[Any]]:
        sink: list[Any] = []
        ref = Collector.start(sink)
        self._actors.append(ref)
        return ref, sink

    def close(self) -> None:
        for ref in reversed(self._actors):
            with contextlib.suppress(pykka.ActorDeadError):
                ref.stop(timeout=10)
        for scheduler in self._schedulers:
            scheduler.stop()


@pytest.fixture
def harness(make_config: Callable[..., Config]) -> Iterator[Harness]:
    h = Harness(make_config)
    try:
        yield h
    finally:
        h.close()


def stats(manager: pykka.ActorRef[Any]) -> StreamStatsReport:
    report: StreamStatsReport = ask(manager, StreamStats())
    return report


def stream_threads() -> list[str]:
    prefixes = ("actorpool-logs", "actorpool-events", "actorpool-streams-io")
    return [t.name for t in threading.enumerate() if t.name.startswith(prefixes)]


def test_subscribing_to_an_unknown_container_raises_not_found(harness: Harness) -> None:
    manager = harness.manager()
    sub, sink = harness.subscriber()
    with pytest.raises(NotFound, match="no-such-container"):
        ask(manager, SubscribeLogs("no-such-container", sub))
    assert stats(manager).log_streams == 0
    assert sink == []


def test_subscriptions_past_max_concurrent_streams_raise_too_many_streams(
    harness: Harness, make_container: Callable[..., str]
) -> None:
    manager = harness.manager(performance={"max_concurrent_streams": 2})
    first, second, third = (make_container(["sh", "-c", LOOP]) for _ in range(3))
    sub, _ = harness.subscriber()
    ask(manager, SubscribeLogs(first, sub))
    ask(manager, SubscribeLogs(second, sub))
    ask(manager, SubscribeLogs(first, sub))  # joins the first stream: not a new one
    with pytest.raises(TooManyStreams, match="max_concurrent_streams is 2"):
        ask(manager, SubscribeLogs(third, sub))
    with pytest.raises(TooManyStreams):
        ask(manager, SubscribeEvents(sub))
    report = stats(manager)
    assert (report.log_streams, report.subscriptions, report.max_streams) == (2, 3, 2)


def test_names_and_ids_share_one_stream_and_bad_requests_fail_clearly(
    harness: Harness, make_container: Callable[..., str]
) -> None:
    manager = harness.manager()
    cid = make_container(["sh", "-c", LOOP], name="streams-shared-name")
    sub, _ = harness.subscriber()
    by_name = ask(manager, SubscribeLogs("streams-shared-name", sub))
    by_id = ask(manager, SubscribeLogs(cid[:12], sub))
    assert by_name.target == by_id.target == cid
    assert stats(manager).log_streams == 1
    with pytest.raises(BadRequest, match="receive nothing"):
        ask(manager, SubscribeLogs(cid, sub, stdout=False, stderr=False))
    with pytest.raises(UnknownMessage, match="StreamStats"):
        ask(manager, "hello")
    assert ask(manager, Unsubscribe("no-such-subscription")) is False


def test_stopping_the_manager_ends_every_subscription_and_leaves_no_thread(
    harness: Harness, make_container: Callable[..., str]
) -> None:
    manager = harness.manager()
    label = uuid.uuid4().hex[:12]
    cids = [make_container(["sh", "-c", LOOP], labels={"stoptest": label}) for _ in range(2)]
    subs = [harness.subscriber() for _ in range(3)]
    log_sub = ask(manager, SubscribeLogs(cids[0], subs[0][0]))
    event_sub = ask(manager, SubscribeEvents(subs[1][0], {"type": ["container"]}))
    follow_sub = ask(manager, FollowContainers(subs[2][0], {"label": [f"stoptest={label}"]}))
    wait_until(lambda: any(isinstance(m, LogChunk) for m in subs[0][1]), 10)
    wait_until(lambda: stats(manager).log_streams == 2, 10)
    assert stream_threads()
    manager.stop(timeout=15)
    assert LogStreamEnded(cids[0], "pool stopped", log_sub.id) in subs[0][1]
    assert LogStreamEnded("", "pool stopped", event_sub.id) in subs[1][1]
    follow_ends = [m for m in subs[2][1] if isinstance(m, LogStreamEnded)]
    assert LogStreamEnded("", "pool stopped", follow_sub.id) in follow_ends
    wait_until(lambda: not stream_threads(), 5, message="stream threads to end")


def test_subscribe_through_the_pool_router(
    make_config: Callable[..., Config], make_container: Callable[..., str]
) -> None:
    cid = make_container(["sh", "-c", "echo one; echo two >&2; sleep 60"])
    sink: list[Any] = []
    sub = Collector.start(sink)
    pool = actorpool.start(make_config())
    try:
        subscription = pool.router.ask(SubscribeLogs(cid, sub), timeout=20)
        assert isinstance(subscription, Subscription)
        assert subscription.target == cid
        wait_until(lambda: sum(len(m.lines) for m in sink if isinstance(m, LogChunk)) == 2, 10)
        with pytest.raises(NotFound):
            pool.router.ask(SubscribeLogs("no-such-container", sub), timeout=20)
    finally:
        pool.stop()
        sub.stop()
    assert sink[-1] == LogStreamEnded(cid, "pool stopped", subscription.id)
    wait_until(lambda: not stream_threads(), 5, message="stream threads to end")
