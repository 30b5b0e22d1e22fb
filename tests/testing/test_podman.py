"""The private podman service: start, restart with live containers, a cleanup leaving nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from actorpool.testing.podman import PodmanService, sweep_stale_podman
from actorpool.testing.sandbox import IMAGE, _mounts_under

from helpers import wait_for_state, wait_until


def test_the_session_service_answers_as_podman(podman: PodmanService, podman_api: Any) -> None:
    assert podman.ping()
    names = [c["Name"] for c in podman_api.version()["Components"]]
    assert "Podman Engine" in names
    assert podman_api.inspect_image(IMAGE)["RepoTags"] == [f"localhost/{IMAGE}"]


def test_a_private_service_restarts_with_its_containers_and_cleans_up_everything() -> None:
    service = PodmanService()
    root = service.root
    try:
        service.start()
        client = service.client()
        cid = client.create_container(
            IMAGE, "sleep 300", host_config=client.create_host_config(network_mode="none")
        )["Id"]
        client.start(cid)
        client.close()
        service.restart(kill=True)  # the stale socket of a SIGKILL is no obstacle
        client = service.client()
        assert wait_for_state(client, cid, "running")["Running"]
        client.close()
        service.stop()  # cleanup works without the service, as after a crash
        assert service.leftover_processes(), "conmon should hold the container"
        assert _mounts_under(root), "the container's shm should be mounted under the root"
    finally:
        service.cleanup()
    assert service.leftover_processes() == []
    assert _mounts_under(root) == []
    assert not root.exists()
    assert not Path("/run/netns").exists() or not os.listdir("/run/netns")


def test_sweep_removes_the_root_of_a_dead_owner() -> None:
    # Not tmp_path: podman roots must be short (a socket path inside), and pytest-xdist's
    # tmp_path (.../popen-gw0/test_sweep_removes_the_root_of0/) is too long for one.
    base = Path(tempfile.mkdtemp(prefix="apt-", dir="/tmp"))
    try:
        # A child process makes a service root and dies without cleaning up.
        code = (
            "from actorpool.testing.podman import PodmanService;"
            f"print(PodmanService('{base}/appm-dead').root)"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        root = Path(out.stdout.strip())
        assert root.exists()
        live = PodmanService(base / "appm-live")  # ours: this process is alive
        try:
            assert sweep_stale_podman(base) == [root]
            assert not root.exists()
            assert live.root.exists()
        finally:
            live.cleanup()
        wait_until(lambda: not live.root.exists(), 5)
    finally:
        shutil.rmtree(base, ignore_errors=True)
