"""Typed errors raised by actorpool.

Every error derives from :class:`ActorPoolError` so a caller can catch the
whole family in one place, and every message says what failed and what to do
about it. Errors are plain exceptions holding plain data (no docker-py object
bound to a client), so they can cross actor boundaries and be pickled.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pykka import ActorDeadError, Timeout

__all__ = [
    "ActorPoolError",
    "ApiVersionError",
    "BadRequest",
    "BadResponse",
    "ConfigError",
    "Conflict",
    "DockerError",
    "DockerUnavailable",
    "EndpointRequired",
    "FanOutError",
    "NoHealthyConnections",
    "NotFound",
    "PoolExhausted",
    "PoolStopped",
    "PositionError",
    "RateLimited",
    "RequestTimeout",
    "RetriesExhausted",
    "StreamError",
    "TLSError",
    "TooManyStreams",
    "UnknownEndpoint",
    "UnknownMessage",
]


class ActorPoolError(Exception):
    """Base class of every error actorpool raises on purpose."""


class ConfigError(ActorPoolError, ValueError):
    """The configuration is invalid; the message names the key path, the value and the rule.

    A configuration file is checked as a whole, so one error carries every
    problem found: fixing a file takes one run, not one run per mistake.

    Attributes:
        problems: Each problem as one line, in file order (``FILE:LINE: key.path:
            rule, got value`` when loaded from a file); ``(message,)`` for one.
        key_path: The option the (first) problem is about, when known.
    """

    def __init__(
        self, message: str, *, problems: tuple[str, ...] = (), key_path: str | None = None
    ) -> None:
        super().__init__(message)
        self.problems = problems or (message,)
        self.key_path = key_path

    def __reduce__(self) -> tuple[object, ...]:
        return _rebuild_config_error, (str(self), self.problems, self.key_path)


def _rebuild_config_error(
    message: str, problems: tuple[str, ...], key_path: str | None
) -> ConfigError:
    return ConfigError(message, problems=problems, key_path=key_path)


class UnknownMessage(ActorPoolError, TypeError):
    """An actor received a message it does not understand.

    Raised to the sender (never kills the actor) so a typo in a pipeline is a
    clear error instead of a silent hang.
    """


class DockerError(ActorPoolError):
    """The Docker daemon answered with an HTTP error.

    Attributes:
        status: The HTTP status code the daemon returned, or ``None``.
        explanation: The daemon's own explanation of the error.
    """

    def __init__(self, message: str, *, status: int | None = None, explanation: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.explanation = explanation

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_docker_error, (type(self), str(self), self.status, self.explanation))


def _rebuild_docker_error(
    cls: type[DockerError], message: str, status: int | None, explanation: str
) -> DockerError:
    return cls(message, status=status, explanation=explanation)


class NotFound(DockerError):
    """The object (container, image, ...) does not exist. Never retried."""


class Conflict(DockerError):
    """The daemon refused the call because of the object's state (HTTP 409). Never retried."""


class BadRequest(DockerError):
    """The daemon rejected the request as malformed (any other 4xx). Never retried."""


class ApiVersionError(BadRequest):
    """The daemon refuses the API version actorpool speaks (HTTP 400). Never retried.

    Engine 29 serves only API >= 1.44: a client pinned below its floor (or above its
    newest version) gets this for every call. The message names both versions and how to
    fix it (``docker.api.version: auto`` or ``DOCKER_API_VERSION``).
    """


class BadResponse(DockerError):
    """The daemon answered, but not with what the request asks for (e.g. an empty or non-JSON 200).

    An answer about that one request, not about the connection: never
    retried (the daemon would answer the same) and never counted against the
    connection's breaker or health. Podman, for one, answers 200 with an empty
    body to the stats of a container that is not running. ``explanation``
    holds the start of the body that came back.
    """


class DockerUnavailable(ActorPoolError):
    """The Docker daemon cannot be reached (no socket, refused, reset, unreachable host)."""


class TLSError(DockerUnavailable):
    """TLS to the daemon failed (wrong CA, missing or foreign client certificate, TLS required).

    A ``DockerUnavailable`` (nothing was exchanged with the daemon) but never retried: a
    certificate that does not verify now will not verify in a second, and actorpool never
    falls back to plain HTTP. The message says what failed and which file or variable to fix.
    """


class RequestTimeout(ActorPoolError, Timeout, TimeoutError):
    """The request's deadline passed before the daemon answered.

    The deadline is the request's ``timeout`` or the ``timeout`` given to
    ``router.ask``, whichever is shorter. Also a ``pykka.Timeout``, which is what
    Pykka's ``ask(timeout=...)`` raises, so code written for Pykka still catches it.
    """


class RetriesExhausted(ActorPoolError):
    """Every retry of a retryable failure failed; ``__cause__`` holds the last failure."""


class NoHealthyConnections(ActorPoolError):
    """No connection is healthy with a breaker that admits the call; the pool fails fast."""


class PoolExhausted(ActorPoolError):
    """``docker.pool.max_queue`` requests are already waiting for a connection."""


class PoolStopped(ActorPoolError, ActorDeadError):
    """The pool was stopped (or is stopping) before the request could be answered.

    Also a ``pykka.ActorDeadError``, so actor code that already handles dead
    refs handles a stopped pool too.
    """


class RateLimited(ActorPoolError):
    """The rate limiter cannot admit the request before its deadline."""


class TooManyStreams(ActorPoolError):
    """``docker.performance.max_concurrent_streams`` streams are already open."""


class StreamError(ActorPoolError):
    """A log or event stream failed for good (it gave up reconnecting)."""


class PositionError(ActorPoolError, ValueError):
    """A saved log position (or a file of them) is corrupt, foreign or from a newer version.

    Never silently replaced by "start from zero": the message names the file
    (or the value) and what is wrong, so the user decides (the CLI's way out
    is ``--reset-positions``).
    """


class UnknownEndpoint(ActorPoolError, ValueError):
    """A message names an endpoint the pool does not have (see ``docker.endpoints``)."""


class EndpointRequired(ActorPoolError, ValueError):
    """The pool has several endpoints and the request is about one object: name its endpoint.

    Container ids are unique per daemon only, so actorpool never guesses which
    daemon a ``container`` means; list-like requests fan out instead.
    """


class FanOutError(ActorPoolError):
    """Some endpoints of a fan-out failed; the live endpoints' answers are in :attr:`partial`.

    A fan-out (a list-like request with ``endpoint=None`` on a pool of several
    endpoints) ends by its deadline whatever the endpoints do. When every
    endpoint answered, the caller gets the plain result; when some failed or
    did not answer in time, this error, carrying both halves.

    Attributes:
        partial: What the endpoints that answered returned, combined exactly as
            the full result would be (one merged list for ``ListContainers`` and
            ``ListImages``, a mapping endpoint -> result for the others).
        failures: Endpoint name -> the error it gave (``RequestTimeout`` for one
            that did not answer by the deadline).
    """

    def __init__(self, message: str, *, partial: Any, failures: Mapping[str, BaseException]):
        super().__init__(message)
        self.partial = partial
        self.failures = dict(failures)

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_fan_out_error, (str(self), self.partial, self.failures))


def _rebuild_fan_out_error(
    message: str, partial: Any, failures: Mapping[str, BaseException]
) -> FanOutError:
    return FanOutError(message, partial=partial, failures=failures)
