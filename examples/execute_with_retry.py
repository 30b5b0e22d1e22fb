"""``Execute(fn)``: any docker-py call, under the pool's retry and circuit-breaker rules.

The message set covers the common requests; for anything else, hand the pool a
function of a docker-py ``APIClient``. It runs on a pooled connection, like any
request: retried on another connection when the daemon is unreachable, never
retried when Docker says no (404, 409, 400), counted by the breakers.

    DOCKER_HOST=unix:///path/to/docker.sock python examples/execute_with_retry.py

No daemon? ``actorpool sandbox`` starts one (see examples/README.md).
"""

from __future__ import annotations

import sys
import time
from typing import Any

import requests
from docker import APIClient

import actorpool
from actorpool.config import Config
from actorpool.errors import ActorPoolError, NoHealthyConnections, NotFound, RetriesExhausted
from actorpool.messages import Execute, ListContainers, Ping

# Quick retries and touchy breakers, so the rules show within a second or two.
config = Config.from_mapping(
    {
        "docker": {
            "pool": {
                "min_pool_size": 2,
                "initial_pool_size": 2,
                "max_pool_size": 2,
                "max_retries": 3,
                "initial_retry_delay": "50ms",
                "max_retry_delay": "200ms",
            },
            "circuit_breaker": {"failure_threshold": 2, "success_threshold": 1, "timeout": "1s"},
        }
    }
)


def main() -> None:
    with actorpool.start(config) as pool:
        # No daemon: one clear error within 5 s, not a wait through every retry.
        pool.router.ask(Ping(timeout=5))
        # 1. A call with no message of its own: disk usage (`docker system df`).
        #    fn must return plain data, never the client or a stream bound to it.
        df = pool.router.ask(Execute(lambda client: client.df(), timeout=30))
        images = df.get("Images") or []
        print(f"df: {len(images)} image(s), {df.get('LayersSize', 0) / 1e6:.1f} MB of layers")

        running = pool.router.ask(ListContainers())
        if running:
            cid = running[0]["Id"]
            top = pool.router.ask(Execute(lambda client: client.top(cid)))
            print(f"top {cid[:12]}: {len(top['Processes'])} process(es)")

        # 2. A call that fails twice as if the daemon dropped the connection: the pool
        #    retries it (on the other connection first, after a backoff) and it succeeds.
        attempts: list[float] = []

        def flaky(client: APIClient) -> bool:  # runs in a connection actor's thread
            attempts.append(time.monotonic())
            if len(attempts) < 3:
                raise requests.exceptions.ConnectionError("simulated: connection reset by peer")
            return bool(client.ping())

        print(f"flaky: {pool.router.ask(Execute(flaky))} after {len(attempts)} attempts")

        # 3. Docker's "no" is final: NotFound is raised at once, not retried.
        tries: list[float] = []

        def top_of_missing(client: APIClient) -> dict[str, Any]:
            tries.append(time.monotonic())
            top: dict[str, Any] = client.top("no-such-container")
            return top

        try:
            pool.router.ask(Execute(top_of_missing))
        except NotFound as error:
            print(f"NotFound after {len(tries)} attempt (not retried): {error.explanation}")

        # 4. A call that always fails: max_retries retries, then RetriesExhausted. Each
        #    failure counts against its connection, so both breakers open ...
        def broken(client: APIClient) -> None:
            raise requests.exceptions.ConnectionError("simulated: daemon gone")

        try:
            pool.router.ask(Execute(broken))
        except RetriesExhausted as error:
            print(f"RetriesExhausted: {error}")
        breakers = [c.breaker for c in pool.status().connections]
        print(f"breakers: {breakers}")

        # ... and while they are open the pool fails fast instead of queueing calls.
        try:
            pool.router.ask(Ping())
        except NoHealthyConnections as error:
            print(f"NoHealthyConnections: {error}")

        # After circuit_breaker.timeout a breaker lets a trial call through; it succeeds
        # and closes the breaker again.
        time.sleep(1.2)
        print(f"after {config.circuit_breaker.timeout:g}s: ping -> {pool.router.ask(Ping())}")
        print(f"breakers: {[c.breaker for c in pool.status().connections]}")


if __name__ == "__main__":
    try:
        main()
    except ActorPoolError as error:  # e.g. no daemon, no such container: one line, no traceback
        sys.exit(f"execute_with_retry.py: {error}")
