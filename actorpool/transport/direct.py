"""Read-only Docker API calls sent straight to a client's own connection pool.

docker-py sends every call through ``requests``, whose per-call machinery
(preparing the request, hooks, cookie jars, picking an adapter, wrapping the
response) costs more than the HTTP exchange itself on a local socket: here a
ping takes ~700 µs through ``APIClient.ping()`` and ~400 µs as one urllib3
``GET``. The pool's own fixed, read-only requests (ping, version, info,
container and image lists, inspect) therefore go straight to the urllib3
pool of the client's transport adapter: the same socket path, API version
prefix, headers and timeout, and the same errors (an HTTP error becomes the
``docker.errors.APIError`` docker-py would raise, a transport error is
urllib3's own, which :mod:`actorpool.transport.classify` knows). Every other call
(``Execute(fn)``, stats, logs, streams) uses docker-py unchanged. The stream
side's own inspects and lists (resume checks, discovery) run these same
requests, so a stream's client keeps one socket for them instead of one per
container URL.

Only unix-socket clients take this path (the default, and where the gap is
widest); a client on any other transport (tcp, TLS, ssh) falls back to
docker-py's own call, so behaviour never depends on which path ran.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import docker
import docker.errors
import requests
import requests.structures
from docker.transport.unixconn import UnixHTTPAdapter

from actorpool.transport.classify import bad_response

__all__ = ["api_version", "get"]

# One pool per client for these calls, under a fixed key: docker-py keys its adapter's pools by
# full URL, so every distinct path would otherwise get (and keep) a socket of its own.
_POOL_KEY = "http+docker://actorpool-direct"


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
    body: bytes = response.data
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
    version: str | None = _urlopen(client, adapter, url, "/_ping").headers.get("Api-Version")
    return version


def _urlopen(client: docker.APIClient, adapter: UnixHTTPAdapter, url: str, target: str) -> Any:
    """``GET target`` on the client's own socket; an HTTP error raised as docker-py would."""
    headers = dict(client.headers)
    extra = client._general_configs.get("HttpHeaders")
    if extra:
        headers.update(extra)
    response = adapter.get_connection(_POOL_KEY).urlopen(
        "GET",
        target,
        headers=headers,
        retries=False,
        redirect=False,
        timeout=client.timeout,
        preload_content=True,
    )
    if response.status >= 400:
        body: bytes = response.data
        _raise_api_error(url, response.status, response.reason or "", response.headers, body)
    return response


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
