"""Retry delays for every wait in actorpool: exponential backoff with full jitter.

Shared by request retries, connection recovery and stream reconnects, so
every wait in actorpool grows and spreads the same way.
"""

from __future__ import annotations

import random

__all__ = ["backoff_delay"]


def backoff_delay(
    attempt: int,
    *,
    initial: float,
    multiplier: float,
    maximum: float,
    jitter: bool,
    rng: random.Random | None = None,
) -> float:
    """The delay before retry number ``attempt`` (0 for the first retry).

    ``initial * multiplier**attempt`` capped at ``maximum``; with ``jitter``,
    a uniform draw in ``[0, that]`` ("full jitter"), which spreads many
    clients' retries apart instead of letting them hit the daemon in step.
    """
    base = min(maximum, initial * multiplier ** min(attempt, 64))
    if not jitter:
        return base
    return (rng or random).uniform(0.0, base)
