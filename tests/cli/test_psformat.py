"""``ps`` output as docker prints it: durations, ports, JSON and templates, against docker's own."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest

from actorpool.cli.psformat import PsFormatError, human_duration, ps_fields, render_ps
from actorpool.testing.contexts import docker_cli
from actorpool.testing.sandbox import Sandbox


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0.5, "Less than a second"),
        (1, "1 second"),
        (59, "59 seconds"),
        (60, "About a minute"),
        (3599, "59 minutes"),
        (3600, "About an hour"),
        (5400, "2 hours"),  # go-units rounds hours
        (47 * 3600, "47 hours"),
        (13 * 86400, "13 days"),
        (59 * 86400, "8 weeks"),
        (400 * 86400, "13 months"),
        (800 * 86400, "2 years"),
    ],
)
def test_human_duration_is_docker_units_human_duration(seconds: float, words: str) -> None:
    assert human_duration(seconds) == words


def test_ports_read_as_docker_shows_them() -> None:
    item = {
        "Id": "0123456789abcdef",
        "Created": 0,
        "Ports": [
            {"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
            {"IP": "::", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
            {"PrivatePort": 53, "Type": "udp"},
        ],
    }
    fields = ps_fields(item, no_trunc=False, now=0)
    assert fields["Ports"] == "127.0.0.1:8080->80/tcp, [::]:8080->80/tcp, 53/udp"


def test_a_template_actorpool_cannot_run_is_a_clear_error() -> None:
    with pytest.raises(PsFormatError, match=r"no field 'Nope'; the fields are ID, Image"):
        render_ps([], "{{.Nope}}", no_trunc=False, now=0)
    with pytest.raises(PsFormatError, match=r"cannot run \{\{range .Mounts\}\}"):
        render_ps([], "{{range .Mounts}}", no_trunc=False, now=0)


def test_fields_match_the_docker_cli_for_the_same_container(
    sandbox: Sandbox, docker_api: Any, make_container: Callable[..., str]
) -> None:
    cid = make_container(["sleep", "1000"], labels={"app": "web", "tier": "x"})
    cli = subprocess.run(
        [docker_cli(), "-H", sandbox.url, "ps", "--no-trunc", "--filter", f"id={cid}",
         "--format", "{{json .}}"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    theirs = json.loads(cli.stdout)
    ours = ps_fields(docker_api.containers(filters={"id": cid})[0], no_trunc=True, now=time.time())
    for key in ("ID", "Image", "Command", "CreatedAt", "Names", "Ports", "State"):
        assert ours[key] == theirs[key], key
    # The CLI prints labels in Go's map order, which differs from run to run; ours are sorted.
    assert ours["Labels"] == "app=web,tier=x"
    assert sorted(theirs["Labels"].split(",")) == ["app=web", "tier=x"]
    assert ours["RunningFor"].endswith(" ago")
    assert ours["Networks"] == theirs["Networks"]
    listed = docker_api.containers(filters={"id": cid})
    assert render_ps(listed, '{{.Label "app"}} {{json .State}}', no_trunc=False, now=0) == (
        'web "running"'
    )
