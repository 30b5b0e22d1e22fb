"""Read-only Docker API calls sent straight down one socket of the client's own.

docker-py sends every call through ``requests``, whose per-call machinery
(preparing the request, hooks, cookie jars, picking an adapter, wrapping the
response) costs more than the HTTP exchange itself on a local socket; urllib3
and ``http.client`` under it still cost ~450 µs of CPU for a list of ten
containers that the daemon answers in ~1 ms. The pool's own fixed, read-only
requests (ping, version, info, container and image lists, inspect) therefore
go down one keep-alive unix socket per client, written and read here: a fixed
request, the answer's status line and headers split once, its body read by
length or by chunks (dockerd's usual framing), ~50 µs of CPU. A fan-out over
several endpoints runs these in one process at once, under one GIL, so this
CPU is what bounds it. The same socket path, API version prefix, headers and
timeout as docker-py, and the same errors: an HTTP error becomes the
``docker.errors.APIError`` docker-py would raise, a transport failure the
urllib3 error urllib3 would raise (``ProtocolError``, ``ReadTimeoutError``),
which :mod:`actorpool.transport.classify` knows. Every other call
(``Execute(fn)``, stats, logs, streams) uses docker-py unchanged. The stream
side's own inspects and lists (resume checks, discovery) run these same
requests, so a stream's client keeps one socket for them instead of one per
container URL.

Only unix-socket clients take this path (the default, and where the gap is
widest); a client on any other transport (tcp, TLS, ssh) falls back to
docker-py's own call, so behaviour never depends on which path ran.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import docker
import docker.errors
import requests
import requests.structures
import urllib3.exceptions
from docker.transport.unixconn import UnixHTTPAdapter

from actorpool.transport.classify import bad_response

__all__ = ["api_version", "close", "get"]

# The client attribute holding its _Wire: one socket per client for all these calls (docker-py
# keys its adapter's pools by full URL, so every distinct path would get a socket of its own).
_WIRE = "_actorpool_direct_wire"
_READ = 65536
_MAX_HEAD = 65536


def get(
    client: docker.APIClient,
    path: str,
    *args: str,
    params: Mapping[str, Any] | None = None,
    fallback: Callable[[], Any],
    as_json: bool = True,
    versioned: bool = True,
) -> Any:
    """``GET path`` on ``client``'s daemon and return the decoded body.

    Args:
        client: The connection actor's client (its ``timeout`` bounds the call).
        path: The API path with ``{}`` placeholders, as docker-py's ``_url`` takes it.
        *args: Values for the placeholders (quoted like docker-py does).
        params: Query parameters; ``None`` values are left out, as ``requests`` does.
        fallback: The equivalent docker-py call, used when the client's transport
            is not a unix socket.
        as_json: Decode the body as JSON (else return it as text).
        versioned: Prefix the path with the client's API version (``/v1.NN``); the
            version negotiation's own ``GET /version`` is unversioned.

    Raises:
        docker.errors.APIError: The daemon answered with an HTTP error.
        BadResponse: The daemon answered, but ``as_json`` and the body is not JSON.
        urllib3.exceptions.HTTPError: The exchange failed (refused, reset, timed out).
    """
    url = client._url(path, *args, versioned_api=versioned)
    adapter = client.get_adapter(url)
    if type(adapter) is not UnixHTTPAdapter:
        return fallback()
    target = urllib.parse.urlsplit(url).path
    if params:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        target = f"{target}?{query}" if query else target
    response = _urlopen(client, adapter, url, target)
    body = response.body
    if as_json:
        try:
            return json.loads(body)
        except ValueError as exc:
            raise bad_response(
                f"GET {target}", client.base_url, body, "not JSON", status=response.status
            ) from exc
    return body.decode("utf-8", errors="replace")


def api_version(client: docker.APIClient) -> str | None:
    """The daemon's newest API version: the ``Api-Version`` header of ``GET /_ping``.

    What the docker CLI negotiates from; a ping costs far less than ``GET /version``
    (which asks containerd and runc for their versions: ~8 ms against ~1 ms here).

    Raises:
        docker.errors.APIError: The daemon answered with an HTTP error.
        urllib3.exceptions.HTTPError: The exchange failed (refused, reset, timed out).
        requests.exceptions.RequestException: Likewise, on a transport other than unix.
    """
    url = client._url("/_ping", versioned_api=False)
    adapter = client.get_adapter(url)
    if type(adapter) is not UnixHTTPAdapter:
        response = client._get(url)
        client._raise_for_status(response)
        header: str | None = response.headers.get("Api-Version")
        return header
    version: str | None = _urlopen(client, adapter, url, "/_ping").headers.get("api-version")
    return version


class _Response:
    """What a direct GET read: status, reason, headers (lower-case names) and the whole body."""

    __slots__ = ("body", "headers", "reason", "status")

    def __init__(self, status: int, reason: str, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body


class _Wire:
    """The one keep-alive socket of a client's direct GETs (see the module docstring).

    A client belongs to one actor, so the lock is never contended in practice;
    if it is, the second caller takes a socket of its own for that one call
    rather than wait.
    """

    __slots__ = ("lock", "sock")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sock: socket.socket | None = None


def close(client: docker.APIClient) -> None:
    """Close ``client``'s direct socket, if it has one (wakes a GET blocked on it)."""
    wire: _Wire | None = client.__dict__.pop(_WIRE, None)
    if wire is not None and wire.sock is not None:
        _shut(wire.sock)
        wire.sock = None


def _urlopen(client: docker.APIClient, adapter: UnixHTTPAdapter, url: str, target: str) -> Any:
    """``GET target`` on the client's own socket; an HTTP error raised as docker-py would.

    Raises:
        urllib3.exceptions.ReadTimeoutError: No byte within ``client.timeout``.
        urllib3.exceptions.ProtocolError: The socket could not be reached, or broke.
    """
    headers = {k: v for k, v in client.headers.items() if k.lower() != "accept-encoding"}
    extra = client._general_configs.get("HttpHeaders")
    if extra:
        headers.update(extra)
    fields = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = f"GET {target} HTTP/1.1\r\nHost: localhost\r\n{fields}\r\n".encode("latin-1")
    wire: _Wire = client.__dict__.setdefault(_WIRE, _Wire())
    if wire.lock.acquire(blocking=False):
        try:
            response = _exchange(wire, adapter.socket_path, request, client.timeout, url)
        finally:
            wire.lock.release()
    else:
        response = _exchange(_Wire(), adapter.socket_path, request, client.timeout, url, once=True)
    if response.status >= 400:
        _raise_api_error(url, response.status, response.reason, response.headers, response.body)
    return response


def _exchange(
    wire: _Wire, path: str, request: bytes, timeout: float | None, url: str, *, once: bool = False
) -> _Response:
    # A kept socket the daemon closed while idle fails before the first byte of the answer:
    # that one is sent again on a fresh socket (a GET changes nothing), anything else raises.
    for attempt in (0, 1):
        fresh = wire.sock is None
        try:
            if wire.sock is None:
                wire.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                wire.sock.settimeout(timeout)
                wire.sock.connect(path)
            else:
                wire.sock.settimeout(timeout)
            try:
                wire.sock.sendall(request)
            except (BrokenPipeError, ConnectionResetError) as exc:
                raise _Dropped(exc) from exc
            response, keep = _read_response(wire.sock)
        except _Dropped as exc:
            _shut(wire.sock)
            wire.sock = None
            if fresh or attempt:
                raise urllib3.exceptions.ProtocolError("Connection aborted.", exc.cause) from None
            continue
        except TimeoutError as exc:
            _shut(wire.sock)
            wire.sock = None
            msg = f"Read timed out. (read timeout={timeout})"
            raise urllib3.exceptions.ReadTimeoutError(None, url, msg) from exc  # type: ignore[arg-type]
        except OSError as exc:
            _shut(wire.sock)
            wire.sock = None
            raise urllib3.exceptions.ProtocolError("Connection aborted.", exc) from exc
        except BaseException:
            _shut(wire.sock)
            wire.sock = None
            raise
        if once or not keep:
            _shut(wire.sock)
            wire.sock = None
        return response
    raise AssertionError("unreachable")  # pragma: no cover


class _Dropped(Exception):
    """The socket closed before any byte of the answer came (a kept socket gone stale)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _read_response(sock: socket.socket) -> tuple[_Response, bool]:
    """Read one HTTP/1.1 answer; return it and whether the socket may carry another."""
    data = bytearray()
    while (end := data.find(b"\r\n\r\n")) < 0:
        try:
            more = sock.recv(_READ)
        except (ConnectionResetError, BrokenPipeError) as exc:
            if data:
                raise
            raise _Dropped(exc) from exc
        if not more:
            closed = ConnectionResetError("the daemon closed the connection without an answer")
            if data:
                raise closed
            raise _Dropped(closed)
        data += more
        if len(data) > _MAX_HEAD:
            raise _protocol_error(f"an HTTP header over {_MAX_HEAD} bytes")
    lines = data[:end].decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise _protocol_error(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    status = int(code)
    keep = headers.get("connection", "").lower() != "close"
    del data[: end + 4]
    if status in (204, 304):
        body = b""
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        body = _read_chunked(sock, data)
    elif "content-length" in headers:
        body = _read_exactly(sock, data, int(headers["content-length"]))
    else:
        body, keep = _read_to_end(sock, data), False
    return _Response(status, reason, headers, body), keep


def _recv_more(sock: socket.socket, data: bytearray) -> None:
    more = sock.recv(_READ)
    if not more:
        raise _protocol_error("the daemon closed the connection in the middle of an answer")
    data += more


def _read_exactly(sock: socket.socket, data: bytearray, size: int) -> bytes:
    while len(data) < size:
        _recv_more(sock, data)
    return bytes(data[:size])


def _read_to_end(sock: socket.socket, data: bytearray) -> bytes:
    while more := sock.recv(_READ):
        data += more
    return bytes(data)


def _read_chunked(sock: socket.socket, data: bytearray) -> bytes:
    parts: list[bytes] = []
    pos = 0
    while True:
        while (newline := data.find(b"\r\n", pos)) < 0:
            _recv_more(sock, data)
        try:
            size = int(data[pos:newline].split(b";", 1)[0], 16)
        except ValueError:
            raise _protocol_error(f"a bad chunk size {bytes(data[pos:newline][:40])!r}") from None
        pos = newline + 2
        if size == 0:
            break
        while len(data) < pos + size + 2:
            _recv_more(sock, data)
        parts.append(bytes(data[pos : pos + size]))
        pos += size + 2
    while True:  # trailer fields (none from dockerd), then the empty line that ends them
        while (newline := data.find(b"\r\n", pos)) < 0:
            _recv_more(sock, data)
        if newline == pos:
            return b"".join(parts)
        pos = newline + 2


def _protocol_error(what: str) -> urllib3.exceptions.ProtocolError:
    return urllib3.exceptions.ProtocolError(f"Docker answered a malformed response: {what}")


def _shut(sock: socket.socket | None) -> None:
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def _raise_api_error(
    url: str, status: int, reason: str, headers: Mapping[str, str], body: bytes
) -> None:
    # Built the way requests builds it, then turned into docker-py's own error classes
    # (NotFound, ImageNotFound, APIError...) by docker-py itself.
    response = requests.Response()
    response.status_code = status
    response.reason = reason
    response.url = url
    response.headers = requests.structures.CaseInsensitiveDict(headers)
    response._content = body
    try:
        response.raise_for_status()
    except requests.exceptions.HTTPError as exc:
        raise docker.errors.create_api_error_from_http_exception(exc) from exc
