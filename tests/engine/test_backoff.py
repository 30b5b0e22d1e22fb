"""Exponential backoff with full jitter."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from actorpool.engine.backoff import backoff_delay


def test_grows_exponentially_and_caps() -> None:
    delays = [
        backoff_delay(n, initial=1.0, multiplier=2.0, maximum=30.0, jitter=False) for n in range(8)
    ]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


@given(
    attempt=st.integers(0, 10_000),
    initial=st.floats(0.001, 10),
    multiplier=st.floats(1.0, 4.0),
    maximum=st.floats(0.001, 100),
)
def test_full_jitter_stays_within_zero_and_the_capped_delay(
    attempt: int, initial: float, multiplier: float, maximum: float
) -> None:
    rng = random.Random(attempt)
    cap = min(maximum, initial * multiplier ** min(attempt, 64))
    delay = backoff_delay(
        attempt, initial=initial, multiplier=multiplier, maximum=maximum, jitter=True, rng=rng
    )
    assert 0.0 <= delay <= cap


def test_jitter_spreads_delays() -> None:
    rng = random.Random(1)
    delays = {
        round(backoff_delay(3, initial=1, multiplier=2, maximum=30, jitter=True, rng=rng), 6)
        for _ in range(50)
    }
    assert len(delays) > 40
