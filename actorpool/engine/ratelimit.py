"""A token bucket for the router's admission control.

The router owns one bucket and calls it from its single thread with an
explicit ``now``, so it needs no lock and tests need no sleeping. A request
that finds no token reserves the next one (the bucket goes negative) and is
told how long to wait; the router schedules its admission then, or fails it
at once with ``RateLimited`` when that wait would outlive its deadline.
"""

from __future__ import annotations

import math
import threading
import time

import attrs

__all__ = ["SharedBucket", "TokenBucket"]


@attrs.define
class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up.

    Attributes:
        rate: Tokens added per second.
        burst: Capacity: how many requests may pass at once after a quiet spell.
        tokens: Tokens available now; negative means reservations are waiting.
        last: When ``tokens`` was last brought up to date (monotonic seconds).
    """

    rate: float
    burst: int
    tokens: float = attrs.field(
        default=attrs.Factory(lambda self: float(self.burst), takes_self=True)
    )
    last: float | None = None

    def _refill(self, now: float) -> None:
        if self.last is not None:
            self.tokens = min(float(self.burst), self.tokens + (now - self.last) * self.rate)
        self.last = now

    def reserve(self, now: float, *, within: float) -> float | None:
        """Take a token, waiting at most ``within`` seconds for it.

        Returns:
            ``0.0`` when a token was free, the seconds to wait for the reserved
            one, or ``None`` (nothing reserved) when the wait would exceed ``within``.
        """
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        wait = (1.0 - self.tokens) / self.rate
        if wait > within:
            return None
        self.tokens -= 1.0
        return wait


class SharedBucket:
    """A :class:`TokenBucket` for threads: stream reconnects after a daemon restart.

    When the daemon comes back, every followed container's reader wants to
    reconnect at once; each takes a token first, so hundreds of streams
    reconnect at the pool's request rate instead of stampeding the daemon.
    """

    def __init__(self, rate: float, burst: int) -> None:
        self._bucket = TokenBucket(rate, burst)
        self._lock = threading.Lock()

    def wait_time(self) -> float:
        """Reserve a token; return how long the caller must wait for it."""
        with self._lock:
            wait = self._bucket.reserve(time.monotonic(), within=math.inf)
        return wait or 0.0
