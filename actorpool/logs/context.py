"""What every stream actor of one manager shares: context, counters, blocking calls, backoff.

The stream manager (:mod:`actorpool.streams.manager`) builds one
:class:`StreamContext` and hands it to every stream actor it starts: log
streams (:mod:`actorpool.logs.stream`), event streams
(:mod:`actorpool.events.stream`) and FollowContainers (:mod:`actorpool.events.follow`).
It carries the counters behind ``StreamStats``
(:class:`StreamCounters`), the few worker threads that run the short
blocking Docker calls actors must not make (:class:`BlockingCalls`), and the
shared reconnect rate limit, and the read loop (one thread reading every
follow stream, :mod:`actorpool.transport.readloop`). :class:`FailureStreak` is the one reconnect
policy of every reader: jittered exponential backoff, and
:class:`GiveUp` after ``streams.give_up_after`` seconds without the daemon.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

import attrs
import pykka

from actorpool.config import Config
from actorpool.engine.backoff import backoff_delay
from actorpool.engine.ratelimit import SharedBucket
from actorpool.engine.scheduler import Scheduler
from actorpool.errors import (
    DockerError,
    DockerUnavailable,
    PoolStopped,
    RequestTimeout,
    StreamError,
)
from actorpool.observe.metrics import PoolMetrics
from actorpool.transport.classify import RETRYABLE_STATUS, classify, passing
from actorpool.transport.client import close_quietly, make_client
from actorpool.transport.dialect import DialectProbe
from actorpool.transport.endpoint import daemon_url
from actorpool.transport.readloop import ReadLoop

if TYPE_CHECKING:
    from docker import APIClient

__all__ = [
    "BlockingCalls",
    "FailureStreak",
    "GiveUp",
    "StreamContext",
    "StreamCounters",
    "transient",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class StreamCounters:
    """Plain counts over every stream of one manager, for ``StreamStats``. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.lines_delivered = 0
        self.bytes_delivered = 0
        self.reconnects = 0
        self.resumed_lines = 0
        self.resume_gaps = 0
        self.truncated_lines = 0
        self.dropped_chunks = 0
        self.history_reads = 0
        self.peak_buffered_chunks = 0

    def peak(self, name: str, value: int) -> None:
        """Raise the named high-water mark to ``value`` if it is higher."""
        if value > getattr(self, name):
            with self._lock:
                if value > getattr(self, name):
                    setattr(self, name, value)

    def add(self, **counts: int) -> None:
        """Add to the named counters."""
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def snapshot(self) -> dict[str, int]:
        """All counters at once."""
        with self._lock:
            return {k: v for k, v in vars(self).items() if not k.startswith("_")}


class BlockingCalls:
    """A few threads for the short blocking Docker calls the stream actors need.

    Actors never block, so ``inspect`` (for a subscribe), ``containers`` (for
    FollowContainers) and liveness pings run here, each thread with a client
    of its own (a dedicated connection, not a request-pool slot). The result
    comes back through ``done(result, error)``, called on the worker thread:
    it must only ``tell`` an actor or complete a future.
    """

    def __init__(self, config: Config, *, workers: int = 4) -> None:
        self._config = config
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="actorpool-streams-io")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._clients: list[APIClient] = []
        self._closed = False

    def _client(self) -> APIClient:
        client: APIClient | None = getattr(self._local, "client", None)
        if client is None:
            # Liveness pings run here too: the first call on a fresh client asks for the API
            # version within the health-check bound, so a hung daemon fails that ping in time.
            client = make_client(
                self._config,
                timeout=self._config.api.timeout,
                negotiate_timeout=self._config.pool.health_check_timeout,
            )
            with self._lock:
                self._clients.append(client)
            self._local.client = client
        return client

    def submit(
        self,
        fn: Callable[[APIClient], T],
        done: Callable[[T | None, BaseException | None], None],
    ) -> None:
        """Run ``fn(client)`` on a worker; then ``done(result, None)`` or ``done(None, error)``."""

        def run() -> None:
            result: T | None = None
            error: BaseException | None = None
            try:
                result = fn(self._client())
            except Exception as exc:  # handed to the caller, who classifies it
                error = exc
            try:
                done(result, error)
            except pykka.ActorDeadError:
                pass
            except Exception:
                logger.exception("stream call completion failed")

        try:
            self._executor.submit(run)
        except RuntimeError:  # shut down
            done(None, PoolStopped("the pool is stopping; the stream request was not run"))

    def shutdown(self) -> None:
        """Drop queued calls and close the clients (a running call fails or finishes)."""
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            close_quietly(client, "stream worker client")


@attrs.frozen
class StreamContext:
    """What every stream actor of one manager shares."""

    config: Config
    scheduler: Scheduler
    metrics: PoolMetrics | None
    counters: StreamCounters
    calls: BlockingCalls
    reconnects: SharedBucket | None = None
    #: The one thread that reads every follow stream (None: each follower reads on a thread).
    reads: ReadLoop | None = None
    #: The daemon's dialect (dockerd or Podman), asked for once by the first reader.
    dialect: DialectProbe = attrs.field(factory=DialectProbe)
    endpoint: str = "default"  # the endpoint whose daemon the streams read (in every message)

    def count_reconnect(self) -> None:
        """Count a stream reopened after a cut (counters and metrics)."""
        self.counters.add(reconnects=1)
        if self.metrics is not None:
            self.metrics.stream_reconnect()

    def reconnect_wait(self) -> float:
        """Seconds a reader waits for its turn to reconnect (rate-limited, shared)."""
        return 0.0 if self.reconnects is None else self.reconnects.wait_time()

    def error(self, exc: BaseException, what: str) -> BaseException:
        """The typed actorpool error for ``exc`` (``NotFound``, ``DockerUnavailable``...)."""
        return classify(exc, target=daemon_url(self.config), what=what).error


class GiveUp(Exception):
    """The daemon stayed unreachable for ``streams.give_up_after`` seconds."""


class FailureStreak:
    """Consecutive failures to reach the daemon: backoff delays and the give-up deadline."""

    def __init__(self, config: Config) -> None:
        self._streams = config.streams
        self._first: float | None = None
        self._attempt = 0

    def failed(self, error: BaseException) -> float:
        """Count a failure; return the delay before the next attempt (raises GiveUp)."""
        now = time.monotonic()
        if self._first is None:
            self._first = now
        elif now - self._first >= self._streams.give_up_after:
            msg = (
                f"gave up after {now - self._first:.0f} s without reaching the daemon "
                f"(docker.streams.give_up_after): {error}"
            )
            raise GiveUp(msg)
        delay = backoff_delay(
            self._attempt,
            initial=self._streams.reconnect_initial_delay,
            multiplier=2.0,
            maximum=self._streams.reconnect_max_delay,
            jitter=True,
        )
        self._attempt += 1
        # Never sleep past the give-up deadline by much; never spin.
        return max(delay, self._streams.reconnect_initial_delay / 10)

    def reset(self) -> None:
        self._first = None
        self._attempt = 0


_UNAVAILABLE = (DockerUnavailable, RequestTimeout, StreamError)


def transient(error: BaseException) -> bool:
    """Worth reconnecting a stream for: the daemon is unreachable, slow, or answered 502/503/504.

    Also Podman's 500 for a log file read as it was written (:func:`passing`).
    """
    if isinstance(error, DockerError):
        return error.status in RETRYABLE_STATUS or passing(error)
    return isinstance(error, _UNAVAILABLE)
