"""Weighted health checks, health scores and a failure predictor.

A health check round runs every configured check on one connection (in that
connection's actor, with its own client) and yields a score: the weight of
the checks that passed over the total weight. The router keeps one
:class:`HealthTracker` per connection; it turns rounds into a state:

- ``healthy``: the last round scored 1 and latency is not trending up;
- ``degrading``: some check fails, or the predictor sees health-check
  latency rising (recent mean over ``trend_ratio`` times the earlier mean)
  while calls still succeed: a warning *before* the breaker opens;
- ``unhealthy``: ``unhealthy_threshold`` failing rounds (score < 0.5) in a
  row; the router stops using the connection until it recovers.

Checks are pluggable: anything with ``name``, ``weight`` and
``run(client, timeout)`` (raising on failure) can be passed to
``actorpool.start(..., health_checks=[...])``.
"""

from __future__ import annotations

import collections
import statistics
import time
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import attrs

from actorpool.config import HealthConfig
from actorpool.messages import ListContainers, Ping

if TYPE_CHECKING:
    from docker import APIClient

__all__ = [
    "CheckResult",
    "EventStreamCheck",
    "HealthCheck",
    "HealthTracker",
    "ListLatencyCheck",
    "PingCheck",
    "default_checks",
]


@runtime_checkable
class HealthCheck(Protocol):
    """What a health-check round can run on a connection."""

    @property
    def name(self) -> str:
        """Short name, for status and logs."""

    @property
    def weight(self) -> float:
        """Share of the health score (relative to the other checks)."""

    def run(self, client: APIClient, timeout: float) -> None:
        """Raise if the connection or the daemon fails this check."""


@attrs.frozen
class PingCheck:
    """``GET /_ping`` answers."""

    weight: float = 1.0
    name: str = "ping"

    def run(self, client: APIClient, timeout: float) -> None:
        client.timeout = timeout
        # The path user calls take (actorpool.transport.direct), so a check sees what they would.
        if not Ping().execute(client):
            msg = "the daemon answered the ping with something other than OK"
            raise RuntimeError(msg)


@attrs.frozen
class ListLatencyCheck:
    """Listing containers answers within ``threshold`` seconds."""

    weight: float = 0.5
    threshold: float = 1.0
    name: str = "list_latency"

    def run(self, client: APIClient, timeout: float) -> None:
        client.timeout = timeout
        start = time.monotonic()
        ListContainers(limit=1).execute(client)
        took = time.monotonic() - start
        if took > self.threshold:
            msg = f"container list took {took:.3f}s, over the {self.threshold}s threshold"
            raise TimeoutError(msg)


@attrs.frozen
class EventStreamCheck:
    """The event stream opens and answers (a bounded ``since=until=now`` read)."""

    weight: float = 0.5
    name: str = "events"

    def run(self, client: APIClient, timeout: float) -> None:
        now = f"{time.time():.9f}"
        response = client._get(
            client._url("/events"), params={"since": now, "until": now}, timeout=timeout
        )
        client._raise_for_status(response)


def default_checks(config: HealthConfig) -> tuple[HealthCheck, ...]:
    """The built-in checks with the configured weights (weight 0 leaves a check out)."""
    checks: list[HealthCheck] = [
        PingCheck(weight=config.ping_weight),
        ListLatencyCheck(weight=config.list_latency_weight, threshold=config.latency_threshold),
        EventStreamCheck(weight=config.events_weight),
    ]
    return tuple(c for c in checks if c.weight > 0)


@attrs.frozen
class CheckResult:
    """One check's outcome in one round."""

    name: str
    weight: float
    ok: bool
    seconds: float
    error: str = ""


def score_of(results: tuple[CheckResult, ...]) -> float:
    """Weight of the passing checks over the total weight (1.0 for an empty round)."""
    total = sum(r.weight for r in results)
    if total <= 0:
        return 1.0
    return sum(r.weight for r in results if r.ok) / total


@attrs.define
class HealthTracker:
    """One connection's health as the router sees it.

    Attributes:
        config: The ``docker.health`` section.
        threshold: Failing rounds in a row before ``unhealthy``.
        state: ``healthy``, ``degrading`` or ``unhealthy``.
        score: The last round's score (0 while unhealthy).
        failures: Failing rounds (or failed calls) in a row.
        reason: Why the state is what it is, for status and alerts.
    """

    config: HealthConfig
    threshold: int
    state: str = "healthy"
    score: float = 1.0
    failures: int = 0
    reason: str = ""
    _latencies: collections.deque[float] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._latencies = collections.deque(maxlen=self.config.trend_window)

    def round(self, results: tuple[CheckResult, ...], seconds: float) -> str:
        """Take a health check round; return the new state."""
        self.score = score_of(results)
        failed = [r for r in results if not r.ok]
        if self.score < 0.5:
            self.failures += 1
            self.reason = "; ".join(f"{r.name}: {r.error}" for r in failed) or "checks failed"
            self._latencies.clear()
        else:
            self.failures = 0
            self._latencies.append(seconds)
            self.reason = "; ".join(f"{r.name}: {r.error}" for r in failed)
        return self._settle()

    def call_failed(self, reason: str) -> str:
        """A request failed in a way that counts against the connection."""
        self.failures += 1
        self.reason = reason
        return self._settle()

    def call_succeeded(self) -> str:
        """A request succeeded: the daemon answers through this connection."""
        if self.state == "unhealthy":
            return self.state  # only a passing check round brings it back
        self.failures = 0
        return self._settle()

    def trend(self) -> float | None:
        """Recent over earlier mean health-check latency, once the window is full."""
        if len(self._latencies) < self._latencies.maxlen:  # type: ignore[operator]
            return None
        values = list(self._latencies)
        half = len(values) // 2
        earlier = statistics.fmean(values[:half])
        recent = statistics.fmean(values[half:])
        if recent < self.config.trend_floor:
            return None
        return recent / max(earlier, 1e-6)

    def _settle(self) -> str:
        if self.failures >= self.threshold:
            self.state = "unhealthy"
            self.score = 0.0
        elif self.state == "unhealthy" and self.failures:
            pass  # stays unhealthy until a passing round
        else:
            trend = self.trend()
            if trend is not None and trend >= self.config.trend_ratio:
                self.state = "degrading"
                self.reason = f"health-check latency rising ({trend:.1f}x)"
            elif self.score < 1.0 or self.failures:
                self.state = "degrading"
            else:
                self.state = "healthy"
        return self.state
