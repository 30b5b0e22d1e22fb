"""The stream manager: placing subscriptions, limits, stats, stopping, and the router path."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
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
    LogStreamError,
    StreamStats,
    StreamStatsReport,
    SubscribeEvents,
    SubscribeLogs,
    Subscription,
    Unsubscribe,
)
from actorpool.testing.faultproxy import FaultProxy

from helpers import numbered_lines_cmd, stderr_on_cue_cmd, wait_until
from streamkit import Collector, StreamHarness, ask

LOOP = "i=0; while true; do echo tick $i; i=$((i+1)); usleep 20000; done"


def stats(manager: pykka.ActorRef[Any]) -> StreamStatsReport:
    report: StreamStatsReport = ask(manager, StreamStats())
    return report


def stream_threads() -> list[str]:
    prefixes = ("actorpool-logs", "actorpool-events", "actorpool-streams-io")
    return [t.name for t in threading.enumerate() if t.name.startswith(prefixes)]


def test_subscribing_to_an_unknown_container_raises_not_found(harness: StreamHarness) -> None:
    manager = harness.manager()
    sub, sink = harness.subscriber()
    with pytest.raises(NotFound, match="no-such-container"):
        ask(manager, SubscribeLogs("no-such-container", sub))
    assert stats(manager).log_streams == 0
    assert sink == []


def test_subscriptions_past_max_concurrent_streams_raise_too_many_streams(
    harness: StreamHarness, make_container: Callable[..., str]
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
    harness: StreamHarness, make_container: Callable[..., str]
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
    harness: StreamHarness, make_container: Callable[..., str]
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
    # The ends are told before stop() returns; each subscriber records them on its own thread.
    ends = [
        (subs[0][1], LogStreamEnded(cids[0], "pool stopped", log_sub.id)),
        (subs[1][1], LogStreamEnded("", "pool stopped", event_sub.id)),
        (subs[2][1], LogStreamEnded("", "pool stopped", follow_sub.id)),
    ]
    for got, end in ends:
        wait_until(lambda got=got, end=end: end in got, 5, message=f"{end} to arrive")
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


# --------------------------------------------------------------------------- supervision


def crash_one(class_name: str, foreign: set[str]) -> None:
    """Fail the one actor of ``class_name`` not in ``foreign`` (as the soak does)."""
    refs = [
        ref
        for ref in pykka.ActorRegistry.get_by_class_name(class_name)
        if ref.actor_urn not in foreign
    ]
    assert len(refs) == 1, f"expected one {class_name} of this test, found {len(refs)}"
    refs[0].tell("crash")  # an unknown message by tell fails a Pykka actor


def urns(*class_names: str) -> set[str]:
    return {
        ref.actor_urn for name in class_names for ref in pykka.ActorRegistry.get_by_class_name(name)
    }


def texts(sink: list[Any], source: str) -> list[str]:
    return [
        line.text
        for m in list(sink)
        if isinstance(m, LogChunk)
        for line in m.lines
        if line.stream == source
    ]


def test_a_crashed_log_stream_is_restarted_and_every_subscriber_gets_every_line_once(
    harness: StreamHarness, make_container: Callable[..., str]
) -> None:
    manager = harness.manager()
    foreign = urns("LogStream")
    n = 400
    cid = make_container(numbered_lines_cmd(n, delay=0.01))
    both, both_sink = harness.subscriber()
    out, out_sink = harness.subscriber()
    ask(manager, SubscribeLogs(cid, both))
    ask(manager, SubscribeLogs(cid, out, stderr=False, tail=0))
    wait_until(lambda: len(texts(out_sink, "stdout")) > 20, 10)
    crash_one("LogStream", foreign)
    crashed_at = len(texts(out_sink, "stdout"))
    wait_until(lambda: len(texts(out_sink, "stdout")) > crashed_at + 20, 10, message="lines again")
    for sink in (both_sink, out_sink):
        wait_until(lambda sink=sink: any(isinstance(m, LogStreamEnded) for m in sink), 20)
    want_out = [f"out {i}" for i in range(1, n + 1)]
    assert texts(both_sink, "stdout") == want_out
    assert texts(both_sink, "stderr") == [f"err {i}" for i in range(1, n + 1)]
    got = texts(out_sink, "stdout")
    assert texts(out_sink, "stderr") == []
    assert got == want_out[len(want_out) - len(got) :]  # from where it joined, in order, once
    assert len(got) > crashed_at + 20
    ends = [m for m in both_sink + out_sink if isinstance(m, LogStreamEnded | LogStreamError)]
    assert [m.reason for m in ends if isinstance(m, LogStreamEnded)] == ["exited", "exited"]
    wait_until(lambda: stats(manager).log_streams == 0, 10)


def test_a_source_quiet_when_its_stream_crashed_loses_no_line_after_the_restart(
    harness: StreamHarness, make_container: Callable[..., str], sandbox: Any
) -> None:
    # stderr had no line in the starting window (tail=1) and none until the stream crashed;
    # it starts writing as the stream is restarted, 0.3 s late per request (the proxy),
    # while stdout goes on (resume_tail 5). The new stream's stderr follower starts from
    # the crashed one's anchor: every stderr line arrives, once, from the first.
    foreign = urns("LogStream")
    cid = make_container(stderr_on_cue_cmd())
    client = sandbox.client(timeout=60)
    try:
        with FaultProxy(sandbox.socket_path) as proxy:
            manager = harness.manager(proxy.url, streams={"resume_tail": 5})
            sub, sink = harness.subscriber()
            subscription = ask(manager, SubscribeLogs(cid, sub, tail=1))
            wait_until(lambda: len(texts(sink, "stdout")) > 300, 20)
            assert texts(sink, "stderr") == []
            proxy.latency = 0.3
            crash_one("LogStream", foreign)
            client.exec_start(client.exec_create(cid, ["touch", "/go"]))
            wait_until(lambda: len(texts(sink, "stderr")) > 300, 30)
            ask(manager, Unsubscribe(subscription.id))
    finally:
        client.close()
    got = texts(sink, "stderr")
    assert got == [f"err {i}" for i in range(1, len(got) + 1)]
    outs = [int(t.split()[1]) for t in texts(sink, "stdout")]
    assert outs == list(range(outs[0], outs[0] + len(outs)))


def test_telling_a_dead_stream_replaces_it_and_the_manager_lives_on(
    harness: StreamHarness, make_container: Callable[..., str]
) -> None:
    manager = harness.manager()
    foreign = urns("LogStream", "EventStream")
    cid = make_container(["sh", "-c", LOOP])
    first, first_sink = harness.subscriber()
    subscription = ask(manager, SubscribeLogs(cid, first, tail=0))
    ask(manager, SubscribeEvents(first, {"type": ["container"]}))
    crash_one("LogStream", foreign)
    crash_one("EventStream", foreign)
    # Straight after the crashes (the manager may not have heard yet): nothing may kill it.
    second, second_sink = harness.subscriber()
    ask(manager, SubscribeLogs(cid, second, tail=0))
    ask(manager, SubscribeEvents(second, {"type": ["container"]}))
    assert ask(manager, Unsubscribe(subscription.id)) is True
    wait_until(lambda: any(isinstance(m, LogChunk) for m in second_sink), 10)
    wait_until(
        lambda: LogStreamEnded(cid, "unsubscribed", subscription.id) in first_sink,
        10,
        message="the unsubscribed subscriber to be told",
    )
    assert manager.is_alive()
    report = stats(manager)
    assert (report.log_streams, report.event_streams) == (1, 1)


def test_after_crashed_streams_pool_stop_leaves_no_actor_thread(
    make_config: Callable[..., Config], make_container: Callable[..., str]
) -> None:
    label = uuid.uuid4().hex[:12]
    foreign = urns("LogStream", "EventStream")
    before = {t.ident for t in threading.enumerate()}
    sink: list[Any] = []
    sub = Collector.start(sink)
    pool = actorpool.start(make_config())
    try:
        cid = make_container(["sh", "-c", LOOP], labels={"crashtest": label})
        pool.router.ask(FollowContainers(sub, {"label": [f"crashtest={label}"]}), timeout=20)
        wait_until(lambda: any(isinstance(m, LogChunk) for m in sink), 10)
        crash_one("LogStream", foreign)
        crash_one("EventStream", foreign)
        wait_until(lambda: len(urns("LogStream", "EventStream") - foreign) == 2, 10)
        count = len(sink)
        wait_until(lambda: any(isinstance(m, LogChunk) for m in sink[count:]), 10)
        assert all(m.container_id == cid for m in sink if isinstance(m, LogChunk))
    finally:
        pool.stop()
        sub.stop()

    def leaked() -> list[str]:
        return [t.name for t in threading.enumerate() if t.ident not in before and t.is_alive()]

    wait_until(lambda: not leaked(), 10, message="no thread left by the pool")


def test_subscribing_again_right_after_the_last_unsubscribe_gets_a_fresh_stream(
    harness: StreamHarness, make_container: Callable[..., str]
) -> None:
    # The last Unsubscribe makes the shared event stream end itself; a subscription to the
    # same filters that the manager takes before that end is reported must not join it.
    manager = harness.manager()
    sub, sink = harness.subscriber()
    filters = {"type": ["container"], "event": ["start"]}
    for _ in range(10):
        first = ask(manager, SubscribeEvents(sub, filters))
        manager.tell(Unsubscribe(first.id))
        again = ask(manager, SubscribeEvents(sub, filters))
        assert isinstance(again, Subscription)
        manager.tell(Unsubscribe(again.id))
    last = ask(manager, SubscribeEvents(sub, filters))
    cid = make_container(["true"])
    wait_until(lambda: any(getattr(m, "id", None) == cid for m in list(sink)), 10)
    assert ask(manager, Unsubscribe(last.id)) is True
    wait_until(lambda: stats(manager).event_streams == 0, 10)


def test_subscribing_again_while_the_last_stream_reports_its_end_gets_a_fresh_stream(
    harness: StreamHarness,
) -> None:
    # The stream reports the last removal and its own end in two messages; a subscription
    # the manager takes between the two must not join the stream that has ended. The pause
    # sweeps the subscription across that gap.
    manager = harness.manager()
    sub, _ = harness.subscriber()
    filters = {"type": ["container"], "event": ["die"]}
    for i in range(40):
        first = ask(manager, SubscribeEvents(sub, filters))
        assert ask(manager, Unsubscribe(first.id)) is True
        time.sleep((i % 20) * 0.0002)
        again = ask(manager, SubscribeEvents(sub, filters))
        assert isinstance(again, Subscription)
        assert ask(manager, Unsubscribe(again.id)) is True
    wait_until(lambda: stats(manager).event_streams == 0, 10)
