"""actorpool against Podman's Docker-compatible API: every message, as against dockerd.

The service is the session's private ``podman system service`` (the ``podman``
fixture). Where Podman answers differently, the test says how, and what
actorpool makes of it (docs/engines.md has the table).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

import actorpool
from actorpool.errors import BadResponse, Conflict, NotFound
from actorpool.messages import (
    ContainerLogs,
    ContainerStats,
    DockerEvent,
    Execute,
    FollowContainers,
    Info,
    InspectContainer,
    ListContainers,
    ListImages,
    LogChunk,
    LogStreamEnded,
    LogStreamError,
    Ping,
    StreamStats,
    StreamStatsReport,
    SubscribeEvents,
    SubscribeLogs,
    Version,
)
from actorpool.testing.podman import PodmanService
from actorpool.testing.sandbox import IMAGE

from helpers import numbered_lines_cmd, stderr_on_cue_cmd, wait_for_state, wait_until
from streamkit import StreamHarness, ask


@pytest.fixture
def pool(podman: PodmanService, make_config: Any) -> Iterator[actorpool.Pool]:
    # Health rounds are not what these tests are about (and a loaded machine slows them).
    config = make_config(
        podman.url, pool={"min_pool_size": 1, "pool_size": 2, "health_check_interval": 3600}
    )
    with actorpool.start(config) as started:
        yield started


def test_ping_version_info_and_images(pool: actorpool.Pool) -> None:
    router = pool.router
    assert router.ask(Ping()) is True
    version = router.ask(Version())
    assert next(c["Name"] for c in version["Components"]) == "Podman Engine"
    assert router.ask(Info())["ServerVersion"] == version["Version"]
    tags = [tag for image in router.ask(ListImages()) for tag in image["RepoTags"]]
    assert f"localhost/{IMAGE}" in tags


def test_list_inspect_and_filters(
    pool: actorpool.Pool, podman_api: Any, make_container: Any
) -> None:
    running = make_container("sleep 300", labels={"ap.engine": "podman"}, api=podman_api)
    exited = make_container(["sh", "-c", "exit 3"], labels={"ap.engine": "podman"}, api=podman_api)
    wait_for_state(podman_api, exited, "exited")
    router = pool.router
    labelled = router.ask(ListContainers(all=True, filters={"label": ["ap.engine=podman"]}))
    assert {c["Id"] for c in labelled} == {running, exited}
    live = router.ask(ListContainers(filters={"label": ["ap.engine=podman"]}))
    assert [c["Id"] for c in live] == [running]
    info = router.ask(InspectContainer(running[:12]))
    assert info["Id"] == running
    assert info["State"]["Running"] is True
    assert router.ask(InspectContainer(exited))["State"]["ExitCode"] == 3
    with pytest.raises(NotFound, match="no such container"):
        router.ask(InspectContainer("nosuch"))


def test_stats_of_a_running_container(
    pool: actorpool.Pool, podman_api: Any, make_container: Any
) -> None:
    cid = make_container("sleep 300", api=podman_api)
    sample = pool.router.ask(ContainerStats(cid))
    # Podman samples once: no previous sample to compute a CPU share from.
    assert sample["cpu_stats"]["cpu_usage"]["total_usage"] > 0
    assert sample["precpu_stats"]["cpu_usage"]["total_usage"] == 0
    assert sample["memory_stats"]["usage"] > 0


def test_stats_of_an_exited_container_is_a_bad_response_not_a_sick_connection(
    podman: PodmanService, make_config: Any, podman_api: Any, make_container: Any
) -> None:
    # Podman answers HTTP 200 with an empty body here (dockerd: a sample of zeros).
    config = make_config(
        podman.url,
        pool={
            "min_pool_size": 2,
            "pool_size": 2,
            "unhealthy_threshold": 1,
            "health_check_interval": 3600,  # only the calls judge the connections
        },
        circuit_breaker={"failure_threshold": 1},
    )
    cid = make_container(["true"], api=podman_api)
    wait_for_state(podman_api, cid, "exited")
    alerts: list[Any] = []
    with actorpool.start(config, alerts=alerts.append) as pool:
        with pytest.raises(BadResponse, match=r"container_stats: .* an empty body") as info:
            pool.router.ask(ContainerStats(cid), timeout=30)
        assert info.value.explanation == ""
        for _ in range(3):  # again and again: still only this request's problem
            with pytest.raises(BadResponse):
                pool.router.ask(ContainerStats(cid), timeout=30)
        retries = pool.metrics.value("docker_request_retries_total", operation="container_stats")
        assert not retries, "a bad answer is never retried"
        status = pool.status()
        assert {(c.state, c.breaker, c.consecutive_failures) for c in status.connections} == {
            ("healthy", "closed", 0)
        }
        assert pool.router.ask(Ping()) is True
    assert [a for a in alerts if a.kind in ("connection", "breaker")] == []


def test_podmans_http_500_conflicts_are_conflicts(
    pool: actorpool.Pool, podman_api: Any, make_container: Any
) -> None:
    running = make_container("sleep 300", name="ap-conflict", api=podman_api)
    exited = make_container(["true"], api=podman_api)
    wait_for_state(podman_api, exited, "exited")
    router = pool.router
    calls = [
        lambda c: c.remove_container(running),  # running: needs force
        lambda c: c.kill(exited),  # not running
        lambda c: c.create_container(IMAGE, "true", name="ap-conflict"),  # name in use
    ]
    for call in calls:
        with pytest.raises(Conflict) as info:
            router.ask(Execute(call), timeout=20)
        assert info.value.status == 500
    assert {c.state for c in pool.status().connections} == {"healthy"}


def test_container_logs_have_whole_second_timestamps(
    pool: actorpool.Pool, podman_api: Any, make_container: Any
) -> None:
    cid = make_container(numbered_lines_cmd(50), api=podman_api)
    wait_for_state(podman_api, cid, "exited")
    lines = pool.router.ask(ContainerLogs(cid))
    assert [ln.text for ln in lines if ln.stream == "stdout"] == [f"out {i}" for i in range(1, 51)]
    assert [ln.text for ln in lines if ln.stream == "stderr"] == [f"err {i}" for i in range(1, 51)]
    assert all(ln.timestamp % 1_000_000_000 == 0 for ln in lines)
    assert abs(lines[0].timestamp / 1e9 - time.time()) < 120


def test_execute_runs_docker_py_calls(
    pool: actorpool.Pool, podman_api: Any, make_container: Any
) -> None:
    cid = make_container("sleep 300", api=podman_api)
    top = pool.router.ask(Execute(lambda client: client.top(cid)))
    assert any("sleep" in " ".join(p) for p in top["Processes"])


# --- log follows ----------------------------------------------------------------------------


def _texts(sink: list[Any], source: str) -> list[str]:
    return [
        line.text
        for m in list(sink)
        if isinstance(m, LogChunk)
        for line in m.lines
        if line.stream == source
    ]


def _end(sink: list[Any]) -> LogStreamEnded | LogStreamError | None:
    return next((m for m in list(sink) if isinstance(m, LogStreamEnded | LogStreamError)), None)


def test_a_follow_loses_and_repeats_nothing_across_restarts_of_the_service(
    podman: PodmanService, harness: StreamHarness, podman_api: Any, make_container: Any
) -> None:
    # Whole-second timestamps: the cursor (second, lines seen in it) resumes with since=second
    # (inclusive, tail=all) and skips what it already delivered; several hundred lines a
    # second per source share each timestamp. Half the restarts are SIGKILLs.
    manager = harness.manager(
        podman.url, streams={"reconnect_initial_delay": 0.05, "reconnect_max_delay": 0.5}
    )
    n = 5000
    cid = make_container(numbered_lines_cmd(n, delay=0.002), api=podman_api)
    sub, sink = harness.subscriber()
    ask(manager, SubscribeLogs(cid, sub))
    restarts = 0
    while podman_api.inspect_container(cid)["State"]["Running"] and restarts < 5:
        seen = len(sink)
        wait_until(lambda seen=seen: len(sink) > seen, 20, message="lines since the restart")
        podman.restart(kill=restarts % 2 == 1)
        restarts += 1
    end = wait_until(lambda: _end(sink), 60, message="the stream's end")
    assert isinstance(end, LogStreamEnded), end
    assert restarts >= 3, "the container ended before the service was restarted 3 times"
    out, err = podman.cli_logs(cid)
    for source, reference in (("stdout", out), ("stderr", err)):
        got = _texts(sink, source)
        assert got == reference.decode().splitlines(), source
        assert len(got) == n
    report: StreamStatsReport = ask(manager, StreamStats())
    # A restart cuts the follow streams, or a catch-up read that then resumes.
    assert report.reconnects + report.resumed_lines > 0
    assert report.resume_gaps == 0


def test_a_source_quiet_in_the_starting_window_loses_nothing_with_whole_second_stamps(
    podman: PodmanService, harness: StreamHarness, podman_api: Any, make_container: Any
) -> None:
    # stderr has no line in the starting window (tail=1) and starts when told, while stdout
    # goes on (resume_tail 5). Whole-second stamps cannot place the window's line within its
    # second, nor check a bounded read against it: the stderr follower reads everything
    # from a second before it, and every stderr line arrives, once, from the first.
    manager = harness.manager(podman.url, streams={"resume_tail": 5})
    cid = make_container(stderr_on_cue_cmd(), api=podman_api)
    wait_until(lambda: b"out 200" in podman_api.logs(cid), 20)
    sub, sink = harness.subscriber()
    ask(manager, SubscribeLogs(cid, sub, tail=1))
    wait_until(lambda: len(_texts(sink, "stdout")) > 300, 30)
    assert _texts(sink, "stderr") == []
    podman_api.exec_start(podman_api.exec_create(cid, ["touch", "/go"]))
    wait_until(lambda: len(_texts(sink, "stderr")) > 300, 30)
    got = _texts(sink, "stderr")
    assert got == [f"err {i}" for i in range(1, len(got) + 1)]


def _counting_container(podman_api: Any, make_container: Any) -> str:
    """A container printing ``out 1``, ``out 2``, ... (~1000 a second), 300 lines in."""
    script = "i=0; while :; do i=$((i+1)); echo out $i; usleep 1000; done"
    cid: str = make_container(["sh", "-c", script], api=podman_api)
    wait_until(lambda: b"out 300" in podman_api.logs(cid), 20)
    return cid


def _assert_consecutive(lines: list[str]) -> None:
    """``out n``, ``out n+1``, ...: no line repeated, none older, no gap."""
    got = [int(text.split()[1]) for text in lines]
    assert got == list(range(got[0], got[0] + len(got)))


def test_a_tail_window_is_followed_by_the_lines_after_it_once(
    podman: PodmanService, harness: StreamHarness, podman_api: Any, make_container: Any
) -> None:
    # tail=5 of a container writing ~1000 lines a second: the window's last line shares its
    # whole-second stamp with hundreds of lines before it. The follow after the window must
    # start right after its last line: no line of the window again, none older, no gap.
    manager = harness.manager(podman.url)
    cid = _counting_container(podman_api, make_container)
    sub, sink = harness.subscriber()
    ask(manager, SubscribeLogs(cid, sub, tail=5))
    wait_until(lambda: len(_texts(sink, "stdout")) > 500, 30)
    _assert_consecutive(_texts(sink, "stdout"))


def test_a_late_subscriber_gets_its_tail_then_the_lines_after_it_once(
    podman: PodmanService, harness: StreamHarness, podman_api: Any, make_container: Any
) -> None:
    # A second subscription (tail=5) to a followed container: with whole-second stamps its
    # history cannot be joined to the shared stream's live lines exactly (hundreds of lines
    # share each second), so it gets a stream of its own, which starts exactly after its tail.
    manager = harness.manager(podman.url)
    cid = _counting_container(podman_api, make_container)
    first, first_sink = harness.subscriber()
    ask(manager, SubscribeLogs(cid, first, tail=0))
    wait_until(lambda: len(_texts(first_sink, "stdout")) > 100, 30)
    late, sink = harness.subscriber()
    ask(manager, SubscribeLogs(cid, late, tail=5))
    wait_until(lambda: len(_texts(sink, "stdout")) > 500, 30)
    _assert_consecutive(_texts(first_sink, "stdout"))
    _assert_consecutive(_texts(sink, "stdout"))
    report: StreamStatsReport = ask(manager, StreamStats())
    assert report.log_streams == 2


def test_following_an_exited_container_reads_its_whole_log(
    podman: PodmanService, harness: StreamHarness, podman_api: Any, make_container: Any
) -> None:
    # Podman's follow=1 of an exited container returns a prefix and scattered lines (or
    # hangs): actorpool sees the container is not running and reads without follow.
    manager = harness.manager(podman.url)
    n = 20000
    cid = make_container(numbered_lines_cmd(n), api=podman_api)
    wait_for_state(podman_api, cid, "exited")
    sub, sink = harness.subscriber()
    ask(manager, SubscribeLogs(cid, sub))
    end = wait_until(lambda: _end(sink), 60, message="the stream's end")
    assert isinstance(end, LogStreamEnded), end
    assert end.reason == "exited"
    out, err = podman.cli_logs(cid)
    assert _texts(sink, "stdout") == out.decode().splitlines()
    assert _texts(sink, "stderr") == err.decode().splitlines()
    assert len(_texts(sink, "stdout")) == n


# --- events and FollowContainers --------------------------------------------------------------


def _actions(sink: list[Any], cid: str) -> list[str]:
    return [m.action for m in list(sink) if isinstance(m, DockerEvent) and m.id == cid]


def test_events_use_dockers_names_and_survive_a_service_restart(
    podman: PodmanService, harness: StreamHarness, podman_api: Any, make_container: Any
) -> None:
    # Podman's filter names are died/remove and a removal is reported as remove: actorpool
    # translates both ways, so the same filters work on either engine.
    manager = harness.manager(
        podman.url, streams={"reconnect_initial_delay": 0.05, "reconnect_max_delay": 0.5}
    )
    sub, sink = harness.subscriber()
    ask(manager, SubscribeEvents(sub, {"type": ["container"], "event": ["die", "destroy"]}))
    podman.restart()  # the event stream reconnects
    cid = make_container(["sh", "-c", "exit 7"], api=podman_api)
    wait_until(lambda: _actions(sink, cid) == ["die"], 30, message="the die event")
    podman_api.remove_container(cid)
    wait_until(lambda: _actions(sink, cid) == ["die", "destroy"], 30, message="destroy")
    die = next(m for m in sink if isinstance(m, DockerEvent) and m.id == cid)
    assert die.attributes["exitCode"] == "7"


def test_follow_containers_follows_running_and_new_containers_to_their_end(
    podman: PodmanService, harness: StreamHarness, podman_api: Any, make_container: Any
) -> None:
    manager = harness.manager(podman.url)
    sub, sink = harness.subscriber()
    # Runs until killed, so the test does not depend on how fast the follow starts.
    running = make_container(
        ["sh", "-c", "echo first; sleep 300"], labels={"ap.fc": "1"}, api=podman_api
    )
    ask(manager, FollowContainers(sub, {"label": ["ap.fc=1"]}))
    later = make_container(
        ["sh", "-c", "echo later; sleep 3"], labels={"ap.fc": "1"}, api=podman_api
    )
    make_container(["sh", "-c", "echo other"], labels={"ap.fc": "2"}, api=podman_api)

    def lines() -> set[tuple[str, str]]:
        return {
            (m.container_id, ln.text)
            for m in list(sink)
            if isinstance(m, LogChunk)
            for ln in m.lines
        }

    wait_until(lambda: (running, "first") in lines(), 30, message="the running one's line")
    podman_api.kill(running)

    def ended() -> set[str]:
        return {m.container_id for m in list(sink) if isinstance(m, LogStreamEnded)}

    wait_until(lambda: ended() >= {running, later}, 30, message="both streams' ends")
    assert lines() == {(running, "first"), (later, "later")}


# --- the CLI ------------------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "NO_COLOR")}
    return subprocess.run(
        [sys.executable, "-m", "actorpool", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_the_cli_ps_logs_and_health_with_dash_h(
    podman: PodmanService, podman_api: Any, make_container: Any
) -> None:
    running = make_container("sleep 300", name="ap-cli-ps", api=podman_api)
    done = make_container(numbered_lines_cmd(3), name="ap-cli-logs", api=podman_api)
    wait_for_state(podman_api, done, "exited")
    ps = _cli("ps", "-H", podman.url)
    assert ps.returncode == 0, ps.stderr
    row = next(line for line in ps.stdout.splitlines() if line.startswith(running[:12]))
    assert row.endswith("ap-cli-ps")
    logs = _cli("logs", "-H", podman.url, "ap-cli-logs")
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.splitlines() == ["out 1", "out 2", "out 3"]
    assert logs.stderr.splitlines() == ["err 1", "err 2", "err 3"]
    health = _cli("health", "-H", podman.url)
    assert health.returncode == 0, health.stderr
    assert health.stdout.splitlines()[-1].startswith("pool ok:")
