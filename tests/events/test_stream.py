"""Event streams against a real dockerd: delivery, filters, sharing, resume, liveness."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import pykka
import pytest

from actorpool.config import Config
from actorpool.engine.scheduler import Scheduler
from actorpool.events.stream import (
    AddEventSubscriber,
    EventStream,
    EventStreamFailed,
    EventSubscriber,
    canonical_filters,
    parse_event,
)
from actorpool.logs.context import BlockingCalls, StreamContext, StreamCounters
from actorpool.messages import (
    DockerEvent,
    LogStreamEnded,
    StreamStats,
    StreamStatsReport,
    SubscribeEvents,
    Unsubscribe,
)

from helpers import wait_until
from streamkit import StreamHarness, ask


def events_of(sink: list[Any], cid: str) -> list[DockerEvent]:
    return [m for m in list(sink) if isinstance(m, DockerEvent) and m.id == cid]


def actions(sink: list[Any], cid: str) -> list[str]:
    return [e.action for e in events_of(sink, cid)]


def stats(manager: pykka.ActorRef[Any]) -> StreamStatsReport:
    report: StreamStatsReport = ask(manager, StreamStats())
    return report


# --- pure ------------------------------------------------------------------------------------


def test_canonical_filters_ignore_order_and_container_types() -> None:
    a = canonical_filters({"type": ("container",), "event": ("start", "die")})
    b = canonical_filters({"event": ["die", "start"], "type": ["container"]})
    assert a == b
    assert canonical_filters(None) == canonical_filters({}) == "{}"
    assert a != canonical_filters({"type": ["image"]})


def test_parse_event_keeps_nanoseconds_and_attributes() -> None:
    event = parse_event(
        {
            "Type": "container",
            "Action": "start",
            "Actor": {"ID": "abc", "Attributes": {"name": "web", "app": "x"}},
            "time": 1700000000,
            "timeNano": 1700000000123456789,
        }
    )
    assert event == DockerEvent(
        "container", "start", "abc", {"name": "web", "app": "x"}, 1700000000123456789
    )


# --- against the daemon ------------------------------------------------------------------------


def test_container_events_arrive_in_order_with_ns_times_and_filters_apply(
    harness: StreamHarness, make_container: Callable[..., str]
) -> None:
    manager = harness.manager()
    sub, sink = harness.subscriber()
    filters = {"type": ["container"], "label": ["evtest=yes"]}
    subscription = ask(manager, SubscribeEvents(sub, filters))
    assert subscription.kind == "events"
    other = make_container(["true"], labels={"evtest": "no"})
    cid = make_container(["sh", "-c", "exit 3"], labels={"evtest": "yes"})
    wait_until(lambda: "die" in actions(sink, cid), 10)
    assert actions(sink, cid)[:3] == ["create", "start", "die"]
    events = events_of(sink, cid)
    assert all(e.type == "container" for e in events)
    assert events[0].attributes["evtest"] == "yes"
    assert events[2].attributes["exitCode"] == "3"
    times = [e.time_ns for e in events]
    assert times == sorted(times)
    assert any(t % 1_000_000_000 for t in times)  # real nanoseconds, not whole seconds
    assert events_of(sink, other) == []  # filtered out by the daemon


def test_subscribers_with_equal_filters_share_one_stream_and_unsubscribe_ends_delivery(
    harness: StreamHarness, make_container: Callable[..., str]
) -> None:
    manager = harness.manager()
    (a, sink_a), (b, sink_b), (c, sink_c) = (harness.subscriber() for _ in range(3))
    first = ask(manager, SubscribeEvents(a, {"type": ["container"]}))
    ask(manager, SubscribeEvents(b, {"type": ("container",)}))
    ask(manager, SubscribeEvents(c, {"type": ["image"]}))
    assert stats(manager).event_streams == 2
    cid = make_container(["true"])
    wait_until(lambda: "die" in actions(sink_a, cid) and "die" in actions(sink_b, cid), 10)
    assert actions(sink_a, cid) == actions(sink_b, cid)
    assert events_of(sink_c, cid) == []
    assert ask(manager, Unsubscribe(first.id)) is True
    wait_until(lambda: LogStreamEnded("", "unsubscribed", first.id) in sink_a, 5)
    second = make_container(["true"])
    wait_until(lambda: "die" in actions(sink_b, second), 10)
    assert events_of(sink_a, second) == []
    assert stats(manager).event_streams == 2  # b still uses the shared stream


@pytest.mark.daemon
def test_the_event_stream_resumes_after_a_daemon_restart(
    harness: StreamHarness, make_container: Callable[..., str], private_sandbox: Any
) -> None:
    api = private_sandbox.client()
    manager = harness.manager(
        private_sandbox, streams={"reconnect_initial_delay": 0.05, "reconnect_max_delay": 0.3}
    )
    sub, sink = harness.subscriber()
    ask(manager, SubscribeEvents(sub, {"type": ["container"]}))
    before = make_container(["true"], api=api)
    wait_until(lambda: "die" in actions(sink, before), 10)
    private_sandbox.restart()
    wait_until(lambda: stats(manager).reconnects >= 1, 10)
    after = make_container(["true"], api=api)
    wait_until(lambda: "die" in actions(sink, after), 10)
    assert actions(sink, after)[:3] == ["create", "start", "die"]
    # The resume replayed nothing twice.
    keys = [(e.time_ns, e.action, e.id) for e in sink if isinstance(e, DockerEvent)]
    assert len(keys) == len(set(keys))


@pytest.mark.daemon
def test_a_hung_daemon_is_noticed_by_the_liveness_ping_and_the_stream_recovers(
    harness: StreamHarness, make_container: Callable[..., str], private_sandbox: Any
) -> None:
    api = private_sandbox.client()
    manager = harness.manager(
        private_sandbox,
        pool={"health_check_interval": 0.3, "health_check_timeout": 0.5},
        streams={"reconnect_initial_delay": 0.05, "reconnect_max_delay": 0.3},
    )
    sub, sink = harness.subscriber()
    ask(manager, SubscribeEvents(sub, {"type": ["container"]}))
    private_sandbox.pause()  # SIGSTOP: the socket stays open, nothing answers
    try:
        time.sleep(1.5)  # several failed pings: the stream is cut and reopening
    finally:
        private_sandbox.resume()
    wait_until(lambda: stats(manager).reconnects >= 1, 15)
    cid = make_container(["true"], api=api)
    wait_until(lambda: "die" in actions(sink, cid), 15)


@pytest.mark.parametrize("manager_alive", [True, False])
def test_a_crashed_event_stream_hands_its_subscribers_to_a_live_manager_or_ends_them(
    harness: StreamHarness, make_config: Callable[..., Config], manager_alive: bool
) -> None:
    config = make_config()
    scheduler = Scheduler()
    ctx = StreamContext(
        config=config,
        scheduler=scheduler,
        metrics=None,
        counters=StreamCounters(),
        calls=BlockingCalls(config),
    )
    manager, manager_sink = harness.subscriber()
    sub, sink = harness.subscriber()
    ready: list[BaseException | None] = []
    stream = EventStream.start(ctx, key="k", filters={"type": ["container"]}, manager=manager)
    try:
        subscriber = EventSubscriber("e1", "e1", sub, reconnects=True)
        stream.tell(AddEventSubscriber(subscriber, ready.append))
        wait_until(lambda: ready == [None], 10)
        if not manager_alive:
            manager.stop(timeout=10)
        stream.tell("crash")
        wait_until(lambda: not stream.is_alive(), 10)
        if manager_alive:
            failed = wait_until(
                lambda: [m for m in manager_sink if isinstance(m, EventStreamFailed)], 10
            )[0]
            assert (failed.key, failed.stream_urn) == ("k", stream.actor_urn)
            assert failed.filters == {"type": ["container"]}
            assert failed.subscribers == (subscriber,)
            assert failed.waiting == ()
            time.sleep(0.2)
            assert not [m for m in sink if isinstance(m, LogStreamEnded)]  # handed over
        else:
            wait_until(lambda: LogStreamEnded("", "stream failed", "e1") in sink, 10)
    finally:
        with contextlib.suppress(pykka.ActorDeadError):
            stream.stop(timeout=10)
        ctx.calls.shutdown()
        scheduler.stop()
