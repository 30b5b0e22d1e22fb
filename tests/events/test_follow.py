"""FollowContainers against a real dockerd: discovery, new containers, restarts, scale."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pykka
import pytest

from actorpool.logs.positions import FilePositionStore
from actorpool.messages import (
    FollowContainers,
    LogChunk,
    LogPosition,
    LogStreamEnded,
    LogStreamError,
    StreamStats,
    StreamStatsReport,
    Unsubscribe,
)

from helpers import numbered_lines_cmd, wait_for_state, wait_until
from streamkit import StreamHarness, ask


@pytest.fixture
def label() -> str:
    """A label value of the test's own, so other tests' containers never match."""
    return uuid.uuid4().hex[:12]


def lines_of(sink: list[Any], cid: str) -> list[str]:
    return [
        line.text
        for m in list(sink)
        if isinstance(m, LogChunk) and m.container_id == cid
        for line in m.lines
    ]


def ends_of(sink: list[Any], cid: str) -> list[LogStreamEnded | LogStreamError]:
    return [
        m
        for m in list(sink)
        if isinstance(m, LogStreamEnded | LogStreamError) and m.container_id == cid
    ]


def stats(manager: pykka.ActorRef[Any]) -> StreamStatsReport:
    report: StreamStatsReport = ask(manager, StreamStats())
    return report


def test_running_and_new_matching_containers_are_followed_and_others_are_not(
    harness: StreamHarness, make_container: Callable[..., str], docker_api: Any, label: str
) -> None:
    manager = harness.manager()
    running = make_container(["sh", "-c", "echo old; sleep 60"], labels={"follow": label})
    other = make_container(["sh", "-c", "echo other; sleep 60"], labels={"follow": "x" + label})
    sub, sink = harness.subscriber()
    subscription = ask(manager, FollowContainers(sub, {"label": [f"follow={label}"]}))
    assert subscription.kind == "follow"
    wait_until(lambda: lines_of(sink, running) == ["old"], 10)
    new = make_container(["sh", "-c", "echo new; sleep 60"], labels={"follow": label}, start=False)
    docker_api.start(new)
    started = time.monotonic()
    wait_until(lambda: lines_of(sink, new) == ["new"], 5)
    assert time.monotonic() - started < 1.0  # followed within a second of its start
    assert lines_of(sink, other) == []
    assert all(m.subscription_id == subscription.id for m in sink if isinstance(m, LogChunk))
    report = stats(manager)
    assert report.log_streams == 2
    assert report.follows == 1


def test_an_exited_container_ends_and_is_picked_up_again_when_it_restarts(
    harness: StreamHarness, make_container: Callable[..., str], docker_api: Any, label: str
) -> None:
    manager = harness.manager()
    sub, sink = harness.subscriber()
    ask(manager, FollowContainers(sub, {"label": [f"follow={label}"]}))
    # Each run prints its own number (the container's filesystem survives a restart).
    script = "n=$(cat /tmp/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /tmp/n; echo run $n"
    cid = make_container(["sh", "-c", script + "; sleep 0.5"], labels={"follow": label})
    wait_until(lambda: ends_of(sink, cid), 10)
    assert lines_of(sink, cid) == ["run 1"]
    assert ends_of(sink, cid)[0].reason == "exited"
    docker_api.start(cid)
    wait_until(lambda: len(ends_of(sink, cid)) == 2, 10)
    assert lines_of(sink, cid) == ["run 1", "run 2"]  # the first run not repeated
    assert [e.reason for e in ends_of(sink, cid)] == ["exited", "exited"]


def test_containers_that_exit_at_once_are_read_to_their_end(
    harness: StreamHarness, make_container: Callable[..., str], docker_api: Any, label: str
) -> None:
    # Jobs of a few milliseconds have exited before their start event is acted on.
    manager = harness.manager()
    sub, sink = harness.subscriber()
    ask(manager, FollowContainers(sub, {"label": [f"follow={label}"]}, tail=0))
    jobs = [make_container(numbered_lines_cmd(20), labels={"follow": label}) for _ in range(6)]
    expected = [f"{kind} {i}" for i in range(1, 21) for kind in ("out", "err")]
    for cid in jobs:
        wait_until(lambda cid=cid: ends_of(sink, cid), 15)
        assert sorted(lines_of(sink, cid)) == sorted(expected), cid[:12]
        assert [e.reason for e in ends_of(sink, cid)] == ["exited"]
    docker_api.start(jobs[0])  # a second run: read from the first run's end, nothing twice
    wait_until(lambda: len(ends_of(sink, jobs[0])) == 2, 15)
    assert sorted(lines_of(sink, jobs[0])) == sorted(expected * 2)


def test_unsubscribe_ends_every_followed_container(
    harness: StreamHarness, make_container: Callable[..., str], label: str
) -> None:
    manager = harness.manager()
    loop = "i=0; while true; do echo tick $i; i=$((i+1)); usleep 20000; done"
    cids = [make_container(["sh", "-c", loop], labels={"follow": label}) for _ in range(3)]
    sub, sink = harness.subscriber()
    subscription = ask(manager, FollowContainers(sub, {"label": [f"follow={label}"]}))
    wait_until(lambda: all(lines_of(sink, cid) for cid in cids), 10)
    assert ask(manager, Unsubscribe(subscription.id)) is True
    for cid in cids:
        wait_until(lambda cid=cid: ends_of(sink, cid), 5)
        assert ends_of(sink, cid)[0].reason == "unsubscribed"
    wait_until(lambda: LogStreamEnded("", "unsubscribed", subscription.id) in sink, 5)
    wait_until(lambda: stats(manager).log_streams == 0, 5)
    count = len(sink)
    time.sleep(0.3)
    assert len(sink) == count
    report = stats(manager)
    assert (report.follows, report.event_streams, report.subscriptions) == (0, 0, 0)


@pytest.mark.slow  # a load run: scripts/test.sh --quick leaves it out
def test_fifty_containers_are_followed_at_once(
    harness: StreamHarness, make_container: Callable[..., str], docker_api: Any, label: str
) -> None:
    manager = harness.manager()
    script = "echo first; sleep 2; echo second; sleep 60"
    with ThreadPoolExecutor(8) as pool:  # creating containers is the slow part (vfs)
        cids = list(
            pool.map(
                lambda _: make_container(["sh", "-c", script], labels={"follow": label}),
                range(50),
            )
        )
        sub, sink = harness.subscriber()
        ask(manager, FollowContainers(sub, {"label": [f"follow={label}"]}))
        wait_until(lambda: all(lines_of(sink, cid) == ["first", "second"] for cid in cids), 20)
        report = stats(manager)
        assert report.log_streams == 50
        assert report.event_streams == 1
        # Remove them in parallel (the fixture would, one by one); each stream ends.
        list(pool.map(lambda cid: docker_api.remove_container(cid, force=True), cids))
    wait_until(lambda: all(ends_of(sink, cid) for cid in cids), 15)
    ends = [e for cid in cids for e in ends_of(sink, cid)]
    assert all(isinstance(e, LogStreamEnded) for e in ends), ends
    assert {e.reason for e in ends if isinstance(e, LogStreamEnded)} <= {"exited", "removed"}
    wait_until(lambda: stats(manager).log_streams == 0, 10)


def test_containers_past_max_concurrent_streams_are_reported_to_the_subscriber(
    harness: StreamHarness, make_container: Callable[..., str], label: str
) -> None:
    manager = harness.manager(performance={"max_concurrent_streams": 3})
    cids = [
        make_container(["sh", "-c", "echo hi; sleep 60"], labels={"follow": label})
        for _ in range(3)
    ]
    sub, sink = harness.subscriber()
    ask(manager, FollowContainers(sub, {"label": [f"follow={label}"]}))  # + 1 event stream
    errors = wait_until(
        lambda: [m for m in list(sink) if isinstance(m, LogStreamError) and m.container_id], 10
    )
    assert len(errors) == 1
    assert "max_concurrent_streams" in errors[0].error
    wait_until(lambda: sum(1 for cid in cids if lines_of(sink, cid) == ["hi"]) == 2, 10)


def test_a_crashed_event_stream_is_replaced_and_later_containers_are_followed(
    harness: StreamHarness, make_container: Callable[..., str], docker_api: Any, label: str
) -> None:
    foreign = {ref.actor_urn for ref in pykka.ActorRegistry.get_by_class_name("EventStream")}
    manager = harness.manager()
    sub, sink = harness.subscriber()
    ask(manager, FollowContainers(sub, {"label": [f"follow={label}"]}))
    mine = [
        ref
        for ref in pykka.ActorRegistry.get_by_class_name("EventStream")
        if ref.actor_urn not in foreign
    ]
    assert len(mine) == 1
    # Created now, started during the gap (before the manager replaced the stream) or after.
    during = make_container(
        ["sh", "-c", "echo during; sleep 60"], labels={"follow": label}, start=False
    )
    mine[0].tell("crash")  # an unknown message by tell fails a Pykka actor
    docker_api.start(during)
    wait_until(lambda: lines_of(sink, during) == ["during"], 10)
    later = make_container(["sh", "-c", "echo later; sleep 60"], labels={"follow": label})
    wait_until(lambda: lines_of(sink, later) == ["later"], 10)
    report = stats(manager)
    assert (report.event_streams, report.follows, report.log_streams) == (1, 1, 2)
    assert not ends_of(sink, "")  # the subscription itself never ended


def test_exclude_filters_and_a_name_pattern_narrow_what_is_followed(
    harness: StreamHarness, make_container: Callable[..., str], label: str
) -> None:
    manager = harness.manager()
    cmd = ["sh", "-c", "echo hi; sleep 60"]
    names = {k: f"{k}-{label}" for k in ("ap-keep", "ap-skiplabel", "ap-x-no", "other")}
    ids = {
        k: make_container(
            cmd, name=n, labels={"follow": label, **({"skip": ""} if "skiplabel" in k else {})}
        )
        for k, n in names.items()
    }
    sub, sink = harness.subscriber()
    request = FollowContainers(
        sub,
        {"label": [f"follow={label}"]},
        exclude={"label": ["skip"], "name": [f"*-no-{label}"]},
        name="ap-*",
    )
    ask(manager, request)
    wait_until(lambda: lines_of(sink, ids["ap-keep"]) == ["hi"], 10)
    late = make_container(cmd, name=f"ap-late-{label}", labels={"follow": label, "skip": "1"})
    later = make_container(cmd, name=f"ap-later-{label}", labels={"follow": label})
    wait_until(lambda: lines_of(sink, later) == ["hi"], 10)
    followed = {m.container_id for m in sink if isinstance(m, LogChunk)}
    assert followed == {ids["ap-keep"], later}
    assert late not in followed
    with pytest.raises(ValueError, match="label, name and image"):
        FollowContainers(sub, exclude={"status": "running"})


class Keeper(pykka.ThreadingActor):
    """A subscriber that records every message and keeps each chunk's position once recorded."""

    def __init__(self, sink: list[Any], store: FilePositionStore) -> None:
        super().__init__()
        self.sink = sink
        self.store = store

    def on_receive(self, message: Any) -> None:
        self.sink.append(message)
        if isinstance(message, LogChunk) and message.position is not None:
            self.store.update(message.container_id, message.position)


def test_a_position_store_continues_every_container_across_a_restart_of_the_follower(
    harness: StreamHarness,
    make_container: Callable[..., str],
    docker_api: Any,
    label: str,
    tmp_path: Path,
) -> None:
    path = tmp_path / "positions.json"
    labels = {"follow": label}
    loop = "i=1; while true; do echo {p} $i; echo {p}e $i >&2; i=$((i+1)); usleep 20000; done"
    steady = make_container(["sh", "-c", loop.format(p="a")], labels=labels)
    ending = make_container(numbered_lines_cmd(150, delay=0.02), labels=labels)
    removed = make_container(["sh", "-c", loop.format(p="c")], labels=labels)

    store = FilePositionStore(path, interval=None)
    first: list[Any] = []
    ref = Keeper.start(first, store)
    try:
        manager = harness.manager()
        follow = FollowContainers(ref, {"label": [f"follow={label}"]}, positions=store)
        subscription = ask(manager, follow)
        wait_until(lambda: all(lines_of(first, c) for c in (steady, ending, removed)), 10)
        ask(manager, Unsubscribe(subscription.id))
        wait_until(lambda: LogStreamEnded("", "unsubscribed", subscription.id) in first, 10)
    finally:
        ref.stop()
    foreign = "other/" + "f" * 64  # a container of another endpoint: not this Follow's business
    store.update(foreign, LogPosition((1, 1), None))
    store.save()

    # While nobody follows: one container ends, one is removed, one new one starts.
    wait_for_state(docker_api, ending, "exited", timeout=20)
    docker_api.remove_container(removed, force=True)
    new = make_container(["sh", "-c", "echo n 1; echo n 2; sleep 60"], labels=labels)

    again = FilePositionStore(path, interval=None)
    assert set(again.positions()) == {steady, ending, removed, foreign}
    second: list[Any] = []
    ref = Keeper.start(second, again)
    try:
        follow = FollowContainers(ref, {"label": [f"follow={label}"]}, positions=again)
        ask(harness.manager(), follow)
        wait_until(lambda: [e.reason for e in ends_of(second, ending)] == ["exited"], 20)
        wait_until(lambda: lines_of(second, new) == ["n 1", "n 2"], 10)
        wait_until(lambda: len(lines_of(second, steady)) > 20, 10)
    finally:
        ref.stop()

    def both(cid: str, source: str | None = None) -> list[str]:
        return [
            line.text
            for m in (*first, *second)
            if isinstance(m, LogChunk) and m.container_id == cid
            for line in m.lines
            if source is None or line.stream == source
        ]

    # Read to its end although it exited while nobody followed: every line exactly once.
    assert both(ending, "stdout") == [f"out {i}" for i in range(1, 151)]
    assert both(ending, "stderr") == [f"err {i}" for i in range(1, 151)]
    for prefix in ("a", "ae"):
        got = [int(t.split()[1]) for t in both(steady) if t.split()[0] == prefix]
        assert got == list(range(1, len(got) + 1))  # no gap, no duplicate across the restart
    assert removed not in again.positions()  # the daemon no longer has it: forgotten
    assert foreign in again.positions()  # kept: another endpoint's Follow would resume it
    assert not lines_of(second, removed)
