"""Turning docker-py and requests exceptions into actorpool's typed errors.

docker-py raises ``docker.errors.APIError`` for HTTP errors but plain
``requests`` exceptions when the socket is gone, a body is cut or a read
times out, and it never retries. This module is the one place that knows
those shapes; everything else sees :mod:`actorpool.errors` and a verdict:
may the call be retried, and does the failure count against the connection.
"""

from __future__ import annotations

import json
import re
import socket
import ssl

import attrs
import docker.errors
import requests.exceptions
import urllib3.exceptions

from actorpool.errors import (
    ActorPoolError,
    ApiVersionError,
    BadRequest,
    BadResponse,
    Conflict,
    DockerError,
    DockerUnavailable,
    NotFound,
    RequestTimeout,
    TLSError,
)

__all__ = ["RETRYABLE_STATUS", "Verdict", "bad_response", "classify", "passing"]

RETRYABLE_STATUS = frozenset({502, 503, 504})

# Podman answers these conflicts (dockerd: 409) with HTTP 500 and this wording.
_PODMAN_CONFLICTS = ("container state improper", "is already in use", "can only kill running")
# Podman reading a log file as it is written can land inside a line: HTTP 500 with this
# wording, and the same read a moment later succeeds.
_PODMAN_LOG_RACE = "is not a valid container log line"

_TIMEOUTS = (
    requests.exceptions.Timeout,
    urllib3.exceptions.TimeoutError,
    socket.timeout,
    TimeoutError,
)
_CONNECTION = (
    requests.exceptions.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.HTTPError,
    ConnectionError,
    OSError,
)


@attrs.frozen
class Verdict:
    """What a failure means for the pool.

    Attributes:
        error: The typed error to give the caller (chains the original).
        retryable: Another attempt, ideally on another connection, may succeed.
        counts: The failure says the connection or daemon is unwell (breaker and health).
    """

    error: BaseException
    retryable: bool
    counts: bool


def _timeout_itself(exc: object) -> bool:
    # urllib3 2 makes "connection refused" (NewConnectionError) a ConnectTimeoutError subclass.
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return False
    return isinstance(exc, _TIMEOUTS)


def _is_timeout(exc: BaseException) -> bool:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if _timeout_itself(cur):
            return True
        # requests wraps urllib3's ReadTimeoutError in ConnectionError args, not __cause__.
        if any(_timeout_itself(a) for a in getattr(cur, "args", ())):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def passing(error: BaseException) -> bool:
    """A daemon failure the same request will not meet a moment later (Podman's log race)."""
    return (
        isinstance(error, DockerError)
        and error.status == 500
        and _PODMAN_LOG_RACE in (error.explanation or "")
    )


def classify(exc: BaseException, *, target: str, what: str) -> Verdict:
    """Classify ``exc`` raised while running ``what`` against the daemon at ``target``.

    Args:
        exc: The exception docker-py, requests or user code raised.
        target: The daemon's URL, for the message.
        what: The operation, for the message (e.g. ``"inspect_container"``).
    """
    if isinstance(exc, ActorPoolError):
        return Verdict(exc, retryable=False, counts=False)
    tls = _tls_failure(exc, target)
    if tls is not None:
        # Before the connection errors: requests' SSLError is a ConnectionError, but a
        # certificate that fails now fails on every retry.
        return Verdict(TLSError(f"{what}: {tls}"), retryable=False, counts=True)
    if isinstance(exc, json.JSONDecodeError):
        # docker-py decodes a 2xx body itself (requests' JSONDecodeError is also an OSError,
        # so this must come before the transport errors): a bad answer, a working connection.
        return Verdict(bad_response(what, target, exc.doc, exc.msg), retryable=False, counts=False)
    ssh = _ssh_failure(exc, target)
    if ssh is not None:
        return Verdict(DockerUnavailable(f"{what}: {ssh}"), retryable=False, counts=True)
    if isinstance(exc, docker.errors.APIError) and exc.response is not None:
        status = exc.status_code
        explanation = str(exc.explanation or exc)
        version = _VERSION_REFUSED.search(explanation)
        if status == 400 and version:
            error = _version_error(what, target, explanation, version)
            return Verdict(error, retryable=False, counts=False)
        if status == 404:
            err: DockerError = NotFound(
                f"{what}: not found: {explanation} (check the id or name; "
                "list containers with ListContainers(all=True))",
                status=status,
                explanation=explanation,
            )
            return Verdict(err, retryable=False, counts=False)
        if status == 409 or (status == 500 and any(m in explanation for m in _PODMAN_CONFLICTS)):
            err = Conflict(
                f"{what}: refused by the daemon in the object's current state: {explanation}",
                status=status,
                explanation=explanation,
            )
            return Verdict(err, retryable=False, counts=False)
        if status is not None and 400 <= status < 500:
            err = BadRequest(
                f"{what}: the daemon rejected the request (HTTP {status}): {explanation}",
                status=status,
                explanation=explanation,
            )
            return Verdict(err, retryable=False, counts=False)
        err = DockerError(
            f"{what}: the daemon failed (HTTP {status}): {explanation}",
            status=status,
            explanation=explanation,
        )
        # An error the daemon explains is about the request; only a gateway's or an
        # unavailable daemon's status says something about reaching it.
        busy = status in RETRYABLE_STATUS
        return Verdict(err, retryable=busy or passing(err), counts=busy)
    if _is_timeout(exc):
        return Verdict(
            RequestTimeout(
                f"{what}: no answer from Docker at {target} in time ({exc.__class__.__name__}); "
                "the daemon may be overloaded or paused — raise the request's timeout or check it"
            ),
            retryable=True,
            counts=True,
        )
    if isinstance(exc, (_CONNECTION, docker.errors.DockerException)):
        if not _from_the_wire(exc):
            # Raised by the caller's own code (an Execute function), not by a socket: treated
            # as a lost connection, but no advice about a daemon that may be fine.
            message = f"{what}: {_root_message(exc)} ({type(exc).__name__} raised by the call)"
        else:
            message = (
                f"{what}: cannot reach Docker at {target}: {_root_message(exc)} — is the daemon "
                "running? set DOCKER_HOST, DOCKER_CONTEXT or docker.pool.socket_path"
            )
        return Verdict(DockerUnavailable(message), retryable=True, counts=True)
    return Verdict(exc, retryable=False, counts=False)


def _from_the_wire(exc: BaseException) -> bool:
    """Whether a socket or HTTP failure is anywhere in ``exc``'s chain (args, causes, reason)."""
    return any(
        isinstance(c, urllib3.exceptions.HTTPError)
        # requests' own errors are OSErrors too (RequestException subclasses IOError).
        or (isinstance(c, OSError) and not isinstance(c, requests.exceptions.RequestException))
        for c in _chain(exc)
    )


# Engine 29's words (moby daemon/server/middleware/version.go), also dockerd 20.10's.
_VERSION_REFUSED = re.compile(
    r"client version (?P<ours>[\d.]+) is too (?P<way>old|new)\. "
    r"(?:Minimum|Maximum) supported API version is (?P<theirs>[\d.]+)"
)
_PLAIN_TO_TLS = "Client sent an HTTP request to an HTTPS server"

# What a failed handshake's OpenSSL reason means, and what to do (first match wins).
_TLS_REASONS = (
    (
        ("CERTIFICATE_VERIFY_FAILED",),
        "the daemon's certificate does not verify with the CA actorpool was given ({detail}) "
        "— use the ca.pem of the CA that signed the daemon's certificate (DOCKER_CERT_PATH, "
        "the context's CA or docker.api.tls_ca_cert)",
    ),
    (
        ("BAD_CERTIFICATE", "CERTIFICATE_REQUIRED", "certificate required"),
        "the daemon refused the client certificate: none was given, or the daemon does not "
        "trust it — give cert.pem and key.pem signed by the CA of the daemon's --tlscacert",
    ),
    (
        ("EOF occurred", "UNEXPECTED_EOF", "unknown ca", "UNKNOWN_CA"),
        "the daemon closed the TLS connection during the handshake, as dockerd does with a "
        "client certificate signed by a CA it does not trust — give cert.pem and key.pem "
        "signed by the CA of the daemon's --tlscacert",
    ),
    (
        ("WRONG_VERSION_NUMBER", "record layer failure"),
        "the address does not speak TLS — unset DOCKER_TLS_VERIFY/DOCKER_TLS and the TLS "
        "options, or use the daemon's TLS port",
    ),
)


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and everything it wraps (requests and urllib3 nest causes in args too)."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo:
        cur = todo.pop()
        if any(cur is s for s in seen):
            continue
        seen.append(cur)
        todo.extend(a for a in getattr(cur, "args", ()) if isinstance(a, BaseException))
        todo.extend(c for c in (cur.__cause__, cur.__context__) if c is not None)
        reason = getattr(cur, "reason", None)
        if isinstance(reason, BaseException):
            todo.append(reason)
    return seen


def _tls_failure(exc: BaseException, target: str) -> str | None:
    """What went wrong with TLS, in words, or ``None`` when ``exc`` is not about TLS."""
    if isinstance(exc, docker.errors.APIError) and _PLAIN_TO_TLS in str(exc.explanation or ""):
        return (
            f"Docker at {target} requires TLS but actorpool spoke plain HTTP — set "
            "DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH (or docker.api.tls_verify and "
            "docker.api.tls_ca_cert); actorpool never falls back between the two"
        )
    chain = _chain(exc)
    tls_kinds = (requests.exceptions.SSLError, urllib3.exceptions.SSLError, ssl.SSLError)
    if not any(isinstance(c, tls_kinds) for c in chain):
        return None
    root = next((c for c in reversed(chain) if isinstance(c, ssl.SSLError)), chain[-1])
    detail = getattr(root, "verify_message", None) or getattr(root, "reason", None) or root
    text = " ".join(str(c) for c in chain)
    for needles, words in _TLS_REASONS:
        if any(n in text for n in needles):
            return f"TLS to Docker at {target} failed: " + words.format(detail=detail)
    return f"TLS to Docker at {target} failed: {detail}"


def _ssh_failure(exc: BaseException, target: str) -> str | None:
    """What went wrong logging in over ssh (paramiko), or ``None`` when ``exc`` is not that.

    Unknown host keys and refused keys fail the same way on every retry; a refused TCP
    connection is an OSError and stays a retryable "cannot reach".
    """
    for cause in _chain(exc):
        kind = type(cause)
        if kind.__module__.startswith("paramiko") and not isinstance(cause, OSError):
            return (
                f"ssh to Docker at {target} failed: {cause} ({kind.__name__}) — the host key "
                "must be in ~/.ssh/known_hosts and a key the server accepts in ~/.ssh/config "
                "(IdentityFile) or the agent"
            )
    return None


def _version_error(what: str, target: str, explanation: str, found: re.Match[str]) -> BadRequest:
    ours, theirs = found["ours"], found["theirs"]
    bound = "minimum" if found["way"] == "old" else "maximum"
    fix = f">= {theirs}" if found["way"] == "old" else f"<= {theirs}"
    msg = (
        f"{what}: Docker at {target} refuses API version {ours} (its {bound} is {theirs}) — "
        f"set docker.api.version to auto to negotiate, or pin a version {fix} there or "
        "in DOCKER_API_VERSION"
    )
    return ApiVersionError(msg, status=400, explanation=explanation)


def bad_response(
    what: str, target: str, body: bytes | str, reason: str, status: int | None = None
) -> BadResponse:
    """The error for an answer whose body is not what ``what`` expects (e.g. not JSON)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    shown = "an empty body" if not text.strip() else f"the body {text[:200]!r}"
    code = f"HTTP {status} with " if status is not None else ""
    return BadResponse(
        f"{what}: Docker at {target} answered {code}{shown} ({reason}); the connection is "
        "fine, the daemon cannot answer this request (Podman answers the stats of a stopped "
        "container so): check the object's state",
        status=status,
        explanation=text[:200],
    )


def _root_message(exc: BaseException) -> str:
    cur: BaseException = exc
    while True:
        nxt = cur.__cause__ or cur.__context__
        if nxt is None:
            break
        cur = nxt
    for arg in getattr(cur, "args", ()):
        if isinstance(arg, BaseException):
            return _root_message(arg)
    if isinstance(cur, FileNotFoundError):
        return "no such socket"
    if isinstance(cur, ConnectionRefusedError):
        return "connection refused"
    return str(cur) or cur.__class__.__name__
