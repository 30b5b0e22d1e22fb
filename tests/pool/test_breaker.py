"""The circuit breaker's state machine, driven with an explicit clock."""

from __future__ import annotations

import pytest

from actorpool.config import CircuitBreakerConfig
from actorpool.pool.breaker import BreakerState, CircuitBreaker


def make(**kw: object) -> tuple[CircuitBreaker, list[tuple[str, str]]]:
    seen: list[tuple[str, str]] = []
    cfg = CircuitBreakerConfig(
        **{
            "failure_threshold": 3,
            "success_threshold": 2,
            "timeout": 10.0,
            "half_open_max_calls": 1,
            **kw,
        }  # type: ignore[arg-type]
    )
    breaker = CircuitBreaker("c0", cfg, listener=lambda _n, a, b: seen.append((a.value, b.value)))
    return breaker, seen


def test_opens_after_consecutive_failures_only() -> None:
    b, seen = make()
    b.on_failure(0)
    b.on_failure(0)
    b.on_success(0)  # resets the run of failures
    b.on_failure(0)
    b.on_failure(0)
    assert b.current(0) is BreakerState.CLOSED
    b.on_failure(0)
    assert b.current(0) is BreakerState.OPEN
    assert not b.admits(5)
    assert seen == [("closed", "open")]


def test_full_cycle_closed_open_half_open_closed() -> None:
    b, seen = make()
    for _ in range(3):
        b.on_failure(0)
    assert not b.admits(9.99)
    assert b.admits(10.0)  # timeout elapsed: half-open
    assert b.current(10.0) is BreakerState.HALF_OPEN
    b.on_call(10.0)
    assert not b.admits(10.0), "only half_open_max_calls trial calls at once"
    b.on_success(10.1)
    assert b.current(10.1) is BreakerState.HALF_OPEN, "success_threshold is 2"
    b.on_call(10.2)
    b.on_success(10.3)
    assert b.current(10.3) is BreakerState.CLOSED
    assert seen == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_one_failure_in_half_open_reopens() -> None:
    b, seen = make()
    for _ in range(3):
        b.on_failure(0)
    b.current(10)
    b.on_call(10)
    b.on_failure(11)
    assert b.current(11) is BreakerState.OPEN
    assert seen[-2:] == [("open", "half_open"), ("half_open", "open")]
    assert not b.admits(20.9), "the open period starts again at the reopening"
    assert b.admits(21)


def test_disabled_breaker_always_admits() -> None:
    b, seen = make(enabled=False)
    for _ in range(10):
        b.on_failure(0)
    assert b.admits(0)
    assert seen == []


@pytest.mark.parametrize("max_calls", [1, 3])
def test_half_open_admits_at_most_max_calls(max_calls: int) -> None:
    b, _ = make(half_open_max_calls=max_calls, success_threshold=5)
    for _ in range(3):
        b.on_failure(0)
    admitted = 0
    while b.admits(10):
        b.on_call(10)
        admitted += 1
        assert admitted <= 10
    assert admitted == max_calls
