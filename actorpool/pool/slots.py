"""The router's view of one pooled connection.

A :class:`Slot` is plain state owned by the router's thread: the connection
actor's ref, its circuit breaker and health tracker, what it is doing, how
much it was used, and when it is due to be replaced. Keeping it out of the
router keeps the router about routing.
"""

from __future__ import annotations

import random
import time
from typing import Any

import attrs
import pykka

from actorpool.messages import ConnectionStatus
from actorpool.pool.breaker import CircuitBreaker
from actorpool.pool.health import HealthTracker

__all__ = ["Slot"]


@attrs.define(eq=False)
class Slot:
    """One connection slot.

    Attributes:
        id: Stable slot id ("c0", "c1", ...); a restarted or recycled actor keeps it.
        ref: The connection actor.
        breaker: Its circuit breaker.
        health: Its health tracker.
        created: ``time.monotonic()`` when the actor joined.
        soft_age: Age at which it is replaced once idle with nothing waiting
            (``max_connection_age``, jittered so slots do not expire together).
        hard_age: Age at which it is replaced as soon as its call ends
            (``connection_lifetime``, jittered likewise).
        running: The request id in flight, if any.
        probing: A health-check round is running on it.
        recovering: The round running is a recovery attempt.
        usage_count: Requests it has run.
        last_used: Unix time of its last request (for status).
        idle_since: ``time.monotonic()`` since when it has been idle.
        last_pick: Order of its last pick (breaks usage ties round-robin).
        reported: The health state last announced (log line, alert).
    """

    id: str
    ref: pykka.ActorRef[Any]
    breaker: CircuitBreaker
    health: HealthTracker
    created: float
    soft_age: float
    hard_age: float
    running: int | None = None
    probing: bool = False
    recovering: bool = False
    usage_count: int = 0
    last_used: float | None = None
    idle_since: float = attrs.field(factory=time.monotonic)
    last_pick: int = 0
    reported: str = "healthy"

    @classmethod
    def new(
        cls,
        conn_id: str,
        ref: pykka.ActorRef[Any],
        breaker: CircuitBreaker,
        health: HealthTracker,
        *,
        max_age: float,
        lifetime: float,
        rng: random.Random,
    ) -> Slot:
        """A fresh slot whose age limits are jittered down by up to 15%."""
        now = time.monotonic()
        return cls(
            conn_id,
            ref,
            breaker,
            health,
            created=now,
            soft_age=max_age * rng.uniform(0.85, 1.0),
            hard_age=lifetime * rng.uniform(0.85, 1.0),
            idle_since=now,
        )

    @property
    def idle(self) -> bool:
        """Neither running a request nor a health check."""
        return self.running is None and not self.probing

    @property
    def healthy(self) -> bool:
        """Not marked unhealthy (a degrading connection still serves)."""
        return self.health.state != "unhealthy"

    def usable(self, now: float) -> bool:
        """Healthy, and its breaker admits a call now."""
        return self.healthy and self.breaker.admits(now)

    def age(self, now: float) -> float:
        """Seconds since the actor joined."""
        return now - self.created

    def status(self, now: float) -> ConnectionStatus:
        """Plain-data status for ``PoolStatus``."""
        return ConnectionStatus(
            id=self.id,
            healthy=self.healthy,
            breaker=self.breaker.current(now).value,
            in_use=not self.idle,
            usage_count=self.usage_count,
            age=self.age(now),
            last_used=self.last_used,
            consecutive_failures=self.health.failures,
            state=self.health.state,
            score=self.health.score,
        )
