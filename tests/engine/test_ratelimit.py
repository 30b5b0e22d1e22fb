"""The token bucket, alone and in front of a real pool."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

import actorpool
from actorpool.config import Config
from actorpool.engine.ratelimit import TokenBucket
from actorpool.errors import RateLimited
from actorpool.messages import Ping


def test_burst_then_steady_rate() -> None:
    bucket = TokenBucket(rate=10.0, burst=3)
    waits = [bucket.reserve(0.0, within=10) for _ in range(5)]
    assert waits == [0.0, 0.0, 0.0, pytest.approx(0.1), pytest.approx(0.2)]
    # After a quiet spell the bucket refills, but never above the burst.
    assert bucket.reserve(100.0, within=10) == 0.0
    assert bucket.tokens == pytest.approx(2.0)


def test_a_wait_longer_than_allowed_reserves_nothing() -> None:
    bucket = TokenBucket(rate=1.0, burst=1)
    assert bucket.reserve(0.0, within=0.5) == 0.0
    assert bucket.reserve(0.0, within=0.5) is None
    assert bucket.reserve(0.0, within=2.0) == pytest.approx(1.0), "the refusal took no token"


MakeConfig = Callable[..., Config]


def test_220_requests_at_100_per_second_with_burst_20_take_two_seconds(
    make_config: MakeConfig,
) -> None:
    config = make_config(rate_limit={"enabled": True, "requests_per_second": 100, "burst_size": 20})
    with actorpool.start(config) as pool:
        time.sleep(0.3)  # let the bucket fill after start-up
        start = time.monotonic()
        with ThreadPoolExecutor(8) as ex:
            results = list(ex.map(lambda _: pool.router.ask(Ping(timeout=10)), range(220)))
        elapsed = time.monotonic() - start
        assert results == [True] * 220
        assert elapsed >= 2.0 - 0.05, f"220 requests passed in {elapsed:.2f}s"
        waited = pool.metrics.value("docker_rate_limit_wait_duration_seconds_count")
        assert waited is not None
        # The burst went at once and the limiter held some back. How many waited depends
        # on how fast 8 threads submit (148 of 200 at a load of 30, as few as the machine
        # allows); the rate itself is the elapsed time above.
        assert 0 < waited <= 200


def test_a_short_deadline_behind_the_bucket_is_rate_limited_at_once(
    make_config: MakeConfig,
) -> None:
    config = make_config(rate_limit={"enabled": True, "requests_per_second": 5, "burst_size": 2})
    with actorpool.start(config) as pool:
        time.sleep(0.5)
        futures = [pool.router.ask(Ping(timeout=10), block=False) for _ in range(6)]
        start = time.monotonic()
        with pytest.raises(
            RateLimited, match=r"cannot admit this request within its 0\.2s deadline"
        ):
            pool.router.ask(Ping(timeout=0.2))
        assert time.monotonic() - start < 0.1, "RateLimited must come at once, not at the deadline"
        assert [f.get(timeout=10) for f in futures] == [True] * 6


def test_shared_bucket_spreads_many_threads_reconnecting_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading
    import types

    from actorpool.engine import ratelimit
    from actorpool.engine.ratelimit import SharedBucket

    # "At once" on a frozen clock: on a loaded machine the threads start tens of ms
    # apart and the bucket refills between them (the last waited 0.38 s, not 0.5).
    monkeypatch.setattr(ratelimit, "time", types.SimpleNamespace(monotonic=lambda: 1000.0))
    bucket = SharedBucket(rate=50.0, burst=5)
    waits: list[float] = []
    lock = threading.Lock()

    def reconnect() -> None:
        wait = bucket.wait_time()
        with lock:
            waits.append(wait)

    threads = [threading.Thread(target=reconnect) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    waits.sort()
    assert waits[:5] == [0.0] * 5, "the burst goes at once"
    # The other 25 are spread at 50/s: the last waits about half a second.
    assert waits[-1] == pytest.approx(25 / 50, abs=0.05)
    assert all(b - a < 0.05 for a, b in itertools.pairwise(waits))
