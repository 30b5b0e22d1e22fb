"""Reading container logs from a real private dockerd with actorpool.transport.logread."""

from __future__ import annotations

import threading
import time
from typing import Any

import docker.errors
import pytest

from actorpool.messages import ContainerLogs, LogLine
from actorpool.testing.sandbox import Sandbox
from actorpool.transport.frames import format_since
from actorpool.transport.logread import iter_lines, open_logs, read_logs, time_param

from helpers import numbered_lines_cmd, wait_for_state, wait_until

MIB = 1024 * 1024


def read_all(raw: Any, max_line_size: int = MIB) -> list[LogLine]:
    lines: list[LogLine] = []
    for batch in iter_lines(raw, max_line_size=max_line_size):
        assert batch, "batches are never empty"
        lines.extend(batch)
    return lines


def finished(docker_api: Any, make_container: Any, cmd: Any, *, tty: bool = False) -> str:
    cid: str = make_container(cmd, tty=tty)
    wait_for_state(docker_api, cid, "exited", timeout=60)
    return cid


def test_interleaved_numbered_lines_arrive_exactly_in_order(
    docker_api: Any, make_container: Any
) -> None:
    n = 10_000
    cid = finished(docker_api, make_container, numbered_lines_cmd(n))
    raw = open_logs(docker_api, cid, stdout=True, stderr=True, follow=False, tty=False)
    lines = read_all(raw)
    assert raw.end_reason == "complete"
    assert raw.error is None
    out = [line for line in lines if line.stream == "stdout"]
    err = [line for line in lines if line.stream == "stderr"]
    assert [line.data for line in out] == [b"out %d" % i for i in range(1, n + 1)]
    assert [line.data for line in err] == [b"err %d" % i for i in range(1, n + 1)]
    for source in (out, err):
        stamps = [line.timestamp for line in source]
        assert stamps == sorted(stamps)
        assert stamps[0] > 1_600_000_000 * 10**9
    assert not any(line.truncated for line in lines)
    # The same through the ContainerLogs request (the pool's path) and without timestamps.
    assert read_logs(docker_api, ContainerLogs(cid)) == tuple(lines)
    plain = ContainerLogs(cid, timestamps=False, stderr=False).execute(docker_api)
    assert plain == tuple(LogLine("stdout", 0, line.data) for line in out)


def test_a_100_kib_line_arrives_as_one_line(docker_api: Any, make_container: Any) -> None:
    size = 100 * 1024
    cmd = ["sh", "-c", f"echo before; head -c {size} /dev/zero | tr '\\0' x; echo; echo after"]
    cid = finished(docker_api, make_container, cmd)
    for timestamps in (True, False):
        lines = read_all(open_logs(docker_api, cid, tty=False, timestamps=timestamps))
        assert [line.data for line in lines] == [b"before", b"x" * size, b"after"]
        assert not any(line.truncated for line in lines)
        if timestamps:
            assert lines[0].timestamp < lines[1].timestamp < lines[2].timestamp


def test_a_3_mib_line_is_cut_at_max_line_size_and_counted(
    docker_api: Any, make_container: Any
) -> None:
    cmd = ["sh", "-c", f"head -c {3 * MIB} /dev/zero | tr '\\0' y; echo; echo after"]
    cid = finished(docker_api, make_container, cmd)
    raw = open_logs(docker_api, cid, tty=False)
    reader = iter_lines(raw, max_line_size=MIB)
    lines = [line for batch in reader for line in batch]
    assert [(line.data, line.truncated) for line in lines] == [
        (b"y" * MIB, True),
        (b"after", False),
    ]
    assert reader.truncated == 1
    assert raw.end_reason == "complete"


def test_tty_output_arrives_whole(docker_api: Any, make_container: Any) -> None:
    n = 3000
    cmd = ["sh", "-c", f"seq 1 {n}; printf 'a\\rb\\n'; printf no-newline"]
    cid = finished(docker_api, make_container, cmd, tty=True)
    expected = [str(i).encode() for i in range(1, n + 1)] + [b"a\rb", b"no-newline"]
    for timestamps in (True, False):
        raw = open_logs(docker_api, cid, timestamps=timestamps)  # tty=None: inspected
        assert raw.tty
        lines = read_all(raw)
        assert [line.data for line in lines] == expected
        assert {line.stream for line in lines} == {"stdout"}
        stamps = [line.timestamp for line in lines]
        assert stamps == (sorted(stamps) if timestamps else [0] * len(lines))
        assert (stamps[0] > 0) is timestamps
    # The last iteration read without timestamps: compare like with like.
    assert read_logs(docker_api, ContainerLogs(cid, tail=2, timestamps=False)) == tuple(lines[-2:])


def test_since_with_an_exact_ns_string_is_inclusive(docker_api: Any, make_container: Any) -> None:
    cid = finished(docker_api, make_container, ["seq", "1", "300"])
    lines = read_all(open_logs(docker_api, cid, stderr=False, tty=False))
    stamps = [line.timestamp for line in lines]
    # A line whose timestamp differs from both neighbours', so the cut is unambiguous.
    k = next(i for i in range(100, 299) if stamps[i - 1] < stamps[i] < stamps[i + 1])
    since_t = read_all(open_logs(docker_api, cid, tty=False, since=format_since(stamps[k])))
    assert since_t == lines[k:]
    after_t = read_all(open_logs(docker_api, cid, tty=False, since=format_since(stamps[k] + 1)))
    assert after_t == lines[k + 1 :]
    # until is inclusive too on dockerd 20.10 (a line stamped exactly `until` is returned).
    until = ContainerLogs(cid, since=format_since(stamps[k]), until=format_since(stamps[k + 1]))
    assert read_logs(docker_api, until) == (lines[k], lines[k + 1])
    until = ContainerLogs(cid, since=format_since(stamps[k]), until=format_since(stamps[k + 1] - 1))
    assert read_logs(docker_api, until) == (lines[k],)


def test_time_param_sends_exact_strings() -> None:
    assert time_param(None) is None
    assert time_param("1714564800.000000001") == "1714564800.000000001"
    assert time_param(1714564800) == "1714564800.000000000"
    assert time_param(1714564800.5) == "1714564800.500000000"
    assert time_param(0.000000001) == "0.000000001"
    for bad in (-1, -1.0, float("nan"), float("inf"), True):
        with pytest.raises(ValueError, match="since/until"):
            time_param(bad)


def follow_in_thread(raw: Any) -> tuple[threading.Thread, dict[str, Any]]:
    state: dict[str, Any] = {"lines": [], "error": None, "ended_at": None}

    def run() -> None:
        try:
            for batch in iter_lines(raw, max_line_size=MIB):
                state["lines"].extend(batch)
        except BaseException as exc:  # the test asserts there is none
            state["error"] = exc
        state["ended_at"] = time.monotonic()

    thread = threading.Thread(target=run, name="test-follow", daemon=True)
    thread.start()
    return thread, state


def test_close_from_another_thread_ends_a_follow_reader_fast(
    sandbox: Sandbox, make_container: Any
) -> None:
    cid = make_container(["sh", "-c", "echo ready; sleep 120"])
    client = sandbox.client()  # a follow stream holds its connection: a client of its own
    try:
        raw = open_logs(client, cid, follow=True, tty=False)
        thread, state = follow_in_thread(raw)
        wait_until(lambda: state["lines"], timeout=10, message="the first line")
        time.sleep(0.05)  # the reader is now blocked waiting for more
        closed_at = time.monotonic()
        raw.close()
        raw.close()  # idempotent
        thread.join(timeout=5)
        assert not thread.is_alive()
        assert state["ended_at"] - closed_at < 0.1
        assert state["error"] is None
        assert [line.data for line in state["lines"]] == [b"ready"]
        assert raw.end_reason == "closed"
        assert raw.closed
        assert raw.error is None
        # The client (its connection pool) is still sound after the cancelled stream.
        assert client.ping()
        assert [line.data for line in read_all(open_logs(client, cid, tty=False))] == [b"ready"]
    finally:
        client.close()


def test_close_before_reading_and_single_reader(docker_api: Any, make_container: Any) -> None:
    cid = finished(docker_api, make_container, ["echo", "hi"])
    raw = open_logs(docker_api, cid, tty=False)
    raw.close()
    assert list(raw.chunks()) == []
    assert raw.end_reason == "closed"
    raw = open_logs(docker_api, cid, tty=False)
    chunks = raw.chunks()
    assert next(chunks)
    with pytest.raises(RuntimeError, match="already being read"):
        next(raw.chunks())
    raw.close()


def test_follow_delivers_new_lines_and_completes_when_the_container_exits(
    sandbox: Sandbox, make_container: Any
) -> None:
    cid = make_container(numbered_lines_cmd(5, stderr=False, delay=0.2))
    client = sandbox.client()
    try:
        raw = open_logs(client, cid, follow=True, tty=False, since=None, tail="all")
        thread, state = follow_in_thread(raw)
        # Lines arrive while the container still runs, not all at its exit.
        wait_until(lambda: len(state["lines"]) >= 2, timeout=10, message="two live lines")
        assert state["ended_at"] is None
        thread.join(timeout=20)
        assert state["error"] is None
        assert [line.data for line in state["lines"]] == [b"out %d" % i for i in range(1, 6)]
        assert raw.end_reason == "complete"
    finally:
        client.close()


def test_a_quiet_follow_stream_outlives_the_client_timeout(
    sandbox: Sandbox, make_container: Any
) -> None:
    cid = make_container(["sh", "-c", "echo a; sleep 2; echo b"])
    client = sandbox.client(timeout=1)  # shorter than the container's silence
    try:
        raw = open_logs(client, cid, follow=True, tty=False)
        lines = read_all(raw)
        assert [line.data for line in lines] == [b"a", b"b"]
        assert raw.end_reason == "complete"
    finally:
        client.close()


def test_unknown_container_is_not_found(docker_api: Any) -> None:
    with pytest.raises(docker.errors.NotFound):
        read_logs(docker_api, ContainerLogs("no-such-container-here"))
    with pytest.raises(docker.errors.NotFound):
        open_logs(docker_api, "no-such-container-here", tty=False)


@pytest.mark.daemon
def test_daemon_killed_mid_follow_is_a_cut(private_sandbox: Sandbox, make_container: Any) -> None:
    client = private_sandbox.client()
    try:
        loop = "i=0; while true; do echo $i; i=$((i+1)); usleep 50000; done"
        cid = make_container(["sh", "-c", loop], api=client)
        raw = open_logs(client, cid, follow=True, tty=False)
        thread, state = follow_in_thread(raw)
        wait_until(lambda: len(state["lines"]) >= 3, timeout=10, message="three lines")
        private_sandbox.kill()
        thread.join(timeout=10)
        assert not thread.is_alive()
        assert state["error"] is None
        assert raw.end_reason == "cut"
        assert raw.error is not None
        assert not raw.closed
        data = [line.data for line in state["lines"]]
        assert data == [str(i).encode() for i in range(len(data))]
    finally:
        client.close()
