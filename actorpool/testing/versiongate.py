"""A proxy in front of a real dockerd socket that enforces an API version floor like Engine 29.

Docker Engine 29 serves only API >= 1.44; no Engine 29 can be installed on the test
machines, so tests put this gate in front of a sandbox dockerd (20.10, API 1.41) and it
answers as Engine 29's version middleware does (moby ``daemon/server/middleware/version.go``):

* ``/vX.Y/…`` below ``min_api_version``: HTTP 400, ``{"message": "client version X.Y is too
  old. Minimum supported API version is 1.44, please upgrade your client to a newer
  version"}``; above ``api_version``: 400 ``"client version X.Y is too new. Maximum
  supported API version is 1.52"``. Both carry the ``Api-Version`` header, and the
  connection stays open, as with Go's server.
* ``GET [/vX.Y]/version`` says ``ApiVersion`` = ``api_version`` and ``MinAPIVersion`` =
  ``min_api_version``; every answer's ``Api-Version`` header says ``api_version``.
* Accepted versioned paths newer than the backend's version are rewritten down to it, so
  the gate emulates *who is refused and how*, not the newer API's semantics.

    with VersionGate(sandbox.socket_path, tmp_path / "gate.sock") as gate:
        config = make_config(gate.url)     # a daemon with Engine 29's floor

One thread per client connection: a refused request is answered in place (keep-alive);
the first accepted one goes to a fresh backend connection with ``Connection: close``
(``Upgrade`` kept for attach/exec), then bytes are pumped both ways until one side
closes. So streams, chunked bodies and hijacked connections work, one forwarded
request per client connection (docker-py reconnects transparently). Every socket
operation is bounded; ``stop()`` ends every thread within about 0.2 s.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

__all__ = ["VersionGate"]

_VERSIONED = re.compile(rb"^/v(\d+)\.(\d+)(/[^ ]*)?$")
_HEAD_LIMIT = 64 * 1024
_IO_TIMEOUT = 30.0  # per send/recv: a stalled peer cannot pin a thread longer
_TICK = 0.2  # how often blocked loops look at the stop flag


def _key(version: str) -> tuple[int, int]:
    major, minor = version.split(".")
    return int(major), int(minor)


class VersionGate:
    """An Engine-29-style API version gate on a unix socket, in front of ``backend``.

    Args:
        backend: The real daemon's unix socket path.
        path: Where the gate listens (a unix socket path).
        api_version: The newest version the gate serves (Engine 29.0: 1.52).
        min_api_version: The oldest version it serves (Engine 29: 1.44).
    """

    def __init__(
        self,
        backend: Path | str,
        path: Path | str,
        *,
        api_version: str = "1.52",
        min_api_version: str = "1.44",
    ) -> None:
        self.backend = str(backend)
        self.path = str(path)
        self.api_version = api_version
        self.min_api_version = min_api_version
        self._backend_version = ""
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        #: The paths of the requests refused, in order, and how many were forwarded.
        self.refused: list[str] = []
        self.forwarded = 0

    @property
    def url(self) -> str:
        """``unix://`` URL of the gate, for ``-H`` or ``docker.pool.socket_path``."""
        return f"unix://{self.path}"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> VersionGate:
        """Read the backend's API version, then listen."""
        self._backend_version = self._ask_backend_version()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        listener.listen(64)
        listener.settimeout(_TICK)
        self._listener = listener
        self._spawn(self._accept_loop, "gate-accept")
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop listening, end every connection and thread, remove the socket file."""
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def __enter__(self) -> VersionGate:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ plumbing

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _connect_backend(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(_IO_TIMEOUT)
        sock.connect(self.backend)
        return sock

    def _ask_backend_version(self) -> str:
        with self._connect_backend() as sock:
            sock.sendall(b"GET /version HTTP/1.0\r\nHost: docker\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        return str(json.loads(data.split(b"\r\n\r\n", 1)[1])["ApiVersion"])

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(_IO_TIMEOUT)
            self._spawn(self._serve, "gate-conn", conn)

    def _read_head(self, sock: socket.socket, buf: bytes) -> tuple[bytes, bytes] | None:
        """Read up to the blank line: ``(head, rest)``, or ``None`` on EOF, stop or timeout."""
        deadline = time.monotonic() + _IO_TIMEOUT * 10  # keep-alive idle limit
        while b"\r\n\r\n" not in buf:
            if self._stop.is_set() or time.monotonic() > deadline or len(buf) > _HEAD_LIMIT:
                return None
            ready, _, _ = select.select([sock], [], [], _TICK)
            if not ready:
                continue
            try:
                chunk = sock.recv(65536)
            except OSError:
                return None
            if not chunk:
                return None
            buf += chunk
        head, rest = buf.split(b"\r\n\r\n", 1)
        return head, rest

    def _refusal(self, version: tuple[int, int]) -> str | None:
        asked = f"{version[0]}.{version[1]}"
        if version < _key(self.min_api_version):
            return (
                f"client version {asked} is too old. Minimum supported API version is "
                f"{self.min_api_version}, please upgrade your client to a newer version"
            )
        if version > _key(self.api_version):
            return (
                f"client version {asked} is too new. Maximum supported API version is "
                f"{self.api_version}"
            )
        return None

    def _serve(self, conn: socket.socket) -> None:
        try:
            buf = b""
            while not self._stop.is_set():
                got = self._read_head(conn, buf)
                if got is None:
                    return
                head, buf = got
                lines = head.split(b"\r\n")
                parts = lines[0].split(b" ", 2)
                if len(parts) != 3:
                    return
                method, target, proto = parts
                path, _, query = target.partition(b"?")
                match = _VERSIONED.match(path)
                refusal = None
                if match:
                    refusal = self._refusal((int(match[1]), int(match[2])))
                if refusal is not None:
                    self.refused.append(path.decode(errors="replace"))
                if refusal is None:
                    self._forward(conn, (method, path, query, proto), lines[1:], buf, match)
                    return
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip() or b"0")
                    if name.strip().lower() == b"transfer-encoding":
                        self._refuse(conn, refusal, close=True)
                        return  # a chunked body we do not drain: answer and close
                while len(buf) < length:
                    ready, _, _ = select.select([conn], [], [], _IO_TIMEOUT)
                    chunk = conn.recv(65536) if ready else b""
                    if not chunk:
                        return
                    buf += chunk
                buf = buf[length:]
                self._refuse(conn, refusal, close=False)
        except OSError:
            return
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def _headers(self) -> list[bytes]:
        return [
            f"Api-Version: {self.api_version}".encode(),
            b"Server: Docker/29.0.0 (linux)",
            b"Ostype: linux",
            b"Docker-Experimental: false",
        ]

    def _refuse(self, conn: socket.socket, message: str, *, close: bool) -> None:
        body = json.dumps({"message": message}).encode() + b"\n"
        head = [
            b"HTTP/1.1 400 Bad Request",
            b"Content-Type: application/json",
            *self._headers(),
            f"Content-Length: {len(body)}".encode(),
        ]
        if close:
            head.append(b"Connection: close")
        conn.sendall(b"\r\n".join(head) + b"\r\n\r\n" + body)

    def _forward(
        self,
        conn: socket.socket,
        request: tuple[bytes, bytes, bytes, bytes],
        header_lines: list[bytes],
        rest: bytes,
        match: re.Match[bytes] | None,
    ) -> None:
        method, path, query, proto = request
        self.forwarded += 1
        if match and (int(match[1]), int(match[2])) > _key(self._backend_version):
            path = f"/v{self._backend_version}".encode() + (match[3] or b"")
        target = path + (b"?" + query if query else b"")
        headers = [h for h in header_lines if not h.lower().startswith(b"connection:")]
        upgrade = any(h.lower().startswith(b"upgrade:") for h in header_lines)
        headers.append(b"Connection: Upgrade" if upgrade else b"Connection: close")
        unversioned = match[3] if match else path
        is_version = method == b"GET" and unversioned == b"/version"
        with self._connect_backend() as backend:
            backend.sendall(b" ".join([method, target, proto]) + b"\r\n")
            backend.sendall(b"\r\n".join(headers) + b"\r\n\r\n" + rest)
            got = self._read_head(backend, b"")
            if got is None:
                return
            rhead, rbody = got
            out = [rhead.split(b"\r\n")[0]]
            for line in rhead.split(b"\r\n")[1:]:
                name = line.split(b":", 1)[0].strip().lower()
                if name == b"api-version":
                    line = f"Api-Version: {self.api_version}".encode()
                elif is_version and name in (b"content-length", b"transfer-encoding"):
                    continue
                out.append(line)
            if is_version:
                body = self._version_body(backend, rbody, b"chunked" in rhead.lower())
                out.append(f"Content-Length: {len(body)}".encode())
                conn.sendall(b"\r\n".join(out) + b"\r\n\r\n" + body)
                return
            conn.sendall(b"\r\n".join(out) + b"\r\n\r\n" + rbody)
            self._pump(conn, backend)

    def _version_body(self, backend: socket.socket, body: bytes, chunked: bool) -> bytes:
        """The backend's ``/version`` body, read to its end, with the gate's versions put in."""
        deadline = time.monotonic() + _IO_TIMEOUT
        while time.monotonic() < deadline and not self._stop.is_set():
            ready, _, _ = select.select([backend], [], [], _TICK)
            if ready:
                chunk = backend.recv(65536)
                if not chunk:
                    break
                body += chunk
        if chunked:
            plain, rest = b"", body
            while rest:
                size_line, _, rest = rest.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    break
                plain, rest = plain + rest[:size], rest[size + 2 :]
            body = plain
        doc = json.loads(body)
        doc["ApiVersion"], doc["MinAPIVersion"] = self.api_version, self.min_api_version
        for component in doc.get("Components") or []:
            if component.get("Name") == "Engine":
                details = component.setdefault("Details", {})
                details["ApiVersion"] = self.api_version
                details["MinAPIVersion"] = self.min_api_version
        return json.dumps(doc).encode() + b"\n"

    def _pump(self, conn: socket.socket, backend: socket.socket) -> None:
        """Copy bytes both ways until the backend is done (half-closes passed on) or stop()."""
        peers = {conn: backend, backend: conn}
        while peers and not self._stop.is_set():
            ready, _, _ = select.select(list(peers), [], [], _TICK)
            for sock in ready:
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                other = peers[sock]
                if data:
                    other.sendall(data)
                    continue
                del peers[sock]
                with contextlib.suppress(OSError):
                    other.shutdown(socket.SHUT_WR)
                if sock is backend:
                    return
