"""actorpool against Podman's Docker-compatible API: every message, as against dockerd.

The service is the session's private ``podman system service`` (the ``podman``
fixture). Where Podman answers differently, the test says how, and what
actorpool makes of it (docs/engines.md has the table).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

import actorpool
from actorpool.errors import NotFound
from actorpool.messages import (
    ContainerLogs,
    ContainerStats,
    Execute,
    Info,
    InspectContainer,
    ListContainers,
    ListImages,
    Ping,
    Version,
)
from actorpool.testing.podman import PodmanService
from actorpool.testing.sandbox import IMAGE

from helpers import numbered_lines_cmd, wait_for_state


@pytest.fixture
def pool(podman: PodmanService, make_config: Any) -> Iterator[actorpool.Pool]:
    config = make_config(podman.url, pool={"min_pool_size": 1, "pool_size": 2})
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
