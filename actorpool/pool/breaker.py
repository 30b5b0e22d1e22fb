"""A per-connection circuit breaker (closed, open, half-open).

Plain state, no threads and no clock of its own: the router owns one per
connection and calls it from its single thread, passing ``now``, so the
breaker is trivially thread-safe and testable without sleeping.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable

import attrs

from actorpool.config import CircuitBreakerConfig

__all__ = ["BreakerState", "CircuitBreaker"]

logger = logging.getLogger(__name__)


class BreakerState(enum.StrEnum):
    """The three states of a breaker."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@attrs.define
class CircuitBreaker:
    """Stops sending calls to a connection that keeps failing.

    Closed: calls flow; ``failure_threshold`` consecutive failures open it.
    Open: no calls for ``timeout`` seconds, then half-open. Half-open: at most
    ``half_open_max_calls`` trial calls at once; ``success_threshold``
    successes close it, one failure opens it again.

    Attributes:
        name: Used in log lines (the connection id).
        config: The ``docker.circuit_breaker`` section.
        transitions: Every ``(old, new)`` state change, oldest first (bounded).
        listener: Called as ``listener(name, old, new)`` on each transition (metrics).
    """

    name: str
    config: CircuitBreakerConfig
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    successes: int = 0
    trials: int = 0
    opened_at: float = 0.0
    transitions: list[tuple[BreakerState, BreakerState]] = attrs.field(factory=list)
    listener: Callable[[str, BreakerState, BreakerState], None] | None = None

    def current(self, now: float) -> BreakerState:
        """The state at ``now``: an open breaker whose timeout passed is half-open."""
        if self.state is BreakerState.OPEN and now - self.opened_at >= self.config.timeout:
            self._move(BreakerState.HALF_OPEN, now)
        return self.state

    def admits(self, now: float) -> bool:
        """Whether a call may be sent now (does not reserve a trial slot)."""
        if self.state is BreakerState.CLOSED or not self.config.enabled:
            return True
        state = self.current(now)
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN:
            return self.trials < self.config.half_open_max_calls
        return False

    def on_call(self, now: float) -> None:
        """A call was sent; in half-open it takes a trial slot."""
        if self.current(now) is BreakerState.HALF_OPEN:
            self.trials += 1

    def on_success(self, now: float) -> None:
        """The daemon answered (a 4xx answer counts as a success)."""
        self.failures = 0
        if self.state is BreakerState.HALF_OPEN:
            self.trials = max(0, self.trials - 1)
            self.successes += 1
            if self.successes >= self.config.success_threshold:
                self._move(BreakerState.CLOSED, now)

    def on_failure(self, now: float) -> None:
        """The call failed in a way that says the connection or daemon is unwell."""
        if not self.config.enabled:
            return
        if self.state is BreakerState.HALF_OPEN:
            self._move(BreakerState.OPEN, now)
            return
        self.failures += 1
        if self.state is BreakerState.CLOSED and self.failures >= self.config.failure_threshold:
            self._move(BreakerState.OPEN, now)

    def _move(self, new: BreakerState, now: float) -> None:
        old, self.state = self.state, new
        self.failures = self.successes = self.trials = 0
        if new is BreakerState.OPEN:
            self.opened_at = now
        self.transitions.append((old, new))
        del self.transitions[:-32]
        if self.listener is not None:
            self.listener(self.name, old, new)
        logger.warning(
            "circuit breaker %s -> %s",
            old.value,
            new.value,
            extra={"conn_id": self.name, "breaker_from": old.value, "breaker_to": new.value},
        )
