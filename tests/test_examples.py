"""Every example in examples/ runs, bounded, against the shared sandbox and says what it should."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from actorpool.testing.sandbox import Sandbox

from helpers import numbered_lines_cmd

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
MakeContainer = Callable[..., str]
Completed = subprocess.CompletedProcess[str]


def start_example(name: str, *args: str, host: str, timeout: float = 60) -> Completed:
    env = {**os.environ, "DOCKER_HOST": host}
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def run_example(name: str, *args: str, sandbox: Sandbox, timeout: float = 60) -> str:
    result = start_example(name, *args, host=sandbox.url, timeout=timeout)
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


def failed_example(name: str, *args: str, host: str) -> str:
    """Run an example that must fail: exit 1, no traceback; its last stderr line."""
    began = time.monotonic()
    result = start_example(name, *args, host=host, timeout=60)
    assert result.returncode == 1, f"{name}:\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    assert time.monotonic() - began < 30  # the first ping is bounded (5 s), not every retry
    return result.stderr.splitlines()[-1]


ALL_EXAMPLES = sorted(path.name for path in EXAMPLES.glob("*.py"))


@pytest.mark.parametrize("name", ALL_EXAMPLES)
def test_without_a_daemon_each_example_exits_with_one_message(name: str, tmp_path: Path) -> None:
    dead = tmp_path / "docker.sock"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(dead))  # a socket file whose daemon is gone: connection refused
    line = failed_example(name, host=f"unix://{dead}")
    assert line.startswith(f"{name}: ping: "), line
    assert f"cannot reach Docker at unix://{dead}: connection refused" in line


def test_log_subscriber_of_no_such_container_exits_with_one_message(sandbox: Sandbox) -> None:
    line = failed_example("log_subscriber.py", "no-such-container", host=sandbox.url)
    assert line.startswith("log_subscriber.py: inspect_container: not found: No such container")


def test_the_examples_readme_describes_every_example() -> None:
    readme = (EXAMPLES / "README.md").read_text()
    for name in ALL_EXAMPLES:
        assert f"| `{name}" in readme, name
    assert "actorpool sandbox" in readme


def example_containers(docker_api: Any, which: str) -> list[str]:
    found = docker_api.containers(all=True, filters={"label": f"actorpool.example={which}"})
    return [c["Id"] for c in found]


def test_list_containers(sandbox: Sandbox, make_container: MakeContainer) -> None:
    cid = make_container(["sleep", "60"], name="listed-by-example")
    out = run_example("list_containers.py", sandbox=sandbox)
    assert re.search(r"^daemon: Docker \S+ \(API 1\.\d+\)$", out, re.M)
    assert re.search(rf"^  {cid[:12]}  listed-by-example +running +actorpool/busybox", out, re.M)
    assert "NotFound (status 404): inspect_container: not found: No such container" in out
    assert "ValueError: container must be a container id or name" in out
    assert "BadRequest: list_containers: the daemon rejected the request (HTTP 400)" in out


def test_log_subscriber_starts_its_own_container(sandbox: Sandbox, docker_api: Any) -> None:
    out = run_example("log_subscriber.py", sandbox=sandbox)
    lines = [line.split(" ", 1)[1] for line in out.splitlines()]
    assert [line for line in lines if line.startswith("stdout:")] == [
        f"stdout: hello {i}" for i in range(1, 6)
    ]
    assert [line for line in lines if line.startswith("stderr:")] == [
        "stderr: warning: almost done",
        "stderr: bye",
    ]
    assert lines[-1] == "stream ended: exited"
    assert example_containers(docker_api, "log_subscriber") == []


def test_log_subscriber_follows_a_given_container(
    sandbox: Sandbox, make_container: MakeContainer
) -> None:
    cid = make_container(numbered_lines_cmd(3, stderr=False, delay=0.2))
    out = run_example("log_subscriber.py", cid, sandbox=sandbox)
    assert out.splitlines() == [
        f"{cid[:12]} stdout: out 1",
        f"{cid[:12]} stdout: out 2",
        f"{cid[:12]} stdout: out 3",
        f"{cid[:12]} stream ended: exited",
    ]


def test_pipeline_counts_levels_per_container(sandbox: Sandbox, docker_api: Any) -> None:
    out = run_example("pipeline.py", sandbox=sandbox)
    # The timer fired at least once.
    assert re.search(r"^report: \d+ lines so far \(INFO=\d+ WARN=\d+ ERROR=\d+\)$", out, re.M)
    final = out[out.index("final counts:") :].splitlines()
    assert [line.split() for line in final[1:]] == [
        ["pipeline-api", "INFO=8", "WARN=4", "ERROR=3"],
        ["pipeline-jobs", "INFO=5", "WARN=3", "ERROR=2"],
    ]
    assert example_containers(docker_api, "pipeline") == []


def test_execute_with_retry(sandbox: Sandbox, make_container: MakeContainer) -> None:
    make_container(["sleep", "60"])
    out = run_example("execute_with_retry.py", sandbox=sandbox)
    assert re.search(r"^df: [1-9]\d* image\(s\), [\d.]+ MB of layers$", out, re.M)
    assert re.search(r"^top [0-9a-f]{12}: 1 process\(es\)$", out, re.M)
    assert "flaky: True after 3 attempts" in out
    assert "NotFound after 1 attempt (not retried): No such container: no-such-container" in out
    # The failures the example makes up are its own: no advice about the daemon.
    assert (
        "RetriesExhausted: execute: failed 4 times (docker.pool.max_retries=3); last error: "
        "execute: simulated: daemon gone (ConnectionError raised by the call)\n"
    ) in out
    assert "is the daemon running" not in out
    assert "breakers: ['open', 'open']" in out
    assert (
        "NoHealthyConnections: no connection can take the call: 2 of 2 with an open circuit "
        "breaker, half-open within 1s"
    ) in out
    assert "after 1s: ping -> True" in out
