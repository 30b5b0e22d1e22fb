"""The private dockerd the whole suite stands on, and the fixtures built on it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from actorpool.testing.sandbox import (
    API_VERSION,
    IMAGE,
    Sandbox,
    SandboxError,
    find_busybox,
    missing_requirements,
    sweep_stale_sandboxes,
)

from helpers import numbered_lines_cmd, wait_for_state, wait_until

REPO = Path(__file__).resolve().parents[2]


def _processes_naming(root: Path) -> list[tuple[int, str]]:
    """Every live process whose command line mentions ``root`` (zombies excluded)."""
    found = []
    needle = str(root).encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline:
            found.append((int(entry.name), cmdline.replace(b"\0", b" ").decode(errors="replace")))
    return found


def _mounts_naming(root: Path) -> list[str]:
    return [
        line for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(root) in line
    ]


def _sleeper(make_container: Any, api: Any) -> tuple[str, int]:
    cid = make_container(["sleep", "1000"], api=api)
    state = wait_for_state(api, cid, "running", timeout=10)
    return cid, state["Pid"]


# ----------------------------------------------------------------- requirements & image


def test_this_machine_meets_the_requirements() -> None:
    assert missing_requirements() == []


def test_find_busybox_accepts_only_a_static_binary() -> None:
    from actorpool.testing.sandbox import _is_static_elf

    busybox = find_busybox()
    assert busybox is not None
    assert _is_static_elf(busybox)
    assert not _is_static_elf(Path(sys.executable).resolve())  # python links libc
    assert not _is_static_elf(Path(__file__))  # not ELF at all


def test_a_root_too_long_for_unix_sockets_is_refused(tmp_path: Path) -> None:
    root = tmp_path / ("x" * 80)
    with pytest.raises(SandboxError, match="107-byte"):
        Sandbox(root)
    assert not root.exists()


def test_shared_sandbox_is_a_private_vfs_daemon(sandbox: Sandbox, docker_api: Any) -> None:
    assert sandbox.ping()
    assert sandbox.url == f"unix://{sandbox.socket_path}"
    assert len(str(sandbox.socket_path)) < 107
    info = docker_api.info()
    assert info["Driver"] == "vfs"
    assert info["DockerRootDir"] == str(sandbox.data_root)
    assert docker_api.version()["ApiVersion"] == API_VERSION
    assert sandbox.start_seconds is not None
    assert sandbox.start_seconds < 10


def test_image_is_static_busybox_with_applet_links(sandbox: Sandbox, docker_api: Any) -> None:
    config = docker_api.inspect_image(IMAGE)["Config"]
    assert config["Env"] == ["PATH=/bin"]
    assert config["Cmd"] == ["sh"]
    began = time.monotonic()
    assert sandbox.ensure_image() == IMAGE
    assert time.monotonic() - began < 1.0  # already there: one inspect


def test_container_output_reaches_the_logs(make_container: Any, docker_api: Any) -> None:
    cid = make_container(numbered_lines_cmd(3))
    state = wait_for_state(docker_api, cid, "exited", timeout=20)
    assert state["ExitCode"] == 0
    assert docker_api.logs(cid, stdout=True, stderr=False) == b"out 1\nout 2\nout 3\n"
    assert docker_api.logs(cid, stdout=False, stderr=True) == b"err 1\nerr 2\nerr 3\n"
    host_config = docker_api.inspect_container(cid)["HostConfig"]
    assert host_config["NetworkMode"] == "none"


def test_numbered_lines_cmd_without_stderr_and_with_delay(
    make_container: Any, docker_api: Any
) -> None:
    began = time.monotonic()
    cid = make_container(numbered_lines_cmd(4, stderr=False, delay=0.2))
    wait_for_state(docker_api, cid, "exited", timeout=20)
    assert time.monotonic() - began >= 0.8
    assert docker_api.logs(cid, stdout=True, stderr=True) == b"out 1\nout 2\nout 3\nout 4\n"


def test_make_container_passes_labels_tty_and_name(make_container: Any, docker_api: Any) -> None:
    name = f"ap-test-{os.getpid()}-{time.monotonic_ns()}"
    cid = make_container(
        "sleep 1000", labels={"team": "actorpool"}, tty=True, name=name, start=False
    )
    details = docker_api.inspect_container(cid)
    assert details["Name"] == f"/{name}"
    assert details["Config"]["Labels"] == {"team": "actorpool"}
    assert details["Config"]["Tty"] is True
    assert details["State"]["Status"] == "created"


# ----------------------------------------------------------------- private daemons


@pytest.mark.daemon
def test_paused_daemon_does_not_answer_until_resumed(private_sandbox: Sandbox) -> None:
    client = private_sandbox.client(timeout=1)
    assert private_sandbox.ping(timeout=1.0)
    private_sandbox.pause()
    try:
        assert private_sandbox.paused
        began = time.monotonic()
        assert not private_sandbox.ping(timeout=1.0)
        assert 0.9 <= time.monotonic() - began < 3.0
        with pytest.raises(requests.Timeout):
            client.ping()
    finally:
        private_sandbox.resume()
    assert not private_sandbox.paused
    began = time.monotonic()
    assert private_sandbox.ping(timeout=1.0)
    assert time.monotonic() - began < 1.0
    assert client.ping() is True
    client.close()


@pytest.mark.daemon
def test_restart_with_live_restore_keeps_a_container_running(
    private_sandbox: Sandbox, make_container: Any
) -> None:
    client = private_sandbox.client()
    cid, pid = _sleeper(make_container, client)
    old_daemon = private_sandbox.pid
    private_sandbox.restart()
    assert private_sandbox.pid not in (None, old_daemon)
    state = client.inspect_container(cid)["State"]
    assert state["Status"] == "running"
    assert state["Pid"] == pid
    client.close()


@pytest.mark.daemon
def test_a_killed_daemon_comes_back_with_its_containers(
    private_sandbox: Sandbox, make_container: Any
) -> None:
    client = private_sandbox.client(timeout=2)
    cid, pid = _sleeper(make_container, client)
    private_sandbox.kill()
    assert private_sandbox.pid is None
    assert not private_sandbox.ping(timeout=0.5)
    with pytest.raises(requests.ConnectionError):
        client.ping()
    assert os.path.exists(f"/proc/{pid}")  # the container outlives its daemon
    private_sandbox.start()
    state = client.inspect_container(cid)["State"]
    assert (state["Status"], state["Pid"]) == ("running", pid)
    client.close()


@pytest.mark.daemon
def test_two_daemons_run_side_by_side(
    sandbox: Sandbox, private_sandbox: Sandbox, make_container: Any, docker_api: Any
) -> None:
    private_api = private_sandbox.client()
    assert sandbox.socket_path != private_sandbox.socket_path
    assert sandbox.exec_root != private_sandbox.exec_root
    shared_cid = make_container(["sleep", "1000"])
    private_cid = make_container(["sleep", "1000"], api=private_api)
    wait_for_state(docker_api, shared_cid, "running", timeout=10)
    wait_for_state(private_api, private_cid, "running", timeout=10)
    assert private_cid not in {c["Id"] for c in docker_api.containers(all=True)}
    assert shared_cid not in {c["Id"] for c in private_api.containers(all=True)}
    own_containerd = private_sandbox.exec_root / "containerd" / "containerd.sock"
    assert own_containerd.is_socket()
    private_api.close()


def test_start_failure_says_why_with_the_log_tail() -> None:
    broken = Sandbox()
    try:
        (broken.root / "data").write_text("a file where dockerd wants its data root\n")
        with pytest.raises(SandboxError, match="exited with code") as failure:
            broken.start(timeout=20)
        assert str(broken.log_path) in str(failure.value)
        assert str(broken.data_root) in str(failure.value).split("last lines of", 1)[1]
        assert not broken.running
    finally:
        broken.cleanup()
    assert _processes_naming(broken.root) == []


@pytest.mark.daemon
def test_a_root_in_use_by_a_running_daemon_is_refused(private_sandbox: Sandbox) -> None:
    intruder = Sandbox(private_sandbox.root)
    with pytest.raises(SandboxError, match="already answers"):
        intruder.start()
    assert private_sandbox.ping()
    assert private_sandbox.pidfile.exists()


@pytest.mark.daemon
@pytest.mark.parametrize("live_restore", [False, True])
def test_stop_and_cleanup_leave_no_process_mount_or_cgroup(live_restore: bool) -> None:
    sandbox = Sandbox(live_restore=live_restore)
    try:
        sandbox.start()
        client = sandbox.client()
        sandbox.ensure_image()
        container = client.create_container(
            IMAGE, ["sleep", "1000"], host_config=client.create_host_config(network_mode="none")
        )
        client.start(container["Id"])
        pid = wait_for_state(client, container["Id"], "running", timeout=10)["Pid"]
        client.close()
        assert len(sandbox.leftover_processes()) >= 3  # containerd, shim, sleep
        began = time.monotonic()
        sandbox.stop()
        stop_seconds = time.monotonic() - began
        if live_restore:
            assert os.path.exists(f"/proc/{pid}")  # kept for a restart
        else:
            assert sandbox.leftover_processes() == []
            assert stop_seconds < 5  # containers are killed, not given 10 s each
    finally:
        sandbox.cleanup()
    assert sandbox.leftover_processes() == []
    assert _processes_naming(sandbox.root) == []
    assert wait_until(
        lambda: (
            not os.path.exists(f"/proc/{pid}/cmdline")
            or not Path(f"/proc/{pid}/cmdline").read_bytes()
        ),
        timeout=5,
    )
    assert _mounts_naming(sandbox.root) == []
    assert not sandbox.root.exists()
    assert not list(Path("/sys/fs/cgroup").glob(f"*/{sandbox.cgroup_parent}"))
    sandbox.cleanup()  # idempotent


@pytest.mark.daemon
def test_a_sandbox_abandoned_by_a_killed_process_is_swept() -> None:
    script = (
        "from actorpool.testing.sandbox import Sandbox\n"
        "s = Sandbox(); s.start(); print(s.root, flush=True)\n"
        "import time; time.sleep(120)\n"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert owner.stdout is not None
        root = Path(owner.stdout.readline().strip())
        assert root.name.startswith("apsb-")
        assert _processes_naming(root)  # its dockerd and containerd run
        assert root not in sweep_stale_sandboxes()  # the owner is alive: hands off
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
    assert _processes_naming(root)  # a killed owner leaves its daemon behind...
    assert root in sweep_stale_sandboxes()  # ...until the next sweep
    assert _processes_naming(root) == []
    assert not root.exists()


# ----------------------------------------------------------------- helpers & make_config


def test_wait_until_returns_the_value_or_fails_with_a_message() -> None:
    values = iter([0, None, 7])
    assert wait_until(lambda: next(values), timeout=5, interval=0.01) == 7
    began = time.monotonic()
    with pytest.raises(AssertionError, match=r"within 0.2 s: never true"):
        wait_until(lambda: False, timeout=0.2, interval=0.01, message="never true")
    assert time.monotonic() - began < 1.0


def test_numbered_lines_cmd_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="n must be"):
        numbered_lines_cmd(-1)
    with pytest.raises(ValueError, match="delay"):
        numbered_lines_cmd(1, delay=-0.5)


def test_make_config_targets_the_sandbox_with_small_fast_defaults(
    make_config: Any, sandbox: Sandbox
) -> None:
    config = make_config()
    assert config.pool.socket_path == sandbox.url
    sizes = (config.pool.min_pool_size, config.pool.initial_pool_size, config.pool.max_pool_size)
    assert sizes == (2, 4, 8)
    assert config.pool.health_check_interval <= 1.0
    assert config.monitoring.enabled is False
    assert make_config(monitoring={"enabled": True}).monitoring.enabled is True


def test_make_config_fits_its_defaults_around_given_values(make_config: Any) -> None:
    small = make_config("unix:///tmp/nowhere.sock", pool={"max_pool_size": 3})
    assert small.pool.socket_path == "unix:///tmp/nowhere.sock"
    assert (small.pool.min_pool_size, small.pool.initial_pool_size) == (2, 3)
    big = make_config("unix:///tmp/nowhere.sock", pool={"min_pool_size": 10, "retry_delay": "2s"})
    assert (big.pool.initial_pool_size, big.pool.max_pool_size) == (10, 10)
    assert big.pool.initial_retry_delay == 2.0
    assert big.pool.max_retry_delay == 2.0
