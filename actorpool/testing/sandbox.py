"""A private, throw-away Docker daemon: the real thing, for tests and demos.

actorpool is tested against a real ``dockerd``, never a mock, and the
``actorpool monitor`` command starts one when no daemon is reachable. A
:class:`Sandbox` runs a ``dockerd`` (20.10) as root with everything private
to one directory: data root, exec root, pid file, log, unix socket, its
managed ``containerd`` (whose root and state dockerd places under the data
and exec roots) and a cgroup parent of its own, so several sandboxes run
side by side and nothing they leave behind is mistaken for another's.
Storage is ``vfs`` and there is no bridge and no iptables, so a sandbox
needs no kernel module and touches no host network state; containers run
with ``network_mode="none"`` from :data:`IMAGE`, a one-layer image built
from the static busybox binary and imported through the Engine API (no
registry is needed).

Cleaning up is the hard part, so it is explicit: :meth:`Sandbox.stop` stops
the daemon (keeping containers alive when ``live_restore`` is on, which is
what a restart test needs), and :meth:`Sandbox.cleanup` removes everything:
processes found by their command line, cgroup and parentage (dockerd,
containerd, shims and container processes), mounts under the root, the
cgroups and the directories. Every started sandbox is also cleaned up at
interpreter exit, and :func:`sweep_stale_sandboxes` removes what a killed
process left behind.

Example::

    with Sandbox() as sandbox:
        client = sandbox.client()
        image = sandbox.ensure_image()
        container = client.create_container(
            image, "echo hi", host_config=client.create_host_config(network_mode="none")
        )
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import hashlib
import io
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

from actorpool.errors import ActorPoolError

if TYPE_CHECKING:
    from docker import APIClient

__all__ = [
    "API_VERSION",
    "IMAGE",
    "Sandbox",
    "SandboxError",
    "busybox_rootfs",
    "find_busybox",
    "import_busybox_image",
    "missing_requirements",
    "ping_socket",
    "sweep_stale_sandboxes",
]

#: The image every sandbox container runs: static busybox, ``PATH=/bin``, ``CMD ["sh"]``.
IMAGE = "actorpool/busybox:latest"

#: The Engine API version of dockerd 20.10 (what :meth:`Sandbox.client` negotiates here).
API_VERSION = "1.41"

# Sandboxes made without an explicit root live in <tmp>/apsb-XXXXXXXX; the prefix
# is how sweep_stale_sandboxes recognises them.
_PREFIX = "apsb-"

# A unix socket path holds at most 107 bytes. The longest socket a sandbox puts
# under its root is <root>/exec/containerd/containerd.sock.ttrpc (root + 38).
_MAX_ROOT_LEN = 64

# Executables that belong to a sandbox when their command line names its root.
_DAEMON_EXECUTABLES = frozenset(
    {"dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v2", "docker-proxy"}
)
_SHIM_EXECUTABLES = frozenset({"containerd-shim", "containerd-shim-runc-v2"})

# containerd 1.6 puts every shim socket in /run/containerd/s/<sha256(address/ns/id)>.
_SHIM_SOCKET_DIR = Path("/run/containerd/s")

_BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
_REQUIRED_TOOLS = {
    "dockerd": "docker.io",
    "containerd": "docker.io (it depends on containerd)",
    "containerd-shim-runc-v2": "docker.io (it depends on containerd)",
    "runc": "docker.io (it depends on runc)",
}

_MNT_DETACH = 2
_PT_INTERP = 3


class SandboxError(ActorPoolError, RuntimeError):
    """A private daemon could not be started, stopped or cleaned up; the message says why."""


# --------------------------------------------------------------------------- requirements


def find_busybox() -> Path | None:
    """Return the path of a *static* busybox binary, or ``None`` when there is none.

    The image is a single binary with no libc beside it, so a dynamically
    linked busybox (Debian's ``busybox`` package) would not run in it.
    """
    for candidate in _BUSYBOX_CANDIDATES:
        path = Path(candidate)
        if path.is_file() and _is_static_elf(path):
            return path
    return None


def _is_static_elf(path: Path) -> bool:
    # A binary that needs no program interpreter (no PT_INTERP header) runs
    # without a dynamic loader; that is all the image can offer.
    try:
        with path.open("rb") as file:
            header = file.read(64)
            if len(header) < 64 or header[:4] != b"\x7fELF":
                return False
            order = "<" if header[5] == 1 else ">"
            if header[4] == 2:  # 64-bit
                (phoff,) = struct.unpack_from(order + "Q", header, 32)
                phentsize, phnum = struct.unpack_from(order + "HH", header, 54)
            else:
                (phoff,) = struct.unpack_from(order + "I", header, 28)
                phentsize, phnum = struct.unpack_from(order + "HH", header, 42)
            file.seek(phoff)
            table = file.read(phentsize * phnum)
    except OSError:
        return False
    for index in range(phnum):
        (p_type,) = struct.unpack_from(order + "I", table, index * phentsize)
        if p_type == _PT_INTERP:
            return False
    return True


def missing_requirements() -> list[str]:
    """Say what this machine lacks to run a sandbox, one actionable line per problem.

    An empty list means :meth:`Sandbox.start` can work. The test suite turns a
    non-empty list into a failed session (never a skip), and the ``monitor``
    command into an error message.
    """
    problems: list[str] = []
    if os.geteuid() != 0:
        problems.append("run as root: dockerd needs root to create containers")
    for tool, package in _REQUIRED_TOOLS.items():
        if shutil.which(tool) is None:
            problems.append(f"{tool} not found on PATH: apt-get install {package}")
    if find_busybox() is None:
        problems.append(
            "no static busybox at /bin/busybox: apt-get install busybox-static "
            "(the dynamically linked 'busybox' package cannot run alone in an image)"
        )
    return problems


# --------------------------------------------------------------------------- the image


@cache
def busybox_rootfs() -> bytes:
    """Return the image's root filesystem as an uncompressed tar (built once per process).

    It holds ``/bin/busybox`` and one symbolic link per applet, as listed by
    ``busybox --list``, plus the empty directories a shell expects.

    Raises:
        SandboxError: No static busybox is installed.
    """
    busybox = find_busybox()
    if busybox is None:
        msg = "no static busybox found: apt-get install busybox-static"
        raise SandboxError(msg)
    listing = subprocess.run(
        [str(busybox), "--list"], capture_output=True, text=True, check=True, timeout=10
    )
    now = int(time.time())
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, mode in (("bin", 0o755), ("etc", 0o755), ("root", 0o700), ("tmp", 0o1777)):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, now
            tar.addfile(info)
        tar.add(str(busybox), arcname="bin/busybox")
        for applet in sorted(set(listing.stdout.split()) - {"busybox"}):
            # Symbolic, not hard links: dockerd applies a hard link entry's mode
            # to the target, which would make busybox itself non-executable.
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname, info.mode, info.mtime = tarfile.SYMTYPE, "busybox", 0o777, now
            tar.addfile(info)
    return buffer.getvalue()


def import_busybox_image(client: APIClient) -> str:
    """Make sure :data:`IMAGE` exists on the daemon behind ``client``; return its name.

    Importing needs no registry: the rootfs tarball is posted to
    ``/images/create?fromSrc=-`` (about 0.2 s on a vfs daemon).
    """
    from docker.errors import ImageNotFound

    try:
        client.inspect_image(IMAGE)
    except ImageNotFound:
        repository, tag = IMAGE.rsplit(":", 1)
        client.import_image_from_data(
            busybox_rootfs(),
            repository=repository,
            tag=tag,
            changes=["ENV PATH=/bin", 'CMD ["sh"]'],
        )
        client.inspect_image(IMAGE)  # fails loudly if the import did not tag it
    return IMAGE


# --------------------------------------------------------------------------- processes


def _read_process(pid: int) -> tuple[int, str, list[str]] | None:
    """Return ``(ppid, state, argv)`` of a live process, or ``None`` if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    argv = [part.decode(errors="replace") for part in cmdline.split(b"\0") if part]
    return int(fields[1]), fields[0].decode(), argv


def _processes() -> dict[int, tuple[int, str, list[str]]]:
    table: dict[int, tuple[int, str, list[str]]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            info = _read_process(int(entry.name))
            if info is not None:
                table[int(entry.name)] = info
    return table


def _start_time(pid: int) -> str | None:
    # Field 22 of /proc/<pid>/stat: tells a pid apart from a later reuse of it.
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return stat[stat.rfind(b")") + 2 :].split()[19].decode()


def _alive(pid: int) -> bool:
    info = _read_process(pid)
    return info is not None and info[1] != "Z"


def _wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait until each pid has exited (zombies count as gone); return the survivors."""
    deadline = time.monotonic() + timeout
    left = [pid for pid in pids if _alive(pid)]
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = [pid for pid in left if _alive(pid)]
    return left


def _wait_threads(pid: int, *, stopped: bool, timeout: float) -> bool:
    """Wait until every thread of ``pid`` is (or is no longer) in the stopped state."""
    deadline = time.monotonic() + timeout
    while True:
        states = []
        with contextlib.suppress(OSError):
            for task in os.scandir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError):
                    stat = Path(task.path, "stat").read_bytes()
                    states.append(stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3])
        if not states or all((state in (b"T", b"t")) == stopped for state in states):
            return bool(states)
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def ping_socket(path: Path, timeout: float) -> bool:
    """Whether ``GET /_ping`` on the unix socket ``path`` answers 200 within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(str(path))
            conn.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            data = b""
            while b"\r\n" not in data:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                conn.settimeout(remaining)
                chunk = conn.recv(1024)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return False
    status = data.split(b"\r\n", 1)[0].split()
    return len(status) >= 2 and status[1] == b"200"


# --------------------------------------------------------------------------- mounts & cgroups


def _unescape_mount(field: str) -> str:
    # /proc/self/mountinfo writes space, tab, newline and backslash as \ooo.
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)


def _mounts() -> list[tuple[str, str]]:
    """Return ``(mount point, fs type)`` for every mount this process can see."""
    result = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        result.append((_unescape_mount(left.split()[4]), right.split()[0]))
    return result


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root)
    return [point for point, _ in _mounts() if point == prefix or point.startswith(prefix + "/")]


def _umount(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.umount2(path.encode(), _MNT_DETACH) != 0:
        error = ctypes.get_errno()
        if error not in (errno.EINVAL, errno.ENOENT):  # not (or no longer) a mount point
            raise OSError(error, os.strerror(error), path)


def _cgroup_roots() -> list[Path]:
    return sorted({Path(point) for point, kind in _mounts() if kind in ("cgroup", "cgroup2")})


# --------------------------------------------------------------------------- the sandbox


class Sandbox:
    """A private ``dockerd`` with all its state under one short directory.

    Args:
        root: Directory for the daemon's state. ``None`` makes a fresh
            ``<tmp>/apsb-XXXXXXXX`` that :meth:`cleanup` removes. A given root
            is created if missing; :meth:`cleanup` removes what the sandbox put
            in it (and the root itself if the sandbox created it). It must be
            short (at most 64 bytes once resolved) because unix sockets live
            under it.
        live_restore: Start dockerd with ``--live-restore``, so containers keep
            running while the daemon is stopped, killed or restarted.

    Use it as a context manager (starts on enter, :meth:`cleanup` on exit) or
    call :meth:`start` and :meth:`cleanup` yourself. Methods are thread-safe.
    """

    def __init__(
        self,
        root: Path | str | None = None,
        *,
        live_restore: bool = False,
        extra_args: Sequence[str] = (),
    ) -> None:
        if root is None:
            base = Path(tempfile.gettempdir())
            if len(str(base)) > _MAX_ROOT_LEN - 16:
                base = Path("/tmp")
            self._root = Path(tempfile.mkdtemp(prefix=_PREFIX, dir=base)).resolve()
            self._owns_root = True
        else:
            self._root = Path(root).resolve()
            self._owns_root = not self._root.exists()
        if len(str(self._root).encode()) > _MAX_ROOT_LEN:
            msg = (
                f"sandbox root {str(self._root)!r} is longer than {_MAX_ROOT_LEN} bytes; unix "
                "sockets under it would exceed the 107-byte limit: pick a shorter root "
                "(or pass root=None for a directory under /tmp)"
            )
            raise SandboxError(msg)
        self._root.mkdir(parents=True, exist_ok=True)
        if self._owns_root:
            # Lets sweep_stale_sandboxes tell a live sandbox from an abandoned one.
            own = os.getpid()
            (self._root / "owner").write_text(f"{own} {_start_time(own)}\n")
        self.live_restore = live_restore
        #: More dockerd flags, e.g. a ``--tlsverify`` TCP listener (:mod:`actorpool.testing.pki`).
        self.extra_args = tuple(extra_args)
        self._lock = threading.RLock()
        self._process: subprocess.Popen[bytes] | None = None
        self._paused = False
        self._cleaned = False
        #: Seconds the last :meth:`start` took until ``/_ping`` answered.
        self.start_seconds: float | None = None

    # ----------------------------------------------------------------- paths

    @property
    def root(self) -> Path:
        """The directory that holds all of the daemon's state."""
        return self._root

    @property
    def data_root(self) -> Path:
        """dockerd's ``--data-root`` (images, containers, vfs layers, containerd's root)."""
        return self._root / "data"

    @property
    def exec_root(self) -> Path:
        """dockerd's ``--exec-root`` (runtime state and containerd's socket and state)."""
        return self._root / "exec"

    @property
    def socket_path(self) -> Path:
        """The unix socket the Engine API listens on."""
        return self._root / "docker.sock"

    @property
    def url(self) -> str:
        """The daemon's address as docker-py and ``docker.pool.socket_path`` take it."""
        return f"unix://{self.socket_path}"

    @property
    def log_path(self) -> Path:
        """dockerd's (and its containerd's) combined output, appended across restarts."""
        return self._root / "dockerd.log"

    @property
    def pidfile(self) -> Path:
        """dockerd's ``--pidfile``."""
        return self._root / "dockerd.pid"

    @property
    def cgroup_parent(self) -> str:
        """The cgroup under which this daemon's containers run (unique per root)."""
        return "actorpool-" + hashlib.sha256(str(self._root).encode()).hexdigest()[:12]

    @property
    def pid(self) -> int | None:
        """dockerd's pid while it runs (also while paused), else ``None``."""
        process = self._process
        if process is None or process.poll() is not None:
            return None
        return process.pid

    @property
    def running(self) -> bool:
        """Whether dockerd's process is alive (it may be paused)."""
        return self.pid is not None

    @property
    def paused(self) -> bool:
        """Whether dockerd is stopped by :meth:`pause`."""
        return self._paused and self.running

    def __repr__(self) -> str:
        state = "paused" if self.paused else "running" if self.running else "stopped"
        return f"<Sandbox {self.url} {state} live_restore={self.live_restore}>"

    # ----------------------------------------------------------------- lifecycle

    def command(self) -> list[str]:
        """The dockerd command line this sandbox runs."""
        command = [
            "dockerd",
            "--config-file", str(self._root / "daemon.json"),
            "--data-root", str(self.data_root),
            "--exec-root", str(self.exec_root),
            "--pidfile", str(self.pidfile),
            "--host", self.url,
            "--storage-driver", "vfs",
            "--iptables=false",
            "--ip-masq=false",
            "--ip-forward=false",
            "--userland-proxy=false",
            "--bridge=none",
            "--cgroup-parent", "/" + self.cgroup_parent,
        ]  # fmt: skip
        if self.live_restore:
            command.append("--live-restore")
        return command + list(self.extra_args)

    def start(self, timeout: float = 30.0) -> Self:
        """Start dockerd and wait until ``/_ping`` answers; a no-op when it runs.

        Raises:
            SandboxError: A requirement is missing, dockerd exited, or it did
                not answer within ``timeout``; the message holds the end of its log.
        """
        with self._lock:
            if self._cleaned:
                msg = f"sandbox {self._root} was cleaned up; make a new Sandbox"
                raise SandboxError(msg)
            if self.running:
                return self
            missing = missing_requirements()
            if missing:
                msg = "cannot start a private dockerd:\n  - " + "\n  - ".join(missing)
                raise SandboxError(msg)
            if self.ping(timeout=1.0):
                # Our ping loop would mistake that daemon for ours.
                msg = (
                    f"a daemon already answers on {self.socket_path}: is another Sandbox "
                    f"using root {self._root}? Use a root of its own"
                )
                raise SandboxError(msg)
            self._prepare()
            began = time.monotonic()
            with self.log_path.open("ab") as log:
                log.write(f"--- sandbox: starting {' '.join(self.command())}\n".encode())
                log.flush()
                self._process = subprocess.Popen(
                    self.command(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    # Own session: a Ctrl-C meant for the caller does not reach the
                    # daemon; the caller stops it in order instead.
                    start_new_session=True,
                )
            self._paused = False
            _register(self)
            deadline = began + timeout
            while not self.ping(timeout=min(1.0, max(0.05, deadline - time.monotonic()))):
                code = self._process.poll()
                if code is not None:
                    self._process = None
                    msg = f"dockerd exited with code {code} while starting"
                    raise SandboxError(self._failure(msg))
                if time.monotonic() >= deadline:
                    self._hard_stop()
                    msg = f"dockerd did not answer /_ping on {self.socket_path} within {timeout} s"
                    raise SandboxError(self._failure(msg))
                time.sleep(0.02)
            self.start_seconds = time.monotonic() - began
            return self

    def _prepare(self) -> None:
        (self._root / "daemon.json").write_text("{}\n")  # never read /etc/docker/daemon.json
        # A pid file left by a killed daemon makes dockerd refuse to start while
        # that pid exists (even as a zombie); a stale containerd pid file would
        # make it adopt whatever process now has that pid.
        with contextlib.suppress(OSError, ValueError):
            pid = int(self.pidfile.read_text().strip())
            if pid not in self._daemon_pids(_processes()):
                self.pidfile.unlink()
        containerd_pidfile = self.exec_root / "containerd" / "containerd.pid"
        with contextlib.suppress(OSError, ValueError):
            pid = int(containerd_pidfile.read_text().strip())
            if pid not in self._daemon_pids(_processes()):
                containerd_pidfile.unlink()

    def _failure(self, message: str) -> str:
        return f"{message}; last lines of {self.log_path}:\n{self.log_tail()}"

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of dockerd's log (for error messages)."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - 64 * 1024))
                text = log.read().decode(errors="replace")
        except OSError as error:
            return f"(log unreadable: {error})"
        return "\n".join(text.splitlines()[-lines:])

    def ping(self, timeout: float = 1.0) -> bool:
        """Whether the daemon answers ``GET /_ping`` with 200 within ``timeout`` seconds.

        A raw request on the socket: no docker-py, no retries, so a paused or
        dead daemon shows up as ``False`` after at most ``timeout``.
        """
        return ping_socket(self.socket_path, timeout)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop dockerd: SIGTERM, then SIGKILL after ``timeout`` seconds.

        Without ``live_restore`` running containers are killed first (dockerd
        would stop them anyway, but with a 10 s grace each) and then nothing of
        the daemon may remain: leftover containerd, shims and container
        processes are killed. With ``live_restore`` the shims and containers
        keep running so a later :meth:`start` finds them; :meth:`cleanup`
        removes them.
        """
        with self._lock:
            if self.running:
                self.resume()
                if not self.live_restore:
                    self._kill_containers()
                process = self._process
                assert process is not None
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)
            elif self._process is not None:
                self._process.wait(10)  # reap a daemon that died (or was killed) on its own
            self._process = None
            self._paused = False
            self._kill_leftovers(keep_containers=self.live_restore)

    def kill(self) -> None:
        """SIGKILL dockerd, as a crash would (containerd dies with it; shims stay)."""
        with self._lock:
            process = self._process
            if process is None:
                return
            if process.poll() is None:
                process.kill()
            process.wait(10)
            self._paused = False

    def pause(self) -> None:
        """SIGSTOP dockerd: its socket still accepts connections but nothing answers."""
        with self._lock:
            pid = self.pid
            if pid is None:
                msg = f"cannot pause sandbox {self._root}: dockerd is not running"
                raise SandboxError(msg)
            os.kill(pid, signal.SIGSTOP)
            self._paused = True
            # SIGSTOP lands asynchronously: a busy thread can still answer a
            # request after kill() returns. Return only once every thread is stopped.
            if not _wait_threads(pid, stopped=True, timeout=5.0):
                msg = f"dockerd {pid} did not stop within 5 s of SIGSTOP"
                raise SandboxError(msg)

    def resume(self) -> None:
        """SIGCONT dockerd after :meth:`pause` (a no-op otherwise)."""
        with self._lock:
            pid = self.pid
            if pid is not None and self._paused:
                os.kill(pid, signal.SIGCONT)
                _wait_threads(pid, stopped=False, timeout=5.0)
            self._paused = False

    def restart(self, timeout: float = 30.0) -> Self:
        """:meth:`stop` then :meth:`start`; with ``live_restore`` containers keep running."""
        with self._lock:
            self.stop()
            return self.start(timeout)

    def client(self, timeout: float = 10.0) -> APIClient:
        """A new docker-py ``APIClient`` on this daemon, its API version negotiated.

        Not pinned: a pinned version breaks on a daemon with another floor (Engine 29
        serves only API >= 1.44); dockerd 20.10 here negotiates :data:`API_VERSION`.
        """
        from docker import APIClient

        return APIClient(base_url=self.url, version="auto", timeout=timeout)

    def ensure_image(self) -> str:
        """Import :data:`IMAGE` into this daemon unless it is there; return its name."""
        client = self.client(timeout=60)
        try:
            return import_busybox_image(client)
        finally:
            client.close()

    def _kill_containers(self) -> None:
        # Best effort: a daemon that does not answer is killed with its containers.
        if not self.ping(timeout=1.0):
            return
        client = self.client(timeout=5)
        try:
            for container in client.containers(quiet=True):
                with contextlib.suppress(Exception):
                    client.kill(container["Id"])
        except Exception:  # cleanup goes on regardless of what the daemon says
            pass
        finally:
            client.close()

    def _hard_stop(self) -> None:
        if self._process is not None:
            with contextlib.suppress(OSError):
                self._process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(10)
        self._process = None
        self._paused = False

    # ----------------------------------------------------------------- leftovers

    def _owns(self, argv: list[str]) -> bool:
        if not argv or os.path.basename(argv[0]) not in _DAEMON_EXECUTABLES:
            return False
        needle = str(self._root) + "/"
        return any(needle in arg for arg in argv[1:])

    def _daemon_pids(self, table: dict[int, tuple[int, str, list[str]]]) -> set[int]:
        return {pid for pid, (_, state, argv) in table.items() if state != "Z" and self._owns(argv)}

    def leftover_processes(self) -> list[int]:
        """Pids of this sandbox's processes other than a dockerd it is running.

        Covers dockerd, containerd, shims (by command line) and container
        processes (descendants of the shims, or members of the sandbox's
        cgroup). After :meth:`cleanup` this is always empty.
        """
        table = _processes()
        own = self.pid
        return sorted(pid for pid in self._all_pids(table, containers=True) if pid != own)

    def _all_pids(
        self, table: dict[int, tuple[int, str, list[str]]], *, containers: bool
    ) -> set[int]:
        pids = self._daemon_pids(table)
        shims = {pid for pid in pids if os.path.basename(table[pid][2][0]) in _SHIM_EXECUTABLES}
        if containers:
            pids |= self._cgroup_pids()
            children: dict[int, list[int]] = {}
            for pid, (ppid, _, _) in table.items():
                children.setdefault(ppid, []).append(pid)
            stack = list(shims)
            while stack:
                for child in children.get(stack.pop(), ()):
                    if child not in pids:
                        pids.add(child)
                        stack.append(child)
        return {pid for pid in pids if pid in table and table[pid][1] != "Z"}

    def _cgroup_dirs(self) -> list[Path]:
        return [
            root / self.cgroup_parent
            for root in _cgroup_roots()
            if (root / self.cgroup_parent).is_dir()
        ]

    def _cgroup_pids(self) -> set[int]:
        pids: set[int] = set()
        for top in self._cgroup_dirs():
            for directory, _, _ in os.walk(top):
                with contextlib.suppress(OSError, ValueError):
                    text = Path(directory, "cgroup.procs").read_text()
                    pids.update(int(line) for line in text.split())
        return pids

    def _kill_leftovers(self, *, keep_containers: bool) -> None:
        """SIGKILL every process of this sandbox except the running dockerd.

        With ``keep_containers`` only a stray containerd is killed (shims and
        containers are what live restore keeps). Raises SandboxError if a
        process survives SIGKILL for 10 s.
        """
        own = self.pid
        for _ in range(5):  # processes may fork while we look; look again
            table = _processes()
            pids = self._all_pids(table, containers=not keep_containers) - {own}
            if keep_containers:
                pids = {pid for pid in pids if os.path.basename(table[pid][2][0]) == "containerd"}
            if not pids:
                return
            shim_sockets = [self._shim_socket(table[pid][2]) for pid in pids]
            for pid in pids:
                _signal(pid, signal.SIGKILL)
            survivors = _wait_gone(pids, timeout=10)
            if survivors:
                msg = f"sandbox {self._root}: processes {survivors} survived SIGKILL for 10 s"
                raise SandboxError(msg)
            for path in shim_sockets:
                if path is not None:
                    with contextlib.suppress(OSError):
                        path.unlink()

    @staticmethod
    def _shim_socket(argv: list[str]) -> Path | None:
        # A shim killed by SIGKILL leaves its socket in /run/containerd/s.
        if not argv or os.path.basename(argv[0]) not in _SHIM_EXECUTABLES:
            return None
        options = dict(zip(argv[1::2], argv[2::2], strict=False))
        address, namespace, ident = (
            options.get("-address"),
            options.get("-namespace"),
            options.get("-id"),
        )
        if not (address and namespace and ident):
            return None
        digest = hashlib.sha256(os.path.join(address, namespace, ident).encode()).hexdigest()
        return _SHIM_SOCKET_DIR / digest

    def _unmount_all(self) -> None:
        for _ in range(10):  # mounts can be stacked on one point
            points = _mounts_under(self._root)
            if not points:
                return
            for point in sorted(points, key=lambda p: p.count("/"), reverse=True):
                _umount(point)
        points = _mounts_under(self._root)
        if points:
            msg = f"sandbox {self._root}: cannot unmount {points}; not removing the directory"
            raise SandboxError(msg)

    def _remove_cgroups(self) -> None:
        for top in self._cgroup_dirs():
            for directory, _, _ in os.walk(top, topdown=False):
                for _ in range(50):  # a dying task can keep a cgroup busy for a moment
                    try:
                        os.rmdir(directory)
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        time.sleep(0.02)

    def _remove_files(self) -> None:
        if self._owns_root:
            shutil.rmtree(self._root, ignore_errors=False)
            return
        for name in ("data", "exec"):
            shutil.rmtree(self._root / name, ignore_errors=True)
        for name in ("docker.sock", "dockerd.pid", "dockerd.log", "daemon.json", "owner"):
            with contextlib.suppress(FileNotFoundError):
                (self._root / name).unlink()

    def cleanup(self) -> None:
        """Stop everything this sandbox started and delete its state; idempotent.

        The daemon gets SIGKILL rather than a graceful stop (its state is
        about to be deleted, and a graceful stop costs a second of dockerd
        waiting to reconnect to its containerd), then every process left
        (containerd, shims, container processes) is killed, mounts under the
        root are detached, and the cgroups and the directories are removed.
        Directories are only removed once no mount remains under them.
        """
        with self._lock:
            if self._cleaned:
                return
            try:
                self.kill()
                self._process = None
            finally:
                self._kill_leftovers(keep_containers=False)
                self._unmount_all()
                self._remove_cgroups()
                self._remove_files()
                self._cleaned = True
                _unregister(self)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()


# --------------------------------------------------------------------------- registry


_LIVE: dict[int, Sandbox] = {}
_LIVE_LOCK = threading.Lock()


def _register(sandbox: Sandbox) -> None:
    with _LIVE_LOCK:
        _LIVE[id(sandbox)] = sandbox


def _unregister(sandbox: Sandbox) -> None:
    with _LIVE_LOCK:
        _LIVE.pop(id(sandbox), None)


@atexit.register
def _cleanup_all() -> None:
    # The last line of defence (Ctrl-C, a failed fixture, a forgotten cleanup):
    # no daemon outlives the process that started it.
    with _LIVE_LOCK:
        sandboxes = list(_LIVE.values())
    for sandbox in sandboxes:
        try:
            sandbox.cleanup()
        except Exception as error:  # report and go on with the others
            print(
                f"actorpool.testing.sandbox: cleaning up {sandbox.root} failed: {error}",
                file=sys.stderr,
            )


def sweep_stale_sandboxes(base: Path | str | None = None) -> list[Path]:
    """Remove sandboxes whose owning process died without cleaning up.

    Looks at ``<base>/apsb-*`` directories (``base`` defaults to the temp
    directory) holding an ``owner`` file whose process no longer exists,
    kills what is left of their daemons and containers, and removes them.
    Sandboxes of live processes are never touched.

    Returns:
        The roots removed.
    """
    bases = {Path(base)} if base is not None else {Path(tempfile.gettempdir()), Path("/tmp")}
    removed: list[Path] = []
    for directory in sorted(_stale_roots(bases)):
        sandbox = Sandbox(directory)
        sandbox._owns_root = True
        try:
            sandbox.cleanup()
        except (OSError, SandboxError) as error:
            print(f"actorpool.testing.sandbox: cannot sweep {directory}: {error}", file=sys.stderr)
            continue
        removed.append(directory)
    return removed


def _stale_roots(bases: Iterable[Path], prefix: str = _PREFIX) -> Iterator[Path]:
    """Directories ``<base>/<prefix>*`` whose ``owner`` file names a process that is gone."""
    for base in bases:
        with contextlib.suppress(OSError):
            for entry in base.iterdir():
                if not entry.name.startswith(prefix) or not entry.is_dir():
                    continue
                try:
                    pid_text, started = (entry / "owner").read_text().split()
                except (OSError, ValueError):
                    continue
                pid = int(pid_text)
                if not (_alive(pid) and _start_time(pid) == started):
                    yield entry.resolve()
