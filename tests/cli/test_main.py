"""The ``actorpool`` command line, run as a subprocess against the shared sandbox daemon."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import termios
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from actorpool.cli.main import _monitor_metrics
from actorpool.config import DEFAULT_MONITOR_LISTEN, Config
from actorpool.testing.faultproxy import FaultProxy
from actorpool.testing.sandbox import Sandbox
from actorpool.testing.versiongate import VersionGate

from helpers import numbered_lines_cmd, wait_for_state, wait_until

REPO = Path(__file__).resolve().parents[2]
MakeContainer = Callable[..., str]


def cli_env(host: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "NO_COLOR")}
    if host is not None:
        env["DOCKER_HOST"] = host
    env.update(extra)
    return env


def run_cli(
    *args: str, host: str | None, timeout: float = 30, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actorpool", *args],
        capture_output=True,
        text=True,
        env=cli_env(host, **env),
        cwd=REPO,
        timeout=timeout,
        check=False,
    )


def assert_one_line_error(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


class CliProcess:
    """A running ``actorpool`` command whose output is collected line by line as it comes."""

    def __init__(self, *args: str, host: str | None, nice: int = 0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "actorpool", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(host),
            cwd=REPO,
            # Before exec, so every thread of the command inherits it.
            preexec_fn=(lambda: os.setpriority(os.PRIO_PROCESS, 0, nice)) if nice else None,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    def wait_for(self, lines: list[str], pattern: str, timeout: float) -> str:
        regex = re.compile(pattern)

        def found() -> str | None:
            hit = next((line for line in list(lines) if regex.search(line)), None)
            if hit is None and self.proc.poll() is not None:
                raise AssertionError(
                    f"actorpool exited ({self.proc.returncode}) before printing {pattern!r}:\n"
                    + "\n".join(self.err)
                )
            return hit

        return wait_until(found, timeout, message=f"a line matching {pattern!r}")

    def finish(self, timeout: float) -> int:
        code = self.proc.wait(timeout)
        for reader in self._readers:
            reader.join(5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def cli_processes() -> Iterator[list[CliProcess]]:
    started: list[CliProcess] = []
    yield started
    for process in started:
        process.kill()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def ticker_cmd(word: str, delay: float = 0.2) -> list[str]:
    """Logs ``<word> 1``, ``<word> 2``, ... to stdout every ``delay`` seconds, for a minute."""
    return ["sh", "-c", f'i=1; while [ $i -le 300 ]; do echo "{word} $i"; i=$((i+1)); '
            f"usleep {int(delay * 1e6)}; done"]  # fmt: skip


# --------------------------------------------------------------------------- ps


def test_ps_lists_a_running_container_as_a_table(
    sandbox: Sandbox, make_container: MakeContainer
) -> None:
    name = unique("ps")
    cid = make_container(["sleep", "60"], name=name)
    result = run_cli("ps", host=sandbox.url)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # docker ps's columns, CREATED ("… ago") and PORTS (empty here: no network) included.
    assert re.split(r"\s{2,}", lines[0]) == [
        "CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES",
    ]  # fmt: skip
    row = next(line for line in lines if line.startswith(cid[:12]))
    assert row.endswith(name)
    assert '"sleep 60"' in row
    assert re.search(r" (\d+ seconds?|Less than a second|About a minute) ago +Up ", row), row


def test_ps_last_latest_and_formats(
    sandbox: Sandbox, make_container: MakeContainer, docker_api: Any
) -> None:
    label = unique("ps")
    first = make_container(["sleep", "60"], labels={"t": label})
    second = make_container(["true"], labels={"t": label})
    wait_for_state(docker_api, second, "exited")
    where = ("--filter", f"label=t={label}")
    latest = run_cli("ps", "-l", "-q", *where, host=sandbox.url)  # any state, newest
    assert latest.stdout.split() == [second[:12]]
    last_two = run_cli("ps", "-n", "2", "-q", *where, host=sandbox.url)
    assert last_two.stdout.split() == [second[:12], first[:12]]
    as_json = run_cli("ps", "-a", "--format", "json", *where, host=sandbox.url)
    objects = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [(o["ID"], o["State"]) for o in objects] == [
        (second[:12], "exited"), (first[:12], "running"),
    ]  # fmt: skip
    template = run_cli(
        "ps", "-a", "--no-trunc", "--format", "table {{.ID}}\\t{{.Label \"t\"}}", *where,
        host=sandbox.url,
    )  # fmt: skip
    lines = template.stdout.splitlines()
    assert lines[0] == "CONTAINER ID"  # a label's column has no header, as in docker ps
    assert [line.split() for line in lines[1:]] == [[second, label], [first, label]]
    bad = run_cli("ps", "--format", "{{.Nope}}", host=sandbox.url)
    assert bad.returncode == 2
    assert "no field 'Nope'" in assert_one_line_error(bad.stderr)


def test_ps_all_and_filters(
    sandbox: Sandbox, make_container: MakeContainer, docker_api: Any
) -> None:
    label = unique("ps")
    running = make_container(["sleep", "60"], labels={"t": label})
    exited = make_container(["true"], labels={"t": label})
    wait_for_state(docker_api, exited, "exited")
    only_running = run_cli("ps", "-q", "--filter", f"label=t={label}", host=sandbox.url)
    everything = run_cli("ps", "-a", "-q", "--filter", f"label=t={label}", host=sandbox.url)
    assert only_running.stdout.split() == [running[:12]]
    assert sorted(everything.stdout.split()) == sorted([running[:12], exited[:12]])


# --------------------------------------------------------------------------- logs


@pytest.fixture
def finished_logger(make_container: MakeContainer, docker_api: Any) -> tuple[str, str]:
    name = unique("logs")
    cid = make_container(numbered_lines_cmd(3), name=name)
    wait_for_state(docker_api, cid, "exited")
    return cid, name


def test_logs_sends_stdout_lines_to_stdout_and_stderr_lines_to_stderr(
    sandbox: Sandbox, finished_logger: tuple[str, str]
) -> None:
    _, name = finished_logger
    result = run_cli("logs", name, host=sandbox.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["out 1", "out 2", "out 3"]
    assert result.stderr.splitlines() == ["err 1", "err 2", "err 3"]


def test_logs_tail_since_and_timestamps(
    sandbox: Sandbox, make_container: MakeContainer, docker_api: Any
) -> None:
    # stdout only: the daemon may store the two streams' lines in either order.
    cid = make_container(numbered_lines_cmd(3, stderr=False))
    wait_for_state(docker_api, cid, "exited")
    result = run_cli("logs", "-n", "2", "-t", cid[:12], host=sandbox.url)
    assert result.returncode == 0, result.stderr
    stamp = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z "
    assert all(re.match(stamp, line) for line in result.stdout.splitlines())
    assert [re.sub(stamp, "", line) for line in result.stdout.splitlines()] == ["out 2", "out 3"]
    future = run_cli("logs", "--since", "2999-01-01T00:00:00Z", cid, host=sandbox.url)
    assert (future.returncode, future.stdout, future.stderr) == (0, "", "")
    recent = run_cli("logs", "--since", "10m", cid, host=sandbox.url)
    assert recent.stdout.splitlines() == ["out 1", "out 2", "out 3"]
    second = result.stdout.splitlines()[0].split()[0]  # out 2's time
    until = run_cli("logs", "--until", second, cid, host=sandbox.url)
    assert until.stdout.splitlines() == ["out 1", "out 2"]  # inclusive, as dockerd 20.10
    past = run_cli("logs", "--until", "2000-01-01T00:00:00", cid, host=sandbox.url)
    assert (past.returncode, past.stdout) == (0, "")
    follow = run_cli("logs", "-f", "--until", "1m", cid, host=sandbox.url)
    assert follow.returncode == 2
    assert "--until works without -f only" in assert_one_line_error(follow.stderr)


def test_logs_details_show_the_log_drivers_attributes(
    sandbox: Sandbox, make_container: MakeContainer, docker_api: Any
) -> None:
    cid = make_container(
        numbered_lines_cmd(2, stderr=False), labels={"app": "web"}, log_labels="app"
    )
    wait_for_state(docker_api, cid, "exited")
    plain = run_cli("logs", cid, host=sandbox.url)
    assert plain.stdout.splitlines() == ["out 1", "out 2"]
    details = run_cli("logs", "--details", cid, host=sandbox.url)
    assert details.stdout.splitlines() == ["app=web out 1", "app=web out 2"]


def test_logs_of_several_containers_are_prefixed_by_name(
    sandbox: Sandbox, make_container: MakeContainer, docker_api: Any
) -> None:
    first, second = unique("a"), unique("b")
    for name in (first, second):
        wait_for_state(docker_api, make_container(numbered_lines_cmd(2), name=name), "exited")
    result = run_cli("logs", first, second, host=sandbox.url)
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert sorted(out) == sorted(f"{n} | out {i}" for n in (first, second) for i in (1, 2))
    assert "\x1b[" not in result.stdout + result.stderr  # not a TTY: no colour


def _logs_on_a_tty(host: str, names: list[str], **env: str) -> str:
    leader, follower = pty.openpty()
    try:
        subprocess.run(
            [sys.executable, "-m", "actorpool", "logs", *names],
            stdout=follower,
            stderr=subprocess.DEVNULL,
            env=cli_env(host, **env),
            cwd=REPO,
            timeout=30,
            check=True,
        )
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the writer is gone and everything was read
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks).decode()
    finally:
        os.close(leader)
        if follower != -1:
            os.close(follower)


def test_logs_colours_names_on_a_tty_unless_no_color(
    sandbox: Sandbox, make_container: MakeContainer, docker_api: Any
) -> None:
    names = [unique("c1"), unique("c2")]
    for name in names:
        wait_for_state(docker_api, make_container(numbered_lines_cmd(1), name=name), "exited")
    coloured = _logs_on_a_tty(sandbox.url, names)
    plain = _logs_on_a_tty(sandbox.url, names, NO_COLOR="1")
    assert f"\x1b[36m{names[0]} | \x1b[0mout 1" in coloured
    assert f"\x1b[33m{names[1]} | \x1b[0mout 1" in coloured
    assert "\x1b[" not in plain
    assert f"{names[0]} | out 1" in plain


def test_levels_are_coloured_on_a_tty_or_with_force_color_never_with_no_color(
    sandbox: Sandbox, make_container: MakeContainer, docker_api: Any
) -> None:
    name = unique("levels")
    script = "echo 'ERROR [db] down'; echo 'WARN  [db] slow'; echo 'INFO  [db] up'; echo err 1"
    wait_for_state(docker_api, make_container(["sh", "-c", script], name=name), "exited")
    red, yellow = "\x1b[31mERROR\x1b[0m [db] down", "\x1b[33mWARN\x1b[0m  [db] slow"
    tty = _logs_on_a_tty(sandbox.url, [name]).replace("\r\n", "\n").splitlines()
    assert tty == [red, yellow, "INFO  [db] up", "err 1"]
    forced = run_cli("logs", name, host=sandbox.url, FORCE_COLOR="1")
    assert forced.stdout.splitlines() == [red, yellow, "INFO  [db] up", "err 1"]
    for env in ({}, {"NO_COLOR": "1", "FORCE_COLOR": "1"}):
        plain = run_cli("logs", name, host=sandbox.url, **env)
        assert "\x1b[" not in plain.stdout
        assert plain.stdout.splitlines()[:2] == ["ERROR [db] down", "WARN  [db] slow"]


def test_logs_follow_prints_new_lines_and_ends_when_the_container_exits(
    sandbox: Sandbox, make_container: MakeContainer
) -> None:
    cid = make_container(numbered_lines_cmd(10, stderr=False, delay=0.1))
    began = time.monotonic()
    result = run_cli("logs", "-f", cid, host=sandbox.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"out {i}" for i in range(1, 11)]
    assert time.monotonic() - began < 15


def test_logs_of_an_unknown_container_is_one_line_and_exit_4(sandbox: Sandbox) -> None:
    result = run_cli("logs", "no-such-container-here", host=sandbox.url)
    assert result.returncode == 4
    line = assert_one_line_error(result.stderr)
    assert "no such container: no-such-container-here" in line
    assert result.stdout == ""


def test_logs_of_an_invalid_name_is_a_usage_error(sandbox: Sandbox) -> None:
    result = run_cli("logs", "not a name", host=sandbox.url)
    assert result.returncode == 2
    assert "is not a container id or name" in assert_one_line_error(result.stderr)


# --------------------------------------------------------------------------- monitor


def test_monitor_follows_containers_started_before_and_after_it(
    sandbox: Sandbox, make_container: MakeContainer, cli_processes: list[CliProcess]
) -> None:
    label = unique("mon")
    before, after, quitter = unique("before"), unique("after"), unique("quitter")
    make_container(ticker_cmd("tick-before"), name=before, labels={"t": label})
    monitor = CliProcess(
        "monitor", "--duration", "120", "--summary-interval", "1",
        "--filter", f"label=t={label}", "--metrics", "127.0.0.1:0",
        host=sandbox.url,
    )  # fmt: skip
    cli_processes.append(monitor)
    monitor.wait_for(monitor.err, r"following logs on", timeout=15)
    monitor.wait_for(monitor.out, rf"^{before} \| tick-before \d+$", timeout=10)
    make_container(ticker_cmd("tick-after"), name=after, labels={"t": label})
    make_container(["sh", "-c", "echo bye; exit 3"], name=quitter, labels={"t": label})
    monitor.wait_for(monitor.err, rf"^{quitter} +\| -- log stream ended \(exited 3\)$", 20)
    # Each condition is awaited with a deadline, then the monitor is asked to stop
    # (SIGTERM: an orderly stop, exit 0): no fixed run time for a loaded machine to outrun.
    monitor.wait_for(monitor.out, rf"^{after} +\| tick-after \d+$", timeout=20)
    monitor.wait_for(monitor.err, r"^actorpool health:", timeout=20)
    monitor.proc.terminate()
    assert monitor.finish(timeout=30) == 0, "\n".join(monitor.err)
    summaries = [line for line in monitor.err if line.startswith("actorpool health:")]
    assert summaries, monitor.err
    # One log stream per followed container, one event stream for the filter: apart.
    assert re.search(
        r"size=\d+ healthy=\d+ breakers_open=0 log_streams=[123] event_streams=1 lines/s=[\d.]+",
        summaries[0],
    ), summaries
    assert "metrics at http://127.0.0.1:" in "\n".join(monitor.err)
    assert not any("Traceback" in line for line in monitor.err)


def test_monitor_does_not_follow_excluded_containers(
    sandbox: Sandbox, make_container: MakeContainer, cli_processes: list[CliProcess]
) -> None:
    # The agent image carries this label so a containerised monitor skips its own output.
    label = unique("exc")
    shown, hidden = unique("shown"), unique("agent")
    make_container(
        ticker_cmd("tick-hidden"), name=hidden, labels={"t": label, "io.actorpool.agent": "1"}
    )
    make_container(ticker_cmd("tick-shown"), name=shown, labels={"t": label})
    monitor = CliProcess(
        "monitor", "--duration", "120", "--filter", f"label=t={label}",
        "--metrics", "127.0.0.1:0", "--exclude", "label=io.actorpool.agent", host=sandbox.url,
    )  # fmt: skip
    cli_processes.append(monitor)
    monitor.wait_for(monitor.out, rf"^{shown} \| tick-shown \d+$", timeout=15)
    # Both containers were running before the monitor started: a followed one would be
    # printing by the time the shown one has printed three ticks.
    wait_until(
        lambda: sum(line.startswith(f"{shown} |") for line in list(monitor.out)) >= 3,
        15,
        message="three lines of the shown container",
    )
    monitor.proc.terminate()
    assert monitor.finish(timeout=30) == 0, "\n".join(monitor.err)
    assert not any("tick-hidden" in line for line in monitor.out)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 0)])
def test_monitor_stops_within_two_seconds_on_a_signal(
    sandbox: Sandbox,
    make_container: MakeContainer,
    cli_processes: list[CliProcess],
    signum: int,
    code: int,
) -> None:
    label = unique("sig")
    name = unique("ticker")
    make_container(ticker_cmd("tick", delay=0.05), name=name, labels={"t": label})
    # The promise is about the monitor's own work; on a machine with 30 runnable processes
    # its turn for the CPU alone can take longer (seen: a load of 30 on 2 cores). As root,
    # a higher priority measures the work rather than the queue.
    monitor = CliProcess(
        "monitor", "--filter", f"label=t={label}", "--metrics", "127.0.0.1:0",
        host=sandbox.url, nice=-10 if os.geteuid() == 0 else 0,
    )  # fmt: skip
    cli_processes.append(monitor)
    monitor.wait_for(monitor.out, rf"^{name} \| tick \d+$", timeout=15)
    sent = time.monotonic()
    monitor.proc.send_signal(signum)
    assert monitor.finish(timeout=10) == code
    assert time.monotonic() - sent < 2.0
    assert not any("Traceback" in line for line in monitor.err), monitor.err


def _dockerd_processes_under(root: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(root.encode() in arg for arg in argv):
            pids.append(int(entry.name))
    return pids


def test_monitor_starts_a_private_sandbox_with_demo_containers_and_removes_it(
    tmp_path: Path, cli_processes: list[CliProcess]
) -> None:
    nowhere = f"unix://{tmp_path}/no-daemon.sock"
    monitor = CliProcess(
        "monitor", "--sandbox", "--duration", "4", "--summary-interval", "2",
        "--metrics", "127.0.0.1:0",
        host=nowhere,
    )  # fmt: skip
    cli_processes.append(monitor)
    # A bound, not a speed target (those live in bench/): start-up, 4 s of demo, removal.
    assert monitor.finish(timeout=90) == 0, "\n".join(monitor.err)
    err = "\n".join(monitor.err)
    up = re.search(r"sandbox daemon up in [\d.]+s at unix://(\S+)/docker\.sock", err)
    assert up, err
    root = up[1]
    levels = {
        m[1] for line in monitor.out if (m := re.match(r"^demo-\w+ +\| (INFO|WARN|ERROR) ", line))
    }
    assert "INFO" in levels, monitor.out[:20]
    assert any(line.startswith("actorpool health:") for line in monitor.err)
    assert "sandbox daemon stopped and removed" in err
    assert "Traceback" not in err
    assert _dockerd_processes_under(root) == []
    assert not Path(root).exists()


def test_monitor_never_starts_a_daemon_unless_asked() -> None:
    # No daemon at the default address, as at boot or while Docker restarts: a monitor
    # must wait for the real one, not start a root dockerd of its own beside it.
    result = run_cli("monitor", "--duration", "1", host=None)
    assert "starting a private sandbox" not in result.stderr
    if not Path("/var/run/docker.sock").exists():  # this machine and CI: no system daemon
        assert result.returncode == 3
        line = assert_one_line_error(result.stderr)
        assert line == (
            "actorpool: cannot reach Docker at unix:///var/run/docker.sock (the default "
            "address): no such file /var/run/docker.sock — is the daemon running? set -H, "
            "--context, DOCKER_HOST or docker.pool.socket_path; to try actorpool without "
            "Docker: actorpool monitor --sandbox"
        )


def test_sandbox_command_prints_docker_host_and_removes_everything_on_sigterm(
    cli_processes: list[CliProcess],
) -> None:
    sandbox_cli = CliProcess("sandbox", host=None)
    cli_processes.append(sandbox_cli)
    export = sandbox_cli.wait_for(sandbox_cli.out, r"^export DOCKER_HOST=unix://", timeout=60)
    url = export.removeprefix("export DOCKER_HOST=")
    root = url.removeprefix("unix://").removesuffix("/docker.sock")
    ps = run_cli("ps", host=url)
    assert ps.returncode == 0, ps.stderr
    assert {"demo-web", "demo-worker", "demo-batch"} <= set(re.findall(r"demo-\w+", ps.stdout))
    assert sandbox_cli.out == [export]  # stdout is the one line to paste
    sandbox_cli.proc.send_signal(signal.SIGTERM)
    assert sandbox_cli.finish(timeout=30) == 0, "\n".join(sandbox_cli.err)
    err = "\n".join(sandbox_cli.err)
    assert "sandbox daemon stopped and removed" in err
    assert "Traceback" not in err
    assert _dockerd_processes_under(root) == []
    assert not Path(root).exists()


def test_after_ctrl_c_on_a_terminal_the_shutdown_message_starts_a_fresh_line() -> None:
    leader, follower = pty.openpty()

    def controlling_tty() -> None:  # runs in the child, after setsid: the pty is its terminal
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        [sys.executable, "-m", "actorpool", "sandbox"],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=cli_env(None),
        cwd=REPO,
        start_new_session=True,
        preexec_fn=controlling_tty,
    )
    os.close(follower)
    seen = b""
    try:
        deadline = time.monotonic() + 60
        while b"Ctrl-C stops" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1.0)
            if ready:
                seen += os.read(leader, 65536)
        assert b"Ctrl-C stops" in seen, seen.decode(errors="replace")
        os.write(leader, b"\x03")  # the terminal echoes ^C and sends SIGINT
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: every writer is gone
                break
            if not chunk:
                break
            seen += chunk
        assert proc.wait(30) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        os.close(leader)
    text = seen.decode(errors="replace")
    assert re.search(r"\^C\r\n(\x1b\[1m)?actorpool: sandbox daemon stopped and removed", text), text


def test_monitor_serves_metrics_by_default_on_its_own_port(sandbox: Sandbox) -> None:
    # Hold the default port (or find it held): the monitor must try exactly that port and
    # say which setting moves it. Binding it for real would race other monitors here.
    host, _, port = DEFAULT_MONITOR_LISTEN.rpartition(":")
    assert int(port) not in range(9100, 10000)  # Prometheus' exporter ports, 9323 dockerd's
    with socket.socket() as holder:
        with contextlib.suppress(OSError):
            holder.bind((host, int(port)))
            holder.listen()
        result = run_cli("monitor", "--duration", "1", host=sandbox.url)
    assert result.returncode == 4, result.stderr
    line = assert_one_line_error(result.stderr)
    assert line == (
        f"actorpool: cannot serve metrics on {DEFAULT_MONITOR_LISTEN}: address in use — "
        "choose another with --metrics HOST:PORT (or docker.monitoring.listen)"
    )


def test_monitor_metrics_come_from_the_flag_the_file_or_the_default() -> None:
    def listen(metrics: str | None, **monitoring: Any) -> str | None:
        args = argparse.Namespace(metrics=metrics)
        config = Config.from_mapping({"docker": {"monitoring": monitoring}})
        return _monitor_metrics(args, config).monitoring.listen

    assert listen(None) == DEFAULT_MONITOR_LISTEN
    assert listen(None, listen="127.0.0.1:7777") == "127.0.0.1:7777"
    assert listen("[::1]:0", listen="127.0.0.1:7777") == "[::1]:0"
    config = Config.from_mapping({"docker": {"monitoring": {"enabled": False}}})
    assert not _monitor_metrics(argparse.Namespace(metrics=None), config).monitoring.serves
    assert _monitor_metrics(argparse.Namespace(metrics="127.0.0.1:0"), config).monitoring.serves


# --------------------------------------------------------------------------- health


def test_health_reports_every_connection_and_exits_0(sandbox: Sandbox) -> None:
    result = run_cli("health", host=sandbox.url)
    assert result.returncode == 0, result.stderr
    endpoint, *lines = result.stdout.splitlines()
    # Which endpoint and why, then API version negotiated with dockerd 20.10 (API 1.41).
    assert endpoint.startswith(f"endpoint: {sandbox.url} from DOCKER_HOST; API negotiated")
    assert lines[0].split()[:3] == ["CONNECTION", "HEALTH", "BREAKER"]
    rows = [line.split() for line in lines[1:] if re.match(r"^c\d+ ", line)]
    assert len(rows) == 10  # initial_pool_size of the default configuration
    assert all(row[1] == "healthy" and row[2] == "closed" for row in rows)
    assert all(row[3] == "1.00" and int(row[5]) >= 1 for row in rows)  # each took a ping
    assert lines[-1].startswith("pool ok: 10 connections")


class _FirstConnectionPasses(FaultProxy):
    """Forwards the first connection (the CLI's up-front ping), answers 503 to every later one."""

    @property  # type: ignore[override]
    def mode(self) -> str:
        return "pass" if self.connections <= 1 else "status503"

    @mode.setter
    def mode(self, value: str) -> None:
        pass


def test_health_exits_1_when_the_pool_cannot_ping_through_its_connections(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config = tmp_path / "fast.yaml"
    config.write_text(
        "docker:\n  pool:\n    max_retries: 1\n    initial_retry_delay: 50ms\n"
        "    health_check_timeout: 2s\n"
    )
    with _FirstConnectionPasses(sandbox.socket_path) as proxy:
        result = run_cli("health", "--config", str(config), "-H", proxy.url, host=None)
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines()[-1].startswith("pool DEGRADED: 10 connections")
    assert "10 of 10 pings failed; the first: ping: " in result.stderr
    assert "503" in result.stderr
    assert "Traceback" not in result.stderr


def test_health_with_an_unreachable_host_exits_3_with_one_line(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    result = run_cli("health", "-H", f"unix://{tmp_path}/nope.sock", host=sandbox.url)
    assert result.returncode == 3
    line = assert_one_line_error(result.stderr)
    assert line == (
        f"actorpool: cannot reach Docker at unix://{tmp_path}/nope.sock (-H): no such file "
        f"{tmp_path}/nope.sock — is the daemon running? is -H right?"
    )


@pytest.mark.parametrize(("target", "what"), [("file", "a file"), ("directory", "a directory")])
def test_an_address_that_is_no_socket_says_so_and_names_where_it_came_from(
    tmp_path: Path, target: str, what: str
) -> None:
    path = tmp_path / target
    if target == "file":
        path.write_text("not a socket\n")
    else:
        path.mkdir()
    for how, host in (("-H", None), ("DOCKER_HOST", f"unix://{path}")):
        args = ("-H", f"unix://{path}") if how == "-H" else ()
        result = run_cli("ps", *args, host=host)
        assert result.returncode == 3
        line = assert_one_line_error(result.stderr)
        assert line == (
            f"actorpool: cannot reach Docker at unix://{path} ({how}): {path} is not a socket "
            f"({what}) — {how} must name the daemon's socket"
        )


# --------------------------------------------------------------------------- config


def test_config_check_prints_the_effective_configuration(sandbox: Sandbox) -> None:
    result = run_cli("config", "check", "config.yaml", host=sandbox.url)
    assert result.returncode == 0, result.stderr
    effective = yaml.safe_load(result.stdout)
    assert effective["docker"]["pool"]["min_pool_size"] == 5
    assert effective["docker"]["pool"]["socket_path"] is None  # unset: the environment decides
    assert f"\n# endpoint: {sandbox.url} from DOCKER_HOST; API negotiated" in result.stdout
    assert effective["docker"]["streams"]["overflow_policy"] == "block"


def test_config_check_of_a_bad_file_exits_2_with_the_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("docker:\n  pool:\n    min_pool_size: 0\n")
    result = run_cli("config", "check", str(bad), host=None)
    assert result.returncode == 2
    assert result.stdout == ""
    line = assert_one_line_error(result.stderr)
    assert line == f"actorpool: {bad}:3: docker.pool.min_pool_size: must be an integer >= 1, got 0"


def test_config_check_prints_every_problem_of_a_file_in_file_order(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "docker:\n  api:\n    timeout: soon\n  pool:\n    min_pool_size: 0\n    bogus: 1\n"
    )
    result = run_cli("config", "check", str(bad), host=None)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert [line.split(": ", 2)[:2] for line in result.stderr.splitlines()] == [
        ["actorpool", f"{bad}"],
        [f"  {bad}:3", "docker.api.timeout"],
        [f"  {bad}:5", "docker.pool.min_pool_size"],
        [f"  {bad}:6", "docker.pool.bogus"],
    ]
    assert result.stderr.startswith(f"actorpool: {bad}: 3 problems:\n")


def test_host_flag_beats_the_file_which_beats_docker_host(tmp_path: Path) -> None:
    named = tmp_path / "named.yaml"
    named.write_text("docker:\n  pool:\n    socket_path: unix:///from/file.sock\n")

    def endpoint(*args: str) -> str:
        result = run_cli(*args, host="unix:///from/env.sock")
        assert result.returncode == 0, result.stderr
        found = re.search(r"^# endpoint: (.*?);", result.stdout, re.MULTILINE)
        assert found, result.stdout
        return found[1]

    assert endpoint("config", "check") == "unix:///from/env.sock from DOCKER_HOST"
    file = "unix:///from/file.sock from docker.pool.socket_path"
    assert endpoint("config", "check", str(named)) == file
    assert endpoint("--config", str(named), "config", "check") == file
    assert endpoint("-H", "tcp://10.0.0.1:2375", "config", "check", str(named)) == (
        "tcp://10.0.0.1:2375 from -H"
    )
    assert endpoint("config", "check", "-H", "/flag.sock") == "unix:///flag.sock from -H"


# --------------------------------------------------------------------------- usage


def test_log_level_is_actorpools_own_and_debug_libraries_adds_the_others(
    sandbox: Sandbox,
) -> None:
    def loggers(*flags: str) -> set[str]:
        result = run_cli("ps", "--log-level", "debug", *flags, host=sandbox.url)
        assert result.returncode == 0, result.stderr
        found = re.findall(r"^\S+ \S+ (?:DEBUG|INFO|WARNING) ([\w.]+): ", result.stderr, re.M)
        return {name.split(".")[0] for name in found}

    # actorpool's own debug records are few and timing-dependent (tests/observe covers them);
    # the libraries' are dozens per request, and only --debug-libraries shows them.
    assert loggers() <= {"actorpool"}
    assert {"docker", "pykka"} <= loggers("--debug-libraries")


@pytest.mark.parametrize(
    "command", [[], ["ps"], ["logs"], ["monitor"], ["health"], ["config", "check"]]
)
def test_every_command_has_help_with_the_exit_codes(command: list[str]) -> None:
    result = run_cli(*command, "--help", host=None)
    assert result.returncode == 0
    assert "exit codes:" in result.stdout
    assert "130  interrupted" in result.stdout


def test_a_usage_error_is_one_line_and_exit_2() -> None:
    result = run_cli("ps", "--filter", "no-equals-sign", host=None)
    assert result.returncode == 2
    line = assert_one_line_error(result.stderr)
    assert "filter must be key=value" in line


# --------------------------------------------------------------------------- API version floor


def test_a_refused_api_version_is_one_line_naming_both_versions(version_gate: VersionGate) -> None:
    # The gate stands in for Docker Engine 29 (API >= 1.44), which cannot be installed here.
    result = run_cli("ps", host=version_gate.url, DOCKER_API_VERSION="1.40")
    assert result.returncode == 3
    assert assert_one_line_error(result.stderr) == (
        f"actorpool: Docker at {version_gate.url} refuses API version 1.40 (its minimum is "
        "1.44) — set docker.api.version to auto to negotiate, or pin a version >= 1.44 there "
        "or in DOCKER_API_VERSION"
    )
    negotiated = run_cli("ps", "-a", host=version_gate.url)
    assert negotiated.returncode == 0, negotiated.stderr
    assert negotiated.stdout.startswith("CONTAINER ID")


# --------------------------------------------------------------------------- several endpoints


def test_several_hosts_ps_adds_an_endpoint_column_and_names_a_dead_one(
    sandbox: Sandbox, make_container: MakeContainer, tmp_path: Path
) -> None:
    label = unique("eps")
    cid = make_container(["sleep", "60"], labels={"t": label})
    hosts = ["-H", f"a={sandbox.url}", "-H", f"b={sandbox.url}"]
    result = run_cli("ps", "--filter", f"label=t={label}", *hosts, host=None)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["ENDPOINT", "CONTAINER", "ID"]
    assert sorted(line.split()[:2] for line in lines[1:]) == [["a", cid[:12]], ["b", cid[:12]]]
    dead = f"unix://{tmp_path}/nobody.sock"
    partial = run_cli(
        "ps", "--filter", f"label=t={label}", "-H", f"live={sandbox.url}", "-H", f"dead={dead}",
        host=None, timeout=60,
    )  # fmt: skip
    assert partial.returncode == 3, partial.stderr
    assert [line.split()[:2] for line in partial.stdout.splitlines()[1:]] == [["live", cid[:12]]]
    assert "actorpool: endpoint dead did not answer:" in partial.stderr


def test_several_hosts_logs_take_endpoint_slash_container_and_prefix_it(
    sandbox: Sandbox, finished_logger: tuple[str, str]
) -> None:
    _, name = finished_logger
    hosts = ["-H", f"a={sandbox.url}", "-H", f"b={sandbox.url}"]
    result = run_cli("logs", f"b/{name}", *hosts, host=None)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"b/{name} | out {i}" for i in (1, 2, 3)]
    ambiguous = run_cli("logs", name, *hosts, host=None)
    assert ambiguous.returncode == 2
    assert f"a/{name}, b/{name}" in assert_one_line_error(ambiguous.stderr)
    unknown = run_cli("logs", f"c/{name}", *hosts, host=None)
    assert unknown.returncode == 2
    assert "no endpoint named 'c'" in assert_one_line_error(unknown.stderr)


def test_several_hosts_monitor_prefixes_lines_with_endpoint_and_container(
    private_sandboxes: Callable[[int], list[Sandbox]],
    make_container: MakeContainer,
    cli_processes: list[CliProcess],
) -> None:
    label = unique("mon")
    name = unique("ticker")
    daemons = private_sandboxes(2)
    clients = [daemon.client() for daemon in daemons]
    try:
        for client in clients:
            make_container(ticker_cmd("tick"), name=name, labels={"t": label}, api=client)
    finally:
        for client in clients:
            client.close()
    monitor = CliProcess(
        "monitor", "--duration", "120", "--summary-interval", "1",
        "--filter", f"label=t={label}", "--metrics", "127.0.0.1:0",
        "-H", f"a={daemons[0].url}", "-H", f"b={daemons[1].url}",
        host=None,
    )  # fmt: skip
    cli_processes.append(monitor)
    monitor.wait_for(monitor.err, r"following logs on a \(unix://.*\), b \(unix://", timeout=15)
    monitor.wait_for(monitor.out, rf"^a/{name} +\| tick \d+$", timeout=20)
    monitor.wait_for(monitor.out, rf"^b/{name} +\| tick \d+$", timeout=20)
    monitor.wait_for(monitor.err, r"^actorpool health: ok size=\d+", timeout=20)
    monitor.proc.terminate()
    assert monitor.finish(timeout=30) == 0, "\n".join(monitor.err)
    assert not any("Traceback" in line for line in monitor.err)


def test_unnamed_hosts_are_named_by_their_address() -> None:
    from actorpool.cli.main import resolve_config

    args = argparse.Namespace(
        config=None, host=["unix:///run/a/docker.sock", "unix:///run/b/docker.sock", "tcp://h:1"]
    )
    config = resolve_config(args)
    assert config.endpoint_names == ("docker", "b-docker", "h:1")
    assert config.for_endpoint("b-docker").pool.socket_path == "unix:///run/b/docker.sock"
    one = resolve_config(argparse.Namespace(config=None, host=["tcp://h:2"]))
    assert (one.endpoint_names, one.pool.socket_path) == (("default",), "tcp://h:2")
    named = resolve_config(argparse.Namespace(config=None, host=["x=tcp://h:2"]))
    assert named.endpoint_names == ("x",)
    contexts = resolve_config(argparse.Namespace(config=None, host=None, context=["p=prod", "dev"]))
    assert contexts.endpoint_names == ("p", "dev")
    assert contexts.for_endpoint("p").pool.context == "prod"
