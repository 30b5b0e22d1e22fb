"""What an idle pool costs its process: threads, resident memory and CPU, per pool.

Starts a private daemon, then K pools (default 1) with the production defaults
(10 connections, health checks every 30 s, the metrics endpoint on a free port)
aimed at it, waits until every connection has answered, and measures the
process while nothing is asked: threads and RSS against the process before the
first pool, and CPU time over ``--seconds`` (default 30) of idleness, which
covers one health round per connection and the router's scaling ticks. Each
figure is also given per pool and multiplied out to 50 pools in one process
(issue #14's many endpoints: one pool each).

No docker-py counterpart and no target: this is a cost to report, not a race.

    .venv/bin/python bench/bench_idle.py [--pools K] [--seconds S]
"""

from __future__ import annotations

import os
import threading
import time

import actorpool
from actorpool.config import Config
from actorpool.messages import Ping, PoolStatus, PoolStatusReport
from actorpool.runtime import Pool

from _common import bench_parser, bench_sandbox, load_note, rss_mib


def default_config(url: str) -> Config:
    """The production defaults, aimed at ``url``, metrics on a free loopback port."""
    data = {"docker": {"pool": {"socket_path": url}, "monitoring": {"listen": "127.0.0.1:0"}}}
    return Config.from_mapping(data)


def ready(pool: Pool, deadline: float) -> PoolStatusReport:
    """Wait until the pool has its initial size and every connection has answered."""
    while True:
        status: PoolStatusReport = pool.router.ask(PoolStatus(), timeout=10)
        if status.size >= pool.config.pool.initial_pool_size and status.healthy == status.size:
            return status
        if time.monotonic() > deadline:
            raise SystemExit(f"the pool did not fill in time: {status}")
        time.sleep(0.1)


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--pools", type=int, default=1, help="pools in the process (default 1)")
    parser.add_argument("--seconds", type=float, default=30.0, help="idle time measured")
    args = parser.parse_args()
    print(f"# idle cost, {args.pools} pool(s), {args.seconds:g} s; {load_note()}")
    with bench_sandbox() as sandbox:
        threads_before, rss_before = threading.active_count(), rss_mib()
        pools = [actorpool.start(default_config(sandbox.url)) for _ in range(args.pools)]
        try:
            deadline = time.monotonic() + 60
            for pool in pools:
                ready(pool, deadline)
                # Every connection once (a request each), as a pool in use would be.
                for _ in range(pool.config.pool.initial_pool_size):
                    assert pool.router.ask(Ping(), timeout=10) is True
            threads, rss = threading.active_count(), rss_mib()
            cpu_start, wall_start = os.times(), time.monotonic()
            time.sleep(args.seconds)
            cpu_end, wall = os.times(), time.monotonic() - wall_start
            cpu = (cpu_end.user - cpu_start.user) + (cpu_end.system - cpu_start.system)
            rss_after = rss_mib()
        finally:
            for pool in pools:
                pool.stop()
        k = args.pools
        size = pools[0].config.pool.initial_pool_size
        added_threads, added_rss = threads - threads_before, max(rss, rss_after) - rss_before
        print(f"process before the first pool: {threads_before} threads, {rss_before:.1f} MiB RSS")
        print(f"with {k} idle pool(s) of {size} connections:")
        print(f"  threads   +{added_threads} ({added_threads / k:.0f} per pool)")
        print(f"  RSS       +{added_rss:.1f} MiB ({added_rss / k:.1f} MiB per pool)")
        print(
            f"  idle CPU  {cpu:.3f} s over {wall:.1f} s = {100 * cpu / wall:.2f}% of one core "
            f"({100 * cpu / wall / k:.3f}% per pool)"
        )
        print(
            f"50 pools, by proportion: {50 * added_threads / k:.0f} threads, "
            f"{50 * added_rss / k:.0f} MiB, {50 * 100 * cpu / wall / k:.1f}% of one core"
        )


if __name__ == "__main__":
    main()
