"""Tests of actorpool.pool.frontdoor against real daemons: routing, fan-out, partial results.

Two endpoints may name the same daemon (the shared sandbox): each still gets a
pool of its own, which is what routing and merging need. A dead endpoint is a
socket path where nothing listens. The frozen and restarted daemons are in
tests/test_runtime.py.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pykka
import pytest

import actorpool
from actorpool.errors import (
    EndpointRequired,
    FanOutError,
    NotFound,
    UnknownEndpoint,
    UnknownMessage,
)
from actorpool.messages import (
    DockerEvent,
    FollowContainers,
    HealthAlert,
    Info,
    InspectContainer,
    ListContainers,
    LogChunk,
    LogStreamEnded,
    Ping,
    PoolStatus,
    PoolStatusReport,
    StreamStats,
    SubscribeEvents,
    SubscribeLogs,
    Subscription,
    Unsubscribe,
    Version,
)
from actorpool.pool.frontdoor import FanOutFuture

from helpers import wait_until
from streamkit import Collector

MakeConfig = Callable[..., Any]


@pytest.fixture
def label() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture
def twin(make_config: MakeConfig, sandbox: Any) -> Any:
    """A pool of two endpoints, ``a`` and ``b``, both on the shared daemon."""
    with actorpool.start(make_config(endpoints={"a": sandbox, "b": sandbox})) as pool:
        yield pool


@pytest.fixture
def collector() -> Any:
    sink: list[Any] = []
    ref = Collector.start(sink)
    yield ref, sink
    ref.stop(timeout=10)


def test_list_containers_fans_out_into_one_list_tagged_with_endpoints(
    twin: Any, make_container: Callable[..., str], label: str
) -> None:
    cid = make_container(["sleep", "60"], labels={"t": label})
    filters = {"label": [f"t={label}"]}
    merged = twin.router.ask(ListContainers(filters=filters))
    assert sorted((c["Id"], c["Endpoint"]) for c in merged) == [(cid, "a"), (cid, "b")]
    only_b = twin.router.ask(ListContainers(filters=filters, endpoint="b"))
    assert [c["Id"] for c in only_b] == [cid]
    assert "Endpoint" not in only_b[0]


def test_other_list_likes_fan_out_into_a_mapping(twin: Any) -> None:
    assert twin.router.ask(Ping()) == {"a": True, "b": True}
    infos = twin.router.ask(Info())
    assert set(infos) == {"a", "b"}
    assert infos["a"]["ID"] == infos["b"]["ID"]  # the same daemon behind both
    assert set(twin.router.ask(Version())) == {"a", "b"}
    statuses = twin.router.ask(PoolStatus())
    assert set(statuses) == {"a", "b"}
    assert all(isinstance(r, PoolStatusReport) for r in statuses.values())
    assert set(twin.router.ask(StreamStats())) == {"a", "b"}
    assert twin.statuses().keys() == {"a", "b"}


def test_one_object_needs_its_endpoint(twin: Any, make_container: Callable[..., str]) -> None:
    cid = make_container(["sleep", "60"])
    with pytest.raises(EndpointRequired, match="name one with endpoint="):
        twin.router.ask(InspectContainer(cid))
    assert twin.router.ask(InspectContainer(cid, endpoint="a"))["Id"] == cid
    with pytest.raises(NotFound):
        twin.router.ask(InspectContainer("no-such-container-here", endpoint="b"))
    with pytest.raises(UnknownEndpoint, match="no endpoint named 'c'; this pool has 'a', 'b'"):
        twin.router.ask(Ping(endpoint="c"))
    with pytest.raises(EndpointRequired):
        twin.status()
    assert twin.status(endpoint="b").size >= 1
    with pytest.raises(UnknownMessage):
        twin.router.ask(object())


def test_a_single_endpoint_pool_takes_its_name_or_none(make_config: MakeConfig) -> None:
    with actorpool.start(make_config()) as pool:
        assert pool.endpoints == ("default",)
        assert pool.router.ask(Ping()) is True
        assert pool.router.ask(Ping(endpoint="default")) is True
        assert isinstance(pool.router.ask(ListContainers()), list)
        with pytest.raises(UnknownEndpoint):
            pool.router.ask(Ping(endpoint="other"))


@pytest.fixture
def half_dead(make_config: MakeConfig, sandbox: Any, tmp_path: Path) -> Any:
    """A pool of endpoint ``live`` (the shared daemon) and ``dead`` (nothing listens there)."""
    dead = f"unix://{tmp_path}/nobody.sock"
    config = make_config(endpoints={"live": sandbox, "dead": dead}, pool={"max_retries": 50})
    with actorpool.start(config) as pool:
        yield pool


def test_a_fan_out_with_a_dead_endpoint_returns_the_live_answers_by_its_deadline(
    half_dead: Any,
) -> None:
    pool = half_dead
    started = time.monotonic()
    with pytest.raises(FanOutError) as info:
        pool.router.ask(Ping(), timeout=1.0)
    took = time.monotonic() - started
    error = info.value
    assert error.partial == {"live": True}
    assert set(error.failures) == {"dead"}
    assert "1 of 2 endpoints failed" in str(error)
    assert "dead:" in str(error)
    assert took < 1.0 + 1.0  # its deadline, and slack for a loaded machine
    # A merged list: the live endpoint's containers, each tagged.
    with pytest.raises(FanOutError) as listed:
        pool.router.ask(ListContainers(all=True, timeout=1.0))
    assert all(c["Endpoint"] == "live" for c in listed.value.partial)
    assert set(listed.value.failures) == {"dead"}


def test_block_false_gives_a_future_and_a_short_get_leaves_it_pending(half_dead: Any) -> None:
    pool = half_dead
    future = pool.router.ask(Ping(timeout=2.0), block=False)
    assert isinstance(future, FanOutFuture)
    with pytest.raises(pykka.Timeout):
        future.get(timeout=0.05)
    with pytest.raises(FanOutError) as info:
        future.get()
    assert info.value.partial == {"live": True}
    assert time.monotonic() <= future.deadline + 0.5


def test_log_subscriptions_name_their_endpoint_and_chunks_carry_it(
    twin: Any, make_container: Callable[..., str], collector: Any
) -> None:
    ref, sink = collector
    cid = make_container(["sh", "-c", "echo hello; sleep 60"])
    with pytest.raises(EndpointRequired):
        twin.router.ask(SubscribeLogs(cid, ref))
    sub = twin.router.ask(SubscribeLogs(cid, ref, endpoint="b"))
    assert sub.id.startswith("b/")
    wait_until(lambda: any(isinstance(m, LogChunk) for m in sink), timeout=20)
    chunk = next(m for m in sink if isinstance(m, LogChunk))
    assert (chunk.endpoint, chunk.lines[0].text) == ("b", "hello")
    assert twin.router.ask(Unsubscribe(sub.id)) is True
    wait_until(lambda: any(isinstance(m, LogStreamEnded) for m in sink), timeout=20)
    ended = next(m for m in sink if isinstance(m, LogStreamEnded))
    assert ended.endpoint == "b"


def test_follow_containers_covers_every_endpoint_or_the_named_ones(
    twin: Any, make_container: Callable[..., str], collector: Any, label: str
) -> None:
    ref, sink = collector
    cid = make_container(["sh", "-c", "echo one; sleep 60"], labels={"f": label})
    filters = {"label": [f"f={label}"]}
    both = twin.router.ask(FollowContainers(ref, filters=filters))
    assert isinstance(both, Subscription)
    assert sorted(part.split("/")[0] for part in both.id.split("+")) == ["a", "b"]

    def endpoints_seen() -> set[str]:
        return {m.endpoint for m in list(sink) if isinstance(m, LogChunk) and m.container_id == cid}

    wait_until(lambda: endpoints_seen() == {"a", "b"}, timeout=20)
    assert twin.router.ask(Unsubscribe(both.id)) is True
    assert twin.router.ask(StreamStats(endpoint="a")).follows == 0
    assert twin.router.ask(StreamStats(endpoint="b")).follows == 0

    one = twin.router.ask(FollowContainers(ref, filters=filters, endpoints="b"))
    assert "+" not in one.id
    assert one.id.startswith("b/")
    assert twin.router.ask(StreamStats(endpoint="a")).follows == 0
    assert twin.router.ask(StreamStats(endpoint="b")).follows == 1


def test_event_subscriptions_cover_the_named_endpoints(
    twin: Any, make_container: Callable[..., str], collector: Any, label: str
) -> None:
    ref, sink = collector
    sub = twin.router.ask(SubscribeEvents(ref, filters={"label": [f"e={label}"]}, endpoints="a"))
    assert sub.id.startswith("a/")
    make_container(["true"], labels={"e": label})
    wait_until(lambda: any(isinstance(m, DockerEvent) for m in sink), timeout=20)
    events = [m for m in list(sink) if isinstance(m, DockerEvent)]
    assert {e.endpoint for e in events} == {"a"}
    with pytest.raises(UnknownEndpoint):
        twin.router.ask(SubscribeEvents(ref, endpoints=("a", "zz")))


def test_alerts_and_metrics_name_the_endpoint_that_is_down(
    make_config: MakeConfig, sandbox: Any, tmp_path: Path
) -> None:
    alerts: list[HealthAlert] = []
    dead = f"unix://{tmp_path}/nobody.sock"
    config = make_config(endpoints={"live": sandbox, "dead": dead})
    with actorpool.start(config, alerts=alerts.append) as pool:

        def up(name: str) -> float | None:
            return pool.metrics.registry.get_sample_value("docker_endpoint_up", {"endpoint": name})

        wait_until(lambda: up("dead") == 0, timeout=30, message="dead endpoint reported down")
        assert up("live") == 1
        # (The live endpoint may alert too on a loaded machine: a slow list is "degrading".)
        wait_until(
            lambda: any(a.endpoint == "dead" and a.new == "unhealthy" for a in list(alerts)),
            timeout=30,
            message="an unhealthy alert from endpoint dead",
        )
        text = pool.metrics.render()
        assert 'docker_pool_size{endpoint="live"}' in text
        assert 'docker_pool_size{endpoint="dead"}' in text
