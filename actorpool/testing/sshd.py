"""A private OpenSSH server on 127.0.0.1 whose sessions reach a private dockerd, for ssh:// tests.

    with PrivateSshd(tmp, docker_host=sandbox.url) as sshd:
        sshd.url        # "ssh://root@127.0.0.1:PORT"
        sshd.home       # a HOME whose ~/.ssh/{config,known_hosts} let paramiko log in

The server runs ``/usr/sbin/sshd -D -f <root>/sshd_config`` (Debian ``openssh-server``):
loopback only, key-only login for the current user with a key made here, the host key
pre-trusted in the client's ``known_hosts`` (no trust on first use). ``SetEnv
DOCKER_HOST=…`` gives every session the private daemon, so the remote ``docker system
dial-stdio`` (what docker-py runs over ssh) reaches it. ``SHLVL=1`` keeps bash from
sourcing ``~/.bashrc`` in those sessions (slow here, and output there would corrupt the
byte stream). The only thing outside ``root`` it creates is sshd's privilege-separation
directory ``/run/sshd``. Needs root (sshd, and a login as root onto a root-owned socket).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from actorpool.testing.pki import free_port

__all__ = ["SSHD", "PrivateSshd", "missing_sshd"]

SSHD = "/usr/sbin/sshd"


def missing_sshd() -> str | None:
    """Why a private sshd cannot run here, or ``None`` when it can."""
    if not os.path.exists(SSHD):
        return f"no {SSHD}: install openssh-server (scripts/_setup.sh does)"
    if shutil.which("ssh-keygen") is None:
        return "no ssh-keygen: install openssh-client"
    if os.geteuid() != 0:
        return "sshd must run as root to log a user in"
    return None


class PrivateSshd:
    """sshd on 127.0.0.1:PORT under ``root``; ``start()``/``stop()`` or a ``with`` block.

    Args:
        root: A directory of its own (keys, configs, the client's HOME).
        docker_host: The ``DOCKER_HOST`` every session gets.
    """

    def __init__(self, root: Path | str, docker_host: str) -> None:
        self.root = Path(root)
        self.docker_host = docker_host
        self.port = free_port()
        self.user = getpass.getuser()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``ssh://USER@127.0.0.1:PORT``."""
        return f"ssh://{self.user}@127.0.0.1:{self.port}"

    @property
    def home(self) -> Path:
        """A HOME for the client: ``~/.ssh/config`` names the key, ``known_hosts`` the server."""
        return self.root / "home"

    def _prepare(self) -> Path:
        ssh_dir = self.home / ".ssh"
        ssh_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for key in ("host_ed25519", "client_ed25519"):
            if not (self.root / key).exists():
                subprocess.run(
                    ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", key,
                     "-f", str(self.root / key)],
                    check=True, timeout=30, stdin=subprocess.DEVNULL,
                )  # fmt: skip
        client_pub = (self.root / "client_ed25519.pub").read_text().strip()
        host_pub = " ".join((self.root / "host_ed25519.pub").read_text().split()[:2])
        (self.root / "authorized_keys").write_text(client_pub + "\n")
        (ssh_dir / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {host_pub}\n")
        (ssh_dir / "config").write_text(
            f"Host 127.0.0.1\n  IdentityFile {self.root / 'client_ed25519'}\n"
        )
        config = self.root / "sshd_config"
        config.write_text(
            f"Port {self.port}\n"
            "ListenAddress 127.0.0.1\n"
            f"HostKey {self.root / 'host_ed25519'}\n"
            f"PidFile {self.root / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {self.root / 'authorized_keys'}\n"
            "PermitRootLogin prohibit-password\n"  # key-only, this private server only
            f"AllowUsers {self.user}\n"
            "PubkeyAuthentication yes\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\n"
            "StrictModes no\n"  # the files live under /tmp (mode 1777), which StrictModes refuses
            "AllowTcpForwarding no\nAllowAgentForwarding no\nX11Forwarding no\nPermitTTY no\n"
            "LogLevel ERROR\n"
            f"SetEnv DOCKER_HOST={self.docker_host} SHLVL=1\n"
        )
        return config

    def start(self, timeout: float = 10.0) -> PrivateSshd:
        """Write the keys and configs, start sshd and wait for its banner."""
        why = missing_sshd()
        if why is not None:
            raise RuntimeError(why)
        self.root.mkdir(parents=True, exist_ok=True)
        config = self._prepare()
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's compiled-in privsep dir
        subprocess.run([SSHD, "-t", "-f", str(config)], check=True, timeout=10)
        with (self.root / "sshd.log").open("ab") as log:
            self._process = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                log_text = (self.root / "sshd.log").read_text(errors="replace")
                self.stop()
                raise RuntimeError(f"sshd did not start: {log_text}")
            time.sleep(0.05)
        return self

    def _answers(self) -> bool:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", self.port), 0.5) as conn,
        ):
            conn.settimeout(0.5)
            return conn.recv(64).startswith(b"SSH-2.0-")
        return False

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM sshd's process group (its sessions too), SIGKILL after ``timeout``."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)

    def __enter__(self) -> PrivateSshd:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
