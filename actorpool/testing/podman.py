"""A private Podman API service (``podman system service``): the second real engine for tests.

Many people run Podman's Docker-compatible API instead of dockerd, so actorpool's
suite runs against both. A :class:`PodmanService` writes a private
``storage.conf`` and ``containers.conf`` under one short directory, imports the
sandbox's busybox image (:data:`~actorpool.testing.sandbox.IMAGE`, the same
name as on dockerd) and runs ``podman system service --time=0
unix://ROOT/podman.sock`` until ``/_ping`` answers (~0.1 s idle).

Podman needs care to leave the host as it found it (measured on Debian
bookworm, podman 4.3.1):

- The compat API ignores ``containers.conf``'s ``netns = "none"``: a container
  created without ``network_mode="none"`` asks for a CNI bridge. The private
  configuration points ``cni_plugin_dirs`` at an empty directory, so such a
  start fails (HTTP 500) instead of creating ``cni-podman0``, iptables chains
  and ``/run/netns`` mounts. Create containers with ``network_mode="none"``
  (the ``make_container`` fixture does).
- Containers outlive the service (conmon holds them): :meth:`restart` is the
  podman analogue of a live-restore dockerd restart. :meth:`cleanup` therefore
  removes every container with the CLI (which needs no service), kills every
  process whose command line names the root (conmon, ``podman container
  cleanup``), unmounts what is mounted under the root (one ``shm`` per
  container) and deletes it.

Only ``/run/runc/<id>`` (removed with its container) and
``/var/lib/containers/cache`` (written by ``podman import``) are outside the
root. Requires ``podman``, ``runc`` and ``busybox-static`` (``scripts/_setup.sh``
installs them).

Example::

    with PodmanService() as podman:
        client = podman.client()
        cid = client.create_container(
            IMAGE, "echo hi", host_config=client.create_host_config(network_mode="none")
        )["Id"]
        client.start(cid)
        podman.restart()  # the container keeps running
        out, err = podman.cli_logs(cid)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Self

from actorpool.testing.sandbox import (
    IMAGE,
    SandboxError,
    _alive,
    _mounts_under,
    _stale_roots,
    _start_time,
    _umount,
    busybox_rootfs,
    find_busybox,
    ping_socket,
)

if TYPE_CHECKING:
    from docker import APIClient

__all__ = [
    "API_VERSION",
    "PodmanError",
    "PodmanService",
    "missing_podman_requirements",
    "sweep_stale_podman",
]

#: The Docker API version podman 4.x serves (it answers every version prefix with it).
API_VERSION = "1.41"

_PREFIX = "appm-"
_MAX_ROOT_LEN = 80  # the socket is <root>/podman.sock; AF_UNIX paths hold 107 bytes
_TOOLS = {"podman": "podman", "runc": "runc", "conmon": "conmon (a dependency of podman)"}


class PodmanError(SandboxError):
    """The podman service could not be set up, started, stopped or cleaned up."""


def missing_podman_requirements() -> list[str]:
    """What this machine lacks to run a :class:`PodmanService`, one actionable line each."""
    problems: list[str] = []
    if os.geteuid() != 0:
        problems.append("run as root: the podman service runs rootful containers")
    for tool, package in _TOOLS.items():
        if shutil.which(tool) is None:
            problems.append(f"{tool} not found on PATH: apt-get install {package}")
    if find_busybox() is None:
        problems.append("no static busybox at /bin/busybox: apt-get install busybox-static")
    return problems


class PodmanService:
    """A private ``podman system service`` with its own storage, configuration and socket.

    Args:
        root: Directory for all its state; ``None`` makes a fresh ``<tmp>/appm-XXXXXXXX``
            (removed by :meth:`cleanup`, and by :func:`sweep_stale_podman` when the
            owning process died). At most 80 bytes: the socket lives under it.
        start_timeout: Seconds :meth:`start` waits for ``/_ping``.
        command_timeout: Seconds any podman CLI call may take.

    Use it as a context manager (set up and started on enter, :meth:`cleanup`
    on exit) or call :meth:`start` and :meth:`cleanup` yourself.
    """

    def __init__(
        self,
        root: Path | str | None = None,
        *,
        start_timeout: float = 15.0,
        command_timeout: float = 60.0,
    ) -> None:
        if root is None:
            self._root = Path(tempfile.mkdtemp(prefix=_PREFIX, dir="/tmp")).resolve()
        else:
            self._root = Path(root).resolve()
            self._root.mkdir(parents=True, exist_ok=True)
        if len(str(self._root).encode()) > _MAX_ROOT_LEN:
            msg = f"podman root {str(self._root)!r} is longer than {_MAX_ROOT_LEN} bytes"
            raise PodmanError(msg)
        own = os.getpid()
        (self._root / "owner").write_text(f"{own} {_start_time(own)}\n")
        self.start_timeout = start_timeout
        self.command_timeout = command_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._configured = False
        #: Seconds the last :meth:`start` took until ``/_ping`` answered.
        self.start_seconds: float | None = None

    # ----------------------------------------------------------------- paths

    @property
    def root(self) -> Path:
        """The directory that holds all of the service's state."""
        return self._root

    @property
    def socket_path(self) -> Path:
        """The unix socket the API listens on."""
        return self._root / "podman.sock"

    @property
    def url(self) -> str:
        """The service's address as docker-py, ``-H`` and ``docker.pool.socket_path`` take it."""
        return f"unix://{self.socket_path}"

    @property
    def env(self) -> dict[str, str]:
        """The environment of every podman call: the private configuration files."""
        env = dict(os.environ)
        env["CONTAINERS_CONF"] = str(self._root / "conf" / "containers.conf")
        env["CONTAINERS_STORAGE_CONF"] = str(self._root / "conf" / "storage.conf")
        return env

    @property
    def pid(self) -> int | None:
        """The service's process id while it runs."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    # ----------------------------------------------------------------- set-up

    def _configure(self) -> None:
        root = self._root
        for sub in ("conf", "run", "graph", "tmp", "cni", "cni-plugins"):
            (root / sub).mkdir(exist_ok=True)
        (root / "conf" / "storage.conf").write_text(
            f'[storage]\ndriver = "vfs"\nrunroot = "{root / "run"}"\n'
            f'graphroot = "{root / "graph"}"\n'
        )
        (root / "conf" / "containers.conf").write_text(
            "[containers]\n"
            "default_ulimits = []\n"  # podman's nofile/nproc defaults exceed the hard limits here
            'netns = "none"\n'  # the CLI's default only: the compat API still asks for a bridge
            'cgroupns = "host"\n'
            "[engine]\n"
            'runtime = "runc"\n'  # crun 1.x refuses cgroups in hybrid mode
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            f'tmp_dir = "{root / "tmp"}"\n'
            "[network]\n"
            f'network_config_dir = "{root / "cni"}"\n'
            # An empty plugin directory: a bridge start fails instead of changing the host.
            f'cni_plugin_dirs = ["{root / "cni-plugins"}"]\n'
        )
        if self.podman("image", "exists", IMAGE, check=False).returncode != 0:
            self.podman(
                "import",
                "--change",
                "ENV PATH=/bin",
                "--change",
                'CMD ["sh"]',
                "-",
                IMAGE,
                input=busybox_rootfs(),
            )
        self._configured = True

    # ----------------------------------------------------------------- the CLI

    def podman(
        self, *args: str, check: bool = True, input: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        """Run the podman CLI on this service's storage (it needs no running service).

        Raises:
            PodmanError: The command failed (with ``check``) or timed out.
        """
        command = ["podman", *args]
        try:
            result = subprocess.run(
                command,
                input=input,
                stdin=None if input is not None else subprocess.DEVNULL,
                capture_output=True,
                env=self.env,
                timeout=self.command_timeout,
            )
        except subprocess.TimeoutExpired as exc:
            msg = f"{' '.join(command[:3])}... timed out after {exc.timeout} s"
            raise PodmanError(msg) from exc
        if check and result.returncode != 0:
            msg = (
                f"{' '.join(command[:4])} exited {result.returncode}: "
                f"{result.stderr.decode(errors='replace').strip()}"
            )
            raise PodmanError(msg)
        return result

    def cli_logs(self, container: str) -> tuple[bytes, bytes]:
        """``podman logs CONTAINER`` as (stdout, stderr): the reference a follow is checked against.

        The CLI reads the log file itself (no service needed) and joins the
        pieces podman splits long or fast-written lines into.
        """
        result = self.podman("logs", container)
        return result.stdout, result.stderr

    # ----------------------------------------------------------------- the service

    def ping(self, timeout: float = 1.0) -> bool:
        """True when ``/_ping`` answers 200 within ``timeout`` seconds."""
        return ping_socket(self.socket_path, timeout)

    def start(self) -> float:
        """Start the service and wait for ``/_ping``; the seconds that took.

        Raises:
            PodmanError: It is already running, exited, or did not answer in time.
        """
        if self.pid is not None:
            msg = f"the podman service at {self.url} is already running (pid {self.pid})"
            raise PodmanError(msg)
        if not self._configured:
            self._configure()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()  # left by a SIGKILL
        self._log = open(self._root / "service.log", "ab")  # noqa: SIM115 - closed by stop()
        began = time.monotonic()
        self._process = subprocess.Popen(
            ["podman", "system", "service", "--time=0", self.url],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )
        deadline = began + self.start_timeout
        delay = 0.005
        while not (self.socket_path.exists() and self.ping(0.5)):
            if self._process.poll() is not None:
                code = self._process.returncode
                self.stop()
                msg = f"podman system service exited with {code}; see {self._root}/service.log"
                raise PodmanError(msg)
            if time.monotonic() > deadline:
                self.stop()
                msg = f"podman system service did not answer /_ping in {self.start_timeout} s"
                raise PodmanError(msg)
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        self.start_seconds = time.monotonic() - began
        return self.start_seconds

    def stop(self, *, kill: bool = False, timeout: float = 10.0) -> None:
        """Stop the service (SIGTERM, or SIGKILL with ``kill``); containers keep running.

        With open log or event streams podman waits ~1 s, then cuts them
        without an end-of-body marker.
        """
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self, *, kill: bool = False) -> float:
        """Stop and start the service; running containers survive. Seconds to ``/_ping``."""
        self.stop(kill=kill)
        return self.start()

    def client(self, timeout: float = 10.0) -> APIClient:
        """A new docker-py ``APIClient`` on the service (API :data:`API_VERSION`, no probe)."""
        from docker import APIClient

        return APIClient(base_url=self.url, version=API_VERSION, timeout=timeout)

    # ----------------------------------------------------------------- cleanup

    def leftover_processes(self) -> list[int]:
        """Processes whose command line names the root (service, conmon, cleanup helpers)."""
        marker = str(self._root).encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                if marker in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
        return found

    def cleanup(self) -> None:
        """Stop the service, remove every container, kill leftovers, unmount, delete the root.

        Safe to call more than once; a failing step does not skip the next.
        """
        self.stop()
        if (self._root / "conf" / "containers.conf").exists():
            with contextlib.suppress(PodmanError):
                self.podman("rm", "--all", "--force", "--time", "0", check=False)
        for pid in self.leftover_processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while any(_alive(pid) for pid in self.leftover_processes()):
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        for mount in _mounts_under(self._root):
            _umount(mount)
        shutil.rmtree(self._root, ignore_errors=True)
        self._configured = False

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()


def sweep_stale_podman(base: Path | str = "/tmp") -> list[Path]:
    """Clean up ``<base>/appm-*`` services whose owning process died; the roots removed."""
    removed: list[Path] = []
    for root in sorted(_stale_roots([Path(base)], _PREFIX)):
        PodmanService(root).cleanup()
        removed.append(root)
    return removed
