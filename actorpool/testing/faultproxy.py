"""A fault-injecting proxy in front of a real Docker socket.

For tests, benchmarks and chaos drills: it forwards bytes between a unix
socket of its own and the daemon's, and on demand resets connections, adds
latency, answers ``503`` or an empty ``200`` without asking the daemon, or
swallows requests.
The daemon behind it is always real; only the transport misbehaves. With
``tcp=True`` it listens on a loopback TCP port instead, which is how tests reach a
private daemon over ``tcp://`` (the daemon itself only listens on its unix socket).

Example::

    with FaultProxy(sandbox.socket_path) as proxy:
        config = make_config(pool={"socket_path": proxy.url})
        proxy.mode = "status503"   # every new request gets a 503
"""

from __future__ import annotations

import contextlib
import os
import random
import selectors
import socket
import struct
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Literal

__all__ = ["FaultProxy", "Mode"]

Mode = Literal["pass", "reset", "status503", "empty200", "blackhole"]

_BODY_503 = b'{"message":"injected by the faultproxy"}'
_RESPONSE_503 = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(_BODY_503), _BODY_503)
)

# A success without a body: what Podman answers to the stats of a stopped container.
_RESPONSE_EMPTY_200 = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b"Content-Length: 0\r\nConnection: close\r\n\r\n"
)


class FaultProxy:
    """Forward a unix socket (or a loopback TCP port) to ``upstream``, injecting faults.

    Attributes:
        mode: What happens to each new client connection: ``pass`` (forward),
            ``reset`` (closed at once with RST), ``status503`` (an HTTP 503
            answer), ``empty200`` (an HTTP 200 with an empty body), ``blackhole``
            (accepted, never answered).
        latency: Seconds added before each chunk forwarded to the daemon.
        reset_probability: In ``pass`` mode, the chance a new connection is reset.
        connections: Client connections accepted so far.
    """

    def __init__(
        self, upstream: str | os.PathLike[str], path: str | None = None, *, tcp: bool = False
    ) -> None:
        self.upstream = str(upstream)
        self._dir = None if path or tcp else tempfile.mkdtemp(prefix="apfp-")
        self.path = "" if tcp else path or os.path.join(self._dir or "", "proxy.sock")
        self.mode: Mode = "pass"
        self.latency = 0.0
        self.reset_probability = 0.0
        self.connections = 0
        self._rng = random.Random()
        self._lock = threading.Lock()
        self._live: set[socket.socket] = set()
        self._held: set[socket.socket] = set()
        self._closing = False
        self._listener = socket.socket(socket.AF_INET if tcp else socket.AF_UNIX)
        self._listener.bind(("127.0.0.1", 0) if tcp else self.path)
        self._listener.listen(128)
        #: The loopback port when ``tcp`` is set, else ``None``.
        self.port: int | None = self._listener.getsockname()[1] if tcp else None
        self._thread = threading.Thread(target=self._accept_loop, name="faultproxy", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """``unix://`` (or ``tcp://127.0.0.1:port``) URL of the proxy, for ``socket_path``."""
        return f"tcp://127.0.0.1:{self.port}" if self.port is not None else f"unix://{self.path}"

    def reset_all(self) -> None:
        """Reset every open connection now (a daemon-side cut, as a client sees it)."""
        with self._lock:
            live, held = list(self._live), list(self._held)
            self._held.clear()
        for sock in live:
            # Shut down only: the forwarding thread sees the end, closes and exits.
            _reset(sock, close=False)
        for sock in held:
            _reset(sock)

    def close(self, timeout: float = 2.0) -> None:
        """Stop accepting, cut every connection and remove the socket file."""
        self._closing = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self.reset_all()
        self._thread.join(timeout)
        if self.port is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        if self._dir:
            with contextlib.suppress(OSError):
                Path(self._dir).rmdir()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _accept_loop(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        mode = self.mode
        if (
            mode == "pass"
            and self.reset_probability
            and self._rng.random() < self.reset_probability
        ):
            mode = "reset"
        if mode == "reset":
            _reset(client)
            return
        if mode in ("status503", "empty200"):
            with contextlib.suppress(OSError):
                client.recv(65536)
                client.sendall(_RESPONSE_503 if mode == "status503" else _RESPONSE_EMPTY_200)
            client.close()
            return
        if mode == "blackhole":
            with self._lock:
                self._held.add(client)
            return  # held open, never answered; reset_all() or close() ends it
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(self.upstream)
        except OSError:
            _reset(client)
            upstream.close()
            return
        self._track(client, upstream)
        self._pump(client, upstream)

    def _track(self, *socks: socket.socket) -> None:
        with self._lock:
            self._live.update(socks)

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ, upstream)
        sel.register(upstream, selectors.EVENT_READ, client)
        try:
            while not self._closing:
                for key, _ in sel.select(timeout=0.5):
                    src: socket.socket = key.fileobj  # type: ignore[assignment]
                    dst: socket.socket = key.data
                    data = src.recv(65536)
                    if not data:
                        return
                    if src is client and self.latency:
                        time.sleep(self.latency)  # a proxy thread, not an actor
                    dst.sendall(data)
        except OSError:
            return
        finally:
            sel.close()
            with self._lock:
                self._live.discard(client)
                self._live.discard(upstream)
            _reset(client)
            upstream.close()


def _reset(sock: socket.socket, *, close: bool = True) -> None:
    # SO_LINGER 0 makes close() send RST: the peer sees "connection reset", not a clean end.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    if close:
        sock.close()
