"""Every example in examples/ runs, bounded, against the shared sandbox and says what it should."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from actorpool.testing.sandbox import Sandbox

from helpers import numbered_lines_cmd

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
MakeContainer = Callable[..., str]


def run_example(name: str, *args: str, sandbox: Sandbox, timeout: float = 60) -> str:
    env = {**os.environ, "DOCKER_HOST": sandbox.url}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


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
