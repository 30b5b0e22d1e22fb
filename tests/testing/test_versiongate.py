"""The version gate answers like Docker Engine 29's API floor, which cannot be installed here.

Engine 29 refuses API < 1.44 with HTTP 400 and the words below (moby
daemon/server/middleware/version.go); VersionGate stands in for it in front of the
sandbox's dockerd 20.10, so these tests check the stand-in itself with plain docker-py.
"""

from __future__ import annotations

from collections.abc import Callable

import docker
import docker.errors
import pytest

from actorpool.testing.versiongate import VersionGate

from helpers import numbered_lines_cmd


def test_too_old_and_too_new_are_refused_in_engine_29s_words(version_gate: VersionGate) -> None:
    old = docker.APIClient(base_url=version_gate.url, version="1.40", timeout=10)
    with pytest.raises(docker.errors.APIError) as refused:
        old.ping()
    assert refused.value.status_code == 400
    assert refused.value.explanation == (
        "client version 1.40 is too old. Minimum supported API version is 1.44, please "
        "upgrade your client to a newer version"
    )
    new = docker.APIClient(base_url=version_gate.url, version="1.53", timeout=10)
    with pytest.raises(docker.errors.APIError, match=r"client version 1\.53 is too new\. Max"):
        new.ping()
    assert version_gate.refused == ["/v1.40/_ping", "/v1.53/_ping"]
    old.close()
    new.close()


def test_accepted_versions_reach_the_daemon_and_version_says_the_gates_range(
    version_gate: VersionGate,
) -> None:
    client = docker.APIClient(base_url=version_gate.url, version="1.52", timeout=10)
    try:
        version = client.version()
        assert (version["ApiVersion"], version["MinAPIVersion"]) == ("1.52", "1.44")
        assert isinstance(client.containers(all=True), list)
    finally:
        client.close()


def test_a_followed_log_stream_goes_through(
    version_gate: VersionGate, make_container: Callable[..., str]
) -> None:
    cid = make_container(numbered_lines_cmd(3, stderr=False))
    client = docker.APIClient(base_url=version_gate.url, version="1.44", timeout=10)
    try:
        stream = client.logs(cid, stream=True, follow=True)
        assert b"".join(stream) == b"out 1\nout 2\nout 3\n"
    finally:
        client.close()
